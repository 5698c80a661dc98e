-- roles: who may do what (doc/administration.md has the table of privileges).
--
-- Three group roles hold the privileges of three kinds of users, granted here
-- once, so that a later release's objects reach existing members through its
-- upgrade script:
--   personalize_analyst  trains, evaluates and serves models, reads consent
--                        state and experiment read-outs;
--   personalize_service  serves models and runs experiments online (assign,
--                        log outcomes and predictions); reads no personal data
--                        beyond the models it serves;
--   personalize_admin    both, plus consent recording, protection, erasure and
--                        the right to change any model (personalize.may_change_model).
-- Roles belong to the cluster: created by the first database that installs the
-- extension, reused by the others (each grants on its own objects), kept by
-- DROP EXTENSION. A role of that name that already exists is reused as it is.
-- Functions not named below keep PostgreSQL's default EXECUTE for PUBLIC: they
-- run as the caller, and the table privileges below are what gates them.

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
-- their images: read by serving, written by training (same policies, registry.sql)
GRANT SELECT ON personalize.model_chunks TO personalize_analyst, personalize_service;
GRANT INSERT, DELETE ON personalize.model_chunks TO personalize_analyst;

-- consent state: reading a protected table evaluates its policy as the reader
GRANT SELECT ON personalize.consents, personalize.current_consent TO personalize_analyst;
-- the exemption of a protected table is looked up here by every reader; the
-- same facts are public in pg_policies
GRANT SELECT ON personalize.protected_tables TO PUBLIC;

-- on Citus (scaleout.sql): the policy of a protected Citus table reads the
-- consent replica as the reader; training on the nodes registers its run
GRANT SELECT ON personalize.consent_state TO personalize_analyst;
GRANT SELECT, INSERT, DELETE ON personalize.train_runs TO personalize_analyst;
GRANT SELECT ON personalize.training_progress TO personalize_analyst;

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
-- recording a decision on Citus writes the replica in the same transaction
GRANT INSERT, UPDATE, DELETE ON personalize.consent_state TO personalize_admin;
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
