-- serving: recommendations from the active version of a named model.
-- Each call looks up the active version (one index probe) and reuses the
-- model this backend loaded for it. STABLE: one answer per snapshot.

CREATE FUNCTION personalize.recommend(model_name text, user_id bigint, k integer DEFAULT 10,
	exclude_seen boolean DEFAULT true, candidates bigint[] DEFAULT NULL, exclude bigint[] DEFAULT NULL,
	context text DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank integer, reason text)
	AS 'MODULE_PATHNAME', 'recommend' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.recommend(text, bigint, integer, boolean, bigint[], bigint[], text) IS 'top-k items for a user (in a context); popular items for an unknown user';

CREATE FUNCTION personalize.recommend_for(model_name text, items bigint[], weights real[] DEFAULT NULL, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, score real, rank integer, reason text)
	AS 'MODULE_PATHNAME', 'recommend_for' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.recommend_for(text, bigint[], real[], integer) IS 'top-k items for a user known only by these interactions (fold-in)';

CREATE FUNCTION personalize.fold_in(model_name text, items bigint[], weights real[])
RETURNS real[]
	AS 'MODULE_PATHNAME', 'fold_in_factors' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.fold_in(text, bigint[], real[]) IS 'ALS user factors solved from these interactions';

CREATE FUNCTION personalize.recommend_all(model_name text, k integer DEFAULT 10)
RETURNS TABLE (user_id bigint, item_id bigint, score real, rank integer)
	AS 'MODULE_PATHNAME', 'recommend_all' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 100000;
COMMENT ON FUNCTION personalize.recommend_all(text, integer) IS 'top-k unseen items for every user of a model';

CREATE FUNCTION personalize.similar_items(model_name text, item_id bigint, k integer DEFAULT 10)
RETURNS TABLE (item_id bigint, score real, rank integer)
	AS 'MODULE_PATHNAME', 'similar_items' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.similar_items(text, bigint, integer) IS 'the k items most similar to an item';

CREATE FUNCTION personalize.score(model_name text, user_id bigint, item_id bigint)
RETURNS real
	AS 'MODULE_PATHNAME', 'model_score' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.score(text, bigint, bigint) IS 'model score of one (user, item) pair';

CREATE FUNCTION personalize.user_embeddings(model_name text)
RETURNS TABLE (id bigint, embedding personalize.embedding)
	AS 'MODULE_PATHNAME', 'user_embeddings' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 100000;
COMMENT ON FUNCTION personalize.user_embeddings(text) IS 'ALS user factors as embeddings';

CREATE FUNCTION personalize.item_embeddings(model_name text)
RETURNS TABLE (id bigint, embedding personalize.embedding)
	AS 'MODULE_PATHNAME', 'item_embeddings' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 100000;
COMMENT ON FUNCTION personalize.item_embeddings(text) IS 'ALS item factors as embeddings';
