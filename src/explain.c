/*
 * explain.c — personalize.explain(model_name, user_id, item_id, k, context):
 * the parts of a user's score for an item, largest first.
 *
 *   als, dp_als  past items j: c_uj y_iᵀ A_u⁻¹ y_j with the fold-in system
 *                A_u = YᵀY + λI + Σ (c_uj - 1) y_j y_jᵀ, the decomposition of
 *                implicit's explain(); they sum to y_iᵀ x_u for the user's
 *                exactly solved factors x_u (fold_in, serving.c)
 *   itemknn      past items j: w_uj sim(j, i); they sum to the score
 *   hybrid       the parts of the user's vector (id, features, context) and
 *                of the item's (id, features): the score is Σ over pairs of
 *                parts of their dot product plus the item parts' biases, and
 *                each pair's product is shared equally between its two parts
 *                (their Shapley values); the rows sum to the score
 *   bpr          the user's factors (the dot product) and the item's bias
 *   popularity, dp_popularity, editorial: one row, the score
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

typedef struct Part
{
	const char *kind;
	bool		has_item;
	int64		past_item;
	const char *name;
	double		contribution;
} Part;

typedef struct Parts
{
	int			n;
	int			capacity;
	Part	   *part;
} Parts;

static void
add_part(Parts *p, const char *kind, bool has_item, int64 past_item, const char *name, double contribution)
{
	if (p->n == p->capacity)
	{
		p->capacity = Max(16, p->capacity * 2);
		p->part = p->part ? repalloc(p->part, sizeof(Part) * p->capacity) : palloc(sizeof(Part) * p->capacity);
	}
	p->part[p->n].kind = kind;
	p->part[p->n].has_item = has_item;
	p->part[p->n].past_item = past_item;
	p->part[p->n].name = name;
	p->part[p->n].contribution = contribution;
	p->n++;
}

static int
cmp_part(const void *a, const void *b)
{
	const Part *x = a,
			   *y = b;

	if (x->contribution != y->contribution)
		return x->contribution > y->contribution ? -1 : 1;
	if (x->has_item != y->has_item || x->past_item != y->past_item)
		return x->has_item != y->has_item ? (x->has_item ? -1 : 1) : (x->past_item < y->past_item ? -1 : 1);
	return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

/* als, dp_als: implicit's decomposition over the user's past items */
static void
explain_als(LoadedModel *lm, int32 u, int32 i, Parts *out)
{
	const ModelHeader *m = lm->m;
	int			f = m->factors;
	const int32 *indices = lm->seen_items + lm->indptr[u];
	const float *weights = lm->seen_weights + lm->indptr[u];
	int64		n = lm->indptr[u + 1] - lm->indptr[u];
	const float *Y = lm->item_factors;
	double	   *L = palloc(sizeof(double) * f * f);
	double	   *w = palloc(sizeof(double) * f);
	float	   *x = palloc(sizeof(float) * f);

	fold_in(lm, indices, weights, n, x, L);
	for (int a = 0; a < f; a++)
		w[a] = Y[(Size) i * f + a];
	cholesky_solve(L, f, w);	/* w = A_u⁻¹ y_i */
	for (int64 j = 0; j < n; j++)
	{
		const float *y = Y + (Size) indices[j] * f;
		double		c = 1.0 + (double) lm->alpha * weights[j],
					s = 0;

		for (int a = 0; a < f; a++)
			s += w[a] * y[a];
		add_part(out, "past_item", true, lm->item_ids[indices[j]], NULL, c * s);
	}
}

/* itemknn: each past item's weight times its stored similarity to the item */
static void
explain_itemknn(LoadedModel *lm, int32 u, int32 i, Parts *out)
{
	const ModelHeader *m = lm->m;

	for (int64 j = lm->indptr[u]; j < lm->indptr[u + 1]; j++)
	{
		Size		base = (Size) lm->seen_items[j] * m->neighbors;

		for (int a = 0; a < m->neighbors && lm->nbr_items[base + a] >= 0; a++)
			if (lm->nbr_items[base + a] == i)
				add_part(out, "past_item", true, lm->item_ids[lm->seen_items[j]], NULL,
						 (double) lm->seen_weights[j] * lm->nbr_sim[base + a]);
	}
}

static double
dot(int n, const float *a, const float *b)
{
	double		s = 0;

	for (int k = 0; k < n; k++)
		s += (double) a[k] * b[k];
	return s;
}

/*
 * hybrid: d = user's vector (+ context), q = item's. The user side's parts
 * are the id (what the stored vector has beyond its features) and the
 * features; the item side's likewise. Part a of the user side gets half of
 * a·q (its products with every item part), part g of the item side half of
 * d·g plus its bias share.
 */
static void
explain_hybrid(LoadedModel *lm, int32 u, int32 i, int32 context, const char *context_name, Parts *out)
{
	const ModelHeader *m = lm->m;
	int			dim = m->factors,
				f = dim - 1;
	float	   *d = palloc(sizeof(float) * dim);
	float	   *rest = palloc(sizeof(float) * dim);
	const float *q = lm->item_factors + (Size) i * dim;
	const float *item_factors = model_section(m, SECTION_ITEM_FEATURE_FACTORS);
	const float *user_factors = model_section(m, SECTION_USER_FEATURE_FACTORS);
	const void *item_names = model_section(m, SECTION_ITEM_FEATURE_NAMES);
	const void *user_names = model_section(m, SECTION_USER_FEATURE_NAMES);
	const int32 *item_index = model_section(m, SECTION_ITEM_FEATURE_INDEX);
	const float *item_weight = model_section(m, SECTION_ITEM_FEATURE_WEIGHT);
	const int32 *user_index = model_section(m, SECTION_USER_FEATURE_INDEX);
	const float *user_weight = model_section(m, SECTION_USER_FEATURE_WEIGHT);
	uint64		item_width = m->nitems ? model_section_entry(m, SECTION_ITEM_FEATURE_INDEX)->bytes / sizeof(int32) / m->nitems : 0;
	uint64		user_width = m->nusers ? model_section_entry(m, SECTION_USER_FEATURE_INDEX)->bytes / sizeof(int32) / m->nusers : 0;

	if (u >= 0)
		memcpy(d, lm->user_factors + (Size) u * dim, sizeof(float) * dim);
	else
		memset(d, 0, sizeof(float) * dim);
	d[f] = 1.0f;

	/* user side: features, then the id as the rest of the stored vector */
	memcpy(rest, d, sizeof(float) * f);
	if (u >= 0)
	{
		for (uint64 k = 0; k < user_width && user_index[u * user_width + k] >= 0; k++)
		{
			int32		feature = user_index[u * user_width + k];
			const float *e = user_factors + (Size) feature * dim;
			double		wgt = user_weight[u * user_width + k];

			add_part(out, "user_feature", false, 0, names_get(user_names, feature), 0.5 * wgt * dot(f, e, q));
			for (int c = 0; c < f; c++)
				rest[c] -= (float) (wgt * e[c]);
		}
		add_part(out, "user_id", false, 0, NULL, 0.5 * dot(f, rest, q));
	}
	if (context >= 0)
	{
		const float *c = (const float *) model_section(m, SECTION_CONTEXT_FACTORS) + (Size) context * dim;

		add_part(out, "context", false, 0, context_name, 0.5 * dot(f, c, q));
		for (int a = 0; a < f; a++)
			d[a] += c[a];
	}

	/* item side: features, then the id; each with its bias */
	memcpy(rest, q, sizeof(float) * dim);
	for (uint64 k = 0; k < item_width && item_index[i * item_width + k] >= 0; k++)
	{
		int32		feature = item_index[i * item_width + k];
		const float *g = item_factors + (Size) feature * dim;
		double		wgt = item_weight[i * item_width + k];

		add_part(out, "item_feature", false, 0, names_get(item_names, feature), wgt * (0.5 * dot(f, d, g) + g[f]));
		for (int c = 0; c < dim; c++)
			rest[c] -= (float) (wgt * g[c]);
	}
	add_part(out, "item_id", false, 0, NULL, 0.5 * dot(f, d, rest) + rest[f]);
}

/*
 * explain(model_name, user_id, item_id, k DEFAULT 10, context DEFAULT NULL)
 *   -> (rank, kind, past_item_id, name, contribution)
 */
PG_FUNCTION_INFO_V1(explain);
Datum
explain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LoadedModel *lm;
	const ModelHeader *m;
	int32		u = -1,
				i,
				context = -1,
				k;
	char	   *context_name = NULL;
	Parts		parts;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	lm = recommender_get(PG_GETARG_TEXT_PP(0));
	m = lm->m;
	k = PG_ARGISNULL(3) ? PG_INT32_MAX : PG_GETARG_INT32(3);
	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, not %d", k)));
	if (PG_ARGISNULL(2) || (i = loaded_item(lm, PG_GETARG_INT64(2))) < 0)
		return (Datum) 0;		/* unknown item: no rows */
	if (!PG_ARGISNULL(1))
		u = loaded_user(lm, PG_GETARG_INT64(1));
	if (!PG_ARGISNULL(4))
		context_name = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (context_name && m->algorithm == MODEL_HYBRID)
		context = names_find(model_section(m, SECTION_CONTEXT_NAMES), context_name);

	memset(&parts, 0, sizeof(parts));
	if (model_is_popularity(m->algorithm))
		add_part(&parts, "popularity", false, 0, NULL, lm->item_pop[i]);
	else if (m->algorithm == MODEL_EDITORIAL)
	{
		float	   *scores = palloc(sizeof(float) * m->nitems);
		bool	   *mask = palloc0(sizeof(bool) * m->nitems);
		const char *list = editorial_scores(lm, u, context_name, scores, mask);

		if (mask[i])
			return (Datum) 0;	/* not on the list served to the user */
		add_part(&parts, "editorial", false, 0, list, scores[i]);
	}
	else if (m->algorithm == MODEL_HYBRID && (u >= 0 || context >= 0))
		explain_hybrid(lm, u, i, context, context_name, &parts);
	else if (u < 0)
		return (Datum) 0;		/* unknown user: no rows */
	else if (model_is_als(m->algorithm))
		explain_als(lm, u, i, &parts);
	else if (m->algorithm == MODEL_ITEMKNN)
		explain_itemknn(lm, u, i, &parts);
	else if (m->algorithm == MODEL_BPR)
	{
		int			dim = m->factors;
		const float *x = lm->user_factors + (Size) u * dim;
		const float *y = lm->item_factors + (Size) i * dim;

		add_part(&parts, "user_factors", false, 0, NULL, dot(dim - 1, x, y));
		add_part(&parts, "item_bias", false, 0, NULL, y[dim - 1]);
	}

	qsort(parts.part, parts.n, sizeof(Part), cmp_part);
	for (int r = 0; r < parts.n && r < k; r++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = Int32GetDatum(r + 1);
		values[1] = CStringGetTextDatum(parts.part[r].kind);
		values[2] = Int64GetDatum(parts.part[r].past_item);
		nulls[2] = !parts.part[r].has_item;
		nulls[3] = parts.part[r].name == NULL;
		if (!nulls[3])
			values[3] = CStringGetTextDatum(parts.part[r].name);
		values[4] = Float4GetDatum((float) parts.part[r].contribution);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
