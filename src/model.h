/*
 * model.h — shared pieces of the recommendation models: the personalize.model
 * varlena layout, dense id maps, the interaction triple store that the
 * training aggregates accumulate, option parsing and small float kernels.
 *
 * A model is one flat, position-independent image: a fixed header, a
 * directory of typed sections (ids, popularity, the user-item matrix in CSR
 * form, factors, neighbour lists, and whatever a new algorithm adds), then
 * the sections. Serving reads it in place.
 */
#ifndef PERSONALIZE_MODEL_H
#define PERSONALIZE_MODEL_H

#include "postgres.h"

#include <pthread.h>
#include <time.h>

#include "fmgr.h"
#include "utils/jsonb.h"

#define MODEL_MAGIC			0x504d4f44	/* "PMOD" */
#define MODEL_FORMAT		2	/* written by this version */
#define MODEL_FORMAT_V1		1	/* 0.1.0: fixed section offsets; converted when read */

/*
 * Algorithms. The number is stored in every model: never renumber one. New
 * algorithms take the next free number (issue 12: 10-19, issue 13: 20-29,
 * issue 14: 30-39 keep parallel work apart) and an entry in model.c's
 * model_algorithms[] (name and validation).
 */
typedef enum ModelAlgorithm
{
	MODEL_POPULARITY = 1,
	MODEL_ITEMKNN = 2,
	MODEL_ALS = 3,
	MODEL_LOGISTIC = 10,		/* a classifier (classifier.h) */
	MODEL_UPLIFT = 11,			/* two classifiers: the control arm, the treated arm */
	/* issue 13 */
	MODEL_BPR = 20,
	MODEL_HYBRID = 21,
	MODEL_DP_POPULARITY = 22,
	MODEL_DP_ALS = 23,
	MODEL_EDITORIAL = 24
} ModelAlgorithm;

/*
 * Section kinds, stored in the section directory: never renumber one. An
 * algorithm adds the kinds it needs (same number ranges as the algorithms,
 * times 10: issue 12 100-199, issue 13 200-299, issue 14 300-399). Readers
 * find sections by kind, and ignore kinds they do not use.
 */
typedef enum ModelSectionKind
{
	SECTION_OPTIONS = 1,		/* char: training options as jsonb text, NUL-terminated */
	SECTION_USER_IDS = 2,		/* int64 per user, ascending */
	SECTION_ITEM_IDS = 3,		/* int64 per item, ascending */
	SECTION_ITEM_POPULARITY = 4,	/* float4 per item: summed weight */
	SECTION_SEEN_INDPTR = 5,	/* int64 per user + 1: CSR row starts */
	SECTION_SEEN_ITEMS = 6,		/* int32 per pair: item index, ascending per user */
	SECTION_SEEN_WEIGHTS = 7,	/* float4 per pair: summed weight */
	SECTION_USER_FACTORS = 8,	/* float4 per user x factors */
	SECTION_ITEM_FACTORS = 9,	/* float4 per item x factors */
	SECTION_NEIGHBOR_ITEMS = 10,	/* int32 per item x neighbors, -1 padded */
	SECTION_NEIGHBOR_SIMILARITY = 11,	/* float4 per item x neighbors */
	SECTION_CLASSIFIER = 100,	/* char: a Classifier (classifier.h); uplift: the control arm's */
	SECTION_CLASSIFIER_TREATED = 101,	/* char: uplift: the treated arm's Classifier */
	/*
	 * issue 13. Names: char, the names codec below. Feature lists: int32
	 * feature index and float4 weight per user or item x the longest list,
	 * -1 padded, as the neighbour lists.
	 */
	SECTION_ITEM_FEATURE_NAMES = 200,	/* hybrid: names of item features */
	SECTION_ITEM_FEATURE_FACTORS = 201, /* float4: item features x factors */
	SECTION_ITEM_FEATURE_INDEX = 202,	/* int32 per item x its features */
	SECTION_ITEM_FEATURE_WEIGHT = 203,	/* float4 per item x its features, normalized as used */
	SECTION_USER_FEATURE_NAMES = 204,
	SECTION_USER_FEATURE_FACTORS = 205,
	SECTION_USER_FEATURE_INDEX = 206,	/* int32 per user x its features */
	SECTION_USER_FEATURE_WEIGHT = 207,
	SECTION_CONTEXT_NAMES = 208,	/* hybrid: names of interaction contexts */
	SECTION_CONTEXT_FACTORS = 209,	/* float4: contexts x factors */
	SECTION_SEGMENT_NAMES = 210,	/* editorial: segments */
	SECTION_SEGMENT_LIST_INDPTR = 211,	/* int64: list starts; list 0 the default, s + 1 segment s */
	SECTION_SEGMENT_LIST_ITEMS = 212,	/* int32: item index, by position within a list */
	SECTION_SEGMENT_LIST_POSITIONS = 213,	/* float4: the item's position */
	SECTION_USER_SEGMENT = 214,	/* int32 per user: the user's segment */
	SECTION_PRIVACY = 215		/* char: the privacy accounting, JSON, NUL-terminated */
} ModelSectionKind;

/* Element type of a section (validation, and element-wise rewrites). */
typedef enum ModelElement
{
	ELEMENT_CHAR = 1,
	ELEMENT_INT32 = 2,
	ELEMENT_INT64 = 3,
	ELEMENT_FLOAT4 = 4,
	ELEMENT_FLOAT8 = 5
} ModelElement;

/*
 * What a section has one row of. Rows of users and pairs are what erasing a
 * user removes (model_without_user), whatever the section kind, so a new
 * per-user section is erased without new code.
 */
typedef enum ModelRows
{
	ROWS_NONE = 0,				/* a single row (a vector or a blob) */
	ROWS_USERS = 1,				/* one row per user, in user index order */
	ROWS_ITEMS = 2,				/* one row per item, in item index order */
	ROWS_PAIRS = 3,				/* one row per seen (user, item) pair, CSR order */
	ROWS_USERS_PLUS_ONE = 4		/* CSR row starts */
} ModelRows;

typedef struct ModelSection
{
	int32		kind;			/* ModelSectionKind */
	int16		element;		/* ModelElement */
	int16		rows;			/* ModelRows */
	uint64		offset;			/* from the start of the image, multiple of 8 */
	uint64		bytes;			/* rows x width x element size */
} ModelSection;

/*
 * A model image: this fixed header, a directory of nsections sections, then
 * the sections at 8-byte aligned offsets in directory order. Position
 * independent (offsets, no pointers), so it can be stored in chunks, copied
 * into shared memory and read in place. An image of at most 1 GB is also a
 * personalize.model value: vl_len_ is then its varlena header.
 */
typedef struct ModelHeader
{
	int32		vl_len_;		/* varlena header, or 0 in an image over 1 GB */
	int32		magic;
	int16		format;
	int16		algorithm;
	int32		nsections;
	uint64		image_bytes;	/* header, directory and sections */
	int32		nusers;			/* rows of ROWS_USERS sections */
	int32		nitems;			/* rows of ROWS_ITEMS sections */
	int64		nnz;			/* rows of ROWS_PAIRS sections */
	int64		rows;			/* input rows used */
	int64		null_rows;		/* input rows skipped for a NULL id */
	int32		factors;		/* ALS: latent dimensions */
	int32		neighbors;		/* item-kNN: neighbours kept per item */
	double		loss;			/* ALS: last loss when computed, else NaN */
	ModelSection section[FLEXIBLE_ARRAY_MEMBER];
} ModelHeader;

#define MODEL_MAX_SECTIONS	64

/* The section of a kind, or NULL; model_require errors when absent or malformed. */
extern void *model_section(const ModelHeader *m, int kind);
extern const ModelSection *model_section_entry(const ModelHeader *m, int kind);
extern void *model_require(const ModelHeader *m, int kind, ModelElement element, ModelRows rows, int64 width);

/* Building an image: reserve sections, then allocate (zeroed, directory filled). */
typedef struct ModelBuilder
{
	ModelSection section[MODEL_MAX_SECTIONS];
	ModelHeader hdr;			/* last: its directory is section[] above */
} ModelBuilder;

extern void model_builder_init(ModelBuilder *b, ModelAlgorithm alg);
extern void model_reserve(ModelBuilder *b, int kind, ModelElement element, ModelRows rows, uint64 count);
extern uint64 model_layout(ModelBuilder *b);	/* offsets; returns image bytes */
extern ModelHeader *model_allocate(ModelBuilder *b);

extern void model_corrupt(const char *what) pg_attribute_noreturn();
extern void model_validate(const ModelHeader *m, uint64 bytes);
extern Size model_element_size(int element);

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

/*
 * Interactions as accumulated by the training aggregates: ids mapped to dense
 * indexes as rows arrive (first-seen order), and (user, item, weight) index
 * triples in blocks of INTERACTION_BLOCK rows: 12 bytes a row, no copy when
 * growing.
 */
#define INTERACTION_BLOCK	(1 << 22)	/* 48 MB: above glibc's largest mmap threshold, so a
										 * freed block goes back to the system; untouched
										 * pages of a small state cost nothing */

typedef struct InteractionBlock
{
	int32		user[INTERACTION_BLOCK];
	int32		item[INTERACTION_BLOCK];
	float		weight[INTERACTION_BLOCK];
} InteractionBlock;

typedef struct InteractionState
{
	MemoryContext cxt;
	int64		n;
	int64		null_rows;
	Jsonb	   *options;		/* from the first row */
	IdMap		users;			/* id -> first-seen index */
	IdMap		items;
	InteractionBlock **blocks;
	int32		nblocks;
	int32		max_blocks;
} InteractionState;

extern InteractionState *interactions_state_new(MemoryContext cxt);
extern void interactions_check_weight(float w);
extern void interactions_add(InteractionState *st, int64 user, int64 item, float weight);
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
extern void interactions_adopt(Interactions *d, const ModelHeader *m);	/* use the model's copy */
extern void interactions_check_memory(const InteractionState *st, double model_bytes, const char *algorithm);
extern void interactions_transpose(const Interactions *in, int64 **indptr, int32 **indices, float **weights);

extern ModelHeader *model_new(ModelAlgorithm alg, int32 nusers, int32 nitems, int64 nnz, int64 rows,
							  int64 null_rows, Jsonb *options, int32 factors, int32 neighbors, bool keep_matrix);
extern ModelHeader *model_from_interactions(ModelAlgorithm alg, const Interactions *data, Jsonb *options,
											int32 factors, int32 neighbors, bool keep_matrix);
/* The same in two steps, for an algorithm that adds sections between them. */
extern char *model_reserve_interactions(ModelBuilder *b, ModelAlgorithm alg, const Interactions *data, Jsonb *options,
										int32 factors, int32 neighbors, bool keep_matrix);
extern void model_fill_interactions(ModelHeader *m, const Interactions *data, const char *options_text);

/*
 * Names codec (char sections): int32 n, int32 pad, uint32 start[n + 1], then
 * the bytes, each name NUL-terminated; names sorted ascending (strcmp) and
 * distinct, so they are found by bisection.
 */
extern Size names_size(char *const *names, int32 n);
extern void names_write(void *dst, char *const *names, int32 n);
extern int32 names_count(const void *section);
extern const char *names_get(const void *section, int32 i);
extern int32 names_find(const void *section, const char *name);
extern void names_validate(const ModelHeader *m, int kind);

/* Algorithms whose users and items are float vectors scored by a dot product. */
static inline bool
model_has_factors(int alg)
{
	return alg == MODEL_ALS || alg == MODEL_BPR || alg == MODEL_HYBRID || alg == MODEL_DP_ALS;
}

/* Algorithms whose user factors solve the ALS normal equations (fold-in, explain). */
static inline bool
model_is_als(int alg)
{
	return alg == MODEL_ALS || alg == MODEL_DP_ALS;
}

/* Algorithms that keep one score per item and no users. */
static inline bool
model_is_popularity(int alg)
{
	return alg == MODEL_POPULARITY || alg == MODEL_DP_POPULARITY;
}

extern ModelHeader *model_check(Datum d);

/* Storage (modelstore.c): chunks, and handles for images over the value limit. */
#define MODEL_CHUNK_BYTES	(4 * 1024 * 1024)
typedef ModelHeader *(*ModelImageAlloc) (const ModelHeader *header, void *arg);
extern int	model_value_limit;
extern ModelHeader *model_hold_allocate(const ModelHeader *header);
extern struct dsm_segment *model_held_segment(const ModelHeader *m);
extern void model_release(ModelHeader *m);
extern Datum model_datum(ModelHeader *m);
extern bool model_is_handle(const struct varlena *v);
extern ModelHeader *model_from_handle(const struct varlena *v);
extern struct varlena *model_as_value(const ModelHeader *m);
extern void model_write_chunks(text *name, int32 version, const ModelHeader *m);
extern ModelHeader *model_read_chunks(text *name, int32 version, ModelImageAlloc alloc, void *arg);
extern ModelHeader *model_load_stored(text *name, int32 version);
extern bool model_chunks_exist(void);
extern void modelstore_init(void);
extern Datum model_info_jsonb(const ModelHeader *m);
extern ModelHeader *model_without_user_index(const ModelHeader *m, int32 u);
extern int32 model_find_user(const ModelHeader *m, int64 user);
extern const char *model_algorithm_name(int alg);

/* ALS defaults, shared by training and the fold-in of serving. */
#define ALS_DEFAULT_FACTORS			64
#define ALS_DEFAULT_REGULARIZATION	0.05
#define ALS_DEFAULT_ALPHA			2.0
#define KNN_DEFAULT_NEIGHBORS		100
extern const char *const itemknn_options[];	/* its option keys (itemknn.c) */

/*
 * The active version of a model, ready to serve (modelcache.c): the image and
 * its derived data, in a shared memory segment mapped by this backend or in
 * this backend's own memory. Everything it points to is read-only.
 */
typedef struct LoadedModel
{
	char	   *name;
	int32		version;
	int64		trained_at;		/* TimestampTz of the version (revised_at once rewritten) */
	const ModelHeader *m;
	/* sections, NULL when absent */
	const int64 *user_ids;
	const int64 *item_ids;
	const float *item_pop;
	const int64 *indptr;
	const int32 *seen_items;
	const float *seen_weights;
	const float *user_factors;
	const float *item_factors;
	const int32 *nbr_items;
	const float *nbr_sim;
	/* derived: ALS item norms ‖y_i‖ and YᵀY (f x f), fold-in parameters */
	const float *item_norms;
	const float *gram;
	const int32 *norm_order;	/* position -> item, by descending ‖y_i‖ */
	const int32 *norm_position; /* item -> position */
	const float *item_factors_by_norm;	/* item factors in norm_order */
	int32		scan_limit;		/* serving scans by norm up to here, then every item; 0: never */
	const uint16 *item_factors_bf16;	/* item factors rounded to bfloat16, in norm_order */
	const float *item_bf16_error;	/* ‖y_i - bf16(y_i)‖ rounded up, in norm_order */
	float		regularization;
	float		alpha;
	/* the source it was trained from (personalize.models.source), read once */
	char	   *source;			/* NULL: unknown (imported, or trained by 0.1.0) */
	bool		source_read;
	void	   *seen_plan;		/* saved SPI plan reading a user's rows there */
	/* cache bookkeeping */
	struct dsm_segment *segment;	/* shared mode: the mapped segment */
	int			slot;			/* shared mode: directory slot, else -1 */
	MemoryContext cxt;			/* backend mode: the copy; shared mode: bookkeeping */
	uint64		last_used;
	struct LoadedModel *next;
} LoadedModel;

extern LoadedModel *model_cache_get(text *name);
extern int	cmp_norm_desc(const void *a, const void *b, void *arg);	/* arg: norms by item */
extern const char *loaded_source(LoadedModel *lm);
extern LoadedModel *recommender_get(text *name);	/* 0A000 for classifiers (serving.c) */
extern int32 loaded_user(const LoadedModel *lm, int64 user_id);	/* -1: unknown, or no users */
extern int32 loaded_item(const LoadedModel *lm, int64 item_id);	/* -1: unknown */
extern void modelcache_init(void);
extern void serving_init(void);
extern bool model_publish(text *name, int32 version, const ModelHeader *image);
extern ModelHeader *model_cache_new_segment(const ModelHeader *header, void **segment);

/* serving.c: the ALS fold-in (shared with explain), editorial lists */
extern void fold_in(LoadedModel *lm, const int32 *items, const float *weights, int64 n, float *x, double *chol);
extern void cholesky_solve(const double *L, int f, double *b);
extern const char *editorial_scores(LoadedModel *lm, int32 u, const char *context, float *scores, bool *mask);

/* Options: a jsonb object; unknown keys are an error. */
extern void options_check_keys(Jsonb *options, const char *const *allowed);
extern double options_get_number(Jsonb *options, const char *key, double dflt, double min, double max);
extern bool options_get_bool(Jsonb *options, const char *key, bool dflt);
extern char *options_get_string(Jsonb *options, const char *key, const char *dflt);
extern int	options_get_choice(Jsonb *options, const char *key, const char *const *allowed, int dflt);
extern int	options_get_strings(Jsonb *options, const char *key, char ***out);

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

/* bfloat16: the upper half of a float (reduced-precision scoring; rounded to nearest even). */
static inline uint16
float_to_bf16(float v)
{
	uint32		b;

	memcpy(&b, &v, sizeof(b));
	b += 0x7FFF + ((b >> 16) & 1);
	return (uint16) (b >> 16);
}

static inline float
bf16_to_float(uint16 h)
{
	uint32		b = (uint32) h << 16;
	float		v;

	memcpy(&v, &b, sizeof(v));
	return v;
}

/* pthread_cond_timedwait for at most ms milliseconds (the backend's wait on worker threads) */
static inline void
cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mutex, int ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long) ms * 1000 * 1000;
	until.tv_sec += until.tv_nsec / (1000 * 1000 * 1000);
	until.tv_nsec %= 1000 * 1000 * 1000;
	pthread_cond_timedwait(cond, mutex, &until);
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

extern int	cmp_int64(const void *a, const void *b);	/* qsort/bsearch comparators (interactions.c) */
extern int	cmp_cstring(const void *a, const void *b);

/* item-kNN's two steps per item (itemknn.c; distributed.c runs them on nodes and coordinator) */
extern int32 itemknn_row(const Interactions *d, const int64 *t_indptr, const int32 *t_users, const float *t_weights,
						 int32 i, float *acc, bool *seen, int32 *touched);
extern void itemknn_select(int32 i, int K, const float *norms, float shrinkage, float *acc, bool *seen,
						   const int32 *touched, int32 ntouched, TopK *top, int32 *nbr, float *sim);

#endif
