-- refresh(): the data checks block, the gate keeps a worse challenger and promotes a
-- better one, a failed run changes nothing, rollback undoes a promotion, retention
-- keeps the active version, and a role runs only the refreshes of its own roles.
--
-- Interactions: 400 users in 10 groups, 200 items in 10 groups of 20; a "clean"
-- interaction picks an item of the user's group, a shuffled one gets the item of
-- another, randomly paired, clean interaction (item popularity kept, structure gone).
BEGIN;
SET search_path = public, personalize;
SET client_min_messages = warning;
SELECT plan(44);

SELECT setseed(0.5);
CREATE TABLE ev (user_id bigint, item_id bigint, weight real, occurred_at timestamptz);
CREATE FUNCTION pg_temp.add(per_user int, from_days int, to_days int, shuffled boolean) RETURNS void LANGUAGE sql AS $$
	WITH clean AS MATERIALIZED (
		SELECT u AS user_id, ((u % 10) * 20 + floor(random() * 20))::bigint AS item_id,
		       now() - from_days * interval '1 day' + random() * (from_days - to_days) * interval '1 day' AS occurred_at,
		       row_number() OVER (ORDER BY u, k) AS n
		FROM generate_series(1, 400) u, generate_series(1, per_user) k),
	-- a separate query: the planner would compute an identical random() in the same
	-- target list as the sort key only once
	pairing AS MATERIALIZED (SELECT c.n, row_number() OVER (ORDER BY random()) AS other FROM clean c)
	INSERT INTO ev
	SELECT c.user_id, CASE WHEN shuffled THEN o.item_id ELSE c.item_id END, 1, c.occurred_at
	FROM clean c JOIN pairing p ON p.n = c.n JOIN clean o ON o.n = p.other $$;

-- stage 1: shuffled history, 90 to 60 days ago; the first refresh has nothing to compare with
SELECT pg_temp.add(10, 90, 60, true);
SELECT lives_ok($$SELECT register_refresh('gate', 'ev', 'als', '{"factors": 8, "iterations": 10}',
                  '{"holdout": "3 days", "keep": 10, "checks": {"thresholds": {"freshness": "120 days"}}}')$$, 'register');
SELECT is((SELECT source FROM refreshes WHERE model_name = 'gate'), 'public.ev', 'the source is stored schema-qualified');
CREATE TEMP TABLE r1 AS SELECT * FROM refresh('gate');
SELECT is((SELECT row(status, reason, champion_version, challenger_version, warm_start) FROM r1),
          row('promoted'::text, 'no active version to compare with'::text, NULL::int, 1, false),
          'first refresh: promoted, nothing to compare with');
SELECT is((SELECT version FROM models WHERE name = 'gate' AND active), 1, 'version 1 serves');
SELECT ok((SELECT trained_until = (SELECT max(occurred_at) FROM ev) - interval '3 days' FROM r1), 'trained on the rows before the holdout window');
SELECT is((SELECT training_rows FROM r1), (SELECT count(*) FROM ev WHERE occurred_at < (SELECT trained_until FROM r1)),
          'and only on them');

-- stage 2: clean interactions 59 to 30 days ago: the challenger is better, and promoted
SELECT pg_temp.add(15, 59, 30, false);
CREATE TEMP TABLE r2 AS SELECT * FROM refresh('gate');
SELECT is((SELECT status FROM r2), 'promoted', 'better challenger: promoted');
SELECT ok((SELECT challenger_score > champion_score FROM r2), 'its ndcg@10 on the holdout window is higher');
SELECT ok((SELECT reason ~ '^challenger ndcg_at_k [0-9.]+ >= champion [0-9.]+ - max_drop 0 over [0-9]+ users$' FROM r2), 'the reason says why');
SELECT is((SELECT row(champion_version, challenger_version, warm_start) FROM r2), row(1, 2, true),
          'version 2 over version 1, warm-started from its factors');
SELECT is((SELECT options ->> 'warm_start' FROM models WHERE name = 'gate' AND version = 2), 'gate', 'the stored options name the warm start');
SELECT is((SELECT (options ->> 'iterations')::int FROM models WHERE name = 'gate' AND version = 2), 5, 'with half the iterations');
SELECT is((SELECT version FROM models WHERE name = 'gate' AND active), 2, 'version 2 serves');
SELECT is((SELECT jsonb_array_length(drift) FROM r2), 5, 'the run records the drift of the window from version 1');
SELECT ok((SELECT (champion_metrics ->> 'users')::int = (challenger_metrics ->> 'users')::int AND (champion_metrics ->> 'users')::int > 100 FROM r2),
          'both were evaluated on the same users');

-- stage 3: heavy shuffled interactions 29 to 4 days ago, then clean ones: the challenger is worse, and kept out
SELECT pg_temp.add(40, 29, 4, true);
SELECT pg_temp.add(3, 3, 0, false);
CREATE TEMP TABLE served AS SELECT u, r.item_id, r.rank FROM generate_series(1, 20) u, recommend('gate', u, 5) r;
CREATE TEMP TABLE r3 AS SELECT * FROM refresh('gate');
SELECT is((SELECT status FROM r3), 'kept', 'worse challenger (shuffled items): the champion is kept');
SELECT ok((SELECT challenger_score < champion_score FROM r3), 'its ndcg@10 is lower');
SELECT ok((SELECT reason ~ '^challenger ndcg_at_k [0-9.]+ < champion [0-9.]+ - max_drop 0 over [0-9]+ users$' FROM r3), 'the reason says why');
SELECT is((SELECT version FROM models WHERE name = 'gate' AND active), 2, 'version 2 still serves');
SELECT is((SELECT active FROM models WHERE name = 'gate' AND version = 3), false, 'the challenger is stored, inactive, for inspection');
SELECT results_eq($$SELECT u, r.item_id, r.rank FROM generate_series(1, 20) u, recommend('gate', u, 5) r$$,
                  'SELECT * FROM served', 'recommendations are unchanged');

-- a max_drop tolerates a small loss
UPDATE refreshes SET gate = gate || jsonb_build_object('max_drop', (SELECT champion_score - challenger_score FROM r3) + 0.01)
WHERE model_name = 'gate';
SELECT is((SELECT status FROM refresh('gate')), 'promoted', 'with max_drop above the loss, the same challenger is promoted');
SELECT lives_ok($$SELECT rollback('gate')$$, 'rollback');
SELECT is((SELECT version FROM models WHERE name = 'gate' AND active), 2, 'rollback: the version active before the promotion serves again');
SELECT lives_ok($$SELECT rollback('gate')$$, 'rollback once more');
SELECT is((SELECT version FROM models WHERE name = 'gate' AND active), 1, 'and once more: version 1, which version 2 replaced');
SELECT throws_ok($$SELECT rollback('gate')$$, '55000', 'model "gate" has no earlier promoted version to roll back to',
                 'nothing before the first promotion');
SELECT activate('gate', 2);

-- stage 4: rows with NULL user ids: blocked by the data checks, nothing trained
INSERT INTO ev SELECT NULL, 1, 1, now() - interval '1 hour' FROM generate_series(1, 5);
SELECT is((SELECT count(*) FROM models WHERE name = 'gate'), 4::bigint, 'four versions before the blocked run');
CREATE TEMP TABLE r4 AS SELECT * FROM refresh('gate');
SELECT is((SELECT row(status, reason, challenger_version) FROM r4), row('blocked'::text, 'data checks failed: null_user_ids'::text, NULL::int),
          'NULL user ids: blocked by the data checks');
SELECT is((SELECT f ->> 'check_name' FROM r4, jsonb_array_elements(failed_checks) f WHERE f ->> 'severity' = 'error'), 'null_user_ids',
          'the failed check is recorded with its severity');
SELECT is((SELECT count(*) FROM models WHERE name = 'gate'), 4::bigint, 'no version was added');
SELECT results_eq($$SELECT u, r.item_id, r.rank FROM generate_series(1, 20) u, recommend('gate', u, 5) r$$,
                  'SELECT * FROM served', 'the champion serves as before');
DELETE FROM ev WHERE user_id IS NULL;

-- a failing run (the source lost a column) is recorded with its error, and changes nothing
ALTER TABLE ev RENAME occurred_at TO happened_at;
CREATE TEMP TABLE r5 AS SELECT * FROM refresh('gate');
SELECT is((SELECT status FROM r5), 'failed', 'a schema change fails the run');
SELECT is((SELECT error FROM r5), 'column s.occurred_at does not exist (SQLSTATE 42703)', 'with the error and its SQLSTATE');
SELECT is((SELECT count(*) FROM models WHERE name = 'gate'), 4::bigint, 'and leaves the models as they were');
ALTER TABLE ev RENAME happened_at TO occurred_at;

-- the runs, and the last run per model
SELECT is((SELECT array_agg(status ORDER BY run_id) FROM refresh_runs WHERE model_name = 'gate'),
          ARRAY['promoted', 'promoted', 'kept', 'promoted', 'blocked', 'failed'], 'every run is a row of refresh_runs');
SELECT is((SELECT row(status, needs_attention, active_version) FROM refresh_status WHERE model_name = 'gate'),
          row('failed'::text, true, 2), 'refresh_status: the last run, and that it needs attention');

-- retention: keep 2 versions; the active one is never pruned
SELECT activate('gate', 2);
UPDATE refreshes SET gate = gate - 'max_drop' || '{"keep": 2}' WHERE model_name = 'gate';
SELECT is((SELECT status FROM refresh('gate')), 'kept', 'version 2 is kept over a challenger trained on the shuffled rows');
SELECT is((SELECT array_agg(version ORDER BY version) FROM models WHERE name = 'gate'),
          ARRAY[2, 4, 5], 'keep 2: the two newest versions, and the active one');

-- a role sees and runs only refreshes registered by its roles; administrators all of them
CREATE ROLE gate_other;
CREATE ROLE gate_admin;
SELECT grant_analyst('gate_other'), grant_admin('gate_admin');
GRANT SELECT ON ev TO personalize_analyst;
SET LOCAL ROLE gate_other;
SELECT is((SELECT count(*) FROM refreshes), 0::bigint, 'another analyst does not see the registration');
SELECT throws_ok($$SELECT refresh('gate')$$, '42704', 'model "gate" has no registered refresh', 'nor run it');
SELECT throws_ok($$SELECT register_refresh('gate', 'public.ev', 'als')$$, '42501', 'must be owner of model "gate"',
                 'nor register a refresh of a model it does not own');
SELECT lives_ok($$SELECT register_refresh('gate_mine', 'public.ev', 'popularity')$$, 'an analyst registers its own');
RESET ROLE;
SET LOCAL ROLE gate_admin;
SELECT is((SELECT array_agg(model_name ORDER BY model_name) FROM refreshes), ARRAY['gate', 'gate_mine'],
          'an administrator sees every registration');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
