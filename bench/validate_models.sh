#!/usr/bin/env bash
# Recommendation quality on MovieLens (ml-latest-small), against the figures of
# implicit 0.6.2 on the same split. Needs a cluster with the extension
# installed (PG* variables, e.g. under pg_virtualenv); skips without the data.
#
#   bash bench/validate_models.sh
#
# Prints the ALS grid on the validation split (test rows unused), then test
# metrics for popularity, item-kNN, ALS with default options and ALS with the
# grid's best options.
#
# Split: rating >= 4 is an interaction (weight 1); users with >= 5 interactions
# keep their first int(0.8 n) by timestamp for training and the rest for test;
# users with fewer stay in training (41,010 training rows, 660 test users).
# The validation split repeats that rule inside the training rows.
#
# Metrics: personalize.ranking_metrics at 10 (doc/evaluation.md; checked against
# numpy in the tests and on this split by bench/validate_evaluation.sh). Seen
# (training) items are excluded from the recommendations.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${MOVIELENS:-../shared/data/movielens-small}
if [ ! -f "$data/ratings.csv" ]; then
  echo "validate_models: $data/ratings.csv not found, skipping"
  exit 0
fi
data=$(cd "$data" && pwd)
db=pgp_validate_models
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

psql <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_personalize;
CREATE TABLE ratings (user_id bigint, item_id bigint, rating real, ts bigint);
\copy ratings FROM '$data/ratings.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE pos AS SELECT user_id, item_id, ts FROM ratings WHERE rating >= 4;
-- position by time within the user (ties: item id), and the user's count
CREATE TABLE ranked AS
SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id) AS pos,
       count(*) OVER (PARTITION BY user_id) AS n FROM pos;
CREATE TABLE train AS SELECT user_id, item_id, 1::real AS weight, pos, n FROM ranked
  WHERE n < 5 OR pos <= floor(0.8 * n);
CREATE TABLE test AS SELECT user_id, item_id FROM ranked WHERE n >= 5 AND pos > floor(0.8 * n);
-- validation: the same rule inside the training rows of the test users
CREATE TABLE train_fit AS SELECT user_id, item_id, weight FROM
  (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY pos) AS p2, count(*) OVER (PARTITION BY user_id) AS n2
   FROM train) t WHERE n2 < 5 OR p2 <= floor(0.8 * n2);
CREATE TABLE valid AS SELECT user_id, item_id FROM train EXCEPT SELECT user_id, item_id FROM train_fit;
ANALYZE;

-- metrics of a model for the users of a held-out table (seen items excluded)
CREATE FUNCTION metrics(model text, heldout regclass, seen regclass,
  OUT users bigint, OUT p10 float8, OUT r10 float8, OUT ndcg10 float8) LANGUAGE plpgsql AS \$\$
BEGIN
  DROP TABLE IF EXISTS model_recs;
  EXECUTE format(\$q\$
    CREATE TEMP TABLE model_recs AS
    WITH u AS (SELECT DISTINCT user_id FROM %1\$s),
    s AS (SELECT user_id, array_agg(item_id) AS items FROM %2\$s GROUP BY user_id)
    SELECT u.user_id, x.item_id, x.rank FROM u LEFT JOIN s USING (user_id),
    LATERAL personalize.recommend(%3\$L, u.user_id, 10, true, NULL, s.items) x\$q\$, heldout, seen, model);
  SELECT m.users, m.precision_at_k, m.recall_at_k, m.ndcg_at_k INTO users, p10, r10, ndcg10
  FROM personalize.ranking_metrics('model_recs', heldout::text, 10) m;
END \$\$;
SELECT count(*) AS training_rows FROM train;
SELECT count(DISTINCT user_id) AS test_users FROM test;
SQL

echo "== ALS grid on the validation split (train_fit -> valid); test rows unused"
  psql -At -F ' | ' <<'SQL'
SET client_min_messages = warning;
CREATE TABLE grid_result (alpha float8, regularization float8, p10 float8, r10 float8, ndcg10 float8);
DO $$
DECLARE a float8; r float8; m record;
BEGIN
  FOREACH a IN ARRAY '{0.25,0.5,1,2,5}'::float8[] LOOP
    FOREACH r IN ARRAY '{0.05,0.5,2,10,30,100}'::float8[] LOOP
      PERFORM personalize.train('v', 'als', 'train_fit', jsonb_build_object('alpha', a, 'regularization', r));
      SELECT * INTO m FROM metrics('v', 'valid', 'train_fit');
      INSERT INTO grid_result VALUES (a, r, m.p10, m.r10, m.ndcg10);
    END LOOP;
  END LOOP;
END $$;
SELECT 'alpha | regularization | P@10 | R@10 | NDCG@10';
SELECT alpha, regularization, round(p10::numeric, 4), round(r10::numeric, 4), round(ndcg10::numeric, 4)
FROM grid_result ORDER BY ndcg10 DESC LIMIT 8;
SQL

echo "== MovieLens small, time split, 660 test users: test metrics (defaults unless stated)"
psql -At -F ' | ' <<'SQL'
SET client_min_messages = warning;
SELECT personalize.train('ml_pop', 'popularity', 'train') \g /dev/null
SELECT personalize.train('ml_knn', 'itemknn', 'train', '{"neighbors": 100}') \g /dev/null
SELECT personalize.train('ml_als', 'als', 'train') \g /dev/null
SELECT personalize.train('ml_als_tuned', 'als', 'train', jsonb_build_object('alpha', alpha, 'regularization', regularization))
FROM grid_result ORDER BY ndcg10 DESC LIMIT 1 \g /dev/null
CREATE TEMP TABLE baseline (model text, ndcg10 float8);
-- implicit 0.6.2 on this split (figures from the issue)
INSERT INTO baseline VALUES ('ml_pop', 0.064), ('ml_knn', 0.085), ('ml_als', 0.098), ('ml_als_tuned', 0.098);
SELECT 'model | options | users | P@10 | R@10 | NDCG@10 | implicit NDCG@10 | ratio';
SELECT m.name, m.options, x.users, round(x.p10::numeric, 4), round(x.r10::numeric, 4), round(x.ndcg10::numeric, 4),
       b.ndcg10, round((x.ndcg10 / b.ndcg10)::numeric, 2)
FROM personalize.models m JOIN baseline b ON b.model = m.name, LATERAL metrics(m.name, 'test', 'train') x
ORDER BY m.name;
SQL
