-- model: the personalize.model type, a flat varlena holding a trained
-- recommender (algorithm, options, id maps, float4 matrices) or classifier.

CREATE TYPE personalize.model;

CREATE FUNCTION personalize.model_in(cstring) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.model_out(personalize.model) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.model_recv(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.model_send(personalize.model) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Stored out of line and uncompressed: factors do not compress, and serving
-- reads the whole value once per backend and version.
CREATE TYPE personalize.model (
	INPUT = personalize.model_in,
	OUTPUT = personalize.model_out,
	RECEIVE = personalize.model_recv,
	SEND = personalize.model_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = external
);

COMMENT ON TYPE personalize.model IS 'trained model: a recommender (popularity, item-kNN or ALS) or a classifier (logistic, uplift)';

CREATE FUNCTION personalize.model_info(personalize.model) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.model_info(personalize.model) IS 'algorithm, options and sizes of a model';

CREATE FUNCTION personalize.model_without_user(model personalize.model, user_id bigint) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.model_without_user(personalize.model, bigint) IS
	'the model without one user (id, seen items, factors); NULL when the model does not know the user';
