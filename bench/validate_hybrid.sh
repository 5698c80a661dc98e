#!/usr/bin/env bash
# Hybrid and BPR quality on MovieLens (ml-latest-small), against ALS on the same
# splits. Needs a cluster with the extension installed (PG* variables); skips
# without the data. Heavy (tens of trainings): run under flock /work/tools/bench.lock.
#
#   bash bench/validate_hybrid.sh            # SEEDS="1 2 3" by default
#
# 1. Per-user time split, as bench/validate_models.sh: rating >= 4 is an
#    interaction; users with >= 5 keep their first int(0.8 n) by time for
#    training (41,010 rows, 660 test users); validation repeats the rule inside
#    the training rows. Item features: genres ("genre:Comedy"), decade of the
#    title's year ("decade:1990"), and tags ("tag:..."), a tag counting only
#    when it is no later than its author's last training interaction (so no
#    held-out interaction leaks through it). Context of an interaction:
#    the year it happened ("year:2015"); a user is served in the context of
#    the last training interaction (what a live system knows: now).
#    ALS, BPR and hybrid are tuned on the validation split (mean NDCG@10 over
#    the seeds), retrained on the training part, and measured on test: the mean
#    over SEEDS and each seed. The hybrid's grid covers both cores (WARP with
#    contexts; ALS with the feature set, all or genres and decades only, and
#    the feature factors' penalty); the better on validation is measured.
# 2. Item cold start: 10% of the items with interactions (chosen by
#    md5(seed || item)), all their interactions moved to test; models rank only
#    those items. The hybrid (genres and decades; no tags, which are
#    interactions) against a genre-profile baseline (cosine between the user's
#    genre counts over training items and the item's genres) and random order
#    (mean of 5 random permutations). Tuned on a cold split carved from the
#    training items the same way.
# 3. personalize.privacy_report on the time split: ALS, popularity, dp_als and
#    dp_popularity at epsilon 0.5 ... 10 and infinity, the hybrid and its
#    feature ablations, NDCG@10 averaged over 5 seeds.
#
# Metrics: personalize.ranking_metrics at 10, training items excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${MOVIELENS:-../shared/data/movielens-small}
seeds=${SEEDS:-1 2 3}
if [ ! -f "$data/ratings.csv" ]; then
  echo "validate_hybrid: $data/ratings.csv not found, skipping"
  exit 0
fi
data=$(cd "$data" && pwd)
db=pgp_validate_hybrid
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
seed_array="{$(echo $seeds | tr ' ' ',')}"

psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
CREATE TABLE ratings (user_id bigint, item_id bigint, rating real, ts bigint);
\copy ratings FROM '$data/ratings.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE movies (item_id bigint, title text, genres text);
\copy movies FROM '$data/movies.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE tags (user_id bigint, item_id bigint, tag text, ts bigint);
\copy tags FROM '$data/tags.csv' WITH (FORMAT csv, HEADER)

-- ---------- 1. time split ----------
CREATE TABLE pos AS SELECT user_id, item_id, ts FROM ratings WHERE rating >= 4;
CREATE TABLE ranked AS
SELECT user_id, item_id, ts, row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id) AS pos,
       count(*) OVER (PARTITION BY user_id) AS n FROM pos;
CREATE TABLE train_all AS SELECT user_id, item_id, ts, pos FROM ranked WHERE n < 5 OR pos <= floor(0.8 * n);
CREATE TABLE test AS SELECT user_id, item_id FROM ranked WHERE n >= 5 AND pos > floor(0.8 * n);
CREATE TABLE fit_all AS SELECT user_id, item_id, ts FROM
  (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY pos) AS p2, count(*) OVER (PARTITION BY user_id) AS n2
   FROM train_all) t WHERE n2 < 5 OR p2 <= floor(0.8 * n2);
CREATE TABLE valid AS SELECT user_id, item_id FROM train_all EXCEPT SELECT user_id, item_id FROM fit_all;
-- training tables: weight 1, context = year of the interaction
CREATE TABLE train AS SELECT user_id, item_id, 1::real AS weight,
  'year:' || extract(year FROM to_timestamp(ts))::int AS context FROM train_all;
CREATE TABLE fit AS SELECT user_id, item_id, 1::real AS weight,
  'year:' || extract(year FROM to_timestamp(ts))::int AS context FROM fit_all;
CREATE TABLE serve_test AS SELECT DISTINCT ON (user_id) user_id, 'year:' || extract(year FROM to_timestamp(ts))::int AS context
  FROM train_all ORDER BY user_id, ts DESC;
CREATE TABLE serve_valid AS SELECT DISTINCT ON (user_id) user_id, 'year:' || extract(year FROM to_timestamp(ts))::int AS context
  FROM fit_all ORDER BY user_id, ts DESC;

-- item features
CREATE TABLE content AS
SELECT item_id, 'genre:' || g AS feature FROM movies, unnest(string_to_array(genres, '|')) g WHERE g <> '(no genres listed)'
UNION ALL
SELECT item_id, 'decade:' || (substring(title from '\((\d{4})\)\s*$')::int / 10 * 10) FROM movies WHERE title ~ '\(\d{4}\)\s*$';
-- tags made by a user no later than their last interaction of the training part
CREATE TABLE features_test AS SELECT * FROM content UNION
SELECT t.item_id, 'tag:' || lower(t.tag) FROM tags t JOIN (SELECT user_id, max(ts) AS last FROM train_all GROUP BY 1) c USING (user_id)
WHERE t.ts <= c.last;
CREATE TABLE features_valid AS SELECT * FROM content UNION
SELECT t.item_id, 'tag:' || lower(t.tag) FROM tags t JOIN (SELECT user_id, max(ts) AS last FROM fit_all GROUP BY 1) c USING (user_id)
WHERE t.ts <= c.last;

-- ---------- 2. item cold start ----------
CREATE TABLE cold_items AS
SELECT item_id FROM (SELECT DISTINCT item_id FROM pos) i ORDER BY md5('2026:' || item_id), item_id
LIMIT (SELECT ceil(0.1 * count(DISTINCT item_id)) FROM pos);
CREATE TABLE cold_train AS SELECT user_id, item_id, 1::real AS weight FROM pos WHERE item_id NOT IN (SELECT item_id FROM cold_items);
CREATE TABLE cold_test AS SELECT user_id, item_id FROM pos WHERE item_id IN (SELECT item_id FROM cold_items)
  AND user_id IN (SELECT user_id FROM cold_train);
-- validation: the same carve inside the cold-start training rows
CREATE TABLE cold_valid_items AS
SELECT item_id FROM (SELECT DISTINCT item_id FROM cold_train) i ORDER BY md5('2027:' || item_id), item_id
LIMIT (SELECT ceil(0.1 * count(DISTINCT item_id)) FROM cold_train);
CREATE TABLE cold_fit AS SELECT * FROM cold_train WHERE item_id NOT IN (SELECT item_id FROM cold_valid_items);
CREATE TABLE cold_valid AS SELECT user_id, item_id FROM cold_train WHERE item_id IN (SELECT item_id FROM cold_valid_items)
  AND user_id IN (SELECT user_id FROM cold_fit);
CREATE TABLE seeds AS SELECT unnest('$seed_array'::int[]) AS seed;
ANALYZE;

-- metrics of a model for the users of a held-out table: seen items excluded,
-- in each user's serving context, over the candidates when given
CREATE FUNCTION metrics(model text, heldout regclass, seen regclass, contexts regclass DEFAULT NULL, candidates regclass DEFAULT NULL,
  OUT users bigint, OUT p10 float8, OUT r10 float8, OUT ndcg10 float8) LANGUAGE plpgsql AS \$\$
BEGIN
  DROP TABLE IF EXISTS model_recs;
  EXECUTE format(\$q\$
    CREATE TEMP TABLE model_recs AS
    WITH u AS (SELECT DISTINCT user_id FROM %1\$s),
    s AS (SELECT user_id, array_agg(item_id) AS items FROM %2\$s GROUP BY user_id)
    SELECT u.user_id, x.item_id, x.rank FROM u LEFT JOIN s USING (user_id) LEFT JOIN %4\$s c USING (user_id),
    LATERAL personalize.recommend(%3\$L, u.user_id, 10, true, %5\$s, s.items, c.context) x\$q\$,
    heldout, seen, model, coalesce(contexts::text, '(SELECT NULL::bigint AS user_id, NULL::text AS context)'),
    CASE WHEN candidates IS NULL THEN 'NULL' ELSE format('(SELECT array_agg(item_id) FROM %s)', candidates) END);
  SELECT m.users, m.precision_at_k, m.recall_at_k, m.ndcg_at_k INTO users, p10, r10, ndcg10
  FROM personalize.ranking_metrics('model_recs', heldout::text, 10) m;
END \$\$;

-- mean validation NDCG@10 of one configuration over the seeds
CREATE TABLE grid (task text, algorithm text, options jsonb, seed int, ndcg10 float8);
CREATE FUNCTION tune(task text, algorithm text, source text, options jsonb, heldout regclass, seen regclass,
                     contexts regclass, candidates regclass, seeds int[]) RETURNS int LANGUAGE plpgsql AS \$\$
DECLARE s int;
BEGIN
  FOREACH s IN ARRAY seeds LOOP
    PERFORM personalize.train('tuning', algorithm, source, options || jsonb_build_object('seed', s, 'threads', 1));
    INSERT INTO grid SELECT task, algorithm, options, s, m.ndcg10 FROM metrics('tuning', heldout, seen, contexts, candidates) m;
  END LOOP;
  RETURN cardinality(seeds);
END \$\$;
CREATE FUNCTION best(task_name text, algorithm_name text) RETURNS jsonb LANGUAGE sql AS \$\$
  SELECT options FROM grid WHERE task = task_name AND algorithm = algorithm_name
  GROUP BY options ORDER BY avg(ndcg10) DESC, options::text LIMIT 1
\$\$;
SELECT (SELECT count(*) FROM train) AS training_rows, (SELECT count(DISTINCT user_id) FROM test) AS test_users,
       (SELECT count(*) FROM features_test) AS item_feature_rows, (SELECT count(DISTINCT feature) FROM features_test) AS features,
       (SELECT count(*) FROM cold_items) AS cold_items, (SELECT count(DISTINCT user_id) FROM cold_test) AS cold_test_users;
SQL

echo "== 1. tuning on the validation split (fit -> valid), seeds $seed_array; test rows unused"
psql -At -F ' | ' <<'SQL'
SET client_min_messages = warning;
SELECT sum(tune('time', 'als', 'fit', jsonb_build_object('alpha', a, 'regularization', r), 'valid', 'fit', NULL, NULL, '{1}')) AS als_trainings
FROM unnest('{0.25,0.5,1,2}'::float8[]) a, unnest('{0.5,2,10,30}'::float8[]) r;
SELECT sum(tune('time', 'bpr', 'fit', jsonb_build_object('learning_rate', lr, 'regularization', r, 'iterations', it),
            'valid', 'fit', NULL, NULL, (SELECT array_agg(seed) FROM seeds))) AS bpr_trainings
FROM unnest('{0.05,0.1}'::float8[]) lr, unnest('{0.01,0.03}'::float8[]) r, unnest('{100,200}'::int[]) it;
SELECT sum(tune('time', 'hybrid', 'fit', jsonb_build_object('core', 'warp', 'learning_rate', 0.02, 'regularization', r, 'context_regularization', 0.3,
            'iterations', it, 'average', 0.25, 'negatives', n, 'item_features', 'features_valid'),
            'valid', 'fit', 'serve_valid', NULL, (SELECT array_agg(seed) FROM seeds))) AS hybrid_trainings
FROM unnest('{0.0003,0.001}'::float8[]) r, unnest('{30,60}'::int[]) it, unnest('{interacted,all}'::text[]) n;
-- the ALS core: ALS's grid around its best, the feature factors' penalty, and
-- the feature set (all, or genres and decades only: "content")
SELECT sum(tune('time', 'hybrid', 'fit', jsonb_build_object('core', 'als', 'alpha', a, 'regularization', r,
            'feature_regularization', mu, 'item_features', fs),
            'valid', 'fit', 'serve_valid', NULL, (SELECT array_agg(seed) FROM seeds))) AS hybrid_als_trainings
FROM unnest('{0.25,0.5}'::float8[]) a, unnest('{5,10,20}'::float8[]) r, unnest('{10,30,100}'::float8[]) mu,
     unnest('{features_valid,content}'::text[]) fs;
SELECT 'algorithm | options | validation NDCG@10 (mean over seeds)';
SELECT algorithm, options, round(avg(ndcg10)::numeric, 4) FROM grid WHERE task = 'time'
GROUP BY algorithm, options ORDER BY algorithm, avg(ndcg10) DESC;
SELECT 'best hybrid per core | options | validation NDCG@10';
SELECT DISTINCT ON (coalesce(options->>'core', 'warp')) coalesce(options->>'core', 'warp'), options, round(avg(ndcg10)::numeric, 4)
FROM grid WHERE task = 'time' AND algorithm = 'hybrid' GROUP BY options
ORDER BY coalesce(options->>'core', 'warp'), avg(ndcg10) DESC;
SQL

echo "== 1. MovieLens small, time split, 660 test users: test NDCG@10 of the tuned models"
psql -At -F ' | ' <<'SQL'
SET client_min_messages = warning;
CREATE TABLE result (model text, seed int, users bigint, p10 float8, r10 float8, ndcg10 float8);
-- the feature sets of the tuned hybrid's source, and the context
CREATE FUNCTION all_sets() RETURNS jsonb LANGUAGE sql AS $f$
  SELECT jsonb_agg(s ORDER BY s DESC) FROM (SELECT 'context' AS s UNION
    SELECT DISTINCT split_part(feature, ':', 1) FROM content
    UNION SELECT 'tag' WHERE best('time', 'hybrid')->>'item_features' = 'features_valid') t
$f$;
DO $$
DECLARE s int; a text;
BEGIN
  FOREACH s IN ARRAY (SELECT array_agg(seed) FROM seeds) LOOP
    FOREACH a IN ARRAY ARRAY['als', 'bpr', 'hybrid'] LOOP
      PERFORM personalize.train('test_' || a, a, 'train',
        replace(best('time', a)::text, 'features_valid', 'features_test')::jsonb || jsonb_build_object('seed', s, 'threads', 1));
      INSERT INTO result SELECT a, s, m.* FROM metrics('test_' || a, 'test', 'train', CASE WHEN a = 'hybrid' THEN 'serve_test' END::regclass) m;
    END LOOP;
  END LOOP;
  -- the hybrid without its content and context (feature minimisation)
  FOREACH s IN ARRAY (SELECT array_agg(seed) FROM seeds) LOOP
    PERFORM personalize.train('test_hybrid_ids', 'hybrid', 'train',
      replace(best('time', 'hybrid')::text, 'features_valid', 'features_test')::jsonb
      || jsonb_build_object('seed', s, 'threads', 1, 'exclude_features', all_sets()));
    INSERT INTO result SELECT 'hybrid without its features and context (ids only)', s, m.* FROM metrics('test_hybrid_ids', 'test', 'train') m;
  END LOOP;
END $$;
SELECT 'model | options (tuned) | users | P@10 | R@10 | NDCG@10 mean | per seed | / ALS';
SELECT r.model, coalesce(best('time', r.model), '{}'), max(r.users), round(avg(r.p10)::numeric, 4), round(avg(r.r10)::numeric, 4),
       round(avg(r.ndcg10)::numeric, 4), array_agg(round(r.ndcg10::numeric, 4) ORDER BY r.seed),
       round((avg(r.ndcg10) / (SELECT avg(ndcg10) FROM result WHERE model = 'als'))::numeric, 3)
FROM result r GROUP BY r.model ORDER BY avg(r.ndcg10) DESC;
SQL

echo "== 2. item cold start: tuning on the cold validation split"
psql -At -F ' | ' <<'SQL'
SET client_min_messages = warning;
SELECT sum(tune('cold', 'hybrid', 'cold_fit', jsonb_build_object('core', 'warp', 'learning_rate', lr, 'regularization', 0.001, 'iterations', 30,
            'average', 0.25, 'normalize', nz, 'negatives', n, 'item_features', 'content'),
            'cold_valid', 'cold_fit', NULL, 'cold_valid_items', (SELECT array_agg(seed) FROM seeds))) AS cold_trainings
FROM unnest('{0.02,0.05}'::float8[]) lr, unnest('{false,true}'::bool[]) nz, unnest('{interacted,all}'::text[]) n;
SELECT sum(tune('cold', 'hybrid', 'cold_fit', jsonb_build_object('core', 'als', 'alpha', 0.25, 'regularization', 10,
            'feature_regularization', mu, 'normalize', nz, 'item_features', 'content'),
            'cold_valid', 'cold_fit', NULL, 'cold_valid_items', (SELECT array_agg(seed) FROM seeds))) AS cold_als_trainings
FROM unnest('{1,10}'::float8[]) mu, unnest('{false,true}'::bool[]) nz;
SELECT 'options | validation NDCG@10 (mean over seeds)';
SELECT options, round(avg(ndcg10)::numeric, 4) FROM grid WHERE task = 'cold' GROUP BY options ORDER BY avg(ndcg10) DESC LIMIT 5;
SQL

echo "== 2. item cold start: $(psql -At -c "SELECT count(*) FROM cold_items") cold items, $(psql -At -c "SELECT count(DISTINCT user_id) FROM cold_test") users; only cold items ranked"
psql -At -F ' | ' <<'SQL'
SET client_min_messages = warning;
CREATE TABLE cold_result (model text, seed int, ndcg10 float8);
DO $$
DECLARE s int;
BEGIN
  FOREACH s IN ARRAY (SELECT array_agg(seed) FROM seeds) LOOP
    PERFORM personalize.train('cold_hybrid', 'hybrid', 'cold_train', best('cold', 'hybrid') || jsonb_build_object('seed', s, 'threads', 1));
    INSERT INTO cold_result SELECT 'hybrid', s, m.ndcg10 FROM metrics('cold_hybrid', 'cold_test', 'cold_train', NULL, 'cold_items') m;
  END LOOP;
END $$;
-- genre profile: cosine between the user's genre counts (training items) and the item's genres
CREATE TEMP TABLE genre AS SELECT item_id, feature FROM content WHERE feature LIKE 'genre:%';
CREATE TEMP TABLE profile AS SELECT t.user_id, g.feature, count(*)::float8 AS w FROM cold_train t JOIN genre g USING (item_id) GROUP BY 1, 2;
CREATE TEMP TABLE profile_norm AS SELECT user_id, sqrt(sum(w * w)) AS n FROM profile GROUP BY 1;
CREATE TEMP TABLE item_norm AS SELECT item_id, sqrt(count(*)) AS n FROM genre WHERE item_id IN (SELECT item_id FROM cold_items) GROUP BY 1;
CREATE TEMP TABLE genre_scores AS
SELECT p.user_id, g.item_id, sum(p.w) / (pn.n * i.n) AS score
FROM profile p JOIN genre g USING (feature) JOIN item_norm i USING (item_id) JOIN profile_norm pn USING (user_id)
WHERE p.user_id IN (SELECT user_id FROM cold_test) GROUP BY p.user_id, g.item_id, pn.n, i.n;
DROP TABLE IF EXISTS model_recs;
CREATE TEMP TABLE model_recs AS
SELECT user_id, item_id, rank FROM (
  SELECT u.user_id, c.item_id, row_number() OVER (PARTITION BY u.user_id ORDER BY coalesce(s.score, 0) DESC, c.item_id) AS rank
  FROM (SELECT DISTINCT user_id FROM cold_test) u CROSS JOIN cold_items c
  LEFT JOIN genre_scores s ON s.user_id = u.user_id AND s.item_id = c.item_id) x WHERE rank <= 10;
INSERT INTO cold_result SELECT 'genre profile (cosine)', 0, ndcg_at_k FROM personalize.ranking_metrics('model_recs', 'cold_test', 10);
-- random order: 5 seeded permutations
DO $$
DECLARE s int;
BEGIN
  FOR s IN 1..5 LOOP
    DROP TABLE IF EXISTS model_recs;
    CREATE TEMP TABLE model_recs AS
    SELECT user_id, item_id, rank FROM (
      SELECT u.user_id, c.item_id, row_number() OVER (PARTITION BY u.user_id ORDER BY md5(s || ':' || u.user_id || ':' || c.item_id)) AS rank
      FROM (SELECT DISTINCT user_id FROM cold_test) u CROSS JOIN cold_items c) x WHERE rank <= 10;
    INSERT INTO cold_result SELECT 'random order', s, ndcg_at_k FROM personalize.ranking_metrics('model_recs', 'cold_test', 10);
  END LOOP;
END $$;
SELECT 'model | NDCG@10 mean | per seed | hybrid / model';
SELECT model, round(avg(ndcg10)::numeric, 4), array_agg(round(ndcg10::numeric, 4) ORDER BY seed),
       round(((SELECT avg(ndcg10) FROM cold_result WHERE model = 'hybrid') / avg(ndcg10))::numeric, 2)
FROM cold_result GROUP BY model ORDER BY avg(ndcg10) DESC;
SQL

echo "== 3. privacy_report on the time split: NDCG@10, mean of 5 seeds; ALS and the hybrid as tuned above;"
echo "==    dp_als with alpha 0.25, regularization 1, 2 iterations, 50 contributions (chosen on the validation"
echo "==    split at epsilon 10); dp_popularity with the movie list as its public catalog, 10 contributions"
psql -At -F ' | ' <<'SQL'
SET client_min_messages = warning;
CREATE TABLE movie_catalog AS SELECT item_id FROM movies;
SELECT 'variant | epsilon | removed | runs | users | NDCG@10 | P@10 | R@10 | NDCG / ALS';
SELECT variant, epsilon, features_removed, runs, users, round(ndcg_at_k::numeric, 4), round(precision_at_k::numeric, 4),
       round(recall_at_k::numeric, 4), round(ndcg_vs_als::numeric, 3)
FROM personalize.privacy_report('train', 'test', '{0.5,1,2,5,10,Infinity}',
  jsonb_build_object(
    'als', best('time', 'als'),
    'dp_als', '{"alpha": 0.25, "regularization": 1, "iterations": 2, "contributions": 50}'::jsonb,
    'dp_popularity', '{"contributions": 10, "catalog": "movie_catalog"}'::jsonb,
    'hybrid', replace(best('time', 'hybrid')::text, 'features_valid', 'features_test')::jsonb || '{"threads": 1}',
    'ablations', (SELECT jsonb_agg(jsonb_build_array(s)) FROM jsonb_array_elements_text(all_sets()) s) || jsonb_build_array(all_sets()),
    'contexts', 'serve_test'),
  10, '{1,2,3,4,5}');
SQL
