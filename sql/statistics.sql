-- Distribution functions, tests, p-value adjustments, power and moment aggregates
-- against scipy/statsmodels/mpmath values from test/reference/ref_statistics.py.
SET search_path = personalize, public;
SET extra_float_digits = 0;

CREATE TEMP TABLE dist (func text, x float8, df float8, scipy float8, exact float8);
\copy dist FROM 'test/reference/statistics_distributions.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

CREATE TEMP TABLE got AS
SELECT d.*, CASE func
	WHEN 'norm_cdf' THEN norm_cdf(x) WHEN 'norm_sf' THEN norm_sf(x)
	WHEN 'norm_ppf' THEN norm_ppf(x) WHEN 'norm_isf' THEN norm_isf(x)
	WHEN 't_cdf' THEN t_cdf(x, df) WHEN 't_sf' THEN t_sf(x, df)
	WHEN 't_ppf' THEN t_ppf(x, df) WHEN 't_isf' THEN t_isf(x, df)
	WHEN 'chi2_cdf' THEN chi2_cdf(x, df) WHEN 'chi2_sf' THEN chi2_sf(x, df)
	WHEN 'chi2_ppf' THEN chi2_ppf(x, df) WHEN 'chi2_isf' THEN chi2_isf(x, df) END AS ours
FROM dist d;

CREATE FUNCTION pg_temp.rel(a float8, b float8) RETURNS float8 LANGUAGE sql IMMUTABLE
	RETURN CASE WHEN a = b THEN 0 ELSE abs(a - b) / greatest(abs(b), 1e-307) END;

-- every function within 1e-12 relative of the 40-digit value, over the whole grid;
-- and of scipy wherever scipy itself is within 1e-13 of it
SELECT func, count(*) AS points,
       max(pg_temp.rel(ours, exact)) < 1e-12 AS exact_ok,
       count(*) FILTER (WHERE pg_temp.rel(scipy, exact) <= 1e-13) AS scipy_accurate_points,
       coalesce(max(pg_temp.rel(ours, scipy)) FILTER (WHERE pg_temp.rel(scipy, exact) <= 1e-13), 0) < 1e-12 AS scipy_ok,
       min(CASE WHEN func LIKE '%pf' OR func LIKE '%isf' THEN x ELSE exact END)
           FILTER (WHERE CASE WHEN func LIKE '%pf' OR func LIKE '%isf' THEN x ELSE exact END > 0) < 1e-99
           AS reaches_far_tail
FROM got GROUP BY func ORDER BY func;
-- (no point off by 1e-12 or more)
SELECT func, x, df, ours, exact FROM got WHERE pg_temp.rel(ours, exact) >= 1e-12;

-- edges: infinities, exact points, NaN passes through
SELECT norm_cdf('-Infinity'), norm_cdf('Infinity'), norm_ppf(0), norm_ppf(1), norm_ppf(0.5),
       t_sf('Infinity', 3), t_cdf(0, 7), t_isf(0.5, 3), t_sf(1.5, 'Infinity') = norm_sf(1.5) AS t_infinite_df,
       chi2_sf(0, 2), chi2_cdf('Infinity', 2), chi2_ppf(0, 4), chi2_isf(1, 4), chi2_ppf(1, 4);
SELECT norm_cdf('NaN'), t_sf('NaN', 3), chi2_sf('NaN', 3), norm_ppf('NaN');
SELECT norm_ppf(1.5);
SELECT t_sf(1, 0);
SELECT chi2_sf(1, 'Infinity');
-- exact closed forms: Cauchy (df = 1) and chi-square with 2 df
SELECT abs(t_sf(3, 1) - (0.5 - atan(3) / pi())) < 1e-16 AS cauchy,
       abs(chi2_sf(5, 2) / exp(-2.5) - 1) < 1e-15 AS chi2_2df,
       abs(t_isf(0.025, 1) - tan(pi() * 0.475)) / tan(pi() * 0.475) < 1e-13 AS cauchy_quantile;

-- tests from summary numbers, p-value adjustments, power and sample size
CREATE TEMP TABLE ref (kind text, id int, args text, expected float8[]);
\copy ref FROM 'test/reference/statistics_tests.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER)

CREATE TEMP TABLE checks AS
SELECT kind, id, expected, CASE kind
	WHEN 'ztest' THEN (SELECT ARRAY[statistic, p_value] FROM proportions_ztest(a[1], a[2], a[3], a[4]))
	WHEN 'welch' THEN (SELECT ARRAY[statistic, df, p_value] FROM welch_ttest(a[1], a[2], a[3], a[4], a[5], a[6]))
	WHEN 'chisq' THEN (SELECT ARRAY[statistic, df, p_value]
	                   FROM chisq_gof(split_part(args, '|', 1)::float8[], split_part(args, '|', 2)::float8[]))
	WHEN 'sample_size' THEN ARRAY[sample_size(a[1], a[2], a[3], a[4])::float8]
	WHEN 'power' THEN ARRAY[power(a[1], a[2], a[3], a[4])]
	ELSE p_adjust(a, kind) END AS ours
FROM (SELECT r.*, CASE WHEN args LIKE '%|%' THEN NULL ELSE args::float8[] END AS a FROM ref r) r;

SELECT kind, count(*) AS cases,
       bool_and(cardinality(ours) = cardinality(expected) OR kind = 'sample_size') AS same_length,
       max((SELECT max(pg_temp.rel(o, e)) FROM unnest(ours, expected) u(o, e) WHERE o IS NOT NULL AND e IS NOT NULL))
           < 1e-9 AS within_1e9
FROM checks GROUP BY kind ORDER BY kind;
-- sample size is the ceiling of statsmodels' solve_power
SELECT bool_and(ours[1] = expected[1]) AS sample_size_equal FROM checks WHERE kind = 'sample_size';

SELECT sample_size(0.05, 0.1), sample_size(0.05, 0.1, 0.05, 0.9), power(0.05, 0.1, 31235) > 0.8 AS enough,
       power(0.05, 0.1, 31200) < 0.8 AS not_enough;

-- p_adjust: NULLs are skipped (and counted out of m), empty arrays, methods
SELECT p_adjust('{0.01,NULL,0.02,0.03}', 'bonferroni'), p_adjust('{0.01,NULL,0.02,0.03}', 'holm'),
       p_adjust('{0.01,NULL,0.02,0.03}', 'BH'), p_adjust('{}', 'bh'), p_adjust('{0.5}', 'fdr_bh'),
       p_adjust('{NULL}', 'holm');
SELECT p_adjust('{0.1}', 'hochberg');
SELECT p_adjust('{1.5}', 'bh');

-- tests: zero variance gives NULL statistics, not an error
SELECT * FROM proportions_ztest(0, 100, 0, 200);
SELECT * FROM welch_ttest(1, 0, 10, 1, 0, 20);
SELECT * FROM welch_ttest(1, 0, 10, 2, 0, 20);
SELECT * FROM chisq_gof('{10,20,30}');

-- moment aggregates: state layout, combine equals one pass, padding with zeros
SELECT moments(v) FROM (VALUES (1.0::float8), (0), (1), (1)) t(v);
SELECT moments(v) FROM (VALUES (1.5::float8), (2.5)) t(v);
SELECT moments(v) FROM (SELECT NULL::float8 WHERE false) t(v);
-- (not a temporary table: those are never scanned in parallel)
CREATE TABLE moments_data AS SELECT g, 1e6 + sin(g) AS x FROM generate_series(1, 100000) g;
ANALYZE moments_data;
SELECT pg_temp.rel(s[3], (SELECT var_samp(x) * 99999 FROM moments_data)) < 1e-9 AS centred_sum_of_squares,
       pg_temp.rel(s[2], (SELECT sum(x::numeric) FROM moments_data)::float8) < 1e-15 AS compensated_sum
FROM (SELECT moments(x) s FROM moments_data) q;
-- a parallel plan combines partial states: same result as one pass
CREATE TEMP TABLE serial AS SELECT moments(x) AS s, comoments(x, g) AS c FROM moments_data;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT moments(x), comoments(x, g) FROM moments_data;
SELECT (SELECT bool_and(pg_temp.rel(a, b) < 1e-12) FROM unnest(p.s, serial.s) u(a, b)) AS moments_combine_ok,
       (SELECT bool_and(pg_temp.rel(a, b) < 1e-12) FROM unnest(p.c, serial.c) u(a, b)) AS comoments_combine_ok
FROM (SELECT moments(x) AS s, comoments(x, g) AS c FROM moments_data) p, serial;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;
SELECT moments_final(moments_combine(moments_accum('{0,0,0,0,0}', 1), moments_accum(moments_accum('{0,0,0,0,0}', 2), 4)));
SELECT moments_accum('{0,0,0}', 1);
DROP TABLE moments_data;
SELECT moments_pad('{2,2,0,0}', 5), moments_pad(NULL, 3), moments_pad('{0,0,0,0}', 0);
SELECT moments_pad('{2,2,0,0}', 1);
SELECT comoments(y, x) FROM (VALUES (1.0::float8, 2.0::float8), (2, 4), (3, 7)) t(y, x);
SELECT moments(v) FROM (VALUES ('NaN'::float8)) t(v);

-- ab_test from states: a proportion and a mean, and degenerate arms
SELECT * FROM ab_test('{1000,100,90,0}', '{1000,120,105.6,0}', true);
SELECT * FROM ab_test('{100,500,900,100}', '{100,550,1000,100}', false, 0.9);
SELECT * FROM ab_test('{0,0,0,0}', '{10,5,2.5,0}', true);
SELECT * FROM ab_test('{10,0,0,0}', '{10,0,0,0}', true);
SELECT * FROM ab_test('{10,0,0,0}', '{10,3,2.1,0}', true);
SELECT * FROM ab_test('{10,5,0,10}', '{10,5,0,10}', false);
SELECT * FROM ab_test('{10,5,2,3}', '{10,5,2,0}', true);
SELECT * FROM ab_test('{10,5,2,0}', '{10,5,2,0}', true, 1);
