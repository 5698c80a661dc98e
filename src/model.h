/*
 * model.h — shared pieces of the recommendation models: the personalize.model
 * varlena layout, dense id maps, the interaction triple store that the
 * training aggregates accumulate, option parsing and small float kernels.
 *
 * A model value is one flat varlena: a fixed header followed by sections at
 * 8-byte aligned offsets (ids, popularity, the user-item matrix in CSR form,
 * factors, neighbour lists). Serving reads it in place after one detoast.
 */
#ifndef PERSONALIZE_MODEL_H
#define PERSONALIZE_MODEL_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/jsonb.h"

#define MODEL_MAGIC			0x504d4f44	/* "PMOD" */
#define MODEL_FORMAT		1

typedef enum ModelAlgorithm
{
	MODEL_POPULARITY = 1,
	MODEL_ITEMKNN = 2,
	MODEL_ALS = 3
} ModelAlgorithm;

/* Section offsets are from the start of the varlena; 0 means absent. */
typedef struct ModelHeader
{
	int32		vl_len_;
	int32		magic;
	int16		format;
	int16		algorithm;
	int32		factors;		/* ALS: latent dimensions */
	int32		neighbors;		/* item-kNN: neighbours kept per item */
	int32		nusers;
	int32		nitems;
	int32		pad;
	int64		nnz;			/* distinct (user, item) pairs kept */
	int64		rows;			/* input rows used */
	int64		null_rows;		/* input rows skipped for a NULL id */
	double		loss;			/* ALS: last loss when computed, else NaN */
	uint64		off_options;	/* options jsonb text, NUL-terminated */
	uint64		off_user_ids;	/* int64[nusers], ascending */
	uint64		off_item_ids;	/* int64[nitems], ascending */
	uint64		off_item_pop;	/* float[nitems]: summed weight per item */
	uint64		off_indptr;		/* int64[nusers + 1] */
	uint64		off_indices;	/* int32[nnz], item index per pair */
	uint64		off_weights;	/* float[nnz] */
	uint64		off_user_factors;	/* float[nusers * factors] */
	uint64		off_item_factors;	/* float[nitems * factors] */
	uint64		off_nbr_index;	/* int32[nitems * neighbors], -1 padded */
	uint64		off_nbr_sim;	/* float[nitems * neighbors] */
} ModelHeader;

/* A section that the caller knows is present (offset non-zero). */
#define MODEL_SECTION(m, off, type)	((type *) ((char *) (m) + (off)))

/* Open-addressing map from external bigint ids to dense int32 indexes. */
typedef struct IdMap
{
	int64	   *keys;
	int32	   *values;			/* -1 = empty slot */
	uint64		mask;
	int32		count;			/* keys held (idmap_add) */
} IdMap;

extern void idmap_init(IdMap *map, int64 expected);
extern int32 idmap_get(const IdMap *map, int64 key);
extern int32 idmap_insert(IdMap *map, int64 key, int32 value);	/* returns existing or value */
extern IdMap *idmap_from_sorted(const int64 *ids, int32 n);
extern int32 idmap_add(IdMap *map, int64 key);	/* next dense index when new; grows */

/* Interaction triples as accumulated by the training aggregates. */
typedef struct InteractionState
{
	int64		n;
	int64		capacity;
	int64		null_rows;
	Jsonb	   *options;		/* from the first row */
	int64	   *users;
	int64	   *items;
	float	   *weights;
} InteractionState;

extern InteractionState *interactions_state_new(MemoryContext cxt);
extern void interactions_check_weight(float w);
extern Jsonb *interactions_options(InteractionState *st);

/* Interactions with dense indexes: CSR by user, duplicates summed. */
typedef struct Interactions
{
	int32		nusers;
	int32		nitems;
	int64		nnz;
	int64		rows;
	int64		null_rows;
	int64	   *user_ids;		/* sorted external ids */
	int64	   *item_ids;
	int64	   *indptr;			/* users -> [indptr[u], indptr[u+1]) */
	int32	   *indices;		/* item index, ascending within a user */
	float	   *weights;
	float	   *item_pop;		/* summed weight per item */
} Interactions;

extern Interactions *interactions_build(InteractionState *state);	/* consumes state's triples */
extern void interactions_transpose(const Interactions *in, int64 **indptr, int32 **indices, float **weights);

/* Building a model value. */
typedef struct ModelBuilder
{
	ModelHeader hdr;
	Size		size;
} ModelBuilder;

extern uint64 model_reserve(ModelBuilder *b, Size bytes);
extern ModelHeader *model_allocate(ModelBuilder *b);
extern ModelHeader *model_from_interactions(ModelAlgorithm alg, const Interactions *data, Jsonb *options,
											int32 factors, int32 neighbors, bool keep_matrix);

extern ModelHeader *model_check(Datum d);
extern const char *model_algorithm_name(int alg);

/* ALS defaults, shared by training and the fold-in of serving. */
#define ALS_DEFAULT_FACTORS			64
#define ALS_DEFAULT_REGULARIZATION	0.05
#define ALS_DEFAULT_ALPHA			2.0
#define KNN_DEFAULT_NEIGHBORS		100

/*
 * Per-backend cache of active models, keyed by name and version: the model
 * value copied once into its own memory context, with the id maps and the
 * derived data serving needs.
 */
typedef struct LoadedModel
{
	char	   *name;
	int32		version;
	int64		trained_at;		/* TimestampTz of the version */
	MemoryContext cxt;
	ModelHeader *m;
	IdMap	   *users;			/* NULL for popularity */
	IdMap	   *items;
	float	   *item_norms;		/* ALS: ‖y_i‖ */
	float	   *gram;			/* ALS: YᵀY, f x f */
	float		regularization;
	float		alpha;
	uint64		last_used;
	struct LoadedModel *next;
} LoadedModel;

extern LoadedModel *model_cache_get(text *name);

/* Options: a jsonb object; unknown keys are an error. */
extern void options_check_keys(Jsonb *options, const char *const *allowed);
extern double options_get_number(Jsonb *options, const char *key, double dflt, double min, double max);
extern bool options_get_bool(Jsonb *options, const char *key, bool dflt);

/*
 * Small float kernels (vectorised by the compiler, see Makefile). Functions
 * whose hot loops inline them are cloned for x86-64-v3 (AVX2 + FMA) and
 * picked at load time, as in distance.c.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MODEL_KERNEL __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define MODEL_KERNEL
#endif

static inline float
vec_dot(int n, const float *restrict a, const float *restrict b)
{
	float		s = 0.0f;

	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static inline void
vec_axpy(int n, float alpha, const float *restrict x, float *restrict y)
{
	for (int i = 0; i < n; i++)
		y[i] += alpha * x[i];
}

/* Partial selection: the k best (score, index) pairs, best first. */
typedef struct TopK
{
	int			k;
	int			n;
	float	   *score;
	int32	   *index;
} TopK;

extern void topk_init(TopK *t, int k);
extern void topk_push(TopK *t, float score, int32 index);
extern void topk_sort(TopK *t);

#endif
