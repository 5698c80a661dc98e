-- drift: recent interactions against what the active model was trained on
-- (PSI and KS of item popularity, unknown users and items, volume, logged
-- scores), and the two histogram statistics on their own.

CREATE FUNCTION personalize.psi(expected double precision[], actual double precision[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'population_stability_index' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.psi(double precision[], double precision[]) IS
	'population stability index of two histograms over the same bins (shares floored at 1e-4)';

CREATE FUNCTION personalize.ks_statistic(expected double precision[], actual double precision[]) RETURNS double precision
	AS 'MODULE_PATHNAME', 'ks_statistic' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION personalize.ks_statistic(double precision[], double precision[]) IS
	'Kolmogorov-Smirnov statistic of two histograms over the same ordered bins';

-- Reads the source as the caller (row-level security applies) and the active
-- version of the model; VOLATILE because it runs the caller's SQL.
CREATE FUNCTION personalize.model_drift(model_name text, source text, recent_window interval, options jsonb DEFAULT '{}')
RETURNS TABLE (metric text, value double precision, threshold double precision, drifted boolean, detail text)
	AS 'MODULE_PATHNAME', 'model_drift' LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE ROWS 6;
COMMENT ON FUNCTION personalize.model_drift(text, text, interval, jsonb) IS
	'drift of recent interactions from the active model''s training data: PSI, KS, unknown users and items, volume, scores';
