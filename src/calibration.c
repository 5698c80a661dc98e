/*
 * calibration.c — calibrating a classifier's probabilities on held-out rows,
 * as scikit-learn's CalibratedClassifierCV(cv="prefit") does for a logistic
 * regression: both methods map the linear predictor η (the log odds, what
 * sklearn's decision_function returns).
 *
 * Platt scaling (Platt 1999; sklearn's _sigmoid_calibration): p = 1 / (1 +
 * exp(a η + b)), (a, b) minimizing the cross-entropy against Platt's smoothed
 * targets t₊ = (N₊ + 1)/(N₊ + 2) for positives and t₋ = 1/(N₋ + 2) for
 * negatives. Solved here by Newton's method to convergence (sklearn stops its
 * BFGS at a gradient of 1e-5).
 *
 * Isotonic regression (sklearn's IsotonicRegression(out_of_bounds="clip")):
 * rows sorted by η, equal η merged into their mean label, pool adjacent
 * violators (weights: rows per η), knots whose value equals both neighbours
 * dropped; a probability is the linear interpolation between knots, clipped
 * to the first and last knot.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "classifier.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "model.h"
#include "sqlsource.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/memutils.h"

double
calibrated_probability(const Classifier *c, double eta)
{
	switch (c->calibration)
	{
		case CALIBRATION_PLATT:
			return sigmoid(-(c->platt_a * eta + c->platt_b));
		case CALIBRATION_ISOTONIC:
			{
				const double *kx = CLF_KNOTS(c),
						   *ky = kx + c->nknots;
				int			lo = 0,
							hi = c->nknots - 1;

				if (eta <= kx[0])
					return ky[0];
				if (eta >= kx[hi])
					return ky[hi];
				while (hi - lo > 1)
				{
					int			mid = (lo + hi) / 2;

					if (kx[mid] <= eta)
						lo = mid;
					else
						hi = mid;
				}
				return (ky[hi] - ky[lo]) / (kx[hi] - kx[lo]) * (eta - kx[lo]) + ky[lo];
			}
	}
	return sigmoid(eta);
}

/* Platt's (a, b) for linear predictors f and labels y. */
static void
platt_fit(const double *f, const double *y, int64 n, double *a_out, double *b_out)
{
	double		n1 = 0,
				n0,
				t1,
				t0,
				a = 0.0,
				b,
				loss = 0.0;

	for (int64 i = 0; i < n; i++)
		n1 += y[i];
	n0 = n - n1;
	t1 = (n1 + 1.0) / (n1 + 2.0);
	t0 = 1.0 / (n0 + 2.0);
	b = log((n0 + 1.0) / (n1 + 1.0));
	for (int64 i = 0; i < n; i++)
	{
		double		t = y[i] > 0 ? t1 : t0,
					z = a * f[i] + b;

		loss += t * softplus(z) + (1.0 - t) * softplus(-z);
	}
	for (int iteration = 0; iteration < 100; iteration++)
	{
		double		ga = 0,
					gb = 0,
					haa = 0,
					hab = 0,
					hbb = 0,
					det,
					da,
					db,
					step = 1.0,
					next = 0.0;

		CHECK_FOR_INTERRUPTS();
		for (int64 i = 0; i < n; i++)
		{
			double		t = y[i] > 0 ? t1 : t0,
						s = sigmoid(a * f[i] + b),
						d = s - (1.0 - t),
						h = s * (1.0 - s);

			ga += d * f[i];
			gb += d;
			haa += h * f[i] * f[i];
			hab += h * f[i];
			hbb += h;
		}
		det = haa * hbb - hab * hab;
		if (!(det > 0))
			break;
		da = -(hbb * ga - hab * gb) / det;
		db = -(haa * gb - hab * ga) / det;
		for (int halving = 0; halving < 60; halving++, step *= 0.5)
		{
			next = 0.0;
			for (int64 i = 0; i < n; i++)
			{
				double		t = y[i] > 0 ? t1 : t0,
							z = (a + step * da) * f[i] + b + step * db;

				next += t * softplus(z) + (1.0 - t) * softplus(-z);
			}
			if (next <= loss + 1e-12 * fabs(loss))
				break;
		}
		a += step * da;
		b += step * db;
		loss = next;
		if (fabs(step * da) <= 1e-13 * Max(1.0, fabs(a)) && fabs(step * db) <= 1e-13 * Max(1.0, fabs(b)))
			break;
	}
	*a_out = a;
	*b_out = b;
}

typedef struct Pair
{
	double		f;
	double		y;
} Pair;

static int
compare_pairs(const void *a, const void *b)
{
	const Pair *p = a,
			   *q = b;

	if (p->f != q->f)
		return p->f < q->f ? -1 : 1;
	if (p->y != q->y)
		return p->y < q->y ? -1 : 1;
	return 0;
}

/* Isotonic knots (x then y, *nknots each) for linear predictors f and labels y. */
static double *
isotonic_fit(const double *f, const double *y, int64 n, int *nknots)
{
	Pair	   *pairs = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Pair) * n);
	double	   *ux = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * n);
	double	   *uy = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * n);
	double	   *uw = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * n);
	int64	   *block_end = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * n);
	double	   *block_mean = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * n);
	double	   *block_weight = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * n);
	double	   *knots;
	int64		nu = 0,
				nb = 0,
				kept = 0;

	for (int64 i = 0; i < n; i++)
	{
		pairs[i].f = f[i];
		pairs[i].y = y[i];
	}
	qsort(pairs, n, sizeof(Pair), compare_pairs);
	/* equal η: one point, its mean label weighted by the rows */
	for (int64 i = 0; i < n; i++)
	{
		if (nu > 0 && ux[nu - 1] == pairs[i].f)
		{
			uy[nu - 1] += pairs[i].y;
			uw[nu - 1] += 1.0;
		}
		else
		{
			ux[nu] = pairs[i].f;
			uy[nu] = pairs[i].y;
			uw[nu] = 1.0;
			nu++;
		}
	}
	for (int64 i = 0; i < nu; i++)
		uy[i] /= uw[i];
	/* pool adjacent violators: blocks of points with non-decreasing means */
	for (int64 i = 0; i < nu; i++)
	{
		block_mean[nb] = uy[i];
		block_weight[nb] = uw[i];
		block_end[nb] = i;
		nb++;
		while (nb > 1 && block_mean[nb - 2] >= block_mean[nb - 1])
		{
			double		w = block_weight[nb - 2] + block_weight[nb - 1];

			block_mean[nb - 2] = (block_weight[nb - 2] * block_mean[nb - 2] + block_weight[nb - 1] * block_mean[nb - 1]) / w;
			block_weight[nb - 2] = w;
			block_end[nb - 2] = block_end[nb - 1];
			nb--;
		}
		if ((i & 0xffff) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	for (int64 b = 0, i = 0; b < nb; b++)
		for (; i <= block_end[b]; i++)
			uy[i] = block_mean[b];
	/* keep the ends and the points where the value changes on either side */
	for (int64 i = 0; i < nu; i++)
		if (i == 0 || i == nu - 1 || uy[i] != uy[i - 1] || uy[i] != uy[i + 1])
		{
			ux[kept] = ux[i];
			uy[kept] = uy[i];
			kept++;
		}
	if (kept > PG_INT32_MAX / 4)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("isotonic calibration would keep " INT64_FORMAT " knots", kept)));
	knots = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * 2 * kept);
	memcpy(knots, ux, sizeof(double) * kept);
	memcpy(knots + kept, uy, sizeof(double) * kept);
	*nknots = (int) kept;
	return knots;
}

/* Rows of the calibration source: the label and the linear predictor of each complete row. */
typedef struct CalibrationReceiver
{
	DestReceiver pub;
	const Classifier *c;
	RowEncoder	enc;
	FeatureInput label;
	Datum	   *values;
	bool	   *nulls;
	double	   *x;
	int32	   *cols;
	double	   *f;
	double	   *y;
	int64		n;
	int64		capacity;
	int64		positives;
	MemoryContext cxt;			/* the arrays */
	MemoryContext rowcxt;
} CalibrationReceiver;

static void
calibration_startup(DestReceiver *self, int operation, TupleDesc desc)
{
	CalibrationReceiver *r = (CalibrationReceiver *) self;
	const Classifier *c = r->c;
	Oid			ltype = TupleDescAttr(desc, 0)->atttypid;

	if (!numeric_input_type(ltype))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label \"%s\" must be a boolean or a number, not %s", CLF_POOL(c) + c->label,
						format_type_be(ltype))));
	feature_input_init(&r->label, ltype, FEATURE_NUMERIC, CLF_POOL(c) + c->label, r->cxt);
	for (int ft = 0; ft < c->nfeatures; ft++)
		feature_input_init((FeatureInput *) &r->enc.inputs[ft], TupleDescAttr(desc, ft + 1)->atttypid,
						   CLF_FEATURES(c)[ft].kind, CLF_NAME(c, ft), r->cxt);
}

static bool
calibration_receive(TupleTableSlot *slot, DestReceiver *self)
{
	CalibrationReceiver *r = (CalibrationReceiver *) self;
	const Classifier *c = r->c;
	MemoryContext old = MemoryContextSwitchTo(r->rowcxt);

	CHECK_FOR_INTERRUPTS();
	slot_getallattrs(slot);
	for (int ft = 0; ft < c->nfeatures; ft++)
	{
		r->values[ft] = slot->tts_values[ft + 1];
		r->nulls[ft] = slot->tts_isnull[ft + 1];
	}
	if (!slot->tts_isnull[0] && encode_row(&r->enc, r->values, r->nulls, r->x, r->cols))
	{
		Datum		label = slot->tts_values[0];
		double		lv;

		switch (r->label.kind)
		{
			case INPUT_BOOL:
				lv = DatumGetBool(label) ? 1 : 0;
				break;
			case INPUT_FLOAT8:
				lv = DatumGetFloat8(label);
				break;
			case INPUT_FLOAT4:
				lv = DatumGetFloat4(label);
				break;
			case INPUT_INT2:
				lv = DatumGetInt16(label);
				break;
			case INPUT_INT4:
				lv = DatumGetInt32(label);
				break;
			case INPUT_INT8:
				lv = (double) DatumGetInt64(label);
				break;
			default:
				lv = DatumGetFloat8(DirectFunctionCall1(numeric_float8, label));
		}
		if (lv != 0.0 && lv != 1.0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("label must be 0 or 1, not %g", lv)));
		if (r->n == r->capacity)
		{
			r->capacity *= 2;
			r->f = repalloc_huge(r->f, sizeof(double) * r->capacity);
			r->y = repalloc_huge(r->y, sizeof(double) * r->capacity);
		}
		r->f[r->n] = classifier_dot(CLF_COEF(c), c->ndense, r->x, r->cols, r->enc.ncategorical);
		r->y[r->n] = lv;
		r->positives += lv == 1.0;
		r->n++;
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->rowcxt);
	return true;
}

static void
calibration_noop(DestReceiver *self)
{
}

/*
 * personalize.calibration_fit(model, source, method): the model with a
 * calibration fitted on the rows of source (label and feature columns as in
 * training; rows with a NULL label or feature are skipped).
 */
PG_FUNCTION_INFO_V1(calibration_fit);
Datum
calibration_fit(PG_FUNCTION_ARGS)
{
	ModelHeader *m;
	char	   *source,
			   *method;
	int			kind;
	Classifier *heads[2];
	Classifier *c,
			   *r;
	CalibrationReceiver rcv;
	SPIExecuteOptions options;
	StringInfoData sql;
	MemoryContext caller = CurrentMemoryContext;
	double	   *knots = NULL;
	int			nknots = 0,
				rc;
	double		a = 0,
				b = 0;
	ModelHeader *result;

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("model, source and method must not be NULL")));
	m = model_check(PG_GETARG_DATUM(0));
	source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	method = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(method, "platt") == 0 || strcmp(method, "sigmoid") == 0)
		kind = CALIBRATION_PLATT;
	else if (strcmp(method, "isotonic") == 0)
		kind = CALIBRATION_ISOTONIC;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown calibration method \"%s\"", method),
				 errhint("Use platt or isotonic.")));
	if (m->algorithm != MODEL_LOGISTIC)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("only logistic models can be calibrated, not %s models", model_algorithm_name(m->algorithm))));
	model_classifiers(m, heads, 1);
	c = heads[0];

	memset(&rcv, 0, sizeof(rcv));
	rcv.pub.receiveSlot = calibration_receive;
	rcv.pub.rStartup = calibration_startup;
	rcv.pub.rShutdown = calibration_noop;
	rcv.pub.rDestroy = calibration_noop;
	rcv.pub.mydest = DestNone;
	rcv.c = c;
	rcv.cxt = caller;
	rcv.enc.c = c;
	rcv.enc.inputs = palloc0(sizeof(FeatureInput) * Max(c->nfeatures, 1));
	rcv.enc.what = "a calibration row";
	for (int ft = 0; ft < c->nfeatures; ft++)
		if (CLF_FEATURES(c)[ft].kind == FEATURE_CATEGORICAL)
			rcv.enc.ncategorical++;
	rcv.values = palloc(sizeof(Datum) * Max(c->nfeatures, 1));
	rcv.nulls = palloc(sizeof(bool) * Max(c->nfeatures, 1));
	rcv.x = palloc0(sizeof(double) * c->ncolumns);
	rcv.cols = palloc0(sizeof(int32) * Max(rcv.enc.ncategorical, 1));
	rcv.capacity = 1024;
	rcv.f = MemoryContextAllocHuge(caller, sizeof(double) * rcv.capacity);
	rcv.y = MemoryContextAllocHuge(caller, sizeof(double) * rcv.capacity);
	rcv.rowcxt = AllocSetContextCreate(caller, "personalize calibration rows", ALLOCSET_DEFAULT_SIZES);

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT s.%s", quote_identifier(CLF_POOL(c) + c->label));
	for (int ft = 0; ft < c->nfeatures; ft++)
		appendStringInfo(&sql, ", s.%s", quote_identifier(CLF_NAME(c, ft)));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	{
		char	   *from = psprintf("%s AS s", SourceAsRelation(source, "source"));
		const char **columns = palloc(sizeof(char *) * (c->nfeatures + 1));

		columns[0] = CLF_POOL(c) + c->label;
		for (int ft = 0; ft < c->nfeatures; ft++)
			columns[ft + 1] = CLF_NAME(c, ft);
		CheckSourceColumns(from, "source", columns, c->nfeatures + 1);
		appendStringInfo(&sql, " FROM %s", from);
	}
	memset(&options, 0, sizeof(options));
	options.read_only = true;
	options.dest = (DestReceiver *) &rcv;
	rc = SPI_execute_extended(sql.data, &options);
	if (rc != SPI_OK_SELECT && rc != SPI_OK_UTILITY)
		elog(ERROR, "calibration query failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	MemoryContextDelete(rcv.rowcxt);
	if (rcv.n == 0 || rcv.positives == 0 || rcv.positives == rcv.n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("calibration needs positive and negative rows, source \"%s\" has " INT64_FORMAT
						" rows and " INT64_FORMAT " positives", source, rcv.n, rcv.positives)));

	if (kind == CALIBRATION_PLATT)
		platt_fit(rcv.f, rcv.y, rcv.n, &a, &b);
	else
		knots = isotonic_fit(rcv.f, rcv.y, rcv.n, &nknots);
	r = classifier_copy(c, nknots, caller);
	r->calibration = kind;
	r->platt_a = kind == CALIBRATION_PLATT ? a : get_float8_nan();
	r->platt_b = kind == CALIBRATION_PLATT ? b : get_float8_nan();
	if (nknots > 0)
		memcpy(CLF_KNOTS(r), knots, sizeof(double) * 2 * nknots);
	result = model_from_classifiers(MODEL_LOGISTIC, &r, 1, model_section(m, SECTION_OPTIONS));
	PG_RETURN_DATUM(model_datum(result));
}
