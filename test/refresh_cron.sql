-- A real pg_cron job runs personalize.refresh() in this database and the run is recorded;
-- its NOTIFY reaches a listener. pg_cron keeps its jobs in cron.database_name (here another
-- database): schedule_refresh reaches it through dblink. pg_cron's worker is another session,
-- so the fixture is committed, and everything is removed at the end.
-- Needs pg_cron in shared_preload_libraries with cron.use_background_workers = on (or a
-- cron.host that its jobs can connect to), as test/run.sh starts the cluster.
SET search_path = public, personalize;
SET client_min_messages = warning;
SELECT plan(15);

CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TEMP TABLE conn AS
SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
              split_part(current_setting('unix_socket_directories'), ',', 1)) AS here,
       format('dbname=%s port=%s host=%s', current_setting('cron.database_name', true), current_setting('port'),
              split_part(current_setting('unix_socket_directories'), ',', 1)) AS cron;
SELECT isnt(current_setting('cron.database_name', true), NULL, 'pg_cron is preloaded');
SELECT ok(current_setting('cron.use_background_workers', true) = 'on' OR current_setting('cron.host', true) LIKE '/%'
          OR current_setting('listen_addresses') <> '',
          'pg_cron can start jobs (cron.use_background_workers = on, or a cron.host its jobs can reach)');
SELECT lives_ok($$SELECT dblink_exec((SELECT cron FROM conn), 'CREATE EXTENSION IF NOT EXISTS pg_cron')$$,
                'pg_cron is installed in its database');

-- leftovers of an interrupted run
SELECT count(*) FROM cron_query(format('SELECT cron.unschedule(j.jobid) FROM cron.job j WHERE j.jobname = %L',
                                        refresh_job_name('cron_model')));
DELETE FROM refreshes WHERE model_name = 'cron_model';
DELETE FROM refresh_runs WHERE model_name = 'cron_model';
DELETE FROM models WHERE name = 'cron_model';
DROP TABLE IF EXISTS public.cron_events;

CREATE TABLE public.cron_events AS
SELECT u::bigint AS user_id, ((u % 5) * 10 + k % 10)::bigint AS item_id, 1::real AS weight,
       now() - (k * 3) * interval '1 hour' AS occurred_at
FROM generate_series(1, 100) u, generate_series(1, 12) k;
SELECT lives_ok($$SELECT register_refresh('cron_model', 'cron_events', 'als', '{"factors": 4, "iterations": 3}', '{"holdout": "6 hours"}')$$,
                'register');

SELECT dblink_connect('cron_listener', (SELECT here FROM conn));
SELECT dblink_exec('cron_listener', 'LISTEN personalize_refresh');

SELECT ok(schedule_refresh('cron_model', '* * * * *') > 0, 'schedule_refresh returns the job id');
SELECT is((SELECT format('%s | %s | %s', schedule, username, active) FROM refresh_jobs WHERE model_name = 'cron_model'),
          format('* * * * * | %s | t', current_user), 'refresh_jobs: the job, run as the role that scheduled it');
SELECT is(schedule_refresh('cron_model', '*/2 * * * *'), (SELECT jobid FROM refresh_jobs WHERE model_name = 'cron_model'),
          'scheduling again replaces the job');
SELECT is((SELECT schedule FROM refresh_jobs WHERE model_name = 'cron_model'), '*/2 * * * *', 'with the new schedule');
SELECT schedule_refresh('cron_model', '* * * * *');

-- pg_cron starts jobs on the minute: wait up to 150 seconds for the run to be committed
CREATE FUNCTION pg_temp.wait_for(condition text, timeout interval) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	deadline timestamptz := clock_timestamp() + timeout;
	done boolean;
BEGIN
	LOOP
		EXECUTE condition INTO done;
		IF done OR clock_timestamp() > deadline THEN
			RETURN done;
		END IF;
		PERFORM pg_sleep(0.5);
	END LOOP;
END $$;
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT FROM personalize.refresh_runs WHERE model_name = 'cron_model')$$, '150 seconds'),
          'the job ran a refresh');
SELECT diag('last job run: ', last_status, ' ', last_message) FROM refresh_jobs
WHERE model_name = 'cron_model' AND NOT EXISTS (SELECT FROM refresh_runs WHERE model_name = 'cron_model');
SELECT is((SELECT format('%s | %s | %s', status, run_by, challenger_version) FROM refresh_runs WHERE model_name = 'cron_model'
           ORDER BY run_id LIMIT 1),
          format('promoted | %s | 1', current_user), 'recorded in refresh_runs: promoted, by the role that scheduled it');
SELECT is((SELECT version FROM models WHERE name = 'cron_model' AND active), 1, 'and version 1 serves');
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT FROM personalize.refresh_jobs WHERE model_name = 'cron_model' AND last_status = 'succeeded')$$,
                           '30 seconds'), 'refresh_jobs shows the last run of the job');
SELECT ok(pg_temp.wait_for($$SELECT EXISTS (SELECT FROM dblink_get_notify('cron_listener') n
                                            WHERE n.notify_name = 'personalize_refresh'
                                              AND (n.extra::jsonb ->> 'model') = 'cron_model'
                                              AND (n.extra::jsonb ->> 'status') = 'promoted'
                                              AND (n.extra::jsonb ->> 'challenger_version') = '1')$$, '10 seconds'),
          'NOTIFY personalize_refresh carried the promotion to a listener');

SELECT lives_ok($$SELECT unschedule_refresh('cron_model')$$, 'unschedule');
SELECT is((SELECT jobid FROM refresh_jobs WHERE model_name = 'cron_model'), NULL, 'no job left');

SELECT dblink_disconnect('cron_listener');
SELECT unregister_refresh('cron_model');
DELETE FROM refresh_runs WHERE model_name = 'cron_model';
SELECT drop_model('cron_model');
DROP TABLE public.cron_events;
SELECT * FROM finish();
