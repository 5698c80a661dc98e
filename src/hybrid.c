/*
 * hybrid.c — personalize.hybrid_fit: a factorization whose item vector is
 * the sum of an id embedding and embeddings of the item's features, and
 * whose user vector likewise over the user's features (LightFM, Kula 2015),
 * plus an embedding of the interaction's context (daypart, device...) added
 * to the user's; trained with WARP or BPR by Hogwild SGD (sgd.c).
 *
 * Or, with "core": "als" (the default), an implicit-ALS core (als.c): an
 * item's vector is its id factor plus its features' factors, fitted by
 * alternating least squares; it learns no context.
 *
 * Features are read from SQL sources named in the options ("item_features":
 * item_id, feature, optional weight; "user_features": user_id, feature,
 * optional weight), as the caller. An item with features but no
 * interaction is a model item whose vector is its features' sum (item cold
 * start); a user likewise (user cold start). Items without interactions have
 * no id embedding; "negatives" says whether they are drawn as negatives. With
 * "normalize" each item's (user's) weights, its id's 1 included, are
 * divided by their absolute sum.
 *
 * A feature's set is the part of its name before the first ':' ("genre" for
 * "genre:Comedy"); "exclude_features" removes whole sets, and "context" or
 * "weight" there drops the contexts or the interaction weights.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "als.h"
#include "model.h"
#include "sgd.h"
#include "sqlsource.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

static const char *const hybrid_options[] = {
	"factors", "loss", "learning_rate", "learning_schedule", "regularization", "iterations",
	"max_sampled", "seed", "threads", "item_features", "user_features", "normalize",
	"exclude_features", "sampling", "average", "context_regularization", "negatives",
	"core", "alpha", "cg_steps", "feature_regularization", NULL
};
static const char *const cores[] = {"warp", "als", NULL};

/* Options of one core only: an error with the other. */
static const char *const sgd_only_options[] = {
	"loss", "learning_rate", "learning_schedule", "max_sampled", "sampling", "average",
	"context_regularization", "negatives", NULL
};
static const char *const als_only_options[] = {"alpha", "cg_steps", "feature_regularization", NULL};
static const char *const hybrid_losses[] = {"warp", "bpr", NULL};
static const char *const negative_sets[] = {"all", "interacted", NULL};
static const char *const samplings[] = {"interactions", "users", NULL};
static const char *const learning_schedules[] = {"adagrad", "sgd", NULL};

#define HYBRID_DEFAULT_FACTORS 64
#define CONTEXT_MAX_BYTES 127

typedef struct ContextEntry
{
	char		name[CONTEXT_MAX_BYTES + 1];
	int32		index;
} ContextEntry;

/* Transition state: the interaction rows as they come, with a context index each. */
typedef struct HybridState
{
	int64		n;
	int64		capacity;
	int64		null_rows;
	Jsonb	   *options;
	int64	   *users;
	int64	   *items;
	float	   *weights;
	int32	   *contexts;		/* -1 = none */
	HTAB	   *context_ids;
	int32		ncontexts;
	MemoryContext cxt;
} HybridState;

/* hybrid_transfn(internal, user bigint, item bigint, weight real, context text, options jsonb) */
PG_FUNCTION_INFO_V1(hybrid_transfn);
Datum
hybrid_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	HybridState *st;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "hybrid_transfn called in non-aggregate context");
	if (PG_ARGISNULL(0))
	{
		HASHCTL		ctl;

		st = MemoryContextAllocZero(cxt, sizeof(HybridState));
		st->cxt = cxt;
		st->capacity = 1024;
		st->users = MemoryContextAllocHuge(cxt, sizeof(int64) * st->capacity);
		st->items = MemoryContextAllocHuge(cxt, sizeof(int64) * st->capacity);
		st->weights = MemoryContextAllocHuge(cxt, sizeof(float) * st->capacity);
		st->contexts = MemoryContextAllocHuge(cxt, sizeof(int32) * st->capacity);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = CONTEXT_MAX_BYTES + 1;
		ctl.entrysize = sizeof(ContextEntry);
		ctl.hcxt = cxt;
		st->context_ids = hash_create("hybrid contexts", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	else
		st = (HybridState *) PG_GETARG_POINTER(0);

	if (st->options == NULL && !PG_ARGISNULL(5))
	{
		Jsonb	   *opts = PG_GETARG_JSONB_P(5);

		st->options = MemoryContextAlloc(cxt, VARSIZE(opts));
		memcpy(st->options, opts, VARSIZE(opts));
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		st->null_rows++;
		PG_RETURN_POINTER(st);
	}
	interactions_check_weight(PG_GETARG_FLOAT4(3));
	if (st->n == st->capacity)
	{
		st->capacity *= 2;
		st->users = repalloc_huge(st->users, sizeof(int64) * st->capacity);
		st->items = repalloc_huge(st->items, sizeof(int64) * st->capacity);
		st->weights = repalloc_huge(st->weights, sizeof(float) * st->capacity);
		st->contexts = repalloc_huge(st->contexts, sizeof(int32) * st->capacity);
	}
	st->users[st->n] = PG_GETARG_INT64(1);
	st->items[st->n] = PG_GETARG_INT64(2);
	st->weights[st->n] = PG_GETARG_FLOAT4(3);
	st->contexts[st->n] = -1;
	if (!PG_ARGISNULL(4))
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(4));
		ContextEntry *e;
		bool		found;

		if (strlen(name) > CONTEXT_MAX_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("context must be at most %d bytes long", CONTEXT_MAX_BYTES)));
		e = hash_search(st->context_ids, name, HASH_ENTER, &found);
		if (!found)
			e->index = st->ncontexts++;
		st->contexts[st->n] = e->index;
		pfree(name);
	}
	st->n++;
	PG_RETURN_POINTER(st);
}

/* ---------- ids: the union of the interactions' and the features' ---------- */

/* Sorted distinct union of sorted ids a and unsorted ids b; remap[a index] = union index. */
static int64 *
union_ids(const int64 *a, int32 na, const int64 *b, int64 nb, int32 *nout, int32 **remap)
{
	int64	   *all = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(na + nb, 1));
	int64		n = 0;

	if (na > 0)
		memcpy(all, a, sizeof(int64) * na);
	if (nb > 0)
		memcpy(all + na, b, sizeof(int64) * nb);
	qsort(all, na + nb, sizeof(int64), cmp_int64);
	for (int64 r = 0; r < na + nb; r++)
		if (n == 0 || all[n - 1] != all[r])
			all[n++] = all[r];
	if (n > PG_INT32_MAX - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct ids")));
	*remap = palloc(sizeof(int32) * Max(na, 1));
	for (int32 i = 0, j = 0; i < na; i++)
	{
		while (all[j] != a[i])
			j++;
		(*remap)[i] = j;
	}
	*nout = (int32) n;
	return all;
}

/* ---------- features ---------- */

typedef struct FeatureTable
{
	int32		nfeatures;
	char	  **names;			/* sorted */
	int64	   *indptr;			/* rows (users or items) -> features */
	int32	   *indices;
	float	   *weights;		/* as given, duplicates summed */
} FeatureTable;

typedef struct RowFeature
{
	int32		row;
	int32		feature;
	float		weight;
} RowFeature;

static int
cmp_row_feature(const void *a, const void *b)
{
	const RowFeature *x = a,
			   *y = b;

	if (x->row != y->row)
		return (x->row > y->row) - (x->row < y->row);
	return (x->feature > y->feature) - (x->feature < y->feature);
}

static char *
feature_set(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon ? pnstrdup(name, colon - name) : pstrdup(name);
}

static bool
excluded(const char *name, char **exclude, int nexclude, bool *used)
{
	char	   *set = feature_set(name);

	for (int e = 0; e < nexclude; e++)
		if (strcmp(set, exclude[e]) == 0)
		{
			used[e] = true;
			return true;
		}
	return false;
}

/* Feature rows of a source as a sparse table over the given ids (rows not in ids are skipped). */
static FeatureTable *
features_build(SourceRows *src, const IdMap *ids, int32 nrows, char **exclude, int nexclude, bool *used)
{
	FeatureTable *t = palloc0(sizeof(FeatureTable));
	char	  **sorted;
	int64		n = 0,
				out = 0;
	RowFeature *rf;
	int32		nnames = 0;

	/* feature dictionary: distinct kept names, sorted */
	sorted = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(char *) * Max(src->n, 1));
	for (int64 r = 0; r < src->n; r++)
		if (!excluded(src->labels[r], exclude, nexclude, used))
			sorted[n++] = src->labels[r];
	qsort(sorted, n, sizeof(char *), cmp_cstring);
	for (int64 r = 0; r < n; r++)
		if (nnames == 0 || strcmp(sorted[nnames - 1], sorted[r]) != 0)
			sorted[nnames++] = sorted[r];
	t->nfeatures = nnames;
	t->names = sorted;

	rf = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(RowFeature) * Max(n, 1));
	n = 0;
	for (int64 r = 0; r < src->n; r++)
	{
		int32		row = idmap_get(ids, src->ids[r]);
		char	  **hit;

		if (row < 0)
			continue;
		hit = bsearch(&src->labels[r], sorted, nnames, sizeof(char *), cmp_cstring);
		if (hit == NULL)
			continue;			/* excluded */
		rf[n].row = row;
		rf[n].feature = (int32) (hit - sorted);
		rf[n].weight = src->weights[r];
		n++;
	}
	qsort(rf, n, sizeof(RowFeature), cmp_row_feature);
	t->indptr = palloc0(sizeof(int64) * ((Size) nrows + 1));
	t->indices = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(n, 1));
	t->weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(n, 1));
	for (int64 r = 0; r < n; r++)
	{
		if (out > 0 && rf[r].row == rf[r - 1].row && rf[r].feature == rf[r - 1].feature)
		{
			t->weights[out - 1] += rf[r].weight;
			continue;
		}
		t->indptr[rf[r].row + 1]++;
		t->indices[out] = rf[r].feature;
		t->weights[out++] = rf[r].weight;
	}
	for (int32 r = 0; r < nrows; r++)
		t->indptr[r + 1] += t->indptr[r];
	pfree(rf);
	return t;
}

/*
 * The composition of each row: its id parameter row (when it has
 * interactions) then its features' rows (offset by nrows), weights divided by
 * their absolute sum when normalizing.
 */
static void
compose_rows(const FeatureTable *t, int32 nrows, const bool *has_id, bool normalize,
			 int64 **indptr_out, int32 **indices_out, float **weights_out, float *feature_weights)
{
	int64		nnz = t->indptr[nrows];
	int64	   *indptr = palloc(sizeof(int64) * ((Size) nrows + 1));
	int32	   *indices = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * (nnz + nrows + 1));
	float	   *weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (nnz + nrows + 1));
	int64		out = 0;

	for (int32 r = 0; r < nrows; r++)
	{
		int64		start = out;
		double		total = 0;

		indptr[r] = out;
		if (has_id[r])
		{
			indices[out] = r;
			weights[out++] = 1.0f;
		}
		for (int64 j = t->indptr[r]; j < t->indptr[r + 1]; j++)
		{
			indices[out] = nrows + t->indices[j];
			weights[out++] = t->weights[j];
		}
		for (int64 j = start; j < out; j++)
			total += fabs(weights[j]);
		if (normalize && total > 0)
			for (int64 j = start; j < out; j++)
				weights[j] = (float) (weights[j] / total);
		/* the feature weights as used, for the model's feature section */
		for (int64 j = t->indptr[r], k = start + (has_id[r] ? 1 : 0); j < t->indptr[r + 1]; j++, k++)
			feature_weights[j] = weights[k];
	}
	indptr[nrows] = out;
	*indptr_out = indptr;
	*indices_out = indices;
	*weights_out = weights;
}

/* The longest feature list of a row: the width of the padded lists stored. */
static int32
feature_list_width(const FeatureTable *t, int32 nrows)
{
	int64		width = 0;

	for (int32 r = 0; r < nrows; r++)
		width = Max(width, t->indptr[r + 1] - t->indptr[r]);
	return (int32) width;
}

/* Rows of width (feature index, weight as used), -1 padded, as the neighbour lists. */
static void
feature_lists_write(const FeatureTable *t, const float *weights, int32 nrows, int32 width,
					int32 *index, float *weight)
{
	for (int32 r = 0; r < nrows; r++)
	{
		int64		n = t->indptr[r + 1] - t->indptr[r];

		for (int32 k = 0; k < width; k++)
		{
			index[(Size) r * width + k] = k < n ? t->indices[t->indptr[r] + k] : -1;
			weight[(Size) r * width + k] = k < n ? weights[t->indptr[r] + k] : 0.0f;
		}
	}
}

/* ---------- samples ---------- */

typedef struct Sample
{
	int32		user;
	int32		item;
	int32		context;
} Sample;

static int
cmp_sample(const void *a, const void *b)
{
	const Sample *x = a,
			   *y = b;

	if (x->user != y->user)
		return (x->user > y->user) - (x->user < y->user);
	if (x->item != y->item)
		return (x->item > y->item) - (x->item < y->item);
	return (x->context > y->context) - (x->context < y->context);
}

PG_FUNCTION_INFO_V1(hybrid_final);
Datum
hybrid_final(PG_FUNCTION_ARGS)
{
	HybridState *st;
	Jsonb	   *opts;
	SgdProblem	p;
	int			f;
	bool		normalize,
				all_negatives,
				use_contexts = true,
				use_weights = true;
	char	   *item_source,
			   *user_source;
	char	  **exclude;
	int			nexclude;
	bool	   *exclude_used;
	InteractionState *copy;
	Interactions *d,
				all;
	int32	   *item_remap,
			   *user_remap;
	SourceRows *item_rows = NULL,
			   *user_rows = NULL;
	IdMap	   *item_map,
			   *user_map;
	FeatureTable *item_features,
			   *user_features;
	bool	   *item_has_id,
			   *user_has_id;
	float	   *item_feature_weights,
			   *user_feature_weights;
	int64	   *ic_indptr,
			   *uc_indptr;
	int32	   *ic_indices,
			   *uc_indices;
	float	   *ic_weights,
			   *uc_weights;
	char	  **context_names;
	int32	   *context_rank;
	Sample	   *samples;
	int64		nsamples = 0;
	int32	   *sample_user,
			   *sample_item,
			   *sample_context,
			   *negatives;
	int32		nnegatives = 0;
	ModelBuilder b;
	char	   *options_text;
	int32		item_width,
				user_width;
	ModelHeader *m;
	bool		als_core;
	AlsOptions	als;
	float		feature_regularization = 0;
	float	   *user_params,
			   *item_params,
			   *context_params;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (HybridState *) PG_GETARG_POINTER(0);
	opts = st->options ? st->options : DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	options_check_keys(opts, hybrid_options);
	memset(&p, 0, sizeof(p));
	f = (int) options_get_number(opts, "factors", HYBRID_DEFAULT_FACTORS, 1, 1023);
	p.dim = f + 1;
	p.loss = options_get_choice(opts, "loss", hybrid_losses, 0) == 0 ? SGD_WARP : SGD_BPR;
	p.learning_rate = (float) options_get_number(opts, "learning_rate", 0.02, 1e-9, 10);
	p.adagrad = options_get_choice(opts, "learning_schedule", learning_schedules, 0) == 0;
	p.user_regularization = p.item_regularization =
		(float) options_get_number(opts, "regularization", 0.001, 0, 100);
	p.context_regularization = (float) options_get_number(opts, "context_regularization", 0.3, 0, 100);
	p.epochs = (int) options_get_number(opts, "iterations", 30, 0, 10000);
	p.max_sampled = (int) options_get_number(opts, "max_sampled", 10, 1, 100000);
	p.seed = (uint64) options_get_number(opts, "seed", 42, 0, 9007199254740991.0);
	p.average = options_get_number(opts, "average", 0.25, 0, 1);
	p.by_user = options_get_choice(opts, "sampling", samplings, 0) == 1;
	p.threads = (int) options_get_number(opts, "threads", 2, 1, 16);
	p.name = "hybrid";
	/* the default core is the one that won on validation (doc/hybrid.md) */
	als_core = options_get_choice(opts, "core", cores, 1) == 1;
	for (const char *const *k = als_core ? sgd_only_options : als_only_options; *k; k++)
		if (getKeyJsonValueFromContainer(&opts->root, *k, strlen(*k), NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" does not apply to the hybrid's %s core", *k, als_core ? "als" : "warp")));
	if (als_core)
	{
		als.factors = f;
		als.regularization = (float) options_get_number(opts, "regularization", ALS_DEFAULT_REGULARIZATION, 0, 1e6);
		als.alpha = (float) options_get_number(opts, "alpha", ALS_DEFAULT_ALPHA, 0, 1e6);
		als.iterations = (int) options_get_number(opts, "iterations", 15, 0, 1000);
		als.cg_steps = (int) options_get_number(opts, "cg_steps", 3, 1, 1024);
		als.threads = p.threads;
		als.seed = p.seed;
		feature_regularization = (float) options_get_number(opts, "feature_regularization", 1, 1e-6, 1e6);
	}
	normalize = options_get_bool(opts, "normalize", false);
	all_negatives = options_get_choice(opts, "negatives", negative_sets, 0) == 0;
	item_source = options_get_string(opts, "item_features", NULL);
	user_source = options_get_string(opts, "user_features", NULL);
	nexclude = options_get_strings(opts, "exclude_features", &exclude);
	exclude_used = palloc0(sizeof(bool) * Max(nexclude, 1));
	for (int e = 0; e < nexclude; e++)
	{
		if (strcmp(exclude[e], "context") == 0)
			use_contexts = false, exclude_used[e] = true;
		else if (strcmp(exclude[e], "weight") == 0)
			use_weights = false, exclude_used[e] = true;
	}
	if (st->n == 0)
		PG_RETURN_NULL();

	/* interactions: CSR over the interaction ids (from a state of their own; ours keeps the rows) */
	copy = interactions_state_new(CurrentMemoryContext);
	copy->null_rows = st->null_rows;
	for (int64 r = 0; r < st->n; r++)
	{
		if ((r & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		interactions_add(copy, st->users[r], st->items[r], use_weights ? st->weights[r] : 1.0f);
	}
	interactions_check_memory(copy, 4.0 * (f + 1) * 2 * ((double) copy->users.count + copy->items.count) + 16.0 * st->n,
							  "hybrid");
	d = interactions_build(copy);

	/* features, read as the caller */
	if (item_source)
		item_rows = ReadSourceRows(item_source, "item_features", "item_id", "feature", "weight");
	if (user_source)
		user_rows = ReadSourceRows(user_source, "user_features", "user_id", "feature", "weight");
	CHECK_FOR_INTERRUPTS();

	/* the model's ids: interactions' and features' */
	all = *d;
	all.item_ids = union_ids(d->item_ids, d->nitems, item_rows ? item_rows->ids : NULL,
							 item_rows ? item_rows->n : 0, &all.nitems, &item_remap);
	all.user_ids = union_ids(d->user_ids, d->nusers, user_rows ? user_rows->ids : NULL,
							 user_rows ? user_rows->n : 0, &all.nusers, &user_remap);
	all.indptr = palloc0(sizeof(int64) * ((Size) all.nusers + 1));
	for (int32 u = 0; u < d->nusers; u++)
		all.indptr[user_remap[u] + 1] = d->indptr[u + 1] - d->indptr[u];
	for (int32 u = 0; u < all.nusers; u++)
		all.indptr[u + 1] += all.indptr[u];
	all.indices = d->indices;	/* the remap keeps each row ascending */
	for (int64 j = 0; j < d->nnz; j++)
		all.indices[j] = item_remap[all.indices[j]];
	all.item_pop = palloc0(sizeof(float) * Max(all.nitems, 1));
	for (int32 i = 0; i < d->nitems; i++)
		all.item_pop[item_remap[i]] = d->item_pop[i];
	item_has_id = palloc0(sizeof(bool) * Max(all.nitems, 1));
	for (int32 i = 0; i < d->nitems; i++)
		item_has_id[item_remap[i]] = true;
	user_has_id = palloc0(sizeof(bool) * Max(all.nusers, 1));
	for (int32 u = 0; u < d->nusers; u++)
		user_has_id[user_remap[u]] = true;

	item_map = idmap_from_sorted(all.item_ids, all.nitems);
	user_map = idmap_from_sorted(all.user_ids, all.nusers);
	if (item_rows)
		item_features = features_build(item_rows, item_map, all.nitems, exclude, nexclude, exclude_used);
	else
	{
		item_features = palloc0(sizeof(FeatureTable));
		item_features->indptr = palloc0(sizeof(int64) * ((Size) all.nitems + 1));
	}
	if (user_rows)
		user_features = features_build(user_rows, user_map, all.nusers, exclude, nexclude, exclude_used);
	else
	{
		user_features = palloc0(sizeof(FeatureTable));
		user_features->indptr = palloc0(sizeof(int64) * ((Size) all.nusers + 1));
	}
	for (int e = 0; e < nexclude; e++)
		if (!exclude_used[e])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature set \"%s\" does not occur in the features", exclude[e]),
					 errhint("A feature's set is the part of its name before the first ':'; \"context\" and \"weight\" are sets too.")));

	item_feature_weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(item_features->indptr[all.nitems], 1));
	user_feature_weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(user_features->indptr[all.nusers], 1));
	compose_rows(item_features, all.nitems, item_has_id, normalize, &ic_indptr, &ic_indices, &ic_weights, item_feature_weights);
	compose_rows(user_features, all.nusers, user_has_id, normalize, &uc_indptr, &uc_indices, &uc_weights, user_feature_weights);

	/* contexts, renumbered in name order */
	{
		HASH_SEQ_STATUS seq;
		ContextEntry *e;
		int32		n = use_contexts ? st->ncontexts : 0;
		ContextEntry **byname = palloc(sizeof(ContextEntry *) * Max(st->ncontexts, 1));
		int32		k = 0;

		hash_seq_init(&seq, st->context_ids);
		while ((e = hash_seq_search(&seq)) != NULL)
			byname[k++] = e;
		context_names = palloc(sizeof(char *) * Max(k, 1));
		for (int32 c = 0; c < k; c++)
			context_names[c] = byname[c]->name;
		qsort(context_names, k, sizeof(char *), cmp_cstring);
		context_rank = palloc(sizeof(int32) * Max(st->ncontexts, 1));
		for (int32 c = 0; c < k; c++)
		{
			ContextEntry *ce = hash_search(st->context_ids, context_names[c], HASH_FIND, NULL);

			context_rank[ce->index] = c;
		}
		/* the ALS core learns no context: its interactions are (user, item) pairs */
		p.ncontexts = als_core ? 0 : n;
		if (als_core && n > 0)
			ereport(NOTICE,
					(errmsg("the hybrid's als core learns no context: the interactions' contexts are not used"),
					 errhint("Option \"core\": \"warp\" learns context embeddings.")));
	}

	/* samples: distinct (user, item, context) of the rows with a positive weight */
	samples = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Sample) * st->n);
	for (int64 r = 0; r < st->n; r++)
	{
		if (use_weights && st->weights[r] <= 0)
			continue;
		samples[nsamples].user = idmap_get(user_map, st->users[r]);
		samples[nsamples].item = idmap_get(item_map, st->items[r]);
		samples[nsamples].context = use_contexts && st->contexts[r] >= 0 ? context_rank[st->contexts[r]] : -1;
		nsamples++;
	}
	qsort(samples, nsamples, sizeof(Sample), cmp_sample);
	{
		int64		n = 0;

		for (int64 r = 0; r < nsamples; r++)
			if (n == 0 || cmp_sample(&samples[n - 1], &samples[r]) != 0)
				samples[n++] = samples[r];
		nsamples = n;
	}
	sample_user = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(nsamples, 1));
	sample_item = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(nsamples, 1));
	sample_context = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(nsamples, 1));
	for (int64 r = 0; r < nsamples; r++)
	{
		sample_user[r] = samples[r].user;
		sample_item[r] = samples[r].item;
		sample_context[r] = samples[r].context;
	}
	pfree(samples);
	/*
	 * Negatives: every item, so that items known only by features learn to
	 * stay below the others (as LightFM); or only items with interactions,
	 * which spends no draws on items never seen (better when they are many
	 * and never served among the others).
	 */
	negatives = palloc(sizeof(int32) * Max(all.nitems, 1));
	for (int32 i = 0; i < all.nitems; i++)
		if (all_negatives || item_has_id[i])
			negatives[nnegatives++] = i;

	/* train */
	p.nusers = all.nusers;
	p.nitems = all.nitems;
	p.users.indptr = uc_indptr;
	p.users.indices = uc_indices;
	p.users.weights = uc_weights;
	p.items.indptr = ic_indptr;
	p.items.indices = ic_indices;
	p.items.weights = ic_weights;
	p.n_user_params = (int64) all.nusers + user_features->nfeatures;
	p.n_item_params = (int64) all.nitems + item_features->nfeatures;
	user_params = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * p.n_user_params * p.dim);
	item_params = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * p.n_item_params * p.dim);
	context_params = palloc(sizeof(float) * Max(p.ncontexts, 1) * p.dim);
	p.user_params = user_params;
	p.item_params = item_params;
	p.context_params = context_params;
	p.nsamples = nsamples;
	p.sample_user = sample_user;
	p.sample_item = sample_item;
	p.sample_context = sample_context;
	p.pos_indptr = all.indptr;
	p.pos_indices = all.indices;
	p.nnegatives = nnegatives;
	p.negatives = negatives;
	if (als_core)
	{
		AlsFeatureSide us = {all.nusers, user_has_id, uc_indptr, uc_indices, uc_weights,
		user_features->nfeatures, p.dim, user_params};
		AlsFeatureSide is = {all.nitems, item_has_id, ic_indptr, ic_indices, ic_weights,
		item_features->nfeatures, p.dim, item_params};

		als_fit_features(&all, &als, feature_regularization, &us, &is);
	}
	else
	{
		sgd_init_params(&p);
		sgd_train(&p);
	}

	/* the model: composed vectors, and what explain and serving need of the parts */
	options_text = model_reserve_interactions(&b, MODEL_HYBRID, &all, opts, p.dim, 0, true);
	item_width = feature_list_width(item_features, all.nitems);
	user_width = feature_list_width(user_features, all.nusers);
	model_reserve(&b, SECTION_ITEM_FEATURE_NAMES, ELEMENT_CHAR, ROWS_NONE, names_size(item_features->names, item_features->nfeatures));
	model_reserve(&b, SECTION_ITEM_FEATURE_FACTORS, ELEMENT_FLOAT4, ROWS_NONE, (uint64) item_features->nfeatures * p.dim);
	model_reserve(&b, SECTION_ITEM_FEATURE_INDEX, ELEMENT_INT32, ROWS_ITEMS, (uint64) all.nitems * item_width);
	model_reserve(&b, SECTION_ITEM_FEATURE_WEIGHT, ELEMENT_FLOAT4, ROWS_ITEMS, (uint64) all.nitems * item_width);
	model_reserve(&b, SECTION_USER_FEATURE_NAMES, ELEMENT_CHAR, ROWS_NONE, names_size(user_features->names, user_features->nfeatures));
	model_reserve(&b, SECTION_USER_FEATURE_FACTORS, ELEMENT_FLOAT4, ROWS_NONE, (uint64) user_features->nfeatures * p.dim);
	model_reserve(&b, SECTION_USER_FEATURE_INDEX, ELEMENT_INT32, ROWS_USERS, (uint64) all.nusers * user_width);
	model_reserve(&b, SECTION_USER_FEATURE_WEIGHT, ELEMENT_FLOAT4, ROWS_USERS, (uint64) all.nusers * user_width);
	model_reserve(&b, SECTION_CONTEXT_NAMES, ELEMENT_CHAR, ROWS_NONE, names_size(context_names, p.ncontexts));
	model_reserve(&b, SECTION_CONTEXT_FACTORS, ELEMENT_FLOAT4, ROWS_NONE, (uint64) p.ncontexts * p.dim);
	m = model_allocate(&b);
	model_fill_interactions(m, &all, options_text);
	sgd_compose_users(&p, model_section(m, SECTION_USER_FACTORS));
	sgd_compose_items(&p, model_section(m, SECTION_ITEM_FACTORS));
	names_write(model_section(m, SECTION_ITEM_FEATURE_NAMES), item_features->names, item_features->nfeatures);
	memcpy(model_section(m, SECTION_ITEM_FEATURE_FACTORS), item_params + (Size) all.nitems * p.dim,
		   sizeof(float) * (Size) item_features->nfeatures * p.dim);
	feature_lists_write(item_features, item_feature_weights, all.nitems, item_width,
						model_section(m, SECTION_ITEM_FEATURE_INDEX), model_section(m, SECTION_ITEM_FEATURE_WEIGHT));
	names_write(model_section(m, SECTION_USER_FEATURE_NAMES), user_features->names, user_features->nfeatures);
	memcpy(model_section(m, SECTION_USER_FEATURE_FACTORS), user_params + (Size) all.nusers * p.dim,
		   sizeof(float) * (Size) user_features->nfeatures * p.dim);
	feature_lists_write(user_features, user_feature_weights, all.nusers, user_width,
						model_section(m, SECTION_USER_FEATURE_INDEX), model_section(m, SECTION_USER_FEATURE_WEIGHT));
	names_write(model_section(m, SECTION_CONTEXT_NAMES), context_names, p.ncontexts);
	memcpy(model_section(m, SECTION_CONTEXT_FACTORS), context_params, sizeof(float) * (Size) p.ncontexts * p.dim);
	if (!als_core && p.epochs > 0)
		m->loss = p.last_loss;
	PG_RETURN_DATUM(model_datum(m));
}
