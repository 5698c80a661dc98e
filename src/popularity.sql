-- popularity: summed weight per item. The state is a bytea (a concrete type,
-- so Citus can push partial aggregation to workers).

CREATE FUNCTION personalize.popularity_transfn(bytea, bigint, bigint, real, jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.popularity_combine(bytea, bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.popularity_final(bytea) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.popularity_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.popularity_transfn,
	STYPE = bytea,
	COMBINEFUNC = personalize.popularity_combine,
	FINALFUNC = personalize.popularity_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.popularity_fit(bigint, bigint, real, jsonb) IS 'popularity model: summed weight per item';
