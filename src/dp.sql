-- dp: differentially private popularity and ALS (src/dp.c, doc/differential-privacy.md).

CREATE FUNCTION personalize.dp_popularity_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

-- PARALLEL RESTRICTED: the final function may read the catalog source as the caller
CREATE AGGREGATE personalize.dp_popularity_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.dp_popularity_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE personalize.dp_popularity_fit(bigint, bigint, real, jsonb) IS 'differentially private item counts: contribution bounding and Laplace or Gaussian noise';

CREATE FUNCTION personalize.dp_als_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.dp_als_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.dp_als_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.dp_als_fit(bigint, bigint, real, jsonb) IS 'differentially private implicit ALS (noisy item-side statistics, Chien et al. 2021)';
