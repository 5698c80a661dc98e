-- logistic: logistic regression trained by an aggregate pass (log-likelihood, gradient and
-- Hessian for given coefficients, parallel safe) driven by Newton's method. Formulas,
-- options and the NULL policy: doc/propensity.md.

CREATE FUNCTION personalize.logistic_pass_transfn(double precision[], bytea, "any", "any", VARIADIC "any")
	RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.logistic_pass_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.logistic_pass_final(double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- The state is a double precision[]: partial sums are shipped and added by the combine function.
-- label: boolean or a number 0/1; weight: a number; then the features in the spec's order.
CREATE AGGREGATE personalize.logistic_pass(spec bytea, label "any", weight "any", VARIADIC features "any") (
	SFUNC = personalize.logistic_pass_transfn, STYPE = double precision[],
	COMBINEFUNC = personalize.logistic_pass_combine,
	FINALFUNC = personalize.logistic_pass_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);

-- The pass with concrete argument types, which Citus pushes down to the shards as a partial
-- aggregate: label and weight as float8, the dense features after the intercept flattened into
-- numbers (in the spec's order), the categorical features' levels as text.
CREATE FUNCTION personalize.logistic_pass_flat_transfn(double precision[], bytea, double precision, double precision,
                                                       double precision[], text[])
	RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE personalize.logistic_pass_flat(spec bytea, label double precision, weight double precision,
                                                numbers double precision[], categories text[]) (
	SFUNC = personalize.logistic_pass_flat_transfn, STYPE = double precision[],
	COMBINEFUNC = personalize.logistic_pass_combine,
	FINALFUNC = personalize.logistic_pass_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);

CREATE FUNCTION personalize.logistic_spec(model personalize.model, arm text DEFAULT NULL) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.logistic_spec(personalize.model, text) IS
	'a stored classifier (an uplift model''s control or treated arm) as the spec of logistic_pass';

CREATE FUNCTION personalize.classifier_fit(algorithm text, source text, options jsonb) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.classifier_fit(text, text, jsonb) IS
	'fit a logistic (or two-arm uplift) model on a table, view or query, as the caller';

CREATE FUNCTION personalize.train_classifier(model_name text, source text, label text, features text[],
                                             options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
BEGIN
	IF label IS NULL OR features IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'label, features and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	RETURN personalize.train(model_name, 'logistic', source,
		pg_catalog.jsonb_concat(options, pg_catalog.jsonb_build_object('label', label, 'features', pg_catalog.to_jsonb(features))));
END
$$;
COMMENT ON FUNCTION personalize.train_classifier(text, text, text, text[], jsonb) IS
	'train a logistic regression (propensity model) and store a new version';
