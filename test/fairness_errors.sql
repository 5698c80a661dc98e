-- Fairness functions: bad names, bad types, and how caller SQL text is handled.
BEGIN;
SET search_path = personalize, public;
SELECT plan(14);

CREATE TABLE public.ft (g text, y boolean, s float8, yi int, yt text);
INSERT INTO public.ft VALUES ('a', true, 0.9, 1, 'x'), ('a', false, 0.2, 0, 'x'), ('b', true, 0.4, 1, 'x');

SELECT throws_ok($$SELECT * FROM fairness_by_group('nope', 'g', 'y', 's >= 0.5')$$, '42P01',
  'relation "nope" does not exist', 'unknown relation');
SELECT throws_ok($$SELECT * FROM fairness_by_group('ft', 'nope', 'y', 's >= 0.5')$$, '42703', NULL, 'unknown group column');
SELECT throws_ok($$SELECT * FROM fairness_by_group('ft', 'g', 'nope', 's >= 0.5')$$, '42703', NULL, 'unknown label column');
SELECT throws_ok($$SELECT * FROM fairness_by_group('ft', 'g', 'y', 'nope')$$, '42703', NULL, 'unknown prediction column');
SELECT throws_ok($$SELECT * FROM fairness_by_group('ft', 'g', 'yt', 's >= 0.5')$$, '22P02', NULL,
  'a text label that is not a boolean');
SELECT throws_ok($$SELECT * FROM fairness_by_group('ft', 'g', 'y', 's')$$, '42846', NULL,
  'a float prediction column must be compared: cannot cast double precision to boolean');
SELECT throws_ok($$SELECT * FROM fairness_by_group('ft', 'g', 'y', 's >=')$$, '42601', NULL, 'broken expression: syntax error');
SELECT throws_ok($$SELECT * FROM fairness_by_group('SELECT * FROM ft WHERE', 'g', 'y', 's >= 0.5')$$, '42601', NULL,
  'broken source query: syntax error');
SELECT throws_ok($$SELECT * FROM exposure_by_group('ft', 'ft', 'g', 'g', 'nope')$$, '42703', NULL, 'unknown rank column');
SELECT is((SELECT array_agg(group_value || ':' || n ORDER BY group_value) FROM fairness_by_group('ft', 'g', 'yi', 's >= 0.5')),
  ARRAY['a:2', 'b:1'], 'an integer label works');
SELECT is((SELECT tpr FROM fairness_by_group('public.ft', 'g', 'y', 's >= 0.5') WHERE group_value = 'b'), 0::float8,
  'a qualified relation name works');
-- names resolve with the caller's search_path (the functions taking SQL text do not pin it)
SET LOCAL search_path = public;
SELECT is((SELECT count(*) FROM personalize.fairness_by_group('ft', 'g', 'y', 's >= 0.5')), 2::bigint,
  'an unqualified relation resolves through the caller''s search_path');

-- catalog: every function of these concerns runs as invoker and pins search_path, except those taking caller SQL
SELECT is(
  (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p
   JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
   WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_personalize')
     AND p.prokind = 'f' AND p.prolang <> (SELECT oid FROM pg_language WHERE lanname = 'c')
     AND p.prosqlbody IS NULL   -- SQL-standard bodies bind their names at creation
     AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
  ARRAY['beyond_accuracy', 'calibrate', 'check_interactions', 'cuped_results', 'exposure_by_group',
        'fairness_by_group', 'fairness_summary', 'log_predictions', 'privacy_report', 'register_refresh',
        'segment_effects', 'split_by_time', 'split_by_user_time', 'train', 'train_classifier',
        'train_uplift'],
  'SQL/plpgsql functions pin search_path, except those that run caller SQL text');
SELECT is(
  (SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p
   JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
   WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_personalize') AND p.prosecdef),
  ARRAY['forget_consents', 'forget_in_models'], 'no SECURITY DEFINER function reads user data (only the two erasure steps)');

SELECT * FROM finish();
ROLLBACK;
