-- logistic_pass_flat, the logistic pass with concrete argument types (for Citus): it sums what
-- logistic_pass sums over the same rows, and its bad inputs have clear errors.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(22);

CREATE TABLE people AS
SELECT g AS id, (g % 7 + (g % 3) * 0.5)::float8 AS score, (g % 5)::int AS visits, g % 2 = 0 AS member,
       ARRAY[(g % 11)::float8, (g % 13)::float8] AS vec, (ARRAY['a', 'b', 'c'])[g % 3 + 1] AS region,
       ((g * 7919) % 10 < 4) AS bought, (1 + g % 3)::float8 AS w
FROM generate_series(1, 300) g;
SELECT train_classifier('clf', 'people', 'bought', '{score,visits,member,vec,region}', '{"standardize": true}');
SELECT train_classifier('skip', 'people', 'bought', '{score,region}', '{"skip_nulls": true}');
SELECT logistic_spec(model_export('clf', 1)) AS spec \gset
SELECT logistic_spec(model_export('skip', 1)) AS skip_spec \gset

-- what Citus needs to push it down: concrete argument types, a combine function
SELECT is((SELECT pg_catalog.array_agg(t::regtype::text ORDER BY n) FROM pg_proc p, unnest(p.proargtypes) WITH ORDINALITY a(t, n)
           WHERE p.oid = 'personalize.logistic_pass_flat'::regproc),
          '{bytea,"double precision","double precision","double precision[]",text[]}', 'logistic_pass_flat takes concrete types');
SELECT is((SELECT aggcombinefn FROM pg_aggregate WHERE aggfnoid = 'personalize.logistic_pass_flat'::regproc),
          'personalize.logistic_pass_combine'::regproc, 'logistic_pass_flat shares the combine function of logistic_pass');

-- the same sums as logistic_pass at the fitted coefficients (standardized, one-hot, an array, weights)
CREATE TABLE states AS
SELECT (SELECT logistic_pass(:'spec'::bytea, bought, w, score, visits, member, vec, region) FROM people) AS varargs,
       (SELECT logistic_pass_flat(:'spec'::bytea, bought::int::float8, w, ARRAY[score, visits, member::int]::float8[] || vec, ARRAY[region])
        FROM people) AS flat;
SELECT is((SELECT cardinality(flat) FROM states), (SELECT cardinality(varargs) FROM states), 'states of the same length');
-- the state: a header, β, the gradient and the Hessian (p = its first element), then a buffer of rows already
-- added; differences relative, or absolute below 1 (the gradient at the estimate is rounding noise)
SELECT cmp_ok((SELECT max(abs(f - v) / greatest(abs(v), 1.0)) FROM states, unnest(flat, varargs) WITH ORDINALITY u(f, v, i)
               WHERE i <= 11 + 2 * varargs[1] + varargs[1] * varargs[1]),
              '<=', 1e-12::float8, 'the same rows, log-likelihood, gradient and Hessian as logistic_pass');
SELECT cmp_ok((SELECT flat[4] FROM states), '=', 300::float8, 'every row counted');
-- parallel partial states combine to the same sums
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; plan text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN ' || query LOOP plan := plan || line || E'\n'; END LOOP;
	RETURN plan;
END $$;
SELECT matches(pg_temp.plan_of(format($$SELECT logistic_pass_flat(%L::bytea, bought::int::float8, w, ARRAY[score]::float8[], ARRAY[region]) FROM people$$, :'spec')),
               'Finalize Aggregate.*Gather.*Partial Aggregate', 'logistic_pass_flat: Partial Aggregate under Gather');
SELECT cmp_ok((SELECT max(abs(f - v) / greatest(abs(v), 1.0)) FROM states,
                 unnest((SELECT logistic_pass_flat(:'spec'::bytea, bought::int::float8, w, ARRAY[score, visits, member::int]::float8[] || vec,
                                                   ARRAY[region]) FROM people), varargs) WITH ORDINALITY u(f, v, i)
               WHERE i <= 11 + 2 * varargs[1] + varargs[1] * varargs[1] AND i <> 11),
              '<=', 1e-9::float8, 'in parallel too');
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- bad input
SELECT throws_ok($$SELECT logistic_pass_flat(NULL, 1, 1, '{1,2,3,4,5}', '{a}') FROM people$$, '22004',
                 'the spec of logistic_pass_flat must not be NULL', 'a NULL spec');
SELECT throws_ok($$SELECT logistic_pass_flat('\x00', 1, 1, '{1,2,3,4,5}', '{a}')$$, 'XX001', NULL, 'not a spec');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{1,2,3,4}', '{a}')$$, :'spec'), '2202E',
                 'the spec takes 5 numbers, not 4', 'too few numbers');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{1,2,3,4,5,6}', '{a}')$$, :'spec'), '2202E',
                 'the spec takes 5 numbers, not 6', 'too many numbers');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{{1,2,3,4,5}}', '{a}')$$, :'spec'), '2202E',
                 'numbers must be a one-dimensional array', 'a two-dimensional array');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{1,2,3,4,5}', '{a,b}')$$, :'spec'), '2202E',
                 'the spec takes 1 categories, not 2', 'a level too many');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{1,NaN,3,4,5}', '{a}')$$, :'spec'), '22000',
                 'feature "visits" must be finite, not "NaN"', 'NaN names its feature');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{1,2,3,4,-Infinity}', '{a}')$$, :'spec'), '22000',
                 'feature "vec" must be finite, not "-Infinity"', 'an infinite array element names its feature');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 2, 1, '{1,2,3,4,5}', '{a}')$$, :'spec'), '22000',
                 'label must be 0 or 1, not 2', 'a label that is not 0/1');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 'NaN', '{1,2,3,4,5}', '{a}')$$, :'spec'), '22000',
                 'weight must be finite and not negative, not NaN', 'a NaN weight');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{1,NULL,3,4,5}', '{a}')$$, :'spec'), '22004',
                 'a training row has a NULL label, weight or feature', 'a NULL number without skip_nulls');
SELECT throws_ok(format($$SELECT logistic_pass_flat(%L, 1, 1, '{1,2,3,4,5}', NULL)$$, :'spec'), '22004',
                 'a training row has a NULL label, weight or feature', 'NULL categories without skip_nulls');
SELECT throws_ok(format($$SELECT logistic_pass_flat(CASE WHEN id > 5 THEN %L ELSE %L END::bytea, 1, 1, '{1}', '{a}') FROM people$$,
                        :'spec', :'skip_spec'), '22023', 'the spec of logistic_pass_flat must be the same in every row', 'a spec that varies');

-- with skip_nulls in the spec, rows with a NULL are counted, not summed
SELECT is((SELECT ARRAY[s[4], s[5]] FROM (SELECT logistic_pass_flat(:'skip_spec'::bytea, bought::int::float8, 1,
                CASE WHEN id % 10 = 0 THEN ARRAY[NULL::float8] ELSE ARRAY[score] END,
                CASE WHEN id % 25 = 0 THEN NULL WHEN id % 20 = 0 THEN ARRAY[NULL::text] ELSE ARRAY[region] END) AS s FROM people) p),
          (SELECT ARRAY[count(*) FILTER (WHERE NOT n), count(*) FILTER (WHERE n)]::float8[]
           FROM (SELECT id % 10 = 0 OR id % 25 = 0 OR id % 20 = 0 AS n FROM people) p),
          'skip_nulls: rows with a NULL number, NULL categories or a NULL level are counted, not summed');
SELECT is((SELECT logistic_pass_flat(:'spec'::bytea, 1, 1, '{1,2,3,4,5}', '{a}') FROM people WHERE false), NULL, 'no rows: NULL');

SELECT * FROM finish();
ROLLBACK;
