-- registry: named, versioned models in personalize.models; train, activate, drop.

CREATE TABLE personalize.models (
	name		text NOT NULL,
	version		integer NOT NULL CHECK (version > 0),
	algorithm	text NOT NULL CHECK (algorithm IN ('popularity', 'itemknn', 'als', 'bpr', 'hybrid',
	                                               'dp_popularity', 'dp_als', 'editorial', 'logistic', 'uplift')),
	options		jsonb NOT NULL DEFAULT '{}',
	trained_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	rows		bigint NOT NULL,
	users		bigint,
	items		bigint NOT NULL,
	seconds		double precision NOT NULL,
	active		boolean NOT NULL DEFAULT false,
	-- set by personalize.forget: the stored model no longer knows a subject, but
	-- its item factors still carry their influence until the next training
	stale		boolean NOT NULL DEFAULT false,
	revised_at	timestamptz,	-- when forget last rewrote the stored model
	-- the role that trained the version (last, where ALTER TABLE ADD COLUMN put it in 0.2.0)
	owner		regrole NOT NULL DEFAULT CURRENT_USER::regrole,
	bytes		bigint NOT NULL,	-- size of the stored image (personalize.model_chunks)
	-- what it was trained from (a table or a query, as SQL that can follow FROM);
	-- popularity models read who saw what there. NULL for imported models.
	source		text,
	-- feature sets the version was trained on (weight, context, item and user feature sets),
	-- and the privacy parameters and noise of a private algorithm (NULL otherwise)
	features	text[],
	privacy		jsonb,
	PRIMARY KEY (name, version)
);
-- at most one active version per name; serving looks it up by this index
CREATE UNIQUE INDEX models_active_idx ON personalize.models (name) WHERE active;
COMMENT ON TABLE personalize.models IS 'trained model versions; the active one of each name is served';

-- pg_dump keeps users' models (the table belongs to the extension)
SELECT pg_catalog.pg_extension_config_dump('personalize.models', '');

-- Who may change a model (as pg_cron does for cron.job): a model is its name's
-- versions; a role may change it (train a version, activate, drop, rewrite) when
-- it has the privileges of the owner of every version, or of personalize_admin,
-- or is a superuser. A new name belongs to whoever trains it first. A function
-- of (name, owner), so the same policies fit any table keyed by model name.
-- Runs as the invoker: it reads personalize.models through the SELECT policy
-- (true), so the policies below never recurse.
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

-- The image of every version, in chunks of 4 MB (no size limit), written in the
-- transaction that inserts the registry row and deleted with it.
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

-- A new version of model_name holding this model: numbered in commit order,
-- registered and stored in chunks in the caller's transaction.
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
	INSERT INTO personalize.models (name, version, algorithm, options, rows, users, items, seconds, active, bytes,
	                                features, privacy)
	VALUES (model_name, new_version, info ->> 'algorithm', options, (info ->> 'rows')::int8, (info ->> 'users')::int8,
	        (info ->> 'items')::int8, seconds, make_active, (info ->> 'bytes')::int8,
	        ARRAY(SELECT jsonb_array_elements_text(coalesce(info -> 'feature_sets', '[]'::jsonb))), info -> 'privacy');
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

CREATE FUNCTION personalize.train(model_name text, algorithm text, source text, options jsonb DEFAULT '{}')
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

CREATE FUNCTION personalize.activate(model_name text, version integer)
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
COMMENT ON FUNCTION personalize.activate(text, integer) IS 'make a version the one served';

CREATE FUNCTION personalize.drop_model(model_name text)
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
COMMENT ON FUNCTION personalize.drop_model(text) IS 'delete every version of a model';

-- Erasure in models, called by personalize.forget: every stored version (active
-- or not) that knows the subject is rewritten without them and marked stale, so
-- a refresh retrains it. revised_at changes the serving cache's key, so no
-- backend serves the old value after commit.
-- SECURITY DEFINER (documented in doc/privacy.md): an erasure must reach every
-- model whoever owns it, and the row policies limit the caller to its own. It
-- does one thing, removing one subject, and only roles granted
-- personalize_admin may execute it (src/roles.sql).
CREATE FUNCTION personalize.forget_in_models(subject_id bigint) RETURNS integer
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
