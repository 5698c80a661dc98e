-- hybrid: content + collaborative + context factorization (LightFM's model) by SGD (src/sgd.c),
-- or id and feature factors by implicit ALS (src/als.c, option "core": "als").
-- Reads the feature sources named in its options as the caller, so it does not run in parallel.

CREATE FUNCTION personalize.hybrid_transfn(internal, bigint, bigint, real, text, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL UNSAFE;
CREATE FUNCTION personalize.hybrid_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL UNSAFE;

CREATE AGGREGATE personalize.hybrid_fit(user_id bigint, item_id bigint, weight real, context text, options jsonb) (
	SFUNC = personalize.hybrid_transfn,
	STYPE = internal,
	FINALFUNC = personalize.hybrid_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE personalize.hybrid_fit(bigint, bigint, real, text, jsonb) IS 'hybrid model: id, feature and context embeddings trained with WARP or BPR, or id and feature factors by implicit ALS (option core)';
