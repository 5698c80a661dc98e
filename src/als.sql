-- als: implicit-feedback alternating least squares with a conjugate-gradient solver.

CREATE FUNCTION personalize.als_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.als_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.als_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.als_fit(bigint, bigint, real, jsonb) IS 'implicit ALS model (conjugate gradient)';
