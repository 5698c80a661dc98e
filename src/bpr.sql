-- bpr: Bayesian personalized ranking by SGD (src/sgd.c), the collaborative baseline of hybrid.

CREATE FUNCTION personalize.bpr_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.bpr_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.bpr_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.bpr_fit(bigint, bigint, real, jsonb) IS 'BPR matrix factorization by SGD (implicit feedback)';
