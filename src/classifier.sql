-- classifier: scoring with a trained logistic or uplift model (src/logistic.sql trains them).
-- Features are passed in the order of training, or as one whole row whose columns are
-- matched by name: personalize.predict('churn', c) FROM customers c. The active version is
-- looked up once per query, so a SELECT over millions of rows runs at scan speed.

CREATE FUNCTION personalize.predict(model_name text, VARIADIC features "any") RETURNS double precision
	AS 'MODULE_PATHNAME', 'classifier_predict' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.predict(text, "any") IS
	'probability of the positive class for one row (calibrated when the model is); NULL when a feature is NULL';

CREATE FUNCTION personalize.predict_log_odds(model_name text, VARIADIC features "any") RETURNS double precision
	AS 'MODULE_PATHNAME', 'classifier_predict_log_odds' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.predict_log_odds(text, "any") IS
	'the linear predictor (log odds) of one row, before any calibration';

CREATE FUNCTION personalize.predictions(model_name text, source text, id_column text)
RETURNS TABLE (subject_id bigint, probability double precision)
	AS 'MODULE_PATHNAME', 'classifier_predictions' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100000;
COMMENT ON FUNCTION personalize.predictions(text, text, text) IS
	'probability for every row of a table, view or query, by its integer id';

CREATE FUNCTION personalize.coefficients(model_name text, confidence double precision DEFAULT 0.95)
RETURNS TABLE (arm text, term text, feature text, level text, coefficient double precision,
               std_error double precision, z double precision, p_value double precision,
               ci_low double precision, ci_high double precision)
	AS 'MODULE_PATHNAME', 'classifier_coefficients' LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 20;
COMMENT ON FUNCTION personalize.coefficients(text, double precision) IS
	'coefficients of the active version with standard errors, z, p-values and Wald intervals';
CREATE FUNCTION personalize.coefficients(model personalize.model, confidence double precision DEFAULT 0.95)
RETURNS TABLE (arm text, term text, feature text, level text, coefficient double precision,
               std_error double precision, z double precision, p_value double precision,
               ci_low double precision, ci_high double precision)
	AS 'MODULE_PATHNAME', 'classifier_coefficients' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 20;
COMMENT ON FUNCTION personalize.coefficients(personalize.model, double precision) IS
	'coefficients of a stored model value with standard errors, z, p-values and Wald intervals';

-- Scores into the prediction log (src/fairness.sql), for the fairness views. The source
-- runs as the caller; attributes are columns copied into the log's attributes object.
CREATE FUNCTION personalize.log_predictions(model_name text, source text, id_column text,
	attributes text[] DEFAULT '{}', label_column text DEFAULT NULL, threshold double precision DEFAULT 0.5)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
DECLARE
	attrs text := '''{}''::pg_catalog.jsonb';
	label text := 'NULL::pg_catalog.bool';
	logged bigint;
BEGIN
	IF model_name IS NULL OR source IS NULL OR id_column IS NULL OR attributes IS NULL OR threshold IS NULL THEN
		RAISE EXCEPTION 'model_name, source, id_column, attributes and threshold must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF pg_catalog.cardinality(attributes) > 0 THEN
		SELECT 'pg_catalog.jsonb_build_object(' ||
		       pg_catalog.string_agg(pg_catalog.format('%L, s.%I', a, a), ', ' ORDER BY i) || ')'
		INTO attrs FROM pg_catalog.unnest(attributes) WITH ORDINALITY u(a, i);
	END IF;
	IF label_column IS NOT NULL THEN
		-- booleans, and integers 0/1, through their text
		label := pg_catalog.format('(s.%I)::pg_catalog.text::pg_catalog.bool', label_column);
	END IF;
	EXECUTE pg_catalog.format(
		'INSERT INTO personalize.prediction_log (model, subject_id, score, prediction, label, attributes)
		 SELECT $1, q.id, q.score, q.score OPERATOR(pg_catalog.>=) $2, q.label, q.attributes
		 FROM (SELECT (s.%I)::pg_catalog.int8 AS id, personalize.predict($1, s) AS score, %s AS label, %s AS attributes
		       FROM %s AS s) q',
		id_column, label, attrs, personalize.source_sql(source))
	USING model_name, threshold;
	GET DIAGNOSTICS logged = ROW_COUNT;
	RETURN logged;
END
$$;
COMMENT ON FUNCTION personalize.log_predictions(text, text, text, text[], text, double precision) IS
	'score every row of a source and append it to personalize.prediction_log (prediction: score >= threshold)';
