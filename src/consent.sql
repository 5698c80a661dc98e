-- consent: append-only consent history, consent enforced by row-level security, erasure.
--
-- Everything here runs as the invoker with a pinned search_path, except the
-- one step of erasure that must reach the extension's own append-only history
-- (personalize.forget_consents, SECURITY DEFINER, see there). The consent check
-- lives in one place: the policy expression personalize.consent_predicate()
-- writes for personalize.protect(), which equals personalize.has_consent(). A later
-- mechanism (e.g. for Citus, where policies with subqueries or table-reading
-- functions fail inside shard queries) replaces protect()/has_consent() without
-- touching callers.

-- ---------------------------------------------------------------- history

CREATE TABLE personalize.consents (
	seq bigserial PRIMARY KEY,
	subject_id bigint NOT NULL,
	purpose text NOT NULL CHECK (purpose <> ''),
	granted boolean NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	source text
);
COMMENT ON TABLE personalize.consents IS 'append-only consent history: the latest row per (subject_id, purpose) decides';
CREATE INDEX consents_subject_purpose ON personalize.consents (subject_id, purpose, seq DESC);

-- Append-only: UPDATE and TRUNCATE are refused; DELETE only inside
-- personalize.forget_consents(), which runs as the table's owner and names the
-- subject in personalize.erasing_subject. Any role may set that setting; none
-- but the owner (the extension's, a superuser) is the current user there, so
-- the setting alone opens nothing.
CREATE FUNCTION personalize.consents_append_only() RETURNS trigger
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

CREATE TRIGGER consents_append_only BEFORE UPDATE OR DELETE ON personalize.consents
	FOR EACH ROW EXECUTE FUNCTION personalize.consents_append_only();
CREATE TRIGGER consents_no_truncate BEFORE TRUNCATE ON personalize.consents
	FOR EACH STATEMENT EXECUTE FUNCTION personalize.consents_append_only();

CREATE VIEW personalize.current_consent WITH (security_invoker = true) AS
SELECT DISTINCT ON (subject_id, purpose) subject_id, purpose, granted, recorded_at, source
FROM personalize.consents
ORDER BY subject_id, purpose, seq DESC;
COMMENT ON VIEW personalize.current_consent IS 'latest consent decision per subject and purpose';

-- The policy predicate. STABLE: within one statement every row sees the
-- consent state of the statement's snapshot; the next statement sees a
-- withdrawal. No row (never asked) means no consent. The caller needs SELECT
-- on personalize.consents; without it reading a protected table fails
-- (closed, not open).
CREATE FUNCTION personalize.has_consent(subject_id bigint, purpose text) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce((SELECT c.granted FROM personalize.consents c
	                 WHERE c.subject_id = $1 AND c.purpose = $2
	                 ORDER BY c.seq DESC LIMIT 1), false)
$$;

CREATE FUNCTION personalize.set_consent(subject_id bigint, purpose text, granted boolean, source text DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	at timestamptz;
BEGIN
	IF subject_id IS NULL OR purpose IS NULL OR granted IS NULL THEN
		RAISE EXCEPTION 'subject_id, purpose and granted must not be null' USING ERRCODE = '22004';
	END IF;
	IF purpose = '' THEN
		RAISE EXCEPTION 'purpose must not be empty' USING ERRCODE = '22023';
	END IF;
	INSERT INTO personalize.consents (subject_id, purpose, granted, source)
	VALUES (set_consent.subject_id, set_consent.purpose, set_consent.granted, set_consent.source)
	RETURNING recorded_at INTO at;
	RETURN at;
END
$$;

-- ---------------------------------------------------------------- protection

CREATE TABLE personalize.protected_tables (
	relid regclass PRIMARY KEY,
	subject_col name NOT NULL,
	purpose text NOT NULL,
	exempt_role regrole,	-- by OID: a renamed role stays exempt
	rls_was_enabled boolean NOT NULL,
	rls_was_forced boolean NOT NULL,
	protected_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE personalize.protected_tables IS 'tables whose rows personalize.protect() shows only to consented subjects';

-- THE policy expression (the one place to change the mechanism). The
-- subject's latest decision for the purpose is a grant. Written as a
-- correlated EXISTS (not a call to has_consent, which it equals) so that the
-- planner can hash the consented subjects once per statement for scans and
-- probe the index for point queries; the column is qualified with the table
-- name so that it cannot be captured by the subquery. The exemption is looked
-- up by OID in personalize.protected_tables (an uncorrelated subquery, run once
-- per statement): a role name written into the policy would stop matching when
-- the role is renamed, and PostgreSQL refuses regrole constants in policies.
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

CREATE FUNCTION personalize.protect(tbl regclass, subject_col name, purpose text, exempt regrole DEFAULT NULL)
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

CREATE FUNCTION personalize.unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
BEGIN
	SELECT * INTO p FROM personalize.protected_tables t WHERE t.relid = tbl;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'relation "%" is not protected', tbl USING ERRCODE = '42704';
	END IF;
	EXECUTE pg_catalog.format('DROP POLICY personalize_consent ON %s', tbl);
	IF NOT p.rls_was_enabled THEN
		EXECUTE pg_catalog.format('DROP POLICY IF EXISTS personalize_rows ON %s', tbl);
		EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
	END IF;
	IF NOT p.rls_was_forced THEN
		EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
	END IF;
	DELETE FROM personalize.protected_tables t WHERE t.relid = tbl;
END
$$;

-- ---------------------------------------------------------------- erasure

CREATE TABLE personalize.erasures (
	id bigserial PRIMARY KEY,
	erased_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	erased_by name NOT NULL DEFAULT CURRENT_USER,
	touched jsonb NOT NULL
);
COMMENT ON TABLE personalize.erasures IS 'audit of personalize.forget() calls: when, by whom, how many rows where; no subject identifier';

-- The consent history of one subject, deleted for personalize.forget().
-- SECURITY DEFINER (documented in doc/privacy.md): the history is append-only
-- for every role (consents_append_only); running as the table's owner is what
-- lets this one DELETE through, so that no grant and no setting a caller can
-- make opens the history. Only roles granted personalize_admin may execute it.
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

-- forget reaches into the models through personalize.forget_in_models
-- (registry.sql): the subject is removed from every stored model, which is
-- marked stale.
CREATE FUNCTION personalize.forget(subject_id bigint)
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

SELECT pg_catalog.pg_extension_config_dump('personalize.consents', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.consents_seq_seq', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.erasures', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.erasures_id_seq', '');
