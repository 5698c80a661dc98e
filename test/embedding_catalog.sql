-- Catalog hygiene: every function of the extension declares volatility,
-- strictness and parallel safety deliberately, and nothing but the two erasure
-- steps runs as definer.
BEGIN;
SELECT plan(8);

CREATE TEMP VIEW ext_functions AS
SELECT p.oid::regprocedure AS fn, p.provolatile, p.proisstrict, p.proparallel, p.prosecdef, p.prokind, p.proname
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_personalize');

-- SECURITY DEFINER only for the two documented erasure steps (doc/privacy.md):
-- pinned search_path, not executable by PUBLIC
SELECT is((SELECT array_agg(fn::text ORDER BY fn::text) FROM ext_functions WHERE prosecdef),
  ARRAY['personalize.forget_consents(bigint)', 'personalize.forget_in_models(bigint)'],
  'the only SECURITY DEFINER functions are the two erasure steps');
SELECT is((SELECT count(*) FROM ext_functions e JOIN pg_proc p ON p.oid = e.fn
           WHERE e.prosecdef AND ('search_path=pg_catalog, pg_temp' = ANY (p.proconfig)) AND NOT has_function_privilege('public', e.fn, 'EXECUTE')),
  2::bigint, '... with a pinned search_path, not executable by PUBLIC');
SELECT is((SELECT count(*) FROM ext_functions e JOIN pg_namespace n ON n.oid = (SELECT pronamespace FROM pg_proc WHERE oid = e.fn)
           WHERE n.nspname <> 'personalize'), 0::bigint, 'every function lives in schema personalize');
SELECT is(
  (SELECT array_agg(fn::text ORDER BY fn::text) FROM ext_functions
   WHERE (proname LIKE 'embedding%' OR proname IN ('l2_distance', 'inner_product', 'negative_inner_product',
          'cosine_distance', 'dims', 'norm', 'normalize', 'l2_normalize', 'array_to_embedding'))
     AND NOT (provolatile = 'i' AND proparallel = 's')),
  NULL, 'embedding functions are IMMUTABLE and PARALLEL SAFE');
-- Besides aggregate transition and combine functions, only functions with
-- optional NULL arguments (recommend's candidates and exclude, recommend_for's
-- weights, may_change_model's new_owner, explain's k and context) or that answer
-- a NULL argument with an error (train, privacy_report) take NULLs.
SELECT is(
  (SELECT array_agg(fn::text ORDER BY fn::text) FROM ext_functions
   WHERE prokind = 'f' AND NOT proisstrict
     AND fn NOT IN (SELECT aggtransfn FROM pg_aggregate UNION SELECT aggcombinefn FROM pg_aggregate)
     -- NULL is meaningful (an optional argument, a default, the empty state), or is
     -- rejected with SQLSTATE 22004 by the function itself
     AND proname NOT IN ('recommend', 'recommend_for', 'train',
                         'ranking_metrics', 'ranking_metrics_by_user', 'beyond_accuracy',
                         'split_by_user_time', 'split_by_time',
                         'create_experiment', 'assign', 'log_outcome', 'segment_effects', 'cuped_results',
                         'experiment_metric_check', 'source_sql', 'chisq_gof', 'moments_pad',
                         'set_consent', 'protect', 'consents_append_only', 'fairness_gaps',
                         'may_change_model',
                         'check_interactions', 'model_drift', 'register_refresh', 'report_progress',
                         'predict', 'predict_log_odds', 'predictions', 'log_predictions',
                         'classifier_fit', 'train_classifier', 'calibration_fit', 'calibrate', 'train_uplift',
                         'uplift_score', 'uplift_scores', 'logistic_spec', 'explain', 'privacy_report',
                         'consent_state_sync', 'distribute_catalog', 'train_absorb', 'train_round',
                         'citus_consent_predicate')),
  NULL, 'only aggregate support and functions that handle NULL arguments themselves take NULLs');
-- internal states only where the issue allows them (ALS and item-kNN need
-- every row, the data-quality profile every (user, item, time) triple for exact
-- duplicates), and then with serialize/deserialize for parallel query
SELECT is(
  (SELECT array_agg(p.oid::regprocedure::text) FROM pg_aggregate a JOIN ext_functions f ON f.fn = a.aggfnoid
   JOIN pg_proc p ON p.oid = a.aggfnoid
   WHERE p.proname NOT IN ('hybrid_fit', 'editorial_fit', 'dp_popularity_fit')
     AND (a.aggcombinefn = 0 OR p.proparallel <> 's'
      OR (a.aggtranstype = 'internal'::regtype
          AND (p.proname NOT IN ('als_fit', 'itemknn_fit', 'interaction_profile', 'bpr_fit', 'dp_als_fit') OR a.aggserialfn = 0 OR a.aggdeserialfn = 0)))),
  NULL, 'aggregates have combine functions, concrete state types (or serializable internal ones) and are PARALLEL SAFE');
-- the three whose final function reads a source named in its options (features, lists'
-- segments, a catalog) as the caller: not in parallel workers, where a temporary table
-- of the caller is out of reach (dp_popularity_fit still aggregates in parallel)
SELECT is(
  (SELECT array_agg(p.proname::text || ' ' || p.proparallel::text || ' ' || (a.aggcombinefn <> 0)::text ORDER BY p.proname)
   FROM pg_aggregate a JOIN ext_functions f ON f.fn = a.aggfnoid JOIN pg_proc p ON p.oid = a.aggfnoid
   WHERE p.proname IN ('hybrid_fit', 'editorial_fit', 'dp_popularity_fit')),
  ARRAY['dp_popularity_fit r true', 'editorial_fit u false', 'hybrid_fit u false'],
  'aggregates reading side sources are PARALLEL RESTRICTED or UNSAFE');

-- views read user data as the caller, so row-level security holds through them
SELECT is(
  (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
   JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
   WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_personalize')
     AND c.relkind = 'v' AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)),
  NULL, 'every view of the extension is security_invoker');

SELECT * FROM finish();
ROLLBACK;
