-- evaluation: time-aware splits, ranking metrics at K, beyond-accuracy metrics.
-- Every function reads the caller's relations as the caller (SECURITY INVOKER),
-- so row-level security decides what is evaluated. Functions that run the
-- caller's SQL do not pin search_path (the caller's names must resolve as the
-- caller sees them); their bodies qualify every function and operator instead.

-- Per-user temporal split: each user's last ceil(n * test_fraction) interactions by time
-- (ties broken by item_id, then weight) go to test; users with fewer than
-- min_interactions stay wholly in train.
CREATE FUNCTION personalize.split_by_user_time(source text, test_fraction double precision DEFAULT 0.2,
                                               min_interactions integer DEFAULT 5)
RETURNS TABLE (user_id bigint, item_id bigint, weight real, occurred_at timestamptz, part text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	from_item text := personalize.source_sql(source) OPERATOR(pg_catalog.||) ' AS s';
	weight_expr text := CASE WHEN 'weight' OPERATOR(pg_catalog.=) ANY (personalize.source_columns(source))
	                         THEN 's.weight::pg_catalog.float4' ELSE '1::pg_catalog.float4' END;
BEGIN
	IF test_fraction IS NULL OR test_fraction OPERATOR(pg_catalog.<=) 0 OR test_fraction OPERATOR(pg_catalog.>=) 1
	   OR test_fraction OPERATOR(pg_catalog.=) 'NaN'::pg_catalog.float8 THEN
		RAISE EXCEPTION 'test_fraction must be between 0 and 1 (exclusive), not %', test_fraction
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF min_interactions IS NULL OR min_interactions OPERATOR(pg_catalog.<) 2 THEN
		RAISE EXCEPTION 'min_interactions must be at least 2, not %', min_interactions
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format($q$
		SELECT o.user_id, o.item_id, o.weight, o.occurred_at,
		       CASE WHEN o.total OPERATOR(pg_catalog.>=) $2
		            AND o.position OPERATOR(pg_catalog.>) (o.total OPERATOR(pg_catalog.-) pg_catalog.ceil(o.total OPERATOR(pg_catalog.*) $1)) THEN 'test' ELSE 'train' END
		FROM (SELECT i.*, pg_catalog.row_number() OVER w AS position, pg_catalog.count(*) OVER (PARTITION BY i.user_id) AS total
		      FROM (SELECT s.user_id::pg_catalog.int8 AS user_id, s.item_id::pg_catalog.int8 AS item_id,
		                   %s AS weight, s.occurred_at::pg_catalog.timestamptz AS occurred_at
		            FROM %s) i
		      WINDOW w AS (PARTITION BY i.user_id ORDER BY i.occurred_at, i.item_id, i.weight)) o
		$q$, weight_expr, from_item)
		USING test_fraction, min_interactions;
END $$;

-- Global split: interactions before the cutoff train, the rest test.
CREATE FUNCTION personalize.split_by_time(source text, cutoff timestamptz)
RETURNS TABLE (user_id bigint, item_id bigint, weight real, occurred_at timestamptz, part text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	from_item text := personalize.source_sql(source) OPERATOR(pg_catalog.||) ' AS s';
	weight_expr text := CASE WHEN 'weight' OPERATOR(pg_catalog.=) ANY (personalize.source_columns(source))
	                         THEN 's.weight::pg_catalog.float4' ELSE '1::pg_catalog.float4' END;
BEGIN
	IF cutoff IS NULL OR NOT pg_catalog.isfinite(cutoff) THEN
		RAISE EXCEPTION 'cutoff must be a finite timestamp' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format($q$
		SELECT s.user_id::pg_catalog.int8, s.item_id::pg_catalog.int8, %s, s.occurred_at::pg_catalog.timestamptz,
		       CASE WHEN s.occurred_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<) $1 THEN 'train' ELSE 'test' END
		FROM %s$q$, weight_expr, from_item)
		USING cutoff;
END $$;

CREATE FUNCTION personalize.ranking_metrics(
	recommendations text, truth text, k integer, catalog text DEFAULT NULL,
	OUT users bigint, OUT precision_at_k double precision, OUT recall_at_k double precision,
	OUT ndcg_at_k double precision, OUT map_at_k double precision, OUT hit_rate_at_k double precision,
	OUT mrr_at_k double precision, OUT coverage_at_k double precision)
	AS 'MODULE_PATHNAME', 'ranking_metrics' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION personalize.ranking_metrics_by_user(recommendations text, truth text, k integer)
RETURNS TABLE (user_id bigint, relevant integer, hits integer, precision_at_k double precision,
               recall_at_k double precision, ndcg_at_k double precision, average_precision double precision,
               reciprocal_rank double precision)
	AS 'MODULE_PATHNAME', 'ranking_metrics_by_user' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 10000;

-- Beyond accuracy: novelty and popularity bias from training popularity, and
-- intra-list diversity from item embeddings when given.
CREATE FUNCTION personalize.beyond_accuracy(
	recommendations text, training text, k integer, item_embeddings text DEFAULT NULL,
	OUT users bigint, OUT novelty double precision, OUT popularity_percentile double precision,
	OUT unseen_in_training bigint, OUT intra_list_diversity double precision)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
BEGIN
	IF recommendations IS NULL OR training IS NULL OR k IS NULL THEN
		RAISE EXCEPTION 'recommendations, training and k must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF k OPERATOR(pg_catalog.<) 1 THEN
		RAISE EXCEPTION 'k must be at least 1, not %', k USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format($q$
		WITH rec AS (SELECT r.user_id::pg_catalog.int8 AS user_id, r.item_id::pg_catalog.int8 AS item_id
		             FROM %s WHERE r.rank OPERATOR(pg_catalog.<=) $1),
		     train AS (SELECT DISTINCT t.user_id::pg_catalog.int8 AS user_id, t.item_id::pg_catalog.int8 AS item_id FROM %s),
		     n AS (SELECT pg_catalog.count(DISTINCT user_id)::pg_catalog.float8 AS users FROM train),
		     pop AS (SELECT item_id, pg_catalog.count(*)::pg_catalog.float8 AS interacted,
		                    pg_catalog.percent_rank() OVER (ORDER BY pg_catalog.count(*)) AS percentile
		             FROM train GROUP BY item_id)
		SELECT pg_catalog.count(DISTINCT rec.user_id),
		       pg_catalog.avg(OPERATOR(pg_catalog.-) pg_catalog.ln(pop.interacted OPERATOR(pg_catalog./) n.users)
		                      OPERATOR(pg_catalog./) pg_catalog.ln(2::pg_catalog.float8)),
		       pg_catalog.avg(pop.percentile),
		       pg_catalog.count(*) FILTER (WHERE pop.item_id IS NULL)
		FROM rec CROSS JOIN n LEFT JOIN pop USING (item_id)$q$,
		personalize.source_sql(recommendations) OPERATOR(pg_catalog.||) ' AS r', personalize.source_sql(training) OPERATOR(pg_catalog.||) ' AS t')
		USING k
		INTO users, novelty, popularity_percentile, unseen_in_training;
	IF item_embeddings IS NOT NULL THEN
		EXECUTE pg_catalog.format($q$
			WITH rec AS (SELECT r.user_id::pg_catalog.int8 AS user_id, r.item_id::pg_catalog.int8 AS item_id
			             FROM %s WHERE r.rank OPERATOR(pg_catalog.<=) $1),
			     emb AS (SELECT e.item_id::pg_catalog.int8 AS item_id, e.embedding FROM %s),
			     pairs AS (SELECT a.user_id, pg_catalog.avg(ea.embedding OPERATOR(personalize.<=>) eb.embedding) AS diversity
			               FROM rec a JOIN rec b ON a.user_id OPERATOR(pg_catalog.=) b.user_id AND a.item_id OPERATOR(pg_catalog.<) b.item_id
			               JOIN emb ea ON ea.item_id OPERATOR(pg_catalog.=) a.item_id JOIN emb eb ON eb.item_id OPERATOR(pg_catalog.=) b.item_id
			               GROUP BY a.user_id)
			SELECT pg_catalog.avg(diversity) FROM pairs$q$,
			personalize.source_sql(recommendations) OPERATOR(pg_catalog.||) ' AS r', personalize.source_sql(item_embeddings) OPERATOR(pg_catalog.||) ' AS e')
			USING k
			INTO intra_list_diversity;
	END IF;
	RETURN;
END $$;
