-- Time-aware splits and beyond-accuracy metrics against numpy/scipy references.
SET search_path = public, personalize;

CREATE TABLE interactions (user_id bigint, item_id bigint, day int, weight real);
\copy interactions FROM 'test/reference/evaluation_interactions.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE expected (test_fraction float8, min_interactions int, user_id bigint, item_id bigint, day int,
  weight real, part text);
\copy expected FROM 'test/reference/evaluation_split.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE VIEW interaction_events AS
SELECT user_id, item_id, weight, timestamptz '2026-01-01 00:00+00' + day * interval '1 day' AS occurred_at
FROM interactions;

-- per-user temporal split: the same part for every row (multiset compare)
SELECT p.test_fraction, p.min_interactions, count(*) AS rows,
       (SELECT count(*) FROM ((SELECT user_id, item_id, weight, part FROM expected e
                               WHERE e.test_fraction = p.test_fraction AND e.min_interactions = p.min_interactions)
                              EXCEPT ALL
                              (SELECT user_id, item_id, weight, part
                               FROM split_by_user_time('interaction_events', p.test_fraction, p.min_interactions))) d)
         AS rows_differing
FROM (SELECT DISTINCT test_fraction, min_interactions FROM expected) p
JOIN expected USING (test_fraction, min_interactions)
GROUP BY p.test_fraction, p.min_interactions ORDER BY 1, 2;

-- deterministic, and without a weight column every weight is 1
SELECT count(*) AS rows, count(*) FILTER (WHERE weight = 1) AS unit_weights
FROM split_by_user_time('SELECT user_id, item_id, occurred_at FROM interaction_events');
SELECT (SELECT array_agg(s ORDER BY s::text) FROM split_by_user_time('interaction_events') s) =
       (SELECT array_agg(s ORDER BY s::text) FROM split_by_user_time('interaction_events') s) AS deterministic;

-- global cutoff
SELECT part, count(*), bool_and(occurred_at >= '2026-01-10 00:00+00') AS after_cutoff
FROM split_by_time('interaction_events', '2026-01-10 00:00+00') GROUP BY part ORDER BY part;

SELECT * FROM split_by_user_time('interaction_events', 1.0);
SELECT * FROM split_by_user_time('interaction_events', 0.2, 1);
SELECT * FROM split_by_time('interaction_events', 'infinity');
SELECT * FROM split_by_user_time('SELECT user_id, item_id FROM interactions');

-- beyond accuracy: novelty, popularity percentile, intra-list diversity
CREATE TABLE eval_truth (user_id bigint, item_id bigint);
\copy eval_truth FROM 'test/reference/evaluation_truth.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE eval_recs (user_id bigint, item_id bigint, rank int);
\copy eval_recs FROM 'test/reference/evaluation_recs.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE item_vectors (item_id bigint, embedding embedding);
\copy item_vectors FROM 'test/reference/evaluation_item_embeddings.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE expected_beyond (k int, users bigint, novelty float8, popularity_percentile float8,
  unseen_in_training bigint, intra_list_diversity float8);
\copy expected_beyond FROM 'test/reference/evaluation_beyond_accuracy.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
-- novelty and percentiles in float8 to 1e-9; diversity uses float4 embeddings and kernels: 1e-6
SELECT b.users = e.users AS users, abs(b.novelty - e.novelty) < 1e-9 AS novelty_ok,
       abs(b.popularity_percentile - e.popularity_percentile) < 1e-9 AS percentile_ok,
       b.unseen_in_training = e.unseen_in_training AS unseen_ok,
       abs(b.intra_list_diversity - e.intra_list_diversity) < 1e-6 AS diversity_ok
FROM expected_beyond e, beyond_accuracy('eval_recs', 'eval_truth', e.k, 'item_vectors') b;
SELECT intra_list_diversity FROM beyond_accuracy('eval_recs', 'eval_truth', 10);

DROP VIEW interaction_events;
DROP TABLE interactions, eval_truth, eval_recs, item_vectors;
