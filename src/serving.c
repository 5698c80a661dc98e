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

#include "catalog/pg_type.h"
#include "embedding.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "utils/array.h"
#include "utils/builtins.h"
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

/* scores = Y x for every item */
static void
score_factors(LoadedModel *lm, const float *x, float *scores)
{
	ModelHeader *m = lm->m;

	cblas_sgemv(CblasRowMajor, CblasNoTrans, m->nitems, m->factors, 1.0f,
				lm->item_factors, m->factors, x, 1, 0.0f, scores, 1);
}

/* item-kNN: score_j = Σ_i w_i sim(i, j) over the neighbour lists of the given items */
static void
score_neighbors(LoadedModel *lm, const int32 *items, const float *weights, int64 n, float *scores)
{
	ModelHeader *m = lm->m;
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

/*
 * Fold-in: the user's factors from interactions alone, one exact ALS
 * least-squares step against the fixed item factors,
 *     (YᵀY + λI + Σ (c_i - 1) y_i y_iᵀ) x = Σ c_i y_i,   c_i = 1 + α w_i,
 * solved by Cholesky in double precision.
 */
static void
fold_in(LoadedModel *lm, const int32 *items, const float *weights, int64 n, float *x)
{
	int			f = lm->m->factors;
	const float	   *Y = lm->item_factors;
	double	   *A = palloc(sizeof(double) * f * f);
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
	for (int a = 0; a < f; a++)
	{
		double		s = b[a];

		for (int c = 0; c < a; c++)
			s -= A[a * f + c] * b[c];
		b[a] = s / A[a * f + a];
	}
	for (int a = f - 1; a >= 0; a--)
	{
		double		s = b[a];

		for (int c = a + 1; c < f; c++)
			s -= A[c * f + a] * b[c];
		b[a] = s / A[a * f + a];
	}
	for (int a = 0; a < f; a++)
		x[a] = (float) b[a];
	pfree(A);
	pfree(b);
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
			int32		i = idmap_get(lm->items, DatumGetInt64(values[j]));

			if (i >= 0)
				mask[i] = false;
		}
	}
	if (excl_arg >= 0 && !PG_ARGISNULL(excl_arg))
	{
		count = array_elements(PG_GETARG_ARRAYTYPE_P(excl_arg), INT8OID, &values, "exclude");
		for (int j = 0; j < count; j++)
		{
			int32		i = idmap_get(lm->items, DatumGetInt64(values[j]));

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
	return lm->users ? idmap_get(lm->users, user_id) : -1;
}

/* Scores of a known user: ALS factors or item-kNN over the user's items. */
static void
score_user(LoadedModel *lm, int32 u, float *scores)
{
	ModelHeader *m = lm->m;

	if (m->algorithm == MODEL_ALS)
		score_factors(lm, lm->user_factors + (Size) u * m->factors, scores);
	else
	{
		const int64	   *indptr = lm->indptr;

		score_neighbors(lm, lm->seen_items + indptr[u],
						lm->seen_weights + indptr[u],
						indptr[u + 1] - indptr[u], scores);
	}
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
 * recommend(model_name, user_id, k, exclude_seen, candidates, exclude)
 *   -> (item_id, score, rank, reason)
 */
PG_FUNCTION_INFO_V1(recommend);
Datum
recommend(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	int32		k,
				u = -1;
	float	   *scores;
	bool	   *mask;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 2, "k");
	require_arg(fcinfo, 3, "exclude_seen");
	InitMaterializedSRF(fcinfo, 0);
	lm = model_cache_get(PG_GETARG_TEXT_PP(0));
	k = PG_GETARG_INT32(2);
	check_k(lm, k);
	if (!PG_ARGISNULL(1))
		u = find_user(lm, PG_GETARG_INT64(1));
	scores = palloc(sizeof(float) * lm->m->nitems);
	mask = build_mask(fcinfo, lm, 4, 5);
	if (u < 0)
	{
		score_popular(lm, scores);
		emit_topk(rsinfo, lm, scores, mask, k, "popular", false, 0);
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
	lm = model_cache_get(PG_GETARG_TEXT_PP(0));
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
		int32		i = idmap_get(lm->items, DatumGetInt64(item_values[j]));
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
	if (known == 0 || lm->m->algorithm == MODEL_POPULARITY)
	{
		score_popular(lm, scores);
		emit_topk(rsinfo, lm, scores, mask, k, "popular", false, 0);
	}
	else if (lm->m->algorithm == MODEL_ALS)
	{
		float	   *x = palloc(sizeof(float) * lm->m->factors);

		fold_in(lm, items, weights, known, x);
		score_factors(lm, x, scores);
		emit_topk(rsinfo, lm, scores, mask, k, "model", false, 0);
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
	lm = model_cache_get(PG_GETARG_TEXT_PP(0));
	if (lm->m->algorithm != MODEL_ALS)
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
		int32		i = idmap_get(lm->items, DatumGetInt64(item_values[j]));

		interactions_check_weight(DatumGetFloat4(weight_values[j]));
		if (i < 0)
			continue;
		items[known] = i;
		weights[known++] = DatumGetFloat4(weight_values[j]);
	}
	x = palloc(sizeof(float) * lm->m->factors);
	fold_in(lm, items, weights, known, x);
	out = palloc(sizeof(Datum) * lm->m->factors);
	for (int a = 0; a < lm->m->factors; a++)
		out[a] = Float4GetDatum(x[a]);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, lm->m->factors, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}

/* recommend_all(model_name, k) -> (user_id, item_id, score, rank), seen items excluded */
PG_FUNCTION_INFO_V1(recommend_all);
Datum
recommend_all(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	ModelHeader *m;
	int32		k;
	const int64 *user_ids;
	bool	   *mask;
	MemoryContext tmp,
				old;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 1, "k");
	InitMaterializedSRF(fcinfo, 0);
	lm = model_cache_get(PG_GETARG_TEXT_PP(0));
	m = lm->m;
	k = PG_GETARG_INT32(1);
	check_k(lm, k);
	if (m->algorithm == MODEL_POPULARITY)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is a popularity model and keeps no users", lm->name),
				 errhint("Use personalize.recommend() with the user's seen items in exclude.")));
	user_ids = lm->user_ids;
	mask = palloc0(sizeof(bool) * m->nitems);
	tmp = AllocSetContextCreate(CurrentMemoryContext, "recommend_all", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(tmp);
	if (m->algorithm == MODEL_ALS)
	{
		/*
		 * Tiles of 64 users x 4096 items, one sgemm each, so the scores are
		 * selected while they are still in cache; one heap per user of the
		 * block carries over the item tiles. Seen items are marked -Inf in
		 * the tile (scores are finite) and skipped.
		 */
		const int32 ublock = 64,
					itile = 4096;
		float	   *scores = palloc(sizeof(float) * ublock * itile);
		const float	   *X = lm->user_factors;
		const float	   *Y = lm->item_factors;
		const int64	   *indptr = lm->indptr;
		const int32	   *indices = lm->seen_items;
		TopK	   *heaps = palloc(sizeof(TopK) * ublock);
		int64	   *cursor = palloc(sizeof(int64) * ublock);

		for (int r = 0; r < ublock; r++)
			topk_init(&heaps[r], k);
		for (int32 u0 = 0; u0 < m->nusers; u0 += ublock)
		{
			int32		b = Min(ublock, m->nusers - u0);

			CHECK_FOR_INTERRUPTS();
			for (int32 r = 0; r < b; r++)
			{
				heaps[r].n = 0;
				cursor[r] = indptr[u0 + r];
			}
			for (int32 i0 = 0; i0 < m->nitems; i0 += itile)
			{
				int32		t = Min(itile, m->nitems - i0);

				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, t, m->factors, 1.0f,
							X + (Size) u0 * m->factors, m->factors, Y + (Size) i0 * m->factors, m->factors,
							0.0f, scores, t);
				for (int32 r = 0; r < b; r++)
				{
					float	   *row = scores + (Size) r * t;
					TopK	   *top = &heaps[r];
					int64		end = indptr[u0 + r + 1];

					/* the user's items are ascending: mark those in this tile */
					while (cursor[r] < end && indices[cursor[r]] < i0 + t)
					{
						row[indices[cursor[r]] - i0] = -INFINITY;
						cursor[r]++;
					}
					for (int32 j = 0; j < t; j++)
					{
						if (top->n == k && row[j] < top->score[0])
							continue;
						if (row[j] != -INFINITY)
							topk_push(top, row[j], i0 + j);
					}
				}
			}
			for (int32 r = 0; r < b; r++)
			{
				topk_sort(&heaps[r]);
				emit_heap(rsinfo, lm, &heaps[r], NULL, true, user_ids[u0 + r]);
			}
		}
	}
	else
	{
		float	   *scores = palloc(sizeof(float) * m->nitems);

		for (int32 u = 0; u < m->nusers; u++)
		{
			if ((u & 255) == 0)
				CHECK_FOR_INTERRUPTS();
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
	ModelHeader *m;
	int32		k,
				i;
	float	   *scores;
	bool	   *mask;

	require_arg(fcinfo, 0, "model_name");
	require_arg(fcinfo, 2, "k");
	InitMaterializedSRF(fcinfo, 0);
	lm = model_cache_get(PG_GETARG_TEXT_PP(0));
	m = lm->m;
	k = PG_GETARG_INT32(2);
	check_k(lm, k);
	if (m->algorithm == MODEL_POPULARITY)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is a popularity model and has no item similarities", lm->name)));
	if (PG_ARGISNULL(1) || (i = idmap_get(lm->items, PG_GETARG_INT64(1))) < 0)
		return (Datum) 0;		/* unknown item: no rows */
	scores = palloc(sizeof(float) * m->nitems);
	mask = palloc0(sizeof(bool) * m->nitems);
	if (m->algorithm == MODEL_ALS)
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
	LoadedModel *lm = model_cache_get(PG_GETARG_TEXT_PP(0));
	ModelHeader *m = lm->m;
	int32		i = idmap_get(lm->items, PG_GETARG_INT64(2));
	int32		u;

	if (i < 0)
		PG_RETURN_NULL();
	if (m->algorithm == MODEL_POPULARITY)
		PG_RETURN_FLOAT4(lm->item_pop[i]);
	u = find_user(lm, PG_GETARG_INT64(1));
	if (u < 0)
		PG_RETURN_NULL();
	if (m->algorithm == MODEL_ALS)
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
	ModelHeader *m;
	int32		n;
	const int64 *ids;
	const float *factors;

	InitMaterializedSRF(fcinfo, 0);
	lm = model_cache_get(PG_GETARG_TEXT_PP(0));
	m = lm->m;
	if (m->algorithm != MODEL_ALS)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is not an ALS model and has no embeddings", lm->name)));
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
