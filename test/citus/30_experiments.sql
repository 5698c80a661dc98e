-- Citus suite, experiments and metrics: the read-outs over distributed
-- assignments and outcomes (co-located by unit_id) and over distributed metric
-- inputs agree with the statsmodels / numpy / scikit-learn references that the
-- single-node tests use (test/reference/, same tolerance: 1e-9 relative), and
-- the per-arm aggregation runs on the workers. test/citus/same_figures.sh
-- compares distributed and local figures with each other at 1e-12.
SET client_min_messages = warning;
SELECT plan(15);

SET client_min_messages = error;
CREATE FUNCTION pg_temp.rel(a float8, b float8) RETURNS float8 LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN a = b OR (a IS NULL AND b IS NULL) THEN 0 ELSE abs(a - b) / greatest(abs(b), 1e-307) END;
CREATE FUNCTION pg_temp.q(query text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE v numeric;
BEGIN
	EXECUTE query INTO v;
	RETURN v;
END $$;
SET client_min_messages = warning;

SELECT is(personalize.citus_table_type('personalize.assignments'), 'distributed', 'assignments are distributed');

SELECT count(*) FROM personalize.create_experiment('gen', '{control,pop,hybrid}', '{2,1,1}');
CREATE TEMP TABLE ref_assign (unit_id bigint, arm text, segment text);
\copy ref_assign FROM 'test/reference/experiments_assignments.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TEMP TABLE ref_outcomes (unit_id bigint, metric text, value float8);
\copy ref_outcomes FROM 'test/reference/experiments_outcomes.tsv' WITH (FORMAT csv, DELIMITER E'\t')
CREATE TABLE public.covariate (unit_id bigint, pre float8);
\copy public.covariate FROM 'test/reference/experiments_covariate.tsv' WITH (FORMAT csv, DELIMITER E'\t')
SELECT create_distributed_table('public.covariate', 'unit_id', colocate_with => 'personalize.assignments');
CREATE TABLE public.segments (unit_id bigint, channel text);
\copy public.segments FROM 'test/reference/experiments_segments.tsv' WITH (FORMAT csv, DELIMITER E'\t')
SELECT create_distributed_table('public.segments', 'unit_id', colocate_with => 'personalize.assignments');
INSERT INTO personalize.assignments (experiment, unit_id, arm) SELECT 'gen', unit_id, arm FROM ref_assign;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value) SELECT 'gen', unit_id, metric, value FROM ref_outcomes;
INSERT INTO personalize.outcomes (experiment, unit_id, metric, value) VALUES ('gen', -1, 'revenue', 1e9);
SELECT is((SELECT count(DISTINCT p.groupid) FROM pg_dist_placement p JOIN pg_dist_shard s USING (shardid)
           WHERE s.logicalrelid = 'personalize.outcomes'::regclass), 2::bigint, 'the outcomes are spread over both workers');

CREATE TEMP TABLE expected (metric text, arm text, test text, n bigint, mean float8, stddev float8,
	lift_abs float8, lift_abs_low float8, lift_abs_high float8, lift_rel float8, lift_rel_low float8,
	lift_rel_high float8, p_value float8, p_bonferroni float8, p_bh float8, p_holm float8);
\copy expected FROM 'test/reference/experiments_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE results AS SELECT * FROM personalize.experiment_results WHERE experiment = 'gen';
SELECT is((SELECT count(*) FROM results r JOIN expected e USING (metric, arm)), (SELECT count(*) FROM expected),
	'experiment_results: a row for every metric and arm of the reference');
SELECT is((SELECT count(*) FROM results r JOIN expected e USING (metric, arm)
           WHERE r.n <> e.n OR r.test <> e.test
              OR greatest(pg_temp.rel(r.mean, e.mean), pg_temp.rel(r.stddev, e.stddev),
                          pg_temp.rel(r.lift_abs, e.lift_abs), pg_temp.rel(r.lift_abs_low, e.lift_abs_low),
                          pg_temp.rel(r.lift_abs_high, e.lift_abs_high), pg_temp.rel(r.lift_rel, e.lift_rel),
                          pg_temp.rel(r.lift_rel_low, e.lift_rel_low), pg_temp.rel(r.lift_rel_high, e.lift_rel_high),
                          pg_temp.rel(r.p_value, e.p_value), pg_temp.rel(r.p_bonferroni, e.p_bonferroni),
                          pg_temp.rel(r.p_bh, e.p_bh), pg_temp.rel(r.p_holm, e.p_holm)) >= 1e-9), 0::bigint,
	'experiment_results on distributed tables equal statsmodels to 1e-9 (as on local tables)');

CREATE TEMP TABLE plan_lines (line text);
DO $$
DECLARE l text;
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) SELECT * FROM personalize.experiment_results' LOOP
		INSERT INTO plan_lines VALUES (l);
	END LOOP;
END $$;
SELECT ok(EXISTS (SELECT FROM plan_lines WHERE line ~ 'Group Key: a.experiment, o.metric, a.arm$')
          AND EXISTS (SELECT FROM plan_lines WHERE line ~ 'Seq Scan on outcomes_[0-9]+')
          AND EXISTS (SELECT FROM plan_lines WHERE line ~ 'Task Count: 8'),
	'the plan aggregates per arm inside each shard task (on the workers)');

SELECT is((SELECT units FROM personalize.experiment_health WHERE experiment = 'gen'), '{3076,1470,1454}'::bigint[],
	'experiment_health counts units per arm');
SELECT is((SELECT srm_p_value FROM personalize.experiment_health WHERE experiment = 'gen'),
	(SELECT p_value FROM personalize.chisq_gof('{3076,1470,1454}', '{2,1,1}')), 'and its SRM test is chisq_gof on them');

CREATE TEMP TABLE seg_expected (metric text, segment text, arm text, n bigint, mean float8, stddev float8,
	lift_abs float8, lift_abs_low float8, lift_abs_high float8, lift_rel float8, lift_rel_low float8,
	lift_rel_high float8, p_value float8, p_bh float8);
\copy seg_expected FROM 'test/reference/experiments_segments_expected.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER, NULL '')
CREATE TEMP TABLE seg AS
SELECT m.metric, s.* FROM (VALUES ('conversion'), ('revenue')) m(metric),
LATERAL personalize.segment_effects('gen', m.metric, 'SELECT unit_id, channel FROM public.segments') s;
SELECT is((SELECT count(*) FROM seg s JOIN seg_expected e ON e.metric = s.metric AND e.segment IS NOT DISTINCT FROM s.segment AND e.arm = s.arm
           WHERE s.n = e.n AND greatest(pg_temp.rel(s.mean, e.mean), pg_temp.rel(s.stddev, e.stddev),
                    pg_temp.rel(s.lift_abs, e.lift_abs), pg_temp.rel(s.lift_abs_low, e.lift_abs_low),
                    pg_temp.rel(s.lift_abs_high, e.lift_abs_high), pg_temp.rel(s.lift_rel, e.lift_rel),
                    pg_temp.rel(s.lift_rel_low, e.lift_rel_low), pg_temp.rel(s.lift_rel_high, e.lift_rel_high),
                    pg_temp.rel(s.p_value, e.p_value), pg_temp.rel(s.p_bh, e.p_bh)) < 1e-9),
	(SELECT count(*) FROM seg_expected), 'segment_effects over a distributed segment table equal the reference');

-- cuped_results uses GROUPING SETS, which Citus 13.2 refuses on distributed tables (doc/scale-out.md)
SELECT throws_ok($$SELECT * FROM personalize.cuped_results('gen', 'visits', 'public.covariate')$$, '0A000',
	'could not run distributed query with GROUPING SETS, CUBE, or ROLLUP',
	'cuped_results on distributed assignments: Citus''s error, documented as a limit');

-- assignment and outcomes through the functions: routed to the unit's shard
SELECT count(*) FROM personalize.create_experiment('web', '{a,b,c}', '{0.5,0.3,0.2}', 'b', 'fixed-salt');
SELECT is(pg_temp.q($q$SELECT count(*) FROM generate_series(1, 2000) g WHERE personalize.assign('web', g) IS NOT NULL$q$),
	2000::numeric, 'assign() records units in the distributed table');
-- (arm_for reads the reference tables: it runs on the coordinator, not inside a shard query)
CREATE TEMP TABLE web AS SELECT unit_id, arm FROM personalize.assignments WHERE experiment = 'web';
SELECT is((SELECT count(*) FROM web WHERE arm = personalize.arm_for('web', unit_id)), 2000::bigint,
	'each unit''s arm is the pure function of salt and unit');
SELECT is(pg_temp.q($q$SELECT count(*) FROM generate_series(1, 2000) g WHERE personalize.assign('web', g) = personalize.arm_for('web', g)$q$),
	2000::numeric, 'assigning again returns the recorded arm');

-- ranking metrics with distributed truth and recommendations (co-located by user)
CREATE TABLE public.eval_truth (user_id bigint, item_id bigint);
\copy public.eval_truth FROM 'test/reference/evaluation_truth.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE public.eval_recs (user_id bigint, item_id bigint, rank int);
\copy public.eval_recs FROM 'test/reference/evaluation_recs.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT create_distributed_table('public.eval_truth', 'user_id', shard_count => 8);
SELECT create_distributed_table('public.eval_recs', 'user_id', colocate_with => 'public.eval_truth');
CREATE TEMP TABLE rank_expected (k int, users bigint, precision_at_k float8, recall_at_k float8, ndcg_at_k float8,
  map_at_k float8, hit_rate_at_k float8, mrr_at_k float8, coverage_at_k float8, coverage_of_catalog_250 float8);
\copy rank_expected FROM 'test/reference/evaluation_ranking.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT is((SELECT count(*) FROM rank_expected e, LATERAL personalize.ranking_metrics('public.eval_recs', 'public.eval_truth', e.k) m
           WHERE m.users = e.users AND greatest(pg_temp.rel(m.precision_at_k, e.precision_at_k), pg_temp.rel(m.recall_at_k, e.recall_at_k),
                 pg_temp.rel(m.ndcg_at_k, e.ndcg_at_k), pg_temp.rel(m.map_at_k, e.map_at_k), pg_temp.rel(m.hit_rate_at_k, e.hit_rate_at_k),
                 pg_temp.rel(m.mrr_at_k, e.mrr_at_k), pg_temp.rel(m.coverage_at_k, e.coverage_at_k)) < 1e-9),
	(SELECT count(*) FROM rank_expected), 'ranking_metrics over distributed tables equal numpy at every k');

-- fairness by group over a distributed table of predictions
CREATE TABLE public.fdata (id int PRIMARY KEY, grp text, label boolean, score float8, day int);
\copy public.fdata FROM 'test/reference/fairness_data.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT create_distributed_table('public.fdata', 'id', shard_count => 8);
CREATE TEMP TABLE ref_groups (subset text, group_value text, n bigint, base_rate float8, selection_rate float8,
  tpr float8, fpr float8, "precision" float8);
\copy ref_groups FROM 'test/reference/fairness_groups.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TEMP TABLE fair AS SELECT * FROM personalize.fairness_by_group('public.fdata', 'grp', 'label', 'score >= 0.5');
SELECT is((SELECT count(*) FROM fair o JOIN ref_groups r ON r.subset = 'all'
             AND coalesce(o.group_value, '(null)') = coalesce(r.group_value, '(null)')
           WHERE o.n = r.n AND coalesce(abs(o.base_rate - r.base_rate), 0) <= 1e-9
             AND coalesce(abs(o.selection_rate - r.selection_rate), 0) <= 1e-9
             AND (o.tpr IS NULL) = (r.tpr IS NULL) AND coalesce(abs(o.tpr - r.tpr), 0) <= 1e-9
             AND (o.fpr IS NULL) = (r.fpr IS NULL) AND coalesce(abs(o.fpr - r.fpr), 0) <= 1e-9
             AND (o."precision" IS NULL) = (r."precision" IS NULL) AND coalesce(abs(o."precision" - r."precision"), 0) <= 1e-9),
	(SELECT count(*) FROM ref_groups WHERE subset = 'all'), 'fairness_by_group over a distributed table equals scikit-learn');
SELECT is((SELECT count(*) FROM fair), (SELECT count(*) FROM ref_groups WHERE subset = 'all'), 'and has no extra group');

DELETE FROM personalize.experiments;
DROP TABLE public.covariate, public.segments, public.eval_truth, public.eval_recs, public.fdata;
SELECT * FROM finish();
