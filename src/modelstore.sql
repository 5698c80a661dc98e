-- modelstore: models of any size, stored in chunks of personalize.model_chunks
-- (defined with the registry) in the transaction that registers them.

CREATE FUNCTION personalize.model_store(model_name text, version integer, model personalize.model) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_store(text, integer, personalize.model) IS
	'write a model into personalize.model_chunks as a version of model_name (used by train); returns its bytes';

CREATE FUNCTION personalize.model_export(model_name text, version integer) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.model_export(text, integer) IS
	'a stored model version as one personalize.model value (its text form is the hex of the image)';

CREATE FUNCTION personalize.model_forget_user(model_name text, version integer, user_id bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_forget_user(text, integer, bigint) IS
	'rewrite a stored model version without one user; its new bytes, or NULL when it does not know the user';
