-- Training aggregates run in parallel (Partial Aggregate under Gather) and give
-- the same model as a serial plan; the registry applies row-level security.
BEGIN;
SET search_path = personalize, public;
SET client_min_messages = warning;
SELECT plan(17);

CREATE TABLE big AS
SELECT (g % 5000)::bigint AS user_id, ((g::bigint * 7919) % 3000) AS item_id, ((g % 3) + 1)::real AS weight
FROM generate_series(1, 300000) g;
ANALYZE big;

SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;

CREATE FUNCTION pg_temp.plan_of(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; result text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ' || query LOOP result := result || line || E'\n'; END LOOP;
  RETURN result;
END $$;

SELECT matches(pg_temp.plan_of($$SELECT als_fit(user_id, item_id, weight, '{"factors": 4, "iterations": 1}') FROM big$$),
               'Finalize Aggregate.*Gather.*Workers Launched: [12].*Partial Aggregate', 'als_fit: Partial Aggregate under Gather, workers launched');
SELECT matches(pg_temp.plan_of($$SELECT itemknn_fit(user_id, item_id, weight, '{}') FROM big$$),
               'Gather.*Partial Aggregate', 'itemknn_fit: Partial Aggregate under Gather');
SELECT matches(pg_temp.plan_of($$SELECT popularity_fit(user_id, item_id, weight, '{}') FROM big$$),
               'Gather.*Partial Aggregate', 'popularity_fit: Partial Aggregate under Gather');
SELECT isnt((SELECT typname FROM pg_aggregate a JOIN pg_type t ON t.oid = a.aggtranstype
             WHERE aggfnoid = 'personalize.popularity_fit'::regproc), 'internal', 'popularity_fit state is a concrete type (Citus)');

CREATE TEMP TABLE par AS SELECT als_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 3}') AS a,
                               popularity_fit(user_id, item_id, weight, '{}') AS p,
                               itemknn_fit(user_id, item_id, weight, '{"neighbors": 10}') AS k FROM big;
SET LOCAL max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE ser AS SELECT als_fit(user_id, item_id, weight, '{"factors": 8, "iterations": 3}') AS a,
                               popularity_fit(user_id, item_id, weight, '{}') AS p,
                               itemknn_fit(user_id, item_id, weight, '{"neighbors": 10}') AS k FROM big;
-- ids are mapped in ascending order and duplicates summed exactly (small integers),
-- so the parallel model is the serial model, byte for byte
SELECT is((SELECT a::text FROM par), (SELECT a::text FROM ser), 'parallel ALS model equals the serial one');
SELECT is((SELECT p::text FROM par), (SELECT p::text FROM ser), 'parallel popularity model equals the serial one');
SELECT is((SELECT k::text FROM par), (SELECT k::text FROM ser), 'parallel item-kNN model equals the serial one');

-- train() runs the source as the caller: row-level security applies
CREATE ROLE pgp_models_analyst;
GRANT USAGE ON SCHEMA personalize TO pgp_models_analyst;
GRANT SELECT, INSERT, UPDATE ON personalize.models TO pgp_models_analyst;
GRANT SELECT, INSERT ON personalize.model_chunks TO pgp_models_analyst;
GRANT SELECT ON big TO pgp_models_analyst;
ALTER TABLE big ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_small_users ON big FOR SELECT TO pgp_models_analyst USING (user_id < 100);
SET LOCAL ROLE pgp_models_analyst;
SELECT is(train('rls', 'popularity', 'big'), 1, 'analyst trains');
RESET ROLE;
SELECT is((SELECT rows FROM models WHERE name = 'rls'), (SELECT count(*) FROM big WHERE user_id < 100),
          'the model saw only the rows the policy allows');

-- recommend_all (tiles of 64 users x 4096 items, sgemm) agrees with recommend (sgemv)
-- for every user, across tile boundaries of both users and items
CREATE TABLE wide AS SELECT (g % 700)::bigint AS user_id, ((g::bigint * 7919) % 9000) AS item_id, 1::real AS weight
FROM generate_series(1, 60000) g;
SELECT is(train('wide', 'als', 'wide', '{"factors": 16, "iterations": 2}'), 1, 'train a model with 9000 items');
CREATE TEMP TABLE ra AS SELECT * FROM recommend_all('wide', 5);
SELECT is((SELECT count(*) FILTER (WHERE r.item_id = a.item_id AND abs(r.score - a.score) < 1e-5)
           FROM ra a JOIN LATERAL recommend('wide', a.user_id, 5) r ON r.rank = a.rank),
          700 * 5::bigint, 'recommend_all equals recommend for all 700 users (blocks of 256 users on two threads)');

-- Rows of want (user_id, item_id, score, rank) that got matches: the same score at the
-- same rank (to 1e-5 relative, absolute below lo) and the same item or, for a float tie,
-- an item that got lists with that score, or got's k-th score (a tie across rank k)
CREATE FUNCTION pg_temp.top_k_agree(got regclass, want regclass, k int, lo float8) RETURNS bigint
LANGUAGE plpgsql AS $f$
DECLARE
  n bigint;
BEGIN
  EXECUTE format($q$
    SELECT count(*) FROM %1$s a JOIN %2$s r USING (user_id, rank)
    WHERE abs(r.score - a.score) <= 1e-5 * greatest(%4$s, abs(r.score))
      AND (r.item_id = a.item_id
           OR EXISTS (SELECT FROM %1$s b WHERE b.user_id = a.user_id AND b.item_id = r.item_id
                      AND abs(b.score - r.score) <= 1e-5 * greatest(%4$s, abs(r.score)))
           OR EXISTS (SELECT FROM %1$s b WHERE b.user_id = a.user_id AND b.rank = %3$s
                      AND abs(b.score - r.score) <= 1e-5 * greatest(%4$s, abs(r.score))))$q$,
    got, want, k, lo) INTO n;
  RETURN n;
END
$f$;

-- recommend_all visits items by descending norm and stops a user once no later item
-- can beat its k-th score: on power-law popularity (most users stop early) it still
-- equals recommend for every user, including one who has seen all but three items
-- (serving scans such a model by norm: its sampled scan limit is above 0, see DEBUG1)
CREATE TABLE skewed AS SELECT (g % 1500)::bigint AS user_id, floor(8000 * power(((g::bigint * 7919) % 10007) / 10007.0, 4))::bigint AS item_id,
       1::real AS weight FROM generate_series(1, 80000) g
UNION ALL SELECT 5000, i, 1 FROM generate_series(3, 7999) i;
SELECT is(train('skewed', 'als', 'skewed', '{"factors": 16, "iterations": 5}'), 1, 'train a model on power-law popularity');
CREATE TEMP TABLE ras AS SELECT * FROM recommend_all('skewed', 10);
CREATE TEMP TABLE rec AS SELECT u.user_id, r.* FROM (SELECT DISTINCT user_id FROM skewed) u, LATERAL recommend('skewed', u.user_id, 10) r;
-- (items bought by the same users get nearly equal factors: float ties may swap; scores
-- agree to 1e-5, or 1e-6 below 0.1, where the user who has seen almost everything has
-- sums that cancel)
SELECT is(pg_temp.top_k_agree('ras', 'rec', 10, 0.1),
          (SELECT count(*) FROM rec), 'recommend_all with the norm bound equals recommend for every user');
SELECT results_eq($$SELECT count(*), count(*) FILTER (WHERE user_id = 5000) FROM ras$$,
                  $$SELECT count(*), 3::bigint FROM rec$$, 'as many rows, and 3 for the user who has seen all other items');

-- recommend reads bfloat16 factors, then re-ranks exactly: the same top k as scoring
-- every item in float4 (personalize.exact_scoring), for every user; float4 sums in
-- another order (our re-rank against OpenBLAS's sgemv, whose kernel depends on the
-- CPU) may swap two items whose scores agree to 1e-5 (a tie, also across rank k)
SET LOCAL personalize.exact_scoring = off;
CREATE TEMP TABLE approx AS SELECT u AS user_id, r.* FROM generate_series(0, 699) u, LATERAL recommend('wide', u, 10) r;
SET LOCAL personalize.exact_scoring = on;
CREATE TEMP TABLE exact_wide AS SELECT u AS user_id, r.* FROM generate_series(0, 699) u, LATERAL recommend('wide', u, 10) r;
SELECT is(pg_temp.top_k_agree('approx', 'exact_wide', 10, 1e-3), 700 * 10::bigint, 'reduced-precision scoring returns the exact top 10 for all 700 users');

-- recommend (float4, items by descending norm, stopped at the bound) against an
-- independent exact scan: the embedding type's <#> over every unseen item, 60 users;
-- at each rank the same score, and the item served scores that much (ties may swap)
CREATE TEMP TABLE exact_scan AS
SELECT u.user_id, row_number() OVER (PARTITION BY u.user_id ORDER BY d, item_id) AS rank, -d AS score
FROM (SELECT DISTINCT user_id FROM skewed WHERE user_id % 25 = 0) u,
     LATERAL (SELECT i.id AS item_id, i.embedding OPERATOR(personalize.<#>) ue.embedding AS d
              FROM item_embeddings('skewed') i, user_embeddings('skewed') ue
              WHERE ue.id = u.user_id AND NOT EXISTS (SELECT FROM skewed s WHERE s.user_id = u.user_id AND s.item_id = i.id)
              ORDER BY d, i.id LIMIT 10) e;
SELECT is((SELECT count(*) FROM exact_scan e JOIN rec r USING (user_id, rank)
           JOIN item_embeddings('skewed') i ON i.id = r.item_id JOIN user_embeddings('skewed') ue ON ue.id = r.user_id
           WHERE abs(r.score - e.score) <= 1e-5 * greatest(1e-1, abs(e.score))
             AND abs(-(i.embedding OPERATOR(personalize.<#>) ue.embedding) - e.score) <= 1e-5 * greatest(1e-1, abs(e.score))),
          (SELECT count(*) FROM rec WHERE user_id % 25 = 0), 'recommend equals an exact <#> scan of every unseen item');

-- on power-law popularity the bfloat16 scan stops early (items by descending norm,
-- stopped at the Cauchy-Schwarz bound): still the exact top 10 for every user
SET LOCAL personalize.exact_scoring = off;
CREATE TEMP TABLE approx_skewed AS SELECT u.user_id, r.* FROM (SELECT DISTINCT user_id FROM skewed) u, LATERAL recommend('skewed', u.user_id, 10) r;
SET LOCAL personalize.exact_scoring = on;
SELECT is(pg_temp.top_k_agree('approx_skewed', 'rec', 10, 0.1), (SELECT count(*) FROM rec), 'the early-stopping bfloat16 scan returns the exact top 10 for every user');

SELECT * FROM finish();
ROLLBACK;
