-- classification: AUC, log loss, Brier score, calibration (ECE, reliability bins)
-- and threshold metrics for scored predictions, as one parallel-safe aggregate.

CREATE FUNCTION personalize.classification_accum(bytea, boolean, double precision) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.classification_accum(bytea, boolean, double precision, double precision) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.classification_accum(bytea, boolean, double precision, double precision, integer, text) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION personalize.classification_combine(bytea, bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE TYPE personalize.classification_report AS (
	n bigint, positives bigint, auc double precision, log_loss double precision,
	brier double precision, ece double precision, accuracy double precision,
	"precision" double precision, recall double precision, f1 double precision);
CREATE FUNCTION personalize.classification_final(bytea) RETURNS personalize.classification_report
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION personalize.classification_sample_final(bytea) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The state is bytea (a concrete type: Citus and parallel query ship partial
-- states); while aggregating it is an expanded object updated in place.
CREATE AGGREGATE personalize.classification_metrics(label boolean, score double precision) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
CREATE AGGREGATE personalize.classification_metrics(label boolean, score double precision,
                                                    threshold double precision) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);
CREATE AGGREGATE personalize.classification_metrics(label boolean, score double precision,
                                                    threshold double precision, bins integer, strategy text) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_final, FINALFUNC_MODIFY = READ_WRITE,
	PARALLEL = SAFE
);

-- The collected scores themselves, for reliability_bins.
CREATE AGGREGATE personalize.score_sample(label boolean, score double precision) (
	SFUNC = personalize.classification_accum, STYPE = bytea,
	COMBINEFUNC = personalize.classification_combine,
	FINALFUNC = personalize.classification_sample_final,
	PARALLEL = SAFE
);
CREATE FUNCTION personalize.reliability_bins(sample bytea, bins integer DEFAULT 10, strategy text DEFAULT 'uniform')
RETURNS TABLE (bin integer, lower_edge double precision, upper_edge double precision, n bigint,
               mean_score double precision, fraction_positive double precision)
	AS 'MODULE_PATHNAME', 'reliability_bins' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION personalize.reliability_bins(bytea, integer, text) IS
	'calibration curve of a score_sample: per bin, mean score and fraction of positives';
