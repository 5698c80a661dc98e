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

-- ==== scale-out on Citus (issue 14) ====
-- consent on Citus tables (a replica of the latest decisions, checked on the node that
-- holds the rows), distributed training, distributing the extension's tables.
-- protect() picks the mechanism for Citus tables; train() trains ALS on the nodes.

-- nodeconsent: the consent check of a policy on a Citus table, local to the
-- node that holds the rows (it reads the node's copy of personalize.consent_state,
-- defined with the scale-out objects in scaleout.sql).

CREATE FUNCTION personalize.has_consent_on_node(subject_id bigint, purpose text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'has_consent_on_node' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.has_consent_on_node(bigint, text) IS
	'has_consent read from this node''s copy of personalize.consent_state: the check of policies on Citus tables';

-- distributed: ALS trained from a Citus table distributed by user_id, without
-- gathering its rows (distributed.c). personalize.train calls it for such a
-- table; the node functions are called by its queries on the nodes.

CREATE FUNCTION personalize.train_absorb(run bigint, shard oid, user_id bigint, item_id bigint, weight real)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'train_absorb' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.train_absorb(bigint, oid, bigint, bigint, real) IS
	'distributed training, on a node: keep one row of the run in this backend; the backend''s token for its anchor rows';

CREATE FUNCTION personalize.train_round(run bigint, round bigint, payload bytea) RETURNS SETOF bytea
	AS 'MODULE_PATHNAME', 'train_round' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.train_round(bigint, bigint, bytea) IS
	'distributed training, on a node: answer one round of the coordinator for this backend''s rows';

CREATE FUNCTION personalize.als_fit_distributed(source regclass, options jsonb DEFAULT '{}')
	RETURNS personalize.model
	AS 'MODULE_PATHNAME', 'als_fit_distributed' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.als_fit_distributed(regclass, jsonb) IS
	'the ALS model of als_fit over a Citus table distributed by user_id, trained on the nodes that hold the rows';

-- scaleout: pg_personalize on a Citus cluster. The latest consent decision per
-- subject and purpose, replicated to every node; the policy protect() writes on
-- Citus tables; distributing the extension's own tables. Without Citus the
-- replica is an ordinary table kept by the same trigger, and nothing else here
-- does anything. Read doc/scale-out.md first.

-- ---------------------------------------------------------------- consent replica

-- The latest decision of personalize.consents per (subject_id, purpose), for
-- Citus: distribute_catalog() fills it from the history and makes it a
-- reference table; from then on a trigger keeps it in the transaction that
-- records a decision, so every node has a copy written with the decision in one
-- two-phase commit, and the policy of a protected Citus table reads the copy of
-- the node it runs on (has_consent_on_node). Without Citus it stays empty and
-- recording a decision needs no privilege on it. A table of its own because
-- Citus refuses triggers on reference tables, and the history keeps its
-- append-only trigger.
CREATE TABLE personalize.consent_state (
	subject_id bigint NOT NULL,
	purpose text NOT NULL,
	granted boolean NOT NULL,
	seq bigint NOT NULL,
	PRIMARY KEY (subject_id, purpose)
);
COMMENT ON TABLE personalize.consent_state IS 'latest consent decision per subject and purpose, kept from personalize.consents; a reference table on Citus';

-- Statement-level: one write of the replica per statement on the history (one
-- distributed upsert, not one per row). The transition rows are read
-- into arrays first: Citus cannot plan a query on a transition table.
CREATE FUNCTION personalize.consent_state_sync() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	subjects bigint[];
	purposes text[];
	decisions boolean[];
	seqs bigint[];
BEGIN
	IF personalize.citus_table_type('personalize.consent_state') IS NULL THEN
		RETURN NULL;	-- not replicated: nothing reads it
	END IF;
	-- the transition table of this trigger (consents_inserted or consents_deleted), by name
	IF TG_OP = 'INSERT' THEN
		EXECUTE pg_catalog.format(
			'SELECT array_agg(n.subject_id), array_agg(n.purpose), array_agg(n.granted), array_agg(n.seq)
			 FROM (SELECT DISTINCT ON (r.subject_id, r.purpose) r.subject_id, r.purpose, r.granted, r.seq
			       FROM %I r ORDER BY r.subject_id, r.purpose, r.seq DESC) n', 'consents_inserted')
		INTO subjects, purposes, decisions, seqs;
		INSERT INTO personalize.consent_state AS s (subject_id, purpose, granted, seq)
		SELECT * FROM unnest(subjects, purposes, decisions, seqs)
		ON CONFLICT (subject_id, purpose) DO UPDATE SET granted = excluded.granted, seq = excluded.seq
		WHERE s.seq < excluded.seq;
	ELSE
		-- erasure (forget): the pairs whose history lost rows get their latest remaining decision
		EXECUTE pg_catalog.format(
			'SELECT array_agg(d.subject_id), array_agg(d.purpose) FROM (SELECT DISTINCT r.subject_id, r.purpose FROM %I r) d',
			'consents_deleted')
		INTO subjects, purposes;
		DELETE FROM personalize.consent_state s
		USING unnest(subjects, purposes) d(subject_id, purpose)
		WHERE s.subject_id = d.subject_id AND s.purpose = d.purpose;
		SELECT array_agg(n.subject_id), array_agg(n.purpose), array_agg(n.granted), array_agg(n.seq)
		INTO subjects, purposes, decisions, seqs
		FROM (SELECT DISTINCT ON (c.subject_id, c.purpose) c.subject_id, c.purpose, c.granted, c.seq
		      FROM personalize.consents c
		      JOIN unnest(subjects, purposes) d(subject_id, purpose) ON c.subject_id = d.subject_id AND c.purpose = d.purpose
		      ORDER BY c.subject_id, c.purpose, c.seq DESC) n;
		INSERT INTO personalize.consent_state (subject_id, purpose, granted, seq)
		SELECT * FROM unnest(subjects, purposes, decisions, seqs);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER consent_state_insert AFTER INSERT ON personalize.consents
	REFERENCING NEW TABLE AS consents_inserted
	FOR EACH STATEMENT EXECUTE FUNCTION personalize.consent_state_sync();
CREATE TRIGGER consent_state_delete AFTER DELETE ON personalize.consents
	REFERENCING OLD TABLE AS consents_deleted
	FOR EACH STATEMENT EXECUTE FUNCTION personalize.consent_state_sync();

-- ---------------------------------------------------------------- Citus tables

-- 'distributed', 'reference' or 'local' (a Citus local table) for a table in
-- Citus's metadata; NULL otherwise, and always NULL without Citus.
CREATE FUNCTION personalize.citus_table_type(tbl regclass) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	partitions regclass := pg_catalog.to_regclass('pg_catalog.pg_dist_partition');
	kind text;
BEGIN
	IF partitions IS NULL THEN
		RETURN NULL;
	END IF;
	EXECUTE pg_catalog.format(
		'SELECT CASE WHEN p.partmethod = ''n'' AND p.repmodel = ''t'' THEN ''reference''
		             WHEN p.partmethod = ''n'' AND p.colocationid = 0 THEN ''local''
		             ELSE ''distributed'' END
		 FROM %s p WHERE p.logicalrelid = $1', partitions)
		INTO kind USING tbl;
	RETURN kind;
END
$$;

-- The policy expression protect() writes on a Citus table, after checking that
-- every node has the consent replica: a function call, no subquery (Citus
-- refuses subqueries in policies and runs the policy inside each shard query,
-- on the node that holds the shard). The exempt role is named, not looked up in
-- personalize.protected_tables as on local tables: that table is the
-- coordinator's alone, and a role's OID differs from node to node. So renaming
-- the exempt role of a protected Citus table makes its reads fail (closed,
-- "role does not exist") until unprotect() and protect() again.
CREATE FUNCTION personalize.citus_consent_predicate(tbl regclass, subject_col name, purpose text, exempt regrole)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF tbl IS NULL OR subject_col IS NULL OR purpose IS NULL THEN
		RAISE EXCEPTION 'tbl, subject_col and purpose must not be null' USING ERRCODE = '22004';
	END IF;
	IF personalize.citus_table_type('personalize.consent_state') IS DISTINCT FROM 'reference' THEN
		RAISE EXCEPTION 'consent state is not replicated to the Citus nodes'
			USING ERRCODE = '55000',
			      DETAIL = pg_catalog.format('"%s" is a Citus table; its policy reads personalize.consent_state on the node that holds the rows.', tbl),
			      HINT = 'Run SELECT personalize.distribute_catalog() first.';
	END IF;
	RETURN CASE WHEN exempt IS NOT NULL THEN
	         pg_catalog.format('pg_catalog.pg_has_role(%L, ''MEMBER'') OR ', exempt::text) ELSE '' END
	    || pg_catalog.format('personalize.has_consent_on_node(%I.%I, %L)',
	                         (SELECT r.relname FROM pg_catalog.pg_class r WHERE r.oid = tbl), subject_col, purpose);
END
$$;
COMMENT ON FUNCTION personalize.citus_consent_predicate(regclass, name, text, regrole) IS
	'the row-level security expression personalize.protect() writes for a Citus table';

-- ---------------------------------------------------------------- distributed training

-- One row per training run in progress (personalize.als_fit_distributed),
-- written when the run starts and deleted when it ends, inside the training
-- transaction. A reference table on Citus: every query of the run joins it, so
-- Citus sends each node's tasks over the one connection that wrote the node's
-- copy, to the backend that holds the node's part of the run.
CREATE TABLE personalize.train_runs (
	run bigint PRIMARY KEY
);
COMMENT ON TABLE personalize.train_runs IS 'distributed trainings in progress (rows live only inside the training transaction)';

-- The table train() can read on the Citus nodes without gathering its rows:
-- relation (a FROM item as personalize.source_sql returns it) is a qualified
-- name of a hash-distributed table whose distribution column is user_id. NULL
-- otherwise (a query, a view, a reference or local table, no Citus).
CREATE FUNCTION personalize.distributed_training_source(relation text) RETURNS regclass
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	partitions regclass := pg_catalog.to_regclass('pg_catalog.pg_dist_partition');
	tbl regclass;
	column_name text;
BEGIN
	IF pg_catalog.left(relation, 1) = '(' OR partitions IS NULL THEN
		RETURN NULL;
	END IF;
	tbl := pg_catalog.to_regclass(relation);
	EXECUTE pg_catalog.format(
		'SELECT pg_catalog.%I(p.logicalrelid, p.partkey) FROM %s p WHERE p.logicalrelid = $1 AND p.partmethod = ''h''',
		'column_to_column_name', partitions)
		INTO column_name USING tbl;
	RETURN CASE WHEN column_name = 'user_id' THEN tbl END;
END
$$;

-- ---------------------------------------------------------------- distributing the extension's tables

-- Run once on the coordinator, as the extension's owner: the consent replica
-- and the experiments' catalogs become reference tables, assignments and
-- outcomes are distributed by unit_id (co-located with each other and with any
-- table distributed by a bigint column with the same shard count). Tables
-- already distributed are left as they are; returns what it did.
CREATE FUNCTION personalize.distribute_catalog(shard_count integer DEFAULT NULL)
RETURNS TABLE (table_name regclass, citus_type text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
	fks text[];
	fk text;
	failed text;
BEGIN
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RAISE EXCEPTION 'the citus extension is not installed in this database' USING ERRCODE = '0A000';
	END IF;
	IF shard_count IS NOT NULL AND shard_count < 1 THEN
		RAISE EXCEPTION 'shard_count must be positive, not %', shard_count USING ERRCODE = '22023';
	END IF;
	-- one connection per node: reference tables are written after distributed ones in this transaction
	PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);
	-- Citus would turn the tables referencing a new reference table into
	-- Citus local tables, recreating the extension's views over them (which
	-- it cannot): the foreign keys are dropped first and added back once every
	-- table is distributed (distributed -> reference keys are supported).
	SELECT array_agg(pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
	                                   pg_catalog.pg_get_constraintdef(c.oid)) ORDER BY c.conrelid, c.conname)
	INTO fks
	FROM pg_catalog.pg_constraint c
	WHERE c.contype = 'f' AND c.conrelid IN ('personalize.experiment_arms'::regclass, 'personalize.assignments'::regclass,
	                                         'personalize.experiment_strata'::regclass, 'personalize.outcomes'::regclass)
	  AND personalize.citus_table_type(c.conrelid) IS NULL;
	FOR fk IN SELECT pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.conrelid::regclass, c.conname)
	          FROM pg_catalog.pg_constraint c
	          WHERE c.contype = 'f' AND c.conrelid IN ('personalize.experiment_arms'::regclass, 'personalize.assignments'::regclass,
	                                                   'personalize.experiment_strata'::regclass, 'personalize.outcomes'::regclass)
	            AND personalize.citus_table_type(c.conrelid) IS NULL
	LOOP
		EXECUTE fk;
		-- the workers' own copies of the extension's tables become the shells: there too
		EXECUTE pg_catalog.format('SELECT pg_catalog.string_agg(r.nodename || '':'' || r.nodeport || '': '' || r.result, ''; '')
		                           FROM pg_catalog.%I($1) r WHERE NOT r.success', 'run_command_on_workers')
			INTO failed USING fk;
		IF failed IS NOT NULL THEN
			RAISE EXCEPTION 'cannot prepare the workers'' copies of the extension''s tables: %', failed USING ERRCODE = '55000';
		END IF;
	END LOOP;
	FOR t IN SELECT * FROM (VALUES
		(1, 'personalize.consent_state'::regclass, 'reference', NULL::text),
		(1, 'personalize.train_runs'::regclass, 'reference', NULL),
		(2, 'personalize.experiments'::regclass, 'reference', NULL),
		(3, 'personalize.experiment_arms'::regclass, 'reference', NULL),
		(4, 'personalize.experiment_strata'::regclass, 'reference', NULL),
		(5, 'personalize.assignments'::regclass, 'distributed', 'unit_id'),
		(6, 'personalize.outcomes'::regclass, 'distributed', 'unit_id')) v(pos, tbl, kind, col)
		ORDER BY v.pos
	LOOP
		IF personalize.citus_table_type(t.tbl) IS NULL THEN
			IF t.tbl = 'personalize.consent_state'::regclass THEN
				-- the replica starts from the history; the trigger keeps it from now on
				DELETE FROM personalize.consent_state;
				INSERT INTO personalize.consent_state (subject_id, purpose, granted, seq)
				SELECT DISTINCT ON (c.subject_id, c.purpose) c.subject_id, c.purpose, c.granted, c.seq
				FROM personalize.consents c ORDER BY c.subject_id, c.purpose, c.seq DESC;
			END IF;
			IF t.kind = 'reference' THEN
				EXECUTE pg_catalog.format('SELECT pg_catalog.%I($1)', 'create_reference_table') USING t.tbl;
				EXECUTE pg_catalog.format('SELECT pg_catalog.%I($1)', 'truncate_local_data_after_distributing_table') USING t.tbl;
			ELSIF t.tbl = 'personalize.outcomes'::regclass THEN
				EXECUTE pg_catalog.format('SELECT pg_catalog.%I($1, $2, colocate_with => %L)', 'create_distributed_table',
				                          'personalize.assignments') USING t.tbl, t.col;
			ELSIF shard_count IS NULL THEN
				EXECUTE pg_catalog.format('SELECT pg_catalog.%I($1, $2)', 'create_distributed_table') USING t.tbl, t.col;
			ELSE
				EXECUTE pg_catalog.format('SELECT pg_catalog.%I($1, $2, shard_count => $3)', 'create_distributed_table')
					USING t.tbl, t.col, shard_count;
			END IF;
			IF t.kind = 'distributed' THEN
				EXECUTE pg_catalog.format('SELECT pg_catalog.%I($1)', 'truncate_local_data_after_distributing_table') USING t.tbl;
			END IF;
		END IF;
		table_name := t.tbl;
		citus_type := personalize.citus_table_type(t.tbl);
		RETURN NEXT;
	END LOOP;
	FOREACH fk IN ARRAY coalesce(fks, '{}') LOOP
		EXECUTE fk;
	END LOOP;
END
$$;

-- the roles' privileges on the new tables (roles.sql)
GRANT SELECT ON personalize.consent_state TO personalize_analyst;
GRANT SELECT, INSERT, DELETE ON personalize.train_runs TO personalize_analyst;
GRANT INSERT, UPDATE, DELETE ON personalize.consent_state TO personalize_admin;

-- protect(): the policy of a Citus table (consent.sql)
CREATE OR REPLACE FUNCTION personalize.protect(tbl regclass, subject_col name, purpose text, exempt regrole DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel record;
	coltype regtype;
	citus boolean;
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

	IF personalize.citus_table_type(tbl) IS NOT NULL THEN
		-- A Citus table: the check local to each node (scaleout.sql). Citus
		-- re-creates a table's policies on its shards without AS RESTRICTIVE,
		-- so the consent policy must be the only, permissive, one.
		citus := true;
		IF rel.relrowsecurity OR EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = tbl) THEN
			RAISE EXCEPTION 'cannot protect Citus table "%" that has row-level security or policies already', tbl
				USING ERRCODE = '0A000',
				      DETAIL = 'Citus turns restrictive policies into permissive ones on the shards, so consent could not narrow an existing policy there.';
		END IF;
		EXECUTE pg_catalog.format('CREATE POLICY personalize_consent ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (true)',
		                          tbl, personalize.citus_consent_predicate(tbl, subject_col, purpose, exempt));
	ELSE
		-- Restrictive, so that it narrows any policy the table already has
		-- instead of widening it; inserts are not checked (rows of subjects
		-- without consent may be stored, they stay invisible).
		citus := false;
		EXECUTE pg_catalog.format('CREATE POLICY personalize_consent ON %s AS RESTRICTIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (true)',
		                          tbl, personalize.consent_predicate(tbl, subject_col, purpose, exempt IS NOT NULL));
	END IF;
	IF NOT rel.relrowsecurity THEN
		-- RLS was off: every row was visible, keep that for consented rows
		-- (on Citus the consent policy is the permissive one itself).
		IF NOT citus THEN
			EXECUTE pg_catalog.format('CREATE POLICY personalize_rows ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true)', tbl);
		END IF;
		EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
	END IF;
	EXECUTE pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);

	INSERT INTO personalize.protected_tables (relid, subject_col, purpose, exempt_role, rls_was_enabled, rls_was_forced)
	VALUES (tbl, subject_col, purpose, exempt, rel.relrowsecurity, rel.relforcerowsecurity);
END
$$;

-- experiment_metric_check(): an EXISTS that Citus can plan over distributed outcomes (experiments.sql)
CREATE OR REPLACE FUNCTION personalize.experiment_metric_check(experiment text, metric text) RETURNS personalize.experiments
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e personalize.experiments;
BEGIN
	IF experiment IS NULL OR metric IS NULL THEN
		RAISE EXCEPTION 'experiment and metric must not be NULL' USING ERRCODE = '22004';
	END IF;
	SELECT * INTO e FROM personalize.experiments x WHERE x.name = experiment_metric_check.experiment;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'experiment "%" does not exist', experiment USING ERRCODE = '42704';
	END IF;
	-- SELECT 1, not SELECT: Citus 13.2 cannot plan an EXISTS without columns over a distributed table
	IF NOT EXISTS (SELECT 1 FROM personalize.outcomes o
	               WHERE o.experiment = experiment_metric_check.experiment AND o.metric = experiment_metric_check.metric) THEN
		RAISE EXCEPTION 'metric "%" has no outcomes in experiment "%"', metric, experiment USING ERRCODE = '42704';
	END IF;
	RETURN e;
END
$$;

-- train(): ALS from a Citus table distributed by user_id (registry.sql)
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
	IF algorithm = 'als' AND personalize.distributed_training_source(relation) IS NOT NULL THEN
		-- a Citus table distributed by user_id: trained on the nodes that hold the rows (scaleout.sql)
		trained := personalize.als_fit_distributed(personalize.distributed_training_source(relation), fit_options);
	ELSE
		EXECUTE pg_catalog.format('SELECT personalize.%I(s.user_id::bigint, s.item_id::bigint, s.weight::real, $1) FROM %s AS s',
		               fit, relation)
			INTO trained USING fit_options;
	END IF;
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
COMMENT ON FUNCTION personalize.train(text, text, text, jsonb) IS 'train a model over (user_id, item_id, weight) rows and store a new version';

-- ==== end of scale-out on Citus ====
