-- Catalog hygiene: every function of the extension declares volatility,
-- strictness and parallel safety deliberately, and nothing runs as definer.
BEGIN;
SELECT plan(5);

CREATE TEMP VIEW ext_functions AS
SELECT p.oid::regprocedure AS fn, p.provolatile, p.proisstrict, p.proparallel, p.prosecdef, p.prokind, p.proname
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_personalize');

SELECT is((SELECT count(*) FROM ext_functions WHERE prosecdef), 0::bigint, 'no SECURITY DEFINER function');
SELECT is((SELECT count(*) FROM ext_functions e JOIN pg_namespace n ON n.oid = (SELECT pronamespace FROM pg_proc WHERE oid = e.fn)
           WHERE n.nspname <> 'personalize'), 0::bigint, 'every function lives in schema personalize');
SELECT is(
  (SELECT array_agg(fn::text ORDER BY fn::text) FROM ext_functions
   WHERE (proname LIKE 'embedding%' OR proname IN ('l2_distance', 'inner_product', 'negative_inner_product',
          'cosine_distance', 'dims', 'norm', 'normalize', 'l2_normalize', 'array_to_embedding'))
     AND NOT (provolatile = 'i' AND proparallel = 's')),
  NULL, 'embedding functions are IMMUTABLE and PARALLEL SAFE');
SELECT is(
  (SELECT array_agg(fn::text ORDER BY fn::text) FROM ext_functions
   WHERE prokind = 'f' AND NOT proisstrict AND proname NOT IN ('embedding_accum', 'embedding_combine',
          'set_consent', 'protect', 'consents_append_only', 'fairness_gaps')),
  NULL, 'only aggregate transition functions take NULLs');
SELECT is(
  (SELECT array_agg(p.oid::regprocedure::text) FROM pg_aggregate a JOIN ext_functions f ON f.fn = a.aggfnoid
   JOIN pg_proc p ON p.oid = a.aggfnoid
   WHERE a.aggcombinefn = 0 OR a.aggtranstype = 'internal'::regtype OR p.proparallel <> 's'),
  NULL, 'aggregates have combine functions, concrete state types and are PARALLEL SAFE');

SELECT * FROM finish();
ROLLBACK;
