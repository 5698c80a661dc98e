/*
 * uplift.c — read-outs of an uplift score on a randomised experiment, with
 * the definitions of scikit-uplift 0.5 (sklift.metrics): the uplift and Qini
 * curves, their normalized areas (uplift_auc_score, qini_auc_score), uplift
 * at the top k, and response rates per score bin with Wald intervals.
 *
 * personalize.uplift_sample(outcome, treatment, score) collects the rows
 * (bytea state, concrete: parallel query and Citus can ship partial states;
 * an expanded object while aggregating, as classification.c). Rows are then
 * ordered by score, highest first. Curves are evaluated at the end of each
 * run of equal scores, so ties do not matter there; where a cut falls inside
 * a run of equal scores (uplift at k, bins) the run is ordered control before
 * treated and non-responders before responders (scikit-uplift uses the
 * reverse of the input order, which SQL rows do not have).
 */
#include "postgres.h"

#include <math.h>

#include "classifier.h"
#include "funcapi.h"
#include "statistics.h"
#include "utils/builtins.h"
#include "utils/expandeddatum.h"
#include "utils/memutils.h"

#define UPLIFT_MAGIC 0x50555331	/* "PUS1" */

#define ROW_OUTCOME		0x01
#define ROW_TREATED		0x02

typedef struct FlatUplift
{
	int32		vl_len_;
	int32		magic;
	int64		n;
	double		scores[FLEXIBLE_ARRAY_MEMBER];	/* then n flag bytes */
} FlatUplift;

typedef struct UpliftSample
{
	ExpandedObjectHeader hdr;
	int64		n;
	int64		capacity;
	double	   *scores;
	uint8	   *flags;
} UpliftSample;

static Size
UpliftFlatSize(ExpandedObjectHeader *eohptr)
{
	UpliftSample *s = (UpliftSample *) eohptr;
	Size		size = offsetof(FlatUplift, scores) + (sizeof(double) + 1) * s->n;

	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rows for one uplift sample: %lld, at most %lld", (long long) s->n,
						(long long) ((MaxAllocSize - offsetof(FlatUplift, scores)) / (sizeof(double) + 1)))));
	return size;
}

static void
UpliftFlatten(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	UpliftSample *s = (UpliftSample *) eohptr;
	FlatUplift *flat = (FlatUplift *) result;

	SET_VARSIZE(flat, allocated_size);
	flat->magic = UPLIFT_MAGIC;
	flat->n = s->n;
	memcpy(flat->scores, s->scores, sizeof(double) * s->n);
	memcpy((char *) (flat->scores + s->n), s->flags, s->n);
}

static const ExpandedObjectMethods UpliftMethods = {UpliftFlatSize, UpliftFlatten};

static UpliftSample *
NewUpliftSample(MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "uplift sample", ALLOCSET_DEFAULT_SIZES);
	UpliftSample *s = MemoryContextAllocZero(cxt, sizeof(UpliftSample));

	EOH_init_header(&s->hdr, &UpliftMethods, cxt);
	s->capacity = 1024;
	s->scores = MemoryContextAllocHuge(cxt, sizeof(double) * s->capacity);
	s->flags = MemoryContextAllocHuge(cxt, s->capacity);
	return s;
}

static void
AppendRows(UpliftSample *s, const double *scores, const uint8 *flags, int64 count)
{
	if (s->n + count > s->capacity)
	{
		int64		grown = s->capacity;

		while (grown < s->n + count)
			grown *= 2;
		s->scores = repalloc_huge(s->scores, sizeof(double) * grown);
		s->flags = repalloc_huge(s->flags, grown);
		s->capacity = grown;
	}
	memcpy(s->scores + s->n, scores, sizeof(double) * count);
	memcpy(s->flags + s->n, flags, count);
	s->n += count;
}

static bool
IsOurs(Datum d)
{
	return VARATT_IS_EXTERNAL_EXPANDED(DatumGetPointer(d)) && DatumGetEOHP(d)->eoh_methods == &UpliftMethods;
}

static FlatUplift *
FlatUpliftFromDatum(Datum d)
{
	FlatUplift *flat = (FlatUplift *) PG_DETOAST_DATUM(d);

	/* divide, not multiply: a crafted n would wrap 9 n to the right size */
	if (VARSIZE(flat) < offsetof(FlatUplift, scores) || flat->magic != UPLIFT_MAGIC || flat->n < 0 ||
		(VARSIZE(flat) - offsetof(FlatUplift, scores)) % (sizeof(double) + 1) != 0 ||
		(uint64) flat->n != (VARSIZE(flat) - offsetof(FlatUplift, scores)) / (sizeof(double) + 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid uplift sample")));
	return flat;
}

static UpliftSample *
WritableUplift(Datum d, MemoryContext aggcontext)
{
	UpliftSample *s;
	FlatUplift *flat;

	if (VARATT_IS_EXTERNAL_EXPANDED_RW(DatumGetPointer(d)) && IsOurs(d))
		return (UpliftSample *) DatumGetEOHP(d);
	s = NewUpliftSample(aggcontext);
	if (IsOurs(d))
	{
		UpliftSample *src = (UpliftSample *) DatumGetEOHP(d);

		AppendRows(s, src->scores, src->flags, src->n);
		return s;
	}
	flat = FlatUpliftFromDatum(d);
	AppendRows(s, flat->scores, (uint8 *) (flat->scores + flat->n), flat->n);
	return s;
}

/* uplift_sample(outcome boolean, treatment boolean, score double precision): rows with a NULL are skipped */
PG_FUNCTION_INFO_V1(uplift_accum);
Datum
uplift_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	UpliftSample *s;
	double		score;
	uint8		flag;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "uplift_accum called in non-aggregate context");
	s = PG_ARGISNULL(0) ? NewUpliftSample(aggcontext) : WritableUplift(PG_GETARG_DATUM(0), aggcontext);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
	score = PG_GETARG_FLOAT8(3);
	if (!isfinite(score))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("uplift score must be finite, not %g", score)));
	flag = (PG_GETARG_BOOL(1) ? ROW_OUTCOME : 0) | (PG_GETARG_BOOL(2) ? ROW_TREATED : 0);
	AppendRows(s, &score, &flag, 1);
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

PG_FUNCTION_INFO_V1(uplift_combine);
Datum
uplift_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	UpliftSample *s;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "uplift_combine called in non-aggregate context");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(EOHPGetRWDatum(&WritableUplift(PG_GETARG_DATUM(0), aggcontext)->hdr));
	}
	s = PG_ARGISNULL(0) ? NewUpliftSample(aggcontext) : WritableUplift(PG_GETARG_DATUM(0), aggcontext);
	if (IsOurs(PG_GETARG_DATUM(1)))
	{
		UpliftSample *o = (UpliftSample *) DatumGetEOHP(PG_GETARG_DATUM(1));

		AppendRows(s, o->scores, o->flags, o->n);
	}
	else
	{
		FlatUplift *flat = FlatUpliftFromDatum(PG_GETARG_DATUM(1));

		AppendRows(s, flat->scores, (uint8 *) (flat->scores + flat->n), flat->n);
	}
	PG_RETURN_DATUM(EOHPGetRWDatum(&s->hdr));
}

/* the final function: the flat bytea */
PG_FUNCTION_INFO_V1(uplift_sample_final);
Datum
uplift_sample_final(PG_FUNCTION_ARGS)
{
	ExpandedObjectHeader *eoh;
	Size		size;
	void	   *flat;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!IsOurs(PG_GETARG_DATUM(0)))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	eoh = DatumGetEOHP(PG_GETARG_DATUM(0));
	size = EOH_get_flat_size(eoh);
	flat = palloc(size);
	EOH_flatten_into(eoh, flat, size);
	PG_RETURN_POINTER(flat);
}

/* ---------- read-outs ---------- */

typedef struct UpliftRow
{
	double		score;
	uint8		flags;
} UpliftRow;

/* score descending; ties: control first, then non-responders first */
static int
compare_rows(const void *a, const void *b)
{
	const UpliftRow *p = a,
			   *q = b;

	if (p->score != q->score)
		return p->score > q->score ? -1 : 1;
	if ((p->flags & ROW_TREATED) != (q->flags & ROW_TREATED))
		return (p->flags & ROW_TREATED) ? 1 : -1;
	if ((p->flags & ROW_OUTCOME) != (q->flags & ROW_OUTCOME))
		return (p->flags & ROW_OUTCOME) ? 1 : -1;
	return 0;
}

typedef struct Ordered
{
	int64		n;
	int64		treated;
	int64		treated_responders;
	int64		control_responders;
	UpliftRow  *rows;			/* sorted */
} Ordered;

static Ordered *
ordered_rows(bytea *sample)
{
	FlatUplift *flat = FlatUpliftFromDatum(PointerGetDatum(sample));
	const uint8 *flags = (const uint8 *) (flat->scores + flat->n);
	Ordered    *o = palloc0(sizeof(Ordered));

	o->n = flat->n;
	o->rows = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(UpliftRow) * Max(o->n, 1));
	for (int64 i = 0; i < o->n; i++)
	{
		o->rows[i].score = flat->scores[i];
		o->rows[i].flags = flags[i];
		if (flags[i] & ROW_TREATED)
		{
			o->treated++;
			o->treated_responders += (flags[i] & ROW_OUTCOME) != 0;
		}
		else
			o->control_responders += (flags[i] & ROW_OUTCOME) != 0;
	}
	if (o->treated == 0 || o->treated == o->n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("uplift read-outs need treated and control rows, the sample has " INT64_FORMAT " treated of " INT64_FORMAT,
						o->treated, o->n)));
	qsort(o->rows, o->n, sizeof(UpliftRow), compare_rows);
	return o;
}

typedef enum CurveKind
{
	CURVE_UPLIFT,
	CURVE_QINI
} CurveKind;

typedef struct Curve
{
	int			npoints;
	double	   *x;				/* rows targeted */
	double	   *y;
} Curve;

/*
 * Curve points at the end of each run of equal keys, after (0, 0). key(i) is
 * the score of the i-th row, or for the perfect curves a function of its
 * outcome and treatment (rows then need sorting by that key).
 */
static Curve
curve_points(const UpliftRow *rows, int64 n, CurveKind kind)
{
	Curve		c;
	double		nt = 0,
				yt = 0,
				yc = 0;

	c.x = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * (n + 1));
	c.y = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * (n + 1));
	c.x[0] = 0;
	c.y[0] = 0;
	c.npoints = 1;
	for (int64 i = 0; i < n; i++)
	{
		bool		treated = (rows[i].flags & ROW_TREATED) != 0,
					outcome = (rows[i].flags & ROW_OUTCOME) != 0;

		nt += treated;
		yt += treated && outcome;
		yc += !treated && outcome;
		if (i == n - 1 || rows[i + 1].score != rows[i].score)
		{
			double		all = (double) (i + 1),
						nc = all - nt;

			c.x[c.npoints] = all;
			if (kind == CURVE_UPLIFT)
				c.y[c.npoints] = ((nt != 0 ? yt / nt : 0.0) - (nc != 0 ? yc / nc : 0.0)) * all;
			else
				c.y[c.npoints] = yt - yc * (nc != 0 ? nt / nc : 0.0);
			c.npoints++;
		}
	}
	return c;
}

/* sklearn.metrics.auc: the trapezoidal rule */
static double
curve_area(const Curve *c)
{
	double		area = 0.0;

	for (int i = 1; i < c->npoints; i++)
		area += (c->x[i] - c->x[i - 1]) * (c->y[i] + c->y[i - 1]) / 2.0;
	return area;
}

/*
 * The perfect curves of scikit-uplift: rows scored by their outcome and
 * treatment alone. Uplift: 2·[y = t] + (y if control responders outnumber
 * treated non-responders, else t). Qini (negative_effect): y·t − y·(1 − t).
 */
static Curve
perfect_curve(const Ordered *o, CurveKind kind)
{
	UpliftRow  *rows = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(UpliftRow) * o->n);
	int64		control_responders = o->control_responders,
				treated_nonresponders = o->treated - o->treated_responders;

	for (int64 i = 0; i < o->n; i++)
	{
		int			y = (o->rows[i].flags & ROW_OUTCOME) != 0,
					t = (o->rows[i].flags & ROW_TREATED) != 0;

		rows[i].flags = o->rows[i].flags;
		if (kind == CURVE_UPLIFT)
			rows[i].score = 2 * (y == t) + (control_responders > treated_nonresponders ? y : t);
		else
			rows[i].score = y * t - y * (1 - t);
	}
	qsort(rows, o->n, sizeof(UpliftRow), compare_rows);
	return curve_points(rows, o->n, kind);
}

/* (area − baseline) / (perfect area − baseline), baseline the straight line to the last point */
static double
normalized_area(const Ordered *o, CurveKind kind)
{
	Curve		actual = curve_points(o->rows, o->n, kind);
	Curve		perfect = perfect_curve(o, kind);
	double		baseline = perfect.x[perfect.npoints - 1] * perfect.y[perfect.npoints - 1] / 2.0;

	return (curve_area(&actual) - baseline) / (curve_area(&perfect) - baseline);
}

static bool
parse_strategy(text *t)
{
	char	   *s = text_to_cstring(t);

	if (strcmp(s, "overall") == 0)
		return false;
	if (strcmp(s, "by_group") == 0)
		return true;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown strategy \"%s\"", s),
			 errhint("Use overall or by_group.")));
	return false;
}

/*
 * Response rate of the treated minus that of the control rows among the
 * first k (a fraction) of all rows (overall: int(n k) rows), or among the
 * first int(n_arm k) rows of each arm (by_group). *valid is false when an arm
 * has no row there.
 */
static double
uplift_at(const Ordered *o, double k, bool by_group, bool *valid)
{
	double		nt = 0,
				nc = 0,
				yt = 0,
				yc = 0;

	if (!by_group)
	{
		int64		size = (int64) ((double) o->n * k);

		for (int64 i = 0; i < size; i++)
		{
			bool		treated = (o->rows[i].flags & ROW_TREATED) != 0;
			double		y = (o->rows[i].flags & ROW_OUTCOME) != 0;

			if (treated)
			{
				nt++;
				yt += y;
			}
			else
			{
				nc++;
				yc += y;
			}
		}
	}
	else
	{
		int64		size_t = (int64) ((double) o->treated * k),
					size_c = (int64) ((double) (o->n - o->treated) * k);

		for (int64 i = 0; i < o->n; i++)
		{
			bool		treated = (o->rows[i].flags & ROW_TREATED) != 0;
			double		y = (o->rows[i].flags & ROW_OUTCOME) != 0;

			if (treated && nt < size_t)
			{
				nt++;
				yt += y;
			}
			else if (!treated && nc < size_c)
			{
				nc++;
				yc += y;
			}
		}
	}
	*valid = nt > 0 && nc > 0;
	return *valid ? yt / nt - yc / nc : 0.0;
}

/* personalize.uplift_summary(sample, k, strategy) */
PG_FUNCTION_INFO_V1(uplift_summary);
Datum
uplift_summary(PG_FUNCTION_ARGS)
{
	Ordered    *o = ordered_rows(PG_GETARG_BYTEA_P(0));
	double		k = PG_GETARG_FLOAT8(1);
	bool		by_group = parse_strategy(PG_GETARG_TEXT_PP(2));
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	bool		valid;
	double		at_k;

	if (!(k > 0 && k < 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be between 0 and 1 (exclusive), not %g", k)));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	at_k = uplift_at(o, k, by_group, &valid);
	values[0] = Int64GetDatum(o->n);
	values[1] = Int64GetDatum(o->treated);
	values[2] = Int64GetDatum(o->n - o->treated);
	values[3] = Float8GetDatum(normalized_area(o, CURVE_UPLIFT));
	values[4] = Float8GetDatum(normalized_area(o, CURVE_QINI));
	values[5] = Float8GetDatum(at_k);
	nulls[5] = !valid;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

static Datum
emit_curve(FunctionCallInfo fcinfo, CurveKind kind)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Ordered    *o = ordered_rows(PG_GETARG_BYTEA_P(0));
	Curve		c = curve_points(o->rows, o->n, kind);
	double		last = c.y[c.npoints - 1];

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < c.npoints; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {0};

		values[0] = Int64GetDatum((int64) c.x[i]);
		values[1] = Float8GetDatum(c.y[i]);
		values[2] = Float8GetDatum(last * c.x[i] / (double) o->n);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* personalize.uplift_curve(sample): (n, value, random) */
PG_FUNCTION_INFO_V1(uplift_curve);
Datum
uplift_curve(PG_FUNCTION_ARGS)
{
	return emit_curve(fcinfo, CURVE_UPLIFT);
}

/* personalize.qini_curve(sample): (n, value, random) */
PG_FUNCTION_INFO_V1(qini_curve);
Datum
qini_curve(PG_FUNCTION_ARGS)
{
	return emit_curve(fcinfo, CURVE_QINI);
}

/*
 * personalize.uplift_by_percentile(sample, bins, strategy, confidence): rows
 * in score order split into bins as numpy's array_split (the first n mod bins
 * bins one row larger); overall splits all rows, by_group each arm apart.
 * Per bin the arms' response rates, their difference and its Wald interval
 * and pooled z-test (pz_compare_arms, as experiment_results).
 */
PG_FUNCTION_INFO_V1(uplift_by_percentile);
Datum
uplift_by_percentile(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Ordered    *o = ordered_rows(PG_GETARG_BYTEA_P(0));
	int32		bins = PG_GETARG_INT32(1);
	bool		by_group = parse_strategy(PG_GETARG_TEXT_PP(2));
	double		confidence = PG_GETARG_FLOAT8(3);
	double	   *n = palloc0(sizeof(double) * 2 * Max(bins, 1)),
			   *y = palloc0(sizeof(double) * 2 * Max(bins, 1));
	int64		seen[2] = {0, 0},
				total[2];

	if (bins < 1 || bins >= o->n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bins must be between 1 and the row count " INT64_FORMAT " (exclusive), not %d", o->n, bins)));
	if (!(confidence > 0 && confidence < 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("confidence must be between 0 and 1 (exclusive), not %g", confidence)));
	total[0] = o->n - o->treated;
	total[1] = o->treated;
	for (int64 i = 0; i < o->n; i++)
	{
		int			arm = (o->rows[i].flags & ROW_TREATED) != 0;
		int64		pos = by_group ? seen[arm]++ : i,
					count = by_group ? total[arm] : o->n,
					small = count / bins,
					extra = count % bins,
					bin;

		/* array_split: the first `extra` bins hold small + 1 rows */
		if (pos < extra * (small + 1))
			bin = pos / (small + 1);
		else
			bin = extra + (pos - extra * (small + 1)) / Max(small, 1);
		n[2 * bin + arm] += 1;
		y[2 * bin + arm] += (o->rows[i].flags & ROW_OUTCOME) != 0;
	}
	InitMaterializedSRF(fcinfo, 0);
	for (int b = 0; b < bins; b++)
	{
		Datum		values[10];
		bool		nulls[10] = {0};
		double		nc = n[2 * b],
					nt = n[2 * b + 1];
		double		rc = nc > 0 ? y[2 * b] / nc : 0,
					rt = nt > 0 ? y[2 * b + 1] / nt : 0;
		PzComparison r;

		pz_compare_arms(nc, rc, 0, nt, rt, 0, true, confidence, &r);
		values[0] = Int32GetDatum(b + 1);
		values[1] = Int64GetDatum((int64) nt);
		values[2] = Int64GetDatum((int64) nc);
		values[3] = Float8GetDatum(rt);
		nulls[3] = nt == 0;
		values[4] = Float8GetDatum(rc);
		nulls[4] = nc == 0;
		values[5] = Float8GetDatum(r.lift_abs);
		nulls[5] = nt == 0 || nc == 0;
		values[6] = Float8GetDatum(r.abs_low);
		values[7] = Float8GetDatum(r.abs_high);
		nulls[6] = nulls[7] = !r.valid_abs;
		values[8] = Float8GetDatum(r.p_value);
		nulls[8] = !r.valid_test;
		values[9] = Float8GetDatum(confidence);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
