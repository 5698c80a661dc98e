/*
 * logistic.c — logistic regression trained where the rows live.
 *
 * personalize.logistic_pass(spec, label, weight, VARIADIC features) is an
 * aggregate that, for the coefficients in the spec, sums over the rows the
 * weighted log-likelihood, its gradient and its (negated) Hessian:
 *
 *     ℓ(β) = Σ wᵢ [yᵢ ηᵢ − log(1 + e^ηᵢ)],   ηᵢ = xᵢᵀβ,  pᵢ = σ(ηᵢ)
 *     g = Σ wᵢ (yᵢ − pᵢ) xᵢ,                 H = Σ wᵢ pᵢ(1 − pᵢ) xᵢxᵢᵀ
 *
 * Its state is a double precision[] (header, g, then H row-major with only
 * the lower triangle filled) added element-wise by the combine function, so
 * parallel query (and Citus) can run the sums. One-hot columns are sparse: a
 * row touches one column per categorical feature, so a row costs
 * O(dense² + dense · categorical) instead of O(columns²).
 *
 * personalize.classifier_fit(algorithm, source, options) drives it: a
 * describe query (counts, levels, means), then Newton steps on the penalised
 * log-likelihood ℓ(β) − λ/2 ‖β‖² (intercept unpenalised, as scikit-learn),
 *
 *     (H + λI) Δ = g − λβ,   β ← β + tΔ,
 *
 * halving t while the objective would drop, until every |tΔⱼ| ≤ tolerance ·
 * max(1, |βⱼ|). Standard errors are the square roots of the diagonal of
 * (H + λI)⁻¹ at the estimate (statsmodels' Logit for λ = 0), mapped back to
 * the features' own scale when they were standardized. An uplift model is
 * two such fits, one per arm of the treatment column (T-learner).
 */
#include "postgres.h"

#include <cblas.h>
#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "classifier.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "model.h"
#include "nodes/nodeFuncs.h"
#include "nodes/primnodes.h"
#include "portability/instr_time.h"
#include "sqlsource.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"

/* LAPACK (OpenBLAS): Cholesky factorization and inverse */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

/*
 * The aggregate state, a double precision[]: a header, the coefficients β
 * the pass is for, the gradient g, the Hessian H (p x p, row-major, lower
 * triangle filled), then a buffer of up to PASS_BLOCK rows not yet added:
 * their dense columns (standardized, column-major: PASS_BLOCK per column),
 * labels, weights and one-hot column numbers. The transition function only
 * fills the buffer; a full block is added at once, so η, the gradient and
 * the Hessian are computed by loops over 64 rows that vectorise (the
 * per-row triangular update becomes dot products of length 64). The
 * combine and final functions add what is left; β in the state lets them.
 */
#define ST_COLUMNS		0		/* p */
#define ST_DENSE		1		/* nd: dense columns */
#define ST_CATEGORICAL	2		/* nc: one-hot column numbers per row */
#define ST_ROWS			3
#define ST_NULL_ROWS	4
#define ST_WEIGHT		5
#define ST_POSITIVES	6
#define ST_LOGLIK		7
#define ST_MIN_POSITIVE 8		/* smallest η of a positive row */
#define ST_MAX_NEGATIVE 9		/* largest η of a negative row */
#define ST_BUFFERED		10		/* rows in the buffer */
#define ST_HEADER		11
#define PASS_BLOCK		64
#define FLOAT8_EXPONENT_BITS UINT64CONST(0x7FF0000000000000)
#define FLOAT8_EXPONENT_ONE UINT64CONST(0x0010000000000000)
#define FLOAT8_SIGN_BIT		UINT64CONST(0x8000000000000000)

/* offsets of the parts of a state */
#define ST_BETA(p)		(ST_HEADER)
#define ST_GRADIENT(p)	(ST_HEADER + (Size) (p))
#define ST_HESSIAN(p)	(ST_HEADER + 2 * (Size) (p))
#define ST_BUFFER(p)	(ST_HEADER + 2 * (Size) (p) + (Size) (p) * (p))

static const char *const classifier_options[] = {
	"label", "features", "categorical", "weight", "treatment", "l2", "intercept", "standardize",
	"class_weight", "drop_first", "skip_nulls", "tolerance", "max_iterations", "verbose", NULL
};

/* ---------- the pass aggregate ---------- */

typedef struct PassCache
{
	Classifier *c;
	RowEncoder	enc;
	FeatureInput label;
	FeatureInput weight;
	FeatureInput *inputs;
	Datum	   *values;
	bool	   *nulls;
	double	   *x;
	double	   *inv_scale;
	int32	   *cols;
	int			first_scaled;	/* dense columns from here are standardized */
	bool		all_float8;		/* every feature a float8 number: no encoding */
	bool		unscaled;		/* centers 0, scales 1: (x - 0) * 1 = x, a copy */
	ArrayType  *last_state;		/* the state checked by the previous call */
} PassCache;

static inline Size
pass_state_length(int p, int nd, int nc)
{
	return ST_BUFFER(p) + (Size) PASS_BLOCK * (nd + nc + 2);
}

static PassCache *
pass_cache(FunctionCallInfo fcinfo)
{
	PassCache  *pc = (PassCache *) fcinfo->flinfo->fn_extra;
	Aggref	   *aggref;
	Node	   *spec_arg;
	bytea	   *spec;
	MemoryContext old;
	Classifier *c;
	int			nargs = PG_NARGS() - 4;
	Oid			label_type,
				weight_type;

	if (pc)
	{
		/* a new aggregation (a group, a rescan) may come with another spec */
		if (!PG_ARGISNULL(0) || PG_ARGISNULL(1))
			return pc;
		spec = PG_GETARG_BYTEA_PP(1);
		if (VARSIZE_ANY_EXHDR(spec) == (Size) pc->c->size && memcmp(VARDATA_ANY(spec), pc->c, pc->c->size) == 0)
			return pc;
		fcinfo->flinfo->fn_extra = NULL;
	}
	label_type = get_fn_expr_argtype(fcinfo->flinfo, 2);
	weight_type = get_fn_expr_argtype(fcinfo->flinfo, 3);
	/* the spec must be one value for the whole aggregation: a constant, a parameter, a sub-select */
	aggref = AggGetAggref(fcinfo);
	spec_arg = aggref ? (Node *) ((TargetEntry *) linitial(aggref->args))->expr : NULL;
	if (spec_arg == NULL || !(IsA(spec_arg, Const) || IsA(spec_arg, Param)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the spec of logistic_pass must be a constant, a query parameter or a sub-select")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the spec of logistic_pass must not be NULL")));
	if (!numeric_input_type(label_type) || !numeric_input_type(weight_type) || weight_type == BOOLOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("logistic_pass needs a boolean or numeric label and a numeric weight, not %s and %s",
						format_type_be(label_type), format_type_be(weight_type))));
	spec = PG_GETARG_BYTEA_PP(1);

	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	pc = palloc0(sizeof(PassCache));
	c = palloc(VARSIZE_ANY_EXHDR(spec));
	memcpy(c, VARDATA_ANY(spec), VARSIZE_ANY_EXHDR(spec));
	classifier_validate(c, VARSIZE_ANY_EXHDR(spec));
	pc->c = c;
	if (nargs != c->nfeatures)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the spec has %d features, not %d", c->nfeatures, nargs)));
	feature_input_init(&pc->label, label_type, FEATURE_NUMERIC, "label", fcinfo->flinfo->fn_mcxt);
	feature_input_init(&pc->weight, weight_type, FEATURE_NUMERIC, "weight", fcinfo->flinfo->fn_mcxt);
	pc->inputs = palloc0(sizeof(FeatureInput) * Max(c->nfeatures, 1));
	pc->values = palloc0(sizeof(Datum) * Max(c->nfeatures, 1));
	pc->nulls = palloc0(sizeof(bool) * Max(c->nfeatures, 1));
	pc->enc.c = c;
	pc->enc.inputs = pc->inputs;
	pc->enc.what = "a training row";
	pc->all_float8 = true;
	for (int f = 0; f < c->nfeatures; f++)
	{
		feature_input_init(&pc->inputs[f], get_fn_expr_argtype(fcinfo->flinfo, f + 4),
						   CLF_FEATURES(c)[f].kind, CLF_NAME(c, f), fcinfo->flinfo->fn_mcxt);
		if (CLF_FEATURES(c)[f].kind == FEATURE_CATEGORICAL)
			pc->enc.ncategorical++;
		if (CLF_FEATURES(c)[f].kind != FEATURE_NUMERIC || pc->inputs[f].kind != INPUT_FLOAT8)
			pc->all_float8 = false;
	}
	pc->x = palloc0(sizeof(double) * c->ncolumns);
	pc->cols = palloc0(sizeof(int32) * Max(pc->enc.ncategorical, 1));
	pc->inv_scale = palloc(sizeof(double) * Max(c->ndense, 1));
	for (int j = 0; j < c->ndense; j++)
		pc->inv_scale[j] = 1.0 / CLF_SCALE(c)[j];
	pc->first_scaled = (c->flags & CLASSIFIER_INTERCEPT) ? 1 : 0;
	pc->unscaled = true;
	for (int j = pc->first_scaled; j < c->ndense; j++)
		pc->unscaled &= CLF_CENTER(c)[j] == 0.0 && pc->inv_scale[j] == 1.0;
	/* the fast path writes one dense column per feature after the intercept */
	if (c->ndense != pc->first_scaled + c->nfeatures || pc->enc.ncategorical != 0)
		pc->all_float8 = false;
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = pc;
	return pc;
}

static ArrayType *
pass_state_new(MemoryContext cxt, const Classifier *c, int nc)
{
	int			p = c->ncolumns;
	Size		n = pass_state_length(p, c->ndense, nc);
	Size		bytes = ARR_OVERHEAD_NONULLS(1) + sizeof(double) * n;
	ArrayType  *a = MemoryContextAllocExtended(cxt, bytes, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	double	   *st;

	SET_VARSIZE(a, bytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = FLOAT8OID;
	ARR_DIMS(a)[0] = (int) n;
	ARR_LBOUND(a)[0] = 1;
	st = (double *) ARR_DATA_PTR(a);
	st[ST_COLUMNS] = p;
	st[ST_DENSE] = c->ndense;
	st[ST_CATEGORICAL] = nc;
	st[ST_MIN_POSITIVE] = get_float8_infinity();
	st[ST_MAX_NEGATIVE] = -get_float8_infinity();
	memcpy(st + ST_BETA(p), CLF_COEF_FIT(c), sizeof(double) * p);
	return a;
}

static void
pass_state_invalid(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid logistic_pass state")));
}

static double *
pass_state_values(ArrayType *a, int *p, int *nd, int *nc)
{
	double	   *st;
	int			n;

	if (ARR_NDIM(a) != 1 || ARR_HASNULL(a) || ARR_ELEMTYPE(a) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid logistic_pass state")));
	st = (double *) ARR_DATA_PTR(a);
	n = ARR_DIMS(a)[0];
	/* counts are checked as doubles before they become ints */
	if (n < ST_HEADER || !(st[ST_COLUMNS] >= 1 && st[ST_COLUMNS] <= CLASSIFIER_MAX_COLUMNS) ||
		!(st[ST_DENSE] >= 0 && st[ST_DENSE] <= st[ST_COLUMNS]) ||
		!(st[ST_CATEGORICAL] >= 0 && st[ST_CATEGORICAL] <= st[ST_COLUMNS]) ||
		!(st[ST_BUFFERED] >= 0 && st[ST_BUFFERED] <= PASS_BLOCK) ||
		st[ST_COLUMNS] != rint(st[ST_COLUMNS]) || st[ST_DENSE] != rint(st[ST_DENSE]) ||
		st[ST_CATEGORICAL] != rint(st[ST_CATEGORICAL]) || st[ST_BUFFERED] != rint(st[ST_BUFFERED]))
		pass_state_invalid();
	*p = (int) st[ST_COLUMNS];
	*nd = (int) st[ST_DENSE];
	*nc = (int) st[ST_CATEGORICAL];
	if ((Size) n != pass_state_length(*p, *nd, *nc))
		pass_state_invalid();
	/* buffered one-hot column numbers index H: -1 or a column after the dense ones */
	{
		const double *C = st + ST_BUFFER(*p) + (Size) PASS_BLOCK * (*nd + 2);
		int			k = (int) st[ST_BUFFERED];

		for (int m = 0; m < *nc; m++)
			for (int i = 0; i < k; i++)
			{
				double		col = C[(Size) m * PASS_BLOCK + i];

				if (!(col == -1 || (col >= *nd && col < *p && col == rint(col))))
					pass_state_invalid();
			}
	}
	return st;
}

/*
 * Adds the k rows buffered in src (its β) to dst's sums (dst may be src):
 * per row η, p = σ(η), the log-likelihood, r = w(y - p), h = w p(1 - p);
 * then g += Xᵀr and H += Xᵀ diag(h) X over the dense columns, and the
 * one-hot terms row by row.
 */
static pg_attribute_always_inline void
pass_add_rows(double *dst, const double *src, int p, int nd, int nc, int k)
{
	const double *beta = src + ST_BETA(p);
	const double *X = src + ST_BUFFER(p);
	const double *Y = X + (Size) PASS_BLOCK * nd;
	const double *W = Y + PASS_BLOCK;
	const double *C = W + PASS_BLOCK;
	double	   *g = dst + ST_GRADIENT(p);
	double	   *H = dst + ST_HESSIAN(p);
	double		eta[PASS_BLOCK],
				e[PASS_BLOCK],
				r[PASS_BLOCK],
				h[PASS_BLOCK],
				hx[PASS_BLOCK],
				hx1[PASS_BLOCK];
	double		loglik = 0.0,
				weight = 0.0,
				positives = 0.0,
				min_positive = dst[ST_MIN_POSITIVE],
				max_negative = dst[ST_MAX_NEGATIVE];

	for (int i = 0; i < k; i++)
		eta[i] = 0.0;
	for (int j = 0; j < nd; j++)
	{
		const double *xj = X + (Size) j * PASS_BLOCK;
		double		b = beta[j];

		for (int i = 0; i < k; i++)
			eta[i] += b * xj[i];
	}
	for (int c = 0; c < nc; c++)
		for (int i = 0; i < k; i++)
		{
			int			col = (int) C[(Size) c * PASS_BLOCK + i];

			if (col >= 0)
				eta[i] += beta[col];
		}
	for (int i = 0; i < k; i++)
		if (!isfinite(eta[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the linear predictor of a training row is out of range (%g)", eta[i]),
					 errhint("Standardize the features with the option \"standardize\".")));
	/* one exponential per row (libm's, not vectorised: the same digits as a row at a time) */
	for (int i = 0; i < k; i++)
		e[i] = exp(-fabs(eta[i]));

	/*
	 * σ(η) = 1/(1 + e) or e/(1 + e), and the log-likelihood
	 * w [yη - softplus(η)] with softplus(η) = max(η, 0) + log1p(e): here
	 * the terms but log1p, whose sum follows. Branch free, to vectorise
	 * (y is 0 or 1, so y e and (1 - y) e are exact).
	 */
	{
		double		wpos = 0.0,
					wneg = 0.0,
					product[2] = {1.0, 1.0},
					mismatches = 0.0;	/* a double: the loop vectorises */
		int			first;

		for (first = 0; first < k && Y[first] != 1.0; first++)
			;
		if (first < k)
			wpos = W[first];
		for (first = 0; first < k && Y[first] == 1.0; first++)
			;
		if (first < k)
			wneg = W[first];
		for (int i = 0; i < k; i++)
		{
			double		w = W[i],
						pr = (eta[i] >= 0 ? 1.0 : e[i]) / (1.0 + e[i]);

			r[i] = w * (Y[i] - pr);
			h[i] = w * pr * (1.0 - pr);
			weight += w;
			positives += Y[i];
			loglik -= w * (Max(eta[i], 0.0) - Y[i] * eta[i]);
			product[1] *= 1.0 + Y[i] * e[i];
			product[0] *= 1.0 + (1.0 - Y[i]) * e[i];
			mismatches += w != (Y[i] == 1.0 ? wpos : wneg);
		}

		/*
		 * Σ wᵢ log1p(eᵢ): with one weight per label in the block (no weight
		 * column), one logarithm per label of the product of the 1 + eᵢ in
		 * (1, 2] (at most 2^64, no overflow; an absolute error of about
		 * 2^-53 per row either way), else a log1p per row.
		 */
		if (mismatches == 0.0)
			loglik -= wneg * log(product[0]) + wpos * log(product[1]);
		else
			for (int i = 0; i < k; i++)
				loglik -= W[i] * log1p(e[i]);
	}
	for (int i = 0; i < k; i++)
	{
		bool		counts = W[i] > 0;
		double		pos = counts && Y[i] == 1.0 ? eta[i] : min_positive,
					neg = counts && Y[i] != 1.0 ? eta[i] : max_negative;

		min_positive = pos < min_positive ? pos : min_positive;
		max_negative = neg > max_negative ? neg : max_negative;
	}
	dst[ST_ROWS] += k;
	dst[ST_WEIGHT] += weight;
	dst[ST_POSITIVES] += positives;
	dst[ST_LOGLIK] += loglik;
	dst[ST_MIN_POSITIVE] = min_positive;
	dst[ST_MAX_NEGATIVE] = max_negative;

	/*
	 * g += Xᵀr and the lower triangle of H += Xᵀ diag(h) X: two rows a,
	 * a + 1 of H against four columns at a time (6 loads of the block per
	 * 8 multiply-adds, loops over the rows that vectorise, no remainder
	 * loops: columns past the triangle are computed and dropped; an odd
	 * last row is paired with itself).
	 */
	for (int a = 0; a < nd; a += 2)
	{
		const double *xa = X + (Size) a * PASS_BLOCK;
		bool		pair = a + 1 < nd;
		const double *xa1 = pair ? xa + PASS_BLOCK : xa;
		double	   *row = H + (Size) a * p;
		double	   *row1 = row + p;
		double		ga = 0.0,
					ga1 = 0.0;
		int			last = pair ? a + 1 : a;	/* the last column needed */

		for (int i = 0; i < k; i++)
		{
			ga += r[i] * xa[i];
			hx[i] = h[i] * xa[i];
			ga1 += r[i] * xa1[i];
			hx1[i] = h[i] * xa1[i];
		}
		g[a] += ga;
		if (pair)
			g[a + 1] += ga1;
		for (int b = 0; b <= last; b += 4)
		{
			const double *x0 = X + (Size) b * PASS_BLOCK,
					   *x1 = X + (Size) Min(b + 1, nd - 1) * PASS_BLOCK,
					   *x2 = X + (Size) Min(b + 2, nd - 1) * PASS_BLOCK,
					   *x3 = X + (Size) Min(b + 3, nd - 1) * PASS_BLOCK;
			double		s00 = 0.0,
						s01 = 0.0,
						s02 = 0.0,
						s03 = 0.0,
						s10 = 0.0,
						s11 = 0.0,
						s12 = 0.0,
						s13 = 0.0;

			for (int i = 0; i < k; i++)
			{
				s00 += hx[i] * x0[i];
				s01 += hx[i] * x1[i];
				s02 += hx[i] * x2[i];
				s03 += hx[i] * x3[i];
				s10 += hx1[i] * x0[i];
				s11 += hx1[i] * x1[i];
				s12 += hx1[i] * x2[i];
				s13 += hx1[i] * x3[i];
			}
			{
				double		s[2][4] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}};

				for (int q = 0; q < 4 && b + q <= last; q++)
				{
					if (b + q <= a)
						row[b + q] += s[0][q];
					if (pair)
						row1[b + q] += s[1][q];
				}
			}
		}
	}
	for (int i = 0; i < k && nc > 0; i++)
		for (int c = 0; c < nc; c++)
		{
			int			ca = (int) C[(Size) c * PASS_BLOCK + i];
			double	   *row;

			if (ca < 0)
				continue;
			row = H + (Size) ca * p;
			g[ca] += r[i];
			for (int b = 0; b < nd; b++)
				row[b] += h[i] * X[(Size) b * PASS_BLOCK + i];
			for (int m = 0; m < c; m++)
			{
				int			cm = (int) C[(Size) m * PASS_BLOCK + i];

				if (cm >= 0)
					row[cm] += h[i];
			}
			row[ca] += h[i];
		}
}

/* A full block has a constant count of rows: loops without remainders. */
static MODEL_KERNEL void
pass_add_block(double *dst, const double *src, int p, int nd, int nc, int k)
{
	if (k == PASS_BLOCK)
		pass_add_rows(dst, src, p, nd, nc, PASS_BLOCK);
	else
		pass_add_rows(dst, src, p, nd, nc, k);
}

static void
pass_flush(double *st, int p, int nd, int nc)
{
	int			k = (int) st[ST_BUFFERED];

	if (k > 0)
		pass_add_block(st, st, p, nd, nc, k);
	st[ST_BUFFERED] = 0;
}

/*
 * x[j] = (x[j] - center[j]) / scale[j]; false when a value is not finite
 * (x - x is 0 for finite x and NaN otherwise: a sum that vectorises).
 */
static inline bool
pass_standardize(int n, const double *restrict center, const double *restrict inv_scale, double *restrict x)
{
	double		check = 0.0;

	for (int j = 0; j < n; j++)
	{
		check += x[j] - x[j];
		x[j] = (x[j] - center[j]) * inv_scale[j];
	}
	return !isnan(check);
}

/* The first dense value that is not finite, named in an error. */
static void
pass_not_finite(const PassCache *pc, const double *x)
{
	const Classifier *c = pc->c;
	const ClassifierFeature *features = CLF_FEATURES(c);

	for (int f = 0; f < c->nfeatures; f++)
	{
		const ClassifierFeature *ft = &features[f];

		if (ft->kind == FEATURE_CATEGORICAL)
			continue;
		for (int j = ft->column; j < ft->column + ft->width; j++)
			if (!isfinite(x[j]))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("feature \"%s\" must be finite, not \"%s\"", CLF_NAME(c, f),
								isnan(x[j]) ? "NaN" : x[j] > 0 ? "Infinity" : "-Infinity")));
	}
}

/* A training row with a NULL: counted, or an error without the option skip_nulls. */
static void
pass_null_row(double *st, const Classifier *c)
{
	if (!(c->flags & CLASSIFIER_SKIP_NULLS))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a training row has a NULL label, weight or feature"),
				 errhint("Leave such rows out with the option \"skip_nulls\".")));
	st[ST_NULL_ROWS] += 1;
}

/*
 * Label and weight checked, then the row into the block buffer (x NULL: its
 * dense features are there already); a full block is added to the sums.
 */
static void
pass_buffer_row(double *st, const Classifier *c, int p, int nd, int nc, const double *x,
				const int32 *cols, double y, double w)
{
	int			k = (int) st[ST_BUFFERED];
	double	   *buffer = st + ST_BUFFER(p);

	if (y != 0.0 && y != 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("label must be 0 or 1, not %g", y)));
	if (!(w >= 0.0 && isfinite(w)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("weight must be finite and not negative, not %g", w)));
	if (x)
		for (int j = 0; j < nd; j++)
			buffer[(Size) j * PASS_BLOCK + k] = x[j];
	buffer += (Size) nd * PASS_BLOCK;
	buffer[k] = y;
	buffer[PASS_BLOCK + k] = w * (y == 1.0 ? c->weight_positive : c->weight_negative);
	buffer += 2 * PASS_BLOCK;
	for (int m = 0; m < nc; m++)
		buffer[(Size) m * PASS_BLOCK + k] = cols[m];
	st[ST_BUFFERED] = k + 1;
	if (k + 1 == PASS_BLOCK)
		pass_flush(st, p, nd, nc);
}

PG_FUNCTION_INFO_V1(logistic_pass_transfn);
Datum
logistic_pass_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	PassCache  *pc;
	const Classifier *c;
	ArrayType  *state;
	double	   *st,
			   *x;
	int			p,
				nd,
				nc,
				k;
	bool		complete = true,
				buffered = false;	/* the dense values are in the buffer already */

	pc = (PassCache *) fcinfo->flinfo->fn_extra;
	if (pc && !PG_ARGISNULL(0) && DatumGetPointer(PG_GETARG_DATUM(0)) == (Pointer) pc->last_state)
	{
		/*
		 * The state this call site returned last time, in an aggregate: it was
		 * checked then (the usual call, without the checks' function calls)
		 */
		state = pc->last_state;
		c = pc->c;
		st = (double *) ARR_DATA_PTR(state);
		p = c->ncolumns;
		nd = c->ndense;
	}
	else
	{
		int			snc;

		if (!AggCheckCallContext(fcinfo, &aggcxt))
			elog(ERROR, "logistic_pass_transfn called in non-aggregate context");
		pc = pass_cache(fcinfo);
		c = pc->c;
		state = PG_ARGISNULL(0) ? pass_state_new(aggcxt, c, pc->enc.ncategorical) : PG_GETARG_ARRAYTYPE_P(0);
		st = pass_state_values(state, &p, &nd, &snc);
		if (p != c->ncolumns || nd != c->ndense || snc != pc->enc.ncategorical ||
			memcmp(st + ST_BETA(p), CLF_COEF_FIT(c), sizeof(double) * p) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid logistic_pass state")));
		pc->last_state = state;
	}
	x = pc->x;
	nc = pc->enc.ncategorical;

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		complete = false;
	else if (pc->all_float8)
	{
		/*
		 * Numbers only: copied (standardized) straight into the buffer's next
		 * row; the row counts only once ST_BUFFERED moves on, below. Scalar
		 * loads of the arguments (the executor has just stored them one by
		 * one: a wider load would wait for those stores), integer tests (no
		 * chain of floating-point adds): the top bit of not_finite is set
		 * when all exponent bits of a value are, Inf or NaN.
		 */
		const NullableDatum *args = fcinfo->args + 4;
		const double *center = CLF_CENTER(c) + pc->first_scaled;
		const double *inv_scale = pc->inv_scale + pc->first_scaled;
		double	   *column;
		int			nf = c->nfeatures;
		bool		any_null = false;
		uint64		not_finite = 0;

		k = (int) st[ST_BUFFERED];
		if (c->flags & CLASSIFIER_INTERCEPT)
			st[ST_BUFFER(p) + k] = 1.0;
		column = st + ST_BUFFER(p) + (Size) pc->first_scaled * PASS_BLOCK + k;
		if (pc->unscaled)
		{
#pragma GCC unroll 4
			for (int f = 0; f < nf; f++)
			{
				any_null |= args[f].isnull;
				not_finite |= ((uint64) args[f].value & FLOAT8_EXPONENT_BITS) + FLOAT8_EXPONENT_ONE;
				column[(Size) f * PASS_BLOCK] = DatumGetFloat8(args[f].value);
			}
		}
		else
		{
#pragma GCC unroll 4
			for (int f = 0; f < nf; f++)
			{
				any_null |= args[f].isnull;
				not_finite |= ((uint64) args[f].value & FLOAT8_EXPONENT_BITS) + FLOAT8_EXPONENT_ONE;
				column[(Size) f * PASS_BLOCK] = (DatumGetFloat8(args[f].value) - center[f]) * inv_scale[f];
			}
		}
		if (!any_null && (not_finite & FLOAT8_SIGN_BIT))
		{
			for (int f = 0; f < nf; f++)
				x[pc->first_scaled + f] = DatumGetFloat8(args[f].value);
			pass_not_finite(pc, x);
		}
		complete = !any_null;
		buffered = true;
	}
	else
	{
		for (int f = 0; f < c->nfeatures; f++)
		{
			pc->nulls[f] = PG_ARGISNULL(f + 4);
			pc->values[f] = pc->nulls[f] ? (Datum) 0 : PG_GETARG_DATUM(f + 4);
		}
		complete = encode_row(&pc->enc, pc->values, pc->nulls, x, pc->cols);
		if (complete)
			pass_standardize(nd - pc->first_scaled, CLF_CENTER(c) + pc->first_scaled,
							 pc->inv_scale + pc->first_scaled, x + pc->first_scaled);
	}
	if (!complete)
	{
		pass_null_row(st, c);
		PG_RETURN_ARRAYTYPE_P(state);
	}
	{
		double		y = input_kind_number(pc->label.kind, PG_GETARG_DATUM(2));
		double		w = input_kind_number(pc->weight.kind, PG_GETARG_DATUM(3));

		pass_buffer_row(st, c, p, nd, nc, buffered ? NULL : x, pc->cols, y, w);
	}
	PG_RETURN_ARRAYTYPE_P(state);
}

/*
 * personalize.logistic_pass_flat(spec, label, weight, numbers, categories):
 * the pass with concrete argument types, for Citus. Citus runs a user
 * aggregate in the shard queries only through its wrappers
 * (worker_partial_agg, coord_combine_agg), which need the declared argument
 * types exactly (no VARIADIC "any") and give the transition function no
 * fn_expr. The row comes encoded by the caller: label and weight as float8,
 * numbers = the dense features after the intercept (numeric features and
 * array elements, in the spec's order), categories = one text per
 * categorical feature (the level as the output function writes it). A NULL
 * array or element is a NULL feature. The same state, combine and final
 * functions and the same per-row arithmetic as logistic_pass.
 */
typedef struct FlatPassCache
{
	Classifier *c;
	int			nnumbers;		/* dense columns after the intercept */
	int			ncategorical;
	int		   *categorical;	/* the k-th categorical feature's number */
	double	   *x;
	double	   *inv_scale;
	int32	   *cols;
	int			first_scaled;
	ArrayType  *last_state;
} FlatPassCache;

/* The cache for this call's spec, which must be the same in every row of an aggregation. */
static FlatPassCache *
flat_pass_cache(FunctionCallInfo fcinfo, bool new_aggregation)
{
	FlatPassCache *pc = (FlatPassCache *) fcinfo->flinfo->fn_extra;
	bytea	   *spec;
	Size		len;
	MemoryContext old;
	Classifier *c;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the spec of logistic_pass_flat must not be NULL")));
	spec = PG_GETARG_BYTEA_PP(1);
	len = VARSIZE_ANY_EXHDR(spec);
	if (pc)
	{
		if (len == (Size) pc->c->size && memcmp(VARDATA_ANY(spec), pc->c, len) == 0)
			return pc;
		if (!new_aggregation)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the spec of logistic_pass_flat must be the same in every row")));
		fcinfo->flinfo->fn_extra = NULL;
	}
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	pc = palloc0(sizeof(FlatPassCache));
	c = palloc(len);
	memcpy(c, VARDATA_ANY(spec), len);
	classifier_validate(c, len);
	pc->c = c;
	pc->first_scaled = (c->flags & CLASSIFIER_INTERCEPT) ? 1 : 0;
	pc->nnumbers = c->ndense - pc->first_scaled;
	pc->categorical = palloc(sizeof(int) * Max(c->nfeatures, 1));
	for (int f = 0; f < c->nfeatures; f++)
		if (CLF_FEATURES(c)[f].kind == FEATURE_CATEGORICAL)
			pc->categorical[pc->ncategorical++] = f;
	pc->x = palloc0(sizeof(double) * c->ncolumns);
	pc->cols = palloc0(sizeof(int32) * Max(pc->ncategorical, 1));
	pc->inv_scale = palloc(sizeof(double) * Max(c->ndense, 1));
	for (int j = 0; j < c->ndense; j++)
		pc->inv_scale[j] = 1.0 / CLF_SCALE(c)[j];
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = pc;
	return pc;
}

/* The elements of a one-dimensional array argument; false when it or an element is NULL. */
static bool
flat_array(ArrayType *a, Oid elemtype, int expected, const char *what, Datum **values)
{
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	if (n != expected)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the spec takes %d %s, not %d", expected, what, n)));
	if (elemtype == FLOAT8OID && !ARR_HASNULL(a))
	{
		*values = NULL;			/* read ARR_DATA_PTR directly */
		return true;
	}
	deconstruct_array(a, elemtype, elemtype == FLOAT8OID ? sizeof(float8) : -1, elemtype == FLOAT8OID ? FLOAT8PASSBYVAL : false,
					  elemtype == FLOAT8OID ? TYPALIGN_DOUBLE : TYPALIGN_INT, values, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			return false;
	return true;
}

PG_FUNCTION_INFO_V1(logistic_pass_flat_transfn);
Datum
logistic_pass_flat_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FlatPassCache *pc;
	const Classifier *c;
	ArrayType  *state;
	double	   *st,
			   *x;
	int			p,
				nd,
				nc;
	bool		complete;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "logistic_pass_flat_transfn called in non-aggregate context");
	pc = flat_pass_cache(fcinfo, PG_ARGISNULL(0));
	c = pc->c;
	x = pc->x;
	nc = pc->ncategorical;
	state = PG_ARGISNULL(0) ? pass_state_new(aggcxt, c, nc) : PG_GETARG_ARRAYTYPE_P(0);
	if (state == pc->last_state)
	{
		st = (double *) ARR_DATA_PTR(state);
		p = c->ncolumns;
		nd = c->ndense;
	}
	else
	{
		int			snc;

		st = pass_state_values(state, &p, &nd, &snc);
		if (p != c->ncolumns || nd != c->ndense || snc != nc ||
			memcmp(st + ST_BETA(p), CLF_COEF_FIT(c), sizeof(double) * p) != 0)
			pass_state_invalid();
		pc->last_state = state;
	}

	complete = !(PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5));
	if (complete)
	{
		ArrayType  *numbers = PG_GETARG_ARRAYTYPE_P(4);
		ArrayType  *categories = PG_GETARG_ARRAYTYPE_P(5);
		Datum	   *values;

		if (c->flags & CLASSIFIER_INTERCEPT)
			x[0] = 1.0;
		complete = flat_array(numbers, FLOAT8OID, pc->nnumbers, "numbers", &values);
		if (complete)
		{
			double	   *xs = x + pc->first_scaled;

			bool		finite = true;

			if (values == NULL)
				memcpy(xs, ARR_DATA_PTR(numbers), sizeof(double) * pc->nnumbers);
			else
				for (int j = 0; j < pc->nnumbers; j++)
					xs[j] = DatumGetFloat8(values[j]);
			for (int j = 0; j < pc->nnumbers; j++)
				finite &= isfinite(xs[j]);
			if (!finite)
			{
				PassCache	named = {.c = (Classifier *) c};

				pass_not_finite(&named, x);
			}
			pass_standardize(pc->nnumbers, CLF_CENTER(c) + pc->first_scaled, pc->inv_scale + pc->first_scaled, xs);
		}
		if (complete && (complete = flat_array(categories, TEXTOID, nc, "categories", &values)))
			for (int m = 0; m < nc; m++)
			{
				text	   *t = DatumGetTextPP(values[m]);

				pc->cols[m] = classifier_level_column(c, pc->categorical[m], VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
	}
	if (!complete)
	{
		pass_null_row(st, c);
		PG_RETURN_ARRAYTYPE_P(state);
	}
	pass_buffer_row(st, c, p, nd, nc, x, pc->cols, PG_GETARG_FLOAT8(2), PG_GETARG_FLOAT8(3));
	PG_RETURN_ARRAYTYPE_P(state);
}

PG_FUNCTION_INFO_V1(logistic_pass_combine);
Datum
logistic_pass_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	ArrayType  *a,
			   *b;
	double	   *sa,
			   *sb;
	int			pa,
				pb,
				nda,
				ndb,
				nca,
				ncb;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "logistic_pass_combine called in non-aggregate context");
	a = PG_GETARG_ARRAYTYPE_P(0);
	b = PG_GETARG_ARRAYTYPE_P(1);
	sa = pass_state_values(a, &pa, &nda, &nca);
	sb = pass_state_values(b, &pb, &ndb, &ncb);
	if (pa != pb || nda != ndb || nca != ncb || memcmp(sa + ST_BETA(pa), sb + ST_BETA(pb), sizeof(double) * pa) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot combine logistic_pass states of different passes")));
	pass_flush(sa, pa, nda, nca);
	for (int i = ST_ROWS; i <= ST_LOGLIK; i++)
		sa[i] += sb[i];
	sa[ST_MIN_POSITIVE] = Min(sa[ST_MIN_POSITIVE], sb[ST_MIN_POSITIVE]);
	sa[ST_MAX_NEGATIVE] = Max(sa[ST_MAX_NEGATIVE], sb[ST_MAX_NEGATIVE]);
	for (Size i = ST_GRADIENT(pa); i < ST_BUFFER(pa); i++)
		sa[i] += sb[i];
	/* b's buffered rows, without writing into b */
	if (sb[ST_BUFFERED] > 0)
		pass_add_block(sa, sb, pa, nda, nca, (int) sb[ST_BUFFERED]);
	PG_RETURN_ARRAYTYPE_P(a);
}

/* The final function: the buffer added. */
PG_FUNCTION_INFO_V1(logistic_pass_final);
Datum
logistic_pass_final(PG_FUNCTION_ARGS)
{
	ArrayType  *a;
	double	   *st;
	int			p,
				nd,
				nc;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	/* the state is ours to change only inside the aggregate */
	a = AggCheckCallContext(fcinfo, NULL) ? PG_GETARG_ARRAYTYPE_P(0) : PG_GETARG_ARRAYTYPE_P_COPY(0);
	st = pass_state_values(a, &p, &nd, &nc);
	pass_flush(st, p, nd, nc);
	PG_RETURN_ARRAYTYPE_P(a);
}

/* ---------- options ---------- */

static JsonbValue *
option_value(Jsonb *options, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&options->root, key, strlen(key), NULL);

	return (v == NULL || v->type == jbvNull) ? NULL : v;
}

static char *
option_string(Jsonb *options, const char *key, bool required)
{
	JsonbValue *v = option_value(options, key);

	if (v == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" is required", key)));
		return NULL;
	}
	if (v->type != jbvString || v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a column name", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A jsonb array of column names; *n its length. */
static char **
option_names(Jsonb *options, const char *key, int *n)
{
	JsonbValue *v = option_value(options, key);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	char	  **names;
	int			count = 0;

	*n = 0;
	if (v == NULL)
		return NULL;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an array of column names", key)));
	names = palloc(sizeof(char *) * (JsonContainerSize(v->val.binary.data) + 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString || e.val.string.len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be an array of column names", key)));
		names[count++] = pnstrdup(e.val.string.val, e.val.string.len);
	}
	*n = count;
	return names;
}

/* ---------- describing the data ---------- */

typedef struct FitSpec
{
	const char *from;			/* relation SQL (table or subquery) */
	const char *source;			/* as given, for messages */
	int			algorithm;
	int			nfeatures;
	char	  **features;
	Oid		   *types;
	int		   *kinds;
	const char *label;
	Oid			label_type;
	const char *weight;
	const char *treatment;
	Oid			treatment_type;
	Oid			weight_type;
	bool		intercept;
	bool		standardize;
	bool		drop_first;
	bool		skip_nulls;
	bool		verbose;
	double		l2;
	bool		balanced;
	double		weight_positive;
	double		weight_negative;
	double		tolerance;
	int			max_iterations;
	char	   *y_sql;			/* label as float8 */
	char	   *w_sql;			/* weight as float8 */
	bool		citus;			/* the source reads a Citus table: passes by logistic_pass_flat */
} FitSpec;

static void levels_sql_citus(const FitSpec *fs, const int *cat, int ncat, const char *filter, const char *ok,
							 StringInfo q);

static char *
float8_sql(const char *column, Oid type)
{
	if (type == BOOLOID)
		return psprintf("(s.%s)::pg_catalog.int4::pg_catalog.float8", quote_identifier(column));
	return psprintf("(s.%s)::pg_catalog.float8", quote_identifier(column));
}

/* the rows of an arm (NULL: all rows) where nothing is NULL */
static char *
row_filter(const FitSpec *fs, const char *arm, bool only_complete)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, arm ? arm : "true");
	if (only_complete)
	{
		appendStringInfo(&s, " AND s.%s IS NOT NULL", quote_identifier(fs->label));
		if (fs->weight)
			appendStringInfo(&s, " AND s.%s IS NOT NULL", quote_identifier(fs->weight));
		for (int f = 0; f < fs->nfeatures; f++)
		{
			appendStringInfo(&s, " AND s.%s IS NOT NULL", quote_identifier(fs->features[f]));
			if (fs->kinds[f] == FEATURE_ARRAY)
				appendStringInfo(&s, " AND pg_catalog.array_position(s.%s, NULL) IS NULL",
								 quote_identifier(fs->features[f]));
		}
	}
	return s.data;
}

static double
spi_float8(int row, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);

	if (*isnull)
		return get_float8_nan();
	switch (SPI_gettypeid(SPI_tuptable->tupdesc, col))
	{
		case INT8OID:
			return (double) DatumGetInt64(d);
		case INT4OID:
			return DatumGetInt32(d);
		case NUMERICOID:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
		default:
			return DatumGetFloat8(d);
	}
}

static double
spi_number(int row, int col)
{
	bool		isnull;
	double		v = spi_float8(row, col, &isnull);

	return isnull ? 0.0 : v;
}

static int
compare_levels(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Counts, label and weight checks, means and scales, array lengths and the
 * levels of categorical features (with their label counts) for one arm.
 */
static void
describe(const FitSpec *fs, const char *arm, const char *arm_name, ClassifierDraft *d, int64 *rows,
		 int64 *null_rows, int64 *positives, double *weighted_positives, double *weighted_negatives)
{
	StringInfoData q;
	const char *filter = row_filter(fs, arm, false);
	const char *complete = row_filter(fs, arm, true);
	const char *ok = row_filter(fs, NULL, true);
	int			col,
				ncat = 0;
	double		n,
				incomplete,
				pos,
				wpos,
				wneg,
				wmin,
				wmax;
	const char *where = arm_name ? psprintf(" in the %s arm", arm_name) : "";

	/*
	 * One scan. Without skip_nulls a row with a NULL is an error, so the
	 * aggregates need no filter (they skip NULL inputs) and the NULL counts
	 * say whether to raise it; with skip_nulls only complete rows are read,
	 * and a second, plain count finds how many were left out.
	 */
	initStringInfo(&q);
	appendStringInfo(&q, "SELECT pg_catalog.count(*), pg_catalog.count(*) - pg_catalog.count(s.%s)", quote_identifier(fs->label));
	if (fs->weight)
		appendStringInfo(&q, ", pg_catalog.count(*) - pg_catalog.count(s.%s)", quote_identifier(fs->weight));
	else
		appendStringInfoString(&q, ", 0");
	for (int f = 0; f < fs->nfeatures; f++)
	{
		const char *c = quote_identifier(fs->features[f]);

		if (fs->kinds[f] == FEATURE_ARRAY)
			appendStringInfo(&q, ", pg_catalog.count(*) FILTER (WHERE s.%s IS NULL OR pg_catalog.array_position(s.%s, NULL) IS NOT NULL)", c, c);
		else
			appendStringInfo(&q, ", pg_catalog.count(*) - pg_catalog.count(s.%s)", c);
	}
	appendStringInfo(&q, ", pg_catalog.count(*) FILTER (WHERE %s = 1)", fs->y_sql);
	appendStringInfo(&q, ", pg_catalog.count(*) FILTER (WHERE %s <> 1 AND %s <> 0)", fs->y_sql, fs->y_sql);
	appendStringInfo(&q, ", pg_catalog.sum(%s) FILTER (WHERE %s = 1)", fs->w_sql, fs->y_sql);
	appendStringInfo(&q, ", pg_catalog.sum(%s) FILTER (WHERE %s = 0)", fs->w_sql, fs->y_sql);
	appendStringInfo(&q, ", pg_catalog.min(%s), pg_catalog.max(%s)", fs->w_sql, fs->w_sql);
	for (int f = 0; f < fs->nfeatures; f++)
	{
		const char *c = quote_identifier(fs->features[f]);

		if (fs->kinds[f] == FEATURE_NUMERIC)
		{
			char	   *x = float8_sql(fs->features[f], fs->types[f]);

			/* one transition state (float8_accum) serves both */
			appendStringInfo(&q, ", pg_catalog.avg(%s), pg_catalog.stddev_pop(%s)", x, x);
		}
		else if (fs->kinds[f] == FEATURE_ARRAY)
			appendStringInfo(&q, ", pg_catalog.min(pg_catalog.cardinality(s.%s)), pg_catalog.max(pg_catalog.cardinality(s.%s))"
							 ", pg_catalog.max(pg_catalog.array_ndims(s.%s))", c, c, c);
		else
			ncat++;
	}
	appendStringInfo(&q, " FROM %s AS s WHERE %s", fs->from, fs->skip_nulls ? complete : filter);
	if (SPI_execute(q.data, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "describe query failed: %s", q.data);

	n = spi_number(0, 1);
	incomplete = 0;
	for (int c = 2; c <= 3 + fs->nfeatures; c++)
		incomplete += spi_number(0, c);
	if (incomplete > 0)
	{
		const char *what = fs->label;
		double		count = spi_number(0, 2);

		if (count == 0)
		{
			what = fs->weight;
			count = spi_number(0, 3);
			for (int f = 0; f < fs->nfeatures && count == 0; f++)
			{
				what = fs->features[f];
				count = spi_number(0, 4 + f);
			}
		}
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("column \"%s\" is NULL in %.0f of the %.0f rows of source \"%s\"%s",
						what, count, n, fs->source, where),
				 errhint("Leave rows with a NULL out with the option \"skip_nulls\", or fill them in.")));
	}
	if (fs->skip_nulls)
	{
		/* the rows left out; the statistics above are kept in the SPI tuple table */
		SPITupleTable *stats = SPI_tuptable;
		char	   *count_sql = psprintf("SELECT pg_catalog.count(*) FROM %s AS s WHERE %s AND NOT (%s)", fs->from, filter, ok);

		SPI_tuptable = NULL;
		if (SPI_execute(count_sql, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "describe query failed: %s", count_sql);
		incomplete = spi_number(0, 1);
		SPI_freetuptable(SPI_tuptable);
		SPI_tuptable = stats;
	}
	if (n + incomplete == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source \"%s\" has no rows%s", fs->source, where)));
	col = 4 + fs->nfeatures;
	pos = spi_number(0, col++);
	if (spi_number(0, col++) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("label \"%s\" must be 0 or 1 (or a boolean)", fs->label)));
	wpos = spi_number(0, col++);
	wneg = spi_number(0, col++);
	wmin = spi_number(0, col++);
	wmax = spi_number(0, col++);
	*rows = (int64) n;
	*null_rows = (int64) incomplete;
	*positives = (int64) pos;
	*weighted_positives = wpos;
	*weighted_negatives = wneg;
	if (*rows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source \"%s\" has no rows without a NULL%s", fs->source, where)));
	if (pos == 0 || pos == *rows)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("label \"%s\" is constant: all " INT64_FORMAT " training rows%s are %s",
						fs->label, *rows, where, pos == 0 ? "negative" : "positive"),
				 errhint("A classifier needs positive and negative rows.")));
	if (fs->weight && (!(wmin >= 0) || !isfinite(wmax) || !isfinite(wpos) || !isfinite(wneg)))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("weight column \"%s\" must be finite and not negative", fs->weight)));
	if (fs->weight && !(wpos > 0 && wneg > 0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("weight column \"%s\" gives %s rows no weight", fs->weight, wpos > 0 ? "negative" : "positive")));
	if (fs->balanced)
	{
		d->weight_positive = (double) *rows / (2.0 * pos);
		d->weight_negative = (double) *rows / (2.0 * (*rows - pos));
	}
	else
	{
		d->weight_positive = fs->weight_positive;
		d->weight_negative = fs->weight_negative;
	}

	for (int f = 0; f < fs->nfeatures; f++)
	{
		if (fs->kinds[f] == FEATURE_NUMERIC)
		{
			double		mean = spi_number(0, col),
						sd = spi_number(0, col + 1);

			col += 2;
			if (!isfinite(mean) || !isfinite(sd))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("feature \"%s\" must be finite, but a row%s has NaN or infinity", fs->features[f], where)));
			/* a constant sums to a multiple of itself with rounding: allow that */
			if (sd <= 1e-12 * fabs(mean) && (fs->intercept || fs->standardize))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("feature \"%s\" is constant: every training row%s has the value %g", fs->features[f], where, mean),
						 errhint("Leave it out: the intercept already models a constant.")));
			d->widths[f] = 1;
			d->center[f] = palloc(sizeof(double));
			d->scale[f] = palloc(sizeof(double));
			d->center[f][0] = (fs->standardize && fs->intercept) ? mean : 0.0;
			d->scale[f][0] = fs->standardize ? sd : 1.0;
		}
		else if (fs->kinds[f] == FEATURE_ARRAY)
		{
			double		lo = spi_number(0, col),
						hi = spi_number(0, col + 1),
						ndims = spi_number(0, col + 2);

			col += 3;
			if (ndims > 1)
				ereport(ERROR,
						(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						 errmsg("feature \"%s\" must be a one-dimensional array", fs->features[f])));
			if (lo != hi || lo < 1)
				ereport(ERROR,
						(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						 errmsg("feature \"%s\" must have the same number of elements in every row, not %.0f to %.0f",
								fs->features[f], lo, hi)));
			d->widths[f] = (int) lo;
			d->center[f] = palloc0(sizeof(double) * d->widths[f]);
			d->scale[f] = palloc(sizeof(double) * d->widths[f]);
			for (int e = 0; e < d->widths[f]; e++)
				d->scale[f][e] = 1.0;
		}
	}

	/* per element means and scales of array features */
	for (int f = 0; f < fs->nfeatures && fs->standardize; f++)
	{
		if (fs->kinds[f] != FEATURE_ARRAY)
			continue;
		resetStringInfo(&q);
		appendStringInfo(&q, "SELECT u.i, pg_catalog.avg(u.v), pg_catalog.stddev_pop(u.v) FROM %s AS s, "
						 "pg_catalog.unnest((s.%s)::pg_catalog.float8[]) WITH ORDINALITY AS u(v, i) "
						 "WHERE %s AND %s GROUP BY u.i ORDER BY u.i",
						 fs->from, quote_identifier(fs->features[f]), filter, ok);
		if (SPI_execute(q.data, true, 0) != SPI_OK_SELECT || SPI_processed != (uint64) d->widths[f])
			elog(ERROR, "describe query failed: %s", q.data);
		for (int e = 0; e < d->widths[f]; e++)
		{
			double		mean = spi_number(e, 2),
						sd = spi_number(e, 3);

			if (!isfinite(mean) || !isfinite(sd))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("feature \"%s\" must be finite, but a row%s has NaN or infinity", fs->features[f], where)));
			if (sd == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("element %d of feature \"%s\" is constant in every training row%s", e + 1,
								fs->features[f], where)));
			d->center[f][e] = fs->intercept ? mean : 0.0;
			d->scale[f][e] = sd;
		}
	}

	/* levels of categorical features: one scan, a grouping set per feature */
	if (ncat > 0)
	{
		FeatureInput *inputs = palloc0(sizeof(FeatureInput) * fs->nfeatures);
		int		   *cat = palloc(sizeof(int) * ncat);
		int			k = 0;
		char	  **texts;
		double	   *counts,
				   *pcounts;
		int		   *feature_of;
		int			ngroups;

		resetStringInfo(&q);
		for (int f = 0; f < fs->nfeatures; f++)
			if (fs->kinds[f] == FEATURE_CATEGORICAL)
				cat[k++] = f;
		if (fs->citus)
			levels_sql_citus(fs, cat, ncat, filter, ok, &q);
		else
		{
			appendStringInfoString(&q, "SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE ");
			appendStringInfo(&q, "%s = 1)", fs->y_sql);
			for (k = 0; k < ncat; k++)
				appendStringInfo(&q, ", GROUPING(s.%s), s.%s", quote_identifier(fs->features[cat[k]]),
								 quote_identifier(fs->features[cat[k]]));
			appendStringInfo(&q, " FROM %s AS s WHERE %s AND %s GROUP BY GROUPING SETS (", fs->from, filter, ok);
			for (k = 0; k < ncat; k++)
				appendStringInfo(&q, "%s(s.%s)", k ? ", " : "", quote_identifier(fs->features[cat[k]]));
			appendStringInfoChar(&q, ')');
		}
		if (SPI_execute(q.data, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "describe query failed: %s", q.data);
		ngroups = (int) SPI_processed;
		texts = palloc(sizeof(char *) * Max(ngroups, 1));
		counts = palloc(sizeof(double) * Max(ngroups, 1));
		pcounts = palloc(sizeof(double) * Max(ngroups, 1));
		feature_of = palloc(sizeof(int) * Max(ngroups, 1));
		for (k = 0; k < ncat; k++)
			feature_input_init(&inputs[cat[k]], SPI_gettypeid(SPI_tuptable->tupdesc, 4 + 2 * k), FEATURE_CATEGORICAL,
							   fs->features[cat[k]], CurrentMemoryContext);
		for (int r = 0; r < ngroups; r++)
		{
			bool		isnull;

			for (k = 0; k < ncat; k++)
				if (DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3 + 2 * k, &isnull)) == 0)
					break;
			Assert(k < ncat);
			feature_of[r] = cat[k];
			counts[r] = spi_number(r, 1);
			pcounts[r] = spi_number(r, 2);
			{
				/* the level's text as encode_row will see it */
				int			len;
				const char *t = feature_level_text(&inputs[cat[k]],
												   SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 4 + 2 * k, &isnull),
												   &len);

				texts[r] = pnstrdup(t, len);
			}
		}
		for (k = 0; k < ncat; k++)
		{
			int			f = cat[k],
						nl = 0;
			char	  **lv = palloc(sizeof(char *) * Max(ngroups, 1));

			for (int r = 0; r < ngroups; r++)
				if (feature_of[r] == f)
					lv[nl++] = texts[r];
			qsort(lv, nl, sizeof(char *), compare_levels);
			/* equal texts of unequal values (1.0 and 1.00) become one level */
			{
				int			u = 0;

				for (int i = 0; i < nl; i++)
					if (u == 0 || strcmp(lv[u - 1], lv[i]) != 0)
						lv[u++] = lv[i];
				nl = u;
			}
			d->nlevels[f] = nl;
			d->levels[f] = lv;
			d->level_rows[f] = palloc0(sizeof(double) * Max(nl, 1));
			d->level_positives[f] = palloc0(sizeof(double) * Max(nl, 1));
			for (int r = 0; r < ngroups; r++)
			{
				char	  **hit;

				if (feature_of[r] != f)
					continue;
				hit = bsearch(&texts[r], lv, nl, sizeof(char *), compare_levels);
				d->level_rows[f][hit - lv] += counts[r];
				d->level_positives[f][hit - lv] += pcounts[r];
			}
			/* a level with one label value has no finite unpenalized estimate */
			for (int l = 0; l < nl && fs->l2 == 0; l++)
				if (d->level_positives[f][l] == 0 || d->level_positives[f][l] == d->level_rows[f][l])
					ereport(ERROR,
							(errcode(ERRCODE_DATA_EXCEPTION),
							 errmsg("level \"%s\" of feature \"%s\" has only %s labels (%.0f training rows%s)",
									lv[l], fs->features[f], d->level_positives[f][l] == 0 ? "negative" : "positive",
									d->level_rows[f][l], where),
							 errdetail("The label is quasi-separated: the unpenalized maximum likelihood estimate does not exist."),
							 errhint("Add an L2 penalty with the option \"l2\", merge rare levels, or leave these rows out.")));
		}
	}
}

/*
 * The levels query of describe() for Citus, which refuses GROUPING SETS on
 * distributed tables: a UNION ALL of one GROUP BY per categorical feature,
 * with the columns the GROUPING SETS query returns (counts, then per
 * feature its GROUPING() and its value).
 */
static void
levels_sql_citus(const FitSpec *fs, const int *cat, int ncat, const char *filter, const char *ok, StringInfo q)
{
	for (int k = 0; k < ncat; k++)
	{
		appendStringInfo(q, "%sSELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE %s = 1)",
						 k ? " UNION ALL " : "", fs->y_sql);
		for (int j = 0; j < ncat; j++)
			if (j == k)
				appendStringInfo(q, ", 0, s.%s", quote_identifier(fs->features[cat[j]]));
			else
				appendStringInfo(q, ", 1, NULL::%s", format_type_be_qualified(fs->types[cat[j]]));
		appendStringInfo(q, " FROM %s AS s WHERE %s AND %s GROUP BY s.%s", fs->from, filter, ok,
						 quote_identifier(fs->features[cat[k]]));
	}
}

/* Collects the OIDs of the relations a query reads, in subqueries, CTEs and expanded views too. */
static bool
collect_relations(Node *node, List **relids)
{
	if (node == NULL)
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			*relids = lappend_oid(*relids, rte->relid);
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, collect_relations, relids, QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, collect_relations, relids);
}

/*
 * Whether the source reads a Citus table (personalize.citus_table_type):
 * then the passes use logistic_pass_flat, which Citus pushes down to the
 * shards (it cannot wrap logistic_pass's VARIADIC "any").
 */
static bool
source_on_citus(const char *from)
{
	SPIPlanPtr	plan;
	List	   *relids = NIL;
	ListCell   *lc;
	Datum	   *oids;
	int			n = 0;
	Datum		arg;
	Oid			argtype = OIDARRAYOID;
	bool		isnull;
	bool		found;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	plan = SPI_prepare(psprintf("SELECT FROM %s AS s", from), 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		ListCell   *qc;

		foreach(qc, ((CachedPlanSource *) lfirst(lc))->query_list)
			collect_relations((Node *) lfirst(qc), &relids);
	}
	SPI_freeplan(plan);
	if (relids == NIL)
		return false;
	oids = palloc(sizeof(Datum) * list_length(relids));
	foreach(lc, relids)
		oids[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	arg = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	if (SPI_execute_with_args("SELECT pg_catalog.bool_or(personalize.citus_table_type(r.r::pg_catalog.regclass) IS NOT NULL) "
							  "FROM pg_catalog.unnest($1) AS r(r)", 1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "Citus table lookup failed");
	found = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return !isnull && found;
}

/*
 * The pass over the source by logistic_pass_flat: the dense features
 * after the intercept flattened into one float8[] in the spec's order (NULL
 * when an array feature is NULL: a NULL feature), the categorical ones as
 * the text of their level, as feature_level_text writes it (the bytes of
 * text and varchar, char without trailing blanks, else the output function).
 */
static void
flat_pass_sql(const FitSpec *fs, const char *where, StringInfo q)
{
	StringInfoData numbers,
				nulls,
				categories;
	bool		open_numbers = false;
	int			ncat = 0,
				nparts = 0;

	initStringInfo(&numbers);
	initStringInfo(&nulls);
	initStringInfo(&categories);
	for (int f = 0; f < fs->nfeatures; f++)
	{
		const char *col = quote_identifier(fs->features[f]);

		if (fs->kinds[f] == FEATURE_NUMERIC)
		{
			if (!open_numbers)
				appendStringInfoString(&numbers, nparts++ ? " OPERATOR(pg_catalog.||) ARRAY[" : "ARRAY[");
			else
				appendStringInfoString(&numbers, ", ");
			appendStringInfoString(&numbers, float8_sql(fs->features[f], fs->types[f]));
			open_numbers = true;
			continue;
		}
		if (open_numbers)
			appendStringInfoChar(&numbers, ']');
		open_numbers = false;
		if (fs->kinds[f] == FEATURE_ARRAY)
		{
			appendStringInfo(&numbers, "%s(s.%s)::pg_catalog.float8[]", nparts++ ? " OPERATOR(pg_catalog.||) " : "", col);
			appendStringInfo(&nulls, " OR s.%s IS NULL", col);
		}
		else
		{
			Oid			t = fs->types[f];

			if (t == TEXTOID || t == VARCHAROID || t == BPCHAROID)
				appendStringInfo(&categories, "%s(s.%s)::pg_catalog.text", ncat++ ? ", " : "", col);
			else
				appendStringInfo(&categories, "%sCASE WHEN s.%s IS NOT NULL THEN pg_catalog.format('%%s', s.%s) END",
								 ncat++ ? ", " : "", col, col);
		}
	}
	if (open_numbers)
		appendStringInfoChar(&numbers, ']');
	appendStringInfo(q, "SELECT personalize.logistic_pass_flat($1, %s, %s, ", fs->y_sql, fs->w_sql);
	if (nparts == 0)
		appendStringInfoString(q, "'{}'::pg_catalog.float8[]");
	else if (nulls.len > 0)
		appendStringInfo(q, "CASE WHEN NOT (false%s) THEN (%s)::pg_catalog.float8[] END", nulls.data, numbers.data);
	else
		appendStringInfo(q, "(%s)::pg_catalog.float8[]", numbers.data);
	if (ncat == 0)
		appendStringInfoString(q, ", '{}'::pg_catalog.text[]");
	else
		appendStringInfo(q, ", ARRAY[%s]::pg_catalog.text[]", categories.data);
	appendStringInfo(q, ") FROM %s AS s WHERE %s", fs->from, where);
}

/* ---------- Newton's method ---------- */

typedef struct PassResult
{
	double		rows;
	double		null_rows;
	double		loglik;
	double		min_positive;
	double		max_negative;
	double		seconds;		/* of the pass */
	double	   *g;				/* p */
	double	   *H;				/* p x p, lower triangle */
} PassResult;

static void
run_pass(SPIPlanPtr plan, bytea *spec, Classifier *c, PassResult *r)
{
	Datum		arg;
	bool		isnull;
	ArrayType  *a;
	double	   *st;
	int			p,
				nd,
				nc;
	instr_time	start,
				duration;

	memcpy(VARDATA(spec), c, c->size);
	arg = PointerGetDatum(spec);
	CHECK_FOR_INTERRUPTS();
	INSTR_TIME_SET_CURRENT(start);
	if (SPI_execute_plan(plan, &arg, NULL, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "logistic pass failed");
	a = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the training rows disappeared between two passes")));
	st = pass_state_values(a, &p, &nd, &nc);
	if (st[ST_BUFFERED] != 0)
		elog(ERROR, "logistic_pass state not flushed");
	r->rows = st[ST_ROWS];
	r->null_rows = st[ST_NULL_ROWS];
	r->loglik = st[ST_LOGLIK];
	r->min_positive = st[ST_MIN_POSITIVE];
	r->max_negative = st[ST_MAX_NEGATIVE];
	memcpy(r->g, st + ST_GRADIENT(p), sizeof(double) * p);
	memcpy(r->H, st + ST_HESSIAN(p), sizeof(double) * p * p);
	SPI_freetuptable(SPI_tuptable);
	INSTR_TIME_SET_CURRENT(duration);
	INSTR_TIME_SUBTRACT(duration, start);
	r->seconds = INSTR_TIME_GET_DOUBLE(duration);
}

/* Every pass must read the rows the description counted. */
static void
pass_rows_check(const Classifier *c, const PassResult *r, const char *where)
{
	if (r->rows != (double) c->rows)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the source returned %.0f rows%s where it had %lld", r->rows, where, (long long) c->rows),
				 errhint("Training reads the source several times: it must return the same rows each time "
						 "(no LIMIT without ORDER BY, no random()).")));
}

static double
objective(const PassResult *r, const double *beta, int p, double l2, int first_penalized)
{
	double		pen = 0.0;

	for (int j = first_penalized; j < p; j++)
		pen += beta[j] * beta[j];
	return r->loglik - 0.5 * l2 * pen;
}

/*
 * M = H + λI (penalized columns) factorized in place as L Lᵀ (row-major
 * lower triangle); a column that adds (almost) nothing to the span of the
 * columns before it is named in the error. At the start every row weighs
 * the same in H, so such a column is collinear in the data; later, rows fitted
 * with probabilities of 0 or 1 weigh nothing, and a column that loses its
 * information that way separates the label (quasi-complete separation).
 */
static void
factorize(const Classifier *c, double *M, const double *H, double l2, int first_penalized, int iteration,
		  const char *label, const char *where)
{
	int			p = c->ncolumns;
	int			info;

	for (int a = 0; a < p; a++)
	{
		for (int b = 0; b <= a; b++)
			M[(Size) a * p + b] = H[(Size) a * p + b];
		if (a >= first_penalized)
			M[(Size) a * p + a] += l2;
	}
	dpotrf_("U", &p, M, &p, &info);	/* column-major upper = row-major lower */
	for (int j = 0; j < p; j++)
	{
		double		pivot = M[(Size) j * p + j];
		double		orig = H[(Size) j * p + j] + (j >= first_penalized ? l2 : 0.0);

		/* pivot² / orig: the share of column j outside the span of the ones before */
		if (((info > 0 && j == info - 1) || !(pivot * pivot > 1e-10 * orig)) && iteration > 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("label \"%s\" is quasi-separated by the features%s: design column \"%s\" carries no information at iteration %d",
							label, where, classifier_term(c, j), iteration),
					 errdetail("Rows fitted with probabilities of 0 or 1 weigh nothing: the unpenalized maximum likelihood estimate does not exist."),
					 errhint("Add an L2 penalty with the option \"l2\", or leave out the separating feature.")));
		if ((info > 0 && j == info - 1) || !(pivot * pivot > 1e-10 * orig))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("design column \"%s\" is collinear with the columns before it", classifier_term(c, j)),
					 errhint("Leave out a redundant feature, or add an L2 penalty with the option \"l2\".")));
		if (info > 0 && j == info - 1)
			break;
	}
}

static void
separation_check(const FitSpec *fs, const PassResult *r, const char *where)
{
	if (fs->l2 == 0 && r->max_negative < r->min_positive)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("label \"%s\" is perfectly separated by the features%s", fs->label, where),
				 errdetail("The unpenalized maximum likelihood estimate does not exist: the coefficients grow without bound."),
				 errhint("Add an L2 penalty with the option \"l2\", or leave out the separating features.")));
}

/* One classifier fitted on the rows of an arm (arm NULL: all rows). */
static Classifier *
fit_head(const FitSpec *fs, const char *arm, const char *arm_name)
{
	ClassifierDraft d;
	Classifier *c;
	int64		rows,
				null_rows,
				positives;
	int			p,
				first_penalized;
	StringInfoData q;
	SPIPlanPtr	plan;
	Oid			argtype = BYTEAOID;
	bytea	   *spec;
	PassResult	cur,
				next;
	double	   *beta,
			   *step,
			   *M,
			   *trial;
	double		F,
				wpos,
				wneg;
	int			iteration;
	bool		converged = false;
	instr_time	started,
				described;
	const char *where = arm_name ? psprintf(" in the %s arm", arm_name) : "";

	memset(&d, 0, sizeof(d));
	d.nfeatures = fs->nfeatures;
	d.names = (const char **) fs->features;
	d.kinds = fs->kinds;
	d.widths = palloc0(sizeof(int) * Max(fs->nfeatures, 1));
	d.nlevels = palloc0(sizeof(int) * Max(fs->nfeatures, 1));
	d.levels = palloc0(sizeof(char **) * Max(fs->nfeatures, 1));
	d.level_rows = palloc0(sizeof(double *) * Max(fs->nfeatures, 1));
	d.level_positives = palloc0(sizeof(double *) * Max(fs->nfeatures, 1));
	d.center = palloc0(sizeof(double *) * Max(fs->nfeatures, 1));
	d.scale = palloc0(sizeof(double *) * Max(fs->nfeatures, 1));
	d.label = fs->label;
	d.weight_column = fs->weight;
	d.flags = (fs->intercept ? CLASSIFIER_INTERCEPT : 0) | (fs->standardize ? CLASSIFIER_STANDARDIZED : 0) |
		(fs->drop_first ? CLASSIFIER_DROP_FIRST : 0) | (fs->skip_nulls ? CLASSIFIER_SKIP_NULLS : 0);
	d.l2 = fs->l2;
	INSTR_TIME_SET_CURRENT(started);
	describe(fs, arm, arm_name, &d, &rows, &null_rows, &positives, &wpos, &wneg);
	INSTR_TIME_SET_CURRENT(described);
	INSTR_TIME_SUBTRACT(described, started);
	if (fs->verbose)
		ereport(NOTICE,
				(errmsg("described%s: " INT64_FORMAT " rows, %d features in %.3f s", where, rows, fs->nfeatures,
						INSTR_TIME_GET_DOUBLE(described))));
	c = classifier_build(&d);
	c->rows = rows;
	c->null_rows = null_rows;
	c->positives = positives;
	p = c->ncolumns;
	first_penalized = fs->intercept ? 1 : 0;

	beta = CLF_COEF_FIT(c);
	memset(beta, 0, sizeof(double) * p);
	/* start from the intercept-only optimum: the log odds of the weighted positives */
	if (fs->intercept)
		beta[0] = log(c->weight_positive * wpos) - log(c->weight_negative * wneg);

	initStringInfo(&q);
	if (fs->citus)
		flat_pass_sql(fs, row_filter(fs, arm, fs->skip_nulls), &q);
	else
	{
		appendStringInfo(&q, "SELECT personalize.logistic_pass($1, s.%s, %s", quote_identifier(fs->label),
						 fs->weight ? psprintf("s.%s", quote_identifier(fs->weight)) : "1::pg_catalog.float8");
		for (int f = 0; f < fs->nfeatures; f++)
			appendStringInfo(&q, ", s.%s", quote_identifier(fs->features[f]));
		appendStringInfo(&q, ") FROM %s AS s WHERE %s", fs->from, row_filter(fs, arm, fs->skip_nulls));
	}
	plan = SPI_prepare_cursor(q.data, 1, &argtype, CURSOR_OPT_PARALLEL_OK);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	spec = palloc(VARHDRSZ + c->size);
	SET_VARSIZE(spec, VARHDRSZ + c->size);
	cur.g = palloc(sizeof(double) * p);
	cur.H = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * p * p);
	next.g = palloc(sizeof(double) * p);
	next.H = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * p * p);
	M = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * p * p);
	step = palloc(sizeof(double) * p);
	trial = palloc(sizeof(double) * p);

	run_pass(plan, spec, c, &cur);
	pass_rows_check(c, &cur, where);
	F = objective(&cur, beta, p, fs->l2, first_penalized);
	separation_check(fs, &cur, where);
	for (iteration = 1; iteration <= fs->max_iterations && !converged; iteration++)
	{
		double		t = 1.0,
					Fnext = 0.0,
					change = 0.0;
		int			halvings;

		factorize(c, M, cur.H, fs->l2, first_penalized, iteration, fs->label, where);
		for (int j = 0; j < p; j++)
			step[j] = cur.g[j] - (j >= first_penalized ? fs->l2 * beta[j] : 0.0);
		cholesky_solve(M, p, step);
		memcpy(trial, beta, sizeof(double) * p);
		for (halvings = 0;; halvings++)
		{
			for (int j = 0; j < p; j++)
				beta[j] = trial[j] + t * step[j];
			run_pass(plan, spec, c, &next);
			pass_rows_check(c, &next, where);
			Fnext = objective(&next, beta, p, fs->l2, first_penalized);
			if (Fnext >= F - 1e-12 * (1.0 + fabs(F)))
				break;
			if (halvings == 40)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("the fit%s cannot improve the log-likelihood (iteration %d)", where, iteration),
						 errhint("Make sure the source returns the same rows on every read (no LIMIT without ORDER BY, "
								 "no random()); else standardize the features, or add an L2 penalty with the option \"l2\".")));
			t *= 0.5;
		}
		for (int j = 0; j < p; j++)
			change = Max(change, fabs(t * step[j]) / Max(1.0, fabs(beta[j])));
		if (fs->verbose)
			ereport(NOTICE,
					(errmsg("iteration %d%s: log-likelihood %.12g, step %g, largest change %.3g, pass %.3f s",
							iteration, where, Fnext, t, change, next.seconds)));
		{
			PassResult	swap = cur;

			cur = next;
			next = swap;
		}
		F = Fnext;
		separation_check(fs, &cur, where);
		converged = change <= fs->tolerance;
	}
	if (!converged)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the fit%s did not converge in %d iterations", where, fs->max_iterations),
				 errhint("Coefficients that keep growing mean a separated label: add an L2 penalty with the option \"l2\"; "
						 "otherwise raise \"max_iterations\".")));
	c->iterations = iteration - 1;
	c->log_likelihood = cur.loglik;

	/* covariance (H + λI)⁻¹ at the estimate, then the features' own scale */
	factorize(c, M, cur.H, fs->l2, first_penalized, iteration, fs->label, where);
	{
		int			info;
		double	   *center = CLF_CENTER(c),
				   *scale = CLF_SCALE(c),
				   *coef = CLF_COEF(c),
				   *se = CLF_STD_ERROR(c);
		int			nd = c->ndense;

		dpotri_("U", &p, M, &p, &info);
		if (info != 0)
			elog(ERROR, "dpotri failed: %d", info);
		for (int a = 0; a < p; a++)
			for (int b = 0; b < a; b++)
				M[(Size) b * p + a] = M[(Size) a * p + b];
		for (int j = 0; j < p; j++)
		{
			bool		dense_scaled = j < nd && j >= first_penalized;

			coef[j] = dense_scaled ? beta[j] / scale[j] : beta[j];
			se[j] = sqrt(M[(Size) j * p + j]) / (dense_scaled ? scale[j] : 1.0);
		}
		if (fs->intercept && fs->standardize)
		{
			/* b0 = β0 − Σ βⱼ mⱼ/sⱼ: its variance is aᵀ V a with a = (1, −m/s, 0...) */
			double	   *a = palloc0(sizeof(double) * p);
			double		var = 0.0;

			a[0] = 1.0;
			for (int j = 1; j < nd; j++)
			{
				a[j] = -center[j] / scale[j];
				coef[0] -= beta[j] * center[j] / scale[j];
			}
			for (int i = 0; i < nd; i++)
				for (int j = 0; j < nd; j++)
					var += a[i] * M[(Size) i * p + j] * a[j];
			se[0] = sqrt(var);
		}
	}
	return c;
}

/* ---------- personalize.classifier_fit(algorithm, source, options) ---------- */

PG_FUNCTION_INFO_V1(classifier_fit);
Datum
classifier_fit(PG_FUNCTION_ARGS)
{
	char	   *algorithm;
	Jsonb	   *options;
	FitSpec		fs;
	MemoryContext caller = CurrentMemoryContext;
	Classifier *heads[2];
	int			nheads;
	int			ncategorical;
	char	  **categorical;
	TupleDesc	desc;
	ModelHeader *m;
	JsonbValue *cw;

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("algorithm, source and options must not be NULL")));
	algorithm = text_to_cstring(PG_GETARG_TEXT_PP(0));
	options = PG_GETARG_JSONB_P(2);
	memset(&fs, 0, sizeof(fs));
	fs.source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(algorithm, "logistic") == 0)
		fs.algorithm = MODEL_LOGISTIC;
	else if (strcmp(algorithm, "uplift") == 0)
		fs.algorithm = MODEL_UPLIFT;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown classifier algorithm \"%s\"", algorithm),
				 errhint("Use logistic or uplift.")));

	options_check_keys(options, classifier_options);
	fs.label = option_string(options, "label", true);
	fs.features = option_names(options, "features", &fs.nfeatures);
	if (option_value(options, "features") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"features\" is required")));
	categorical = option_names(options, "categorical", &ncategorical);
	fs.weight = option_string(options, "weight", false);
	fs.treatment = option_string(options, "treatment", fs.algorithm == MODEL_UPLIFT);
	if (fs.treatment && fs.algorithm != MODEL_UPLIFT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"treatment\" belongs to uplift models"),
				 errhint("Train an uplift model with personalize.train_uplift().")));
	fs.l2 = options_get_number(options, "l2", 0.0, 0.0, 1e12);
	fs.intercept = options_get_bool(options, "intercept", true);
	fs.standardize = options_get_bool(options, "standardize", false);
	fs.drop_first = options_get_bool(options, "drop_first", true);
	fs.skip_nulls = options_get_bool(options, "skip_nulls", false);
	fs.verbose = options_get_bool(options, "verbose", false);
	fs.tolerance = options_get_number(options, "tolerance", 1e-8, 1e-15, 0.1);
	fs.max_iterations = (int) options_get_number(options, "max_iterations", 50, 1, 1000);
	fs.weight_positive = fs.weight_negative = 1.0;
	cw = option_value(options, "class_weight");
	if (cw && cw->type == jbvString && cw->val.string.len == 8 && strncmp(cw->val.string.val, "balanced", 8) == 0)
		fs.balanced = true;
	else if (cw && cw->type == jbvBinary && JsonContainerIsObject(cw->val.binary.data))
	{
		Jsonb	   *obj = JsonbValueToJsonb(cw);
		static const char *const keys[] = {"positive", "negative", NULL};

		options_check_keys(obj, keys);
		fs.weight_positive = options_get_number(obj, "positive", 1.0, 0.0, 1e12);
		fs.weight_negative = options_get_number(obj, "negative", 1.0, 0.0, 1e12);
		if (!(fs.weight_positive > 0 && fs.weight_negative > 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("class weights must be positive")));
	}
	else if (cw)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"class_weight\" must be \"balanced\" or an object {\"positive\": w, \"negative\": w}")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	fs.from = SourceAsRelation(fs.source, "source");
	if (SPI_execute(psprintf("SELECT * FROM %s AS s LIMIT 0", fs.from), true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source must be a table, a view or a query that returns rows")));
	desc = SPI_tuptable->tupdesc;

	/* columns: present, distinct, of a usable type */
	{
		int			nnames = fs.nfeatures + 3;
		const char **names = palloc(sizeof(char *) * nnames);
		Oid		   *types = palloc(sizeof(Oid) * nnames);

		names[0] = fs.label;
		names[1] = fs.weight;
		names[2] = fs.treatment;
		for (int f = 0; f < fs.nfeatures; f++)
			names[f + 3] = fs.features[f];
		for (int i = 0; i < nnames; i++)
		{
			types[i] = InvalidOid;
			if (names[i] == NULL)
				continue;
			for (int a = 0; a < desc->natts; a++)
				if (!TupleDescAttr(desc, a)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, a)->attname), names[i]) == 0)
					types[i] = TupleDescAttr(desc, a)->atttypid;
			if (!OidIsValid(types[i]))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("source \"%s\" has no column \"%s\"", fs.source, names[i])));
			for (int j = 0; j < i; j++)
				if (names[j] && strcmp(names[j], names[i]) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("column \"%s\" is used twice", names[i]),
							 errhint("The label, weight, treatment and features must be distinct columns.")));
		}
		for (int i = 0; i < ncategorical; i++)
		{
			bool		found = false;

			for (int f = 0; f < fs.nfeatures; f++)
				found |= strcmp(categorical[i], fs.features[f]) == 0;
			if (!found)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("categorical column \"%s\" is not one of the features", categorical[i])));
		}
		fs.label_type = types[0];
		if (!numeric_input_type(fs.label_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("label \"%s\" must be a boolean or a number, not %s", fs.label, format_type_be(fs.label_type))));
		if (fs.weight && (!numeric_input_type(types[1]) || types[1] == BOOLOID))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("weight \"%s\" must be a number, not %s", fs.weight, format_type_be(types[1]))));
		fs.treatment_type = types[2];
		fs.weight_type = types[1];
		if (fs.treatment && !numeric_input_type(fs.treatment_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("treatment \"%s\" must be a boolean or a number, not %s", fs.treatment,
							format_type_be(fs.treatment_type))));
		fs.types = types + 3;
		fs.kinds = palloc(sizeof(int) * Max(fs.nfeatures, 1));
		for (int f = 0; f < fs.nfeatures; f++)
		{
			Oid			t = fs.types[f];
			Oid			elem = get_element_type(t);
			bool		forced = false;

			for (int i = 0; i < ncategorical; i++)
				forced |= strcmp(categorical[i], fs.features[f]) == 0;
			if (forced || t == TEXTOID || t == VARCHAROID || t == BPCHAROID || t == NAMEOID ||
				get_typtype(t) == TYPTYPE_ENUM)
				fs.kinds[f] = FEATURE_CATEGORICAL;
			else if (numeric_input_type(t))
				fs.kinds[f] = FEATURE_NUMERIC;
			else if (OidIsValid(elem) && numeric_input_type(elem) && elem != BOOLOID)
				fs.kinds[f] = FEATURE_ARRAY;
			else
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("feature \"%s\" has type %s", fs.features[f], format_type_be(t)),
						 errhint("Use numbers, booleans, arrays of numbers or text (categorical); list other "
								 "columns to one-hot encode in the option \"categorical\".")));
		}
	}
	fs.y_sql = float8_sql(fs.label, fs.label_type);
	fs.citus = source_on_citus(fs.from);
	fs.w_sql = fs.weight ? float8_sql(fs.weight, fs.weight_type) : "1::pg_catalog.float8";

	if (fs.algorithm == MODEL_LOGISTIC)
	{
		heads[0] = fit_head(&fs, NULL, NULL);
		nheads = 1;
	}
	else
	{
		char	   *t = float8_sql(fs.treatment, fs.treatment_type);
		char	   *q = psprintf("SELECT pg_catalog.count(*) FILTER (WHERE %s IS NULL), pg_catalog.count(*) FILTER (WHERE %s <> 0 AND %s <> 1) "
								 "FROM %s AS s", t, t, t, fs.from);

		if (SPI_execute(q, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "describe query failed: %s", q);
		if (spi_number(0, 1) > 0 && !fs.skip_nulls)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("column \"%s\" is NULL in %.0f rows of source \"%s\"", fs.treatment, spi_number(0, 1), fs.source),
					 errhint("Leave rows with a NULL out with the option \"skip_nulls\", or fill them in.")));
		if (spi_number(0, 2) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("treatment \"%s\" must be 0 or 1 (or a boolean)", fs.treatment)));
		heads[0] = fit_head(&fs, psprintf("%s = 0", t), "control");
		heads[1] = fit_head(&fs, psprintf("%s = 1", t), "treated");
		nheads = 2;
	}
	for (int h = 0; h < nheads; h++)
		heads[h] = classifier_copy(heads[h], heads[h]->nknots, caller);
	SPI_finish();

	MemoryContextSwitchTo(caller);
	m = model_from_classifiers(fs.algorithm, heads, nheads, JsonbToCString(NULL, &options->root, VARSIZE(options)));
	PG_RETURN_DATUM(model_datum(m));	/* a handle when train() keeps models out of values */
}

