-- Concurrent assign() calls for the same units, from two sessions (dblink), each call in its own
-- transaction: every unit gets one arm, both sessions are told the same arm, and a stratum's
-- positions are neither skipped nor reused.
BEGIN;
SET search_path = personalize, public;
SELECT plan(5);
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TEMP TABLE conn AS
SELECT format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
              split_part(current_setting('unix_socket_directories'), ',', 1)) AS s;
SELECT dblink_connect('setup', (SELECT s FROM conn)) IS NOT NULL;
SELECT dblink_exec('setup', $$CREATE TABLE public.race_log (session int, unit_id bigint, arm text)$$);
SELECT * FROM dblink('setup', $$SELECT (personalize.create_experiment('race', '{a,b,c}')).name$$) AS t(name text);
SELECT dblink_connect('s1', (SELECT s FROM conn)) IS NOT NULL, dblink_connect('s2', (SELECT s FROM conn)) IS NOT NULL;
-- odd units stratified, even units not; the sessions walk the units in opposite directions
SELECT dblink_send_query('s1', $q$DO $d$ BEGIN
  FOR g IN 1..400 LOOP
    INSERT INTO public.race_log VALUES (1, g, personalize.assign('race', g, CASE WHEN g % 2 = 1 THEN 'odd' END));
    COMMIT;
  END LOOP; END $d$$q$);
SELECT dblink_send_query('s2', $q$DO $d$ BEGIN
  FOR g IN REVERSE 400..1 LOOP
    INSERT INTO public.race_log VALUES (2, g, personalize.assign('race', g, CASE WHEN g % 2 = 1 THEN 'odd' END));
    COMMIT;
  END LOOP; END $d$$q$);
SELECT * FROM dblink_get_result('s1') AS t(r text);
SELECT * FROM dblink_get_result('s2') AS t(r text);

SELECT is((SELECT count(*) FROM dblink('setup', 'SELECT 1 FROM personalize.assignments WHERE experiment = ''race''') AS t(x int)),
          400::bigint, 'every unit recorded once');
SELECT is((SELECT count(*) FROM dblink('setup', 'SELECT session FROM public.race_log') AS t(x int)),
          800::bigint, 'both sessions assigned every unit');
SELECT is((SELECT count(*) FROM dblink('setup', $$
	SELECT l.unit_id FROM public.race_log l JOIN personalize.assignments a ON a.experiment = 'race' AND a.unit_id = l.unit_id
	WHERE l.arm IS DISTINCT FROM a.arm$$) AS t(x bigint)), 0::bigint, 'both sessions were told the recorded arm');
SELECT is((SELECT p FROM dblink('setup', $$SELECT next_position FROM personalize.experiment_strata
	WHERE experiment = 'race' AND stratum = 'odd'$$) AS t(p bigint)), 200::bigint, 'no stratum position skipped');
SELECT is((SELECT n FROM dblink('setup', $$SELECT max(c) FROM (SELECT count(*) AS c FROM personalize.assignments
	WHERE experiment = 'race' AND stratum = 'odd' GROUP BY arm) x$$) AS t(n bigint)) - 
          (SELECT n FROM dblink('setup', $$SELECT min(c) FROM (SELECT count(*) AS c FROM personalize.assignments
	WHERE experiment = 'race' AND stratum = 'odd' GROUP BY arm) x$$) AS t(n bigint)) <= 1, true,
          'the stratum stays balanced under concurrency');

SELECT dblink_exec('setup', $$DELETE FROM personalize.experiments WHERE name = 'race'$$);
SELECT dblink_exec('setup', $$DROP TABLE public.race_log$$);
SELECT dblink_disconnect('s1'), dblink_disconnect('s2'), dblink_disconnect('setup');
SELECT * FROM finish();
ROLLBACK;
