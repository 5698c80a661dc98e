-- refresh: retrain a registered model with a data-quality gate and a
-- champion/challenger comparison; every run is a row of refresh_runs, and
-- promoted, blocked and failed runs are announced with NOTIFY personalize_refresh.
--
-- A registration is SQL (its source) that refresh() runs as whoever calls it,
-- so a role sees and runs only the registrations of roles it belongs to (row-
-- level security below). Sources are stored schema-qualified and run under
-- search_path pg_catalog, pg_temp: a scheduled job has no session path of yours.

CREATE TABLE personalize.refreshes (
	model_name	text PRIMARY KEY CHECK (model_name <> ''),
	source		text NOT NULL,
	algorithm	text NOT NULL CHECK (algorithm IN ('popularity', 'itemknn', 'als')),
	options		jsonb NOT NULL DEFAULT '{}',
	gate		jsonb NOT NULL DEFAULT '{}',
	registered_by name NOT NULL DEFAULT CURRENT_USER,
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE personalize.refreshes IS 'models retrained by personalize.refresh: source, algorithm, options and gate';

CREATE TABLE personalize.refresh_runs (
	run_id		bigserial PRIMARY KEY,
	model_name	text NOT NULL,
	started_at	timestamptz NOT NULL,
	finished_at	timestamptz NOT NULL,
	status		text NOT NULL CHECK (status IN ('promoted', 'kept', 'blocked', 'failed')),
	reason		text,
	rows		bigint,			-- rows of the source seen by the data checks
	training_rows bigint,		-- rows the challenger was trained on
	seconds		double precision NOT NULL,
	run_by		name NOT NULL DEFAULT CURRENT_USER,
	champion_version integer,
	challenger_version integer,
	trained_until timestamptz,	-- the challenger read rows before it; evaluation, the rows from it on
	warm_start	boolean,
	metric		text,
	champion_score double precision,
	challenger_score double precision,
	champion_metrics jsonb,
	challenger_metrics jsonb,
	failed_checks jsonb,		-- checks that did not pass, errors and warnings
	drift		jsonb,
	error		text
);
CREATE INDEX refresh_runs_model_idx ON personalize.refresh_runs (model_name, run_id);
COMMENT ON TABLE personalize.refresh_runs IS 'one row per personalize.refresh run: outcome, reason, metrics, failed checks, drift';

-- as for models (registry.sql): the roles whose privileges one has, and personalize_admin
ALTER TABLE personalize.refreshes ENABLE ROW LEVEL SECURITY;
CREATE POLICY refreshes_by_owner ON personalize.refreshes
	USING (pg_catalog.pg_has_role(registered_by, 'USAGE')
	       OR coalesce(pg_catalog.pg_has_role(pg_catalog.to_regrole('personalize_admin'), 'USAGE'), false))
	WITH CHECK (pg_catalog.pg_has_role(registered_by, 'USAGE')
	            OR coalesce(pg_catalog.pg_has_role(pg_catalog.to_regrole('personalize_admin'), 'USAGE'), false));
ALTER TABLE personalize.refresh_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY refresh_runs_by_owner ON personalize.refresh_runs
	USING (pg_catalog.pg_has_role(run_by, 'USAGE')
	       OR EXISTS (SELECT FROM personalize.refreshes r WHERE r.model_name OPERATOR(pg_catalog.=) refresh_runs.model_name))
	WITH CHECK (pg_catalog.pg_has_role(run_by, 'USAGE'));

-- analysts register and run refreshes (roles.sql); administrators also clear old runs
GRANT SELECT, INSERT, UPDATE, DELETE ON personalize.refreshes TO personalize_analyst;
GRANT SELECT, INSERT ON personalize.refresh_runs TO personalize_analyst;
GRANT USAGE ON SEQUENCE personalize.refresh_runs_run_id_seq TO personalize_analyst;
GRANT DELETE ON personalize.refresh_runs TO personalize_admin;

SELECT pg_catalog.pg_extension_config_dump('personalize.refreshes', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.refresh_runs', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.refresh_runs_run_id_seq', '');

-- The gate's keys with their defaults; register_refresh and refresh read it.
CREATE FUNCTION personalize.refresh_gate(gate jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	defaults jsonb := '{"metric": "ndcg_at_k", "k": 10, "max_drop": 0, "holdout": "1 day", "evaluation_users": 10000,
	                    "keep": 5, "warm_start": true, "warm_iterations": null, "checks": {}, "drift": {}}'::jsonb;
	g jsonb;
	key text;
BEGIN
	IF gate IS NULL OR jsonb_typeof(gate) <> 'object' THEN
		RAISE EXCEPTION 'gate must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	FOR key IN SELECT jsonb_object_keys(gate) LOOP
		IF NOT defaults ? key THEN
			RAISE EXCEPTION 'unknown gate option "%"', key USING ERRCODE = '22023',
				HINT = 'Gate options are ' || (SELECT string_agg(k, ', ') FROM jsonb_object_keys(defaults) k) || '.';
		END IF;
	END LOOP;
	g := defaults || jsonb_strip_nulls(gate);
	IF NOT g ->> 'metric' = ANY (ARRAY['ndcg_at_k', 'precision_at_k', 'recall_at_k', 'map_at_k', 'hit_rate_at_k', 'mrr_at_k']) THEN
		RAISE EXCEPTION 'gate metric must be one of ndcg_at_k, precision_at_k, recall_at_k, map_at_k, hit_rate_at_k, mrr_at_k, not "%"',
			g ->> 'metric' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'k') <> 'number' OR (g ->> 'k')::numeric NOT BETWEEN 1 AND 1000 OR (g ->> 'k')::numeric % 1 <> 0 THEN
		RAISE EXCEPTION 'gate k must be an integer between 1 and 1000' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'max_drop') <> 'number' OR (g ->> 'max_drop')::numeric < 0 THEN
		RAISE EXCEPTION 'gate max_drop must be a non-negative number' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'holdout') <> 'string' OR (g ->> 'holdout')::interval <= interval '0' THEN
		RAISE EXCEPTION 'gate holdout must be a positive interval' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'evaluation_users') <> 'number' OR (g ->> 'evaluation_users')::numeric < 1 THEN
		RAISE EXCEPTION 'gate evaluation_users must be a positive number' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'keep') <> 'number' OR (g ->> 'keep')::numeric < 1 OR (g ->> 'keep')::numeric % 1 <> 0 THEN
		RAISE EXCEPTION 'gate keep must be a positive integer' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'warm_start') <> 'boolean' THEN
		RAISE EXCEPTION 'gate warm_start must be a boolean' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'warm_iterations') <> 'null' AND (jsonb_typeof(g -> 'warm_iterations') <> 'number' OR (g ->> 'warm_iterations')::numeric < 1) THEN
		RAISE EXCEPTION 'gate warm_iterations must be a positive number' USING ERRCODE = '22023';
	END IF;
	IF jsonb_typeof(g -> 'checks') <> 'object' OR jsonb_typeof(g -> 'drift') <> 'object' THEN
		RAISE EXCEPTION 'gate checks and drift must be jsonb objects' USING ERRCODE = '22023';
	END IF;
	PERFORM personalize.quality_settings(g -> 'checks', ARRAY['user_id', 'item_id', 'weight', 'occurred_at']);
	RETURN g;
END
$$;
COMMENT ON FUNCTION personalize.refresh_gate(jsonb) IS 'a refresh gate with its defaults, validated';

CREATE FUNCTION personalize.register_refresh(model_name text, source text, algorithm text,
                                             options jsonb DEFAULT '{}', gate jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- The source is resolved here, in the caller's search_path, and stored schema-qualified.
AS $$
DECLARE
	relation text;
	columns text[];
	caller_path text;
BEGIN
	IF model_name IS NULL OR source IS NULL OR algorithm IS NULL OR options IS NULL OR gate IS NULL THEN
		RAISE EXCEPTION 'model_name, source, algorithm, options and gate must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF model_name OPERATOR(pg_catalog.=) '' THEN
		RAISE EXCEPTION 'model name must not be empty' USING ERRCODE = '22023';
	END IF;
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Register a refresh under another name, or ask the model''s owner or a member of personalize_admin.';
	END IF;
	IF NOT algorithm OPERATOR(pg_catalog.=) ANY (ARRAY['popularity', 'itemknn', 'als']) THEN
		RAISE EXCEPTION 'unknown algorithm "%"', algorithm USING ERRCODE = '22023', HINT = 'Use popularity, itemknn or als.';
	END IF;
	IF pg_catalog.jsonb_typeof(options) OPERATOR(pg_catalog.<>) 'object' OR options OPERATOR(pg_catalog.?) 'activate'
	   OR options OPERATOR(pg_catalog.?) 'warm_start' THEN
		RAISE EXCEPTION 'options must be a jsonb object of training options (without activate or warm_start)' USING ERRCODE = '22023';
	END IF;
	-- the training options, checked by the aggregate itself over no rows
	EXECUTE pg_catalog.format('SELECT personalize.%I(NULL::pg_catalog.int8, NULL::pg_catalog.int8, NULL::pg_catalog.float4, $1)',
	                          algorithm OPERATOR(pg_catalog.||) '_fit') USING options;
	PERFORM personalize.refresh_gate(gate);
	relation := personalize.source_sql(source);
	columns := personalize.source_columns(source);
	IF NOT columns OPERATOR(pg_catalog.@>) ARRAY['user_id', 'item_id', 'weight', 'occurred_at'] THEN
		RAISE EXCEPTION 'source must have columns user_id, item_id, weight and occurred_at' USING ERRCODE = '42703';
	END IF;
	-- a query must also resolve where refresh runs it
	caller_path := pg_catalog.current_setting('search_path');
	BEGIN
		PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
		PERFORM personalize.source_columns(relation);
		PERFORM pg_catalog.set_config('search_path', caller_path, true);
	EXCEPTION WHEN undefined_table OR undefined_function OR undefined_object THEN
		RAISE EXCEPTION 'source must qualify its tables with their schema: refresh runs it with search_path pg_catalog, pg_temp'
			USING ERRCODE = '42P01', HINT = 'Write public.events instead of events in the query.';
	END;
	INSERT INTO personalize.refreshes AS r (model_name, source, algorithm, options, gate)
	VALUES (register_refresh.model_name, relation, register_refresh.algorithm, register_refresh.options, register_refresh.gate)
	ON CONFLICT ON CONSTRAINT refreshes_pkey DO UPDATE
	SET source = excluded.source, algorithm = excluded.algorithm, options = excluded.options, gate = excluded.gate,
	    registered_by = CURRENT_USER, registered_at = pg_catalog.now();
END
$$;
COMMENT ON FUNCTION personalize.register_refresh(text, text, text, jsonb, jsonb) IS
	'register (or replace) how personalize.refresh retrains a model: source, algorithm, options and gate';

CREATE FUNCTION personalize.unregister_refresh(model_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM personalize.refreshes r WHERE r.model_name = unregister_refresh.model_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" has no registered refresh', model_name USING ERRCODE = '42704';
	END IF;
END
$$;
COMMENT ON FUNCTION personalize.unregister_refresh(text) IS 'forget how a model is refreshed (its runs and versions stay)';

-- Announce a run on channel personalize_refresh (delivered at commit).
CREATE FUNCTION personalize.refresh_notify(run personalize.refresh_runs)
RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_notify('personalize_refresh', jsonb_build_object(
		'model', run.model_name, 'run_id', run.run_id, 'status', run.status, 'reason', left(run.reason, 500),
		'champion_version', run.champion_version, 'challenger_version', run.challenger_version,
		'metric', run.metric, 'champion_score', run.champion_score, 'challenger_score', run.challenger_score,
		'failed_checks', (SELECT jsonb_agg(c -> 'check_name') FROM jsonb_array_elements(run.failed_checks) c),
		'error', left(run.error, 500))::text)
$$;
COMMENT ON FUNCTION personalize.refresh_notify(personalize.refresh_runs) IS 'NOTIFY personalize_refresh with a run as JSON';

-- Recommendations of the active version of a model for the evaluation users, excluding
-- what each user had before the cutoff (the same candidates for champion and challenger).
CREATE FUNCTION personalize.refresh_recommendations(model_name text, k integer, target text)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS
		SELECT u.user_id, r.item_id, r.rank
		FROM pg_temp.personalize_refresh_users u,
		     LATERAL personalize.recommend($1, u.user_id, least($2, (SELECT m.items FROM personalize.models m WHERE m.name = $1 AND m.active))::integer,
		                                   false, NULL, u.seen) r', target)
		USING model_name, k;
END
$$;
COMMENT ON FUNCTION personalize.refresh_recommendations(text, integer, text) IS 'top-k of the active version for the users a refresh evaluates on';

-- Retrain, check, compare, promote or keep; one run row, whatever happens.
-- Everything after the registration lookup runs in a subtransaction: a failed
-- run leaves models as they were and is recorded with its error.
CREATE FUNCTION personalize.refresh(model_name text)
RETURNS personalize.refresh_runs
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	reg personalize.refreshes;
	g jsonb;
	run personalize.refresh_runs;
	k integer;
	holdout interval;
	newest timestamptz;
	champion record;
	fit_options jsonb;
	evaluation_users bigint;
	err text;
	code text;
BEGIN
	run.model_name := model_name;
	run.started_at := clock_timestamp();
	run.run_by := CURRENT_USER;
	SELECT * INTO reg FROM personalize.refreshes r WHERE r.model_name = refresh.model_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'model "%" has no registered refresh', model_name USING ERRCODE = '42704',
			HINT = 'Register one with personalize.register_refresh().';
	END IF;
	PERFORM personalize.report_progress('refresh', 'checking data', model_name);

	BEGIN
		IF NOT pg_try_advisory_xact_lock(hashtext('personalize.refresh'), hashtext(model_name)) THEN
			RAISE EXCEPTION 'another refresh of model "%" is running', model_name USING ERRCODE = '55P03';
		END IF;
		g := personalize.refresh_gate(reg.gate);
		run.metric := g ->> 'metric';
		k := (g ->> 'k')::integer;
		holdout := (g ->> 'holdout')::interval;
		SELECT m.version, m.algorithm, m.options INTO champion FROM personalize.models m WHERE m.name = model_name AND m.active;
		run.champion_version := champion.version;

		-- 1. data checks: one that fails with severity error blocks the run
		SELECT jsonb_agg(to_jsonb(c) - 'ordinality' ORDER BY c.ordinality) FILTER (WHERE NOT c.passed),
		       max(c.observed) FILTER (WHERE c.check_name = 'rows')
		INTO run.failed_checks, run.rows
		FROM personalize.check_interactions(reg.source, jsonb_build_object('model', model_name) || (g -> 'checks')) WITH ORDINALITY c;
		IF EXISTS (SELECT FROM jsonb_array_elements(run.failed_checks) f WHERE f ->> 'severity' = 'error') THEN
			run.status := 'blocked';
			run.reason := 'data checks failed: ' || (SELECT string_agg(f ->> 'check_name', ', ')
			                                         FROM jsonb_array_elements(run.failed_checks) f WHERE f ->> 'severity' = 'error');
		ELSE
			EXECUTE format('SELECT max(s.occurred_at::timestamptz) FROM %s AS s', reg.source) INTO newest;
			IF newest IS NULL THEN
				RAISE EXCEPTION 'source has no row with an occurred_at' USING ERRCODE = '22023';
			END IF;
			run.trained_until := newest - holdout;

			-- 2. drift of the holdout window from the champion's training data
			IF champion.version IS NOT NULL THEN
				PERFORM personalize.report_progress('refresh', 'measuring drift');
				SELECT jsonb_agg(to_jsonb(d)) INTO run.drift
				FROM personalize.model_drift(model_name, reg.source, holdout, (g -> 'drift') || jsonb_build_object('as_of', newest)) d;
			END IF;

			-- 3. the challenger, from the rows before the holdout window; an ALS
			-- champion of the same shape gives its factors as the starting point
			-- (64 factors and 15 iterations are als_fit's defaults)
			fit_options := reg.options || '{"activate": false}';
			run.warm_start := reg.algorithm = 'als' AND champion.algorithm = 'als' AND (g ->> 'warm_start')::boolean
			                  AND coalesce(champion.options ->> 'factors', '64') = coalesce(reg.options ->> 'factors', '64');
			IF run.warm_start THEN
				fit_options := fit_options || jsonb_build_object('warm_start', model_name, 'iterations',
					coalesce((g ->> 'warm_iterations')::integer, ceil(coalesce((reg.options ->> 'iterations')::numeric, 15) / 2)::integer));
			END IF;
			run.challenger_version := personalize.train(model_name, reg.algorithm,
				format('SELECT s.* FROM %s AS s WHERE s.occurred_at::timestamptz < %L::timestamptz', reg.source, run.trained_until),
				fit_options);
			SELECT m.rows INTO run.training_rows FROM personalize.models m WHERE m.name = model_name AND m.version = run.challenger_version;

			-- 4. champion and challenger on the holdout window: for a sample of its users, the
			-- items new to them, against top-k lists that both exclude what they had before
			PERFORM personalize.report_progress('refresh', 'evaluating');
			-- one scan for the sample of users, one for their rows before and in the window
			EXECUTE format($q$
				CREATE TEMP TABLE personalize_refresh_users ON COMMIT DROP AS
				WITH sample AS (SELECT u.user_id FROM (SELECT DISTINCT s.user_id::int8 AS user_id FROM %1$s AS s
				                                       WHERE s.occurred_at::timestamptz >= $1 AND s.item_id IS NOT NULL) u
				                WHERE u.user_id IS NOT NULL ORDER BY hashint8(u.user_id), u.user_id LIMIT $2)
				SELECT p.user_id,
				       array_agg(DISTINCT s.item_id::int8) FILTER (WHERE s.occurred_at::timestamptz < $1) AS seen,
				       array_agg(DISTINCT s.item_id::int8) FILTER (WHERE s.occurred_at::timestamptz >= $1) AS recent
				FROM sample p JOIN %1$s AS s ON s.user_id::int8 = p.user_id AND s.item_id IS NOT NULL
				GROUP BY p.user_id$q$, reg.source)
				USING run.trained_until, (g ->> 'evaluation_users')::bigint;
			EXECUTE format($q$
				CREATE TEMP TABLE %I ON COMMIT DROP AS
				SELECT u.user_id, r.item_id FROM pg_temp.%I u, unnest(u.recent) r(item_id)
				WHERE u.seen IS NULL OR NOT r.item_id = ANY (u.seen)$q$, 'personalize_refresh_truth', 'personalize_refresh_users');
			EXECUTE format('DELETE FROM pg_temp.%I u WHERE NOT EXISTS (SELECT FROM pg_temp.%I t WHERE t.user_id = u.user_id)',
			               'personalize_refresh_users', 'personalize_refresh_truth');
			EXECUTE format('SELECT count(*) FROM pg_temp.%I', 'personalize_refresh_users') INTO evaluation_users;
			IF champion.version IS NOT NULL AND evaluation_users > 0 THEN
				PERFORM personalize.refresh_recommendations(model_name, k, 'personalize_refresh_champion');
				SELECT to_jsonb(x) INTO run.champion_metrics
				FROM personalize.ranking_metrics('pg_temp.personalize_refresh_champion', 'pg_temp.personalize_refresh_truth', k) x;
				DROP TABLE pg_temp.personalize_refresh_champion;
			END IF;
			-- the challenger serves for the comparison, visible to this transaction only
			PERFORM personalize.activate(model_name, run.challenger_version);
			IF evaluation_users > 0 THEN
				PERFORM personalize.refresh_recommendations(model_name, k, 'personalize_refresh_challenger');
				SELECT to_jsonb(x) INTO run.challenger_metrics
				FROM personalize.ranking_metrics('pg_temp.personalize_refresh_challenger', 'pg_temp.personalize_refresh_truth', k) x;
				DROP TABLE pg_temp.personalize_refresh_challenger;
			END IF;
			DROP TABLE pg_temp.personalize_refresh_truth, pg_temp.personalize_refresh_users;
			run.champion_score := (run.champion_metrics ->> run.metric)::float8;
			run.challenger_score := (run.challenger_metrics ->> run.metric)::float8;

			-- 5. the gate
			IF champion.version IS NULL THEN
				run.status := 'promoted';
				run.reason := 'no active version to compare with';
			ELSIF evaluation_users = 0 THEN
				run.status := 'kept';
				run.reason := format('no interaction new to its user in the holdout window (%s) to evaluate on', holdout);
			ELSIF run.challenger_score >= run.champion_score - (g ->> 'max_drop')::float8 THEN
				run.status := 'promoted';
				run.reason := format('challenger %s %s >= champion %s - max_drop %s over %s users', run.metric,
				                     round(run.challenger_score::numeric, 6), round(run.champion_score::numeric, 6), g ->> 'max_drop', evaluation_users);
			ELSE
				run.status := 'kept';
				run.reason := format('challenger %s %s < champion %s - max_drop %s over %s users', run.metric,
				                     round(run.challenger_score::numeric, 6), round(run.champion_score::numeric, 6), g ->> 'max_drop', evaluation_users);
			END IF;
			PERFORM personalize.report_progress('refresh', 'storing');
			IF run.status = 'kept' THEN
				PERFORM personalize.activate(model_name, champion.version);
			END IF;
			-- 6. retention: the newest versions, and always the active one
			DELETE FROM personalize.models m
			WHERE m.name = model_name AND NOT m.active
			  AND m.version NOT IN (SELECT x.version FROM personalize.models x WHERE x.name = model_name
			                        ORDER BY x.version DESC LIMIT (g ->> 'keep')::integer);
		END IF;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
		run.status := 'failed';
		run.reason := err;
		run.error := format('%s (SQLSTATE %s)', err, code);
		run.challenger_version := NULL;		-- rolled back with the rest
	END;

	run.finished_at := clock_timestamp();
	run.seconds := extract(epoch FROM run.finished_at - run.started_at);
	INSERT INTO personalize.refresh_runs (model_name, started_at, finished_at, status, reason, rows, training_rows, seconds,
		run_by, champion_version, challenger_version, trained_until, warm_start, metric, champion_score, challenger_score,
		champion_metrics, challenger_metrics, failed_checks, drift, error)
	VALUES (run.model_name, run.started_at, run.finished_at, run.status, run.reason, run.rows, run.training_rows, run.seconds,
		run.run_by, run.champion_version, run.challenger_version, run.trained_until, run.warm_start, run.metric, run.champion_score,
		run.challenger_score, run.champion_metrics, run.challenger_metrics, run.failed_checks, run.drift, run.error)
	RETURNING * INTO run;
	IF run.status <> 'kept' THEN
		PERFORM personalize.refresh_notify(run);
	END IF;
	PERFORM personalize.report_progress('refresh', NULL);
	RETURN run;
END
$$;
COMMENT ON FUNCTION personalize.refresh(text) IS
	'retrain a registered model: data checks, challenger, evaluation on the newest window, promote or keep';

-- Undo the last promotion: the version that was active before the current one was promoted.
CREATE FUNCTION personalize.rollback(model_name text)
RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	current_version integer;
	previous integer;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('personalize.models'), hashtext(model_name));
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	SELECT m.version INTO current_version FROM personalize.models m WHERE m.name = model_name AND m.active;
	SELECT r.champion_version INTO previous FROM personalize.refresh_runs r
	WHERE r.model_name = rollback.model_name AND r.status = 'promoted' AND r.challenger_version = current_version
	  AND r.champion_version IS NOT NULL
	ORDER BY r.run_id DESC LIMIT 1;
	IF previous IS NULL THEN
		RAISE EXCEPTION 'model "%" has no earlier promoted version to roll back to', model_name USING ERRCODE = '55000',
			HINT = 'The active version was not promoted by a refresh over another one; personalize.activate() picks any version.';
	END IF;
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name AND m.version = previous) THEN
		RAISE EXCEPTION 'version % of model "%" was pruned', previous, model_name USING ERRCODE = '55000',
			HINT = 'Keep more versions with the gate option keep.';
	END IF;
	PERFORM personalize.activate(model_name, previous);
	PERFORM pg_notify('personalize_refresh', jsonb_build_object('model', model_name, 'status', 'rolled back',
		'from_version', current_version, 'to_version', previous)::text);
	RETURN previous;
END
$$;
COMMENT ON FUNCTION personalize.rollback(text) IS 'activate the version that was active before the last promotion';

-- The last run of each registered model: what a dashboard or an on-call check reads.
CREATE VIEW personalize.refresh_status WITH (security_invoker = true) AS
SELECT r.model_name, (SELECT m.version FROM personalize.models m
                      WHERE m.name OPERATOR(pg_catalog.=) r.model_name AND m.active) AS active_version,
       l.run_id, l.status, l.reason, l.finished_at, l.seconds, l.champion_version, l.challenger_version,
       l.metric, l.champion_score, l.challenger_score, l.failed_checks,
       coalesce(l.status OPERATOR(pg_catalog.=) ANY (ARRAY['blocked', 'failed']), false) AS needs_attention
FROM personalize.refreshes r
LEFT JOIN LATERAL (SELECT x.* FROM personalize.refresh_runs x WHERE x.model_name OPERATOR(pg_catalog.=) r.model_name
                   ORDER BY x.run_id DESC LIMIT 1) l ON true;
COMMENT ON VIEW personalize.refresh_status IS 'last refresh run of each registered model, and whether it needs attention';
GRANT SELECT ON personalize.refresh_status TO personalize_analyst;
