-- explain: the parts of a user's score for an item (src/explain.c).

CREATE FUNCTION personalize.explain(model_name text, user_id bigint, item_id bigint, k integer DEFAULT 10,
	context text DEFAULT NULL)
RETURNS TABLE (rank integer, kind text, past_item_id bigint, name text, contribution real)
	AS 'MODULE_PATHNAME', 'explain' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.explain(text, bigint, bigint, integer, text) IS 'the past items, features and context that make up a score, largest first';
