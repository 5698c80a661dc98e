-- Ranking metrics at K against numpy (test/reference/ref_evaluation.py), to 1e-9.
SET search_path = public, personalize;

CREATE TABLE eval_truth (user_id bigint, item_id bigint);
\copy eval_truth FROM 'test/reference/evaluation_truth.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE eval_recs (user_id bigint, item_id bigint, rank int);
\copy eval_recs FROM 'test/reference/evaluation_recs.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE expected (k int, users bigint, precision_at_k float8, recall_at_k float8, ndcg_at_k float8,
  map_at_k float8, hit_rate_at_k float8, mrr_at_k float8, coverage_at_k float8, coverage_of_catalog_250 float8);
\copy expected FROM 'test/reference/evaluation_ranking.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE expected_by_user (k int, user_id bigint, relevant int, hits int, precision_at_k float8,
  recall_at_k float8, ndcg_at_k float8, average_precision float8, reciprocal_rank float8);
\copy expected_by_user FROM 'test/reference/evaluation_ranking_by_user.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

CREATE FUNCTION pg_temp.close(a float8, b float8) RETURNS bool LANGUAGE sql IMMUTABLE
AS $$ SELECT abs(a - b) <= 1e-9 * greatest(1, abs(b)) $$;

-- summary rows: relation names, and queries, with and without a catalog
SELECT e.k, m.users = e.users AS users,
       pg_temp.close(m.precision_at_k, e.precision_at_k) AS precision_ok,
       pg_temp.close(m.recall_at_k, e.recall_at_k) AS recall_ok,
       pg_temp.close(m.ndcg_at_k, e.ndcg_at_k) AS ndcg_ok,
       pg_temp.close(m.map_at_k, e.map_at_k) AS map_ok,
       pg_temp.close(m.hit_rate_at_k, e.hit_rate_at_k) AS hit_rate_ok,
       pg_temp.close(m.mrr_at_k, e.mrr_at_k) AS mrr_ok,
       pg_temp.close(m.coverage_at_k, e.coverage_at_k) AS coverage_ok,
       pg_temp.close(c.coverage_at_k, e.coverage_of_catalog_250) AS catalog_coverage_ok
FROM expected e,
     LATERAL ranking_metrics('eval_recs', 'eval_truth', e.k) m,
     LATERAL ranking_metrics('SELECT user_id, item_id, rank FROM eval_recs', 'public.eval_truth', e.k,
                             'SELECT g AS item_id FROM generate_series(0, 249) g') c
ORDER BY e.k;

-- per user: every row, every figure
SELECT e.k, count(*) AS users,
       count(*) FILTER (WHERE u.relevant = e.relevant AND u.hits = e.hits
                          AND pg_temp.close(u.precision_at_k, e.precision_at_k)
                          AND pg_temp.close(u.recall_at_k, e.recall_at_k)
                          AND pg_temp.close(u.ndcg_at_k, e.ndcg_at_k)
                          AND pg_temp.close(u.average_precision, e.average_precision)
                          AND pg_temp.close(u.reciprocal_rank, e.reciprocal_rank)) AS agree
FROM expected_by_user e
LEFT JOIN LATERAL (SELECT * FROM ranking_metrics_by_user('eval_recs', 'eval_truth', e.k) x
                   WHERE x.user_id = e.user_id) u ON true
WHERE e.k IN (5, 10)
GROUP BY e.k ORDER BY e.k;

-- the per-user rows average to the summary
SELECT pg_temp.close(avg(ndcg_at_k), (SELECT ndcg_at_k FROM ranking_metrics('eval_recs', 'eval_truth', 10))) AS consistent
FROM ranking_metrics_by_user('eval_recs', 'eval_truth', 10);

-- duplicate truth rows count once (binary relevance)
SELECT pg_temp.close(a.ndcg_at_k, b.ndcg_at_k) AND a.users = b.users AS duplicates_in_truth_ignored
FROM ranking_metrics('eval_recs', 'SELECT * FROM eval_truth UNION ALL SELECT * FROM eval_truth', 10) a,
     ranking_metrics('eval_recs', 'eval_truth', 10) b;

-- many users (the per-user arrays grow several times): user u likes one item, at rank u % 3 + 1
SELECT m.users, abs(m.precision_at_k - 1 / 3.0) < 1e-12 AS precision_ok, m.recall_at_k = 1 AS recall_ok,
       abs(m.mrr_at_k - x.mrr) < 1e-12 AS mrr_ok
FROM ranking_metrics('SELECT u AS user_id, u * 10 + r AS item_id, r AS rank FROM generate_series(1, 5000) u, generate_series(1, 3) r',
                     'SELECT u AS user_id, u * 10 + u % 3 + 1 AS item_id FROM generate_series(1, 5000) u', 3) m,
     (SELECT avg(1.0 / (u % 3 + 1))::float8 AS mrr FROM generate_series(1, 5000) u) x;

-- empty inputs: no users with truth gives NULL averages
SELECT * FROM ranking_metrics('eval_recs', 'SELECT * FROM eval_truth WHERE false', 10);
SELECT users, precision_at_k, coverage_at_k FROM ranking_metrics('SELECT * FROM eval_recs WHERE false', 'eval_truth', 10);

-- bad input (SQLSTATEs in test/evaluation_errors.sql)
SELECT * FROM ranking_metrics('eval_recs', 'eval_truth', 0);
SELECT * FROM ranking_metrics('no_such_table', 'eval_truth', 10);
SELECT * FROM ranking_metrics('SELECT user_id, item_id AS rank FROM eval_recs', 'eval_truth', 10);
SELECT * FROM ranking_metrics('SELECT user_id, item_id, 0 AS rank FROM eval_recs', 'eval_truth', 10);
SELECT * FROM ranking_metrics('SELECT 1 AS user_id, 2 AS item_id, 1 AS rank UNION ALL SELECT 1, 3, 1', 'eval_truth', 10);
SELECT * FROM ranking_metrics('SELECT 1 AS user_id, 2 AS item_id, 1 AS rank UNION ALL SELECT 1, 2, 2', 'eval_truth', 10);
SELECT * FROM ranking_metrics('SELECT NULL::int AS user_id, 2 AS item_id, 1 AS rank', 'eval_truth', 10);
SELECT * FROM ranking_metrics('eval_recs', 'SELECT user_id, NULL::bigint AS item_id FROM eval_truth', 10);
SELECT * FROM ranking_metrics(NULL, 'eval_truth', 10);

DROP TABLE eval_truth, eval_recs;
