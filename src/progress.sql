-- progress: what train() and refresh() are doing, seen from other sessions.

CREATE FUNCTION personalize.report_progress(operation text, phase text, model_name text DEFAULT NULL) RETURNS void
	AS 'MODULE_PATHNAME', 'report_progress' LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.report_progress(text, text, text) IS
	'publish the phase of this session''s training or refresh (a NULL phase ends it)';

CREATE FUNCTION personalize.training_progress_rows(
	OUT pid integer, OUT operation text, OUT model_name text, OUT phase text, OUT rows_read bigint,
	OUT iteration integer, OUT iterations integer, OUT loss double precision, OUT started_at timestamptz,
	OUT seconds double precision)
RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'training_progress_rows' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 4;
COMMENT ON FUNCTION personalize.training_progress_rows() IS 'rows of personalize.training_progress';

CREATE VIEW personalize.training_progress WITH (security_invoker = true) AS
	SELECT p.pid, a.usename AS role, p.operation, p.model_name, p.phase, p.rows_read, p.iteration, p.iterations,
	       p.loss, p.started_at, p.seconds
	FROM personalize.training_progress_rows() p
	LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) p.pid;
COMMENT ON VIEW personalize.training_progress IS 'trainings and refreshes running now: phase, rows read, iteration, elapsed seconds';
