-- Consent enforced by row-level security, with real roles: an analyst, the
-- table owner, an exempt admin, and a role that may not read consent state.
BEGIN;
SELECT plan(65);

CREATE ROLE pp_owner;
CREATE ROLE pp_analyst;
CREATE ROLE pp_admin;
CREATE ROLE pp_nobody;
GRANT USAGE ON SCHEMA personalize TO pp_owner, pp_analyst, pp_admin, pp_nobody;
GRANT SELECT ON personalize.current_consent TO pp_nobody;
-- who may read consent state: every role that reads protected tables
GRANT SELECT ON personalize.consents TO pp_owner, pp_analyst, pp_admin;
-- who may record consent and erase: the extension's administrators
SELECT personalize.grant_admin('pp_admin');
-- 0.1.0's documentation told DBAs to grant this to the erasing role; it must open nothing now
GRANT DELETE, TRUNCATE ON personalize.consents TO pp_admin, pp_analyst;
-- who may protect tables (their owners)
GRANT SELECT, INSERT, DELETE ON personalize.protected_tables TO pp_owner;

CREATE SCHEMA pp AUTHORIZATION pp_owner;
GRANT USAGE ON SCHEMA pp TO pp_analyst, pp_admin, pp_nobody;

SET ROLE pp_owner;
CREATE TABLE pp.events (subject_id bigint, item int, amount float8);
INSERT INTO pp.events SELECT s, i, s * 10 + i FROM generate_series(1, 6) s, generate_series(1, 3) i;
INSERT INTO pp.events VALUES (NULL, 9, 9);
GRANT SELECT ON pp.events TO pp_analyst, pp_nobody;
GRANT SELECT, DELETE ON pp.events TO pp_admin;
-- an analyst-facing function of the kind train/metrics are: SQL, SECURITY INVOKER
CREATE FUNCTION pp.spend() RETURNS TABLE (subject_id bigint, total float8)
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$ SELECT subject_id, sum(amount) FROM pp.events GROUP BY 1 ORDER BY 1 $$;
-- and a plpgsql one with dynamic SQL
CREATE FUNCTION pp.count_rows(t regclass) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$ DECLARE n bigint; BEGIN EXECUTE format('SELECT count(*) FROM %s', t) INTO n; RETURN n; END $$;
RESET ROLE;

SET ROLE pp_admin;
SELECT personalize.set_consent(1, 'personalization', true, 'signup form');
SELECT personalize.set_consent(2, 'personalization', true);
SELECT personalize.set_consent(2, 'personalization', false, 'preference center');
SELECT personalize.set_consent(3, 'personalization', false);
SELECT personalize.set_consent(5, 'personalization', true);
SELECT personalize.set_consent(6, 'email', true);          -- another purpose only
RESET ROLE;

-- before protection everybody sees everything
SET ROLE pp_analyst;
SELECT is((SELECT count(*) FROM pp.events), 19::bigint, 'unprotected: analyst sees all rows');
RESET ROLE;

-- only the owner may protect
SET ROLE pp_analyst;
SELECT throws_ok($$SELECT personalize.protect('pp.events', 'subject_id', 'personalization')$$,
  '42501', NULL, 'a role that does not own the table cannot protect it');
RESET ROLE;

SET ROLE pp_owner;
SELECT lives_ok($$SELECT personalize.protect('pp.events', 'subject_id', 'personalization', 'pp_admin')$$,
  'owner protects the table, exempting pp_admin');
RESET ROLE;

SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'pp.events'::regclass),
  'row-level security is enabled and forced');
SELECT is((SELECT array_agg(polname::text ORDER BY polname) FROM pg_policy WHERE polrelid = 'pp.events'::regclass),
  ARRAY['personalize_consent', 'personalize_rows'], 'one restrictive consent policy, one permissive policy');

SET ROLE pp_analyst;
SELECT is((SELECT array_agg(DISTINCT subject_id ORDER BY subject_id) FROM pp.events), ARRAY[1, 5]::bigint[],
  'analyst sees consented subjects only (not withdrawn, refused, never asked, other purpose, NULL)');
SELECT is((SELECT count(*) FROM pp.events WHERE subject_id = 2), 0::bigint, 'a filter on a withdrawn subject finds nothing');
SELECT is((SELECT array_agg(subject_id) FROM pp.spend()), ARRAY[1, 5]::bigint[],
  'a SECURITY INVOKER SQL function sees consented rows only');
SELECT is(pp.count_rows('pp.events'), 6::bigint, 'a SECURITY INVOKER plpgsql function with dynamic SQL too');
SELECT is((SELECT count(*) FROM pp.events e1 JOIN pp.events e2 USING (subject_id)), 18::bigint, 'joins see consented rows only');
SELECT is((SELECT sum(n) FROM personalize.fairness_by_group('SELECT item, amount, amount > 30 AS l FROM pp.events', 'item', 'l', 'amount > 50')),
  6::numeric, 'the extension''s metrics functions (fairness_by_group) see consented rows only');
SELECT is((SELECT catalog_items FROM personalize.exposure_by_group('SELECT item, 1 AS rank FROM pp.events',
             'SELECT subject_id AS item, 1 AS g FROM pp.events', 'item', 'g') WHERE group_value = '1'),
  6::bigint, 'and exposure_by_group too');
RESET ROLE;

SET ROLE pp_owner;
SELECT is((SELECT array_agg(DISTINCT subject_id ORDER BY subject_id) FROM pp.events), ARRAY[1, 5]::bigint[],
  'the table owner is covered too (FORCE)');
SELECT is((SELECT array_agg(subject_id) FROM pp.spend()), ARRAY[1, 5]::bigint[], 'also through the owner''s own function');
RESET ROLE;

SET ROLE pp_admin;
SELECT is((SELECT count(*) FROM pp.events), 19::bigint, 'the exempted role sees every row');
RESET ROLE;

-- renaming the exempt role keeps the exemption (the policy finds the role by OID)
ALTER ROLE pp_admin RENAME TO pp_admin_renamed;
SET ROLE pp_admin_renamed;
SELECT is((SELECT count(*) FROM pp.events), 19::bigint, 'the renamed exempt role still sees every row');
RESET ROLE;
SET ROLE pp_analyst;
SELECT is((SELECT array_agg(DISTINCT subject_id ORDER BY subject_id) FROM pp.events), ARRAY[1, 5]::bigint[],
  'and the exemption did not spread to other roles');
RESET ROLE;
SELECT is((SELECT exempt_role::text FROM personalize.protected_tables WHERE relid = 'pp.events'::regclass), 'pp_admin_renamed',
  'protected_tables shows the new name');
SELECT ok((SELECT qual !~ 'pp_admin' FROM pg_policies WHERE tablename = 'events' AND policyname = 'personalize_consent'),
  'the policy holds no role name');
ALTER ROLE pp_admin_renamed RENAME TO pp_admin;
SET ROLE pp_admin;
SELECT is((SELECT array_agg(DISTINCT subject_id ORDER BY subject_id) FROM pp.events
           WHERE personalize.has_consent(subject_id, 'personalization')), ARRAY[1, 5]::bigint[],
  'has_consent agrees with the policy');
RESET ROLE;
SELECT is((SELECT count(*) FROM pp.events), 19::bigint, 'superuser bypasses row-level security (documented)');

SET ROLE pp_nobody;
SELECT throws_ok($$SELECT count(*) FROM pp.events$$, '42501', 'permission denied for table consents',
  'without SELECT on personalize.consents reading a protected table fails closed');
RESET ROLE;

-- writes: inserts are not checked (the row stays invisible), hidden rows cannot be updated or deleted
SET ROLE pp_owner;
GRANT INSERT, UPDATE, DELETE ON pp.events TO pp_analyst;
RESET ROLE;
SET ROLE pp_analyst;
SELECT lives_ok($$INSERT INTO pp.events VALUES (3, 7, 0)$$, 'a row of a subject without consent can be inserted');
SELECT is((SELECT count(*) FROM pp.events WHERE subject_id = 3), 0::bigint, '... and stays invisible');
UPDATE pp.events SET amount = -1 WHERE subject_id IN (2, 3);
DELETE FROM pp.events WHERE subject_id IN (2, 3);
RESET ROLE;
SELECT is((SELECT count(*) FROM pp.events WHERE subject_id IN (2, 3) AND amount >= 0), 7::bigint,
  'UPDATE and DELETE do not reach rows the policy hides');
DELETE FROM pp.events WHERE item = 7;

-- withdrawal takes effect in the next statement, a grant too
SET ROLE pp_admin;
SELECT personalize.set_consent(5, 'personalization', false, 'unsubscribe link');
SELECT personalize.set_consent(4, 'personalization', true);
RESET ROLE;
SET ROLE pp_analyst;
SELECT is((SELECT array_agg(DISTINCT subject_id ORDER BY subject_id) FROM pp.events), ARRAY[1, 4]::bigint[],
  'withdrawal hides rows at once, a new grant shows them');
SELECT is((SELECT array_agg(subject_id) FROM pp.spend()), ARRAY[1, 4]::bigint[], 'functions follow at once');
RESET ROLE;

-- consent state
SET ROLE pp_nobody;
SELECT throws_ok($$SELECT count(*) FROM personalize.current_consent$$, '42501', NULL,
  'current_consent runs as the invoker: no SELECT on consents, no consent state');
RESET ROLE;
SELECT is((SELECT granted FROM personalize.current_consent WHERE subject_id = 2 AND purpose = 'personalization'), false,
  'current_consent shows the latest decision');
SELECT is((SELECT source FROM personalize.current_consent WHERE subject_id = 5 AND purpose = 'personalization'), 'unsubscribe link',
  'current_consent keeps the source');
SELECT is((SELECT count(*) FROM personalize.consents WHERE subject_id = 2), 2::bigint, 'history keeps every decision');
SELECT is(personalize.has_consent(7, 'personalization'), false, 'never asked: no consent');
SELECT is(personalize.has_consent(NULL, 'personalization'), NULL, 'NULL subject: NULL (row hidden)');
SELECT is(personalize.has_consent(6, 'personalization'), false, 'consent is per purpose');
SELECT is(personalize.has_consent(6, 'email'), true, 'granted purpose');

-- append-only history
SELECT throws_ok($$UPDATE personalize.consents SET granted = true WHERE subject_id = 3$$, '55000',
  'consent history is append-only', 'UPDATE is refused, even for a superuser');
SELECT throws_ok($$DELETE FROM personalize.consents WHERE subject_id = 3$$, '55000', NULL, 'DELETE is refused');
SELECT throws_ok($$TRUNCATE personalize.consents$$, '55000', NULL, 'TRUNCATE is refused');

-- personalize.erasing_subject opens nothing: any role may set it, and the roles
-- below even hold DELETE and TRUNCATE on the table (as 0.1.0's docs advised)
SET ROLE pp_admin;
SET LOCAL personalize.erasing_subject = '3';
SELECT throws_ok($$DELETE FROM personalize.consents WHERE subject_id = 3$$, '55000', 'consent history is append-only',
  'an administrator who sets personalize.erasing_subject still cannot DELETE history');
SELECT throws_ok($$TRUNCATE personalize.consents$$, '55000', NULL, '... nor TRUNCATE');
RESET ROLE;
RESET personalize.erasing_subject;
SET ROLE pp_analyst;
SELECT set_config('personalize.erasing_subject', '3', true);
SELECT throws_ok($$DELETE FROM personalize.consents WHERE subject_id = 3$$, '55000', NULL,
  'nor can an analyst with DELETE who sets it');
SELECT throws_ok($$SELECT personalize.forget_consents(3)$$, '42501', NULL,
  'and only administrators may run the erasure step that deletes history');
RESET ROLE;
RESET personalize.erasing_subject;
-- a SECURITY DEFINER function of a role that is not the table's owner runs as that role: refused too
CREATE FUNCTION pp.wipe(s bigint) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ DECLARE n bigint; BEGIN PERFORM set_config('personalize.erasing_subject', s::text, true);
  DELETE FROM personalize.consents WHERE subject_id = s; GET DIAGNOSTICS n = ROW_COUNT; RETURN n; END $$;
ALTER FUNCTION pp.wipe(bigint) OWNER TO pp_admin;
SET ROLE pp_analyst;
SELECT throws_ok($$SELECT pp.wipe(3)$$, '55000', NULL, 'nor a SECURITY DEFINER function of a non-owner');
RESET ROLE;
SELECT is((SELECT count(*) FROM personalize.consents WHERE subject_id = 3), 1::bigint, 'subject 3''s history is intact');
SET ROLE pp_analyst;
SELECT throws_ok($$SELECT personalize.set_consent(1, 'personalization', false)$$, '42501', NULL,
  'recording consent needs INSERT on personalize.consents');
RESET ROLE;
SELECT throws_ok($$SELECT personalize.set_consent(1, '', false)$$, '22023', 'purpose must not be empty', 'empty purpose');
SELECT throws_ok($$SELECT personalize.set_consent(NULL, 'x', false)$$, '22004', NULL, 'NULL subject');
SELECT throws_ok($$SELECT personalize.set_consent(1, 'x', NULL)$$, '22004', NULL, 'NULL decision');

-- protect errors
SET ROLE pp_owner;
CREATE TABLE pp.other (subject text, uid int);
CREATE VIEW pp.v AS SELECT * FROM pp.other;
SELECT throws_ok($$SELECT personalize.protect('pp.events', 'subject_id', 'personalization')$$, '42710',
  'relation "pp.events" is already protected', 'protecting twice');
SELECT throws_ok($$SELECT personalize.protect('pp.other', 'nope', 'p')$$, '42703',
  'column "nope" of relation "pp.other" does not exist', 'unknown column');
SELECT throws_ok($$SELECT personalize.protect('pp.other', 'subject', 'p')$$, '42804', NULL, 'subject column must be an integer');
SELECT throws_ok($$SELECT personalize.protect('pp.v', 'uid', 'p')$$, '42809', NULL, 'views cannot be protected');
SELECT throws_ok($$SELECT personalize.unprotect('pp.other')$$, '42704', 'relation "pp.other" is not protected', 'unprotect an unprotected table');
SELECT throws_ok($$SELECT personalize.protect('pp.other', 'uid', NULL)$$, '22004', NULL, 'NULL purpose');
RESET ROLE;

-- a table that already has a policy: protection narrows it, never widens it
SET ROLE pp_owner;
CREATE TABLE pp.tenant_rows (uid int, tenant name);
INSERT INTO pp.tenant_rows VALUES (1, 'pp_analyst'), (2, 'pp_analyst'), (4, 'pp_admin'), (5, 'pp_analyst');
ALTER TABLE pp.tenant_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON pp.tenant_rows USING (tenant = current_user);
GRANT SELECT ON pp.tenant_rows TO pp_analyst;
SELECT personalize.protect('pp.tenant_rows', 'uid', 'personalization');
RESET ROLE;
SET ROLE pp_analyst;
SELECT is((SELECT array_agg(uid ORDER BY uid) FROM pp.tenant_rows), ARRAY[1], 'existing policy AND consent (subject 4 is another tenant)');
RESET ROLE;

-- erasure
SET ROLE pp_analyst;
SELECT throws_ok($$SELECT * FROM personalize.forget(2)$$, '42501', 'role "pp_analyst" may not erase subjects',
  'forget refuses a role that is not an administrator, before touching anything');
RESET ROLE;
SELECT personalize.grant_admin('pp_nobody');
SET ROLE pp_nobody;
SELECT throws_ok($$SELECT * FROM personalize.forget(2)$$, '42501', 'role "pp_nobody" cannot see every row of "pp.events"',
  'forget refuses an administrator that cannot see every row of a protected table');
RESET ROLE;
REVOKE personalize_admin FROM pp_nobody;
SET ROLE pp_analyst;
RESET ROLE;
SET ROLE pp_owner;
SELECT personalize.unprotect('pp.tenant_rows');
RESET ROLE;
SET ROLE pp_admin;
SELECT is((SELECT array_agg(object || '=' || removed ORDER BY object) FROM personalize.forget(2)),
  ARRAY['models=0', 'personalize.consents=2', 'personalize.prediction_log=0', 'pp.events=3'],
  'forget reports what it touched (the withdrawn subject''s hidden rows included)');
SELECT is((SELECT count(*) FROM pp.events WHERE subject_id = 2), 0::bigint, 'the subject''s rows are gone');
SELECT is((SELECT count(*) FROM personalize.consents WHERE subject_id = 2), 0::bigint, 'and its consent history');
SELECT is((SELECT count(*) FROM pp.events), 16::bigint, 'other subjects untouched');
SELECT is((SELECT touched FROM personalize.erasures ORDER BY id DESC LIMIT 1),
  '{"models": 0, "pp.events": 3, "personalize.consents": 2, "personalize.prediction_log": 0}'::jsonb,
  'audit row: counts per object, no subject identifier');
RESET ROLE;
SELECT is((SELECT erased_by FROM personalize.erasures ORDER BY id DESC LIMIT 1), 'pp_admin'::name, 'audit row names the operator');

-- unprotect restores the table as it was
SET ROLE pp_owner;
SELECT personalize.unprotect('pp.events');
RESET ROLE;
SELECT ok((SELECT NOT relrowsecurity AND NOT relforcerowsecurity FROM pg_class WHERE oid = 'pp.events'::regclass),
  'unprotect disables row-level security it enabled');
SET ROLE pp_analyst;
SELECT is((SELECT count(*) FROM pp.events), 16::bigint, 'unprotected again: every row visible');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
