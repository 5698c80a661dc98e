-- pg_personalize 0.1.0 -> 0.2.0
-- complain if script is sourced in psql rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pg_personalize UPDATE TO '0.2.0'" to load this file. \quit

-- Every change to an SQL object between the releases appears here, in the
-- order it was made; test/check_upgrade.sh checks that the result equals a
-- fresh install of 0.2.0, object by object.

-- consent: forget() declares its jsonb literal's type (plpgsql_check)
CREATE OR REPLACE FUNCTION personalize.forget(subject_id bigint)
RETURNS TABLE (object text, removed bigint)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	n bigint;
	touched jsonb := '{}'::jsonb;
	subject bigint := forget.subject_id;
BEGIN
	-- Refuse rather than silently skip rows the policy hides from us.
	FOR p IN SELECT * FROM personalize.protected_tables ORDER BY relid::text LOOP
		IF pg_catalog.row_security_active(p.relid)
		   AND NOT (p.exempt_role IS NOT NULL AND pg_catalog.pg_has_role(p.exempt_role, 'MEMBER')) THEN
			RAISE EXCEPTION 'role "%" cannot see every row of "%"', CURRENT_USER, p.relid
				USING ERRCODE = '42501',
				      HINT = 'Run personalize.forget() as the role exempted by personalize.protect(), a superuser or a BYPASSRLS role.';
		END IF;
	END LOOP;

	FOR p IN SELECT * FROM personalize.protected_tables ORDER BY relid::text LOOP
		EXECUTE pg_catalog.format('DELETE FROM %s WHERE %I = $1', p.relid, p.subject_col) USING subject;
		GET DIAGNOSTICS n = ROW_COUNT;
		object := p.relid::text; removed := n;
		touched := touched || pg_catalog.jsonb_build_object(object, n);
		RETURN NEXT;
	END LOOP;

	IF pg_catalog.to_regclass('personalize.prediction_log') IS NOT NULL THEN
		EXECUTE 'DELETE FROM personalize.prediction_log WHERE subject_id = $1' USING subject;
		GET DIAGNOSTICS n = ROW_COUNT;
		object := 'personalize.prediction_log'; removed := n;
		touched := touched || pg_catalog.jsonb_build_object(object, n);
		RETURN NEXT;
	END IF;

	object := 'models'; removed := personalize.forget_in_models(subject);
	touched := touched || pg_catalog.jsonb_build_object(object, removed);
	RETURN NEXT;

	-- Last, the consent history itself (the documented erasure path).
	PERFORM pg_catalog.set_config('personalize.erasing_subject', subject::text, true);
	DELETE FROM personalize.consents c WHERE c.subject_id = subject;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM pg_catalog.set_config('personalize.erasing_subject', '', true);
	object := 'personalize.consents'; removed := n;
	touched := touched || pg_catalog.jsonb_build_object(object, n);
	RETURN NEXT;

	INSERT INTO personalize.erasures (touched) VALUES (touched);
END
$$;

-- ==== who may change a model (issue 9, item 6; src/registry.sql) ====
ALTER TABLE personalize.models ADD COLUMN owner regrole;
-- Versions trained with 0.1.0 were not recorded with their trainer: they go to
-- the extension's owner (the superuser who ran CREATE EXTENSION), so only
-- superusers and members of personalize_admin change them until one hands
-- them over (UPDATE personalize.models SET owner = 'team' WHERE name = ...).
UPDATE personalize.models SET owner = (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_personalize')::regrole;
ALTER TABLE personalize.models ALTER COLUMN owner SET NOT NULL, ALTER COLUMN owner SET DEFAULT CURRENT_USER::regrole;

CREATE FUNCTION personalize.may_change_model(model_name text, new_owner regrole DEFAULT NULL)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT model_name IS NOT NULL
	   AND (coalesce(pg_catalog.pg_has_role(pg_catalog.to_regrole('personalize_admin'), 'USAGE'), false)
	        OR ((new_owner IS NULL OR pg_catalog.pg_has_role(new_owner, 'USAGE'))
	            AND NOT EXISTS (SELECT FROM personalize.models m
	                            WHERE m.name = model_name AND NOT pg_catalog.pg_has_role(m.owner, 'USAGE'))))
$$;
COMMENT ON FUNCTION personalize.may_change_model(text, regrole) IS
	'whether the current role may train, activate, drop or rewrite a model (and give a version to new_owner)';

ALTER TABLE personalize.models ENABLE ROW LEVEL SECURITY;
-- serving and evaluation read every version (SELECT on the table is the gate)
CREATE POLICY models_read ON personalize.models FOR SELECT USING (true);
-- a new version records the role that trains it
CREATE POLICY models_train ON personalize.models FOR INSERT
	WITH CHECK (owner = CURRENT_USER::regrole AND personalize.may_change_model(name, owner));
CREATE POLICY models_change ON personalize.models FOR UPDATE
	USING (personalize.may_change_model(name, owner)) WITH CHECK (personalize.may_change_model(name, owner));
CREATE POLICY models_drop ON personalize.models FOR DELETE
	USING (personalize.may_change_model(name, owner));

CREATE OR REPLACE FUNCTION personalize.train(model_name text, algorithm text, source text, options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source is the caller's table or query and is
-- resolved with the caller's path. Every name in the body is qualified.
AS $$
DECLARE
	fit text;
	relation text;
	fit_options jsonb;
	make_active boolean;
	started timestamptz;
	trained personalize.model;
	info jsonb;
	new_version integer;
BEGIN
	IF model_name IS NULL OR algorithm IS NULL OR source IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'model_name, algorithm, source and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF model_name = '' THEN
		RAISE EXCEPTION 'model name must not be empty' USING ERRCODE = '22023';
	END IF;
	fit := CASE algorithm WHEN 'popularity' THEN 'popularity_fit'
	                      WHEN 'itemknn' THEN 'itemknn_fit'
	                      WHEN 'als' THEN 'als_fit' END;
	IF fit IS NULL THEN
		RAISE EXCEPTION 'unknown algorithm "%"', algorithm USING ERRCODE = '22023',
			HINT = 'Use popularity, itemknn or als.';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	IF options ? 'activate' AND pg_catalog.jsonb_typeof(options -> 'activate') <> 'boolean' THEN
		RAISE EXCEPTION 'option "activate" must be a boolean' USING ERRCODE = '22023';
	END IF;
	make_active := coalesce((options ->> 'activate')::boolean, true);
	fit_options := options - 'activate';
	-- before a training that may take minutes (the row policy checks again at insert)
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Train under another name, or ask the model''s owner or a member of personalize_admin.';
	END IF;

	-- a query runs as a subquery; anything else must name a table or view
	relation := personalize.source_sql(source);

	-- runs as the caller: privileges and row-level security apply to the source
	started := pg_catalog.clock_timestamp();
	EXECUTE pg_catalog.format('SELECT personalize.%I(s.user_id::bigint, s.item_id::bigint, s.weight::real, $1) FROM %s AS s',
	               fit, relation)
		INTO trained USING fit_options;
	IF trained IS NULL THEN
		RAISE EXCEPTION 'source "%" has no interactions with non-NULL user_id, item_id and weight', source
			USING ERRCODE = '22023';
	END IF;
	info := personalize.model_info(trained);

	-- versions of one name are numbered in commit order
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('personalize.models'), pg_catalog.hashtext(model_name));
	SELECT coalesce(pg_catalog.max(m.version), 0) + 1 INTO new_version FROM personalize.models m WHERE m.name = model_name;
	IF make_active THEN
		UPDATE personalize.models m SET active = false WHERE m.name = model_name AND m.active;
	END IF;
	INSERT INTO personalize.models (name, version, algorithm, options, rows, users, items, seconds, active, model, owner)
	VALUES (model_name, new_version, algorithm, options, (info ->> 'rows')::pg_catalog.int8, (info ->> 'users')::pg_catalog.int8,
	        (info ->> 'items')::pg_catalog.int8, pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), make_active, trained,
	        CURRENT_USER::pg_catalog.regrole);
	RETURN new_version;
END
$$;
COMMENT ON FUNCTION personalize.train(text, text, text, jsonb) IS 'train a model over (user_id, item_id, weight) rows and store a new version';

CREATE OR REPLACE FUNCTION personalize.activate(model_name text, version integer)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('personalize.models'), hashtext(model_name));
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name AND m.version = activate.version) THEN
		RAISE EXCEPTION 'model "%" has no version %', model_name, activate.version USING ERRCODE = '42704';
	END IF;
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Ask the model''s owner or a member of personalize_admin.';
	END IF;
	UPDATE personalize.models m SET active = false WHERE m.name = model_name AND m.active AND m.version <> activate.version;
	UPDATE personalize.models m SET active = true WHERE m.name = model_name AND m.version = activate.version AND NOT m.active;
END
$$;
COMMENT ON FUNCTION personalize.activate(text, integer) IS 'make a version the one served';

CREATE OR REPLACE FUNCTION personalize.drop_model(model_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	-- all or nothing: the row policy would skip the versions of other owners
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Ask the model''s owner or a member of personalize_admin.';
	END IF;
	DELETE FROM personalize.models m WHERE m.name = model_name;
END
$$;
COMMENT ON FUNCTION personalize.drop_model(text) IS 'delete every version of a model';

CREATE OR REPLACE FUNCTION personalize.forget_in_models(subject_id bigint) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	touched integer;
BEGIN
	UPDATE personalize.models m
	SET model = r.model, stale = true, revised_at = pg_catalog.clock_timestamp(), users = m.users - 1
	FROM (SELECT x.name, x.version, personalize.model_without_user(x.model, forget_in_models.subject_id) AS model
	      FROM personalize.models x) r
	WHERE r.model IS NOT NULL AND m.name = r.name AND m.version = r.version;
	GET DIAGNOSTICS touched = ROW_COUNT;
	RETURN touched;
END
$$;

-- ==== consent loose ends (issue 9, item 7; src/consent.sql) ====
CREATE OR REPLACE FUNCTION personalize.consents_append_only() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP = 'DELETE'
	   AND pg_catalog.current_setting('personalize.erasing_subject', true) = OLD.subject_id::text
	   AND CURRENT_USER = (SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID) THEN
		RETURN OLD;
	END IF;
	RAISE EXCEPTION 'consent history is append-only'
		USING ERRCODE = '55000',
		      DETAIL = pg_catalog.format('%s on personalize.consents is not allowed.', TG_OP),
		      HINT = 'Record a change with personalize.set_consent(); erase a subject with personalize.forget().';
END
$$;

-- exempt roles by OID, so that renaming one keeps its exemption (a name that
-- no longer resolves becomes NULL: no exemption, which fails closed as the
-- 0.1.0 policy naming a dropped role did)
ALTER TABLE personalize.protected_tables ALTER COLUMN exempt_role TYPE regrole
	USING pg_catalog.to_regrole(pg_catalog.quote_ident(exempt_role));

CREATE FUNCTION personalize.consent_predicate(tbl regclass, subject_col name, purpose text, with_exemption boolean)
RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN with_exemption THEN
	         pg_catalog.format('EXISTS (SELECT FROM personalize.protected_tables x WHERE x.relid = %L::pg_catalog.regclass'
	                           ' AND pg_catalog.pg_has_role(x.exempt_role, ''MEMBER'')) OR ', tbl::text)
	       ELSE '' END
	    || pg_catalog.format(
	         'EXISTS (SELECT FROM personalize.consents c WHERE c.subject_id = %I.%I AND c.purpose = %L AND c.granted'
	         ' AND NOT EXISTS (SELECT FROM personalize.consents l'
	         ' WHERE l.subject_id = c.subject_id AND l.purpose = c.purpose AND l.seq > c.seq))',
	         (SELECT r.relname FROM pg_catalog.pg_class r WHERE r.oid = tbl), subject_col, purpose)
$$;
COMMENT ON FUNCTION personalize.consent_predicate(regclass, name, text, boolean) IS
	'the row-level security expression personalize.protect() writes for a table';

CREATE OR REPLACE FUNCTION personalize.protect(tbl regclass, subject_col name, purpose text, exempt regrole DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel record;
	coltype regtype;
BEGIN
	IF tbl IS NULL OR subject_col IS NULL OR purpose IS NULL THEN
		RAISE EXCEPTION 'tbl, subject_col and purpose must not be null' USING ERRCODE = '22004';
	END IF;
	IF purpose = '' THEN
		RAISE EXCEPTION 'purpose must not be empty' USING ERRCODE = '22023';
	END IF;
	SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity INTO rel FROM pg_class c WHERE c.oid = tbl;
	IF rel.relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809';
	END IF;
	SELECT a.atttypid INTO coltype FROM pg_attribute a
	WHERE a.attrelid = tbl AND a.attname = subject_col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation "%" does not exist', subject_col, tbl USING ERRCODE = '42703';
	END IF;
	IF coltype NOT IN ('bigint'::regtype, 'integer'::regtype, 'smallint'::regtype) THEN
		RAISE EXCEPTION 'column "%" is of type %, expected bigint, integer or smallint', subject_col, coltype
			USING ERRCODE = '42804';
	END IF;
	IF EXISTS (SELECT FROM personalize.protected_tables p WHERE p.relid = tbl) THEN
		RAISE EXCEPTION 'relation "%" is already protected', tbl USING ERRCODE = '42710',
			HINT = 'Call personalize.unprotect() first.';
	END IF;

	-- Restrictive, so that it narrows any policy the table already has
	-- instead of widening it; inserts are not checked (rows of subjects
	-- without consent may be stored, they stay invisible).
	EXECUTE pg_catalog.format('CREATE POLICY personalize_consent ON %s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (true)',
	                          tbl, personalize.consent_predicate(tbl, subject_col, purpose, exempt IS NOT NULL));
	IF NOT rel.relrowsecurity THEN
		-- RLS was off: every row was visible, keep that for consented rows.
		EXECUTE pg_catalog.format('CREATE POLICY personalize_rows ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true)', tbl);
		EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
	END IF;
	EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);

	INSERT INTO personalize.protected_tables (relid, subject_col, purpose, exempt_role, rls_was_enabled, rls_was_forced)
	VALUES (tbl, subject_col, purpose, exempt, rel.relrowsecurity, rel.relforcerowsecurity);
END
$$;

CREATE FUNCTION personalize.forget_consents(subject_id bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	PERFORM pg_catalog.set_config('personalize.erasing_subject', forget_consents.subject_id::text, true);
	DELETE FROM personalize.consents c WHERE c.subject_id = forget_consents.subject_id;
	GET DIAGNOSTICS n = ROW_COUNT;
	PERFORM pg_catalog.set_config('personalize.erasing_subject', '', true);
	RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION personalize.forget(subject_id bigint)
RETURNS TABLE (object text, removed bigint)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	n bigint;
	touched jsonb := '{}'::jsonb;
	subject bigint := forget.subject_id;
BEGIN
	-- The extension's own tables are erased through two SECURITY DEFINER
	-- functions that only administrators may run; say so before touching anything.
	IF NOT (pg_catalog.has_function_privilege('personalize.forget_in_models(bigint)', 'EXECUTE')
	        AND pg_catalog.has_function_privilege('personalize.forget_consents(bigint)', 'EXECUTE')) THEN
		RAISE EXCEPTION 'role "%" may not erase subjects', CURRENT_USER
			USING ERRCODE = '42501',
			      HINT = 'Erasure needs the role personalize_admin (personalize.grant_admin()).';
	END IF;
	-- Refuse rather than silently skip rows the policy hides from us.
	FOR p IN SELECT * FROM personalize.protected_tables ORDER BY relid::text LOOP
		IF pg_catalog.row_security_active(p.relid)
		   AND NOT (p.exempt_role IS NOT NULL AND pg_catalog.pg_has_role(p.exempt_role, 'MEMBER')) THEN
			RAISE EXCEPTION 'role "%" cannot see every row of "%"', CURRENT_USER, p.relid
				USING ERRCODE = '42501',
				      HINT = 'Run personalize.forget() as the role exempted by personalize.protect(), a superuser or a BYPASSRLS role.';
		END IF;
	END LOOP;

	FOR p IN SELECT * FROM personalize.protected_tables ORDER BY relid::text LOOP
		EXECUTE pg_catalog.format('DELETE FROM %s WHERE %I = $1', p.relid, p.subject_col) USING subject;
		GET DIAGNOSTICS n = ROW_COUNT;
		object := p.relid::text; removed := n;
		touched := touched || pg_catalog.jsonb_build_object(object, n);
		RETURN NEXT;
	END LOOP;

	IF pg_catalog.to_regclass('personalize.prediction_log') IS NOT NULL THEN
		EXECUTE 'DELETE FROM personalize.prediction_log WHERE subject_id = $1' USING subject;
		GET DIAGNOSTICS n = ROW_COUNT;
		object := 'personalize.prediction_log'; removed := n;
		touched := touched || pg_catalog.jsonb_build_object(object, n);
		RETURN NEXT;
	END IF;

	object := 'models'; removed := personalize.forget_in_models(subject);
	touched := touched || pg_catalog.jsonb_build_object(object, removed);
	RETURN NEXT;

	-- Last, the consent history itself (the documented erasure path).
	object := 'personalize.consents'; removed := personalize.forget_consents(subject);
	touched := touched || pg_catalog.jsonb_build_object(object, removed);
	RETURN NEXT;

	INSERT INTO personalize.erasures (touched) VALUES (touched);
END
$$;

-- policies written by 0.1.0 name their exempt role as text: rewrite every one
DO $$
DECLARE
	p record;
BEGIN
	FOR p IN SELECT * FROM personalize.protected_tables LOOP
		EXECUTE pg_catalog.format('ALTER POLICY personalize_consent ON %s USING (%s)', p.relid,
			personalize.consent_predicate(p.relid, p.subject_col, p.purpose, p.exempt_role IS NOT NULL));
	END LOOP;
END
$$;

-- ==== roles and privileges (issue 9, item 6; src/roles.sql, identical) ====
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['personalize_analyst', 'personalize_service', 'personalize_admin'] LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$$;

GRANT USAGE ON SCHEMA personalize TO personalize_analyst, personalize_service;

-- models: rows that a role may change are limited by the policies in registry.sql
GRANT SELECT ON personalize.models TO personalize_analyst, personalize_service;
GRANT INSERT, UPDATE, DELETE ON personalize.models TO personalize_analyst;

-- consent state: reading a protected table evaluates its policy as the reader
GRANT SELECT ON personalize.consents, personalize.current_consent TO personalize_analyst;
-- the exemption of a protected table is looked up here by every reader; the
-- same facts are public in pg_policies
GRANT SELECT ON personalize.protected_tables TO PUBLIC;

-- experiments: analysts create and read them, services assign and log outcomes
GRANT SELECT ON personalize.experiments, personalize.experiment_arms, personalize.assignments,
	personalize.experiment_strata, personalize.outcomes,
	personalize.experiment_results, personalize.experiment_health TO personalize_analyst;
GRANT INSERT ON personalize.experiments, personalize.experiment_arms TO personalize_analyst;
GRANT SELECT ON personalize.experiments, personalize.experiment_arms TO personalize_service;
GRANT SELECT, INSERT ON personalize.assignments TO personalize_service;
GRANT SELECT, INSERT, UPDATE ON personalize.experiment_strata TO personalize_service;
GRANT INSERT ON personalize.outcomes TO personalize_service;

-- fairness monitoring: services log predictions, analysts read them
GRANT INSERT ON personalize.prediction_log TO personalize_service;
GRANT SELECT ON personalize.prediction_log, personalize.fairness_daily, personalize.fairness_daily_groups
	TO personalize_analyst;

-- administration: both kinds of work, and the right to make others analysts and services
GRANT personalize_analyst, personalize_service TO personalize_admin WITH ADMIN OPTION;
GRANT INSERT ON personalize.consents TO personalize_admin;
GRANT USAGE ON SEQUENCE personalize.consents_seq_seq, personalize.erasures_id_seq TO personalize_admin;
GRANT INSERT, DELETE ON personalize.protected_tables TO personalize_admin;
GRANT SELECT, INSERT ON personalize.erasures TO personalize_admin;
GRANT DELETE ON personalize.prediction_log TO personalize_admin;
-- the two SECURITY DEFINER steps of erasure
REVOKE EXECUTE ON FUNCTION personalize.forget_in_models(bigint), personalize.forget_consents(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION personalize.forget_in_models(bigint), personalize.forget_consents(bigint) TO personalize_admin;

-- Membership. Run as the invoker: granting a group role needs its ADMIN OPTION
-- (members of personalize_admin have it for analyst and service), CREATEROLE or
-- superuser, as GRANT itself does. Revoke with REVOKE personalize_analyst FROM role.
CREATE FUNCTION personalize.grant_analyst(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF role = 0 THEN
		RAISE EXCEPTION 'role must not be PUBLIC' USING ERRCODE = '22023';
	END IF;
	EXECUTE pg_catalog.format('GRANT personalize_analyst TO %s', role);
END
$$;
COMMENT ON FUNCTION personalize.grant_analyst(regrole) IS 'let a role train, evaluate and serve models (membership in personalize_analyst)';

CREATE FUNCTION personalize.grant_service(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF role = 0 THEN
		RAISE EXCEPTION 'role must not be PUBLIC' USING ERRCODE = '22023';
	END IF;
	EXECUTE pg_catalog.format('GRANT personalize_service TO %s', role);
END
$$;
COMMENT ON FUNCTION personalize.grant_service(regrole) IS 'let a role serve models and run experiments online (membership in personalize_service)';

CREATE FUNCTION personalize.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF role = 0 THEN
		RAISE EXCEPTION 'role must not be PUBLIC' USING ERRCODE = '22023';
	END IF;
	EXECUTE pg_catalog.format('GRANT personalize_admin TO %s', role);
END
$$;
COMMENT ON FUNCTION personalize.grant_admin(regrole) IS 'let a role administer the extension: change any model, record consent, erase (membership in personalize_admin)';

-- ==== scale (issue 10): model format 2 (read by the library; 0.1.0's format 1 is
-- converted when read), models stored in chunks without the 1 GB limit of a value,
-- and one shared copy of each served version per server.
CREATE FUNCTION personalize.model_store(model_name text, version integer, model personalize.model) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_store(text, integer, personalize.model) IS
	'write a model into personalize.model_chunks as a version of model_name (used by train); returns its bytes';

CREATE FUNCTION personalize.model_export(model_name text, version integer) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.model_export(text, integer) IS
	'a stored model version as one personalize.model value (its text form is the hex of the image)';

CREATE FUNCTION personalize.model_forget_user(model_name text, version integer, user_id bigint) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_forget_user(text, integer, bigint) IS
	'rewrite a stored model version without one user; its new bytes, or NULL when it does not know the user';

CREATE FUNCTION personalize.model_prewarm(model_name text, version integer) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_prewarm(text, integer) IS
	'load an active version into shared memory before the transaction commits (used by train and activate)';

CREATE FUNCTION personalize.model_unload(model_name text) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.model_unload(text) IS
	'free the shared copies of a model once no backend uses them, when the transaction commits (used by drop_model)';

CREATE FUNCTION personalize.model_cache_mode() RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.model_cache_mode() IS
	'shared (one copy per server, the library is preloaded) or backend (a copy per backend)';

CREATE FUNCTION personalize.model_cache()
RETURNS TABLE (name text, version integer, bytes bigint, state text, backends integer, shared boolean)
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.model_cache() IS
	'model versions loaded for serving: in shared memory (with the backends mapping them) and in this backend';

DO $$
BEGIN
	IF personalize.model_cache_mode() <> 'shared' THEN
		-- a WARNING: CREATE EXTENSION runs its script with client_min_messages = warning
		RAISE WARNING 'pg_personalize is not in shared_preload_libraries: every backend that serves a model keeps its own copy'
			USING HINT = 'Add pg_personalize to shared_preload_libraries and restart to keep one copy per server (doc/administration.md).';
	END IF;
END
$$;

CREATE TABLE personalize.model_chunks (
	name		text NOT NULL,
	version		integer NOT NULL,
	chunk		integer NOT NULL CHECK (chunk >= 0),
	bytes		bytea NOT NULL,
	PRIMARY KEY (name, version, chunk),
	FOREIGN KEY (name, version) REFERENCES personalize.models (name, version) ON DELETE CASCADE ON UPDATE CASCADE
);
-- factors do not compress: store uncompressed, out of line
ALTER TABLE personalize.model_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;
COMMENT ON TABLE personalize.model_chunks IS 'stored images of the model versions, in chunks';
SELECT pg_catalog.pg_extension_config_dump('personalize.model_chunks', '');
-- the same rule as the registry: everyone who may read models reads them, whoever
-- may change a model writes its chunks (dropping a version deletes them: the foreign key)
ALTER TABLE personalize.model_chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY model_chunks_read ON personalize.model_chunks FOR SELECT USING (true);
CREATE POLICY model_chunks_write ON personalize.model_chunks FOR INSERT
	WITH CHECK (personalize.may_change_model(name));
CREATE POLICY model_chunks_rewrite ON personalize.model_chunks FOR DELETE
	USING (personalize.may_change_model(name));

-- every stored model moves into chunks (converted to format 2), then the column goes
ALTER TABLE personalize.models ADD COLUMN bytes bigint;
UPDATE personalize.models m SET bytes = personalize.model_store(m.name, m.version, m.model);
ALTER TABLE personalize.models ALTER COLUMN bytes SET NOT NULL;
ALTER TABLE personalize.models DROP COLUMN model;
ALTER TABLE personalize.models ADD COLUMN source text;
-- their images: read by serving, written by training (same policies, registry.sql)
GRANT SELECT ON personalize.model_chunks TO personalize_analyst, personalize_service;
GRANT INSERT, DELETE ON personalize.model_chunks TO personalize_analyst;


CREATE FUNCTION personalize.store_version(model_name text, model personalize.model, options jsonb,
	seconds double precision, make_active boolean)
RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	info jsonb := personalize.model_info(model);
	new_version integer;
BEGIN
	IF model_name = '' THEN
		RAISE EXCEPTION 'model name must not be empty' USING ERRCODE = '22023';
	END IF;
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Store it under another name, or ask the model''s owner or a member of personalize_admin.';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('personalize.models'), hashtext(model_name));
	SELECT coalesce(max(m.version), 0) + 1 INTO new_version FROM personalize.models m WHERE m.name = model_name;
	IF make_active THEN
		UPDATE personalize.models m SET active = false WHERE m.name = model_name AND m.active;
	END IF;
	INSERT INTO personalize.models (name, version, algorithm, options, rows, users, items, seconds, active, bytes)
	VALUES (model_name, new_version, info ->> 'algorithm', options, (info ->> 'rows')::int8, (info ->> 'users')::int8,
	        (info ->> 'items')::int8, seconds, make_active, (info ->> 'bytes')::int8);
	PERFORM personalize.model_store(model_name, new_version, model);
	RETURN new_version;
END
$$;
COMMENT ON FUNCTION personalize.store_version(text, personalize.model, jsonb, double precision, boolean) IS
	'register and store a model as the next version of a name (used by train and model_import)';

CREATE FUNCTION personalize.model_import(model_name text, model personalize.model, activate boolean DEFAULT false)
RETURNS integer
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT personalize.store_version(model_name, model,
	                                 personalize.model_info(model) -> 'options', 0, activate);
END;
COMMENT ON FUNCTION personalize.model_import(text, personalize.model, boolean) IS
	'store a personalize.model value (from model_export) as the next version of a name';

CREATE OR REPLACE FUNCTION personalize.train(model_name text, algorithm text, source text, options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- the trained model stays where the aggregate built it (a handle, not a value
-- copied by the executor and plpgsql), is stored from there and, in shared
-- mode, becomes the shared copy without another copy
SET personalize.model_value_limit = 1024
-- No pinned search_path: the source is the caller's table or query and is
-- resolved with the caller's path. Every name in the body is qualified.
AS $$
DECLARE
	fit text;
	relation text;
	fit_options jsonb;
	make_active boolean;
	started timestamptz;
	trained personalize.model;
	new_version integer;
BEGIN
	IF model_name IS NULL OR algorithm IS NULL OR source IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'model_name, algorithm, source and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF model_name = '' THEN
		RAISE EXCEPTION 'model name must not be empty' USING ERRCODE = '22023';
	END IF;
	fit := CASE algorithm WHEN 'popularity' THEN 'popularity_fit'
	                      WHEN 'itemknn' THEN 'itemknn_fit'
	                      WHEN 'als' THEN 'als_fit' END;
	IF fit IS NULL THEN
		RAISE EXCEPTION 'unknown algorithm "%"', algorithm USING ERRCODE = '22023',
			HINT = 'Use popularity, itemknn or als.';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	IF options ? 'activate' AND pg_catalog.jsonb_typeof(options -> 'activate') <> 'boolean' THEN
		RAISE EXCEPTION 'option "activate" must be a boolean' USING ERRCODE = '22023';
	END IF;
	make_active := coalesce((options ->> 'activate')::boolean, true);
	fit_options := options - 'activate';
	-- before a training that may take minutes (the row policy checks again at insert)
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Train under another name, or ask the model''s owner or a member of personalize_admin.';
	END IF;

	-- a query runs as a subquery; anything else must name a table or view
	relation := personalize.source_sql(source);

	-- runs as the caller: privileges and row-level security apply to the source
	started := pg_catalog.clock_timestamp();
	EXECUTE pg_catalog.format('SELECT personalize.%I(s.user_id::bigint, s.item_id::bigint, s.weight::real, $1) FROM %s AS s',
	               fit, relation)
		INTO trained USING fit_options;
	IF trained IS NULL THEN
		RAISE EXCEPTION 'source "%" has no interactions with non-NULL user_id, item_id and weight', source
			USING ERRCODE = '22023';
	END IF;
	new_version := personalize.store_version(model_name, trained, options,
	                                         pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), make_active);
	UPDATE personalize.models m SET source = relation WHERE m.name = model_name AND m.version = new_version;
	RETURN new_version;
END
$$;

CREATE OR REPLACE FUNCTION personalize.activate(model_name text, version integer)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('personalize.models'), hashtext(model_name));
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name AND m.version = activate.version) THEN
		RAISE EXCEPTION 'model "%" has no version %', model_name, activate.version USING ERRCODE = '42704';
	END IF;
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Ask the model''s owner or a member of personalize_admin.';
	END IF;
	UPDATE personalize.models m SET active = false WHERE m.name = model_name AND m.active AND m.version <> activate.version;
	UPDATE personalize.models m SET active = true WHERE m.name = model_name AND m.version = activate.version AND NOT m.active;
	-- in shared memory before commit: the first request after it finds the version ready
	PERFORM personalize.model_prewarm(model_name, activate.version);
END
$$;

CREATE OR REPLACE FUNCTION personalize.drop_model(model_name text)
RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	-- all or nothing: the row policy would skip the versions of other owners
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Ask the model''s owner or a member of personalize_admin.';
	END IF;
	DELETE FROM personalize.models m WHERE m.name = model_name;
	PERFORM personalize.model_unload(model_name);
END
$$;

CREATE OR REPLACE FUNCTION personalize.forget_in_models(subject_id bigint) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	touched integer := 0;
	rewritten record;
BEGIN
	FOR rewritten IN
		UPDATE personalize.models m
		SET stale = true, revised_at = pg_catalog.clock_timestamp(), users = m.users - 1, bytes = r.bytes
		FROM (SELECT x.name, x.version, personalize.model_forget_user(x.name, x.version, forget_in_models.subject_id) AS bytes
		      FROM personalize.models x WHERE x.users IS NOT NULL) r
		WHERE r.bytes IS NOT NULL AND m.name = r.name AND m.version = r.version
		RETURNING m.name, m.version, m.active
	LOOP
		touched := touched + 1;
		IF rewritten.active THEN
			PERFORM personalize.model_prewarm(rewritten.name, rewritten.version);
		END IF;
	END LOOP;
	RETURN touched;
END
$$;

-- ==== propensity (issue 12): logistic regression, calibration, uplift; the registry gains the
-- algorithms logistic and uplift, train() dispatches them to classifier_fit.
ALTER TABLE personalize.models DROP CONSTRAINT models_algorithm_check;
ALTER TABLE personalize.models ADD CONSTRAINT models_algorithm_check CHECK (algorithm IN ('popularity', 'itemknn', 'als', 'logistic', 'uplift'));
COMMENT ON TYPE personalize.model IS 'trained model: a recommender (popularity, item-kNN or ALS) or a classifier (logistic, uplift)';

CREATE OR REPLACE FUNCTION personalize.train(model_name text, algorithm text, source text, options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- the trained model stays where the aggregate built it (a handle, not a value
-- copied by the executor and plpgsql), is stored from there and, in shared
-- mode, becomes the shared copy without another copy
SET personalize.model_value_limit = 1024
-- No pinned search_path: the source is the caller's table or query and is
-- resolved with the caller's path. Every name in the body is qualified.
AS $$
DECLARE
	fit text;
	relation text;
	fit_options jsonb;
	make_active boolean;
	started timestamptz;
	trained personalize.model;
	new_version integer;
BEGIN
	IF model_name IS NULL OR algorithm IS NULL OR source IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'model_name, algorithm, source and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF model_name = '' THEN
		RAISE EXCEPTION 'model name must not be empty' USING ERRCODE = '22023';
	END IF;
	fit := CASE algorithm WHEN 'popularity' THEN 'popularity_fit'
	                      WHEN 'itemknn' THEN 'itemknn_fit'
	                      WHEN 'als' THEN 'als_fit'
	                      WHEN 'logistic' THEN 'classifier_fit'
	                      WHEN 'uplift' THEN 'classifier_fit' END;
	IF fit IS NULL THEN
		RAISE EXCEPTION 'unknown algorithm "%"', algorithm USING ERRCODE = '22023',
			HINT = 'Use popularity, itemknn, als, logistic or uplift.';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	IF options ? 'activate' AND pg_catalog.jsonb_typeof(options -> 'activate') <> 'boolean' THEN
		RAISE EXCEPTION 'option "activate" must be a boolean' USING ERRCODE = '22023';
	END IF;
	make_active := coalesce((options ->> 'activate')::boolean, true);
	fit_options := options - 'activate';
	-- before a training that may take minutes (the row policy checks again at insert)
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Train under another name, or ask the model''s owner or a member of personalize_admin.';
	END IF;

	-- a query runs as a subquery; anything else must name a table or view
	relation := personalize.source_sql(source);

	-- runs as the caller: privileges and row-level security apply to the source
	started := pg_catalog.clock_timestamp();
	IF fit = 'classifier_fit' THEN
		-- label, features and the rest are in the options (src/logistic.c)
		trained := personalize.classifier_fit(algorithm, source, fit_options);
	ELSE
		EXECUTE pg_catalog.format('SELECT personalize.%I(s.user_id::bigint, s.item_id::bigint, s.weight::real, $1) FROM %s AS s',
		               fit, relation)
			INTO trained USING fit_options;
		IF trained IS NULL THEN
			RAISE EXCEPTION 'source "%" has no interactions with non-NULL user_id, item_id and weight', source
				USING ERRCODE = '22023';
		END IF;
	END IF;
	new_version := personalize.store_version(model_name, trained, options,
	                                         pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), make_active);
	UPDATE personalize.models m SET source = relation WHERE m.name = model_name AND m.version = new_version;
	RETURN new_version;
END
$$;

-- src/classifier.sql
-- classifier: scoring with a trained logistic or uplift model (src/logistic.sql trains them).
-- Features are passed in the order of training, or as one whole row whose columns are
-- matched by name: personalize.predict('churn', c) FROM customers c. The active version is
-- looked up once per query, so a SELECT over millions of rows runs at scan speed.

CREATE FUNCTION personalize.predict(model_name text, VARIADIC features "any") RETURNS double precision
	AS 'MODULE_PATHNAME', 'classifier_predict' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.predict(text, "any") IS
	'probability of the positive class for one row (calibrated when the model is); NULL when a feature is NULL';

CREATE FUNCTION personalize.predict_log_odds(model_name text, VARIADIC features "any") RETURNS double precision
	AS 'MODULE_PATHNAME', 'classifier_predict_log_odds' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.predict_log_odds(text, "any") IS
	'the linear predictor (log odds) of one row, before any calibration';

CREATE FUNCTION personalize.predictions(model_name text, source text, id_column text)
RETURNS TABLE (subject_id bigint, probability double precision)
	AS 'MODULE_PATHNAME', 'classifier_predictions' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100000;
COMMENT ON FUNCTION personalize.predictions(text, text, text) IS
	'probability for every row of a table, view or query, by its integer id';

CREATE FUNCTION personalize.coefficients(model_name text, confidence double precision DEFAULT 0.95)
RETURNS TABLE (arm text, term text, feature text, level text, coefficient double precision,
               std_error double precision, z double precision, p_value double precision,
               ci_low double precision, ci_high double precision)
	AS 'MODULE_PATHNAME', 'classifier_coefficients' LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 20;
COMMENT ON FUNCTION personalize.coefficients(text, double precision) IS
	'coefficients of the active version with standard errors, z, p-values and Wald intervals';
CREATE FUNCTION personalize.coefficients(model personalize.model, confidence double precision DEFAULT 0.95)
RETURNS TABLE (arm text, term text, feature text, level text, coefficient double precision,
               std_error double precision, z double precision, p_value double precision,
               ci_low double precision, ci_high double precision)
	AS 'MODULE_PATHNAME', 'classifier_coefficients' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 20;
COMMENT ON FUNCTION personalize.coefficients(personalize.model, double precision) IS
	'coefficients of a stored model value with standard errors, z, p-values and Wald intervals';

-- Scores into the prediction log (src/fairness.sql), for the fairness views. The source
-- runs as the caller; attributes are columns copied into the log's attributes object.
CREATE FUNCTION personalize.log_predictions(model_name text, source text, id_column text,
	attributes text[] DEFAULT '{}', label_column text DEFAULT NULL, threshold double precision DEFAULT 0.5)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
DECLARE
	attrs text := '''{}''::pg_catalog.jsonb';
	label text := 'NULL::pg_catalog.bool';
	logged bigint;
BEGIN
	IF model_name IS NULL OR source IS NULL OR id_column IS NULL OR attributes IS NULL OR threshold IS NULL THEN
		RAISE EXCEPTION 'model_name, source, id_column, attributes and threshold must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF pg_catalog.cardinality(attributes) > 0 THEN
		SELECT 'pg_catalog.jsonb_build_object(' ||
		       pg_catalog.string_agg(pg_catalog.format('%L, s.%I', a, a), ', ' ORDER BY i) || ')'
		INTO attrs FROM pg_catalog.unnest(attributes) WITH ORDINALITY u(a, i);
	END IF;
	IF label_column IS NOT NULL THEN
		-- booleans, and integers 0/1, through their text
		label := pg_catalog.format('(s.%I)::pg_catalog.text::pg_catalog.bool', label_column);
	END IF;
	EXECUTE pg_catalog.format(
		'INSERT INTO personalize.prediction_log (model, subject_id, score, prediction, label, attributes)
		 SELECT $1, q.id, q.score, q.score OPERATOR(pg_catalog.>=) $2, q.label, q.attributes
		 FROM (SELECT (s.%I)::pg_catalog.int8 AS id, personalize.predict($1, s) AS score, %s AS label, %s AS attributes
		       FROM %s AS s) q',
		id_column, label, attrs, personalize.source_sql(source))
	USING model_name, threshold;
	GET DIAGNOSTICS logged = ROW_COUNT;
	RETURN logged;
END
$$;
COMMENT ON FUNCTION personalize.log_predictions(text, text, text, text[], text, double precision) IS
	'score every row of a source and append it to personalize.prediction_log (prediction: score >= threshold)';

-- src/logistic.sql
-- logistic: logistic regression trained by an aggregate pass (log-likelihood, gradient and
-- Hessian for given coefficients, parallel safe) driven by Newton's method. Formulas,
-- options and the NULL policy: doc/propensity.md.

CREATE FUNCTION personalize.logistic_pass_transfn(double precision[], bytea, "any", "any", VARIADIC "any")
	RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.logistic_pass_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.logistic_pass_final(double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- The state is a double precision[]: partial sums are shipped and added by the combine function.
-- label: boolean or a number 0/1; weight: a number; then the features in the spec's order.
CREATE AGGREGATE personalize.logistic_pass(spec bytea, label "any", weight "any", VARIADIC features "any") (
	SFUNC = personalize.logistic_pass_transfn, STYPE = double precision[],
	COMBINEFUNC = personalize.logistic_pass_combine,
	FINALFUNC = personalize.logistic_pass_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);

CREATE FUNCTION personalize.logistic_spec(model personalize.model, arm text DEFAULT NULL) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.logistic_spec(personalize.model, text) IS
	'a stored classifier (an uplift model''s control or treated arm) as the spec of logistic_pass';

CREATE FUNCTION personalize.classifier_fit(algorithm text, source text, options jsonb) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.classifier_fit(text, text, jsonb) IS
	'fit a logistic (or two-arm uplift) model on a table, view or query, as the caller';

CREATE FUNCTION personalize.train_classifier(model_name text, source text, label text, features text[],
                                             options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
BEGIN
	IF label IS NULL OR features IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'label, features and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	RETURN personalize.train(model_name, 'logistic', source,
		pg_catalog.jsonb_concat(options, pg_catalog.jsonb_build_object('label', label, 'features', pg_catalog.to_jsonb(features))));
END
$$;
COMMENT ON FUNCTION personalize.train_classifier(text, text, text, text[], jsonb) IS
	'train a logistic regression (propensity model) and store a new version';

-- src/calibration.sql
-- calibration: Platt scaling or isotonic regression of a logistic model, fitted on
-- held-out rows, stored as a new version (store_version) and applied by personalize.predict.

CREATE FUNCTION personalize.calibration_fit(model personalize.model, source text, method text DEFAULT 'platt')
RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.calibration_fit(personalize.model, text, text) IS
	'the model with a calibration (platt or isotonic) fitted on the rows of a source';

CREATE FUNCTION personalize.calibrate(model_name text, source text, method text DEFAULT 'platt')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
DECLARE
	current record;
	started timestamptz;
	calibrated personalize.model;
BEGIN
	IF model_name IS NULL OR source IS NULL OR method IS NULL THEN
		RAISE EXCEPTION 'model_name, source and method must not be NULL' USING ERRCODE = '22004';
	END IF;
	SELECT m.version, m.algorithm, m.options INTO current
	FROM personalize.models m WHERE m.name = model_name AND m.active;
	IF NOT FOUND THEN
		IF EXISTS (SELECT FROM personalize.models m WHERE m.name = model_name) THEN
			RAISE EXCEPTION 'model "%" has no active version', model_name USING ERRCODE = '55000',
				HINT = 'Activate one with personalize.activate().';
		END IF;
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = '42704';
	END IF;
	-- before the fit (store_version and the row policy check again)
	IF NOT personalize.may_change_model(model_name) THEN
		RAISE EXCEPTION 'must be owner of model "%"', model_name USING ERRCODE = '42501',
			HINT = 'Ask the model''s owner or a member of personalize_admin.';
	END IF;
	IF current.algorithm <> 'logistic' THEN
		RAISE EXCEPTION 'model "%" is % % model, not a logistic model', model_name,
			CASE WHEN current.algorithm IN ('itemknn', 'als', 'uplift') THEN 'an' ELSE 'a' END, current.algorithm
			USING ERRCODE = '0A000';
	END IF;
	started := pg_catalog.clock_timestamp();
	calibrated := personalize.calibration_fit(personalize.model_export(model_name, current.version), source, method);
	RETURN personalize.store_version(model_name, calibrated,
		pg_catalog.jsonb_concat(current.options - 'calibration' - 'calibration_source' - 'calibrated_version',
		                        pg_catalog.jsonb_build_object('calibration', method, 'calibration_source', source,
		                                                      'calibrated_version', current.version)),
		pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), true);
END
$$;
COMMENT ON FUNCTION personalize.calibrate(text, text, text) IS
	'calibrate the active version of a logistic model on held-out rows; stores and activates a new version';

-- src/uplift.sql
-- uplift: two-model (T-learner) uplift from a treatment column, and read-outs of any
-- uplift score on an experiment: Qini and uplift curves, their normalized areas,
-- uplift at k and response rates per score bin (scikit-uplift's definitions,
-- doc/uplift.md).

CREATE FUNCTION personalize.train_uplift(model_name text, source text, outcome text, treatment text,
                                         features text[], options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source resolves as the caller's; every name here is qualified.
AS $$
BEGIN
	IF outcome IS NULL OR treatment IS NULL OR features IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'outcome, treatment, features and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	RETURN personalize.train(model_name, 'uplift', source,
		pg_catalog.jsonb_concat(options, pg_catalog.jsonb_build_object('label', outcome, 'treatment', treatment,
		                                                               'features', pg_catalog.to_jsonb(features))));
END
$$;
COMMENT ON FUNCTION personalize.train_uplift(text, text, text, text, text[], jsonb) IS
	'train a two-model (T-learner) uplift model: one logistic regression per arm';

CREATE FUNCTION personalize.uplift_score(model_name text, VARIADIC features "any") RETURNS double precision
	AS 'MODULE_PATHNAME', 'uplift_score' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION personalize.uplift_score(text, "any") IS
	'predicted uplift of one row: probability if treated minus probability if not';

CREATE FUNCTION personalize.uplift_scores(model_name text, source text, id_column text)
RETURNS TABLE (subject_id bigint, p_treated double precision, p_control double precision, uplift double precision)
	AS 'MODULE_PATHNAME', 'uplift_scores' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100000;
COMMENT ON FUNCTION personalize.uplift_scores(text, text, text) IS
	'treated and control probabilities and their difference for every row of a source';

CREATE FUNCTION personalize.uplift_accum(bytea, boolean, boolean, double precision) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.uplift_combine(bytea, bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.uplift_sample_final(bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- The state is bytea (concrete, shipped between workers); rows with a NULL are skipped.
CREATE AGGREGATE personalize.uplift_sample(outcome boolean, treatment boolean, score double precision) (
	SFUNC = personalize.uplift_accum, STYPE = bytea,
	COMBINEFUNC = personalize.uplift_combine,
	FINALFUNC = personalize.uplift_sample_final,
	PARALLEL = SAFE
);

CREATE FUNCTION personalize.uplift_summary(sample bytea, k double precision DEFAULT 0.3, strategy text DEFAULT 'overall',
	OUT n bigint, OUT treated bigint, OUT control bigint, OUT auuc double precision,
	OUT qini_coefficient double precision, OUT uplift_at_k double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.uplift_summary(bytea, double precision, text) IS
	'normalized areas under the uplift curve (AUUC) and the Qini curve, and uplift at the top k';

CREATE FUNCTION personalize.uplift_curve(sample bytea)
RETURNS TABLE (n bigint, value double precision, random double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION personalize.uplift_curve(bytea) IS
	'uplift curve: (treated rate - control rate) x rows targeted, at each distinct score';
CREATE FUNCTION personalize.qini_curve(sample bytea)
RETURNS TABLE (n bigint, value double precision, random double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1000;
COMMENT ON FUNCTION personalize.qini_curve(bytea) IS
	'Qini curve: treated responders - control responders x treated / control, at each distinct score';

CREATE FUNCTION personalize.uplift_by_percentile(sample bytea, bins integer DEFAULT 10, strategy text DEFAULT 'overall',
	confidence double precision DEFAULT 0.95)
RETURNS TABLE (bin integer, n_treated bigint, n_control bigint, rate_treated double precision,
               rate_control double precision, uplift double precision, uplift_low double precision,
               uplift_high double precision, p_value double precision, confidence double precision)
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION personalize.uplift_by_percentile(bytea, integer, text, double precision) IS
	'per score bin (deciles by default): treated and control response rates, uplift, Wald interval, z-test';
