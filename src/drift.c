/*
 * drift.c — how far recent interactions have moved from what the active
 * model was trained on: population stability index (PSI) and
 * Kolmogorov–Smirnov statistic of item popularity, the share of interactions
 * by users and on items the model does not know, the volume against the
 * reference period, and the PSI of logged propensity scores. Every formula is
 * in doc/operations.md; test/reference/ref_drift.py recomputes them.
 *
 * The window is read once through SPI as the caller (row-level security
 * holds) and reduced to one weight per model item and a few counts.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "sqlsource.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#define PSI_BINS 10
#define PSI_FLOOR 1e-4

static const char *const drift_options[] = {
	"as_of", "item_psi", "item_ks", "unknown_users", "unknown_items", "volume", "score_psi", NULL
};

/*
 * PSI of two histograms over the same bins: shares a and e of each, floored
 * at 1e-4 where zero, summed over bins that are non-empty on either side:
 * Σ (a - e) ln(a / e). NaN when either histogram is empty.
 */
static double
psi_of(const double *expected, const double *actual, int n)
{
	double		te = 0,
				ta = 0,
				psi = 0;

	for (int b = 0; b < n; b++)
	{
		te += expected[b];
		ta += actual[b];
	}
	if (!(te > 0) || !(ta > 0))
		return NAN;
	for (int b = 0; b < n; b++)
	{
		double		e,
					a;

		if (expected[b] == 0 && actual[b] == 0)
			continue;
		e = Max(expected[b] / te, PSI_FLOOR);
		a = Max(actual[b] / ta, PSI_FLOOR);
		psi += (a - e) * log(a / e);
	}
	return psi;
}

/* Largest gap between the cumulative shares of two histograms over ordered bins. */
static double
ks_of(const double *expected, const double *actual, int n)
{
	double		te = 0,
				ta = 0,
				ce = 0,
				ca = 0,
				d = 0;

	for (int b = 0; b < n; b++)
	{
		te += expected[b];
		ta += actual[b];
	}
	if (!(te > 0) || !(ta > 0))
		return NAN;
	for (int b = 0; b < n; b++)
	{
		ce += expected[b] / te;
		ca += actual[b] / ta;
		d = Max(d, fabs(ce - ca));
	}
	return d;
}

/* A float8[] without NULLs, NaN, infinities or negative values. */
static double *
histogram_arg(ArrayType *a, const char *what, int *n)
{
	Datum	   *values;
	bool	   *nulls;
	double	   *h;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &values, &nulls, n);
	h = palloc(sizeof(double) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		h[i] = DatumGetFloat8(values[i]);
		if (isnan(h[i]) || isinf(h[i]) || h[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("%s must hold finite non-negative counts, not %g", what, h[i])));
	}
	return h;
}

static double *
histograms_args(FunctionCallInfo fcinfo, double **actual, int *n)
{
	int			ne,
				na;
	double	   *expected = histogram_arg(PG_GETARG_ARRAYTYPE_P(0), "expected", &ne);

	*actual = histogram_arg(PG_GETARG_ARRAYTYPE_P(1), "actual", &na);
	if (ne != na)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("expected and actual must have the same length, not %d and %d", ne, na)));
	*n = ne;
	return expected;
}

/* personalize.psi(expected float8[], actual float8[]) */
PG_FUNCTION_INFO_V1(population_stability_index);
Datum
population_stability_index(PG_FUNCTION_ARGS)
{
	double	   *actual;
	int			n;
	double	   *expected = histograms_args(fcinfo, &actual, &n);
	double		psi = psi_of(expected, actual, n);

	if (isnan(psi))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(psi);
}

/* personalize.ks_statistic(expected float8[], actual float8[]) */
PG_FUNCTION_INFO_V1(ks_statistic);
Datum
ks_statistic(PG_FUNCTION_ARGS)
{
	double	   *actual;
	int			n;
	double	   *expected = histograms_args(fcinfo, &actual, &n);
	double		d = ks_of(expected, actual, n);

	if (isnan(d))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(d);
}

/* numpy.quantile(x, q) with its default ("linear") method, x sorted ascending. */
static double
quantile_linear(const double *x, int64 n, double q)
{
	double		h = (double) (n - 1) * q;
	int64		lo = (int64) floor(h);
	int64		hi = Min(lo + 1, n - 1);
	double		t = h - (double) lo;
	double		diff = x[hi] - x[lo];

	/* numpy's _lerp: from the nearer end, so that t = 1 gives x[hi] exactly */
	return t >= 0.5 ? x[hi] - diff * (1 - t) : x[lo] + diff * t;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

typedef struct ItemRank
{
	float		popularity;
	int32		index;
} ItemRank;

/* More popular first; equal popularity by ascending id (indexes follow ids). */
static int
cmp_item_rank(const void *a, const void *b)
{
	const ItemRank *x = a,
			   *y = b;

	if (x->popularity != y->popularity)
		return x->popularity > y->popularity ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

typedef struct DriftMeasures
{
	int64		window_rows;
	int64		window_users;	/* rows with a user id */
	int64		unknown_user_rows;
	int64		window_items;	/* rows with an item id */
	int64		unknown_item_rows;
	double		item_psi;
	double		item_ks;
	int64		reference_rows;
	TimestampTz reference_start;
	double		score_psi;
	int64		score_reference;
	int64		score_window;
} DriftMeasures;

/* The window's weight per model item, and its unknown users and items. */
static void
drift_read_window(LoadedModel *lm, const char *from_item, bool has_weight,
				  TimestampTz start, TimestampTz end, double *item_weight, DriftMeasures *d)
{
	char	   *sql = psprintf("SELECT s.user_id::pg_catalog.int8, s.item_id::pg_catalog.int8, %s"
							   " FROM %s WHERE s.occurred_at::pg_catalog.timestamptz OPERATOR(pg_catalog.>) $1"
							   " AND s.occurred_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<=) $2",
							   has_weight ? "s.weight::pg_catalog.float8" : "1::pg_catalog.float8", from_item);
	Oid			types[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[2] = {TimestampTzGetDatum(start), TimestampTzGetDatum(end)};
	SPIPlanPtr	plan = SPI_prepare(sql, 2, types);
	Portal		portal;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		null_user,
						null_item,
						null_weight;
			int64		user = DatumGetInt64(SPI_getbinval(tup, desc, 1, &null_user));
			int64		item = DatumGetInt64(SPI_getbinval(tup, desc, 2, &null_item));
			double		w = DatumGetFloat8(SPI_getbinval(tup, desc, 3, &null_weight));
			int32		index;

			d->window_rows++;
			if (!null_user)
			{
				d->window_users++;
				if (lm->user_ids && loaded_user(lm, user) < 0)
					d->unknown_user_rows++;
			}
			if (null_item)
				continue;
			d->window_items++;
			index = loaded_item(lm, item);
			if (index < 0)
				d->unknown_item_rows++;
			else if (!null_weight && w >= 0 && !isinf(w))
				item_weight[index] += w;	/* unusable weights are check_interactions' concern */
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
}

/* PSI and KS of the window's item distribution against the model's item popularity. */
static void
drift_items(LoadedModel *lm, const double *item_weight, DriftMeasures *d)
{
	int32		n = lm->m->nitems;
	const float *pop = lm->item_pop;
	ItemRank   *rank = palloc(sizeof(ItemRank) * Max(n, 1));
	double	   *e = palloc(sizeof(double) * Max(n, 1));
	double	   *a = palloc(sizeof(double) * Max(n, 1));
	double		be[PSI_BINS] = {0},
				ba[PSI_BINS] = {0},
				total = 0,
				before = 0;

	for (int32 i = 0; i < n; i++)
	{
		rank[i].popularity = pop[i];
		rank[i].index = i;
	}
	qsort(rank, n, sizeof(ItemRank), cmp_item_rank);
	for (int32 r = 0; r < n; r++)
	{
		e[r] = rank[r].popularity;
		a[r] = item_weight[rank[r].index];
		total += e[r];
	}
	d->item_ks = ks_of(e, a, n);
	/* bins of about a tenth of the training popularity each, by rank */
	for (int32 r = 0; r < n && total > 0; r++)
	{
		int			b = Min(PSI_BINS - 1, (int) floor(PSI_BINS * (before / total)));

		be[b] += e[r];
		ba[b] += a[r];
		before += e[r];
	}
	d->item_psi = psi_of(be, ba, PSI_BINS);
}

/* Reference rows: before the window. */
static void
drift_reference(const char *from_item, TimestampTz start, DriftMeasures *d)
{
	char	   *sql = psprintf("SELECT pg_catalog.count(*), pg_catalog.min(s.occurred_at::pg_catalog.timestamptz) FROM %s"
							   " WHERE s.occurred_at::pg_catalog.timestamptz OPERATOR(pg_catalog.<=) $1", from_item);
	Datum		args[1] = {TimestampTzGetDatum(start)};
	bool		isnull;

	if (SPI_execute_with_args(sql, 1, (Oid[]) {TIMESTAMPTZOID}, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "cannot read the reference period");
	d->reference_rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	d->reference_start = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		d->reference_start = DT_NOBEGIN;
}

/* PSI of logged scores: window against the deciles of the scores logged before it. */
static void
drift_scores(const char *model, TimestampTz start, TimestampTz end, DriftMeasures *d)
{
	Datum		args[3] = {CStringGetTextDatum(model), TimestampTzGetDatum(start), TimestampTzGetDatum(end)};
	double	   *ref,
			   *win;
	double		edges[PSI_BINS - 1],
				be[PSI_BINS] = {0},
				ba[PSI_BINS] = {0};
	int64		nref = 0,
				nwin = 0;

	if (SPI_execute_with_args("SELECT l.score, l.logged_at OPERATOR(pg_catalog.<=) $2 FROM personalize.prediction_log l"
							  " WHERE l.model OPERATOR(pg_catalog.=) $1 AND l.score IS NOT NULL AND l.logged_at OPERATOR(pg_catalog.<=) $3"
							  " AND l.score OPERATOR(pg_catalog.=) l.score",	/* not NaN */
							  3, (Oid[]) {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "cannot read personalize.prediction_log");
	ref = palloc(sizeof(double) * Max(SPI_processed, 1));
	win = palloc(sizeof(double) * Max(SPI_processed, 1));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		double		s = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull)))
			ref[nref++] = s;
		else
			win[nwin++] = s;
	}
	d->score_reference = nref;
	d->score_window = nwin;
	d->score_psi = NAN;
	if (nref == 0 || nwin == 0)
		return;
	qsort(ref, nref, sizeof(double), cmp_double);
	for (int q = 1; q < PSI_BINS; q++)
		edges[q - 1] = quantile_linear(ref, nref, (double) q / PSI_BINS);
	/* bin = number of edges <= score, as numpy.searchsorted(edges, score, "right") */
	for (int pass = 0; pass < 2; pass++)
	{
		const double *x = pass ? win : ref;
		double	   *h = pass ? ba : be;

		for (int64 i = 0; i < (pass ? nwin : nref); i++)
		{
			int			b = 0;

			while (b < PSI_BINS - 1 && edges[b] <= x[i])
				b++;
			h[b] += 1;
		}
	}
	d->score_psi = psi_of(be, ba, PSI_BINS);
}

static double
drift_threshold(Jsonb *options, const char *key, double dflt)
{
	return options_get_number(options, key, dflt, 0, 1e300);
}

static void
drift_row(Tuplestorestate *ts, TupleDesc desc, const char *metric, double value, double threshold,
		  bool two_sided, const char *detail)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	values[0] = CStringGetTextDatum(metric);
	values[1] = Float8GetDatum(value);
	values[2] = Float8GetDatum(threshold);
	if (isnan(value))
	{
		nulls[1] = true;
		nulls[3] = true;
	}
	else
		values[3] = BoolGetDatum(two_sided ? (value > threshold || value < 1 / threshold) : value > threshold);
	values[4] = CStringGetTextDatum(detail);
	tuplestore_putvalues(ts, desc, values, nulls);
}

static double
share(int64 part, int64 whole)
{
	return whole > 0 ? (double) part / (double) whole : NAN;
}

/* personalize.model_drift(model_name text, source text, recent_window interval, options jsonb) */
PG_FUNCTION_INFO_V1(model_drift);
Datum
model_drift(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *name;
	char	   *source;
	Interval   *window;
	Jsonb	   *options;
	JsonbValue *as_of_value;
	TimestampTz end,
				start;
	LoadedModel *lm;
	char	   *from_item;
	double	   *item_weight;
	DriftMeasures d;
	const char *const columns[] = {"user_id", "item_id", "occurred_at"};
	bool		has_weight;
	double		expected_rows = NAN,
				window_seconds;
	char	   *model_name;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("model_name, source, recent_window and options must not be NULL")));
	name = PG_GETARG_TEXT_PP(0);
	model_name = text_to_cstring(name);
	source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	window = PG_GETARG_INTERVAL_P(2);
	options = PG_GETARG_JSONB_P(3);
	options_check_keys(options, drift_options);
	as_of_value = getKeyJsonValueFromContainer(&options->root, "as_of", 5, NULL);
	if (as_of_value && as_of_value->type == jbvString)
		end = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
													  CStringGetDatum(pnstrdup(as_of_value->val.string.val, as_of_value->val.string.len)),
													  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	else if (as_of_value && as_of_value->type != jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"as_of\" must be a timestamp")));
	else
		end = GetCurrentTransactionStartTimestamp();
	if (TIMESTAMP_NOT_FINITE(end))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"as_of\" must be a finite timestamp")));
	window_seconds = window->time / (double) USECS_PER_SEC + window->day * (double) SECS_PER_DAY
		+ window->month * (double) DAYS_PER_MONTH * SECS_PER_DAY;
	if (!(window_seconds > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recent_window must be positive")));
	start = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(end),
													IntervalPGetDatum(window)));

	InitMaterializedSRF(fcinfo, 0);
	lm = model_cache_get(name);
	if (lm->item_pop == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" keeps no item popularity", model_name)));
	item_weight = palloc0(sizeof(double) * Max(lm->m->nitems, 1));
	memset(&d, 0, sizeof(d));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	from_item = SourceAsFromItem(source, "s");
	CheckSourceColumns(from_item, "source", columns, lengthof(columns));
	/* weight is optional (1 for every row), as for the splits */
	has_weight = SPI_execute(psprintf("SELECT * FROM %s LIMIT 0", from_item), true, 0) == SPI_OK_SELECT &&
		SPI_fnumber(SPI_tuptable->tupdesc, "weight") > 0;
	drift_read_window(lm, from_item, has_weight, start, end, item_weight, &d);
	drift_items(lm, item_weight, &d);
	drift_reference(from_item, start, &d);
	drift_scores(model_name, start, end, &d);
	SPI_finish();

	if (d.reference_rows > 0 && d.reference_start < start)
		expected_rows = d.reference_rows * window_seconds / ((start - d.reference_start) / (double) USECS_PER_SEC);

	drift_row(rsinfo->setResult, rsinfo->setDesc, "item_popularity_psi", d.item_psi,
			  drift_threshold(options, "item_psi", 0.2), false,
			  psprintf("%d bins of the training popularity against " INT64_FORMAT " window rows on known items",
					   PSI_BINS, d.window_items - d.unknown_item_rows));
	drift_row(rsinfo->setResult, rsinfo->setDesc, "item_popularity_ks", d.item_ks,
			  drift_threshold(options, "item_ks", 0.1), false,
			  psprintf("over %d items ranked by training popularity", lm->m->nitems));
	drift_row(rsinfo->setResult, rsinfo->setDesc, "unknown_users", lm->user_ids ? share(d.unknown_user_rows, d.window_users) : NAN,
			  drift_threshold(options, "unknown_users", 0.25), false,
			  lm->user_ids ? psprintf(INT64_FORMAT " of " INT64_FORMAT " window rows", d.unknown_user_rows, d.window_users)
			  : "the model keeps no users");
	drift_row(rsinfo->setResult, rsinfo->setDesc, "unknown_items", share(d.unknown_item_rows, d.window_items),
			  drift_threshold(options, "unknown_items", 0.1), false,
			  psprintf(INT64_FORMAT " of " INT64_FORMAT " window rows", d.unknown_item_rows, d.window_items));
	drift_row(rsinfo->setResult, rsinfo->setDesc, "volume_ratio", d.window_rows / expected_rows,
			  drift_threshold(options, "volume", 3), true,
			  isnan(expected_rows) ? "no rows before the window" :
			  psprintf(INT64_FORMAT " window rows against %.1f expected from " INT64_FORMAT " rows before it",
					   d.window_rows, expected_rows, d.reference_rows));
	if (d.score_reference > 0 || d.score_window > 0)
		drift_row(rsinfo->setResult, rsinfo->setDesc, "score_psi", d.score_psi,
				  drift_threshold(options, "score_psi", 0.2), false,
				  psprintf("deciles of " INT64_FORMAT " scores logged before the window against " INT64_FORMAT " in it",
						   d.score_reference, d.score_window));
	return (Datum) 0;
}
