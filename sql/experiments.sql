-- Experiments end to end: a generated three-arm experiment loaded by plain INSERT, its
-- read-out against statsmodels (test/reference/ref_experiments.py), segments, CUPED,
-- health, and assignment (deterministic, weighted, blocked within strata).
SET search_path = personalize, public;
SET extra_float_digits = 0;

CREATE FUNCTION pg_temp.rel(a float8, b float8) RETURNS float8 LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN a = b OR (a IS NULL AND b IS NULL) THEN 0 ELSE abs(a - b) / greatest(abs(b), 1e-307) END;

SELECT name, control, salt, confidence, block_size FROM create_experiment('gen', '{control,pop,hybrid}', '{2,1,1}');
SELECT arm, position, weight, block_count FROM experiment_arms WHERE experiment = 'gen' ORDER BY position;

CREATE TEMP TABLE ref_assign (unit_id bigint, arm text, segment text);
\copy ref_assign FROM 'test/reference/experiments_assignments.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TEMP TABLE ref_outcomes (unit_id bigint, metric text, value float8);
\copy ref_outcomes FROM 'test/reference/experiments_outcomes.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TEMP TABLE covariate (unit_id bigint, pre float8);
\copy covariate FROM 'test/reference/experiments_covariate.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TEMP TABLE segments (unit_id bigint, channel text);
\copy segments FROM 'test/reference/experiments_segments.tsv' WITH (FORMAT csv, DELIMITER E'\t')

-- a past experiment is loaded by plain INSERT
INSERT INTO assignments (experiment, unit_id, arm) SELECT 'gen', unit_id, arm FROM ref_assign;
INSERT INTO outcomes (experiment, unit_id, metric, value) SELECT 'gen', unit_id, metric, value FROM ref_outcomes;
-- outcomes of units that were never assigned do not count (intention to treat over assigned units)
INSERT INTO outcomes (experiment, unit_id, metric, value) VALUES ('gen', -1, 'revenue', 1e9);

CREATE TEMP TABLE expected (metric text, arm text, test text, n bigint, mean float8, stddev float8,
	lift_abs float8, lift_abs_low float8, lift_abs_high float8, lift_rel float8, lift_rel_low float8,
	lift_rel_high float8, p_value float8, p_bonferroni float8, p_bh float8, p_holm float8);
\copy expected FROM 'test/reference/experiments_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

SELECT r.metric, r.arm, r.is_control, r.test, r.n = e.n AS n_ok,
       greatest(pg_temp.rel(r.mean, e.mean), pg_temp.rel(r.stddev, e.stddev)) < 1e-9 AS moments_ok,
       greatest(pg_temp.rel(r.lift_abs, e.lift_abs), pg_temp.rel(r.lift_abs_low, e.lift_abs_low),
                pg_temp.rel(r.lift_abs_high, e.lift_abs_high)) < 1e-9 AS lift_abs_ok,
       greatest(pg_temp.rel(r.lift_rel, e.lift_rel), pg_temp.rel(r.lift_rel_low, e.lift_rel_low),
                pg_temp.rel(r.lift_rel_high, e.lift_rel_high)) < 1e-9 AS lift_rel_ok,
       greatest(pg_temp.rel(r.p_value, e.p_value), pg_temp.rel(r.p_bonferroni, e.p_bonferroni),
                pg_temp.rel(r.p_bh, e.p_bh), pg_temp.rel(r.p_holm, e.p_holm)) < 1e-9 AS p_ok,
       round(r.p_value::numeric, 4) AS p_value
FROM experiment_results r
FULL JOIN expected e ON e.metric = r.metric AND e.arm = r.arm
WHERE r.experiment = 'gen' OR r.experiment IS NULL
ORDER BY r.metric, r.n DESC;

-- segments: a (unit_id, segment) query; units without a segment row form the NULL segment
CREATE TEMP TABLE seg_expected (metric text, segment text, arm text, n bigint, mean float8, stddev float8,
	lift_abs float8, lift_abs_low float8, lift_abs_high float8, lift_rel float8, lift_rel_low float8,
	lift_rel_high float8, p_value float8, p_bh float8);
\copy seg_expected FROM 'test/reference/experiments_segments_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER, NULL '')

SELECT m.metric, count(*) AS rows, bool_and(s.n = e.n) AS n_ok,
       max(greatest(pg_temp.rel(s.mean, e.mean), pg_temp.rel(s.stddev, e.stddev),
                    pg_temp.rel(s.lift_abs, e.lift_abs), pg_temp.rel(s.lift_abs_low, e.lift_abs_low),
                    pg_temp.rel(s.lift_abs_high, e.lift_abs_high), pg_temp.rel(s.lift_rel, e.lift_rel),
                    pg_temp.rel(s.lift_rel_low, e.lift_rel_low), pg_temp.rel(s.lift_rel_high, e.lift_rel_high),
                    pg_temp.rel(s.p_value, e.p_value), pg_temp.rel(s.p_bh, e.p_bh))) < 1e-9 AS all_within_1e9
FROM (VALUES ('conversion'), ('revenue')) m(metric)
CROSS JOIN LATERAL segment_effects('gen', m.metric, 'SELECT unit_id, channel FROM segments') s
JOIN seg_expected e ON e.metric = m.metric AND e.segment IS NOT DISTINCT FROM s.segment AND e.arm = s.arm
GROUP BY m.metric ORDER BY m.metric;
SELECT segment, arm, is_control, n, test FROM segment_effects('gen', 'conversion', 'segments') WHERE arm = 'pop';
-- names in the analyst's query resolve through the caller's search_path (here a table in public)
CREATE TABLE public.segments_public AS SELECT * FROM segments;
SELECT count(*) AS rows, current_setting('search_path') AS search_path_after
FROM segment_effects('gen', 'conversion', 'SELECT unit_id, channel FROM segments_public');
SELECT count(*) AS rows FROM segment_effects('gen', 'conversion', 'segments_public');
DROP TABLE public.segments_public;

-- CUPED with the pre-period covariate, a relation of (unit_id, value)
CREATE TEMP TABLE cuped_expected (arm text, n bigint, mean float8, mean_adjusted float8, stddev float8,
	stddev_adjusted float8, theta float8, variance_reduction float8, lift_abs float8, lift_abs_low float8,
	lift_abs_high float8, p_value float8, lift_abs_cuped float8, lift_abs_cuped_low float8,
	lift_abs_cuped_high float8, lift_rel_cuped float8, lift_rel_cuped_low float8, lift_rel_cuped_high float8,
	p_value_cuped float8);
\copy cuped_expected FROM 'test/reference/experiments_cuped_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER, NULL '')
SELECT c.arm, c.is_control, c.n = e.n AS n_ok,
       greatest(pg_temp.rel(c.mean, e.mean), pg_temp.rel(c.mean_adjusted, e.mean_adjusted),
                pg_temp.rel(c.stddev, e.stddev), pg_temp.rel(c.stddev_adjusted, e.stddev_adjusted),
                pg_temp.rel(c.theta, e.theta), pg_temp.rel(c.variance_reduction, e.variance_reduction)) < 1e-9 AS moments_ok,
       greatest(pg_temp.rel(c.lift_abs, e.lift_abs), pg_temp.rel(c.lift_abs_low, e.lift_abs_low),
                pg_temp.rel(c.lift_abs_high, e.lift_abs_high), pg_temp.rel(c.p_value, e.p_value)) < 1e-9 AS plain_ok,
       greatest(pg_temp.rel(c.lift_abs_cuped, e.lift_abs_cuped), pg_temp.rel(c.lift_abs_cuped_low, e.lift_abs_cuped_low),
                pg_temp.rel(c.lift_abs_cuped_high, e.lift_abs_cuped_high), pg_temp.rel(c.lift_rel_cuped, e.lift_rel_cuped),
                pg_temp.rel(c.lift_rel_cuped_low, e.lift_rel_cuped_low), pg_temp.rel(c.lift_rel_cuped_high, e.lift_rel_cuped_high),
                pg_temp.rel(c.p_value_cuped, e.p_value_cuped)) < 1e-9 AS cuped_ok,
       round(c.variance_reduction::numeric, 3) AS variance_reduction
FROM cuped_results('gen', 'visits', 'covariate') c JOIN cuped_expected e USING (arm)
ORDER BY c.n DESC, c.arm;

-- health: counts per arm and the SRM test equal chisq_gof on the same counts
SELECT experiment, arms, units, total_units, expected_shares,
       srm_p_value = (SELECT p_value FROM chisq_gof('{3076,1470,1454}', '{2,1,1}')) AS srm_is_chisq_gof,
       srm_flag
FROM experiment_health WHERE experiment = 'gen';

-- a zero-variance metric: every unit has the same value -> NULL tests, documented
INSERT INTO outcomes (experiment, unit_id, metric, value) SELECT 'gen', unit_id, 'constant', 2 FROM ref_assign;
SELECT arm, n, mean, stddev, lift_abs, lift_abs_low, lift_rel, lift_rel_low, p_value, p_bh, test
FROM experiment_results WHERE experiment = 'gen' AND metric = 'constant' ORDER BY n DESC, arm;
-- and it does not change the other metrics' adjustments (NULL p-values are not counted)
SELECT count(*) AS unchanged FROM experiment_results r JOIN expected e USING (metric, arm)
WHERE r.experiment = 'gen' AND pg_temp.rel(r.p_bh, e.p_bh) < 1e-9;

-- assignment: deterministic from md5(salt:unit), weights respected, stable and recorded once
SELECT name, block_size FROM create_experiment('web', '{a,b,c}', '{0.5,0.3,0.2}', 'b', 'fixed-salt');
SELECT count(*) FILTER (WHERE assign('web', g) IS NOT NULL) AS assigned FROM generate_series(1, 20000) g;
SELECT arm, count(*), abs(count(*) / 20000.0 - CASE arm WHEN 'a' THEN 0.5 WHEN 'b' THEN 0.3 ELSE 0.2 END) < 0.015 AS share_ok
FROM assignments WHERE experiment = 'web' GROUP BY arm ORDER BY arm;
SELECT bool_and(assign('web', unit_id) = arm) AS stable, bool_and(arm_for('web', unit_id) = arm) AS pure_function,
       count(*) AS recorded_once
FROM assignments WHERE experiment = 'web';
-- the hash is md5 of 'salt:unit', first 52 bits, so it is reproducible outside the database
SELECT unit_hash('fixed-salt', 42) = ('x' || substr(md5('fixed-salt:42'), 1, 13))::bit(52)::bigint / 2.0 ^ 52 AS documented_hash,
       unit_hash('fixed-salt', 42) >= 0 AND unit_hash('fixed-salt', 42) < 1 AS in_unit_interval;
SELECT arm_for('web', 1), arm_for('web', 2), arm_for('web', 3), arm_for('web', 4), arm_for('web', 5);
SELECT arm_for('no such experiment', 1);

-- blocked randomisation within strata: every complete block holds the exact weights
SELECT name, block_size FROM create_experiment('strat', '{a,b}', '{0.75,0.25}');
SELECT count(assign('strat', g, CASE WHEN g % 3 = 0 THEN 'heavy' ELSE 'light' END)) FROM generate_series(1, 1001) g;
SELECT stratum, count(*) AS units, count(*) FILTER (WHERE arm = 'a') AS a, count(*) FILTER (WHERE arm = 'b') AS b,
       abs(count(*) FILTER (WHERE arm = 'a') - 0.75 * count(*)) <= 3 AS balanced
FROM assignments WHERE experiment = 'strat' GROUP BY stratum ORDER BY stratum;
SELECT stratum, next_position FROM experiment_strata WHERE experiment = 'strat' ORDER BY stratum;
-- within every full block of 4 consecutive units of a stratum: three a and one b
WITH ordered AS (
	SELECT stratum, arm, (row_number() OVER (PARTITION BY stratum ORDER BY unit_id) - 1) / 4 AS block
	FROM assignments WHERE experiment = 'strat')
SELECT bool_and(na = 3) AS every_block_exact
FROM (SELECT stratum, block, count(*) FILTER (WHERE arm = 'a') AS na, count(*) AS size
      FROM ordered GROUP BY 1, 2) b WHERE size = 4;
-- re-assigning in another stratum keeps the recorded arm
SELECT assign('strat', 3, 'light') = (SELECT arm FROM assignments WHERE experiment = 'strat' AND unit_id = 3) AS kept;
-- odd weights fall back to 1000-slot blocks by largest remainder
SELECT name, block_size FROM create_experiment('odd', '{x,y,z}', ARRAY[pi(), exp(1), sqrt(2)]);
SELECT arm, block_count FROM experiment_arms WHERE experiment = 'odd' ORDER BY position;
-- a zero weight closes an arm
SELECT block_size FROM create_experiment('closed', '{a,b,c}', '{1,0,1}');
SELECT count(*) FILTER (WHERE assign('closed', g) = 'b') AS in_closed_arm FROM generate_series(1, 500) g;

-- log_outcome, then the read-out of a fresh experiment; a unit in an arm of weight 0 trips the SRM flag
SELECT log_outcome('closed', 1, 'conversion'), log_outcome('closed', 2, 'spend', 12.5);
SELECT metric, value FROM outcomes WHERE experiment = 'closed' ORDER BY metric;
INSERT INTO assignments (experiment, unit_id, arm) VALUES ('closed', 100000, 'b');
SELECT units, srm_chi2, srm_p_value, srm_flag FROM experiment_health WHERE experiment = 'closed';

-- deleting an experiment deletes its arms, assignments and outcomes
SELECT count(*) > 0 AS had_rows FROM outcomes WHERE experiment = 'closed';
DELETE FROM experiments WHERE name = 'closed';
SELECT (SELECT count(*) FROM assignments WHERE experiment = 'closed') AS assignments,
       (SELECT count(*) FROM outcomes WHERE experiment = 'closed') AS outcomes;

-- catalog tables are kept by pg_dump
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) r(oid) JOIN pg_class c ON c.oid = r.oid
WHERE e.extname = 'pg_personalize' AND c.relname ~ '^(experiment|assignments$|outcomes$)' ORDER BY 1;
