-- training_progress: another session's train() and refresh() are seen while they run
-- (phase, rows read, iteration i of n, elapsed seconds), by roles allowed to see that
-- session, and not after they end. The work runs in dblink sessions.
BEGIN;
SET search_path = public, personalize;
SET client_min_messages = warning;
SELECT plan(18);

CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TEMP TABLE conn AS
SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
              split_part(current_setting('unix_socket_directories'), ',', 1)) AS s;
SELECT dblink_connect('progress_worker', (SELECT s FROM conn));
SELECT pid AS worker FROM dblink('progress_worker', 'SELECT pg_backend_pid()') AS t(pid int) \gset
-- leftovers of an interrupted run (the worker's work is committed)
SELECT dblink_exec('progress_worker', $q$
	DELETE FROM personalize.refreshes WHERE model_name = 'progress_refresh';
	DELETE FROM personalize.refresh_runs WHERE model_name = 'progress_refresh';
	DELETE FROM personalize.models WHERE name IN ('progress_refresh', 'progress_model');
	DROP TABLE IF EXISTS public.progress_events$q$);

-- samples of the view, taken every 20 ms while the worker is busy
CREATE TEMP TABLE samples (n serial, operation text, model_name text, phase text, rows_read bigint, iteration int,
                           iterations int, loss float8, seconds float8, role name);
CREATE FUNCTION pg_temp.sample_until_done(worker int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	WHILE dblink_is_busy('progress_worker') = 1 LOOP
		PERFORM pg_stat_clear_snapshot();	-- activity is read once per transaction otherwise
		INSERT INTO samples (operation, model_name, phase, rows_read, iteration, iterations, loss, seconds, role)
		SELECT p.operation, p.model_name, p.phase, p.rows_read, p.iteration, p.iterations, p.loss, p.seconds, p.role
		FROM personalize.training_progress p WHERE p.pid = worker;
		PERFORM pg_sleep(0.02);
	END LOOP;
END $$;

-- a training of a few seconds: 300,000 rows, 32 factors, 6 iterations
SELECT dblink_exec('progress_worker', $q$
	SET client_min_messages = warning;
	CREATE TEMP TABLE progress_rows AS
	SELECT (g % 20000)::bigint AS user_id, ((g::bigint * 7919) % 3000) AS item_id, 1::real AS weight FROM generate_series(1, 300000) g$q$);
SELECT dblink_send_query('progress_worker',
	$q$SELECT personalize.train('progress_model', 'als', 'progress_rows', '{"factors": 32, "iterations": 6, "calculate_loss": true}')$q$);
SELECT pg_temp.sample_until_done(:worker);
SELECT * FROM dblink_get_result('progress_worker') AS t(version int);
SELECT * FROM dblink_get_result('progress_worker') AS t(version int);	-- the end of the results

SELECT ok((SELECT count(*) FROM samples) >= 5, 'the running training was seen');
SELECT is((SELECT array_agg(DISTINCT operation) FROM samples), ARRAY['train'], 'as a train');
SELECT is((SELECT array_agg(DISTINCT model_name) FROM samples), ARRAY['progress_model'], 'of progress_model');
SELECT is((SELECT array_agg(DISTINCT role) FROM samples), ARRAY[current_user::name], 'by this role');
SELECT ok((SELECT bool_and(phase = ANY (ARRAY['reading rows', 'building', 'training', 'storing'])) FROM samples),
          'in the phases of a training');
SELECT ok(EXISTS (SELECT FROM samples WHERE phase = 'training'), 'training iterations were seen');
SELECT is((SELECT array_agg(DISTINCT iterations) FROM samples WHERE phase = 'training'), ARRAY[6], 'iteration i of 6');
SELECT ok((SELECT bool_and(iteration BETWEEN 1 AND 6) FROM samples WHERE phase = 'training'), 'with i between 1 and 6');
SELECT ok((SELECT bool_and(loss > 0) FROM samples WHERE phase = 'training'), 'and the loss of the last iteration');
SELECT is((SELECT array_agg(DISTINCT rows_read) FROM samples WHERE phase IN ('building', 'training', 'storing')), ARRAY[300000::bigint],
          'every row read was counted, by all processes that read them');
SELECT ok((SELECT bool_and(s.seconds >= p.seconds) FROM samples s JOIN samples p ON p.n = s.n - 1), 'elapsed seconds grow');
SELECT pg_stat_clear_snapshot();
SELECT is((SELECT count(*) FROM training_progress WHERE pid = :worker), 0::bigint, 'nothing is shown once it ended');

-- a refresh, watched by a role that may not see the worker's session, then by this one
SELECT dblink_exec('progress_worker', $q$
	CREATE TABLE public.progress_events AS
	SELECT (g % 20000)::bigint AS user_id, ((g::bigint * 7919) % 3000) AS item_id, 1::real AS weight,
	       now() - (g % 1000) * interval '1 minute' AS occurred_at FROM generate_series(1, 300000) g$q$);
SELECT * FROM dblink('progress_worker', $q$SELECT personalize.register_refresh('progress_refresh', 'public.progress_events', 'als',
	'{"factors": 32, "iterations": 40}', '{"holdout": "2 hours", "evaluation_users": 500}')::text$q$) AS t(registered text);
CREATE ROLE progress_outsider;
GRANT USAGE ON SCHEMA personalize TO progress_outsider;
GRANT SELECT ON personalize.training_progress TO progress_outsider;
TRUNCATE samples;
SELECT dblink_send_query('progress_worker', $q$SELECT status FROM personalize.refresh('progress_refresh')$q$);
SELECT pg_sleep(0.1);
SELECT pg_stat_clear_snapshot();
SET LOCAL ROLE progress_outsider;
SELECT is((SELECT count(*) FROM personalize.training_progress), 0::bigint, 'another role without pg_read_all_stats sees nothing');
RESET ROLE;
SELECT is((SELECT count(*) FROM personalize.training_progress WHERE pid = :worker), 1::bigint, 'while this role sees the refresh');
SELECT pg_temp.sample_until_done(:worker);
SELECT is((SELECT status FROM dblink_get_result('progress_worker') AS t(status text)), 'promoted', 'the refresh ran');
SELECT * FROM dblink_get_result('progress_worker') AS t(status text);
SELECT is((SELECT array_agg(DISTINCT operation) FROM samples), ARRAY['refresh'], 'seen as a refresh, also while it trains');
SELECT is((SELECT array_agg(DISTINCT model_name) FROM samples), ARRAY['progress_refresh'],
          'with its model name throughout (the evaluation creates tables whose TOAST index builds write progress slots)');
SELECT ok((SELECT array_agg(DISTINCT phase) FROM samples) @> ARRAY['training', 'evaluating'],
          'through its phases, training and evaluating among them');

SELECT dblink_exec('progress_worker', $q$
	DELETE FROM personalize.refreshes WHERE model_name = 'progress_refresh';
	DELETE FROM personalize.refresh_runs WHERE model_name = 'progress_refresh';
	DELETE FROM personalize.models WHERE name IN ('progress_refresh', 'progress_model');
	DROP TABLE public.progress_events$q$);
SELECT dblink_disconnect('progress_worker');
SELECT * FROM finish();
ROLLBACK;
