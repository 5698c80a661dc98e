-- privacy_report: the privacy/utility trade-off as one table (doc/differential-privacy.md).
-- Trains, on the same training rows, the non-private ALS and popularity models, the private
-- variants at each epsilon, and (when asked) the hybrid with each ablated feature set; serves
-- every user of the test rows with their training items excluded; reports the ranking metrics
-- of personalize.ranking_metrics, averaged over the seeds. The models are temporary: trained
-- under a name of this backend and dropped before returning (an error rolls everything back).

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
