/*
 * dp.c — differentially private recommenders (doc/differential-privacy.md
 * has the accounting and its derivation):
 *
 *   dp_popularity  item counts of distinct users, each user bounded to at
 *                  most `contributions` items (chosen from the seed and the
 *                  user's id), plus Laplace noise of scale c/ε, or Gaussian
 *                  noise of standard deviation √c/√(2ρ) with ρ from (ε, δ)
 *                  under zero-concentrated DP (Bun & Steinke 2016). The
 *                  released items are a catalog's (a public list) or, without
 *                  one, those whose noisy count passes a threshold that
 *                  bounds by δ the chance of releasing an item only one user
 *                  has (Korolova et al. 2009; Wilson et al. 2020).
 *   dp_als         implicit ALS whose item-side statistics (XᵀX, each item's
 *                  Σ (c-1) x xᵀ and Σ c x) get Gaussian noise after
 *                  contribution bounding, weight clipping and clipping of the
 *                  user factors' norms, following Chien et al. 2021; the
 *                  user factors are each user's own solve (joint DP).
 *
 * ε = infinity turns a mechanism off: no bounding, clipping or noise, so
 * dp_als is als and dp_popularity counts users. Noise comes from streams
 * fixed by (seed, iteration, item), so a seed gives one model whatever the
 * threads do.
 */
#include "postgres.h"

#include <math.h>

#include "als.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "model.h"
#include "random.h"
#include "sqlsource.h"
#include "statistics.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

static const char *const mechanisms[] = {"laplace", "gaussian", NULL};

#define DP_MAX_EPSILON 1000.0
#define DP_MAX_DELTA 0.1

/* ---------- parameters ---------- */

/* ε: a number in (0, 1000], or the string "infinity" (no privacy). */
static double
dp_epsilon(Jsonb *opts)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&opts->root, "epsilon", strlen("epsilon"), NULL);

	if (v && v->type == jbvString)
	{
		char	   *s = pnstrdup(v->val.string.val, v->val.string.len);

		if (pg_strcasecmp(s, "infinity") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"epsilon\" must be a number or \"infinity\", not \"%s\"", s)));
		return INFINITY;
	}
	if (v == NULL || v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"epsilon\" is required"),
				 errhint("Give the privacy budget, e.g. {\"epsilon\": 1}, or \"infinity\" for no privacy.")));
	{
		double		eps = options_get_number(opts, "epsilon", 1, 0, DP_MAX_EPSILON);

		if (eps <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"epsilon\" must be greater than 0")));
		return eps;
	}
}

static double
dp_delta(Jsonb *opts)
{
	double		delta = options_get_number(opts, "delta", 1e-6, 0, DP_MAX_DELTA);

	if (delta <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"delta\" must be greater than 0")));
	return delta;
}

/*
 * ρ-zCDP implies (ρ + 2√(ρ ln(1/δ)), δ)-DP (Bun & Steinke 2016, Prop. 1.3):
 * the largest ρ within (ε, δ) solves s² + 2s√L = ε for s = √ρ, L = ln(1/δ).
 */
static double
dp_rho(double epsilon, double delta)
{
	double		L = log(1.0 / delta);
	double		s = sqrt(L + epsilon) - sqrt(L);

	return s * s;
}

static void
append_number(StringInfo s, const char *key, double v)
{
	if (isinf(v))
		appendStringInfo(s, "%s\"%s\": \"infinity\"", s->len > 1 ? ", " : "", key);
	else
		appendStringInfo(s, "%s\"%s\": %.15g", s->len > 1 ? ", " : "", key, v);
}

/* ---------- contribution bounding ---------- */

/*
 * Each user keeps at most c of their (user, item) pairs, a uniform choice
 * fixed by the seed and the user's id (not by other users' data); item
 * popularity follows. Compacts d in place.
 */
static void
dp_bound_contributions(Interactions *d, int c, uint64 seed)
{
	int64		out = 0;
	int32	   *pick = palloc(sizeof(int32) * Max(c, 1));

	memset(d->item_pop, 0, sizeof(float) * d->nitems);
	for (int32 u = 0; u < d->nusers; u++)
	{
		int64		start = d->indptr[u],
					n = d->indptr[u + 1] - start;

		if ((u & 0x3FFF) == 0)
			CHECK_FOR_INTERRUPTS();
		d->indptr[u] = out;
		if (n <= c)
		{
			for (int64 j = start; j < start + n; j++)
			{
				d->indices[out] = d->indices[j];
				d->weights[out++] = d->weights[j];
			}
			continue;
		}
		/* reservoir sampling (Algorithm R) of c positions out of n; then ascending */
		{
			Rng			rng;
			bool	   *keep;

			rng_seed(&rng, seed, (uint64) d->user_ids[u] ^ UINT64_C(0xb0b0c0de));
			for (int k = 0; k < c; k++)
				pick[k] = k;
			for (int64 k = c; k < n; k++)
			{
				uint64		r = k < PG_UINT32_MAX ? rng_below(&rng, (uint32) (k + 1)) : (uint64) (k % c);

				if (r < (uint64) c)
					pick[r] = (int32) k;
			}
			keep = palloc0(sizeof(bool) * n);
			for (int k = 0; k < c; k++)
				keep[pick[k]] = true;
			for (int64 j = 0; j < n; j++)
				if (keep[j])
				{
					d->indices[out] = d->indices[start + j];
					d->weights[out++] = d->weights[start + j];
				}
			pfree(keep);
		}
	}
	d->indptr[d->nusers] = out;
	d->nnz = out;
	for (int64 j = 0; j < out; j++)
		d->item_pop[d->indices[j]] += d->weights[j];
	pfree(pick);
}

/* ---------- dp_popularity ---------- */

static const char *const dp_popularity_options[] = {
	"epsilon", "delta", "mechanism", "contributions", "seed", "catalog", NULL
};

PG_FUNCTION_INFO_V1(dp_popularity_final);
Datum
dp_popularity_final(PG_FUNCTION_ARGS)
{
	InteractionState *st;
	Jsonb	   *opts;
	double		epsilon,
				delta = 0,
				rho = 0,
				scale = 0,
				threshold = -INFINITY;
	bool		gaussian;
	int			c;
	uint64		seed;
	char	   *catalog;
	Interactions *d,
				released;
	float	   *users_per_item;
	ModelBuilder b;
	char	   *options_text;
	ModelHeader *m;
	StringInfoData privacy;
	int32		n = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (InteractionState *) PG_GETARG_POINTER(0);
	opts = interactions_options(st);
	options_check_keys(opts, dp_popularity_options);
	epsilon = dp_epsilon(opts);
	gaussian = options_get_choice(opts, "mechanism", mechanisms, 0) == 1;
	c = (int) options_get_number(opts, "contributions", 10, 1, 100000);
	seed = (uint64) options_get_number(opts, "seed", 42, 0, 9007199254740991.0);
	catalog = options_get_string(opts, "catalog", NULL);
	if (!isinf(epsilon) && (gaussian || catalog == NULL))
		delta = dp_delta(opts);
	if (st->n == 0 && catalog == NULL)
		PG_RETURN_NULL();

	d = interactions_build(st);
	if (!isinf(epsilon))
		dp_bound_contributions(d, c, seed);
	/* a user counts once per item: distinct users per item */
	users_per_item = palloc0(sizeof(float) * Max(d->nitems, 1));
	for (int64 j = 0; j < d->nnz; j++)
		users_per_item[d->indices[j]] += 1.0f;

	/*
	 * Noise: one user changes at most c counts by 1, so the L1 sensitivity is
	 * c and the L2 one √c. Laplace(c/ε) is ε-DP; Gaussian with σ = √c/√(2ρ)
	 * is ρ-zCDP. Without a catalog, δ/2 goes to the zCDP conversion and δ/2
	 * to the threshold.
	 */
	if (!isinf(epsilon))
	{
		double		delta_noise = catalog ? delta : delta / 2;

		if (gaussian)
		{
			rho = dp_rho(epsilon, delta_noise);
			scale = sqrt((double) c) / sqrt(2.0 * rho);
		}
		else
			scale = c / epsilon;
		if (catalog == NULL)
		{
			/*
			 * An item only one user has has count 1 and at most c such items
			 * differ between neighbours: release an item when its noisy count
			 * reaches τ, with P(1 + noise >= τ) <= δ_t / c.
			 */
			double		delta_t = gaussian ? delta / 2 : delta;

			threshold = gaussian ? 1.0 + scale * pz_norm_ppf(1.0 - delta_t / c)
				: 1.0 + scale * log(c / (2.0 * delta_t));
		}
	}

	/* the released items: the catalog's, or the observed ones (thresholded when private) */
	memset(&released, 0, sizeof(released));
	released.rows = d->rows;
	released.null_rows = d->null_rows;
	if (catalog)
	{
		SourceRows *rows = ReadSourceRows(catalog, "catalog", "item_id", NULL, NULL);
		IdMap	   *observed = idmap_from_sorted(d->item_ids, d->nitems);

		qsort(rows->ids, rows->n, sizeof(int64), cmp_int64);
		released.item_ids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(rows->n, 1));
		released.item_pop = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(rows->n, 1));
		for (int64 r = 0; r < rows->n; r++)
		{
			int32		i;

			if (n > 0 && released.item_ids[n - 1] == rows->ids[r])
				continue;
			if (n == PG_INT32_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many catalog items")));
			i = idmap_get(observed, rows->ids[r]);
			released.item_ids[n] = rows->ids[r];
			released.item_pop[n++] = i >= 0 ? users_per_item[i] : 0.0f;
		}
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("catalog \"%s\" has no items", catalog)));
	}
	else
	{
		released.item_ids = d->item_ids;
		released.item_pop = users_per_item;
		n = d->nitems;
	}
	if (!isinf(epsilon))
	{
		int32		kept = 0;

		for (int32 i = 0; i < n; i++)
		{
			Rng			rng;
			double		noisy;

			rng_seed(&rng, seed, (uint64) released.item_ids[i] ^ UINT64_C(0x9e3779b97f4a7c15));
			noisy = released.item_pop[i] + (gaussian ? scale * rng_normal(&rng) : rng_laplace(&rng, scale));
			if (noisy < threshold)
				continue;
			released.item_ids[kept] = released.item_ids[i];
			released.item_pop[kept++] = (float) noisy;
		}
		n = kept;
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("no item passed the release threshold %g", threshold),
					 errhint("Give a catalog of items to release, or a larger epsilon or delta.")));
	}
	released.nitems = n;

	initStringInfo(&privacy);
	appendStringInfoChar(&privacy, '{');
	appendStringInfo(&privacy, "\"mechanism\": \"%s\"", isinf(epsilon) ? "none" : gaussian ? "gaussian" : "laplace");
	append_number(&privacy, "epsilon", epsilon);
	if (!isinf(epsilon))
	{
		if (delta > 0)
			append_number(&privacy, "delta", delta);
		if (gaussian)
			append_number(&privacy, "rho", rho);
		append_number(&privacy, "contributions", c);
		append_number(&privacy, "sensitivity", gaussian ? sqrt((double) c) : c);
		append_number(&privacy, gaussian ? "noise_std" : "noise_scale", scale);
		if (catalog == NULL)
			append_number(&privacy, "threshold", threshold);
		appendStringInfo(&privacy, ", \"released_items\": \"%s\"", catalog ? "catalog" : "thresholded");
		append_number(&privacy, "seed", (double) seed);
	}
	appendStringInfoChar(&privacy, '}');

	options_text = model_reserve_interactions(&b, MODEL_DP_POPULARITY, &released, opts, 0, 0, false);
	model_reserve(&b, SECTION_PRIVACY, ELEMENT_CHAR, ROWS_NONE, privacy.len + 1);
	m = model_allocate(&b);
	model_fill_interactions(m, &released, options_text);
	strcpy(model_section(m, SECTION_PRIVACY), privacy.data);
	PG_RETURN_DATUM(model_datum(m));
}

/* ---------- dp_als ---------- */

static const char *const dp_als_only_options[] = {
	"epsilon", "delta", "contributions", "clip", "max_weight", "noise_shift", "item_solve", NULL
};
static const char *const item_solves[] = {"shared", "full", NULL};

typedef struct DpAlsNoise
{
	int			f;
	uint64		seed;
	double		clip;			/* Γ: bound on a user factor's norm */
	double		std;			/* σ Δ: standard deviation of every noise entry */
	double		gram_shift;		/* added to the diagonal of the noisy XᵀX */
	double		item_shift;		/* added to the diagonal of each item's noisy matrix */
} DpAlsNoise;

static void
dp_clip_users(void *arg, int iteration, float *X, int32 nusers)
{
	DpAlsNoise *n = arg;

	for (int32 u = 0; u < nusers; u++)
	{
		float	   *x = X + (Size) u * n->f;
		double		norm = sqrt(vec_dot(n->f, x, x));

		if (norm > 0)
			for (int a = 0; a < n->f; a++)
				x[a] = (float) (x[a] * (n->clip / norm));
	}
}

/* a symmetric matrix of N(0, std²) entries (upper triangle drawn, mirrored) */
static void
symmetric_noise(Rng *rng, int f, double std, float *m)
{
	for (int a = 0; a < f; a++)
		for (int b = a; b < f; b++)
			m[a * f + b] = m[b * f + a] = (float) (std * rng_normal(rng));
}

static void
dp_perturb_gram(void *arg, int iteration, float *gram)
{
	DpAlsNoise *n = arg;
	int			f = n->f;
	float	   *noise = palloc(sizeof(float) * f * f);
	Rng			rng;

	rng_seed(&rng, n->seed, ((uint64) (iteration + 1) << 32) | UINT64_C(0xffffffff));
	symmetric_noise(&rng, f, n->std, noise);
	for (int k = 0; k < f * f; k++)
		gram[k] += noise[k];
	for (int a = 0; a < f; a++)
		gram[a * f + a] += (float) n->gram_shift;
	pfree(noise);
}

/* in worker threads: plain C only; matrix NULL when items share XᵀX */
static void
dp_item_noise(void *arg, int iteration, int32 item, float *matrix, float *vector)
{
	DpAlsNoise *n = arg;
	int			f = n->f;
	Rng			rng;

	rng_seed(&rng, n->seed, ((uint64) (iteration + 1) << 32) | (uint32) item);
	if (matrix)
	{
		symmetric_noise(&rng, f, n->std, matrix);
		for (int a = 0; a < f; a++)
			matrix[a * f + a] += (float) n->item_shift;
	}
	for (int a = 0; a < f; a++)
		vector[a] = (float) (n->std * rng_normal(&rng));
}

PG_FUNCTION_INFO_V1(dp_als_final);
Datum
dp_als_final(PG_FUNCTION_ARGS)
{
	InteractionState *st;
	Jsonb	   *opts;
	AlsOptions	o;
	const char *allowed[32];
	int			nallowed = 0;
	double		epsilon,
				delta = 0,
				clip,
				max_weight,
				shift_factor,
				rho = 0,
				sensitivity = 0,
				multiplier = 0;
	int			c;
	bool		shared;
	Interactions *d;
	DpAlsNoise	noise_params;
	AlsNoise	noise;
	StringInfoData privacy;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (InteractionState *) PG_GETARG_POINTER(0);
	opts = interactions_options(st);
	for (const char *const *a = als_options; *a; a++)
		allowed[nallowed++] = *a;
	for (const char *const *a = dp_als_only_options; *a; a++)
		allowed[nallowed++] = *a;
	allowed[nallowed] = NULL;
	options_check_keys(opts, allowed);
	als_read_options(opts, &o);
	epsilon = dp_epsilon(opts);
	if (!isinf(epsilon))
		delta = dp_delta(opts);
	c = (int) options_get_number(opts, "contributions", 50, 1, 100000);
	clip = options_get_number(opts, "clip", 1, 1e-6, 1e6);
	max_weight = options_get_number(opts, "max_weight", 1, 1e-6, 1e6);
	shift_factor = options_get_number(opts, "noise_shift", 1, 0, 100);
	shared = options_get_choice(opts, "item_solve", item_solves, 0) == 0;
	if (st->n == 0)
		PG_RETURN_NULL();
	interactions_check_memory(st, 4.0 * o.factors * ((double) st->users.count + st->items.count), "dp_als");
	d = interactions_build(st);

	initStringInfo(&privacy);
	appendStringInfoChar(&privacy, '{');
	appendStringInfo(&privacy, "\"mechanism\": \"%s\"", isinf(epsilon) ? "none" : "gaussian");
	append_number(&privacy, "epsilon", epsilon);
	if (!isinf(epsilon) && o.iterations > 0)
	{
		double		cw = o.alpha * max_weight;

		/* bounded data: at most c pairs per user, weights in [0, max_weight] */
		dp_bound_contributions(d, c, o.seed);
		for (int64 j = 0; j < d->nnz; j++)
			d->weights[j] = (float) Min(d->weights[j], max_weight);
		/*
		 * One user changes, per iteration, XᵀX by x xᵀ (Frobenius ‖x‖² <= Γ²),
		 * at most c items' Σ c_ui x by at most (1 + α w) Γ each and, when items
		 * solve with their own matrices, their Σ (c_ui - 1) x xᵀ by at most
		 * α w Γ² each: Δ below is the L2 sensitivity of all the released
		 * statistics together. T Gaussian releases of noise σΔ are
		 * T/(2σ²)-zCDP, so σ = √(T / 2ρ).
		 */
		sensitivity = sqrt(pow(clip, 4) + (shared ? 0 : c * cw * cw * pow(clip, 4)) + c * (1 + cw) * (1 + cw) * clip * clip);
		rho = dp_rho(epsilon, delta);
		multiplier = sqrt(o.iterations / (2.0 * rho));
		noise_params.f = o.factors;
		noise_params.seed = o.seed;
		noise_params.clip = clip;
		noise_params.std = multiplier * sensitivity;
		/* the expected spectral norm of a symmetric noise matrix: 2√f σΔ */
		noise_params.gram_shift = shared ? shift_factor * 2.0 * sqrt((double) o.factors) * noise_params.std : 0;
		noise_params.item_shift = shared ? 0 : shift_factor * 2.0 * sqrt(2.0 * o.factors) * noise_params.std;
		noise.before_items = dp_clip_users;
		noise.perturb_gram = dp_perturb_gram;
		noise.item_noise = dp_item_noise;
		noise.arg = &noise_params;
		noise.shared_gram = shared;
		appendStringInfo(&privacy, ", \"item_solve\": \"%s\"", shared ? "shared" : "full");
		append_number(&privacy, "delta", delta);
		append_number(&privacy, "rho", rho);
		append_number(&privacy, "iterations", o.iterations);
		append_number(&privacy, "contributions", c);
		append_number(&privacy, "clip", clip);
		append_number(&privacy, "max_weight", max_weight);
		append_number(&privacy, "sensitivity", sensitivity);
		append_number(&privacy, "noise_multiplier", multiplier);
		append_number(&privacy, "noise_std", noise_params.std);
		append_number(&privacy, "diagonal_shift", shared ? noise_params.gram_shift : noise_params.item_shift);
		append_number(&privacy, "seed", (double) o.seed);
	}
	appendStringInfoChar(&privacy, '}');
	PG_RETURN_DATUM(model_datum(als_fit_model(d, opts, &o, MODEL_DP_ALS, isinf(epsilon) || o.iterations == 0 ? NULL : &noise,
											  SECTION_PRIVACY, privacy.data)));
}
