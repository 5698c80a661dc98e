-- schedule: pg_cron jobs that run personalize.refresh(model) in this database as
-- the role that scheduled them. pg_cron is optional: nothing here refers to its
-- objects until a function runs, and then each says clearly what is missing.
--
-- pg_cron keeps its jobs in one database per server (cron.database_name). When
-- that is this database, its functions are called directly. Otherwise they are
-- reached through dblink, when installed here, connecting to that database as
-- the current role (libpq options from the setting personalize.cron_connection;
-- dblink asks non-superusers for a password).

-- The connection to pg_cron's database, or NULL when pg_cron's schema is here.
CREATE FUNCTION personalize.cron_connection()
RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cron_database text := current_setting('cron.database_name', true);
	socket text := split_part(current_setting('unix_socket_directories'), ',', 1);
	quote text := $q$'%s'$q$;
BEGIN
	IF to_regclass('cron.job') IS NOT NULL THEN
		RETURN NULL;
	END IF;
	IF cron_database IS NULL THEN
		RAISE EXCEPTION 'pg_cron is not available on this server' USING ERRCODE = '55000',
			HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name, restart, and CREATE EXTENSION pg_cron in that database.';
	END IF;
	IF cron_database = current_database() THEN
		RAISE EXCEPTION 'pg_cron is loaded for this database but not installed in it' USING ERRCODE = '55000',
			HINT = 'CREATE EXTENSION pg_cron;';
	END IF;
	IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'dblink') THEN
		RAISE EXCEPTION 'pg_cron keeps its jobs in database "%", and dblink is not installed here to reach it', cron_database
			USING ERRCODE = '55000',
			HINT = 'CREATE EXTENSION dblink; or set cron.database_name to this database.';
	END IF;
	-- libpq values in single quotes, with \ and ' escaped
	RETURN concat_ws(' ',
		'dbname=' || format(quote, replace(replace(cron_database, '\', '\\'), '''', '\''')),
		'user=' || format(quote, replace(replace(CURRENT_USER, '\', '\\'), '''', '\''')),
		CASE WHEN socket <> '' THEN 'host=' || format(quote, replace(replace(trim(socket), '\', '\\'), '''', '\''')) END,
		'port=' || current_setting('port'),
		nullif(current_setting('personalize.cron_connection', true), ''));
END
$$;
COMMENT ON FUNCTION personalize.cron_connection() IS 'libpq connection to pg_cron''s database (NULL when pg_cron is installed here)';

-- A query run where pg_cron is, as the current role; each row as jsonb.
CREATE FUNCTION personalize.cron_query(query text)
RETURNS SETOF jsonb
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	connection text := personalize.cron_connection();
	wrapped text := format('SELECT pg_catalog.to_jsonb(q) FROM (%s) q', query);
BEGIN
	IF connection IS NULL THEN
		RETURN QUERY EXECUTE wrapped;
	ELSE
		RETURN QUERY EXECUTE format('SELECT t.row FROM %I.dblink($1, $2) AS t("row" jsonb)',
		                            (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		                             WHERE e.extname = 'dblink'))
			USING connection, wrapped;
	END IF;
END
$$;
COMMENT ON FUNCTION personalize.cron_query(text) IS 'run a query in pg_cron''s database as the current role, rows as jsonb';

-- Job names are unique per role in cron.job and at most 63 bytes.
CREATE FUNCTION personalize.refresh_job_name(model_name text)
RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN octet_length(n) <= 63 THEN n
	            ELSE convert_from(substring(convert_to(n, 'UTF8') FOR 48), 'UTF8') || '~' || left(md5(n), 8) END
	FROM (SELECT 'personalize refresh ' || current_database() || '.' || model_name AS n) j
$$;
COMMENT ON FUNCTION personalize.refresh_job_name(text) IS 'the pg_cron job name of a model''s refresh in this database';

CREATE FUNCTION personalize.schedule_refresh(model_name text, schedule text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	command text := format('SELECT personalize.refresh(%L)', model_name);
	job text := personalize.refresh_job_name(model_name);
	in_database boolean;
BEGIN
	IF NOT EXISTS (SELECT FROM personalize.refreshes r WHERE r.model_name = schedule_refresh.model_name) THEN
		RAISE EXCEPTION 'model "%" has no registered refresh', model_name USING ERRCODE = '42704',
			HINT = 'Register one with personalize.register_refresh().';
	END IF;
	SELECT (r ->> 'ok')::boolean INTO in_database
	FROM personalize.cron_query($q$SELECT pg_catalog.to_regprocedure('cron.schedule_in_database(text,text,text,text,text,boolean)') IS NOT NULL AS ok$q$) r;
	IF in_database THEN
		RETURN (SELECT (r ->> 'jobid')::bigint FROM personalize.cron_query(
			format('SELECT cron.schedule_in_database(%L, %L, %L, %L) AS jobid', job, schedule, command, current_database())) r);
	ELSIF personalize.cron_connection() IS NULL THEN
		-- pg_cron before 1.4 runs jobs in its own database, which is this one
		RETURN (SELECT (r ->> 'jobid')::bigint FROM personalize.cron_query(
			format('SELECT cron.schedule(%L, %L, %L) AS jobid', job, schedule, command)) r);
	END IF;
	RAISE EXCEPTION 'pg_cron before 1.4 cannot run jobs in another database' USING ERRCODE = '0A000',
		HINT = 'Upgrade pg_cron, or set cron.database_name to this database.';
END
$$;
COMMENT ON FUNCTION personalize.schedule_refresh(text, text) IS
	'create or replace the pg_cron job that runs personalize.refresh(model) here as the current role';

CREATE FUNCTION personalize.unschedule_refresh(model_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	job text := personalize.refresh_job_name(model_name);
BEGIN
	IF NOT EXISTS (SELECT FROM personalize.cron_query(format('SELECT j.jobid FROM cron.job j WHERE j.jobname = %L AND j.username = CURRENT_USER', job))) THEN
		RAISE EXCEPTION 'model "%" has no scheduled refresh of yours', model_name USING ERRCODE = '42704';
	END IF;
	PERFORM personalize.cron_query(format('SELECT cron.unschedule(%L::name)', job));
END
$$;
COMMENT ON FUNCTION personalize.unschedule_refresh(text) IS 'remove the pg_cron job of a model''s refresh';

-- Jobs of this database's refreshes, with their last run (pg_cron shows each role its own).
CREATE FUNCTION personalize.refresh_job_rows()
RETURNS TABLE (job_name text, jobid bigint, schedule text, active boolean, username text,
               last_status text, last_start timestamptz, last_end timestamptz, last_message text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY
	SELECT r ->> 'jobname', (r ->> 'jobid')::bigint, r ->> 'schedule', (r ->> 'active')::boolean, r ->> 'username',
	       r ->> 'status', (r ->> 'start_time')::timestamptz, (r ->> 'end_time')::timestamptz, r ->> 'return_message'
	FROM personalize.cron_query(format($q$
		SELECT j.jobname, j.jobid, j.schedule, j.active, j.username, d.status, d.start_time, d.end_time, d.return_message
		FROM cron.job j
		LEFT JOIN LATERAL (SELECT x.status, x.start_time, x.end_time, x.return_message FROM cron.job_run_details x
		                   WHERE x.jobid = j.jobid ORDER BY x.runid DESC LIMIT 1) d ON true
		WHERE j.database = %L AND j.jobname LIKE 'personalize refresh %%'$q$, current_database())) r;
END
$$;
COMMENT ON FUNCTION personalize.refresh_job_rows() IS 'pg_cron jobs of refreshes in this database with their last run';

CREATE VIEW personalize.refresh_jobs WITH (security_invoker = true) AS
SELECT r.model_name, j.job_name, j.jobid, j.schedule, j.active, j.username,
       j.last_status, j.last_start, j.last_end, j.last_message
FROM personalize.refreshes r
LEFT JOIN personalize.refresh_job_rows() j ON j.job_name OPERATOR(pg_catalog.=) personalize.refresh_job_name(r.model_name);
COMMENT ON VIEW personalize.refresh_jobs IS 'registered refreshes with their pg_cron job and its last run';
GRANT SELECT ON personalize.refresh_jobs TO personalize_analyst;
