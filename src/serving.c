/*
 * serving.c — recommendations from the active version of a named model:
 * recommend, recommend_for (fold-in), recommend_all, similar_items, score,
 * user_embeddings and item_embeddings.
 *
 * Every function goes through model_cache_get() (model.c), which costs one
 * indexed lookup per call and loads a model once per backend and version.
 * Scores for all items go into one float array, excluded items are masked,
 * and a bounded heap keeps the k best (ties: lower item id first).
 */
#include "postgres.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>

#include "catalog/pg_type.h"
#include "embedding.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "sgd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

static void
require_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", name)));
}

/* The active version of a recommendation model (not a classifier). */
LoadedModel *
recommender_get(text *name)
{
	LoadedModel *lm = model_cache_get(name);

	if (lm->m->algorithm == MODEL_LOGISTIC || lm->m->algorithm == MODEL_UPLIFT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is %s %s model, not a recommender", lm->name,
						lm->m->algorithm == MODEL_UPLIFT ? "an" : "a", model_algorithm_name(lm->m->algorithm)),
				 errhint("Score it with personalize.predict() or personalize.uplift_score().")));
	return lm;
}

static void
check_k(LoadedModel *lm, int32 k)
{
	if (k < 1 || k > lm->m->nitems)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be between 1 and the item count %d of model \"%s\", not %d",
						lm->m->nitems, lm->name, k)));
}

/* Elements of a bigint[] or real[] argument; NULL elements are an error. */
static int
array_elements(ArrayType *arr, Oid type, Datum **values, const char *name)
{
	bool	   *nulls;
	int			n;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, type, typlen, typbyval, typalign, values, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", name)));
	return n;
}

/* ---------- scoring ---------- */

/*
 * personalize.exact_scoring: on (the default), score in float4, by descending
 * item norm until the Cauchy-Schwarz bound stops the scan, else every item
 * with OpenBLAS; off: the same scan over a bfloat16 copy, then an exact
 * re-rank of the candidates (the same top k, half the bytes per item).
 */
static bool exact_scoring = true;

void
serving_init(void)
{
	DefineCustomBoolVariable("personalize.exact_scoring",
							 "Score the items of an ALS model from their float4 factors.",
							 "Off: a bfloat16 scan by descending item norm that stops once no later item can enter the top k, then an exact re-rank of the candidates.",
							 &exact_scoring, true, PGC_USERSET, 0, NULL, NULL, NULL);
}

static bool
exact_scoring_off_ok(const LoadedModel *lm)
{
	return !exact_scoring && lm->item_factors_bf16 != NULL && lm->norm_order != NULL;
}

/* scores = Y x for every item */
static void
score_factors(LoadedModel *lm, const float *x, float *scores)
{
	const ModelHeader *m = lm->m;

	cblas_sgemv(CblasRowMajor, CblasNoTrans, m->nitems, m->factors, 1.0f,
				lm->item_factors, m->factors, x, 1, 0.0f, scores, 1);
}

/* item-kNN: score_j = Σ_i w_i sim(i, j) over the neighbour lists of the given items */
static void
score_neighbors(LoadedModel *lm, const int32 *items, const float *weights, int64 n, float *scores)
{
	const ModelHeader *m = lm->m;
	int			K = m->neighbors;
	const int32	   *nbr = lm->nbr_items;
	const float	   *sim = lm->nbr_sim;

	memset(scores, 0, sizeof(float) * m->nitems);
	for (int64 j = 0; j < n; j++)
	{
		Size		base = (Size) items[j] * K;

		for (int a = 0; a < K && nbr[base + a] >= 0; a++)
			scores[nbr[base + a]] += weights[j] * sim[base + a];
	}
}

static void
score_popular(LoadedModel *lm, float *scores)
{
	memcpy(scores, lm->item_pop, sizeof(float) * lm->m->nitems);
}

/* Solves L Lᵀ z = b in place, L lower triangular (row-major f x f, as fold_in leaves it). */
void
cholesky_solve(const double *L, int f, double *b)
{
	for (int a = 0; a < f; a++)
	{
		double		s = b[a];

		for (int c = 0; c < a; c++)
			s -= L[a * f + c] * b[c];
		b[a] = s / L[a * f + a];
	}
	for (int a = f - 1; a >= 0; a--)
	{
		double		s = b[a];

		for (int c = a + 1; c < f; c++)
			s -= L[c * f + a] * b[c];
		b[a] = s / L[a * f + a];
	}
}

/*
 * Fold-in: the user's factors from interactions alone, one exact ALS
 * least-squares step against the fixed item factors,
 *     (YᵀY + λI + Σ (c_i - 1) y_i y_iᵀ) x = Σ c_i y_i,   c_i = 1 + α w_i,
 * solved by Cholesky in double precision. The factor L of the system's
 * matrix goes to chol when given (explain).
 */
void
fold_in(LoadedModel *lm, const int32 *items, const float *weights, int64 n, float *x, double *chol)
{
	int			f = lm->m->factors;
	const float *Y = lm->item_factors;
	double	   *A = chol ? chol : palloc(sizeof(double) * f * f);
	double	   *b = palloc0(sizeof(double) * f);

	for (int i = 0; i < f * f; i++)
		A[i] = lm->gram[i];
	for (int a = 0; a < f; a++)
		A[a * f + a] += lm->regularization;
	for (int64 j = 0; j < n; j++)
	{
		const float *y = Y + (Size) items[j] * f;
		double		c = 1.0 + (double) lm->alpha * weights[j];

		for (int a = 0; a < f; a++)
		{
			b[a] += c * y[a];
			for (int bb = 0; bb <= a; bb++)
				A[a * f + bb] += (c - 1.0) * y[a] * y[bb];
		}
	}
	/* Cholesky A = L Lᵀ in the lower triangle */
	for (int a = 0; a < f; a++)
	{
		for (int bb = 0; bb <= a; bb++)
		{
			double		s = A[a * f + bb];

			for (int c = 0; c < bb; c++)
				s -= A[a * f + c] * A[bb * f + c];
			if (a == bb)
			{
				if (s <= 0)
					ereport(ERROR,
							(errcode(ERRCODE_DATA_EXCEPTION),
							 errmsg("fold-in system of model \"%s\" is not positive definite", lm->name),
							 errhint("Train with a positive regularization.")));
				A[a * f + a] = sqrt(s);
			}
			else
				A[a * f + bb] = s / A[bb * f + bb];
		}
	}
	cholesky_solve(A, f, b);
	for (int a = 0; a < f; a++)
		x[a] = (float) b[a];
	if (!chol)
		pfree(A);
	pfree(b);
}

/* Approximate scores of every item from the bfloat16 factors (half the bytes to read). */
MODEL_KERNEL static void
score_bf16(int32 n, int f, const uint16 *restrict Yh, const float *restrict x, float *restrict out)
{
	for (int32 i = 0; i < n; i++)
	{
		const uint16 *y = Yh + (Size) i * f;
		float		s = 0;

		for (int a = 0; a < f; a++)
			s += bf16_to_float(y[a]) * x[a];
		out[i] = s;
	}
}

/* ---------- output ---------- */

/* Rows of a sorted heap: ([user_id,] item_id, score, rank [, reason]). */
static void
emit_heap(ReturnSetInfo *rsinfo, LoadedModel *lm, TopK *top, const char *reason, bool with_user, int64 user_id)
{
	const int64	   *item_ids = lm->item_ids;
	text	   *reason_text = reason ? cstring_to_text(reason) : NULL;

	for (int r = 0; r < top->n; r++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		int			c = 0;

		if (with_user)
			values[c++] = Int64GetDatum(user_id);
		values[c++] = Int64GetDatum(item_ids[top->index[r]]);
		values[c++] = Float4GetDatum(top->score[r]);
		values[c++] = Int32GetDatum(r + 1);
		if (reason_text)
			values[c++] = PointerGetDatum(reason_text);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

static void
emit_topk(ReturnSetInfo *rsinfo, LoadedModel *lm, float *scores, const bool *mask, int k,
		  const char *reason, bool with_user, int64 user_id)
{
	TopK		top;

	topk_init(&top, k);
	for (int32 i = 0; i < lm->m->nitems; i++)
	{
		/* once the heap is full, most items lose to its worst entry: skip the call */
		if (top.n == k && scores[i] < top.score[0])
			continue;
		if (mask == NULL || !mask[i])
			topk_push(&top, scores[i], i);
	}
	topk_sort(&top);
	emit_heap(rsinfo, lm, &top, reason, with_user, user_id);
	pfree(top.score);
	pfree(top.index);
}

#define SCAN_CHUNK		512
#define SCAN_BOUND_SLACK	1.0001f

/*
 * The exact top k in float4, visiting items by descending norm until no later
 * item can enter (‖x‖ ‖y‖ below the k-th score); false when that has not
 * happened within the model's scan limit (estimated at load from a sample of
 * its users; 0 for a model whose norms do not prune): the caller then scores
 * every item with sgemv.
 */
static bool
topk_by_norm(LoadedModel *lm, const float *x, float xnorm, const bool *mask, int k, TopK *top)
{
	const ModelHeader *m = lm->m;
	int			f = m->factors;
	const int32 *order = lm->norm_order;
	int32		limit = lm->scan_limit;
	int32		p = 0;

	if (order == NULL || lm->item_factors_by_norm == NULL || limit <= 0)
		return false;
	topk_init(top, k);
	while (p < m->nitems)
	{
		int32		end = Min(m->nitems, p + SCAN_CHUNK);

		for (; p < end; p++)
		{
			int32		i = order[p];
			float		s;

			if (mask && mask[i])
				continue;
			s = vec_dot(f, x, lm->item_factors_by_norm + (Size) p * f);
			if (top->n < k || s >= top->score[0])
				topk_push(top, s, i);
		}
		if (p < m->nitems && top->n == k && top->score[0] > xnorm * lm->item_norms[order[p]] * SCAN_BOUND_SLACK)
			break;
		if (p < m->nitems && p >= limit)
		{
			pfree(top->score);
			pfree(top->index);
			return false;
		}
	}
	return true;
}

/*
 * The k best items for factors x, exactly, reading mostly the bfloat16 copy
 * of the item factors, which is in descending order of ‖y_i‖: every
 * approximate score a_i is within δ_i = ‖x‖ (‖y_i - bf16(y_i)‖ + 1e-5 ‖y_i‖)
 * of the exact one (Cauchy-Schwarz, plus float rounding). The scan stops once
 * the k-th largest a_i - δ_i exceeds ‖x‖ times the norm of the next item (no
 * later item can score that much); the exact top k lies among the scanned
 * items whose a_i + δ_i reaches it, and only those are scored in float4.
 * With personalize.exact_scoring on, topk_by_norm in float4 (or sgemv).
 */
static void
emit_topk_factors(ReturnSetInfo *rsinfo, LoadedModel *lm, const float *x, float *scores, const bool *mask, int k,
				  const char *reason)
{
	const ModelHeader *m = lm->m;
	int			f = m->factors;
	const int32 *order = lm->norm_order;
	const float *norms = lm->item_norms;
	float		xnorm = sqrtf(vec_dot(f, x, x));
	TopK		low,
				top;
	float		threshold = -INFINITY;
	int32		scanned = 0;

	if (!exact_scoring_off_ok(lm))
	{
		if (!topk_by_norm(lm, x, xnorm, mask, k, &top))
		{
			score_factors(lm, x, scores);
			emit_topk(rsinfo, lm, scores, mask, k, reason, false, 0);
			return;
		}
		topk_sort(&top);
		emit_heap(rsinfo, lm, &top, reason, false, 0);
		return;
	}
	topk_init(&low, k);
	while (scanned < m->nitems)
	{
		int32		end = Min(m->nitems, scanned + SCAN_CHUNK);

		score_bf16(end - scanned, f, lm->item_factors_bf16 + (Size) scanned * f, x, scores + scanned);
		for (int32 p = scanned; p < end; p++)
		{
			int32		i = order[p];
			float		lower = scores[p] - xnorm * (lm->item_bf16_error[p] + 1e-5f * norms[i]);

			if ((low.n == k && lower <= low.score[0]) || (mask && mask[i]))
				continue;
			topk_push(&low, lower, i);
		}
		scanned = end;
		if (scanned < m->nitems && low.n == k &&
			low.score[0] > xnorm * norms[order[scanned]] * SCAN_BOUND_SLACK)
			break;
	}
	if (low.n == k)
		threshold = low.score[0];
	topk_init(&top, k);
	for (int32 p = 0; p < scanned; p++)
	{
		int32		i = order[p];
		float		upper = scores[p] + xnorm * (lm->item_bf16_error[p] + 1e-5f * norms[i]);

		if (upper < threshold || (mask && mask[i]))
			continue;
		topk_push(&top, vec_dot(f, x, lm->item_factors + (Size) i * f), i);
	}
	topk_sort(&top);
	emit_heap(rsinfo, lm, &top, reason, false, 0);
}

/* Mask of excluded items: outside candidates, in exclude. */
static bool *
build_mask(FunctionCallInfo fcinfo, LoadedModel *lm, int cand_arg, int excl_arg)
{
	int32		n = lm->m->nitems;
	bool	   *mask = palloc0(sizeof(bool) * Max(n, 1));
	Datum	   *values;
	int			count;

	if (cand_arg >= 0 && !PG_ARGISNULL(cand_arg))
	{
		memset(mask, true, sizeof(bool) * n);
		count = array_elements(PG_GETARG_ARRAYTYPE_P(cand_arg), INT8OID, &values, "candidates");
		for (int j = 0; j < count; j++)
		{
			int32		i = loaded_item(lm, DatumGetInt64(values[j]));

			if (i >= 0)
				mask[i] = false;
		}
	}
	if (excl_arg >= 0 && !PG_ARGISNULL(excl_arg))
	{
		count = array_elements(PG_GETARG_ARRAYTYPE_P(excl_arg), INT8OID, &values, "exclude");
		for (int j = 0; j < count; j++)
		{
			int32		i = loaded_item(lm, DatumGetInt64(values[j]));

			if (i >= 0)
				mask[i] = true;
		}
	}
	return mask;
}

/* user index, or -1 when the user is unknown or the model keeps no users */
static int32
find_user(LoadedModel *lm, int64 user_id)
{
	return loaded_user(lm, user_id);
}

/* A hybrid model's context, -1 when the model has none of that name (or none at all). */
static int32
find_context(LoadedModel *lm, const char *context)
{
	if (context == NULL || lm->m->algorithm != MODEL_HYBRID)
		return -1;
	return names_find(model_section(lm->m, SECTION_CONTEXT_NAMES), context);
}

/* x = the user's factors (u >= 0, or 0 with last component 1 for none) plus the context's. */
static void
user_vector(LoadedModel *lm, int32 u, int32 context, float *x)
{
	const ModelHeader *m = lm->m;
	int			f = m->factors;

	if (u >= 0)
		memcpy(x, lm->user_factors + (Size) u * f, sizeof(float) * f);
	else
	{
		memset(x, 0, sizeof(float) * f);
		x[f - 1] = 1.0f;		/* the item bias still counts */
	}
	if (context >= 0)
		vec_axpy(f - 1, 1.0f, (const float *) model_section(m, SECTION_CONTEXT_FACTORS) + (Size) context * f, x);
}

/* Scores of a known user: factors (plus a context) or item-kNN over the user's items. */
static void
score_user_in_context(LoadedModel *lm, int32 u, int32 context, float *scores)
{
	const ModelHeader *m = lm->m;

	if (model_has_factors(m->algorithm))
	{
		if (context < 0)
			score_factors(lm, lm->user_factors + (Size) u * m->factors, scores);
		else
		{
			float	   *x = palloc(sizeof(float) * m->factors);

			user_vector(lm, u, context, x);
			score_factors(lm, x, scores);
			pfree(x);
		}
	}
	else
	{
		const int64 *indptr = lm->indptr;

		score_neighbors(lm, lm->seen_items + indptr[u],
						lm->seen_weights + indptr[u],
						indptr[u + 1] - indptr[u], scores);
	}
}

static void
score_user(LoadedModel *lm, int32 u, float *scores)
{
	score_user_in_context(lm, u, -1, scores);
}

/*
 * Editorial: the list of the segment named by context, else the user's
 * segment, else the default list; score 1 / position, items outside the
 * list masked. Returns the reason.
 */
const char *
editorial_scores(LoadedModel *lm, int32 u, const char *context, float *scores, bool *mask)
{
	const ModelHeader *m = lm->m;
	const void *names = model_section(m, SECTION_SEGMENT_NAMES);
	const int64 *indptr = model_section(m, SECTION_SEGMENT_LIST_INDPTR);
	const int32 *items = model_section(m, SECTION_SEGMENT_LIST_ITEMS);
	const float *positions = model_section(m, SECTION_SEGMENT_LIST_POSITIONS);
	int32		segment = context ? names_find(names, context) : -1;
	int64		row;

	if (segment < 0 && u >= 0)
		segment = ((const int32 *) model_section(m, SECTION_USER_SEGMENT))[u];
	row = segment + 1;			/* row 0 is the default list */
	if (indptr[row + 1] == indptr[row])
		row = 0;
	for (int32 i = 0; i < m->nitems; i++)
		scores[i] = 0;
	for (int64 j = indptr[row]; j < indptr[row + 1]; j++)
		scores[items[j]] = 1.0f / positions[j];
	for (int32 i = 0; i < m->nitems; i++)
		if (scores[i] == 0)
			mask[i] = true;
	return row == 0 ? "editorial" : psprintf("editorial:%s", names_get(names, (int32) row - 1));
}

/* Has the user interactions in the model (rather than features only)? */
static bool
user_has_interactions(LoadedModel *lm, int32 u)
{
	return lm->indptr[u + 1] > lm->indptr[u];
}

static void
mask_seen(LoadedModel *lm, int32 u, bool *mask)
{
	const int64	   *indptr = lm->indptr;
	const int32	   *indices = lm->seen_items;

	for (int64 j = indptr[u]; j < indptr[u + 1]; j++)
		mask[indices[j]] = true;
}

/*
 * Popularity models keep no users: they know who saw what from the source
 * they were trained from, read now (one indexed lookup when the source has an
 * index on user_id). Nothing is excluded when the source is unknown.
 */
static void
mask_seen_in_source(LoadedModel *lm, int64 user_id, bool *mask)
{
	const char *source = loaded_source(lm);
	Datum		arg = Int64GetDatum(user_id);

	if (source == NULL)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * A serving role may have no right to read the interactions (a service
	 * role): then nothing is excluded, as for an unknown source. A query
	 * source is run as it is.
	 */
	if (source[0] != '(')
	{
		bool		isnull;

		if (SPI_execute_with_args("SELECT pg_catalog.has_table_privilege(pg_catalog.to_regclass($1), 'SELECT')",
								  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(source)}, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "cannot check the privileges on the source of model \"%s\"", lm->name);
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) || isnull)
		{
			SPI_finish();
			return;
		}
	}
	if (lm->seen_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(psprintf("SELECT s.item_id::pg_catalog.int8 FROM %s AS s"
											 " WHERE s.user_id OPERATOR(pg_catalog.=) $1 AND s.item_id IS NOT NULL"
											 " AND s.weight IS NOT NULL", source),
									1, (Oid[]) {INT8OID});

		if (p == NULL)
			elog(ERROR, "cannot read the source of model \"%s\": %s", lm->name, SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		lm->seen_plan = p;
	}
	if (SPI_execute_plan(lm->seen_plan, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "cannot read the source of model \"%s\"", lm->name);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int32		i = loaded_item(lm, DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)));

		if (i >= 0)
			mask[i] = true;
	}
	SPI_finish();
}

/*
 * recommend(model_name, user_id, k, exclude_seen, candidates, exclude [, context])
 *   -> (item_id, score, rank, reason)
 * The six-argument form is the 0.1.0 declaration of this symbol.
 */
PG_FUNCTION_INFO_V1(recommend);
Datum
recommend(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	int32		k,
				u = -1,
				context;
	char	   *context_name = NULL;
	float	   *scores;
	bool	   *mask;
	const char *reason;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 2, "k");
	require_arg(fcinfo, 3, "exclude_seen");
	InitMaterializedSRF(fcinfo, 0);
	lm = recommender_get(PG_GETARG_TEXT_PP(0));
	k = PG_GETARG_INT32(2);
	check_k(lm, k);
	if (!PG_ARGISNULL(1))
		u = find_user(lm, PG_GETARG_INT64(1));
	if (PG_NARGS() > 6 && !PG_ARGISNULL(6))
		context_name = text_to_cstring(PG_GETARG_TEXT_PP(6));
	scores = palloc(sizeof(float) * lm->m->nitems);
	mask = build_mask(fcinfo, lm, 4, 5);
	if (lm->m->algorithm == MODEL_EDITORIAL)
	{
		reason = editorial_scores(lm, u, context_name, scores, mask);
		emit_topk(rsinfo, lm, scores, mask, k, reason, false, 0);
		return (Datum) 0;
	}
	context = find_context(lm, context_name);
	if (u < 0 && context < 0)
	{
		if (model_is_popularity(lm->m->algorithm) && !PG_ARGISNULL(1) && PG_GETARG_BOOL(3))
			mask_seen_in_source(lm, PG_GETARG_INT64(1), mask);
		score_popular(lm, scores);
		emit_topk(rsinfo, lm, scores, mask, k, "popular", false, 0);
	}
	else if (model_has_factors(lm->m->algorithm))
	{
		float	   *x = palloc(sizeof(float) * lm->m->factors);

		/* an unknown user in a known context: the context's vector alone */
		user_vector(lm, u, context, x);
		if (u >= 0 && PG_GETARG_BOOL(3))
			mask_seen(lm, u, mask);
		if (u < 0)
			reason = "context";
		else if (lm->m->algorithm == MODEL_HYBRID && !user_has_interactions(lm, u))
			reason = context >= 0 ? "user features+context" : "user features";
		else
			reason = context >= 0 ? "model+context" : "model";
		emit_topk_factors(rsinfo, lm, x, scores, mask, k, reason);
	}
	else
	{
		score_user(lm, u, scores);
		if (PG_GETARG_BOOL(3))
			mask_seen(lm, u, mask);
		emit_topk(rsinfo, lm, scores, mask, k, "model", false, 0);
	}
	return (Datum) 0;
}

/*
 * recommend_for(model_name, items, weights, k) -> (item_id, score, rank, reason)
 * for a user known only by these interactions; the given items are excluded.
 */
PG_FUNCTION_INFO_V1(recommend_for);
Datum
recommend_for(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	int32		k;
	Datum	   *item_values,
			   *weight_values = NULL;
	int			n,
				known = 0;
	int32	   *items;
	float	   *weights;
	float	   *scores;
	bool	   *mask;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 1, "items");
	require_arg(fcinfo, 3, "k");
	InitMaterializedSRF(fcinfo, 0);
	lm = recommender_get(PG_GETARG_TEXT_PP(0));
	k = PG_GETARG_INT32(3);
	check_k(lm, k);
	n = array_elements(PG_GETARG_ARRAYTYPE_P(1), INT8OID, &item_values, "items");
	if (!PG_ARGISNULL(2))
	{
		int			nw = array_elements(PG_GETARG_ARRAYTYPE_P(2), FLOAT4OID, &weight_values, "weights");

		if (nw != n)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("items and weights must have the same length, not %d and %d", n, nw)));
	}
	items = palloc(sizeof(int32) * Max(n, 1));
	weights = palloc(sizeof(float) * Max(n, 1));
	mask = palloc0(sizeof(bool) * lm->m->nitems);
	/* unknown items carry no information; repeated items add up, as in training */
	for (int j = 0; j < n; j++)
	{
		int32		i = loaded_item(lm, DatumGetInt64(item_values[j]));
		float		w = weight_values ? DatumGetFloat4(weight_values[j]) : 1.0f;

		interactions_check_weight(w);
		if (i < 0)
			continue;
		if (mask[i])
		{
			for (int a = 0; a < known; a++)
				if (items[a] == i)
					weights[a] += w;
			continue;
		}
		mask[i] = true;
		items[known] = i;
		weights[known] = w;
		known++;
	}
	scores = palloc(sizeof(float) * lm->m->nitems);
	if (lm->m->algorithm == MODEL_EDITORIAL)
	{
		const char *reason = editorial_scores(lm, -1, NULL, scores, mask);

		emit_topk(rsinfo, lm, scores, mask, k, reason, false, 0);
	}
	else if (known == 0 || model_is_popularity(lm->m->algorithm))
	{
		score_popular(lm, scores);
		emit_topk(rsinfo, lm, scores, mask, k, "popular", false, 0);
	}
	else if (model_is_als(lm->m->algorithm))
	{
		float	   *x = palloc(sizeof(float) * lm->m->factors);

		fold_in(lm, items, weights, known, x, NULL);
		emit_topk_factors(rsinfo, lm, x, scores, mask, k, "model");
	}
	else if (model_has_factors(lm->m->algorithm))
	{
		/* BPR and hybrid: the BPR objective for this user against the fixed item vectors */
		float	   *x = palloc(sizeof(float) * lm->m->factors);

		sgd_fold_in(lm->item_factors, lm->m->nitems, lm->m->factors, items, known, 0.01f, 0.05f, 200, 42, x);
		emit_topk_factors(rsinfo, lm, x, scores, mask, k, "model");
	}
	else
	{
		score_neighbors(lm, items, weights, known, scores);
		emit_topk(rsinfo, lm, scores, mask, k, "model", false, 0);
	}
	return (Datum) 0;
}

/* user_factors(model_name, items, weights) -> real[]: the fold-in solution (tests, debugging) */
PG_FUNCTION_INFO_V1(fold_in_factors);
Datum
fold_in_factors(PG_FUNCTION_ARGS)
{
	LoadedModel *lm;
	Datum	   *item_values,
			   *weight_values;
	int			n,
				nw,
				known = 0;
	int32	   *items;
	float	   *weights,
			   *x;
	Datum	   *out;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 1, "items");
	require_arg(fcinfo, 2, "weights");
	lm = recommender_get(PG_GETARG_TEXT_PP(0));
	if (!model_is_als(lm->m->algorithm))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is not an ALS model", lm->name)));
	n = array_elements(PG_GETARG_ARRAYTYPE_P(1), INT8OID, &item_values, "items");
	nw = array_elements(PG_GETARG_ARRAYTYPE_P(2), FLOAT4OID, &weight_values, "weights");
	if (nw != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("items and weights must have the same length, not %d and %d", n, nw)));
	items = palloc(sizeof(int32) * Max(n, 1));
	weights = palloc(sizeof(float) * Max(n, 1));
	for (int j = 0; j < n; j++)
	{
		int32		i = loaded_item(lm, DatumGetInt64(item_values[j]));

		interactions_check_weight(DatumGetFloat4(weight_values[j]));
		if (i < 0)
			continue;
		items[known] = i;
		weights[known++] = DatumGetFloat4(weight_values[j]);
	}
	x = palloc(sizeof(float) * lm->m->factors);
	fold_in(lm, items, weights, known, x, NULL);
	out = palloc(sizeof(Datum) * lm->m->factors);
	for (int a = 0; a < lm->m->factors; a++)
		out[a] = Float4GetDatum(x[a]);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, lm->m->factors, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}

/*
 * Once a user's heap is full, most scores of a tile lose to its worst entry:
 * the first chunk of 32 scores from j on that holds one at or above worst
 * (its start), or the start of the last partial chunk.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#include <immintrin.h>

__attribute__((target("avx2"))) static int32
next_chunk_above_avx2(const float *row, int32 j, int32 t, float worst)
{
	__m256		w = _mm256_set1_ps(worst);

	for (; j + 32 <= t; j += 32)
	{
		__m256		a = _mm256_max_ps(_mm256_loadu_ps(row + j), _mm256_loadu_ps(row + j + 8));
		__m256		b = _mm256_max_ps(_mm256_loadu_ps(row + j + 16), _mm256_loadu_ps(row + j + 24));

		if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_max_ps(a, b), w, _CMP_GE_OQ)))
			break;
	}
	return j;
}
#define HAVE_AVX2_CHUNKS 1
#endif

static int32
next_chunk_above_generic(const float *row, int32 j, int32 t, float worst)
{
	for (; j + 32 <= t; j += 32)
	{
		int			above = 0;

		for (int q = 0; q < 32; q++)
			above |= row[j + q] >= worst;
		if (above)
			break;
	}
	return j;
}

static int32 (*next_chunk_above) (const float *row, int32 j, int32 t, float worst) = NULL;

static void
choose_chunk_kernel(void)
{
	next_chunk_above = next_chunk_above_generic;
#ifdef HAVE_AVX2_CHUNKS
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2"))
		next_chunk_above = next_chunk_above_avx2;
#endif
}

/*
 * Push the scores of one row of a tile (positions i0 ... of the order) into a
 * heap under their item index, skipping -Inf (seen); once the heap is full,
 * chunks without a score at or above its worst are skipped with vector
 * comparisons.
 */
static void
select_tile_row(const float *row, int32 t, const int32 *order, TopK *top)
{
	int32		j = 0;

	while (j < t)
	{
		int32		n;

		if (top->n == top->k)
		{
			j = next_chunk_above(row, j, t, top->score[0]);
			if (j >= t)
				break;
		}
		n = Min(32, t - j);
		for (int q = 0; q < n; q++)
		{
			float		s = row[j + q];

			if (s != -INFINITY && (top->n < top->k || s >= top->score[0]))
				topk_push(top, s, order[j + q]);
		}
		j += n;
	}
}

/*
 * recommend_all for ALS: blocks of BATCH_USERS users; two worker threads take
 * the next block in turn and score it against tiles of BATCH_ITEMS items with
 * a single-threaded sgemm (the tile, 256 KB, stays in L2 for the selection),
 * one heap per user carrying over the tiles.
 *
 * The items are visited by descending norm. No item after position i scores
 * above ‖x‖ ‖y_i‖ (Cauchy-Schwarz), so a user whose k-th best score exceeds
 * that bound is finished, exactly, and leaves the block; the tiles after are
 * scored for the users left. Heaps hold item indexes, so ties break as in
 * recommend.
 *
 * Finished blocks wait in BATCH_SLOTS slots; the backend thread emits them in
 * user order while the workers go on. Workers run plain C on memory allocated
 * beforehand and never touch PostgreSQL; the backend waits with a timeout and
 * checks for interrupts, and stops and joins them on the way out, error or not.
 */
#define BATCH_THREADS	2
#define BATCH_USERS		256
#define BATCH_ITEMS		256
#define BATCH_SLOTS		4
/* float rounding of a score and of the bound (64 products: ~4e-6 relative) */
#define BATCH_BOUND_SLACK	1.0001f

typedef struct BatchRun
{
	const float *X;
	const float *Y;				/* item factors by descending norm */
	const int32 *order;			/* position -> item */
	const int32 *position;		/* item -> position */
	const float *norms;			/* by item */
	const int64 *indptr;
	const int32 *indices;
	int			f;
	int32		nusers;
	int32		nitems;
	int32		nblocks;
	TopK	   *heaps[BATCH_SLOTS]; /* BATCH_USERS per slot, sorted when done */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	/* under lock */
	int32		next;			/* next block to score */
	int32		emitted;		/* blocks the backend has emitted */
	bool		done[BATCH_SLOTS];
	bool		stop;
} BatchRun;

typedef struct BatchWorker
{
	BatchRun   *run;
	float	   *scores;			/* BATCH_USERS x BATCH_ITEMS */
	float	   *X;				/* factors of the users left */
	float	   *xnorm;
	int32	   *left;			/* block rows of the users left */
	int32	   *seen;			/* positions of the block's seen items, by user, ascending */
	int64	   *seen_start;
	int64	   *cursor;			/* next seen position per user */
	int64		scored;			/* user-item scores computed */
} BatchWorker;

/* sort_int32(): seen positions, sorted by worker threads (plain C, no PostgreSQL calls) */
#define ST_SORT sort_int32
#define ST_ELEMENT_TYPE int32
#define ST_COMPARE(a, b) ((*(a) > *(b)) - (*(a) < *(b)))
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

static void
batch_block_run(BatchWorker *w, int32 block)
{
	BatchRun   *run = w->run;
	TopK	   *heaps = run->heaps[block % BATCH_SLOTS];
	int32		u0 = block * BATCH_USERS;
	int32		b = Min(BATCH_USERS, run->nusers - u0);
	int32		nleft = b;
	int64		nseen = 0;
	int			f = run->f;

	for (int32 r = 0; r < b; r++)
	{
		const float *x = run->X + (Size) (u0 + r) * f;

		heaps[r].n = 0;
		w->left[r] = r;
		w->xnorm[r] = sqrtf(vec_dot(f, x, x));
		w->seen_start[r] = w->cursor[r] = nseen;
		for (int64 j = run->indptr[u0 + r]; j < run->indptr[u0 + r + 1]; j++)
			w->seen[nseen++] = run->position[run->indices[j]];
		sort_int32(w->seen + w->seen_start[r], nseen - w->seen_start[r]);
	}
	w->seen_start[b] = nseen;
	memcpy(w->X, run->X + (Size) u0 * f, sizeof(float) * b * f);
	for (int32 i0 = 0; i0 < run->nitems && nleft > 0; i0 += BATCH_ITEMS)
	{
		int32		t = Min(BATCH_ITEMS, run->nitems - i0);
		float		next_norm = i0 + t < run->nitems ? run->norms[run->order[i0 + t]] * BATCH_BOUND_SLACK : 0;
		int32		kept = 0;


		/*
		 * The tile starts at 0, seen items at -Inf, and sgemm adds the scores
		 * (beta 1): 0 + s is s exactly, -Inf + s is -Inf, and OpenBLAS's pass
		 * that zeroes C for beta 0 is slower than memset.
		 */
		memset(w->scores, 0, sizeof(float) * nleft * t);
		for (int32 a = 0; a < nleft; a++)
		{
			int32		r = w->left[a];
			float	   *row = w->scores + (Size) a * t;

			while (w->cursor[r] < w->seen_start[r + 1] && w->seen[w->cursor[r]] < i0 + t)
				row[w->seen[w->cursor[r]++] - i0] = -INFINITY;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nleft, t, f, 1.0f,
					w->X, f, run->Y + (Size) i0 * f, f, 1.0f, w->scores, t);
		w->scored += (int64) nleft * t;
		for (int32 a = 0; a < nleft; a++)
		{
			int32		r = w->left[a];
			TopK	   *top = &heaps[r];

			select_tile_row(w->scores + (Size) a * t, t, run->order + i0, top);
			if (top->n == top->k && top->score[0] > w->xnorm[r] * next_norm)
				continue;		/* finished: no later item can enter */
			if (kept != a)
			{
				memmove(w->X + (Size) kept * f, w->X + (Size) a * f, sizeof(float) * f);
				w->left[kept] = r;
			}
			kept++;
		}
		nleft = kept;
	}
	for (int32 r = 0; r < b; r++)
		topk_sort(&heaps[r]);
}

static void *
batch_worker_main(void *arg)
{
	BatchWorker *w = (BatchWorker *) arg;
	BatchRun   *run = w->run;

	pthread_mutex_lock(&run->lock);
	for (;;)
	{
		int32		block;

		while (!run->stop && run->next < run->nblocks && run->next >= run->emitted + BATCH_SLOTS)
			pthread_cond_wait(&run->changed, &run->lock);
		if (run->stop || run->next >= run->nblocks)
			break;
		block = run->next++;
		pthread_mutex_unlock(&run->lock);
		batch_block_run(w, block);
		pthread_mutex_lock(&run->lock);
		run->done[block % BATCH_SLOTS] = true;
		pthread_cond_broadcast(&run->changed);
	}
	pthread_mutex_unlock(&run->lock);
	return NULL;
}

/* The backend thread: wait for block e to be scored (no worker: score it). */
static void
batch_wait(BatchRun *run, BatchWorker *self, int32 e, int started)
{
	if (started == 0)
	{
		run->next = e + 1;
		batch_block_run(self, e);
		return;
	}
	pthread_mutex_lock(&run->lock);
	while (!run->done[e % BATCH_SLOTS])
	{
		cond_wait_ms(&run->changed, &run->lock, 10);
		if (!run->done[e % BATCH_SLOTS])
		{
			/* never leave through an error holding the lock */
			pthread_mutex_unlock(&run->lock);
			CHECK_FOR_INTERRUPTS();
			pthread_mutex_lock(&run->lock);
		}
	}
	pthread_mutex_unlock(&run->lock);
}

/* The slot of block e is free again. */
static void
batch_emitted(BatchRun *run, int32 e)
{
	pthread_mutex_lock(&run->lock);
	run->done[e % BATCH_SLOTS] = false;
	run->emitted = e + 1;
	pthread_cond_broadcast(&run->changed);
	pthread_mutex_unlock(&run->lock);
}

static void
batch_stop(BatchRun *run, pthread_t *tid, int started)
{
	pthread_mutex_lock(&run->lock);
	run->stop = true;
	pthread_cond_broadcast(&run->changed);
	pthread_mutex_unlock(&run->lock);
	for (int t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
}

/* recommend_all for factor models: the pipeline above, rows in user order. */
static void
recommend_all_factors(ReturnSetInfo *rsinfo, LoadedModel *lm, int32 k)
{
	const ModelHeader *m = lm->m;
	BatchRun   *run = palloc0(sizeof(BatchRun));
	BatchWorker workers[BATCH_THREADS + 1];
	pthread_t	tid[BATCH_THREADS];
	volatile int started = 0;
	int			blas_threads = openblas_get_num_threads();
	int64		block_seen = 0,
				scored = 0;
	sigset_t	all,
				sigs;

	run->X = lm->user_factors;
	run->indptr = lm->indptr;
	run->indices = lm->seen_items;
	run->f = m->factors;
	run->nusers = m->nusers;
	run->nitems = m->nitems;
	run->nblocks = (m->nusers + BATCH_USERS - 1) / BATCH_USERS;
	run->Y = lm->item_factors_by_norm;
	run->order = lm->norm_order;
	run->position = lm->norm_position;
	run->norms = lm->item_norms;
	for (int32 e = 0; e < run->nblocks; e++)
		block_seen = Max(block_seen, lm->indptr[Min((e + 1) * BATCH_USERS, m->nusers)] - lm->indptr[e * BATCH_USERS]);
	for (int s = 0; s < BATCH_SLOTS; s++)
	{
		run->heaps[s] = palloc(sizeof(TopK) * BATCH_USERS);
		for (int r = 0; r < BATCH_USERS; r++)
			topk_init(&run->heaps[s][r], k);
	}
	/* workers[BATCH_THREADS] is the backend's, when no thread starts */
	for (int t = 0; t <= BATCH_THREADS; t++)
	{
		BatchWorker *w = &workers[t];

		w->run = run;
		w->scores = palloc(sizeof(float) * BATCH_USERS * BATCH_ITEMS);
		w->X = palloc(sizeof(float) * BATCH_USERS * m->factors);
		w->xnorm = palloc(sizeof(float) * BATCH_USERS);
		w->left = palloc(sizeof(int32) * BATCH_USERS);
		w->seen = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(block_seen, 1));
		w->seen_start = palloc(sizeof(int64) * (BATCH_USERS + 1));
		w->cursor = palloc(sizeof(int64) * BATCH_USERS);
		w->scored = 0;
	}
	pthread_mutex_init(&run->lock, NULL);
	pthread_cond_init(&run->changed, NULL);
	/* each thread runs its own single-threaded sgemm on its own users */
	openblas_set_num_threads(1);
	PG_TRY();
	{
		/* workers must never run a PostgreSQL signal handler */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &sigs);
		for (int t = 0; t < BATCH_THREADS && t < run->nblocks; t++)
			if (pthread_create(&tid[started], NULL, batch_worker_main, &workers[t]) == 0)
				started++;
		pthread_sigmask(SIG_SETMASK, &sigs, NULL);
		for (int32 e = 0; e < run->nblocks; e++)
		{
			TopK	   *heaps = run->heaps[e % BATCH_SLOTS];
			int32		u0 = e * BATCH_USERS;

			batch_wait(run, &workers[BATCH_THREADS], e, started);
			for (int32 r = 0; r < Min(BATCH_USERS, m->nusers - u0); r++)
				emit_heap(rsinfo, lm, &heaps[r], NULL, true, lm->user_ids[u0 + r]);
			batch_emitted(run, e);
			if (started == 0)
				CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		batch_stop(run, tid, started);
		pthread_cond_destroy(&run->changed);
		pthread_mutex_destroy(&run->lock);
		openblas_set_num_threads(blas_threads);
	}
	PG_END_TRY();
	for (int t = 0; t <= BATCH_THREADS; t++)
		scored += workers[t].scored;
	ereport(DEBUG1,
			(errmsg("recommend_all scored " INT64_FORMAT " of " INT64_FORMAT " user-item pairs (%.1f%%)",
					scored, (int64) m->nusers * m->nitems,
					100.0 * scored / Max((double) m->nusers * m->nitems, 1))));
}

static const float *popularity_order_scores;

static int
cmp_popularity(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;
	float		sx = popularity_order_scores[x],
				sy = popularity_order_scores[y];

	if (sx != sy)
		return sx > sy ? -1 : 1;
	return (x > y) - (x < y);
}

/*
 * recommend_all for a popularity model: every user of its source (read now,
 * in user order), the k most popular items the user has not seen.
 */
static void
recommend_all_popular(ReturnSetInfo *rsinfo, LoadedModel *lm, int32 k)
{
	const char *source = loaded_source(lm);
	int32		n = lm->m->nitems;
	int32	   *order = palloc(sizeof(int32) * n);
	bool	   *seen = palloc0(sizeof(bool) * n);
	int32	   *touched = palloc(sizeof(int32) * n);
	int32		ntouched = 0;
	int64		current = 0;
	bool		have_user = false;
	Portal		portal;
	TopK		top;

	if (source == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("popularity model \"%s\" does not know the source it was trained from", lm->name),
				 errhint("Train it with personalize.train(), which records the source.")));
	for (int32 i = 0; i < n; i++)
		order[i] = i;
	popularity_order_scores = lm->item_pop;
	qsort(order, n, sizeof(int32), cmp_popularity);
	topk_init(&top, k);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL,
									   psprintf("SELECT s.user_id::pg_catalog.int8, s.item_id::pg_catalog.int8 FROM %s AS s"
												" WHERE s.user_id IS NOT NULL AND s.item_id IS NOT NULL AND s.weight IS NOT NULL"
												" ORDER BY 1", source),
									   0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		uint64		rows;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 10000);
		rows = SPI_processed;
		for (uint64 r = 0; r <= rows; r++)
		{
			bool		isnull;
			int64		user = 0;
			int32		i = -1;

			if (r < rows)
			{
				user = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
				i = loaded_item(lm, DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull)));
			}
			if (have_user && (r == rows ? rows == 0 : user != current))
			{
				/* the k most popular unseen items, in popularity order */
				top.n = 0;
				for (int32 j = 0; j < n && top.n < k; j++)
					if (!seen[order[j]])
					{
						top.score[top.n] = lm->item_pop[order[j]];
						top.index[top.n++] = order[j];
					}
				emit_heap(rsinfo, lm, &top, NULL, true, current);
				while (ntouched > 0)
					seen[touched[--ntouched]] = false;
				have_user = false;
			}
			if (r == rows)
				break;
			current = user;
			have_user = true;
			if (i >= 0 && !seen[i])
			{
				seen[i] = true;
				touched[ntouched++] = i;
			}
		}
		SPI_freetuptable(SPI_tuptable);
		if (rows == 0)
			break;
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

/* recommend_all(model_name, k) -> (user_id, item_id, score, rank), seen items excluded */
PG_FUNCTION_INFO_V1(recommend_all);
Datum
recommend_all(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	const ModelHeader *m;
	int32		k;
	const int64 *user_ids;
	bool	   *mask;
	MemoryContext tmp,
				old;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 1, "k");
	InitMaterializedSRF(fcinfo, 0);
	lm = recommender_get(PG_GETARG_TEXT_PP(0));
	m = lm->m;
	k = PG_GETARG_INT32(1);
	check_k(lm, k);
	if (model_is_popularity(m->algorithm))
	{
		recommend_all_popular(rsinfo, lm, k);
		return (Datum) 0;
	}
	user_ids = lm->user_ids;
	mask = palloc0(sizeof(bool) * m->nitems);
	if (next_chunk_above == NULL)
		choose_chunk_kernel();
	tmp = AllocSetContextCreate(CurrentMemoryContext, "recommend_all", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(tmp);
	if (model_has_factors(m->algorithm))
		recommend_all_factors(rsinfo, lm, k);
	else
	{
		float	   *scores = palloc(sizeof(float) * m->nitems);

		for (int32 u = 0; u < m->nusers; u++)
		{
			if ((u & 255) == 0)
				CHECK_FOR_INTERRUPTS();
			if (m->algorithm == MODEL_EDITORIAL)
				editorial_scores(lm, u, NULL, scores, mask);
			else
				score_user(lm, u, scores);
			mask_seen(lm, u, mask);
			emit_topk(rsinfo, lm, scores, mask, k, NULL, true, user_ids[u]);
			memset(mask, 0, sizeof(bool) * m->nitems);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	return (Datum) 0;
}

/* similar_items(model_name, item_id, k) -> (item_id, score, rank) */
PG_FUNCTION_INFO_V1(similar_items);
Datum
similar_items(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	const ModelHeader *m;
	int32		k,
				i;
	float	   *scores;
	bool	   *mask;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 2, "k");
	InitMaterializedSRF(fcinfo, 0);
	lm = recommender_get(PG_GETARG_TEXT_PP(0));
	m = lm->m;
	k = PG_GETARG_INT32(2);
	check_k(lm, k);
	if (model_is_popularity(m->algorithm) || m->algorithm == MODEL_EDITORIAL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is %s model and has no item similarities", lm->name,
						m->algorithm == MODEL_EDITORIAL ? "an editorial" : "a popularity")));
	if (PG_ARGISNULL(1) || (i = loaded_item(lm, PG_GETARG_INT64(1))) < 0)
		return (Datum) 0;		/* unknown item: no rows */
	scores = palloc(sizeof(float) * m->nitems);
	mask = palloc0(sizeof(bool) * m->nitems);
	if (model_has_factors(m->algorithm))
	{
		/* cosine of the item factors */
		score_factors(lm, lm->item_factors + (Size) i * m->factors, scores);
		for (int32 j = 0; j < m->nitems; j++)
		{
			float		d = lm->item_norms[i] * lm->item_norms[j];

			scores[j] = d > 0 ? scores[j] / d : 0;
		}
	}
	else
	{
		const int32	   *nbr = lm->nbr_items + (Size) i * m->neighbors;
		const float	   *sim = lm->nbr_sim + (Size) i * m->neighbors;

		/* only stored neighbours are similar */
		memset(mask, true, sizeof(bool) * m->nitems);
		memset(scores, 0, sizeof(float) * m->nitems);
		for (int a = 0; a < m->neighbors && nbr[a] >= 0; a++)
		{
			mask[nbr[a]] = false;
			scores[nbr[a]] = sim[a];
		}
	}
	mask[i] = true;
	{
		/* (item_id, score, rank): emit_topk without reason */
		emit_topk(rsinfo, lm, scores, mask, k, NULL, false, 0);
	}
	return (Datum) 0;
}

/* score(model_name, user_id, item_id) -> real; NULL when the user or item is unknown */
PG_FUNCTION_INFO_V1(model_score);
Datum
model_score(PG_FUNCTION_ARGS)
{
	LoadedModel *lm = recommender_get(PG_GETARG_TEXT_PP(0));
	const ModelHeader *m = lm->m;
	int32		i = loaded_item(lm, PG_GETARG_INT64(2));
	int32		u;

	if (i < 0)
		PG_RETURN_NULL();
	if (model_is_popularity(m->algorithm))
		PG_RETURN_FLOAT4(lm->item_pop[i]);
	u = find_user(lm, PG_GETARG_INT64(1));
	if (m->algorithm == MODEL_EDITORIAL)
	{
		float	   *scores = palloc(sizeof(float) * m->nitems);
		bool	   *mask = palloc0(sizeof(bool) * m->nitems);

		editorial_scores(lm, u, NULL, scores, mask);
		if (mask[i])
			PG_RETURN_NULL();
		PG_RETURN_FLOAT4(scores[i]);
	}
	if (u < 0)
		PG_RETURN_NULL();
	if (model_has_factors(m->algorithm))
		PG_RETURN_FLOAT4(vec_dot(m->factors, lm->user_factors + (Size) u * m->factors,
								 lm->item_factors + (Size) i * m->factors));
	else
	{
		const int64	   *indptr = lm->indptr;
		const int32	   *indices = lm->seen_items;
		const float	   *weights = lm->seen_weights;
		const int32	   *nbr = lm->nbr_items;
		const float	   *sim = lm->nbr_sim;
		float		s = 0;

		for (int64 j = indptr[u]; j < indptr[u + 1]; j++)
		{
			Size		base = (Size) indices[j] * m->neighbors;

			for (int a = 0; a < m->neighbors && nbr[base + a] >= 0; a++)
				if (nbr[base + a] == i)
					s += weights[j] * sim[base + a];
		}
		PG_RETURN_FLOAT4(s);
	}
}

static void
emit_embeddings(FunctionCallInfo fcinfo, bool users)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	const ModelHeader *m;
	int32		n;
	const int64 *ids;
	const float *factors;

	InitMaterializedSRF(fcinfo, 0);
	lm = recommender_get(PG_GETARG_TEXT_PP(0));
	m = lm->m;
	if (!model_has_factors(m->algorithm))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" has no embeddings", lm->name),
				 errdetail("It is a %s model; als, bpr, hybrid and dp_als models have embeddings.",
						   model_algorithm_name(m->algorithm))));
	CheckEmbeddingDim(m->factors);
	n = users ? m->nusers : m->nitems;
	ids = users ? lm->user_ids : lm->item_ids;
	factors = users ? lm->user_factors : lm->item_factors;
	for (int32 r = 0; r < n; r++)
	{
		Embedding  *e = InitEmbedding(m->factors);
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if ((r & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		memcpy(e->x, factors + (Size) r * m->factors, sizeof(float) * m->factors);
		values[0] = Int64GetDatum(ids[r]);
		values[1] = PointerGetDatum(e);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(e);
	}
}

PG_FUNCTION_INFO_V1(user_embeddings);
Datum
user_embeddings(PG_FUNCTION_ARGS)
{
	emit_embeddings(fcinfo, true);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(item_embeddings);
Datum
item_embeddings(PG_FUNCTION_ARGS)
{
	emit_embeddings(fcinfo, false);
	return (Datum) 0;
}
