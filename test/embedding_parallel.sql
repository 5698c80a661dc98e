-- Aggregates run in parallel with partial aggregation; top-K uses a top-N heapsort.
BEGIN;
SET search_path = personalize, public;
SELECT plan(7);

CREATE TABLE big AS
SELECT g AS id, ARRAY[sin(g), cos(g), (g % 97) / 97.0, 1.0]::float8[]::embedding(4) AS e
FROM generate_series(1, 200000) g;
ANALYZE big;

SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;

CREATE FUNCTION pg_temp.plan_of(query text, options text DEFAULT 'COSTS OFF') RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; result text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (' || options || ') ' || query LOOP result := result || line || E'\n'; END LOOP;
  RETURN result;
END $$;

SELECT matches(pg_temp.plan_of('SELECT avg(e), sum(e) FROM big'),
               'Finalize Aggregate.*Gather.*Partial Aggregate', 'avg/sum: Partial Aggregate under Gather');

CREATE TEMP TABLE parallel_result AS SELECT avg(e) AS a, sum(e) AS s FROM big;
SET LOCAL max_parallel_workers_per_gather = 0;
SELECT doesnt_match(pg_temp.plan_of('SELECT avg(e), sum(e) FROM big'), 'Gather', 'serial plan without Gather');
CREATE TEMP TABLE serial_result AS SELECT avg(e) AS a, sum(e) AS s FROM big;

-- float8 partial sums combine to the same float4 result
SELECT is((SELECT a FROM parallel_result), (SELECT a FROM serial_result), 'parallel avg equals serial avg');
SELECT is((SELECT s FROM parallel_result), (SELECT s FROM serial_result), 'parallel sum equals serial sum');
SELECT ok((SELECT max(abs(x - y)) < 1e-6 FROM unnest((SELECT a FROM serial_result)::float8[],
             (SELECT ARRAY[avg(sin(g)), avg(cos(g)), avg((g % 97) / 97.0), 1.0]::float8[]
              FROM generate_series(1, 200000) g)) AS t(x, y)), 'avg equals float8 avg of the elements');

-- ORDER BY distance LIMIT k: a bounded (top-N) sort, never a full sort
SELECT matches(pg_temp.plan_of('SELECT id FROM big ORDER BY e <#> ''[1,0,0,0]'' LIMIT 10'),
  'Limit.*Sort.*Seq Scan', 'top-K plan: Limit over Sort over Seq Scan');
SELECT matches(pg_temp.plan_of('SELECT id FROM big ORDER BY e <-> ''[0,0,0,0]'' LIMIT 10', 'ANALYZE, COSTS OFF, TIMING OFF'),
               'Sort Method: top-N heapsort', 'top-K sort is a top-N heapsort');

SELECT * FROM finish();
ROLLBACK;
