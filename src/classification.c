/*
 * classification.c — classification and calibration metrics for scored
 * predictions: AUC (exact, ties as sklearn's roc_auc_score), log loss, Brier
 * score, expected calibration error, and accuracy/precision/recall/F1 at a
 * threshold. See doc/evaluation.md for the formulas.
 *
 * Exact AUC with ties needs every score, so the aggregate state keeps the
 * scores of positives and of negatives. Its type is bytea, a concrete type:
 * parallel query and Citus can ship partial states. While aggregating, the
 * state is an expanded object (utils/expandeddatum.h) that grows in place,
 * so each row appends 8 bytes instead of copying the state.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/expandeddatum.h"
#include "utils/float.h"
#include "utils/memutils.h"

#define SAMPLE_MAGIC 0x50435331	/* "PCS1" */
#define DEFAULT_BINS 10
#define MAX_BINS 10000

typedef enum
{
	BINS_UNIFORM,
	BINS_QUANTILE
} BinStrategy;

typedef struct SampleOptions
{
	double		threshold;
	int32		bins;
	int32		strategy;
} SampleOptions;

/* flat (bytea) form */
typedef struct FlatSample
{
	int32		vl_len_;
	int32		magic;
	SampleOptions options;
	int64		n_positive;
	int64		n_negative;
	double		scores[FLEXIBLE_ARRAY_MEMBER];	/* positives, then negatives */
} FlatSample;

/* expanded (in-memory) form */
typedef struct Sample
{
	ExpandedObjectHeader hdr;
	SampleOptions options;
	int64		n[2];			/* [0] negatives, [1] positives */
	int64		capacity[2];
	double	   *scores[2];
} Sample;

static Size
SampleFlatSize(ExpandedObjectHeader *eohptr)
{
	Sample	   *s = (Sample *) eohptr;
	Size		size = offsetof(FlatSample, scores) + sizeof(double) * (s->n[0] + s->n[1]);

	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rows for one classification sample: %lld, at most %lld",
						(long long) (s->n[0] + s->n[1]),
						(long long) ((MaxAllocSize - offsetof(FlatSample, scores)) / sizeof(double)))));
	return size;
}

static void
SampleFlatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	Sample	   *s = (Sample *) eohptr;
	FlatSample *flat = (FlatSample *) result;

	SET_VARSIZE(flat, allocated_size);
	flat->magic = SAMPLE_MAGIC;
	flat->options = s->options;
	flat->n_positive = s->n[1];
	flat->n_negative = s->n[0];
	memcpy(flat->scores, s->scores[1], sizeof(double) * s->n[1]);
	memcpy(flat->scores + s->n[1], s->scores[0], sizeof(double) * s->n[0]);
}

static const ExpandedObjectMethods SampleMethods = {SampleFlatSize, SampleFlatten};

static Sample *
NewSample(MemoryContext parent, const SampleOptions *options)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "classification sample", ALLOCSET_DEFAULT_SIZES);
	Sample	   *s = MemoryContextAllocZero(cxt, sizeof(Sample));

	EOH_init_header(&s->hdr, &SampleMethods, cxt);
	s->options = *options;
	for (int c = 0; c < 2; c++)
	{
		s->capacity[c] = 1024;
		s->scores[c] = MemoryContextAllocHuge(cxt, sizeof(double) * s->capacity[c]);
	}
	return s;
}

static void
AppendScores(Sample *s, int label, const double *scores, int64 count)
{
	if (s->n[label] + count > s->capacity[label])
	{
		int64		grown = s->capacity[label];

		while (grown < s->n[label] + count)
			grown *= 2;
		s->scores[label] = repalloc_huge(s->scores[label], sizeof(double) * grown);
		s->capacity[label] = grown;
	}
	memcpy(s->scores[label] + s->n[label], scores, sizeof(double) * count);
	s->n[label] += count;
}

static bool
IsOurExpanded(Datum d)
{
	return VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(d)) &&
		DatumGetEOHP(d)->eoh_methods == &SampleMethods;
}

/*
 * A flat sample from outside (a partial state, a stored score_sample): counts
 * that fit its size, options as ParseOptions allows, finite scores.
 */
static FlatSample *
FlatFromDatum(Datum d)
{
	FlatSample *flat = (FlatSample *) PG_DETOAST_DATUM(d);
	Size		count = (VARSIZE(flat) - offsetof(FlatSample, scores)) / sizeof(double);
	bool		valid;

	valid = VARSIZE(flat) >= offsetof(FlatSample, scores) && flat->magic == SAMPLE_MAGIC &&
		flat->n_positive >= 0 && flat->n_negative >= 0 &&
		(Size) flat->n_positive <= count && (Size) flat->n_negative == count - flat->n_positive &&
		VARSIZE(flat) == offsetof(FlatSample, scores) + sizeof(double) * count &&
		isfinite(flat->options.threshold) && flat->options.bins >= 1 && flat->options.bins <= MAX_BINS &&
		(flat->options.strategy == BINS_UNIFORM || flat->options.strategy == BINS_QUANTILE);
	for (Size i = 0; valid && i < count; i++)
		valid = isfinite(flat->scores[i]);
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid classification sample")));
	return flat;
}

/* The state as an expanded object we may modify: adopt ours, expand anything else. */
static Sample *
WritableSample(Datum d, MemoryContext aggcontext)
{
	FlatSample *flat;
	Sample	   *s;

	if (VARATT_IS_EXTERNAL_EXPANDED_RW(DatumGetPointer(d)) && IsOurExpanded(d))
		return (Sample *) DatumGetEOHP(d);
	if (IsOurExpanded(d))
	{
		Sample	   *src = (Sample *) DatumGetEOHP(d);

		s = NewSample(aggcontext, &src->options);
		AppendScores(s, 1, src->scores[1], src->n[1]);
		AppendScores(s, 0, src->scores[0], src->n[0]);
		return s;
	}
	flat = FlatFromDatum(d);
	s = NewSample(aggcontext, &flat->options);
	AppendScores(s, 1, flat->scores, flat->n_positive);
	AppendScores(s, 0, flat->scores + flat->n_positive, flat->n_negative);
	return s;
}

static int32
ParseStrategy(const char *strategy)
{
	if (strcmp(strategy, "uniform") == 0)
		return BINS_UNIFORM;
	if (strcmp(strategy, "quantile") == 0)
		return BINS_QUANTILE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown binning strategy \"%s\"", strategy),
			 errhint("Use \"uniform\" or \"quantile\".")));
	return BINS_UNIFORM;		/* keep compiler quiet */
}

static void
ParseOptions(FunctionCallInfo fcinfo, SampleOptions *options)
{
	options->threshold = 0.5;
	options->bins = DEFAULT_BINS;
	options->strategy = BINS_UNIFORM;
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		options->threshold = PG_GETARG_FLOAT8(3);
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
		options->bins = PG_GETARG_INT32(4);
	if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
		options->strategy = ParseStrategy(text_to_cstring(PG_GETARG_TEXT_PP(5)));
	if (isnan(options->threshold) || isinf(options->threshold))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("threshold must be a finite number")));
	if (options->bins < 1 || options->bins > MAX_BINS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bins must be between 1 and %d, not %d", MAX_BINS, options->bins)));
}

/* classification_accum(state bytea, label bool, score float8 [, threshold, bins, strategy]) */
PG_FUNCTION_INFO_V1(classification_accum);
Datum
classification_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	Sample	   *s;
	double		score;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "classification_accum called in non-aggregate context");

	if (PG_ARGISNULL(0))
	{
		SampleOptions options;

		ParseOptions(fcinfo, &options);
		s = NewSample(aggcontext, &options);
	}
	else
		s = WritableSample(PG_GETARG_DATUM(0), aggcontext);

	/* rows without a label or a score are not predictions: skipped */
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		score = PG_GETARG_FLOAT8(2);
		if (isnan(score) || isinf(score))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("score must be a finite number, not %s", float8out_internal(score))));
		AppendScores(s, PG_GETARG_BOOL(1) ? 1 : 0, &score, 1);
	}
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

PG_FUNCTION_INFO_V1(classification_combine);
Datum
classification_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	Sample	   *s;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "classification_combine called in non-aggregate context");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(EOHPGetRWDatum(&WritableSample(PG_GETARG_DATUM(0), aggcontext)->hdr));
	}
	if (PG_ARGISNULL(0))
		PG_RETURN_DATUM(EOHPGetRWDatum(&WritableSample(PG_GETARG_DATUM(1), aggcontext)->hdr));

	s = WritableSample(PG_GETARG_DATUM(0), aggcontext);
	if (IsOurExpanded(PG_GETARG_DATUM(1)))
	{
		Sample	   *other = (Sample *) DatumGetEOHP(PG_GETARG_DATUM(1));

		AppendScores(s, 1, other->scores[1], other->n[1]);
		AppendScores(s, 0, other->scores[0], other->n[0]);
	}
	else
	{
		FlatSample *other = FlatFromDatum(PG_GETARG_DATUM(1));

		AppendScores(s, 1, other->scores, other->n_positive);
		AppendScores(s, 0, other->scores + other->n_positive, other->n_negative);
	}
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

/* ---- final computations ---- */

#define ST_SORT sort_doubles
#define ST_ELEMENT_TYPE double
#define ST_COMPARE(a, b) ((*(a) > *(b)) - (*(a) < *(b)))
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* A read-only view of a sample, sorted, for the final functions. */
typedef struct SortedSample
{
	SampleOptions options;
	int64		n[2];
	double	   *scores[2];		/* each ascending */
	double	   *merged;			/* both, ascending; see Merged() */
} SortedSample;

static void
LoadSorted(Datum d, SortedSample *out)
{
	out->merged = NULL;
	if (IsOurExpanded(d))
	{
		Sample	   *s = (Sample *) DatumGetEOHP(d);

		out->options = s->options;
		for (int c = 0; c < 2; c++)
		{
			out->n[c] = s->n[c];
			out->scores[c] = s->scores[c];	/* sorted in place: the state is final */
		}
	}
	else
	{
		FlatSample *flat = FlatFromDatum(d);
		Size		bytes = sizeof(double) * (flat->n_positive + flat->n_negative);
		double	   *copy = palloc_extended(Max(bytes, 1), MCXT_ALLOC_HUGE);

		memcpy(copy, flat->scores, bytes);
		out->options = flat->options;
		out->n[1] = flat->n_positive;
		out->n[0] = flat->n_negative;
		out->scores[1] = copy;
		out->scores[0] = copy + flat->n_positive;
	}
	for (int c = 0; c < 2; c++)
		sort_doubles(out->scores[c], out->n[c]);
}

/* Number of elements < value (strict) in an ascending array. */
static int64
CountBelow(const double *a, int64 n, double value)
{
	int64		lo = 0,
				hi = n;

	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (a[mid] < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Mann-Whitney U with ties counted half: equals the area under the ROC curve. */
static double
ExactAuc(const SortedSample *s)
{
	const double *pos = s->scores[1];
	const double *neg = s->scores[0];
	int64		j = 0;
	double		u = 0.0;

	for (int64 i = 0; i < s->n[1];)
	{
		double		value = pos[i];
		int64		same_pos = 0;
		int64		below;
		int64		equal = 0;

		while (i + same_pos < s->n[1] && pos[i + same_pos] == value)
			same_pos++;
		while (j < s->n[0] && neg[j] < value)
			j++;
		below = j;
		while (j + equal < s->n[0] && neg[j + equal] == value)
			equal++;
		u += same_pos * (below + 0.5 * equal);
		i += same_pos;
	}
	return u / ((double) s->n[1] * (double) s->n[0]);
}

/* All scores ascending, built on first use (quantile bins only). */
static const double *
Merged(SortedSample *s)
{
	if (s->merged == NULL)
	{
		int64		i = 0,
					j = 0,
					k = 0;
		double	   *m = palloc_extended(sizeof(double) * Max(s->n[0] + s->n[1], 1), MCXT_ALLOC_HUGE);

		while (i < s->n[0] || j < s->n[1])
			m[k++] = (j >= s->n[1] || (i < s->n[0] && s->scores[0][i] <= s->scores[1][j]))
				? s->scores[0][i++] : s->scores[1][j++];
		s->merged = m;
	}
	return s->merged;
}

/* numpy.percentile(scores, 100 * q, method='linear') */
static double
Percentile(SortedSample *s, double q)
{
	const double *all = Merged(s);
	int64		n = s->n[0] + s->n[1];
	double		virtual_index = q * (double) (n - 1);
	int64		previous = (int64) floor(virtual_index);
	int64		next = Min(previous + 1, n - 1);
	double		gamma = virtual_index - (double) previous;
	double		a = all[previous];
	double		b = all[next];
	double		diff = b - a;

	/* numpy's _lerp, including its symmetric form for gamma >= 0.5 */
	return gamma >= 0.5 ? b - diff * (1.0 - gamma) : a + diff * gamma;
}

/* Interior bin edges exactly as sklearn's calibration_curve computes them. */
static double *
BinEdges(SortedSample *s)
{
	int32		bins = s->options.bins;
	double	   *edges = palloc(sizeof(double) * Max(bins - 1, 1));
	double		step = 1.0 / bins;

	for (int j = 1; j < bins; j++)
	{
		double		fraction = j * step;	/* numpy.linspace(0, 1, bins + 1)[j] */

		edges[j - 1] = s->options.strategy == BINS_UNIFORM ? fraction
			: Percentile(s, (fraction * 100.0) / 100.0);
	}
	return edges;
}

typedef struct Bin
{
	int64		n;
	int64		positives;
	double		score_sum;
	double		lower;
	double		upper;
} Bin;

/* bin of a score: number of interior edges strictly below it (numpy.searchsorted, side left) */
static Bin *
FillBins(SortedSample *s)
{
	int32		bins = s->options.bins;
	double	   *edges = BinEdges(s);
	Bin		   *result = palloc0(sizeof(Bin) * bins);

	for (int c = 0; c < 2; c++)
	{
		int32		b = 0;

		for (int64 i = 0; i < s->n[c]; i++)
		{
			double		score = s->scores[c][i];

			while (b < bins - 1 && edges[b] < score)
				b++;
			result[b].n++;
			result[b].positives += c;
			result[b].score_sum += score;
		}
	}
	for (int b = 0; b < bins; b++)
	{
		result[b].lower = b == 0 ? (s->options.strategy == BINS_UNIFORM ? 0.0 : Percentile(s, 0.0)) : edges[b - 1];
		result[b].upper = b == bins - 1 ? (s->options.strategy == BINS_UNIFORM ? 1.0 : Percentile(s, 1.0)) : edges[b];
	}
	return result;
}

static bool
ScoresAreProbabilities(const SortedSample *s)
{
	for (int c = 0; c < 2; c++)
		if (s->n[c] > 0 && (s->scores[c][0] < 0.0 || s->scores[c][s->n[c] - 1] > 1.0))
			return false;
	return true;
}

PG_FUNCTION_INFO_V1(classification_final);
Datum
classification_final(PG_FUNCTION_ARGS)
{
	SortedSample s;
	TupleDesc	tupdesc;
	Datum		values[10];
	bool		nulls[10] = {0};
	int64		n;
	int64		tp,
				fp;
	double		precision = 0,
				recall = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	LoadSorted(PG_GETARG_DATUM(0), &s);
	n = s.n[0] + s.n[1];

	values[0] = Int64GetDatum(n);
	values[1] = Int64GetDatum(s.n[1]);
	for (int i = 2; i < 10; i++)
		nulls[i] = true;
	if (n == 0)
		goto done;

	if (s.n[0] > 0 && s.n[1] > 0)
	{
		values[2] = Float8GetDatum(ExactAuc(&s));
		nulls[2] = false;
	}

	if (ScoresAreProbabilities(&s))
	{
		/* Neumaier-compensated sums keep 1e-12 relative accuracy over 1e8 rows */
		double		loss = 0,
					loss_c = 0,
					brier = 0,
					brier_c = 0,
					ece = 0;
		Bin		   *bins = FillBins(&s);

		for (int c = 0; c < 2; c++)
			for (int64 i = 0; i < s.n[c]; i++)
			{
				double		p = Min(Max(s.scores[c][i], DBL_EPSILON), 1.0 - DBL_EPSILON);
				double		term = c ? -log(p) : -log(1.0 - p);
				double		sq = (s.scores[c][i] - c) * (s.scores[c][i] - c);
				double		t;

				t = loss + term;
				loss_c += fabs(loss) >= fabs(term) ? (loss - t) + term : (term - t) + loss;
				loss = t;
				t = brier + sq;
				brier_c += fabs(brier) >= fabs(sq) ? (brier - t) + sq : (sq - t) + brier;
				brier = t;
			}
		for (int b = 0; b < s.options.bins; b++)
			if (bins[b].n > 0)
				ece += fabs(bins[b].score_sum / bins[b].n - (double) bins[b].positives / bins[b].n) * bins[b].n / n;
		values[3] = Float8GetDatum((loss + loss_c) / n);
		values[4] = Float8GetDatum((brier + brier_c) / n);
		values[5] = Float8GetDatum(ece);
		nulls[3] = nulls[4] = nulls[5] = false;
	}

	/* predicted positive: score >= threshold */
	tp = s.n[1] - CountBelow(s.scores[1], s.n[1], s.options.threshold);
	fp = s.n[0] - CountBelow(s.scores[0], s.n[0], s.options.threshold);
	values[6] = Float8GetDatum((double) (tp + (s.n[0] - fp)) / n);
	nulls[6] = false;
	if (tp + fp > 0)
	{
		precision = (double) tp / (tp + fp);
		values[7] = Float8GetDatum(precision);
		nulls[7] = false;
	}
	if (s.n[1] > 0)
	{
		recall = (double) tp / s.n[1];
		values[8] = Float8GetDatum(recall);
		nulls[8] = false;
	}
	if (!nulls[7] && !nulls[8])
	{
		values[9] = Float8GetDatum(precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0);
		nulls[9] = false;
	}

done:
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* reliability_bins(sample bytea): one row per bin, for calibration plots */
PG_FUNCTION_INFO_V1(reliability_bins);
Datum
reliability_bins(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SortedSample s;
	Bin		   *bins;

	InitMaterializedSRF(fcinfo, 0);
	LoadSorted(PG_GETARG_DATUM(0), &s);
	s.options.bins = PG_GETARG_INT32(1);
	if (s.options.bins < 1 || s.options.bins > MAX_BINS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bins must be between 1 and %d, not %d", MAX_BINS, s.options.bins)));
	s.options.strategy = ParseStrategy(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (s.n[0] + s.n[1] == 0)
		return (Datum) 0;
	if (!ScoresAreProbabilities(&s))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reliability bins need scores between 0 and 1")));
	bins = FillBins(&s);
	for (int b = 0; b < s.options.bins; b++)
	{
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = Int32GetDatum(b + 1);
		values[1] = Float8GetDatum(bins[b].lower);
		values[2] = Float8GetDatum(bins[b].upper);
		values[3] = Int64GetDatum(bins[b].n);
		values[4] = Float8GetDatum(bins[b].n ? bins[b].score_sum / bins[b].n : 0);
		values[5] = Float8GetDatum(bins[b].n ? (double) bins[b].positives / bins[b].n : 0);
		nulls[4] = nulls[5] = bins[b].n == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* The aggregate's state flattened, for reliability_bins. */
PG_FUNCTION_INFO_V1(classification_sample_final);
Datum
classification_sample_final(PG_FUNCTION_ARGS)
{
	Datum		d;
	Size		size;
	void	   *flat;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	d = PG_GETARG_DATUM(0);
	if (!IsOurExpanded(d))
		PG_RETURN_DATUM(d);
	size = EOH_get_flat_size(DatumGetEOHP(d));
	flat = palloc_extended(size, MCXT_ALLOC_HUGE);
	EOH_flatten_into(DatumGetEOHP(d), flat, size);
	PG_RETURN_POINTER(flat);
}
