-- Citus suite, setup: roles, the extension's tables distributed, and what
-- protect() refuses before that. Runs first (run.sh created the extension).
SET client_min_messages = warning;
SELECT plan(14);

-- roles are cluster-wide: created once, propagated to the workers by Citus;
-- LOGIN because Citus connects to the workers as the current role
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pz_analyst') THEN
		CREATE ROLE pz_analyst LOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pz_admin') THEN
		CREATE ROLE pz_admin LOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pz_blind') THEN
		CREATE ROLE pz_blind LOGIN;
	END IF;
END $$;

CREATE TABLE public.early (user_id bigint, item_id bigint, weight real);
SELECT create_distributed_table('public.early', 'user_id', shard_count => 4);

SELECT is(personalize.citus_table_type('public.early'), 'distributed', 'a hash-distributed table is "distributed"');
SELECT is(personalize.citus_table_type('personalize.models'), NULL, 'a local table is not a Citus table');
SELECT throws_ok($$SELECT personalize.protect('public.early', 'user_id', 'p')$$, '55000',
	'consent state is not replicated to the Citus nodes',
	'protect() on a Citus table before distribute_catalog() is refused, not left open');
SELECT is((SELECT count(*) FROM pg_policy WHERE polrelid = 'public.early'::regclass), 0::bigint,
	'the refused protect() left no policy behind');
SELECT throws_ok($$SELECT personalize.distribute_catalog(0)$$, '22023', NULL, 'shard_count must be positive');

SELECT results_eq(
	$$SELECT table_name::text, citus_type FROM personalize.distribute_catalog(8) ORDER BY 1$$,
	$$VALUES ('personalize.assignments', 'distributed'), ('personalize.consent_state', 'reference'),
	         ('personalize.experiment_arms', 'reference'), ('personalize.experiment_strata', 'reference'),
	         ('personalize.experiments', 'reference'), ('personalize.outcomes', 'distributed'),
	         ('personalize.train_runs', 'reference')$$,
	'distribute_catalog: the consent replica, experiment catalogs and run table are reference tables, assignments and outcomes distributed');
SELECT results_eq(
	$$SELECT count(*)::int FROM personalize.distribute_catalog(8)$$, $$VALUES (7)$$,
	'distribute_catalog() again leaves distributed tables as they are');
SELECT is((SELECT count(DISTINCT colocationid) FROM pg_dist_partition
           WHERE logicalrelid IN ('personalize.assignments'::regclass, 'personalize.outcomes'::regclass)), 1::bigint,
	'assignments and outcomes are co-located by unit_id');
SELECT is((SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('personalize.experiment_arms'::regclass,
             'personalize.assignments'::regclass, 'personalize.experiment_strata'::regclass, 'personalize.outcomes'::regclass)), 4::bigint,
	'the foreign keys of the experiment tables are back');
SELECT throws_ok($$INSERT INTO personalize.assignments (experiment, unit_id, arm) VALUES ('nope', 1, 'a')$$, '23503', NULL,
	'and enforced on the distributed assignments');

SELECT lives_ok($$SELECT personalize.protect('public.early', 'user_id', 'p')$$, 'after distribute_catalog() protect() works');
SELECT is((SELECT polpermissive FROM pg_policy WHERE polrelid = 'public.early'::regclass AND polname = 'personalize_consent'),
	true, 'on a Citus table the consent policy is the one permissive policy (Citus drops AS RESTRICTIVE on shards)');
SELECT personalize.unprotect('public.early');
DROP TABLE public.early;
-- a table protected while local: Citus refuses to distribute it with its policy
CREATE TABLE public.was_local (user_id bigint);
SELECT personalize.protect('public.was_local', 'user_id', 'p');
SELECT throws_ok($$SELECT create_distributed_table('public.was_local', 'user_id')$$, '0A000', 'cannot create policy',
	'a locally protected table is not distributed with a policy Citus cannot run');
SELECT personalize.unprotect('public.was_local');
SELECT create_distributed_table('public.was_local', 'user_id', shard_count => 4);
SELECT lives_ok($$SELECT personalize.protect('public.was_local', 'user_id', 'p')$$, 'unprotect, distribute, protect again');
SELECT personalize.unprotect('public.was_local');
DROP TABLE public.was_local;

SELECT * FROM finish();
