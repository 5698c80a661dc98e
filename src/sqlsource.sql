-- sqlsource: arguments that name a table or view, or hold a query, as the caller's SQL.
--
-- Functions that take such text (ranking_metrics, train, fairness_by_group, segment_effects,
-- ...) run it as the caller, so privileges and row-level security apply. Those written in
-- plpgsql do not pin search_path, so that names in the text resolve as the caller would
-- resolve them; their own references are schema-qualified instead.

CREATE FUNCTION personalize.source_sql(source text, what text DEFAULT NULL) RETURNS text
	AS 'MODULE_PATHNAME', 'source_sql' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.source_sql(text, text) IS
	'a table or view name (resolved now: 42P01 if missing) or a query, as SQL that can follow FROM';

CREATE FUNCTION personalize.source_columns(source text) RETURNS text[]
	AS 'MODULE_PATHNAME', 'source_columns' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.source_columns(text) IS 'column names of a table, view or query';
