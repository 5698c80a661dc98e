-- editorial: curated lists as a model (arm A of a study), served by recommend like the others.

CREATE FUNCTION personalize.editorial_transfn(internal, bigint, integer, text, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL UNSAFE;
CREATE FUNCTION personalize.editorial_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL UNSAFE;

CREATE AGGREGATE personalize.editorial_fit(item_id bigint, "position" integer, segment text, options jsonb) (
	SFUNC = personalize.editorial_transfn,
	STYPE = internal,
	FINALFUNC = personalize.editorial_final,
	PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE personalize.editorial_fit(bigint, integer, text, jsonb) IS 'editorial model: curated lists per segment, and a default list';
