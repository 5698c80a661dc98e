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
