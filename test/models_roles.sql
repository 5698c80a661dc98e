-- Who may change a model, with real roles: two analysts, a service, an
-- administrator, and a bare role holding only what serving needs.
BEGIN;
SET client_min_messages = warning;
SELECT plan(62);

CREATE ROLE mr_alice;
CREATE ROLE mr_bob;
CREATE ROLE mr_svc;
CREATE ROLE mr_boss;
CREATE ROLE mr_bare;
SELECT personalize.grant_analyst('mr_alice'), personalize.grant_analyst('mr_bob'),
       personalize.grant_service('mr_svc'), personalize.grant_admin('mr_boss');

-- raw interactions: readable by analysts (and so by administrators), not by services
CREATE SCHEMA mr;
CREATE TABLE mr.clicks AS
SELECT u::bigint AS user_id, ((u * 7 + k * 13) % 40)::bigint AS item_id, 1::real AS weight
FROM generate_series(1, 100) u, generate_series(1, 6) k;
GRANT USAGE ON SCHEMA mr TO personalize_analyst, personalize_service;
GRANT SELECT ON mr.clicks TO personalize_analyst;
CREATE TABLE mr.shown (model text, rank integer);
GRANT SELECT, INSERT ON mr.shown TO mr_svc, mr_bare;

-- exactly the privileges of the table in doc/administration.md (keep them in step)
SELECT set_eq(
  $$SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, c.relname::text, a.privilege_type
    FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.relnamespace = 'personalize'::regnamespace
      AND (a.grantee = 0 OR a.grantee::regrole::text IN ('personalize_analyst', 'personalize_service', 'personalize_admin'))
    UNION ALL
    SELECT a.grantee::regrole::text, p.proname::text, a.privilege_type
    FROM pg_proc p, aclexplode(p.proacl) a
    WHERE p.pronamespace = 'personalize'::regnamespace
      AND (a.grantee = 0 OR a.grantee::regrole::text IN ('personalize_analyst', 'personalize_service', 'personalize_admin'))$$,
  $$VALUES ('personalize_analyst', 'models', 'SELECT'), ('personalize_analyst', 'models', 'INSERT'),
           ('personalize_analyst', 'models', 'UPDATE'), ('personalize_analyst', 'models', 'DELETE'),
           ('personalize_service', 'models', 'SELECT'),
           ('personalize_analyst', 'model_chunks', 'SELECT'), ('personalize_analyst', 'model_chunks', 'INSERT'),
           ('personalize_analyst', 'model_chunks', 'DELETE'), ('personalize_service', 'model_chunks', 'SELECT'),
           ('personalize_analyst', 'consents', 'SELECT'), ('personalize_analyst', 'current_consent', 'SELECT'),
           ('personalize_admin', 'consents', 'INSERT'),
           ('personalize_analyst', 'consent_state', 'SELECT'), ('personalize_admin', 'consent_state', 'INSERT'),
           ('personalize_admin', 'consent_state', 'UPDATE'), ('personalize_admin', 'consent_state', 'DELETE'),
           ('personalize_analyst', 'train_runs', 'SELECT'), ('personalize_analyst', 'train_runs', 'INSERT'),
           ('personalize_analyst', 'train_runs', 'DELETE'),
           ('personalize_admin', 'consents_seq_seq', 'USAGE'), ('personalize_admin', 'erasures_id_seq', 'USAGE'),
           ('PUBLIC', 'protected_tables', 'SELECT'),
           ('personalize_admin', 'protected_tables', 'INSERT'), ('personalize_admin', 'protected_tables', 'DELETE'),
           ('personalize_admin', 'erasures', 'SELECT'), ('personalize_admin', 'erasures', 'INSERT'),
           ('personalize_analyst', 'prediction_log', 'SELECT'), ('personalize_service', 'prediction_log', 'INSERT'),
           ('personalize_admin', 'prediction_log', 'DELETE'),
           ('personalize_analyst', 'fairness_daily', 'SELECT'), ('personalize_analyst', 'fairness_daily_groups', 'SELECT'),
           ('personalize_analyst', 'experiments', 'SELECT'), ('personalize_analyst', 'experiments', 'INSERT'),
           ('personalize_analyst', 'experiment_arms', 'SELECT'), ('personalize_analyst', 'experiment_arms', 'INSERT'),
           ('personalize_service', 'experiments', 'SELECT'), ('personalize_service', 'experiment_arms', 'SELECT'),
           ('personalize_analyst', 'assignments', 'SELECT'),
           ('personalize_service', 'assignments', 'SELECT'), ('personalize_service', 'assignments', 'INSERT'),
           ('personalize_analyst', 'experiment_strata', 'SELECT'),
           ('personalize_service', 'experiment_strata', 'SELECT'), ('personalize_service', 'experiment_strata', 'INSERT'),
           ('personalize_service', 'experiment_strata', 'UPDATE'),
           ('personalize_analyst', 'outcomes', 'SELECT'), ('personalize_service', 'outcomes', 'INSERT'),
           ('personalize_analyst', 'experiment_results', 'SELECT'), ('personalize_analyst', 'experiment_health', 'SELECT'),
           ('personalize_admin', 'forget_in_models', 'EXECUTE'), ('personalize_admin', 'forget_consents', 'EXECUTE'),
           ('personalize_analyst', 'refreshes', 'SELECT'), ('personalize_analyst', 'refreshes', 'INSERT'),
           ('personalize_analyst', 'refreshes', 'UPDATE'), ('personalize_analyst', 'refreshes', 'DELETE'),
           ('personalize_analyst', 'refresh_runs', 'SELECT'), ('personalize_analyst', 'refresh_runs', 'INSERT'),
           ('personalize_admin', 'refresh_runs', 'DELETE'), ('personalize_analyst', 'refresh_runs_run_id_seq', 'USAGE'),
           ('personalize_analyst', 'refresh_status', 'SELECT'), ('personalize_analyst', 'refresh_jobs', 'SELECT'),
           ('personalize_analyst', 'training_progress', 'SELECT')$$,
  'the three roles hold exactly the privileges documented in doc/administration.md');
SELECT ok(pg_has_role('personalize_admin', 'personalize_analyst', 'USAGE') AND pg_has_role('personalize_admin', 'personalize_service', 'USAGE')
          AND NOT pg_has_role('personalize_analyst', 'personalize_service', 'USAGE') AND NOT pg_has_role('personalize_service', 'personalize_analyst', 'USAGE'),
  'an administrator holds what analysts and services hold; those two share nothing');

-- an analyst trains, retrains, activates its own model
SET ROLE mr_alice;
SELECT is(personalize.train('alice_m', 'itemknn', 'mr.clicks'), 1, 'an analyst trains a model');
SELECT is(personalize.train('alice_m', 'als', 'mr.clicks', '{"factors": 4, "iterations": 2, "activate": false}'), 2,
  'and retrains it under the same name');
SELECT lives_ok($$SELECT personalize.activate('alice_m', 2)$$, 'and activates its own version');
SELECT lives_ok($$SELECT personalize.activate('alice_m', 1)$$, '... and back');
RESET ROLE;
SELECT is((SELECT array_agg(DISTINCT owner::text) FROM personalize.models WHERE name = 'alice_m'), ARRAY['mr_alice'],
  'every version records the role that trained it');
CREATE TEMP TABLE alice_before AS SELECT name, version, active, trained_at FROM personalize.models WHERE name = 'alice_m';

-- another analyst: neither through the functions nor straight at the table
SET ROLE mr_bob;
SELECT throws_ok($$SELECT personalize.activate('alice_m', 2)$$, '42501', 'must be owner of model "alice_m"',
  'another analyst cannot activate it');
SELECT throws_ok($$SELECT personalize.drop_model('alice_m')$$, '42501', 'must be owner of model "alice_m"',
  'nor drop it');
SELECT throws_ok($$SELECT personalize.train('alice_m', 'popularity', 'mr.clicks')$$, '42501', 'must be owner of model "alice_m"',
  'nor retrain under its name (refused before training)');
SELECT is((SELECT count(*) FROM personalize.models WHERE name = 'alice_m'), 2::bigint, 'but may read it');
SELECT is((SELECT count(*) FROM personalize.recommend('alice_m', 5, 3)), 3::bigint, 'and serve it');
UPDATE personalize.models SET active = NOT active WHERE name = 'alice_m';
UPDATE personalize.models SET bytes = 0 WHERE name = 'alice_m' AND version = 1;
DELETE FROM personalize.model_chunks WHERE name = 'alice_m';
DELETE FROM personalize.models WHERE name = 'alice_m';
SELECT throws_ok($$INSERT INTO personalize.model_chunks SELECT name, version, chunk + 100, bytes FROM personalize.model_chunks
                   WHERE name = 'alice_m' AND version = 1$$,
  '42501', 'new row violates row-level security policy for table "model_chunks"', 'nor write chunks of its versions');
SELECT throws_ok($$INSERT INTO personalize.models (name, version, algorithm, rows, items, seconds, bytes)
                   SELECT 'alice_m', 9, algorithm, rows, items, seconds, bytes FROM personalize.models
                   WHERE name = 'alice_m' AND version = 1$$,
  '42501', 'new row violates row-level security policy for table "models"', 'nor insert a version under its name');
SELECT is(personalize.train('bob_m', 'popularity', 'mr.clicks'), 1, 'bob trains a model of his own');
SELECT throws_ok($$INSERT INTO personalize.models (name, version, algorithm, rows, items, seconds, bytes, owner)
                   SELECT 'bob_m', 2, algorithm, rows, items, seconds, bytes, 'mr_alice' FROM personalize.models
                   WHERE name = 'bob_m'$$,
  '42501', NULL, 'a version cannot claim another trainer');
SELECT throws_ok($$UPDATE personalize.models SET name = 'alice_m', version = 3 WHERE name = 'bob_m'$$,
  '42501', NULL, 'a version cannot be moved under another analyst''s name');
SELECT throws_ok($$UPDATE personalize.models SET owner = 'mr_alice' WHERE name = 'bob_m'$$,
  '42501', NULL, 'nor given to a role its owner does not act for');
RESET ROLE;
SELECT results_eq($$SELECT name, version, active, trained_at FROM personalize.models WHERE name = 'alice_m' ORDER BY version$$,
  $$SELECT * FROM alice_before ORDER BY version$$, 'direct UPDATE and DELETE by another analyst reached no row');
SELECT ok(personalize.model_export('alice_m', 1)::text <> personalize.model_export('alice_m', 2)::text
          AND (SELECT count(*) FROM personalize.model_chunks WHERE name = 'alice_m') = 2,
  'and did not rewrite or delete a stored model');
SELECT is(personalize.may_change_model('alice_m'), true, 'may_change_model: a superuser may');

SET ROLE mr_alice;
SELECT is(personalize.may_change_model('alice_m'), true, 'may_change_model: the owner may');
SELECT is(personalize.may_change_model('bob_m'), false, 'may_change_model: another analyst may not');
SELECT is(personalize.may_change_model('no_such_model'), true, 'may_change_model: a new name is free');
SELECT is(personalize.may_change_model('alice_m', 'mr_bob'), false, 'may_change_model: not to give a version to another role');
SELECT is(personalize.may_change_model(NULL), false, 'may_change_model: no NULL model');
RESET ROLE;

-- a service serves, and does nothing else
SET ROLE mr_svc;
SELECT is((SELECT count(*) FROM personalize.recommend('alice_m', 5, 3)), 3::bigint,
  'a service serves the active version (its cache reads personalize.models through the policy)');
SELECT is((SELECT count(*) FROM personalize.similar_items('alice_m', 3, 2)), 2::bigint, 'similar_items too');
SELECT is((SELECT count(*) FROM personalize.recommend('bob_m', 5, 3)), 3::bigint,
  'a popularity model too, though the service may not read its source (nothing excluded)');
SELECT lives_ok($$INSERT INTO mr.shown SELECT 'alice_m', rank FROM personalize.recommend('alice_m', 7, 3)$$,
  'and stores what it served');
SELECT throws_ok($$SELECT count(*) FROM mr.clicks$$, '42501', 'permission denied for table clicks',
  'a service cannot read raw interactions');
SELECT throws_ok($$SELECT personalize.train('svc_m', 'popularity', 'SELECT 1::bigint AS user_id, 2::bigint AS item_id, 1::real AS weight')$$, '42501', NULL,
  'nor store a model, even of data it brings');
SELECT throws_ok($$SELECT personalize.activate('alice_m', 2)$$, '42501', NULL, 'nor activate');
SELECT throws_ok($$SELECT personalize.drop_model('bob_m')$$, '42501', NULL, 'nor drop');
SELECT throws_ok($$SELECT count(*) FROM personalize.consents$$, '42501', NULL, 'nor read consent history');
SELECT throws_ok($$SELECT count(*) FROM personalize.prediction_log$$, '42501', NULL, 'nor the prediction log');
SELECT throws_ok($$SELECT * FROM personalize.forget(5)$$, '42501', 'role "mr_svc" may not erase subjects', 'nor erase');
RESET ROLE;

-- serving needs only USAGE on the schema, EXECUTE (PUBLIC's) and SELECT on the models
GRANT USAGE ON SCHEMA personalize, mr TO mr_bare;
GRANT SELECT ON personalize.models, personalize.model_chunks TO mr_bare;
SET ROLE mr_bare;
SELECT is((SELECT count(*) FROM personalize.recommend('alice_m', 5, 3)), 3::bigint,
  'a role with only SELECT on personalize.models (and its chunks) serves');
RESET ROLE;
REVOKE SELECT ON personalize.models FROM mr_bare;
SET ROLE mr_bare;
SELECT throws_ok($$SELECT count(*) FROM personalize.recommend('alice_m', 5, 3)$$, '42501', NULL,
  'without it, serving fails');
RESET ROLE;

-- an administrator does both, and may change any model
SET ROLE mr_boss;
SELECT is((SELECT count(*) FROM mr.clicks), 600::bigint, 'an administrator reads raw interactions');
SELECT is((SELECT count(*) FROM personalize.recommend('alice_m', 5, 3)), 3::bigint, 'and serves');
SELECT lives_ok($$SELECT personalize.activate('alice_m', 2)$$, 'activates an analyst''s version');
SELECT is(personalize.train('alice_m', 'popularity', 'mr.clicks'), 3, 'retrains it under its name');
SELECT lives_ok($$SELECT personalize.drop_model('bob_m')$$, 'drops another analyst''s model');
SELECT is((SELECT count(*) FROM personalize.models WHERE name = 'bob_m'), 0::bigint, '... all of it');
RESET ROLE;
SELECT is((SELECT owner::text FROM personalize.models WHERE name = 'alice_m' AND version = 3), 'mr_boss',
  'the administrator''s version records the administrator');
SET ROLE mr_alice;
SELECT throws_ok($$SELECT personalize.activate('alice_m', 1)$$, '42501', NULL,
  'a model holding an administrator''s version is the administrators'' to change');
RESET ROLE;
SET ROLE mr_boss;
UPDATE personalize.models SET owner = 'mr_alice' WHERE name = 'alice_m' AND owner = 'mr_boss'::regrole;
RESET ROLE;
SET ROLE mr_alice;
SELECT lives_ok($$SELECT personalize.activate('alice_m', 1)$$, '... until one hands the version over');
RESET ROLE;

-- erasure reaches every owner's models, though the administrator acts for none of them
SET ROLE mr_alice;
SELECT personalize.train('alice_als', 'als', 'mr.clicks', '{"factors": 4, "iterations": 2}');
RESET ROLE;
SET ROLE mr_bob;
SELECT personalize.train('bob_knn', 'itemknn', 'mr.clicks');
RESET ROLE;
SELECT ok(NOT pg_has_role('mr_boss', 'mr_alice', 'USAGE') AND NOT pg_has_role('mr_boss', 'mr_bob', 'USAGE'),
  'the administrator is a member of neither analyst');
CREATE TEMP TABLE knows_42 AS
SELECT name, version, owner::text FROM personalize.models WHERE personalize.model_without_user(personalize.model_export(name, version), 42) IS NOT NULL;
GRANT SELECT ON knows_42 TO mr_boss;
SELECT is((SELECT array_agg(DISTINCT owner ORDER BY owner) FROM knows_42), ARRAY['mr_alice', 'mr_bob'],
  'before: models of both analysts know subject 42');
SET ROLE mr_alice;
SELECT throws_ok($$SELECT * FROM personalize.forget(42)$$, '42501', 'role "mr_alice" may not erase subjects',
  'an analyst cannot erase (it could not reach the other analyst''s models)');
SELECT throws_ok($$SELECT personalize.forget_in_models(42)$$, '42501', NULL, 'nor call the erasure step itself');
RESET ROLE;
SET ROLE mr_boss;
SELECT is((SELECT removed FROM personalize.forget(42) WHERE object = 'models'), (SELECT count(*) FROM knows_42),
  'an administrator''s forget rewrites every version that knew the subject');
RESET ROLE;
SELECT is((SELECT count(*) FROM personalize.models WHERE personalize.model_without_user(personalize.model_export(name, version), 42) IS NOT NULL), 0::bigint,
  'after: no model of any owner knows subject 42');
SELECT is((SELECT array_agg(DISTINCT m.owner::text ORDER BY m.owner::text) FROM personalize.models m JOIN knows_42 k USING (name, version)
           WHERE m.stale), ARRAY['mr_alice', 'mr_bob'], 'and those versions of both analysts are marked stale');

-- the grant functions
SET ROLE mr_alice;
SELECT throws_ok($$SELECT personalize.grant_admin('mr_alice')$$, '42501', NULL, 'an analyst cannot make itself administrator');
SELECT throws_ok($$SELECT personalize.grant_analyst('mr_bare')$$, '42501', NULL, 'nor make others analysts');
RESET ROLE;
SET ROLE mr_boss;
SELECT lives_ok($$SELECT personalize.grant_analyst('mr_bare')$$, 'an administrator makes others analysts');
SELECT throws_ok($$SELECT personalize.grant_admin('mr_bare')$$, '42501', NULL, 'but not administrators');
RESET ROLE;
SELECT ok(pg_has_role('mr_bare', 'personalize_analyst', 'MEMBER') AND NOT pg_has_role('mr_bare', 'personalize_admin', 'MEMBER'),
  'grant_analyst made mr_bare an analyst only');
SELECT throws_ok($$SELECT personalize.grant_service('-')$$, '22023', 'role must not be PUBLIC', 'PUBLIC is refused');
SELECT is(personalize.grant_service(NULL)::text, NULL, 'NULL role: nothing granted');

SELECT * FROM finish();
ROLLBACK;
