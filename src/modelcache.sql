-- modelcache: the models being served. With pg_personalize in
-- shared_preload_libraries one copy of each version per server, in shared
-- memory; otherwise a copy per backend.

CREATE FUNCTION personalize.model_prewarm(model_name text, version integer) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_prewarm(text, integer) IS
	'load an active version into shared memory before the transaction commits (used by train and activate)';

CREATE FUNCTION personalize.model_unload(model_name text) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_unload(text) IS
	'free the shared copies of a model once no backend uses them, when the transaction commits (used by drop_model)';

CREATE FUNCTION personalize.model_cache_mode() RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.model_cache_mode() IS
	'shared (one copy per server, the library is preloaded) or backend (a copy per backend)';

CREATE FUNCTION personalize.model_cache()
RETURNS TABLE (name text, version integer, bytes bigint, state text, backends integer, shared boolean)
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.model_cache() IS
	'model versions loaded for serving: in shared memory (with the backends mapping them) and in this backend';

DO $$
BEGIN
	IF personalize.model_cache_mode() <> 'shared' THEN
		-- a WARNING: CREATE EXTENSION runs its script with client_min_messages = warning
		RAISE WARNING 'pg_personalize is not in shared_preload_libraries: every backend that serves a model keeps its own copy'
			USING HINT = 'Add pg_personalize to shared_preload_libraries and restart to keep one copy per server (doc/administration.md).';
	END IF;
END
$$;
