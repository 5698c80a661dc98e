-- Citus suite, consent: a protected distributed table (and a co-located one,
-- and a reference table) shows an analyst exactly the rows of subjects whose
-- latest decision is a grant, on every query shape, from the next statement
-- after a change. Expected values are computed from the generated rows and the
-- consent history by plain SQL as a superuser (not through the policy).
SET client_min_messages = warning;
SELECT plan(47);

-- pgTAP keeps its state on the coordinator: a statement that Citus would route
-- to a worker as a whole (a router query) runs inside q() instead
SET client_min_messages = error;
CREATE FUNCTION pg_temp.q(query text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE v numeric;
BEGIN
	EXECUTE query INTO v;
	RETURN v;
END $$;
SET client_min_messages = warning;

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pz_owner') THEN
		CREATE ROLE pz_owner LOGIN;
	END IF;
END $$;

CREATE TABLE public.events (user_id bigint NOT NULL, item_id bigint NOT NULL, weight real NOT NULL);
SELECT create_distributed_table('public.events', 'user_id', shard_count => 8);
INSERT INTO public.events
SELECT s, (s * 7 + k * 13) % 50, 1 + k % 3 FROM generate_series(1, 300) s, generate_series(1, 3 + s % 7) k;
CREATE TABLE public.orders (user_id bigint NOT NULL, amount numeric NOT NULL);
SELECT create_distributed_table('public.orders', 'user_id', colocate_with => 'public.events');
INSERT INTO public.orders SELECT s, s * 1.5 FROM generate_series(1, 300) s;
CREATE TABLE public.consent_segments (user_id bigint NOT NULL, segment text NOT NULL);
SELECT create_reference_table('public.consent_segments');
INSERT INTO public.consent_segments SELECT s, 'seg' || s % 4 FROM generate_series(1, 300) s;
CREATE TABLE public.copy_dist (user_id bigint, item_id bigint, weight real);
SELECT create_distributed_table('public.copy_dist', 'user_id', colocate_with => 'public.events');
CREATE TABLE public.copy_local (user_id bigint, item_id bigint, weight real);

-- every subject grants; a third withdraws later; some withdraw and grant again
SELECT count(personalize.set_consent(s, 'personalization', true, 'signup')) FROM generate_series(1, 300) s;
SELECT count(personalize.set_consent(s, 'personalization', false)) FROM generate_series(1, 300) s WHERE s % 3 = 0 OR s % 5 = 0;
SELECT count(personalize.set_consent(s, 'personalization', true)) FROM generate_series(1, 300) s WHERE s % 5 = 0 AND s % 3 <> 0;
SELECT count(personalize.set_consent(s, 'marketing', s % 2 = 0)) FROM generate_series(1, 300) s;

-- the expectation: all rows copied locally before protection, the latest decision from the history
CREATE TABLE public.all_rows AS SELECT * FROM public.events;
CREATE TABLE public.latest AS
SELECT DISTINCT ON (subject_id, purpose) subject_id, purpose, granted FROM personalize.consents ORDER BY subject_id, purpose, seq DESC;
CREATE TABLE public.visible AS
SELECT a.* FROM public.all_rows a JOIN public.latest l ON l.subject_id = a.user_id AND l.purpose = 'personalization' AND l.granted;

SELECT is((SELECT count(DISTINCT user_id) FROM public.visible), 200::bigint, 'the generated set: 200 of 300 subjects consent');

SELECT lives_ok($$SELECT personalize.protect('public.events', 'user_id', 'personalization', 'pz_admin')$$, 'protect a distributed table');
SELECT lives_ok($$SELECT personalize.protect('public.orders', 'user_id', 'personalization')$$, 'protect a co-located table');
SELECT lives_ok($$SELECT personalize.protect('public.consent_segments', 'user_id', 'personalization')$$, 'protect a reference table');
SELECT is((SELECT array_agg(DISTINCT result) FROM run_command_on_shards('public.events',
	$$SELECT count(*) FROM pg_policy WHERE polrelid = '%s'::regclass AND polpermissive
	  AND pg_get_expr(polqual, polrelid) LIKE '%%has_consent_on_node%%'$$)), '{1}',
	'every shard carries the permissive policy calling has_consent_on_node');

GRANT USAGE ON SCHEMA personalize TO pz_analyst, pz_admin, pz_blind, pz_owner;
GRANT SELECT ON personalize.consent_state TO pz_analyst, pz_admin, pz_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.events TO pz_analyst, pz_admin, pz_blind;
GRANT SELECT ON public.orders, public.consent_segments TO pz_analyst, pz_admin;
GRANT INSERT, SELECT ON public.copy_dist, public.copy_local TO pz_analyst;
-- training: the analyst role of the extension (administration.md), which has what train() needs
SELECT personalize.grant_analyst('pz_analyst');
GRANT SELECT ON public.all_rows, public.visible TO pz_analyst, pz_admin, pz_blind, pz_owner;
ALTER TABLE public.orders OWNER TO pz_owner;

-- ---------------------------------------------------------------- query shapes
SET ROLE pz_analyst;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events$q$), ((SELECT count(*) FROM public.visible))::numeric,
	'multi-shard scan: exactly the consenting subjects'' rows');
SELECT is(pg_temp.q($q$SELECT count(DISTINCT user_id) FROM public.events$q$), (200::bigint)::numeric, 'multi-shard: 200 subjects');
SELECT is(pg_temp.q($q$SELECT sum(weight) FROM public.events$q$), ((SELECT sum(weight) FROM public.visible))::numeric, 'aggregate pushed to the shards');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE user_id = 1$q$), ((SELECT count(*) FROM public.visible WHERE user_id = 1))::numeric,
	'router query, a consenting subject: all their rows');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE user_id = 3$q$), (0::bigint)::numeric, 'router query, a withdrawn subject: none');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE user_id = 10$q$), ((SELECT count(*) FROM public.visible WHERE user_id = 10))::numeric,
	'router query, a subject who withdrew and granted again: all their rows');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events e JOIN public.orders o USING (user_id)$q$), ((SELECT count(*) FROM public.visible))::numeric, 'co-located join: both sides filtered on their shards');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.orders WHERE user_id IN (SELECT user_id FROM public.events)$q$), (200::bigint)::numeric,
	'subquery in WHERE');
SELECT is(pg_temp.q($q$WITH x AS (SELECT user_id, row_number() OVER (PARTITION BY user_id) AS rn FROM public.events)
           SELECT count(*) FROM x WHERE rn = 1$q$), (200::bigint)::numeric, 'CTE with a window partitioned by the distribution column');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.consent_segments$q$), (200::bigint)::numeric, 'reference table: the consenting subjects only');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events e JOIN public.consent_segments s USING (user_id) WHERE s.segment = 'seg1'$q$), ((SELECT count(*) FROM public.visible WHERE user_id % 4 = 1))::numeric, 'join with a protected reference table');
SET citus.enable_repartition_joins = on;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events a JOIN public.events b ON a.item_id = b.item_id$q$), ((SELECT sum(n * n)::bigint FROM (SELECT count(*) AS n FROM public.visible GROUP BY item_id) c))::numeric,
	'repartition join on a non-distribution column');
RESET citus.enable_repartition_joins;
INSERT INTO public.copy_dist SELECT * FROM public.events;
INSERT INTO public.copy_local SELECT * FROM public.events;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.copy_dist$q$), ((SELECT count(*) FROM public.visible))::numeric, 'INSERT ... SELECT pushed down: consenting rows only');
SELECT is((SELECT count(*) FROM public.copy_local), (SELECT count(*) FROM public.visible), 'INSERT ... SELECT through the coordinator: consenting rows only');
SELECT is(pg_temp.q($q$WITH u AS (UPDATE public.events SET weight = weight WHERE user_id = 3 RETURNING 1) SELECT count(*) FROM u$q$), (0::bigint)::numeric,
	'UPDATE does not reach a withdrawn subject''s rows');
SELECT is(pg_temp.q($q$WITH d AS (DELETE FROM public.events WHERE user_id = 3 RETURNING 1) SELECT count(*) FROM d$q$), (0::bigint)::numeric,
	'DELETE does not reach them');
INSERT INTO public.events VALUES (3, 999, 1);
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE item_id = 999$q$), (0::bigint)::numeric, 'an inserted row of a withdrawn subject is stored, not shown');
RESET ROLE;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE item_id = 999$q$), (1::bigint)::numeric, '(it is stored)');
DELETE FROM public.events WHERE item_id = 999;

-- ---------------------------------------------------------------- withdrawal, from the next statement
SET ROLE pz_analyst;
-- a prepared router query, executed often enough for a cached generic plan
PREPARE one_subject(bigint) AS SELECT count(*) FROM public.events WHERE user_id = $1;
\o /dev/null
EXECUTE one_subject(2); EXECUTE one_subject(2); EXECUTE one_subject(2); EXECUTE one_subject(2); EXECUTE one_subject(2); EXECUTE one_subject(2);
\o
CREATE TEMP TABLE prepared_before AS EXECUTE one_subject(2);
SELECT is((SELECT count FROM prepared_before), (SELECT count(*) FROM public.visible WHERE user_id = 2), 'the prepared query before');
RESET ROLE;
SELECT personalize.set_consent(2, 'personalization', false, 'preference center');
SET ROLE pz_analyst;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events$q$), ((SELECT count(*) FROM public.visible WHERE user_id <> 2))::numeric,
	'the statement after a withdrawal: the subject''s rows are gone (multi-shard)');
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE user_id = 2$q$), (0::bigint)::numeric, 'and from a router query');
CREATE TEMP TABLE prepared_after AS EXECUTE one_subject(2);
SELECT is((SELECT count FROM prepared_after), 0::bigint, 'and from the cached prepared statement');
RESET ROLE;
SELECT personalize.set_consent(2, 'personalization', true);
SET ROLE pz_analyst;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events$q$), ((SELECT count(*) FROM public.visible))::numeric, 'a new grant shows them again');
RESET ROLE;
-- recorded in a transaction block: hidden from the first statement after COMMIT
-- (statements inside that transaction may run over other connections and are not
-- guaranteed to see it: doc/scale-out.md); a rolled-back withdrawal changes nothing
BEGIN;
SELECT personalize.set_consent(4, 'personalization', false);
COMMIT;
SET ROLE pz_analyst;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE user_id = 4$q$), 0::numeric,
	'a withdrawal committed in a transaction block: hidden from the next statement');
RESET ROLE;
SELECT personalize.set_consent(4, 'personalization', true);
BEGIN;
SELECT personalize.set_consent(4, 'personalization', false);
ROLLBACK;
SET ROLE pz_analyst;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events WHERE user_id = 4$q$), ((SELECT count(*) FROM public.visible WHERE user_id = 4))::numeric,
	'a rolled-back withdrawal changes nothing');
RESET ROLE;

-- ---------------------------------------------------------------- roles
SET ROLE pz_admin;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.events$q$), ((SELECT count(*) FROM public.all_rows))::numeric, 'the exempt role sees every row');
RESET ROLE;
SET ROLE pz_owner;
SELECT is(pg_temp.q($q$SELECT count(*) FROM public.orders$q$), (200::bigint)::numeric, 'the table owner is not exempt (FORCE ROW LEVEL SECURITY)');
RESET ROLE;
-- the policy of a Citus table names the exempt role: renamed, reads fail (closed) until protect() again
ALTER ROLE pz_admin RENAME TO pz_admin_renamed;
SET ROLE pz_analyst;
SELECT throws_ok($$SELECT count(*) FROM public.events$$, '42704', NULL,
	'after renaming the exempt role, reading the protected Citus table fails instead of showing rows');
RESET ROLE;
ALTER ROLE pz_admin_renamed RENAME TO pz_admin;
SET ROLE pz_blind;
SELECT throws_ok($$SELECT count(*) FROM public.events$$, '42501', 'permission denied for table consent_state',
	'a role that may not read consent state gets an error, not rows');
RESET ROLE;

-- ---------------------------------------------------------------- the two checks agree
SELECT is((SELECT count(*) FROM generate_series(1, 310) s, (VALUES ('personalization'), ('marketing'), ('never')) p(p)
           WHERE personalize.has_consent(s, p) IS DISTINCT FROM personalize.has_consent_on_node(s, p)), 0::bigint,
	'has_consent_on_node (the replica) agrees with has_consent (the history) for every subject and purpose');
SELECT is((SELECT array_agg(DISTINCT result) FROM run_command_on_workers(
	$$SELECT count(*) FROM generate_series(1, 310) s WHERE personalize.has_consent_on_node(s, 'personalization')$$)), '{200}',
	'every worker''s copy holds the same 200 grants');

-- ---------------------------------------------------------------- training as the analyst
SET ROLE pz_analyst;
SELECT is((SELECT personalize.train('consented_als', 'als', 'public.events', '{"factors": 4, "iterations": 2}')), 1,
	'train ALS from the protected distributed table (on the nodes)');
SELECT results_eq($$SELECT users, rows FROM personalize.models WHERE name = 'consented_als'$$,
	$$SELECT count(DISTINCT user_id), count(*) FROM public.visible$$,
	'the model learned from exactly the consenting subjects'' rows');
SELECT is((SELECT personalize.train('consented_knn_nodes', 'itemknn', 'public.events', '{"neighbors": 5}')), 1,
	'train item-kNN from the protected distributed table (on the nodes)');
SELECT results_eq($$SELECT users, rows FROM personalize.models WHERE name = 'consented_knn_nodes'$$,
	$$SELECT count(DISTINCT user_id), count(*) FROM public.visible$$,
	'the item-kNN model learned from exactly the consenting subjects'' rows');
SELECT is((SELECT personalize.train('consented_knn', 'itemknn', 'SELECT * FROM public.events WHERE user_id % 2 = 0', '{}')), 1,
	'train item-kNN from a query over it (rows gathered)');
SELECT results_eq($$SELECT rows FROM personalize.models WHERE name = 'consented_knn'$$,
	$$SELECT count(*) FROM public.visible WHERE user_id % 2 = 0$$, 'gathered rows are filtered on the shards too');
RESET ROLE;

-- ---------------------------------------------------------------- protect / unprotect, erasure
SELECT lives_ok($$SELECT personalize.unprotect('public.orders')$$, 'unprotect a Citus table');
SELECT is((SELECT array_agg(DISTINCT result) FROM run_command_on_shards('public.orders',
	$$SELECT count(*) FROM pg_policy WHERE polrelid = '%s'::regclass$$)), '{0}', 'its shards lose the policy');
CREATE POLICY mine ON public.orders USING (true);
SELECT throws_ok($$SELECT personalize.protect('public.orders', 'user_id', 'personalization')$$, '0A000', NULL,
	'a Citus table with a policy of its own is refused (consent could not narrow it on the shards)');
DROP POLICY mine ON public.orders;
SELECT is((SELECT removed FROM personalize.forget(5) WHERE object = 'public.events'), (SELECT count(*) FROM public.all_rows WHERE user_id = 5),
	'forget() deletes the subject''s rows from the distributed table');
SELECT is((SELECT count(*) FROM personalize.consent_state WHERE subject_id = 5), 0::bigint, 'and their replicated consent state');

SELECT personalize.unprotect('public.events');
SELECT personalize.unprotect('public.consent_segments');
DROP TABLE public.events, public.orders, public.consent_segments, public.copy_dist, public.copy_local, public.all_rows,
	public.latest, public.visible;
SELECT count(personalize.drop_model(name)) FROM (SELECT DISTINCT name FROM personalize.models) m;
SELECT * FROM finish();
