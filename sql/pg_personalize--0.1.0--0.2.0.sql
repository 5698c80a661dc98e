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

-- ==== the experiment's other arms (issue 13): bpr, hybrid, dp_popularity, dp_als, editorial, explain ====
-- the registry knows the new algorithms and records features and privacy
ALTER TABLE personalize.models DROP CONSTRAINT models_algorithm_check;
ALTER TABLE personalize.models ADD CONSTRAINT models_algorithm_check
	CHECK (algorithm IN ('popularity', 'itemknn', 'als', 'bpr', 'hybrid', 'dp_popularity', 'dp_als', 'editorial'));
ALTER TABLE personalize.models ADD COLUMN features text[], ADD COLUMN privacy jsonb;
CREATE OR REPLACE FUNCTION personalize.store_version(model_name text, model personalize.model, options jsonb,
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
	INSERT INTO personalize.models (name, version, algorithm, options, rows, users, items, seconds, active, bytes,
	                                features, privacy)
	VALUES (model_name, new_version, info ->> 'algorithm', options, (info ->> 'rows')::int8, (info ->> 'users')::int8,
	        (info ->> 'items')::int8, seconds, make_active, (info ->> 'bytes')::int8,
	        ARRAY(SELECT jsonb_array_elements_text(coalesce(info -> 'feature_sets', '[]'::jsonb))), info -> 'privacy');
	PERFORM personalize.model_store(model_name, new_version, model);
	RETURN new_version;
END
$$;

-- src/bpr.sql
CREATE FUNCTION personalize.bpr_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.bpr_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.bpr_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.bpr_fit(bigint, bigint, real, jsonb) IS 'BPR matrix factorization by SGD (implicit feedback)';
-- src/hybrid.sql
CREATE FUNCTION personalize.hybrid_transfn(internal, bigint, bigint, real, text, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL UNSAFE;
CREATE FUNCTION personalize.hybrid_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL UNSAFE;

CREATE AGGREGATE personalize.hybrid_fit(user_id bigint, item_id bigint, weight real, context text, options jsonb) (
	SFUNC = personalize.hybrid_transfn,
	STYPE = internal,
	FINALFUNC = personalize.hybrid_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE personalize.hybrid_fit(bigint, bigint, real, text, jsonb) IS 'hybrid model: id, feature and context embeddings trained with WARP or BPR';
-- src/dp.sql
CREATE FUNCTION personalize.dp_popularity_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

-- PARALLEL RESTRICTED: the final function may read the catalog source as the caller
CREATE AGGREGATE personalize.dp_popularity_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.dp_popularity_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = RESTRICTED
);
COMMENT ON AGGREGATE personalize.dp_popularity_fit(bigint, bigint, real, jsonb) IS 'differentially private item counts: contribution bounding and Laplace or Gaussian noise';

CREATE FUNCTION personalize.dp_als_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.dp_als_fit(user_id bigint, item_id bigint, weight real, options jsonb) (
	SFUNC = personalize.interactions_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interactions_combine,
	SERIALFUNC = personalize.interactions_serialize,
	DESERIALFUNC = personalize.interactions_deserialize,
	FINALFUNC = personalize.dp_als_final,
	FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.dp_als_fit(bigint, bigint, real, jsonb) IS 'differentially private implicit ALS (noisy item-side statistics, Chien et al. 2021)';
-- src/editorial.sql
CREATE FUNCTION personalize.editorial_transfn(internal, bigint, integer, text, jsonb) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL UNSAFE;
CREATE FUNCTION personalize.editorial_final(internal) RETURNS personalize.model
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL UNSAFE;

CREATE AGGREGATE personalize.editorial_fit(item_id bigint, "position" integer, segment text, options jsonb) (
	SFUNC = personalize.editorial_transfn,
	STYPE = internal,
	FINALFUNC = personalize.editorial_final,
	PARALLEL = UNSAFE
);
COMMENT ON AGGREGATE personalize.editorial_fit(bigint, integer, text, jsonb) IS 'editorial model: curated lists per segment, and a default list';
-- src/explain.sql
CREATE FUNCTION personalize.explain(model_name text, user_id bigint, item_id bigint, k integer DEFAULT 10,
	context text DEFAULT NULL)
RETURNS TABLE (rank integer, kind text, past_item_id bigint, name text, contribution real)
	AS 'MODULE_PATHNAME', 'explain' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.explain(text, bigint, bigint, integer, text) IS 'the past items, features and context that make up a score, largest first';

-- recommend takes a context (calls written for 0.1.0 keep working: it is a trailing default)
DROP FUNCTION personalize.recommend(text, bigint, integer, boolean, bigint[], bigint[]);
CREATE FUNCTION personalize.recommend(model_name text, user_id bigint, k integer DEFAULT 10,
	exclude_seen boolean DEFAULT true, candidates bigint[] DEFAULT NULL, exclude bigint[] DEFAULT NULL,
	context text DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank integer, reason text)
	AS 'MODULE_PATHNAME', 'recommend' LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION personalize.recommend(text, bigint, integer, boolean, bigint[], bigint[], text) IS 'top-k items for a user (in a context); popular items for an unknown user';


-- train: the new algorithms, feature minimisation (exclude_features), features and privacy recorded
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
	excluded text[];
	unknown_set text;
	uses_weight boolean;
	weight_expr text;
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
	                      WHEN 'bpr' THEN 'bpr_fit'
	                      WHEN 'hybrid' THEN 'hybrid_fit'
	                      WHEN 'dp_popularity' THEN 'dp_popularity_fit'
	                      WHEN 'dp_als' THEN 'dp_als_fit'
	                      WHEN 'editorial' THEN 'editorial_fit' END;
	IF fit IS NULL THEN
		RAISE EXCEPTION 'unknown algorithm "%"', algorithm USING ERRCODE = '22023',
			HINT = 'Use popularity, itemknn, als, bpr, hybrid, dp_popularity, dp_als or editorial.';
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

	-- feature minimisation: named feature sets left out of the training
	IF options ? 'exclude_features' AND (pg_catalog.jsonb_typeof(options -> 'exclude_features') <> 'array'
	   OR EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(options -> 'exclude_features') e
	              WHERE pg_catalog.jsonb_typeof(e) <> 'string')) THEN
		RAISE EXCEPTION 'option "exclude_features" must be an array of strings' USING ERRCODE = '22023';
	END IF;
	excluded := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(coalesce(options -> 'exclude_features', '[]')));
	IF algorithm <> 'hybrid' THEN
		-- the hybrid resolves its own feature sets; the others know only the interaction weight
		fit_options := fit_options - 'exclude_features';
		SELECT e INTO unknown_set FROM pg_catalog.unnest(excluded) e
		WHERE e OPERATOR(pg_catalog.<>) 'weight' OR algorithm IN ('editorial', 'dp_popularity') LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'feature set "%" is not used by algorithm %', unknown_set, algorithm USING ERRCODE = '22023',
				HINT = CASE WHEN algorithm IN ('editorial', 'dp_popularity') THEN 'Algorithm ' OPERATOR(pg_catalog.||) algorithm OPERATOR(pg_catalog.||) ' uses no features.'
				            ELSE 'Algorithm ' OPERATOR(pg_catalog.||) algorithm OPERATOR(pg_catalog.||) ' uses only the feature set "weight".' END;
		END IF;
	END IF;
	-- dp_popularity counts users, editorial reads a list: neither uses weights
	uses_weight := algorithm NOT IN ('editorial', 'dp_popularity') AND NOT 'weight' OPERATOR(pg_catalog.=) ANY (excluded);
	weight_expr := CASE WHEN uses_weight THEN 's.weight::real' ELSE '1::real' END;

	-- a query runs as a subquery; anything else must name a table or view
	relation := personalize.source_sql(source);

	-- runs as the caller: privileges and row-level security apply to the source
	started := pg_catalog.clock_timestamp();
	IF algorithm = 'editorial' THEN
		EXECUTE pg_catalog.format('SELECT personalize.editorial_fit(s.item_id::bigint, s.position::integer, %s, $1) FROM %s AS s',
		               CASE WHEN 'segment' OPERATOR(pg_catalog.=) ANY (personalize.source_columns(source)) THEN 's.segment::text' ELSE 'NULL::text' END,
		               relation)
			INTO trained USING fit_options;
	ELSIF algorithm = 'hybrid' THEN
		EXECUTE pg_catalog.format('SELECT personalize.hybrid_fit(s.user_id::bigint, s.item_id::bigint, %s, %s, $1) FROM %s AS s',
		               weight_expr,
		               CASE WHEN 'context' OPERATOR(pg_catalog.=) ANY (personalize.source_columns(source)) THEN 's.context::text' ELSE 'NULL::text' END,
		               relation)
			INTO trained USING fit_options;
	ELSE
		EXECUTE pg_catalog.format('SELECT personalize.%I(s.user_id::bigint, s.item_id::bigint, %s, $1) FROM %s AS s',
		               fit, weight_expr, relation)
			INTO trained USING fit_options;
	END IF;
	IF trained IS NULL AND algorithm = 'editorial' THEN
		RAISE EXCEPTION 'source "%" has no rows with non-NULL item_id and position', source USING ERRCODE = '22023';
	ELSIF trained IS NULL THEN
		RAISE EXCEPTION 'source "%" has no interactions with non-NULL user_id, item_id and weight', source
			USING ERRCODE = '22023';
	END IF;
	new_version := personalize.store_version(model_name, trained, options,
	                                         pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), make_active);
	-- what it was trained from, and on: the interaction weight unless left out
	UPDATE personalize.models m
	SET source = relation,
	    features = CASE WHEN uses_weight THEN pg_catalog.array_prepend('weight'::text, m.features) ELSE m.features END
	WHERE m.name = model_name AND m.version = new_version;
	RETURN new_version;
END
$$;

-- src/privacy_report.sql: the privacy/utility trade-off as one table
CREATE FUNCTION personalize.privacy_report(train text, test text,
	epsilons double precision[] DEFAULT '{0.5,1,2,5,10,Infinity}', options jsonb DEFAULT '{}',
	k integer DEFAULT 10, seeds integer[] DEFAULT '{1}')
RETURNS TABLE (variant text, epsilon double precision, features_removed text[], runs integer, users bigint,
               ndcg_at_k double precision, precision_at_k double precision, recall_at_k double precision,
               ndcg_vs_als double precision)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: train and test are the caller's relations or queries, resolved
-- with the caller's path. Every name in the body is qualified.
AS $$
DECLARE
	known_keys CONSTANT text[] := ARRAY['als', 'popularity', 'dp_als', 'dp_popularity', 'hybrid', 'ablations', 'contexts'];
	model_name CONSTANT text := 'privacy_report_' OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid();
	bad_key text;
	eps double precision;
	s integer;
	ablation jsonb;
	removed text[];
	runs_to_do jsonb := '[]'::jsonb;
	results jsonb := '[]'::jsonb;
	recommendations text;
	served integer;
	run jsonb;
	run_options jsonb;
	m record;
BEGIN
	IF train IS NULL OR test IS NULL OR epsilons IS NULL OR options IS NULL OR k IS NULL OR seeds IS NULL THEN
		RAISE EXCEPTION 'train, test, epsilons, options, k and seeds must not be NULL' USING ERRCODE = '22004';
	END IF;
	IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	SELECT key INTO bad_key FROM pg_catalog.jsonb_object_keys(options) key WHERE key <> ALL (known_keys) LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'unknown option "%"', bad_key USING ERRCODE = '22023',
			HINT = 'Options are als, popularity, dp_als, dp_popularity, hybrid (objects of training options), ablations (an array of arrays of feature sets) and contexts (a source of user_id, context).';
	END IF;
	IF pg_catalog.cardinality(epsilons) = 0 OR pg_catalog.cardinality(seeds) = 0
	   OR EXISTS (SELECT FROM pg_catalog.unnest(epsilons) e WHERE e IS NULL OR NOT e > 0) THEN
		RAISE EXCEPTION 'epsilons must be positive (Infinity for no privacy) and seeds must not be empty' USING ERRCODE = '22023';
	END IF;
	IF k < 1 THEN
		RAISE EXCEPTION 'k must be at least 1, not %', k USING ERRCODE = '22023';
	END IF;
	IF options ? 'ablations' AND NOT options ? 'hybrid' THEN
		RAISE EXCEPTION 'option "ablations" needs option "hybrid"' USING ERRCODE = '22023';
	END IF;

	-- the runs: (variant, algorithm, epsilon, removed feature sets, training options)
	runs_to_do := runs_to_do
		|| pg_catalog.jsonb_build_object('variant', 'als', 'algorithm', 'als', 'options', coalesce(options -> 'als', '{}'))
		|| pg_catalog.jsonb_build_object('variant', 'popularity', 'algorithm', 'popularity', 'options', coalesce(options -> 'popularity', '{}'));
	FOREACH eps IN ARRAY epsilons LOOP
		runs_to_do := runs_to_do
			|| pg_catalog.jsonb_build_object('variant', 'dp_als', 'algorithm', 'dp_als', 'epsilon', eps,
			                                 'options', coalesce(options -> 'als', '{}') || coalesce(options -> 'dp_als', '{}'))
			|| pg_catalog.jsonb_build_object('variant', 'dp_popularity', 'algorithm', 'dp_popularity', 'epsilon', eps,
			                                 'options', coalesce(options -> 'dp_popularity', '{}'));
	END LOOP;
	IF options ? 'hybrid' THEN
		runs_to_do := runs_to_do || pg_catalog.jsonb_build_object('variant', 'hybrid', 'algorithm', 'hybrid', 'removed', '[]'::jsonb,
		                                                          'options', options -> 'hybrid');
		FOR ablation IN SELECT a FROM pg_catalog.jsonb_array_elements(coalesce(options -> 'ablations', '[]')) a LOOP
			runs_to_do := runs_to_do || pg_catalog.jsonb_build_object('variant', 'hybrid', 'algorithm', 'hybrid', 'removed', ablation,
			                                                          'options', options -> 'hybrid');
		END LOOP;
	END IF;

	-- every user of the test rows, served with their training items excluded (and in their context)
	recommendations := pg_catalog.format('
		WITH seen AS (SELECT s.user_id::pg_catalog.int8 AS user_id, pg_catalog.array_agg(DISTINCT s.item_id::pg_catalog.int8) AS items
		              FROM %s AS s GROUP BY 1),
		     users AS (SELECT DISTINCT t.user_id::pg_catalog.int8 AS user_id FROM %s AS t),
		     contexts AS (%s)
		SELECT u.user_id, r.item_id, r.rank
		FROM users u LEFT JOIN seen v ON v.user_id OPERATOR(pg_catalog.=) u.user_id
		     LEFT JOIN contexts c ON c.user_id OPERATOR(pg_catalog.=) u.user_id,
		     LATERAL personalize.recommend(%L, u.user_id, $k$, true, NULL, v.items, c.context) r',
		personalize.source_sql(train), personalize.source_sql(test),
		CASE WHEN options ? 'contexts'
		     THEN pg_catalog.format('SELECT x.user_id::pg_catalog.int8 AS user_id, x.context::pg_catalog.text AS context FROM %s AS x',
		                            personalize.source_sql(options ->> 'contexts'))
		     ELSE 'SELECT NULL::pg_catalog.int8 AS user_id, NULL::pg_catalog.text AS context' END,
		model_name);

	FOR run IN SELECT r FROM pg_catalog.jsonb_array_elements(runs_to_do) r LOOP
		removed := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(coalesce(run -> 'removed', '[]'::jsonb)));
		FOREACH s IN ARRAY seeds LOOP
			run_options := (run -> 'options') || pg_catalog.jsonb_build_object('seed', s);
			IF run ? 'epsilon' THEN
				run_options := run_options || pg_catalog.jsonb_build_object('epsilon',
					CASE WHEN (run ->> 'epsilon')::pg_catalog.float8 = 'Infinity' THEN pg_catalog.to_jsonb('infinity'::text)
					     ELSE run -> 'epsilon' END);
			END IF;
			IF pg_catalog.cardinality(removed) > 0 THEN
				run_options := run_options || pg_catalog.jsonb_build_object('exclude_features', pg_catalog.to_jsonb(removed));
			END IF;
			IF run ->> 'algorithm' = 'popularity' THEN
				run_options := run_options - 'seed';	-- it takes no options
			END IF;
			PERFORM personalize.train(model_name, run ->> 'algorithm', train, run_options);
			-- a private popularity model may release fewer than k items
			SELECT LEAST(k, x.items::integer) INTO served FROM personalize.models x WHERE x.name = model_name;
			SELECT * INTO m FROM personalize.ranking_metrics(pg_catalog.replace(recommendations, '$k$', served::text), test, k);
			results := results || pg_catalog.jsonb_build_object('variant', run -> 'variant', 'epsilon', run -> 'epsilon',
				'removed', pg_catalog.to_jsonb(removed), 'users', m.users, 'ndcg', m.ndcg_at_k, 'prec', m.precision_at_k,
				'recall', m.recall_at_k);
			PERFORM personalize.drop_model(model_name);
		END LOOP;
	END LOOP;

	RETURN QUERY
	WITH r AS (
		SELECT x.variant, (x.epsilon #>> '{}')::pg_catalog.float8 AS epsilon,
		       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.removed)) AS removed,
		       x.users, x.ndcg, x.prec, x.recall
		FROM pg_catalog.jsonb_to_recordset(results)
		     AS x(variant text, epsilon jsonb, removed jsonb, users bigint, ndcg double precision, prec double precision,
		          recall double precision)),
	agg AS (
		SELECT r.variant, r.epsilon, r.removed, pg_catalog.count(*)::integer AS runs, pg_catalog.max(r.users) AS users,
		       pg_catalog.avg(r.ndcg) AS ndcg, pg_catalog.avg(r.prec) AS prec, pg_catalog.avg(r.recall) AS recall
		FROM r GROUP BY 1, 2, 3)
	SELECT a.variant, a.epsilon, a.removed, a.runs, a.users, a.ndcg, a.prec, a.recall,
	       a.ndcg OPERATOR(pg_catalog./) NULLIF((SELECT x.ndcg FROM agg x WHERE x.variant OPERATOR(pg_catalog.=) 'als'), 0)
	FROM agg a
	ORDER BY pg_catalog.array_position(ARRAY['als', 'popularity', 'dp_als', 'dp_popularity', 'hybrid'], a.variant),
	         a.epsilon NULLS FIRST, pg_catalog.cardinality(a.removed), a.removed::text;
END
$$;
COMMENT ON FUNCTION personalize.privacy_report(text, text, double precision[], jsonb, integer, integer[]) IS
	'ranking utility of the private and feature-minimised variants next to the non-private models, on one split';
