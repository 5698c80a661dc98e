-- fairness: group fairness of classifiers (fairlearn's definitions), a
-- prediction log with daily fairness views, and exposure fairness of rankings.

-- ---------------------------------------------------------------- prediction log

CREATE TABLE personalize.prediction_log (
	model text NOT NULL,
	subject_id bigint,
	score double precision,
	prediction boolean,
	label boolean,
	attributes jsonb NOT NULL DEFAULT '{}',
	logged_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE personalize.prediction_log IS 'predictions with their eventual labels and group attributes, for fairness monitoring';
CREATE INDEX prediction_log_model_time ON personalize.prediction_log (model, logged_at);
CREATE INDEX prediction_log_subject ON personalize.prediction_log (subject_id);
SELECT pg_catalog.pg_extension_config_dump('personalize.prediction_log', '');
