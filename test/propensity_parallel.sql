-- The logistic pass and the uplift sample run as parallel partial aggregates, predict runs in
-- parallel workers, and models equal the serial ones; training, scoring and calibration read
-- the source as the caller (row-level security).
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(18);

CREATE TABLE big AS
SELECT g AS id, (g % 97) / 10.0 AS a, ((g * 7919) % 101)::float8 / 25 AS b, ARRAY[(g % 13)::float8, (g % 17)::float8] AS v,
       (ARRAY['x', 'y', 'z'])[g % 3 + 1] AS c, ((g * 31) % 7 < 3) AS label, g % 2 = 0 AS treated
FROM generate_series(1, 200000) g;
ANALYZE big;

CREATE FUNCTION pg_temp.plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; result text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP result := result || line || E'\n'; END LOOP;
  RETURN result;
END $$;

SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT matches(pg_temp.plan_of($$SELECT logistic_pass('\x00'::bytea, label::int, 1, a, b, v, c) FROM big$$),
               'Finalize Aggregate.*Gather.*Partial Aggregate', 'logistic_pass: Partial Aggregate under Gather');
SELECT is((SELECT typname::text FROM pg_aggregate a JOIN pg_type t ON t.oid = a.aggtranstype
           WHERE aggfnoid = 'personalize.logistic_pass'::regproc), '_float8', 'logistic_pass state is double precision[] (Citus)');
SELECT matches(pg_temp.plan_of($$SELECT uplift_sample(label, treated, a) FROM big$$),
               'Finalize Aggregate.*Gather.*Partial Aggregate', 'uplift_sample: Partial Aggregate under Gather');

SELECT lives_ok($$SELECT train_classifier('par', 'big', 'label', '{a,b,v,c}', '{"standardize": true}')$$, 'parallel training');
SELECT lives_ok($$SELECT train_uplift('par_up', 'big', 'label', 'treated', '{a,b,c}')$$, 'parallel uplift training');
SELECT matches(pg_temp.plan_of($$SELECT sum(predict('par', x)) FROM big x$$), 'Gather.*Partial Aggregate.*Parallel Seq Scan',
               'predict runs in parallel workers');
CREATE TEMP TABLE par_scores AS
SELECT sum(predict('par', x)) AS p, sum(predict('par', a, b, v, c)) AS q, sum(uplift_score('par_up', x)) AS u FROM big x;
CREATE TEMP TABLE par_sample AS SELECT uplift_summary(uplift_sample(label, treated, a))::text AS s FROM big;

SET LOCAL max_parallel_workers_per_gather = 0;
SELECT lives_ok($$SELECT train_classifier('ser', 'big', 'label', '{a,b,v,c}', '{"standardize": true}')$$, 'serial training');
-- the same sums in another order: equal to rounding
SELECT ok((SELECT bool_and(abs(p.coefficient - s.coefficient) <= 1e-10 * abs(s.coefficient) + 1e-14
                           AND abs(p.std_error - s.std_error) <= 1e-10 * s.std_error)
           FROM coefficients('par') p JOIN coefficients('ser') s USING (term)), 'parallel model equals the serial one');
SELECT ok((SELECT abs(p - (SELECT sum(predict('par', x)) FROM big x)) <= 1e-9 * p FROM par_scores), 'parallel predict sums as serial');
SELECT ok((SELECT p = q FROM par_scores), 'whole-row and positional predict agree');
SELECT is((SELECT s FROM par_sample), (SELECT uplift_summary(uplift_sample(label, treated, a))::text FROM big),
          'parallel uplift sample gives the serial read-out');

-- row-level security: the analyst trains, scores and calibrates on the rows the policy allows
CREATE ROLE pgp_propensity_analyst;
GRANT USAGE ON SCHEMA personalize TO pgp_propensity_analyst;
GRANT SELECT, INSERT, UPDATE ON personalize.models TO pgp_propensity_analyst;
GRANT SELECT, INSERT ON personalize.model_chunks TO pgp_propensity_analyst;
GRANT SELECT ON big TO pgp_propensity_analyst;
ALTER TABLE big ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_first ON big FOR SELECT TO pgp_propensity_analyst USING (id <= 50000);
SET LOCAL ROLE pgp_propensity_analyst;
SELECT lives_ok($$SELECT train_classifier('rls', 'big', 'label', '{a,b,c}')$$, 'the analyst trains');
SELECT is((SELECT count(*) FROM predictions('rls', 'big', 'id')), 50000::bigint, 'predictions see only the allowed rows');
-- ownership: the analyst may not store a version of, or calibrate, a model another role owns
SELECT throws_ok($$SELECT train_classifier('par', 'big', 'label', '{a,b}')$$, '42501', 'must be owner of model "par"',
                 'no version under another owner''s name');
SELECT throws_ok($$SELECT calibrate('par', 'big')$$, '42501', 'must be owner of model "par"', 'no calibration of another owner''s model');
SELECT lives_ok($$SELECT calibrate('rls', 'big', 'platt')$$, 'the analyst calibrates its own model');
RESET ROLE;
-- serving needs only personalize_service (EXECUTE and SELECT on personalize.models)
CREATE ROLE pgp_propensity_service;
GRANT personalize_service TO pgp_propensity_service;
SET LOCAL ROLE pgp_propensity_service;
SELECT ok((SELECT personalize.predict('par', 1.0, 2.0, '{1,2}'::float8[], 'x') BETWEEN 0 AND 1
              AND personalize.uplift_score('par_up', 1.0, 2.0, 'x') BETWEEN -1 AND 1
              AND (SELECT count(*) FROM personalize.coefficients('par')) > 0), 'a service role scores');
RESET ROLE;
SELECT is((SELECT rows FROM models WHERE name = 'rls' AND version = 1), 50000::bigint, 'the model saw only the rows the policy allows');

SELECT * FROM finish();
ROLLBACK;
