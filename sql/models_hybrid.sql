-- BPR and the hybrid (features and contexts), editorial lists, explain, feature minimisation,
-- privacy_report. Data with planted structure: 8 categories; each user mostly likes one.
SET client_min_messages = warning;
-- tables of this test in their own schema; its models are dropped at the end
CREATE SCHEMA hybrid_test;
SET search_path = hybrid_test, personalize, public;
CREATE TEMP TABLE models_before AS SELECT DISTINCT name FROM personalize.models;

-- 200 items, item i of category (i - 1) % 8; 400 users, user u likes category u % 8 (10 items)
-- and has two other items; three interactions per user at night are with items of category 7
CREATE TABLE catalog AS SELECT i::bigint AS item_id, (i - 1) % 8 AS category FROM generate_series(1, 200) i;
CREATE TABLE clicks AS
SELECT u::bigint AS user_id, (8 * ((u * 7 + n * 13) % 25) + u % 8 + 1)::bigint AS item_id, 1::real AS weight, 'day' AS context
FROM generate_series(1, 400) u, generate_series(1, 10) n
UNION ALL
SELECT u, (1 + (u * 31 + n * 17) % 200)::bigint, 1, 'day' FROM generate_series(1, 400) u, generate_series(1, 2) n
UNION ALL
SELECT u, (8 * ((u * 11 + n * 5) % 25) + 8)::bigint, 1, 'night' FROM generate_series(1, 400) u, generate_series(1, 3) n;
-- features: each item's category; 16 new items with a category and no interaction;
-- each user's segment (the category they like); 8 new users known only by their segment
CREATE TABLE item_features AS
SELECT item_id, 'category:' || category AS feature FROM catalog
UNION ALL SELECT 1000 + c * 2 + j, 'category:' || c FROM generate_series(0, 7) c, generate_series(0, 1) j;
CREATE TABLE user_features AS
SELECT DISTINCT user_id, 'segment:' || (user_id % 8) AS feature FROM clicks
UNION ALL SELECT 5000 + s, 'segment:' || s FROM generate_series(0, 7) s;

-- ---------- BPR ----------
SELECT train('bpr', 'bpr', 'clicks', '{"factors": 16, "iterations": 40, "learning_rate": 0.05, "seed": 3, "threads": 1}');
SELECT algorithm, features, model_info(model_export(name, version)) ->> 'factors' AS factors_with_bias, (model_info(model_export(name, version)) ->> 'loss')::float8 < 0.69 AS loss_below_chance
FROM models WHERE name = 'bpr';
-- one thread and a seed: one model
SELECT (SELECT bpr_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 5, "seed": 4, "threads": 1}')::text FROM clicks)
     = (SELECT bpr_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 5, "seed": 4, "threads": 1}')::text FROM clicks) AS same_seed_same_model;
-- it learned the categories: among the items of categories 0-6 (7 is everyone's night
-- category), most recommended are of the user's category (chance: 1 in 7)
SELECT avg(((r.item_id - 1) % 8 = u % 8)::int) > 0.5 AS recommends_liked_category
FROM generate_series(1, 400, 7) u, recommend('bpr', u, 5, candidates => ARRAY(SELECT item_id FROM catalog WHERE category < 7)) r
WHERE u % 8 < 7;
-- the score is the dot product of the stored vectors (the last item component the bias)
SELECT bool_and(abs(score('bpr', 10, i.id) + (u.embedding <#> i.embedding)) < 1e-5) AS score_is_dot, max(dims(i.embedding)) AS dims
FROM user_embeddings('bpr') u, item_embeddings('bpr') i WHERE u.id = 10;
-- a user known only by items: fold-in by the BPR objective, given items excluded
SELECT count(*) AS rows, bool_and(item_id NOT IN (1, 9, 17)) AS given_excluded,
       avg(((item_id - 1) % 8 = 0)::int) > 0.6 AS folds_into_the_category
FROM recommend_for('bpr', ARRAY[1, 9, 17]::bigint[], NULL, 10);

-- ---------- hybrid ----------
SELECT train('hybrid', 'hybrid', 'clicks', '{"core": "warp", "factors": 16, "iterations": 30, "seed": 5, "threads": 1,
              "item_features": "item_features", "user_features": "user_features"}');
SELECT algorithm, features, model_info(model_export(name, version)) ->> 'item_features' AS item_features, model_info(model_export(name, version)) ->> 'user_features' AS user_features,
       model_info(model_export(name, version)) ->> 'contexts' AS contexts, model_info(model_export(name, version)) ->> 'items' AS items, model_info(model_export(name, version)) ->> 'users' AS users
FROM models WHERE name = 'hybrid';
-- item cold start: ranking only the 16 new items, the user's category comes first
SELECT avg(((r.item_id - 1000) / 2 = u % 8)::int) > 0.8 AS new_items_of_liked_category_top2
FROM generate_series(1, 400, 3) u, recommend('hybrid', u, 2, candidates => ARRAY(SELECT 1000 + g FROM generate_series(0, 15) g)) r;
-- user cold start: a new user with a segment gets that category, reason "user features"
SELECT s AS segment, avg(((r.item_id - 1) % 8 = s)::int) >= 0.8 AS segment_category, min(r.reason) AS reason
FROM generate_series(0, 7) s, recommend('hybrid', 5000 + s, 5, candidates => ARRAY(SELECT item_id FROM catalog)) r
GROUP BY s ORDER BY s;
-- context: at night category 7 moves up
SELECT (SELECT avg(((item_id - 1) % 8 = 7)::int) FROM generate_series(1, 400, 5) u, recommend('hybrid', u, 10, context => 'night'))
     > (SELECT avg(((item_id - 1) % 8 = 7)::int) FROM generate_series(1, 400, 5) u, recommend('hybrid', u, 10, context => 'day')) AS night_favours_category_7,
       (SELECT min(reason) FROM recommend('hybrid', 10, 3, context => 'night')) AS reason,
       (SELECT min(reason) FROM recommend('hybrid', 10, 3, context => 'no such context')) AS unknown_context_reason,
       (SELECT min(reason) FROM recommend('hybrid', -1, 3, context => 'night')) AS unknown_user_in_context;
-- 0.1.0's six-argument calls still work
SELECT count(*) AS rows FROM recommend('hybrid', 10, 5, true, NULL, NULL);

-- feature minimisation: named feature sets left out, and recorded
SELECT train('hybrid_min', 'hybrid', 'clicks', '{"core": "warp", "factors": 16, "iterations": 5, "seed": 5, "threads": 1,
              "item_features": "item_features", "user_features": "user_features", "exclude_features": ["segment", "context"]}');
SELECT features, options -> 'exclude_features' AS excluded, model_info(model_export(name, version)) ->> 'contexts' AS contexts,
       model_info(model_export(name, version)) ->> 'user_features' AS user_features
FROM models WHERE name = 'hybrid_min';
SELECT train('als_noweight', 'als', 'clicks', '{"factors": 4, "iterations": 2, "exclude_features": ["weight"]}');
SELECT name, features FROM models WHERE name IN ('als_noweight', 'bpr') ORDER BY name;

-- ---------- explain ----------
-- ALS: implicit's decomposition, against numpy (test/reference/ref_explain.py): a model
-- of 0 iterations keeps pg_prng's starting factors, which the reference draws again
CREATE TABLE explain_inter (user_id bigint, item_id bigint, weight real);
\copy explain_inter FROM 'test/reference/explain_interactions.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_explain (user_id bigint, item_id bigint, past_item_id bigint, contribution float8);
\copy ref_explain FROM 'test/reference/explain_als.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT train('explain_als', 'als', 'explain_inter', '{"factors": 4, "iterations": 0, "seed": 11, "alpha": 2, "regularization": 0.001}');
SELECT count(*) AS contributions, count(e.contribution) AS explained,
       max(abs(e.contribution - r.contribution)) < 1e-5 AS equals_numpy, max(abs(r.contribution)) > 0.1 AS not_trivial
FROM ref_explain r LEFT JOIN LATERAL explain('explain_als', r.user_id, r.item_id, NULL) e ON e.past_item_id = r.past_item_id;
-- the contributions sum to the score of the user's exactly solved factors (fold-in)
WITH mine AS (SELECT array_agg(item_id ORDER BY item_id) AS items, array_agg(weight ORDER BY item_id) AS w FROM explain_inter WHERE user_id = 7),
     x AS (SELECT fold_in('explain_als', items, w) AS f FROM mine),
     y AS (SELECT embedding::real[] AS v FROM item_embeddings('explain_als') WHERE id = 110)
SELECT abs((SELECT sum(contribution) FROM explain('explain_als', 7, 110, NULL))
           - (SELECT sum(a * b) FROM x, y, unnest(x.f, y.v) AS t(a, b))) < 1e-5 AS sums_to_fold_in_score;
-- the k largest, largest first
SELECT rank, kind, past_item_id IS NOT NULL AS has_item, name FROM explain('explain_als', 7, 110, 3);
-- item-kNN: weight x similarity of past items, summing to the score
SELECT train('knn', 'itemknn', 'clicks', '{"neighbors": 20}');
SELECT abs(sum(contribution) - score('knn', 10, 163)) < 1e-4 AS knn_sums_to_score, bool_and(kind = 'past_item') AS past_items
FROM explain('knn', 10, 163, NULL);
-- hybrid: id, feature and context parts sharing each pairwise product; they sum to the score
SELECT abs(sum(contribution) - score('hybrid', 10, 3)) < 1e-4 AS hybrid_sums_to_score,
       array_agg(DISTINCT kind ORDER BY kind) AS kinds
FROM explain('hybrid', 10, 3, NULL);
SELECT array_agg(DISTINCT kind ORDER BY kind) AS kinds_in_context, count(*) FILTER (WHERE kind = 'context') AS context_rows
FROM explain('hybrid', 10, 3, NULL, 'night');
-- the hybrid's ALS core: against numpy (test/reference/ref_hybrid.py): scores of warm and
-- cold items, and explain's parts
CREATE TABLE hybrid_features (item_id bigint, feature text, weight real);
\copy hybrid_features FROM 'test/reference/hybrid_features.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE ref_hybrid (user_id bigint, item_id bigint, kind text, name text, contribution float8);
\copy ref_hybrid FROM 'test/reference/hybrid_als.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT train('hybrid_als', 'hybrid', 'explain_inter', '{"core": "als", "factors": 4, "iterations": 3, "cg_steps": 8, "seed": 11,
              "alpha": 2, "regularization": 0.5, "feature_regularization": 2, "threads": 1, "item_features": "hybrid_features"}');
SELECT count(*) AS scores, max(abs(score('hybrid_als', r.user_id, r.item_id) - r.contribution)) < 1e-4 AS scores_equal_numpy,
       max(abs(r.contribution)) > 0.1 AS not_trivial
FROM ref_hybrid r WHERE kind = 'score';
SELECT count(*) AS parts, count(e.contribution) AS explained, max(abs(e.contribution - r.contribution)) < 1e-4 AS parts_equal_numpy
FROM ref_hybrid r LEFT JOIN LATERAL explain('hybrid_als', r.user_id, r.item_id, NULL) e
  ON e.kind = r.kind AND e.name IS NOT DISTINCT FROM r.name
WHERE r.kind <> 'score';
-- without features it is ALS: the same start, the same solver
SELECT train('plain_als', 'als', 'clicks', '{"factors": 8, "iterations": 5, "seed": 2, "alpha": 1, "regularization": 0.1}');
SELECT train('hybrid_ids', 'hybrid', 'clicks', '{"core": "als", "factors": 8, "iterations": 5, "seed": 2, "alpha": 1, "regularization": 0.1}');
SELECT count(*) AS pairs, max(abs(score('plain_als', u, i) - score('hybrid_ids', u, i))) < 1e-6 AS ids_only_is_als
FROM generate_series(1, 400, 37) u, generate_series(1, 200, 7) i;
-- with categories and segments: cold items and cold users by their features, contexts not learned
SELECT train('hybrid_als_cs', 'hybrid', 'clicks', '{"core": "als", "factors": 16, "seed": 5, "threads": 1,
              "item_features": "item_features", "user_features": "user_features"}');
SELECT avg(((r.item_id - 1000) / 2 = u % 8)::int) > 0.8 AS als_core_new_items_of_liked_category_top2
FROM generate_series(1, 400, 3) u, recommend('hybrid_als_cs', u, 2, candidates => ARRAY(SELECT 1000 + g FROM generate_series(0, 15) g)) r;
SELECT avg(((r.item_id - 1) % 8 = s)::int) >= 0.8 AS als_core_segment_category, min(r.reason) AS reason
FROM generate_series(0, 7) s, recommend('hybrid_als_cs', 5000 + s, 5, candidates => ARRAY(SELECT item_id FROM catalog)) r;
SELECT model_info(model_export(name, version)) ->> 'contexts' AS als_core_contexts,
       (SELECT min(reason) FROM recommend('hybrid_als_cs', 10, 3, context => 'night')) AS reason_in_context
FROM models WHERE name = 'hybrid_als_cs';
SELECT abs(sum(contribution) - score('hybrid_als_cs', 10, 3)) < 1e-4 AS als_core_sums_to_score,
       array_agg(DISTINCT kind ORDER BY kind) AS kinds
FROM explain('hybrid_als_cs', 10, 3, NULL);
SELECT abs(sum(contribution) - score('bpr', 10, 3)) < 1e-5 AS bpr_sums_to_score, array_agg(kind ORDER BY kind) AS kinds
FROM explain('bpr', 10, 3, NULL);
-- unknown user or item: no rows; popularity: one row
SELECT (SELECT count(*) FROM explain('explain_als', -1, 110)) AS unknown_user,
       (SELECT count(*) FROM explain('explain_als', 7, -1)) AS unknown_item;
SELECT train('pop', 'popularity', 'clicks');
SELECT kind, contribution = score('pop', 1, 3) AS is_score FROM explain('pop', 1, 3);

-- ---------- editorial ----------
CREATE TABLE curated (item_id bigint, position integer, segment text);
INSERT INTO curated VALUES (50, 1, NULL), (60, 2, NULL), (70, 3, NULL),
  (5, 1, 'young'), (6, 2, 'young'), (6, 5, 'young'), (70, 1, 'returning');
CREATE TABLE segments AS SELECT u::bigint AS user_id, CASE WHEN u % 2 = 0 THEN 'young' ELSE 'returning' END AS segment
FROM generate_series(1, 10) u;
SELECT train('arm_a', 'editorial', 'curated', '{"segments": "segments"}');
SELECT algorithm, features, users, items, model_info(model_export(name, version)) ->> 'segments' AS segments FROM models WHERE name = 'arm_a';
SELECT 'user 2' AS who, item_id, score, rank, reason FROM recommend('arm_a', 2, 3)
UNION ALL SELECT 'user 3', item_id, score, rank, reason FROM recommend('arm_a', 3, 3)
UNION ALL SELECT 'unknown', item_id, score, rank, reason FROM recommend('arm_a', 99, 3)
UNION ALL SELECT 'context', item_id, score, rank, reason FROM recommend('arm_a', 99, 3, context => 'young')
UNION ALL SELECT 'exclude', item_id, score, rank, reason FROM recommend('arm_a', 99, 3, exclude => ARRAY[50]::bigint[])
ORDER BY 1, 4;
SELECT kind, name, contribution FROM explain('arm_a', 2, 6);
SELECT score('arm_a', 2, 6) AS listed, score('arm_a', 2, 50) AS not_on_the_users_list;
-- erasure: the user's segment goes with the user
SELECT model_info(model_without_user(model_export(name, version), 2)) ->> 'users' AS users_after FROM models WHERE name = 'arm_a';

-- ---------- erasure in the hybrid: the user's features go too ----------
SELECT (model_info(m) ->> 'users')::int AS users_after, (model_info(m) ->> 'pairs')::int < (SELECT count(DISTINCT (user_id, item_id)) FROM clicks) AS pairs_fewer
FROM (SELECT model_without_user(model_export(name, version), 10) AS m FROM models WHERE name = 'hybrid') t;

-- ---------- privacy_report ----------
CREATE TABLE clicks_train AS SELECT * FROM clicks WHERE (user_id * 7 + item_id) % 5 <> 0;
CREATE TABLE clicks_test AS SELECT DISTINCT user_id, item_id FROM clicks WHERE (user_id * 7 + item_id) % 5 = 0;
CREATE TEMP TABLE report AS SELECT * FROM privacy_report('clicks_train', 'clicks_test', '{2,Infinity}',
  '{"als": {"factors": 8, "iterations": 5}, "dp_als": {"contributions": 5}, "dp_popularity": {"contributions": 3},
    "hybrid": {"factors": 8, "iterations": 10, "item_features": "item_features"}, "ablations": [["category"]]}', 5, '{1,2}');
SELECT variant, epsilon, features_removed, runs, users, ndcg_at_k > 0 AS useful FROM report;
-- dp_als at epsilon = infinity is als, in the report too; the reference row is ALS's
SELECT (SELECT ndcg_at_k FROM report WHERE variant = 'als') = (SELECT ndcg_at_k FROM report WHERE variant = 'dp_als' AND epsilon = 'Infinity') AS infinity_is_als,
       (SELECT ndcg_vs_als FROM report WHERE variant = 'als') = 1 AS als_is_the_reference;
SELECT count(*) AS temporary_models_left FROM models WHERE name LIKE 'privacy_report_%';

SELECT count(personalize.drop_model(name)) > 0 AS dropped FROM (SELECT DISTINCT name FROM personalize.models EXCEPT SELECT name FROM models_before) m;
DROP SCHEMA hybrid_test CASCADE;
