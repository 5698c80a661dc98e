-- uplift: two-model (T-learner) uplift from a treatment column, and read-outs of any
-- uplift score on an experiment: Qini and uplift curves, their normalized areas,
-- uplift at k and response rates per score bin (scikit-uplift's definitions,
-- doc/uplift.md).

CREATE FUNCTION personalize.train_uplift(model_name text, source text, outcome text, treatment text,
                                         features text[], options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
BEGIN
	IF outcome IS NULL OR treatment IS NULL OR features IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'outcome, treatment, features and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	RETURN personalize.train(model_name, 'uplift', source,
		pg_catalog.jsonb_concat(options, pg_catalog.jsonb_build_object('label', outcome, 'treatment', treatment,
		                                                               'features', pg_catalog.to_jsonb(features))));
END
$$;
COMMENT ON FUNCTION personalize.train_uplift(text, text, text, text, text[], jsonb) IS
	'train a two-model (T-learner) uplift model: one logistic regression per arm';

CREATE FUNCTION personalize.uplift_score(model_name text, VARIADIC features "any") RETURNS double precision
	AS 'MODULE_PATHNAME', 'uplift_score' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.uplift_score(text, "any") IS
	'predicted uplift of one row: probability if treated minus probability if not';

CREATE FUNCTION personalize.uplift_scores(model_name text, source text, id_column text)
RETURNS TABLE (subject_id bigint, p_treated double precision, p_control double precision, uplift double precision)
	AS 'MODULE_PATHNAME', 'uplift_scores' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100000;
COMMENT ON FUNCTION personalize.uplift_scores(text, text, text) IS
	'treated and control probabilities and their difference for every row of a source';

CREATE FUNCTION personalize.uplift_accum(bytea, boolean, boolean, double precision) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.uplift_combine(bytea, bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.uplift_sample_final(bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- The state is bytea (concrete, shipped between workers); rows with a NULL are skipped.
CREATE AGGREGATE personalize.uplift_sample(outcome boolean, treatment boolean, score double precision) (
	SFUNC = personalize.uplift_accum, STYPE = bytea,
	COMBINEFUNC = personalize.uplift_combine,
	FINALFUNC = personalize.uplift_sample_final,
	PARALLEL = SAFE
);

CREATE FUNCTION personalize.uplift_summary(sample bytea, k double precision DEFAULT 0.3, strategy text DEFAULT 'overall',
	OUT n bigint, OUT treated bigint, OUT control bigint, OUT auuc double precision,
	OUT qini_coefficient double precision, OUT uplift_at_k double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.uplift_summary(bytea, double precision, text) IS
	'normalized areas under the uplift curve (AUUC) and the Qini curve, and uplift at the top k';

CREATE FUNCTION personalize.uplift_curve(sample bytea)
RETURNS TABLE (n bigint, value double precision, random double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION personalize.uplift_curve(bytea) IS
	'uplift curve: (treated rate - control rate) x rows targeted, at each distinct score';
CREATE FUNCTION personalize.qini_curve(sample bytea)
RETURNS TABLE (n bigint, value double precision, random double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION personalize.qini_curve(bytea) IS
	'Qini curve: treated responders - control responders x treated / control, at each distinct score';

CREATE FUNCTION personalize.uplift_by_percentile(sample bytea, bins integer DEFAULT 10, strategy text DEFAULT 'overall',
	confidence double precision DEFAULT 0.95)
RETURNS TABLE (bin integer, n_treated bigint, n_control bigint, rate_treated double precision,
               rate_control double precision, uplift double precision, uplift_low double precision,
               uplift_high double precision, p_value double precision, confidence double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION personalize.uplift_by_percentile(bytea, integer, text, double precision) IS
	'per score bin (deciles by default): treated and control response rates, uplift, Wald interval, z-test';
