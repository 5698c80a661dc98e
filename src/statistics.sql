-- statistics: distribution functions, tests, multiple-testing corrections, power,
-- and the moment aggregates behind the experiment read-outs.

-- distribution functions (IMMUTABLE: pure functions of their arguments)

CREATE FUNCTION personalize.norm_cdf(x double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_cdf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm_sf(x double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_sf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm_ppf(p double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_ppf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.norm_isf(q double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_norm_isf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_cdf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_cdf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_sf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_sf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_ppf(p double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_ppf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.t_isf(q double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_t_isf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_cdf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_cdf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_sf(x double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_sf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_ppf(p double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_ppf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chi2_isf(q double precision, df double precision) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_chi2_isf_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- tests from summary numbers

CREATE FUNCTION personalize.proportions_ztest(count1 double precision, nobs1 double precision,
		count2 double precision, nobs2 double precision,
		OUT statistic double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_proportions_ztest' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.welch_ttest(mean1 double precision, stddev1 double precision, n1 double precision,
		mean2 double precision, stddev2 double precision, n2 double precision,
		OUT statistic double precision, OUT df double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_welch_ttest' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.chisq_gof(observed double precision[], expected double precision[] DEFAULT NULL,
		OUT statistic double precision, OUT df double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_chisq_gof' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION personalize.p_adjust(p double precision[], method text) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_p_adjust' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION personalize.sample_size(baseline_rate double precision, relative_mde double precision,
		alpha double precision DEFAULT 0.05, power double precision DEFAULT 0.8) RETURNS bigint
	AS 'MODULE_PATHNAME', 'pz_sample_size' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.power(baseline_rate double precision, relative_mde double precision,
		n_per_arm double precision, alpha double precision DEFAULT 0.05) RETURNS double precision
	AS 'MODULE_PATHNAME', 'pz_power' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- moment aggregates with concrete float8[] states (Citus can push them down)

CREATE FUNCTION personalize.moments_accum(double precision[], double precision) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.moments_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.moments_final(double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE personalize.moments(double precision) (
	SFUNC = personalize.moments_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.moments_final,
	COMBINEFUNC = personalize.moments_combine,
	INITCOND = '{0,0,0,0,0}',
	PARALLEL = SAFE
);
CREATE FUNCTION personalize.comoments_accum(double precision[], double precision, double precision)
	RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_comoments_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.comoments_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_comoments_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.comoments_final(double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_comoments_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE AGGREGATE personalize.comoments(y double precision, x double precision) (
	SFUNC = personalize.comoments_accum,
	STYPE = double precision[],
	FINALFUNC = personalize.comoments_final,
	COMBINEFUNC = personalize.comoments_combine,
	INITCOND = '{0,0,0,0,0,0,0,0,0}',
	PARALLEL = SAFE
);
CREATE FUNCTION personalize.moments_pad(state double precision[], n double precision) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'pz_moments_pad' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION personalize.ab_test(control double precision[], treatment double precision[],
		proportion boolean, confidence double precision DEFAULT 0.95,
		OUT lift_abs double precision, OUT lift_abs_low double precision, OUT lift_abs_high double precision,
		OUT lift_rel double precision, OUT lift_rel_low double precision, OUT lift_rel_high double precision,
		OUT statistic double precision, OUT df double precision, OUT p_value double precision)
	AS 'MODULE_PATHNAME', 'pz_ab_test' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
