-- The scale-out objects without Citus (doc/scale-out.md): nothing is distributed,
-- the consent replica stays empty (so its check answers no), and the functions that
-- the nodes of a distributed training call reject what does not belong to a run
-- of this backend and role, in order, with clear errors (never a crash).
BEGIN;
SELECT plan(20);

SELECT is(personalize.citus_table_type('personalize.consents'), NULL, 'no Citus: no table is a Citus table');
SELECT is(personalize.distributed_training_source('personalize.consents'), NULL, 'no Citus: train gathers its source');
SELECT throws_ok($$SELECT * FROM personalize.distribute_catalog()$$, '0A000', NULL, 'distribute_catalog needs Citus');
SELECT throws_ok($$SELECT personalize.citus_consent_predicate('personalize.consents', 'subject_id', 'p', NULL)$$, '55000', NULL,
	'a Citus policy needs the replicated consent state');
SELECT throws_ok($$SELECT personalize.citus_consent_predicate(NULL, 'subject_id', 'p', NULL)$$, '22004', NULL,
	'NULL table');
SELECT personalize.set_consent(1, 'p', true);
SELECT is((SELECT count(*) FROM personalize.consent_state), 0::bigint, 'recording consent without Citus leaves the replica empty');
SELECT is(personalize.has_consent_on_node(1, 'p'), false, 'so the node check is closed there (local tables use the history)');
SELECT is(personalize.has_consent_on_node(NULL, 'p'), NULL, 'NULL subject: NULL');

-- the node side of a training, in one backend
CREATE TEMP TABLE rows3 (user_id bigint, item_id bigint, weight real);
INSERT INTO rows3 VALUES (1, 10, 1), (1, 11, 2), (2, 10, 1), (3, NULL, 1);
SELECT throws_ok($$SELECT personalize.train_round(7, 1, '\x')$$, '40001', NULL, 'a run this backend does not hold');
SELECT is((SELECT count(*) FROM rows3 s WHERE personalize.train_absorb(7, 'rows3'::regclass, s.user_id, s.item_id, s.weight) IS NOT NULL),
	4::bigint, 'absorbing rows: each of the first rows of the first shard is an anchor');
SELECT throws_ok($$SELECT personalize.train_round(7, 1, '\x00')$$, '22P03', NULL, 'a message too short');
SELECT throws_ok($$SELECT personalize.train_round(7, 2, '\xdeadbeef01000000')$$, '22P03', NULL, 'a message of another format');
-- magic "PTR1" in native (x86-64) byte order, then the command
SELECT throws_ok($$SELECT personalize.train_round(7, 3, '\x3152545003000000')$$, '22023',
	'training command 3 out of order in run 7', 'factors before the setup');
SELECT throws_ok($$SELECT personalize.train_round(7, 4, '\x3152545009000000')$$, '22023', NULL, 'an unknown command');
SELECT is((SELECT count(*) FROM personalize.train_round(7, 5, '\x3152545001000000')), 1::bigint, 'the summary: one answer');
SELECT is((SELECT count(*) FROM personalize.train_round(7, 5, '\x3152545001000000')), 0::bigint,
	'the same round again: no answer (one per backend)');
SELECT throws_ok($$SELECT personalize.train_round(7, 6, '\x3152545001000000')$$, '22023', NULL, 'a second summary');
SELECT throws_ok($$SELECT personalize.train_absorb(7, 'rows3'::regclass, 1, 1, 1)$$, '22023', NULL, 'rows after the summary');
-- setup with 100 threads (f 8, cg 3, threads 100, alpha, reg, seed, 0 users, 0 items)
SELECT throws_ok(pg_catalog.format($$SELECT personalize.train_round(7, 7, %L)$$,
	'\x3152545002000000'::bytea || '\x08000000'::bytea || '\x03000000'::bytea || '\x64000000'::bytea
	|| '\x0000000000000040'::bytea || '\x9a9999999999a93f'::bytea || '\x2a00000000000000'::bytea
	|| '\x00000000'::bytea || '\x00000000'::bytea), '22023', 'invalid training setup message',
	'a setup message is checked on the node too');
CREATE ROLE pz_other_role;
SET LOCAL ROLE pz_other_role;
SELECT throws_ok($$SELECT personalize.train_round(7, 8, '\x3152545001000000')$$, '42501', NULL, 'another role may not use the run');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
