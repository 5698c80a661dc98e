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
