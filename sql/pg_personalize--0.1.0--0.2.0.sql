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

-- (train(): defined once, in the scale-out section, with the changes of every section)

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

-- (train(): defined once, in the scale-out section, with the changes of every section)

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

-- ==== operations (issue 11): data-quality checks, drift, progress, refresh with a gate, pg_cron scheduling ====

-- (train(): defined once, in the scale-out section, with the changes of every section)

-- ---- src/quality.sql ----
-- quality: data-quality checks of an interaction source, one row per check.
-- The counting is one scan with the C aggregate interaction_profile; the policy
-- (thresholds, severities, wording) is in quality_checks.

CREATE FUNCTION personalize.interaction_profile_transfn(internal, bigint, bigint, double precision, timestamptz, jsonb)
RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_combine(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_serialize(internal) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_deserialize(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.interaction_profile_final(internal) RETURNS jsonb
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT PARALLEL SAFE;

CREATE AGGREGATE personalize.interaction_profile(user_id bigint, item_id bigint, weight double precision,
                                                 occurred_at timestamptz, settings jsonb) (
	SFUNC = personalize.interaction_profile_transfn,
	STYPE = internal,
	COMBINEFUNC = personalize.interaction_profile_combine,
	SERIALFUNC = personalize.interaction_profile_serialize,
	DESERIALFUNC = personalize.interaction_profile_deserialize,
	FINALFUNC = personalize.interaction_profile_final,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE personalize.interaction_profile(bigint, bigint, double precision, timestamptz, jsonb) IS
	'counts behind the data-quality checks of interactions, in one scan (jsonb)';

-- The checks, their default severity and threshold, in the order they are reported.
CREATE FUNCTION personalize.quality_check_defaults()
RETURNS TABLE (check_name text, severity text, threshold jsonb, description text)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	VALUES ('rows', 'error', '1'::jsonb, 'at least this many rows'),
	       ('null_user_ids', 'error', '0', 'share of rows with a NULL user_id'),
	       ('null_item_ids', 'error', '0', 'share of rows with a NULL item_id'),
	       ('null_weights', 'error', '0', 'share of rows with a NULL weight'),
	       ('negative_weights', 'error', '0', 'share of rows with a negative weight'),
	       ('non_finite_weights', 'error', '0', 'share of rows with a NaN, infinite or beyond-real weight'),
	       ('null_timestamps', 'warning', '0', 'share of rows with a NULL or -infinity occurred_at'),
	       ('future_timestamps', 'error', '0', 'share of rows with occurred_at after as_of + future_tolerance'),
	       ('duplicate_rows', 'warning', '0', 'share of rows repeating an earlier (user_id, item_id, occurred_at)'),
	       ('freshness', 'error', '"2 days"', 'age of the newest occurred_at at as_of, in seconds'),
	       ('volume', 'warning', '3', 'rows of the last window over the mean of the windows before; fails outside [1/t, t]'),
	       ('unseen_users', 'warning', '0.5', 'share of distinct users that the active model does not know'),
	       ('unseen_items', 'warning', '0.5', 'share of distinct items that the active model does not know')
$$;
COMMENT ON FUNCTION personalize.quality_check_defaults() IS 'the data-quality checks with their default severity and threshold';

-- Options of check_interactions, validated, as the settings of interaction_profile.
CREATE FUNCTION personalize.quality_settings(options jsonb, columns text[])
RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	known text[] := ARRAY['as_of', 'window', 'trailing_windows', 'future_tolerance', 'model', 'skip', 'thresholds', 'severity'];
	checks text[] := ARRAY(SELECT d.check_name FROM personalize.quality_check_defaults() d);
	key text;
	as_of timestamptz;
	window_length interval;
	tolerance interval;
	trailing_count integer;
	skip text[];
	settings jsonb;
BEGIN
	IF jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION 'options must be a jsonb object' USING ERRCODE = '22023';
	END IF;
	FOR key IN SELECT jsonb_object_keys(options) LOOP
		IF NOT key = ANY (known) THEN
			RAISE EXCEPTION 'unknown option "%"', key USING ERRCODE = '22023',
				HINT = 'Options are ' || array_to_string(known, ', ') || '.';
		END IF;
	END LOOP;
	FOR key IN SELECT jsonb_object_keys(coalesce(options -> 'thresholds', '{}')) UNION ALL
	           SELECT jsonb_object_keys(coalesce(options -> 'severity', '{}')) UNION ALL
	           SELECT jsonb_array_elements_text(coalesce(options -> 'skip', '[]')) LOOP
		IF NOT key = ANY (checks) THEN
			RAISE EXCEPTION 'unknown check "%"', key USING ERRCODE = '22023',
				HINT = 'Checks are ' || array_to_string(checks, ', ') || '.';
		END IF;
	END LOOP;
	IF EXISTS (SELECT FROM jsonb_each(coalesce(options -> 'severity', '{}')) s WHERE s.value NOT IN ('"error"', '"warning"')) THEN
		RAISE EXCEPTION 'severity must be "error" or "warning"' USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT FROM jsonb_each(coalesce(options -> 'thresholds', '{}')) t
	           WHERE CASE WHEN t.key = 'freshness' THEN jsonb_typeof(t.value) <> 'string'
	                      ELSE jsonb_typeof(t.value) <> 'number' OR (t.value)::text::float8 < 0 END) THEN
		RAISE EXCEPTION 'thresholds must be non-negative numbers (freshness: an interval)' USING ERRCODE = '22023';
	END IF;

	as_of := coalesce((options ->> 'as_of')::timestamptz, now());
	window_length := coalesce((options ->> 'window')::interval, interval '1 day');
	tolerance := coalesce((options ->> 'future_tolerance')::interval, interval '5 minutes');
	trailing_count := coalesce((options ->> 'trailing_windows')::integer, 7);
	PERFORM (options #>> '{thresholds,freshness}')::interval;
	IF NOT isfinite(as_of) THEN
		RAISE EXCEPTION 'as_of must be a finite timestamp' USING ERRCODE = '22023';
	END IF;
	IF window_length <= interval '0' THEN
		RAISE EXCEPTION 'window must be positive, not %', window_length USING ERRCODE = '22023';
	END IF;
	IF tolerance < interval '0' THEN
		RAISE EXCEPTION 'future_tolerance must not be negative, not %', tolerance USING ERRCODE = '22023';
	END IF;
	IF trailing_count NOT BETWEEN 1 AND 365 THEN
		RAISE EXCEPTION 'trailing_windows must be between 1 and 365, not %', trailing_count USING ERRCODE = '22023';
	END IF;
	skip := ARRAY(SELECT jsonb_array_elements_text(coalesce(options -> 'skip', '[]')));

	settings := jsonb_build_object(
		'as_of_us', extract(epoch FROM as_of) * 1000000,
		'window_us', extract(epoch FROM window_length) * 1000000,
		'windows', trailing_count,
		'future_tolerance_us', extract(epoch FROM tolerance) * 1000000,
		'duplicates', 'occurred_at' = ANY (columns) AND NOT 'duplicate_rows' = ANY (skip),
		'distinct', false);
	-- distinct users and items only when there is a model to compare them with
	IF options ? 'model' AND NOT skip @> ARRAY['unseen_users', 'unseen_items']
	   AND EXISTS (SELECT FROM personalize.models m WHERE m.name = quality_settings.options ->> 'model' AND m.active) THEN
		settings := settings || jsonb_build_object('model', options ->> 'model', 'distinct', true);
	END IF;
	RETURN settings;
END
$$;
COMMENT ON FUNCTION personalize.quality_settings(jsonb, text[]) IS 'check_interactions options, validated, as interaction_profile settings';

-- A profile against the thresholds: one row per check. passed is NULL when a
-- check cannot be evaluated (skipped, no occurred_at column, no active model).
CREATE FUNCTION personalize.quality_checks(profile jsonb, options jsonb DEFAULT '{}', columns text[] DEFAULT ARRAY['user_id', 'item_id', 'weight', 'occurred_at'])
RETURNS TABLE (check_name text, severity text, passed boolean, observed double precision, threshold double precision, detail text)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	total_rows float8 := coalesce((profile ->> 'rows')::float8, 0);
	has_time boolean := 'occurred_at' = ANY (columns);
	skip text[] := ARRAY(SELECT jsonb_array_elements_text(coalesce(options -> 'skip', '[]')));
	model text := options ->> 'model';
	as_of timestamptz := coalesce((options ->> 'as_of')::timestamptz, now());
	window_length interval := coalesce((options ->> 'window')::interval, interval '1 day');
	d record;
	t float8;
	n float8;
	windows float8[];
	baseline float8;
	newest timestamptz;
BEGIN
	FOR d IN SELECT * FROM personalize.quality_check_defaults() LOOP
		check_name := d.check_name;
		severity := coalesce(options #>> ARRAY['severity', d.check_name], d.severity);
		threshold := CASE WHEN d.check_name = 'freshness'
		                  THEN extract(epoch FROM coalesce(options #>> '{thresholds,freshness}', d.threshold #>> '{}')::interval)
		                  ELSE coalesce(options #>> ARRAY['thresholds', d.check_name], d.threshold #>> '{}')::float8 END;
		t := threshold;
		passed := NULL;
		observed := NULL;
		detail := NULL;
		IF d.check_name = ANY (skip) THEN
			detail := 'skipped';
		ELSIF d.check_name = 'rows' THEN
			observed := total_rows;
			passed := total_rows >= t;
			detail := format('%s rows', total_rows);
		ELSIF total_rows = 0 THEN
			detail := 'no rows';
		ELSIF d.check_name IN ('null_timestamps', 'future_timestamps', 'duplicate_rows', 'freshness', 'volume') AND NOT has_time THEN
			detail := 'the source has no occurred_at column';
		ELSIF d.check_name IN ('null_user_ids', 'null_item_ids', 'null_weights', 'negative_weights',
		                       'non_finite_weights', 'null_timestamps', 'future_timestamps', 'duplicate_rows') THEN
			n := (profile ->> d.check_name)::float8;
			observed := n / total_rows;
			passed := observed <= t;
			detail := format('%s of %s rows', n, total_rows);
		ELSIF d.check_name = 'freshness' THEN
			newest := (profile ->> 'newest')::timestamptz;
			IF newest IS NULL THEN
				detail := 'no row has a usable occurred_at';
			ELSE
				observed := extract(epoch FROM as_of - newest);
				passed := observed <= t;
				detail := format('newest occurred_at %s is %s old', newest, justify_interval(as_of - newest));
			END IF;
		ELSIF d.check_name = 'volume' THEN
			windows := ARRAY(SELECT jsonb_array_elements_text(profile -> 'window_rows')::float8);
			-- the windows before the last one, counting only those that end after the oldest row
			SELECT avg(w.rows) INTO baseline
			FROM unnest(windows[2:]) WITH ORDINALITY w(rows, j)
			WHERE as_of - window_length * w.j > (profile ->> 'oldest')::timestamptz;
			IF baseline IS NULL OR baseline = 0 THEN
				detail := 'no rows in the windows before the last one';
			ELSE
				observed := windows[1] / baseline;
				passed := observed BETWEEN 1 / t AND t;
				detail := format('%s rows in the last %s against a mean of %s', windows[1], window_length, round(baseline::numeric, 1));
			END IF;
		ELSIF model IS NULL THEN
			detail := 'no model given';
		ELSIF NOT profile ? d.check_name THEN
			detail := CASE WHEN profile ? 'unseen_items' THEN format('model "%s" keeps no users', model)
			               ELSE format('model "%s" has no active version', model) END;
		ELSE
			n := (profile ->> d.check_name)::float8;
			observed := n / nullif((profile ->> CASE d.check_name WHEN 'unseen_users' THEN 'users' ELSE 'items' END)::float8, 0);
			passed := observed <= t;
			detail := format('%s of %s distinct %s unknown to model "%s"', n,
			                 profile ->> CASE d.check_name WHEN 'unseen_users' THEN 'users' ELSE 'items' END,
			                 CASE d.check_name WHEN 'unseen_users' THEN 'users' ELSE 'items' END, model);
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION personalize.quality_checks(jsonb, jsonb, text[]) IS 'an interaction_profile against thresholds, one row per check';

CREATE FUNCTION personalize.check_interactions(source text, options jsonb DEFAULT '{}')
RETURNS TABLE (check_name text, severity text, passed boolean, observed double precision, threshold double precision, detail text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
-- No pinned search_path: the source is resolved as the caller would; every name is qualified.
AS $$
DECLARE
	columns text[];
	settings jsonb;
	profile jsonb;
BEGIN
	IF source IS NULL OR options IS NULL THEN
		RAISE EXCEPTION 'source and options must not be NULL' USING ERRCODE = '22004';
	END IF;
	columns := personalize.source_columns(source);
	IF NOT columns OPERATOR(pg_catalog.@>) ARRAY['user_id', 'item_id'] THEN
		RAISE EXCEPTION 'source must have columns user_id and item_id' USING ERRCODE = '42703';
	END IF;
	settings := personalize.quality_settings(options, columns);
	-- runs as the caller: privileges and row-level security apply to the source
	EXECUTE pg_catalog.format('SELECT personalize.interaction_profile(s.user_id::pg_catalog.int8, s.item_id::pg_catalog.int8, %s, %s, $1) FROM %s AS s',
	                          CASE WHEN 'weight' OPERATOR(pg_catalog.=) ANY (columns) THEN 's.weight::pg_catalog.float8' ELSE '1::pg_catalog.float8' END,
	                          CASE WHEN 'occurred_at' OPERATOR(pg_catalog.=) ANY (columns) THEN 's.occurred_at::pg_catalog.timestamptz' ELSE 'NULL::pg_catalog.timestamptz' END,
	                          personalize.source_sql(source))
		INTO profile USING settings;
	-- as_of defaults to now(), the same in both helpers within a transaction
	RETURN QUERY SELECT * FROM personalize.quality_checks(coalesce(profile, '{"rows": 0}'), options, columns);
END
$$;
COMMENT ON FUNCTION personalize.check_interactions(text, jsonb) IS 'data-quality checks of an interaction source, one row per check';

-- ---- src/drift.sql ----
-- drift: recent interactions against what the active model was trained on
-- (PSI and KS of item popularity, unknown users and items, volume, logged
-- scores), and the two histogram statistics on their own.

CREATE FUNCTION personalize.psi(expected double precision[], actual double precision[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'population_stability_index' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.psi(double precision[], double precision[]) IS
	'population stability index of two histograms over the same bins (shares floored at 1e-4)';

CREATE FUNCTION personalize.ks_statistic(expected double precision[], actual double precision[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'ks_statistic' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.ks_statistic(double precision[], double precision[]) IS
	'Kolmogorov-Smirnov statistic of two histograms over the same ordered bins';

-- Reads the source as the caller (row-level security applies) and the active
-- version of the model; VOLATILE because it runs the caller's SQL.
CREATE FUNCTION personalize.model_drift(model_name text, source text, recent_window interval, options jsonb DEFAULT '{}')
RETURNS TABLE (metric text, value double precision, threshold double precision, drifted boolean, detail text)
	AS 'MODULE_PATHNAME', 'model_drift' LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE ROWS 6;
COMMENT ON FUNCTION personalize.model_drift(text, text, interval, jsonb) IS
	'drift of recent interactions from the active model''s training data: PSI, KS, unknown users and items, volume, scores';

-- ---- src/progress.sql ----
-- progress: what train() and refresh() are doing, seen from other sessions.

CREATE FUNCTION personalize.report_progress(operation text, phase text, model_name text DEFAULT NULL) RETURNS void
	AS 'MODULE_PATHNAME', 'report_progress' LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION personalize.report_progress(text, text, text) IS
	'publish the phase of this session''s training or refresh (a NULL phase ends it)';

CREATE FUNCTION personalize.training_progress_rows(
	OUT pid integer, OUT operation text, OUT model_name text, OUT phase text, OUT rows_read bigint,
	OUT iteration integer, OUT iterations integer, OUT loss double precision, OUT started_at timestamptz,
	OUT seconds double precision)
RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'training_progress_rows' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 4;
COMMENT ON FUNCTION personalize.training_progress_rows() IS 'rows of personalize.training_progress';

CREATE VIEW personalize.training_progress WITH (security_invoker = true) AS
	SELECT p.pid, a.usename AS role, p.operation, p.model_name, p.phase, p.rows_read, p.iteration, p.iterations,
	       p.loss, p.started_at, p.seconds
	FROM personalize.training_progress_rows() p
	LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) p.pid;
COMMENT ON VIEW personalize.training_progress IS 'trainings and refreshes running now: phase, rows read, iteration, elapsed seconds';
GRANT SELECT ON personalize.training_progress TO personalize_analyst;

-- ---- src/refresh.sql ----
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

-- ---- src/schedule.sql ----
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

-- ==== propensity (issue 12): logistic regression, calibration, uplift; the registry gains the
-- algorithms logistic and uplift, train() dispatches them to classifier_fit.
ALTER TABLE personalize.models DROP CONSTRAINT models_algorithm_check;
ALTER TABLE personalize.models ADD CONSTRAINT models_algorithm_check CHECK (algorithm IN ('popularity', 'itemknn', 'als', 'logistic', 'uplift'));
COMMENT ON TYPE personalize.model IS 'trained model: a recommender (popularity, item-kNN or ALS) or a classifier (logistic, uplift)';

-- (train(): defined once, in the scale-out section, with the changes of every section)

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

-- ==== the experiment's other arms (issue 13): bpr, hybrid, dp_popularity, dp_als, editorial, explain ====
-- the registry knows the new algorithms and records features and privacy
ALTER TABLE personalize.models DROP CONSTRAINT models_algorithm_check;
ALTER TABLE personalize.models ADD CONSTRAINT models_algorithm_check
	CHECK (algorithm IN ('popularity', 'itemknn', 'als', 'bpr', 'hybrid', 'dp_popularity', 'dp_als', 'editorial',
	                     'logistic', 'uplift'));
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
-- (train(): defined once, in the scale-out section, with the changes of every section)

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

-- distributed: ALS and item-kNN trained from a Citus table distributed by user_id, without
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

CREATE FUNCTION personalize.itemknn_fit_distributed(source regclass, options jsonb DEFAULT '{}', range_items integer DEFAULT 0)
	RETURNS personalize.model
	AS 'MODULE_PATHNAME', 'itemknn_fit_distributed' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION personalize.itemknn_fit_distributed(regclass, jsonb, integer) IS
	'the item-kNN model of itemknn_fit over a Citus table distributed by user_id, its co-occurrences summed on the nodes that hold the rows, range_items rows at a time (0: automatic)';

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
	                      WHEN 'editorial' THEN 'editorial_fit'
	                      WHEN 'logistic' THEN 'classifier_fit'
	                      WHEN 'uplift' THEN 'classifier_fit' END;
	IF fit IS NULL THEN
		RAISE EXCEPTION 'unknown algorithm "%"', algorithm USING ERRCODE = '22023',
			HINT = 'Use popularity, itemknn, als, bpr, hybrid, dp_popularity, dp_als, editorial, logistic or uplift.';
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
	IF fit = 'classifier_fit' AND options ? 'exclude_features' THEN
		RAISE EXCEPTION 'option "exclude_features" does not apply to algorithm %', algorithm USING ERRCODE = '22023',
			HINT = 'A classifier uses the features its option "features" names: leave the others out of that list.';
	ELSIF algorithm <> 'hybrid' THEN
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
	-- dp_popularity counts users, editorial reads a list, classifiers read their label: no weights
	uses_weight := algorithm NOT IN ('editorial', 'dp_popularity', 'logistic', 'uplift') AND NOT 'weight' OPERATOR(pg_catalog.=) ANY (excluded);
	weight_expr := CASE WHEN uses_weight THEN 's.weight::real' ELSE '1::real' END;

	-- a query runs as a subquery; anything else must name a table or view
	relation := personalize.source_sql(source);

	-- runs as the caller: privileges and row-level security apply to the source
	PERFORM personalize.report_progress('train', 'reading rows', model_name);
	started := pg_catalog.clock_timestamp();
	IF fit = 'classifier_fit' THEN
		-- label, features and the rest are in the options (src/logistic.c)
		trained := personalize.classifier_fit(algorithm, source, fit_options);
	ELSIF algorithm = 'editorial' THEN
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
	ELSIF algorithm IN ('als', 'itemknn') AND uses_weight AND personalize.distributed_training_source(relation) IS NOT NULL THEN
		-- a Citus table distributed by user_id: trained on the nodes that hold the rows (scaleout.sql)
		IF algorithm = 'als' THEN
			trained := personalize.als_fit_distributed(personalize.distributed_training_source(relation), fit_options);
		ELSE
			trained := personalize.itemknn_fit_distributed(personalize.distributed_training_source(relation), fit_options);
		END IF;
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
	PERFORM personalize.report_progress('train', 'storing');
	new_version := personalize.store_version(model_name, trained, options,
	                                         pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - started), make_active);
	-- what it was trained from, and on: the interaction weight unless left out
	UPDATE personalize.models m
	SET source = relation,
	    features = CASE WHEN uses_weight THEN pg_catalog.array_prepend('weight'::text, m.features) ELSE m.features END
	WHERE m.name = model_name AND m.version = new_version;
	PERFORM personalize.report_progress('train', NULL);
	RETURN new_version;
END
$$;
COMMENT ON FUNCTION personalize.train(text, text, text, jsonb) IS 'train a model over (user_id, item_id, weight) rows and store a new version';

-- ==== end of scale-out on Citus ====

-- ==== logistic passes on Citus (issue 14): logistic: the pass with concrete argument types ====
-- The pass with concrete argument types, which Citus pushes down to the shards as a partial
-- aggregate: label and weight as float8, the dense features after the intercept flattened into
-- numbers (in the spec's order), the categorical features' levels as text.
CREATE FUNCTION personalize.logistic_pass_flat_transfn(double precision[], bytea, double precision, double precision,
                                                       double precision[], text[])
	RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE personalize.logistic_pass_flat(spec bytea, label double precision, weight double precision,
                                                numbers double precision[], categories text[]) (
	SFUNC = personalize.logistic_pass_flat_transfn, STYPE = double precision[],
	COMBINEFUNC = personalize.logistic_pass_combine,
	FINALFUNC = personalize.logistic_pass_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
-- ==== end of logistic passes on Citus ====

-- ==== hybrid's ALS core (issue 13) ====
COMMENT ON AGGREGATE personalize.hybrid_fit(bigint, bigint, real, text, jsonb) IS 'hybrid model: id, feature and context embeddings trained with WARP or BPR, or id and feature factors by implicit ALS (option core)';
-- ==== end of hybrid's ALS core ====

-- ==== erasure rewrites each model version once (registry.sql) ====
CREATE OR REPLACE FUNCTION personalize.forget_in_models(subject_id bigint) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	touched integer := 0;
	x record;
	rewritten bigint;
BEGIN
	-- one rewrite per version, in a statement of its own: inside a join the
	-- planner may evaluate a function of the inner side more than once
	FOR x IN SELECT m.name, m.version, m.active FROM personalize.models m WHERE m.users IS NOT NULL
	         ORDER BY m.name, m.version FOR UPDATE
	LOOP
		rewritten := personalize.model_forget_user(x.name, x.version, forget_in_models.subject_id);
		CONTINUE WHEN rewritten IS NULL;
		UPDATE personalize.models m
		SET stale = true, revised_at = pg_catalog.clock_timestamp(), users = m.users - 1, bytes = rewritten
		WHERE m.name = x.name AND m.version = x.version;
		touched := touched + 1;
		IF x.active THEN
			PERFORM personalize.model_prewarm(x.name, x.version);
		END IF;
	END LOOP;
	RETURN touched;
END
$$;
-- ==== end of erasure rewrites ====
