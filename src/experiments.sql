-- experiments: catalog tables, deterministic assignment, outcomes, read-out views.
-- Formulas and how to read the results: doc/experiments.md.

CREATE TABLE personalize.experiments (
	name text PRIMARY KEY CHECK (name <> ''),
	control text NOT NULL,
	salt text NOT NULL,
	confidence double precision NOT NULL DEFAULT 0.95 CHECK (confidence > 0 AND confidence < 1),
	block_size integer NOT NULL CHECK (block_size > 0),
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE personalize.experiments IS 'A/B experiments: control arm, assignment salt, confidence level of the read-out';

CREATE TABLE personalize.experiment_arms (
	experiment text NOT NULL REFERENCES personalize.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
	arm text NOT NULL CHECK (arm <> ''),
	position integer NOT NULL,
	weight double precision NOT NULL CHECK (weight >= 0 AND weight < 'Infinity'),
	block_count integer NOT NULL CHECK (block_count >= 0),
	PRIMARY KEY (experiment, arm),
	UNIQUE (experiment, position)
);
COMMENT ON TABLE personalize.experiment_arms IS 'Arms of each experiment with their weights and slots per randomisation block';

CREATE TABLE personalize.assignments (
	experiment text NOT NULL,
	unit_id bigint NOT NULL,
	arm text NOT NULL,
	stratum text,
	assigned_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (experiment, unit_id),
	FOREIGN KEY (experiment, arm) REFERENCES personalize.experiment_arms (experiment, arm)
		ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE personalize.assignments IS 'One arm per experiment and unit, recorded once (intention to treat)';

CREATE TABLE personalize.experiment_strata (
	experiment text NOT NULL REFERENCES personalize.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
	stratum text NOT NULL,
	next_position bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (experiment, stratum)
);
COMMENT ON TABLE personalize.experiment_strata IS 'Position of the next unit in each stratum (blocked randomisation)';

CREATE TABLE personalize.outcomes (
	experiment text NOT NULL REFERENCES personalize.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
	unit_id bigint NOT NULL,
	metric text NOT NULL CHECK (metric <> ''),
	value double precision NOT NULL CHECK (value > '-Infinity' AND value < 'Infinity'),
	recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX outcomes_experiment_metric_unit ON personalize.outcomes (experiment, metric, unit_id);
COMMENT ON TABLE personalize.outcomes IS 'Outcome events; per unit and metric they are summed, and a missing unit counts as 0';

-- pg_dump keeps users' experiments, assignments and outcomes
SELECT pg_catalog.pg_extension_config_dump('personalize.experiments', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.experiment_arms', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.assignments', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.experiment_strata', '');
SELECT pg_catalog.pg_extension_config_dump('personalize.outcomes', '');

-- creating an experiment

CREATE FUNCTION personalize.create_experiment(name text, arms text[], weights double precision[] DEFAULT NULL,
		control text DEFAULT NULL, salt text DEFAULT NULL, confidence double precision DEFAULT 0.95)
	RETURNS personalize.experiments
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer;
	w double precision[];
	total double precision;
	b integer;
	counts integer[];
	result personalize.experiments;
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'experiment name must not be empty' USING ERRCODE = '22023';
	END IF;
	IF arms IS NULL OR cardinality(arms) = 0 THEN
		RAISE EXCEPTION 'experiment "%" needs at least 2 arms, got none', name USING ERRCODE = '22023';
	END IF;
	IF array_ndims(arms) > 1 THEN
		RAISE EXCEPTION 'arms must be a one-dimensional array' USING ERRCODE = '2202E';
	END IF;
	n := cardinality(arms);
	IF n < 2 THEN
		RAISE EXCEPTION 'experiment "%" needs at least 2 arms, got 1', name USING ERRCODE = '22023';
	END IF;
	IF array_position(arms, NULL) IS NOT NULL OR '' = ANY (arms) THEN
		RAISE EXCEPTION 'arm names must not be NULL or empty' USING ERRCODE = '22023';
	END IF;
	IF (SELECT count(DISTINCT a) FROM unnest(arms) a) <> n THEN
		RAISE EXCEPTION 'arm names must be distinct' USING ERRCODE = '22023';
	END IF;
	w := coalesce(weights, array_fill(1::double precision, ARRAY[n]));
	IF array_ndims(w) > 1 OR cardinality(w) <> n THEN
		RAISE EXCEPTION 'arms and weights have different lengths % and %', n, cardinality(w)
			USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT FROM unnest(w) x WHERE x IS NULL OR x < 0 OR x = 'Infinity' OR x = 'NaN') THEN
		RAISE EXCEPTION 'weights must be finite and non-negative, not %', w USING ERRCODE = '22023';
	END IF;
	total := (SELECT sum(x) FROM unnest(w) x);
	IF total <= 0 THEN
		RAISE EXCEPTION 'at least one weight must be positive' USING ERRCODE = '22023';
	END IF;
	control := coalesce(control, arms[1]);
	IF NOT control = ANY (arms) THEN
		RAISE EXCEPTION 'control arm "%" is not one of the arms %', control, arms USING ERRCODE = '22023';
	END IF;
	IF confidence IS NULL OR NOT (confidence > 0 AND confidence < 1) THEN
		RAISE EXCEPTION 'confidence must be between 0 and 1 (exclusive), not %', confidence USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT FROM personalize.experiments e WHERE e.name = create_experiment.name) THEN
		RAISE EXCEPTION 'experiment "%" already exists', name USING ERRCODE = '42710';
	END IF;
	-- block: the smallest size (up to 1000) in which every arm gets a whole number of slots
	SELECT g INTO b FROM generate_series(1, 1000) g
	WHERE (SELECT bool_and(abs(x / total * g - round(x / total * g)) < 1e-9 * g) FROM unnest(w) x)
	ORDER BY g LIMIT 1;
	IF b IS NOT NULL THEN
		counts := ARRAY(SELECT round(x / total * b)::integer FROM unnest(w) WITH ORDINALITY u(x, i) ORDER BY i);
	ELSE
		-- irrational-looking weights: 1000 slots by largest remainder
		b := 1000;
		counts := ARRAY(
			WITH q AS (SELECT i, x / total * 1000 AS exact FROM unnest(w) WITH ORDINALITY u(x, i)),
			r AS (SELECT i, floor(exact)::integer AS base,
			             row_number() OVER (ORDER BY exact - floor(exact) DESC, i) AS rk FROM q)
			SELECT base + CASE WHEN rk <= 1000 - (SELECT sum(base) FROM r) THEN 1 ELSE 0 END
			FROM r ORDER BY i);
	END IF;
	INSERT INTO personalize.experiments (name, control, salt, confidence, block_size)
	VALUES (create_experiment.name, control, coalesce(salt, create_experiment.name), confidence, b)
	RETURNING * INTO result;
	INSERT INTO personalize.experiment_arms (experiment, arm, position, weight, block_count)
	SELECT create_experiment.name, arms[i], i, w[i], counts[i] FROM generate_series(1, n) i;
	RETURN result;
END
$$;

-- assignment

-- uniform number in [0, 1) from the first 52 bits of md5(salt:unit): portable and reproducible
CREATE FUNCTION personalize.unit_hash(salt text, unit_id bigint) RETURNS double precision
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN ('x' OPERATOR(pg_catalog.||) pg_catalog.substr(pg_catalog.md5(salt OPERATOR(pg_catalog.||) ':'
		OPERATOR(pg_catalog.||) unit_id::text), 1, 13))::bit(52)::bigint
		OPERATOR(pg_catalog./) 4503599627370496::double precision;

-- the arm of an unstratified unit: a pure function of salt, unit and weights
CREATE FUNCTION personalize.arm_for(experiment text, unit_id bigint) RETURNS text
	LANGUAGE sql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
	WITH e AS (SELECT salt FROM personalize.experiments WHERE name = $1),
	a AS (SELECT arm, position, sum(weight) OVER (ORDER BY position) / sum(weight) OVER () AS upto
	      FROM personalize.experiment_arms WHERE experiment = $1)
	SELECT a.arm FROM a, e
	WHERE personalize.unit_hash(e.salt, $2) < a.upto AND a.upto > 0
	ORDER BY a.position LIMIT 1
$$;

CREATE FUNCTION personalize.assign(experiment text, unit_id bigint, stratum text DEFAULT NULL) RETURNS text
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e personalize.experiments;
	chosen text;
	pos bigint;
	inserted boolean := false;
BEGIN
	IF experiment IS NULL OR unit_id IS NULL THEN
		RAISE EXCEPTION 'experiment and unit_id must not be NULL' USING ERRCODE = '22004';
	END IF;
	SELECT a.arm INTO chosen FROM personalize.assignments a
	WHERE a.experiment = assign.experiment AND a.unit_id = assign.unit_id;
	IF FOUND THEN
		RETURN chosen;
	END IF;
	SELECT * INTO e FROM personalize.experiments x WHERE x.name = assign.experiment;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'experiment "%" does not exist', experiment USING ERRCODE = '42704';
	END IF;
	IF stratum IS NULL THEN
		chosen := personalize.arm_for(experiment, unit_id);
		INSERT INTO personalize.assignments (experiment, unit_id, arm, stratum)
		VALUES (experiment, unit_id, chosen, NULL)
		ON CONFLICT DO NOTHING;
	ELSE
		INSERT INTO personalize.experiment_strata AS s (experiment, stratum)
		VALUES (experiment, stratum) ON CONFLICT DO NOTHING;
		-- the row lock serialises assignment within the stratum
		SELECT s.next_position INTO pos FROM personalize.experiment_strata s
		WHERE s.experiment = assign.experiment AND s.stratum = assign.stratum FOR UPDATE;
		SELECT a.arm INTO chosen FROM personalize.assignments a
		WHERE a.experiment = assign.experiment AND a.unit_id = assign.unit_id;
		IF FOUND THEN
			RETURN chosen;
		END IF;
		-- slot pos % block_size of block pos / block_size, blocks permuted by md5(salt:stratum:block:slot)
		WITH slots AS (
			SELECT ea.arm, row_number() OVER (ORDER BY ea.position, k) AS j
			FROM personalize.experiment_arms ea, generate_series(1, ea.block_count) k
			WHERE ea.experiment = assign.experiment)
		SELECT slots.arm INTO chosen FROM slots
		ORDER BY md5(format('%s:%s:%s:%s', e.salt, stratum, pos / e.block_size, slots.j))
		OFFSET pos % e.block_size LIMIT 1;
		INSERT INTO personalize.assignments (experiment, unit_id, arm, stratum)
		VALUES (experiment, unit_id, chosen, stratum)
		ON CONFLICT DO NOTHING
		RETURNING true INTO inserted;
		IF inserted THEN
			UPDATE personalize.experiment_strata s SET next_position = pos + 1
			WHERE s.experiment = assign.experiment AND s.stratum = assign.stratum;
		END IF;
	END IF;
	-- a concurrent call may have won: its arm is the unit's arm
	SELECT a.arm INTO chosen FROM personalize.assignments a
	WHERE a.experiment = assign.experiment AND a.unit_id = assign.unit_id;
	RETURN chosen;
END
$$;

CREATE FUNCTION personalize.log_outcome(experiment text, unit_id bigint, metric text,
		value double precision DEFAULT 1, recorded_at timestamptz DEFAULT pg_catalog.now())
	RETURNS void
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF experiment IS NULL OR unit_id IS NULL OR metric IS NULL OR value IS NULL OR recorded_at IS NULL THEN
		RAISE EXCEPTION 'experiment, unit_id, metric, value and recorded_at must not be NULL'
			USING ERRCODE = '22004';
	END IF;
	IF NOT EXISTS (SELECT FROM personalize.experiments e WHERE e.name = log_outcome.experiment) THEN
		RAISE EXCEPTION 'experiment "%" does not exist', experiment USING ERRCODE = '42704';
	END IF;
	IF value = 'NaN' OR value = 'Infinity' OR value = '-Infinity' THEN
		RAISE EXCEPTION 'outcome value must be finite, not %', value USING ERRCODE = '22023';
	END IF;
	INSERT INTO personalize.outcomes (experiment, unit_id, metric, value, recorded_at)
	VALUES (experiment, unit_id, metric, value, recorded_at);
END
$$;

-- read-outs

-- unit totals per metric (zeros of assigned units without rows are added by moments_pad)
-- security_invoker: the view reads outcomes as the caller, so row-level security on them holds
CREATE VIEW personalize.experiment_results WITH (security_invoker = true) AS
WITH arm_units AS (
	SELECT a.experiment, a.arm, count(*) AS n
	FROM personalize.assignments a
	GROUP BY a.experiment, a.arm
), observed AS (
	-- unit totals per metric (several rows of a unit are summed) joined to the unit's arm; the join
	-- comes first so that it can run as a parallel hash join
	SELECT u.experiment, u.metric, u.arm, personalize.moments(u.value) AS m
	FROM (SELECT a.experiment, o.metric, a.arm, o.unit_id, sum(o.value) AS value
	      FROM personalize.outcomes o
	      JOIN personalize.assignments a ON a.experiment = o.experiment AND a.unit_id = o.unit_id
	      GROUP BY a.experiment, o.metric, a.arm, o.unit_id) u
	GROUP BY u.experiment, u.metric, u.arm
), per_metric AS (
	-- one row per experiment and metric, the arms' states side by side, so that the aggregation
	-- above is referenced once (and runs in parallel, with the caller's filters pushed down)
	SELECT ob.experiment, ob.metric, array_agg(ob.arm) AS arms,
	       array_agg(ob.m[1]) AS n, array_agg(ob.m[2]) AS s, array_agg(ob.m[3]) AS ss, array_agg(ob.m[4]) AS nb
	FROM observed ob
	GROUP BY ob.experiment, ob.metric
), cells AS (
	SELECT e.name AS experiment, pm.metric, ea.arm, ea.position, ea.arm = e.control AS is_control,
	       e.confidence,
	       personalize.moments_pad(
	           CASE WHEN i.i IS NOT NULL THEN ARRAY[pm.n[i.i], pm.s[i.i], pm.ss[i.i], pm.nb[i.i]] END,
	           coalesce(au.n, 0)) AS m
	FROM personalize.experiments e
	JOIN personalize.experiment_arms ea ON ea.experiment = e.name
	JOIN per_metric pm ON pm.experiment = e.name
	CROSS JOIN LATERAL (SELECT pg_catalog.array_position(pm.arms, ea.arm) AS i) i
	LEFT JOIN arm_units au ON au.experiment = e.name AND au.arm = ea.arm
), kinds AS (
	SELECT c.*,
	       bool_and(c.m[4] = 0) OVER (PARTITION BY c.experiment, c.metric) AS proportion,
	       first_value(c.m) OVER (PARTITION BY c.experiment, c.metric ORDER BY c.is_control DESC) AS control_m
	FROM cells c
), tests AS (
	SELECT k.*, t.*
	FROM kinds k
	LEFT JOIN LATERAL personalize.ab_test(k.control_m, k.m, k.proportion, k.confidence) t ON NOT k.is_control
)
SELECT t.experiment, t.metric, t.arm, t.is_control,
       t.m[1]::bigint AS n,
       CASE WHEN t.m[1] > 0 THEN t.m[2] / t.m[1] END AS mean,
       CASE WHEN t.m[1] > 1 THEN sqrt(t.m[3] / (t.m[1] - 1)) END AS stddev,
       t.lift_abs, t.lift_abs_low, t.lift_abs_high,
       t.lift_rel, t.lift_rel_low, t.lift_rel_high,
       t.p_value,
       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'bonferroni'))[row_number() OVER w] AS p_bonferroni,
       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'bh'))[row_number() OVER w] AS p_bh,
       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'holm'))[row_number() OVER w] AS p_holm,
       CASE WHEN t.proportion THEN 'z' ELSE 'welch' END AS test,
       t.statistic, t.df, t.confidence
FROM tests t
WINDOW w AS (PARTITION BY t.experiment ORDER BY t.metric, t.position
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
ORDER BY t.experiment, t.metric, t.position;
COMMENT ON VIEW personalize.experiment_results IS 'Per experiment, metric and arm: n, mean, lifts with intervals, p-values, Bonferroni/BH/Holm';

CREATE VIEW personalize.experiment_health WITH (security_invoker = true) AS
WITH counts AS (
	SELECT a.experiment, a.arm, count(*) AS n, min(a.assigned_at) AS first_at, max(a.assigned_at) AS last_at
	FROM personalize.assignments a
	GROUP BY a.experiment, a.arm
), arms AS (
	SELECT ea.experiment, ea.arm, ea.position, ea.weight, coalesce(c.n, 0) AS n, c.first_at, c.last_at
	FROM personalize.experiment_arms ea
	LEFT JOIN counts c ON c.experiment = ea.experiment AND c.arm = ea.arm
), per AS (
	SELECT a.experiment,
	       array_agg(a.arm ORDER BY a.position) AS arms,
	       array_agg(a.n ORDER BY a.position) AS units,
	       sum(a.n) AS total_units,
	       min(a.first_at) AS first_assigned_at, max(a.last_at) AS last_assigned_at,
	       bool_or(a.weight = 0 AND a.n > 0) AS unit_in_closed_arm,
	       array_agg(a.n::double precision ORDER BY a.position) FILTER (WHERE a.weight > 0) AS obs,
	       array_agg(a.weight ORDER BY a.position) FILTER (WHERE a.weight > 0) AS expw,
	       array_agg(a.weight ORDER BY a.position) AS weights
	FROM arms a
	GROUP BY a.experiment
)
SELECT p.experiment, p.arms, p.units, p.total_units,
       ARRAY(SELECT x / (SELECT sum(y) FROM unnest(p.weights) y) FROM unnest(p.weights) WITH ORDINALITY u(x, i) ORDER BY i)
           AS expected_shares,
       CASE WHEN p.total_units > 0 THEN
           ARRAY(SELECT x::double precision / p.total_units FROM unnest(p.units) WITH ORDINALITY u(x, i) ORDER BY i)
       END AS observed_shares,
       s.statistic AS srm_chi2,
       s.p_value AS srm_p_value,
       s.p_value < 0.001 AS srm_flag,
       p.first_assigned_at, p.last_assigned_at
FROM per p
LEFT JOIN LATERAL (
	SELECT g.statistic, g.p_value
	FROM personalize.chisq_gof(p.obs, p.expw) g
	WHERE p.total_units > 0 AND cardinality(p.obs) >= 2
) g ON true
LEFT JOIN LATERAL (
	-- a unit in an arm of weight 0 is a mismatch whatever the other counts
	SELECT CASE WHEN p.unit_in_closed_arm THEN 'Infinity'::double precision ELSE g.statistic END AS statistic,
	       CASE WHEN p.unit_in_closed_arm THEN 0::double precision ELSE g.p_value END AS p_value
) s ON true
ORDER BY p.experiment;
COMMENT ON VIEW personalize.experiment_health IS 'Per experiment: units per arm, expected and observed shares, sample ratio mismatch test';

CREATE FUNCTION personalize.experiment_metric_check(experiment text, metric text) RETURNS personalize.experiments
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

CREATE FUNCTION personalize.segment_effects(experiment text, metric text, segment_sql text,
		confidence double precision DEFAULT NULL)
	RETURNS TABLE (segment text, arm text, is_control boolean, n bigint, mean double precision,
		stddev double precision, lift_abs double precision, lift_abs_low double precision,
		lift_abs_high double precision, lift_rel double precision, lift_rel_low double precision,
		lift_rel_high double precision, p_value double precision, p_bh double precision, test text)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	e personalize.experiments := personalize.experiment_metric_check(experiment, metric);
	src text := personalize.source_sql(segment_sql, 'segment');
	dup bigint;
	caller_path text := pg_catalog.current_setting('search_path');
BEGIN
	-- no SET clause: the analyst's query resolves names as the caller does, with pg_catalog first
	PERFORM pg_catalog.set_config('search_path', pg_catalog.concat_ws(', ', 'pg_catalog', NULLIF(caller_path, '')), true);
	confidence := coalesce(confidence, e.confidence);
	EXECUTE format('SELECT s.unit_id FROM %s AS s(unit_id, segment) GROUP BY s.unit_id HAVING count(*) > 1 LIMIT 1', src)
		INTO dup;
	IF dup IS NOT NULL THEN
		RAISE EXCEPTION 'segment query returns more than one row for unit %', dup USING ERRCODE = '21000';
	END IF;
	RETURN QUERY EXECUTE format($q$
		WITH seg AS (
			SELECT s.unit_id::bigint AS unit_id, s.segment::text AS segment FROM %s AS s(unit_id, segment)
		), vals AS (
			SELECT o.unit_id, sum(o.value) AS value FROM personalize.outcomes o
			WHERE o.experiment = $1 AND o.metric = $2 GROUP BY o.unit_id
		), cells AS (
			SELECT seg.segment, a.arm, count(*) AS n, personalize.moments(v.value) AS m
			FROM personalize.assignments a
			LEFT JOIN seg ON seg.unit_id = a.unit_id
			LEFT JOIN vals v ON v.unit_id = a.unit_id
			WHERE a.experiment = $1
			GROUP BY seg.segment, a.arm
		), grid AS (
			SELECT g.segment, ea.arm, ea.position, ea.arm = $4 AS is_control,
			       personalize.moments_pad(c.m, coalesce(c.n, 0)) AS m
			FROM (SELECT DISTINCT cells.segment FROM cells) g
			CROSS JOIN personalize.experiment_arms ea
			LEFT JOIN cells c ON c.segment IS NOT DISTINCT FROM g.segment AND c.arm = ea.arm
			WHERE ea.experiment = $1
		), kinds AS (
			SELECT grid.*, bool_and(grid.m[4] = 0) OVER () AS proportion,
			       first_value(grid.m) OVER (PARTITION BY grid.segment ORDER BY grid.is_control DESC) AS control_m
			FROM grid
		), tests AS (
			SELECT k.*, t.* FROM kinds k
			LEFT JOIN LATERAL personalize.ab_test(k.control_m, k.m, k.proportion, $3) t ON NOT k.is_control
		)
		SELECT t.segment, t.arm, t.is_control, t.m[1]::bigint,
		       CASE WHEN t.m[1] > 0 THEN t.m[2] / t.m[1] END,
		       CASE WHEN t.m[1] > 1 THEN sqrt(t.m[3] / (t.m[1] - 1)) END,
		       t.lift_abs, t.lift_abs_low, t.lift_abs_high, t.lift_rel, t.lift_rel_low, t.lift_rel_high,
		       t.p_value,
		       (personalize.p_adjust(array_agg(t.p_value) OVER w, 'bh'))[row_number() OVER w],
		       CASE WHEN t.proportion THEN 'z' ELSE 'welch' END
		FROM tests t
		WINDOW w AS (ORDER BY t.segment NULLS LAST, t.position ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
		ORDER BY t.segment NULLS LAST, t.position
	$q$, src) USING experiment, metric, confidence, e.control;
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$$;

CREATE FUNCTION personalize.cuped_results(experiment text, metric text, covariate text,
		confidence double precision DEFAULT NULL)
	RETURNS TABLE (arm text, is_control boolean, n bigint, mean double precision, mean_adjusted double precision,
		stddev double precision, stddev_adjusted double precision, theta double precision,
		variance_reduction double precision,
		lift_abs double precision, lift_abs_low double precision, lift_abs_high double precision,
		p_value double precision,
		lift_abs_cuped double precision, lift_abs_cuped_low double precision, lift_abs_cuped_high double precision,
		lift_rel_cuped double precision, lift_rel_cuped_low double precision, lift_rel_cuped_high double precision,
		p_value_cuped double precision)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
DECLARE
	e personalize.experiments := personalize.experiment_metric_check(experiment, metric);
	src text := personalize.source_sql(covariate, 'covariate');
	caller_path text := pg_catalog.current_setting('search_path');
BEGIN
	-- no SET clause: the analyst's query resolves names as the caller does, with pg_catalog first
	PERFORM pg_catalog.set_config('search_path', pg_catalog.concat_ws(', ', 'pg_catalog', NULLIF(caller_path, '')), true);
	confidence := coalesce(confidence, e.confidence);
	RETURN QUERY EXECUTE format($q$
		WITH cov AS (
			SELECT s.unit_id::bigint AS unit_id, sum(s.value::double precision) AS x
			FROM %s AS s(unit_id, value) GROUP BY 1
		), vals AS (
			SELECT o.unit_id, sum(o.value) AS y FROM personalize.outcomes o
			WHERE o.experiment = $1 AND o.metric = $2 GROUP BY o.unit_id
		), sets AS (
			SELECT a.arm, personalize.comoments(coalesce(v.y, 0), coalesce(c.x, 0)) AS s
			FROM personalize.assignments a
			LEFT JOIN vals v ON v.unit_id = a.unit_id
			LEFT JOIN cov c ON c.unit_id = a.unit_id
			WHERE a.experiment = $1
			GROUP BY GROUPING SETS ((a.arm), ())
		), pooled AS (
			SELECT sets.s[6] / nullif(sets.s[5], 0) AS theta, sets.s[3] / sets.s[1] AS xbar,
			       sets.s[7] = 0 AS proportion
			FROM sets WHERE sets.arm IS NULL
		), arms AS (
			SELECT ea.arm, ea.position, ea.arm = $4 AS is_control, p.theta, p.proportion,
			       coalesce(st.s, '{0,0,0,0,0,0,0}') AS s,
			       -- plain moments of y; adjusted y - theta (x - pooled mean of x)
			       ARRAY[coalesce(st.s[1], 0), coalesce(st.s[2], 0), coalesce(st.s[4], 0), coalesce(st.s[7], 0)] AS plain,
			       ARRAY[coalesce(st.s[1], 0),
			             coalesce(st.s[2] - coalesce(p.theta, 0) * (st.s[3] - st.s[1] * p.xbar), 0),
			             coalesce(greatest(st.s[4] - 2 * coalesce(p.theta, 0) * st.s[6]
			                               + coalesce(p.theta, 0) ^ 2 * st.s[5], 0), 0),
			             1] AS adjusted
			FROM personalize.experiment_arms ea
			CROSS JOIN pooled p
			LEFT JOIN sets st ON st.arm = ea.arm
			WHERE ea.experiment = $1
		), ctrl AS (
			SELECT arms.plain, arms.adjusted FROM arms WHERE arms.is_control
		)
		SELECT a.arm, a.is_control, a.s[1]::bigint,
		       CASE WHEN a.s[1] > 0 THEN a.plain[2] / a.plain[1] END,
		       CASE WHEN a.s[1] > 0 THEN a.adjusted[2] / a.adjusted[1] END,
		       CASE WHEN a.s[1] > 1 THEN sqrt(a.plain[3] / (a.s[1] - 1)) END,
		       CASE WHEN a.s[1] > 1 THEN sqrt(a.adjusted[3] / (a.s[1] - 1)) END,
		       a.theta,
		       CASE WHEN a.plain[3] > 0 THEN 1 - a.adjusted[3] / a.plain[3] END,
		       p.lift_abs, p.lift_abs_low, p.lift_abs_high, p.p_value,
		       q.lift_abs, q.lift_abs_low, q.lift_abs_high, q.lift_rel, q.lift_rel_low, q.lift_rel_high, q.p_value
		FROM arms a CROSS JOIN ctrl c
		LEFT JOIN LATERAL personalize.ab_test(c.plain, a.plain, a.proportion, $3) p ON NOT a.is_control
		LEFT JOIN LATERAL personalize.ab_test(c.adjusted, a.adjusted, false, $3) q ON NOT a.is_control
		ORDER BY a.position
	$q$, src) USING experiment, metric, confidence, e.control;
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
END
$$;
