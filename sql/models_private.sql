-- Differentially private models: the noise is the calibrated distribution (KS over 100,000
-- draws, variance to 1%), the accounting equals scipy's (test/reference/ref_dp.py), bounding
-- keeps the reference's items, dp_als at epsilon = infinity is als.
SET client_min_messages = warning;
-- tables of this test in their own schema; its models are dropped at the end
CREATE SCHEMA private_test;
SET search_path = private_test, personalize, public;
CREATE TEMP TABLE models_before AS SELECT DISTINCT name FROM personalize.models;

CREATE TEMP TABLE ref_summary (draws int, ks_statistic float8, ks_pvalue float8, variance float8, expected_variance float8);
CREATE TEMP TABLE ref_first (item_id bigint, noise float8);
CREATE TEMP TABLE ref_accounting (case_name text, field text, value float8);
\copy ref_accounting FROM 'test/reference/dp_accounting.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

-- 100,000 users with one item each: every true count is 1, every item in the catalog
CREATE TABLE one_each AS SELECT g::bigint AS user_id, g::bigint AS item_id, 1::real AS weight FROM generate_series(1, 100000) g;
CREATE TABLE one_each_catalog AS SELECT item_id FROM one_each;

-- Kolmogorov-Smirnov of the noise against a distribution function: D, and the
-- asymptotic p-value 2 Σ (-1)^(k-1) exp(-2 k² λ²), λ = (√n + 0.12 + 0.11/√n) D
CREATE FUNCTION ks(noise float8[], cdf text, OUT d float8, OUT p float8) LANGUAGE plpgsql AS $$
DECLARE n int := cardinality(noise); lambda float8;
BEGIN
  EXECUTE format($q$SELECT max(greatest(r::float8 / $2 - F, F - (r - 1)::float8 / $2))
                    FROM (SELECT row_number() OVER (ORDER BY x) AS r, %s AS F FROM unnest($1) x) s$q$, cdf)
    INTO d USING noise, n;
  lambda := (sqrt(n) + 0.12 + 0.11 / sqrt(n)) * d;
  SELECT 2 * sum((-1) ^ (k - 1) * exp(-least(2 * k * k * lambda * lambda, 700))) INTO p FROM generate_series(1, 100) k;
  p := least(greatest(p, 0), 1);
END $$;
CREATE FUNCTION laplace_cdf(x float8, b float8) RETURNS float8 IMMUTABLE LANGUAGE sql
  AS $$ SELECT CASE WHEN x < 0 THEN 0.5 * exp(x / b) ELSE 1 - 0.5 * exp(-x / b) END $$;

-- Laplace: epsilon 1, one contribution per user, so the scale is 1 and the variance 2
SELECT train('dp_lap', 'dp_popularity', 'one_each', '{"epsilon": 1, "contributions": 1, "catalog": "one_each_catalog", "seed": 2026}');
CREATE TEMP TABLE lap AS SELECT item_id, score::float8 - 1 AS noise FROM recommend('dp_lap', NULL, 100000);
\copy ref_summary FROM PROGRAM 'head -2 test/reference/dp_laplace.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
\copy ref_first FROM PROGRAM 'tail -n +3 test/reference/dp_laplace.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT count(*) AS draws, count(DISTINCT item_id) AS items FROM lap;
-- the draws are the reference's (the generator of src/random.h, replayed in Python)
SELECT count(*) AS first_draws_equal FROM ref_first r JOIN lap l USING (item_id) WHERE abs(l.noise - r.noise) < 1e-9;
-- KS against Laplace(0, 1): the same D as scipy's kstest, p > 0.01; and the test has power:
-- the same draws against Laplace(0, 1.05) and against the normal of equal variance are rejected
SELECT abs(k.d - r.ks_statistic) < 1e-6 AS ks_equals_scipy, k.p > 0.01 AS laplace_not_rejected, r.ks_pvalue > 0.01 AS scipy_not_rejected
FROM ks((SELECT array_agg(noise) FROM lap), 'laplace_cdf(x, 1)') k, ref_summary r;
SELECT (ks((SELECT array_agg(noise) FROM lap), 'laplace_cdf(x, 1.05)')).p < 0.01 AS wrong_scale_rejected,
       (ks((SELECT array_agg(noise) FROM lap), 'personalize.norm_cdf(x / sqrt(2))')).p < 0.01 AS normal_rejected;
-- variance equals the calibration 2 b² to 1%; and the reference's sample variance
SELECT abs(var_samp(noise) / 2 - 1) < 0.01 AS variance_within_1pct,
       abs(var_samp(noise) - (SELECT variance FROM ref_summary)) < 1e-6 AS variance_equals_reference
FROM lap;

-- Gaussian: sigma = 1 / sqrt(2 rho), rho from (epsilon 1, delta 1e-6) under zCDP
TRUNCATE ref_summary, ref_first;
\copy ref_summary FROM PROGRAM 'head -2 test/reference/dp_gaussian.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
\copy ref_first FROM PROGRAM 'tail -n +3 test/reference/dp_gaussian.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
SELECT train('dp_gau', 'dp_popularity', 'one_each',
             '{"epsilon": 1, "delta": 1e-6, "mechanism": "gaussian", "contributions": 1, "catalog": "one_each_catalog", "seed": 2026}');
CREATE TEMP TABLE gau AS SELECT item_id, score::float8 - 1 AS noise FROM recommend('dp_gau', NULL, 100000);
SELECT count(*) AS first_draws_equal FROM ref_first r JOIN gau g USING (item_id) WHERE abs(g.noise - r.noise) < 1e-6;
SELECT abs(k.d - r.ks_statistic) < 1e-6 AS ks_equals_scipy, k.p > 0.01 AS normal_not_rejected,
       abs((SELECT var_samp(noise) FROM gau) / r.expected_variance - 1) < 0.01 AS variance_within_1pct
FROM ks((SELECT array_agg(noise) FROM gau),
        format('personalize.norm_cdf(x / %s)', (SELECT sqrt(expected_variance) FROM ref_summary))) k, ref_summary r;
DROP TABLE one_each, one_each_catalog;

-- the accounting recorded with the model equals the reference's formulas
-- 3,000 users with 5 items each, a few items very popular (counts above the release threshold)
CREATE TABLE small AS
SELECT (g % 3000)::bigint AS user_id, floor(120 * power(((g * 7919) % 1009) / 1009.0, 3))::bigint AS item_id,
       (1 + g % 4)::real AS weight
FROM generate_series(1, 15000) g;
CREATE TABLE small_catalog AS SELECT DISTINCT item_id FROM small;
SELECT train('pop_lap', 'dp_popularity', 'small', '{"epsilon": 1, "contributions": 3}') AS v1,
       train('pop_gauss_cat', 'dp_popularity', 'small', '{"epsilon": 1, "contributions": 3, "mechanism": "gaussian", "catalog": "small_catalog"}') AS v2,
       train('pop_gauss', 'dp_popularity', 'small', '{"epsilon": 1, "contributions": 3, "mechanism": "gaussian"}') AS v3,
       train('als_dp', 'dp_als', 'small', '{"epsilon": 4, "delta": 1e-5, "factors": 8, "iterations": 5, "alpha": 2,
                                             "contributions": 10, "clip": 0.5, "max_weight": 2}') AS v4,
       train('als_dp_full', 'dp_als', 'small', '{"epsilon": 4, "delta": 1e-5, "factors": 8, "iterations": 5, "alpha": 2,
                                             "contributions": 10, "clip": 0.5, "max_weight": 2, "item_solve": "full"}') AS v5;
SELECT a.case_name, a.field, abs((m.privacy ->> a.field)::float8 / a.value - 1) < 1e-12 AS equals_reference
FROM ref_accounting a JOIN models m ON m.name = CASE a.case_name WHEN 'pop_laplace_threshold' THEN 'pop_lap'
  WHEN 'pop_gaussian_catalog' THEN 'pop_gauss_cat' WHEN 'pop_gaussian_threshold' THEN 'pop_gauss'
  WHEN 'als_full' THEN 'als_dp_full' ELSE 'als_dp' END
ORDER BY 1, 2;
SELECT name, algorithm, features, privacy ->> 'mechanism' AS mechanism, privacy ->> 'released_items' AS released,
       model_info(model_export(name, version)) ->> 'algorithm' AS info_algorithm
FROM models WHERE name IN ('pop_lap', 'pop_gauss_cat', 'als_dp') ORDER BY name;
-- without a catalog only items whose noisy count passes the threshold are released
SELECT bool_and(score >= (SELECT (privacy ->> 'threshold')::float8 FROM models WHERE name = 'pop_lap')) AS released_pass_threshold,
       count(*) < (SELECT count(DISTINCT item_id) FROM small) AS fewer_than_observed
FROM recommend('pop_lap', NULL, (SELECT items::int FROM models WHERE name = 'pop_lap'));
-- with a catalog every catalog item is released
SELECT items = (SELECT count(*) FROM small_catalog) AS catalog_released FROM models WHERE name = 'pop_gauss_cat';

-- epsilon = infinity: no bounding and no noise; dp_popularity counts distinct users
SELECT train('pop_exact', 'dp_popularity', 'small', '{"epsilon": "infinity"}');
SELECT bool_and(r.score = c.users) AS counts_distinct_users, count(*) AS items
FROM recommend('pop_exact', NULL, (SELECT count(DISTINCT item_id)::int FROM small)) r
JOIN (SELECT item_id, count(DISTINCT user_id) AS users FROM small GROUP BY 1) c USING (item_id);

-- contribution bounding: user 77 with items 1..20 keeps 5, the reference's choice for seed 7
CREATE TEMP TABLE ref_bounding (item_id bigint);
\copy ref_bounding FROM 'test/reference/dp_bounding.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)
CREATE TABLE twenty AS SELECT 77::bigint AS user_id, g::bigint AS item_id, 1::real AS weight FROM generate_series(1, 20) g;
CREATE TABLE twenty_catalog AS SELECT item_id FROM twenty;
-- epsilon 1000: the noise (scale 0.005) rounds away, so each item's score is 0 or 1
SELECT train('bounded', 'dp_popularity', 'twenty', '{"epsilon": 1000, "contributions": 5, "seed": 7, "catalog": "twenty_catalog"}');
SELECT array_agg(item_id ORDER BY item_id) = (SELECT array_agg(item_id ORDER BY item_id) FROM ref_bounding) AS kept_reference_items,
       count(*) AS kept
FROM recommend('bounded', NULL, 20) WHERE round(score) = 1;

-- dp_als at epsilon = infinity is als: the same factors
SELECT train('als_plain', 'als', 'small', '{"factors": 8, "iterations": 6, "seed": 5}') AS a,
       train('als_inf', 'dp_als', 'small', '{"factors": 8, "iterations": 6, "seed": 5, "epsilon": "infinity"}') AS b;
SELECT count(*) AS items, max(p.embedding <-> q.embedding) < 1e-6 AS item_factors_equal
FROM item_embeddings('als_plain') p JOIN item_embeddings('als_inf') q USING (id);
SELECT count(*) AS users, max(p.embedding <-> q.embedding) < 1e-6 AS user_factors_equal
FROM user_embeddings('als_plain') p JOIN user_embeddings('als_inf') q USING (id);
SELECT privacy FROM models WHERE name = 'als_inf';

-- finite epsilon: noise changes the model; a seed fixes it whatever the threads
SELECT train('als_t1', 'dp_als', 'small', '{"factors": 8, "iterations": 3, "epsilon": 2, "seed": 9, "threads": 1}') AS t1,
       train('als_t2', 'dp_als', 'small', '{"factors": 8, "iterations": 3, "epsilon": 2, "seed": 9, "threads": 2}') AS t2,
       train('als_s10', 'dp_als', 'small', '{"factors": 8, "iterations": 3, "epsilon": 2, "seed": 10, "threads": 2}') AS s10,
       train('als_exact', 'dp_als', 'small', '{"factors": 8, "iterations": 3, "epsilon": "infinity", "seed": 9}') AS exact;
SELECT max(p.embedding <-> q.embedding) = 0 AS same_seed_same_factors,
       max(p.embedding <-> r.embedding) > 0 AS other_seed_other_factors,
       max(p.embedding <-> x.embedding) > 0 AS noisy_differs_from_exact
FROM item_embeddings('als_t1') p JOIN item_embeddings('als_t2') q USING (id) JOIN item_embeddings('als_s10') r USING (id)
JOIN item_embeddings('als_exact') x USING (id);
-- served like ALS (fold-in included)
SELECT count(*) AS recommended FROM recommend('als_dp', 10, 5);
SELECT count(*) AS folded_in FROM recommend_for('als_dp', ARRAY[1, 2, 3]::bigint[]);

SELECT count(personalize.drop_model(name)) > 0 AS dropped FROM (SELECT DISTINCT name FROM personalize.models EXCEPT SELECT name FROM models_before) m;
DROP SCHEMA private_test CASCADE;
