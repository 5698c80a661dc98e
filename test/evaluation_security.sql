-- The metrics read user data as the caller: row-level security decides what is evaluated,
-- and classification_metrics runs as a parallel (partial) aggregate.
BEGIN;
SET search_path = public, personalize;
SELECT plan(6);

CREATE ROLE eval_analyst;
GRANT USAGE ON SCHEMA personalize TO eval_analyst;
CREATE TABLE recs (user_id bigint, item_id bigint, rank int);
CREATE TABLE truth (user_id bigint, item_id bigint);
INSERT INTO recs SELECT u, i, i FROM generate_series(1, 4) u, generate_series(1, 5) i;
INSERT INTO truth SELECT u, u FROM generate_series(1, 4) u;        -- user u likes item u (rank u)
GRANT SELECT ON recs, truth TO eval_analyst;
ALTER TABLE truth ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_odd ON truth FOR SELECT TO eval_analyst USING (user_id % 2 = 1);

SELECT is((SELECT users FROM ranking_metrics('recs', 'truth', 5)), 4::bigint, 'owner sees every user');
SET LOCAL ROLE eval_analyst;
SELECT is((SELECT users FROM ranking_metrics('recs', 'truth', 5)), 2::bigint, 'analyst sees only rows the policy allows');
SELECT is((SELECT array_agg(user_id ORDER BY user_id) FROM ranking_metrics_by_user('recs', 'truth', 5)),
          ARRAY[1, 3]::bigint[], 'per-user rows too');
SELECT is((SELECT count(*) FROM split_by_user_time('SELECT user_id, item_id, now() AS occurred_at FROM truth')),
          2::bigint, 'splits too');
RESET ROLE;

CREATE TABLE scored AS SELECT (g % 3 = 0) AS label, (g % 1000) / 1000.0 AS score FROM generate_series(1, 300000) g;
ANALYZE scored;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; result text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP result := result || line || E'\n'; END LOOP;
  RETURN result;
END $$;
SELECT matches(pg_temp.plan_of('SELECT classification_metrics(label, score) FROM scored'),
               'Finalize Aggregate.*Gather.*Partial Aggregate', 'classification_metrics: partial aggregation under Gather');
CREATE TEMP TABLE parallel_result AS SELECT classification_metrics(label, score) AS m FROM scored;
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT is((SELECT classification_metrics(label, score) FROM scored), (SELECT m FROM parallel_result),
          'parallel result equals the serial one');

SELECT * FROM finish();
ROLLBACK;
