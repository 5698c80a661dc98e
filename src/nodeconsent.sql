-- nodeconsent: the consent check of a policy on a Citus table, local to the
-- node that holds the rows (it reads the node's copy of personalize.consent_state,
-- defined with the scale-out objects in scaleout.sql).

CREATE FUNCTION personalize.has_consent_on_node(subject_id bigint, purpose text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'has_consent_on_node' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.has_consent_on_node(bigint, text) IS
	'has_consent read from this node''s copy of personalize.consent_state: the check of policies on Citus tables';
