/*
 * model.c — the personalize.model type: layout checks, text and binary I/O
 * (hex of the flat value, so pg_dump carries models), model_info(), dense id
 * maps, option parsing and partial top-k selection shared by every algorithm.
 */
#include "postgres.h"

#include <cblas.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "classifier.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "model.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* ---------- id maps ---------- */

static inline uint64
idmap_hash(int64 key)
{
	return (uint64) hash_bytes_uint32_extended((uint32) key, (uint64) (key >> 32));
}

void
idmap_init(IdMap *map, int64 expected)
{
	uint64		size = 16;

	while (size < (uint64) expected * 2)
		size <<= 1;
	map->keys = MemoryContextAllocHuge(CurrentMemoryContext, size * sizeof(int64));
	map->values = MemoryContextAllocHuge(CurrentMemoryContext, size * sizeof(int32));
	memset(map->values, 0xff, size * sizeof(int32));
	map->mask = size - 1;
	map->count = 0;
}

int32
idmap_get(const IdMap *map, int64 key)
{
	uint64		pos = idmap_hash(key) & map->mask;

	for (;;)
	{
		if (map->values[pos] < 0)
			return -1;
		if (map->keys[pos] == key)
			return map->values[pos];
		pos = (pos + 1) & map->mask;
	}
}

/* The caller sizes the map for every key it will insert (idmap_init). */
int32
idmap_insert(IdMap *map, int64 key, int32 value)
{
	uint64		pos = idmap_hash(key) & map->mask;

	for (;;)
	{
		if (map->values[pos] < 0)
		{
			map->keys[pos] = key;
			map->values[pos] = value;
			return value;
		}
		if (map->keys[pos] == key)
			return map->values[pos];
		pos = (pos + 1) & map->mask;
	}
}

int32
idmap_add(IdMap *map, int64 key)
{
	int32		v;

	if ((uint64) (map->count + 1) * 2 > map->mask + 1)
	{
		IdMap		bigger;

		idmap_init(&bigger, (int64) (map->mask + 1));
		for (uint64 i = 0; i <= map->mask; i++)
			if (map->values[i] >= 0)
				idmap_insert(&bigger, map->keys[i], map->values[i]);
		pfree(map->keys);
		pfree(map->values);
		map->keys = bigger.keys;
		map->values = bigger.values;
		map->mask = bigger.mask;
	}
	v = idmap_insert(map, key, map->count);
	if (v == map->count)
		map->count++;
	return v;
}

IdMap *
idmap_from_sorted(const int64 *ids, int32 n)
{
	IdMap	   *map = palloc(sizeof(IdMap));

	idmap_init(map, n);
	for (int32 i = 0; i < n; i++)
		idmap_insert(map, ids[i], i);
	return map;
}

/* ---------- the image: section directory ---------- */

Size
model_element_size(int element)
{
	switch (element)
	{
		case ELEMENT_CHAR:
			return 1;
		case ELEMENT_INT32:
		case ELEMENT_FLOAT4:
			return 4;
		case ELEMENT_INT64:
		case ELEMENT_FLOAT8:
			return 8;
	}
	return 0;
}

void
model_corrupt(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid personalize.model value: %s", what)));
}

const ModelSection *
model_section_entry(const ModelHeader *m, int kind)
{
	for (int i = 0; i < m->nsections; i++)
		if (m->section[i].kind == kind)
			return &m->section[i];
	return NULL;
}

void *
model_section(const ModelHeader *m, int kind)
{
	const ModelSection *s = model_section_entry(m, kind);

	return s ? (char *) m + s->offset : NULL;
}

/* Rows of a section of this kind in this model. */
static int64
model_row_count(const ModelHeader *m, int rows)
{
	switch (rows)
	{
		case ROWS_USERS:
			return m->nusers;
		case ROWS_ITEMS:
			return m->nitems;
		case ROWS_PAIRS:
			return m->nnz;
		case ROWS_USERS_PLUS_ONE:
			return (int64) m->nusers + 1;
	}
	return 1;
}

/* The section of a kind with this element type, row kind and width (elements per row; 0: any). */
void *
model_require(const ModelHeader *m, int kind, ModelElement element, ModelRows rows, int64 width)
{
	const ModelSection *s = model_section_entry(m, kind);
	uint64		row_bytes = (uint64) width * model_element_size(element);

	if (s == NULL)
		model_corrupt(psprintf("section %d is missing", kind));
	/* bytes / row_bytes rather than rows * row_bytes, which wraps for huge counts */
	if (s->element != element || s->rows != rows ||
		(width > 0 && (s->bytes % row_bytes != 0 ||
					   s->bytes / row_bytes != (uint64) model_row_count(m, rows))))
		model_corrupt(psprintf("section %d has the wrong shape", kind));
	return (char *) m + s->offset;
}

void
model_builder_init(ModelBuilder *b, ModelAlgorithm alg)
{
	memset(b, 0, sizeof(ModelBuilder));
	b->hdr.magic = MODEL_MAGIC;
	b->hdr.format = MODEL_FORMAT;
	b->hdr.algorithm = alg;
	b->hdr.loss = get_float8_nan();
}

/* A section of count elements; laid out in the order reserved. */
void
model_reserve(ModelBuilder *b, int kind, ModelElement element, ModelRows rows, uint64 count)
{
	ModelSection *s;

	if (b->hdr.nsections >= MODEL_MAX_SECTIONS)
		elog(ERROR, "too many model sections");
	for (int i = 0; i < b->hdr.nsections; i++)
		if (b->section[i].kind == kind)
			elog(ERROR, "model section %d reserved twice", kind);
	s = &b->section[b->hdr.nsections++];
	s->kind = kind;
	s->element = element;
	s->rows = rows;
	s->bytes = count * model_element_size(element);
}

uint64
model_layout(ModelBuilder *b)
{
	uint64		off = offsetof(ModelHeader, section) + sizeof(ModelSection) * b->hdr.nsections;

	for (int i = 0; i < b->hdr.nsections; i++)
	{
		off = TYPEALIGN(8, off);
		b->section[i].offset = off;
		off += b->section[i].bytes;
	}
	b->hdr.image_bytes = off;
	return off;
}

/*
 * The image, zeroed (alignment gaps too, so equal models are equal bytes).
 * Return it with model_datum(): over personalize.model_value_limit it is held
 * for the transaction and the datum is a handle.
 */
ModelHeader *
model_allocate(ModelBuilder *b)
{
	uint64		bytes = model_layout(b);
	ModelHeader *m;

	bool		value = bytes <= (uint64) model_value_limit;

	m = value ? MemoryContextAllocExtended(CurrentMemoryContext, bytes, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO)
		: model_hold_allocate(&b->hdr);
	memcpy(m, &b->hdr, offsetof(ModelHeader, section));
	memcpy(m->section, b->section, sizeof(ModelSection) * b->hdr.nsections);
	m->vl_len_ = 0;				/* an image over the limit is a handle (model_datum) */
	if (value)
		SET_VARSIZE(m, bytes);
	return m;
}

/*
 * Starts a builder with the interaction sections of a model of these counts
 * (nusers and nnz count only with the user-item matrix); returns the options
 * text for the options section.
 */
static char *
model_reserve_counts(ModelBuilder *b, ModelAlgorithm alg, int32 nusers, int32 nitems, int64 nnz, int64 rows,
					 int64 null_rows, Jsonb *options, int32 factors, int32 neighbors, bool keep_matrix)
{
	char	   *opts = JsonbToCString(NULL, &options->root, VARSIZE(options));

	model_builder_init(b, alg);
	b->hdr.factors = factors;
	b->hdr.neighbors = neighbors;
	b->hdr.nusers = keep_matrix ? nusers : 0;
	b->hdr.nitems = nitems;
	b->hdr.nnz = keep_matrix ? nnz : 0;
	b->hdr.rows = rows;
	b->hdr.null_rows = null_rows;
	model_reserve(b, SECTION_OPTIONS, ELEMENT_CHAR, ROWS_NONE, strlen(opts) + 1);
	if (keep_matrix)
		model_reserve(b, SECTION_USER_IDS, ELEMENT_INT64, ROWS_USERS, nusers);
	model_reserve(b, SECTION_ITEM_IDS, ELEMENT_INT64, ROWS_ITEMS, nitems);
	model_reserve(b, SECTION_ITEM_POPULARITY, ELEMENT_FLOAT4, ROWS_ITEMS, nitems);
	if (keep_matrix)
	{
		model_reserve(b, SECTION_SEEN_INDPTR, ELEMENT_INT64, ROWS_USERS_PLUS_ONE, (uint64) nusers + 1);
		model_reserve(b, SECTION_SEEN_ITEMS, ELEMENT_INT32, ROWS_PAIRS, nnz);
		model_reserve(b, SECTION_SEEN_WEIGHTS, ELEMENT_FLOAT4, ROWS_PAIRS, nnz);
	}
	if (factors > 0)
	{
		model_reserve(b, SECTION_USER_FACTORS, ELEMENT_FLOAT4, ROWS_USERS, (uint64) b->hdr.nusers * factors);
		model_reserve(b, SECTION_ITEM_FACTORS, ELEMENT_FLOAT4, ROWS_ITEMS, (uint64) nitems * factors);
	}
	if (neighbors > 0)
	{
		model_reserve(b, SECTION_NEIGHBOR_ITEMS, ELEMENT_INT32, ROWS_ITEMS, (uint64) nitems * neighbors);
		model_reserve(b, SECTION_NEIGHBOR_SIMILARITY, ELEMENT_FLOAT4, ROWS_ITEMS, (uint64) nitems * neighbors);
	}
	return opts;
}

/*
 * A model with its sections laid out and zeroed; the options are written, the
 * caller fills the rest (distributed.c assembles one from the nodes' parts).
 */
ModelHeader *
model_new(ModelAlgorithm alg, int32 nusers, int32 nitems, int64 nnz, int64 rows, int64 null_rows,
		  Jsonb *options, int32 factors, int32 neighbors, bool keep_matrix)
{
	ModelBuilder b;
	char	   *opts = model_reserve_counts(&b, alg, nusers, nitems, nnz, rows, null_rows, options,
											factors, neighbors, keep_matrix);
	ModelHeader *m = model_allocate(&b);

	strcpy(model_section(m, SECTION_OPTIONS), opts);
	return m;
}

/*
 * A model with the interaction sections filled in; the algorithm fills the
 * factor or neighbour sections it reserved (factors > 0, neighbors > 0).
 */
ModelHeader *
model_from_interactions(ModelAlgorithm alg, const Interactions *data, Jsonb *options,
						int32 factors, int32 neighbors, bool keep_matrix)
{
	ModelBuilder b;
	char	   *opts = model_reserve_interactions(&b, alg, data, options, factors, neighbors, keep_matrix);
	ModelHeader *m = model_allocate(&b);

	model_fill_interactions(m, data, opts);
	return m;
}

/* Starts a builder with the interaction sections; returns the options text for model_fill_interactions. */
char *
model_reserve_interactions(ModelBuilder *b, ModelAlgorithm alg, const Interactions *data, Jsonb *options,
						   int32 factors, int32 neighbors, bool keep_matrix)
{
	return model_reserve_counts(b, alg, data->nusers, data->nitems, data->nnz, data->rows, data->null_rows,
								options, factors, neighbors, keep_matrix);
}

void
model_fill_interactions(ModelHeader *m, const Interactions *data, const char *options_text)
{
	strcpy(model_section(m, SECTION_OPTIONS), options_text);
	memcpy(model_section(m, SECTION_ITEM_IDS), data->item_ids, sizeof(int64) * data->nitems);
	memcpy(model_section(m, SECTION_ITEM_POPULARITY), data->item_pop, sizeof(float) * data->nitems);
	if (model_section_entry(m, SECTION_SEEN_INDPTR))
	{
		memcpy(model_section(m, SECTION_USER_IDS), data->user_ids, sizeof(int64) * data->nusers);
		memcpy(model_section(m, SECTION_SEEN_INDPTR), data->indptr, sizeof(int64) * ((Size) data->nusers + 1));
		memcpy(model_section(m, SECTION_SEEN_ITEMS), data->indices, sizeof(int32) * data->nnz);
		memcpy(model_section(m, SECTION_SEEN_WEIGHTS), data->weights, sizeof(float) * data->nnz);
	}
}

/* ---------- names (char sections of sorted, distinct strings) ---------- */

Size
names_size(char *const *names, int32 n)
{
	Size		size = 2 * sizeof(int32) + sizeof(uint32) * ((Size) n + 1);

	for (int32 i = 0; i < n; i++)
		size += strlen(names[i]) + 1;
	return size;
}

void
names_write(void *dst, char *const *names, int32 n)
{
	int32	   *head = dst;
	uint32	   *start = (uint32 *) (head + 2);
	char	   *text = (char *) (start + n + 1);
	uint32		at = 0;

	head[0] = n;
	head[1] = 0;
	for (int32 i = 0; i < n; i++)
	{
		size_t		len = strlen(names[i]) + 1;

		start[i] = at;
		memcpy(text + at, names[i], len);
		at += len;
	}
	start[n] = at;
}

int32
names_count(const void *section)
{
	return section ? ((const int32 *) section)[0] : 0;
}

const char *
names_get(const void *section, int32 i)
{
	int32		n = ((const int32 *) section)[0];
	const uint32 *start = (const uint32 *) ((const int32 *) section + 2);

	return (const char *) (start + n + 1) + start[i];
}

int32
names_find(const void *section, const char *name)
{
	int32		lo = 0,
				hi = names_count(section);

	while (lo < hi)
	{
		int32		mid = lo + (hi - lo) / 2;
		int			c = strcmp(names_get(section, mid), name);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* A names section of this kind is present and well formed. */
void
names_validate(const ModelHeader *m, int kind)
{
	const char *section = model_require(m, kind, ELEMENT_CHAR, ROWS_NONE, 0);
	uint64		bytes = model_section_entry(m, kind)->bytes;
	int32		n;
	const uint32 *start;
	const char *text;
	uint64		textbytes;

	if (bytes < 2 * sizeof(int32) + sizeof(uint32))
		model_corrupt("names");
	n = ((const int32 *) section)[0];
	if (n < 0 || (uint64) n > (bytes - 2 * sizeof(int32)) / sizeof(uint32) - 1)
		model_corrupt("names");
	start = (const uint32 *) (section + 2 * sizeof(int32));
	text = (const char *) (start + n + 1);
	textbytes = bytes - (text - section);
	if (start[0] != 0 || start[n] > textbytes)
		model_corrupt("names");
	for (int32 i = 0; i < n; i++)
	{
		if (start[i + 1] <= start[i] || start[i + 1] > textbytes || text[start[i + 1] - 1] != '\0' ||
			strlen(text + start[i]) != start[i + 1] - start[i] - 1)
			model_corrupt("names");
		if (i > 0 && strcmp(text + start[i - 1], text + start[i]) >= 0)
			model_corrupt("names not sorted");
	}
}

/* ---------- validation ---------- */

static void
validate_ascending(const int64 *ids, int64 n, const char *what)
{
	for (int64 i = 1; i < n; i++)
		if (ids[i] <= ids[i - 1])
			model_corrupt(what);
}

/* The user-item matrix: ids, CSR row starts, item indexes in range. */
static void
validate_seen(const ModelHeader *m, bool required)
{
	const int64 *indptr;
	const int32 *items;

	if (!required && model_section_entry(m, SECTION_SEEN_INDPTR) == NULL)
	{
		if (m->nusers != 0 || m->nnz != 0)
			model_corrupt("users without a user-item matrix");
		return;
	}
	validate_ascending(model_require(m, SECTION_USER_IDS, ELEMENT_INT64, ROWS_USERS, 1), m->nusers, "user ids");
	indptr = model_require(m, SECTION_SEEN_INDPTR, ELEMENT_INT64, ROWS_USERS_PLUS_ONE, 1);
	items = model_require(m, SECTION_SEEN_ITEMS, ELEMENT_INT32, ROWS_PAIRS, 1);
	model_require(m, SECTION_SEEN_WEIGHTS, ELEMENT_FLOAT4, ROWS_PAIRS, 1);
	if (indptr[0] != 0 || indptr[m->nusers] != m->nnz)
		model_corrupt("indptr");
	for (int32 u = 0; u < m->nusers; u++)
		if (indptr[u + 1] < indptr[u])
			model_corrupt("indptr");
	for (int64 i = 0; i < m->nnz; i++)
		if (items[i] < 0 || items[i] >= m->nitems)
			model_corrupt("indices");
}

static void
validate_popularity(const ModelHeader *m)
{
	validate_seen(m, false);
}

static void
validate_itemknn(const ModelHeader *m)
{
	const int32 *nbr;

	validate_seen(m, true);
	if (m->neighbors < 1)
		model_corrupt("neighbors");
	nbr = model_require(m, SECTION_NEIGHBOR_ITEMS, ELEMENT_INT32, ROWS_ITEMS, m->neighbors);
	model_require(m, SECTION_NEIGHBOR_SIMILARITY, ELEMENT_FLOAT4, ROWS_ITEMS, m->neighbors);
	for (Size i = 0; i < (Size) m->nitems * m->neighbors; i++)
		if (nbr[i] < -1 || nbr[i] >= m->nitems)
			model_corrupt("neighbors");
}

static void
validate_als(const ModelHeader *m)
{
	validate_seen(m, true);
	if (m->factors < 1)
		model_corrupt("factors");
	model_require(m, SECTION_USER_FACTORS, ELEMENT_FLOAT4, ROWS_USERS, m->factors);
	model_require(m, SECTION_ITEM_FACTORS, ELEMENT_FLOAT4, ROWS_ITEMS, m->factors);
}

/* A privacy record, when present, is NUL-terminated text. */
static void
validate_privacy(const ModelHeader *m, bool required)
{
	const ModelSection *s = model_section_entry(m, SECTION_PRIVACY);
	const char *text;

	if (s == NULL)
	{
		if (required)
			model_corrupt("privacy");
		return;
	}
	text = model_require(m, SECTION_PRIVACY, ELEMENT_CHAR, ROWS_NONE, 0);
	if (s->bytes < 3 || text[0] != '{' || text[s->bytes - 1] != '\0')
		model_corrupt("privacy");
}

/* Padded feature lists of users or items: indexes in range or -1, finite weights. */
static void
validate_feature_lists(const ModelHeader *m, int index_kind, int weight_kind, ModelRows rows, int names_kind)
{
	int64		nrows = rows == ROWS_USERS ? m->nusers : m->nitems;
	const int32 *index = model_require(m, index_kind, ELEMENT_INT32, rows, 0);
	const float *weight = model_require(m, weight_kind, ELEMENT_FLOAT4, rows, 0);
	uint64		n = model_section_entry(m, index_kind)->bytes / sizeof(int32);
	int32		features = names_count(model_section(m, names_kind));

	if (model_section_entry(m, weight_kind)->bytes != model_section_entry(m, index_kind)->bytes ||
		(nrows == 0 && n != 0))
		model_corrupt("feature lists");
	for (uint64 k = 0; k < n; k++)
		if (index[k] < -1 || index[k] >= features || isnan(weight[k]) || isinf(weight[k]))
			model_corrupt("feature lists");
}

static void
validate_bpr(const ModelHeader *m)
{
	validate_als(m);
	if (m->factors < 2)
		model_corrupt("factors");
}

static void
validate_hybrid(const ModelHeader *m)
{
	validate_bpr(m);
	names_validate(m, SECTION_ITEM_FEATURE_NAMES);
	names_validate(m, SECTION_USER_FEATURE_NAMES);
	names_validate(m, SECTION_CONTEXT_NAMES);
	model_require(m, SECTION_ITEM_FEATURE_FACTORS, ELEMENT_FLOAT4, ROWS_NONE,
				  (int64) names_count(model_section(m, SECTION_ITEM_FEATURE_NAMES)) * m->factors);
	model_require(m, SECTION_USER_FEATURE_FACTORS, ELEMENT_FLOAT4, ROWS_NONE,
				  (int64) names_count(model_section(m, SECTION_USER_FEATURE_NAMES)) * m->factors);
	model_require(m, SECTION_CONTEXT_FACTORS, ELEMENT_FLOAT4, ROWS_NONE,
				  (int64) names_count(model_section(m, SECTION_CONTEXT_NAMES)) * m->factors);
	validate_feature_lists(m, SECTION_ITEM_FEATURE_INDEX, SECTION_ITEM_FEATURE_WEIGHT, ROWS_ITEMS, SECTION_ITEM_FEATURE_NAMES);
	validate_feature_lists(m, SECTION_USER_FEATURE_INDEX, SECTION_USER_FEATURE_WEIGHT, ROWS_USERS, SECTION_USER_FEATURE_NAMES);
}

static void
validate_dp_popularity(const ModelHeader *m)
{
	validate_popularity(m);
	validate_privacy(m, true);
}

static void
validate_dp_als(const ModelHeader *m)
{
	validate_als(m);
	validate_privacy(m, true);
}

static void
validate_editorial(const ModelHeader *m)
{
	const int64 *indptr;
	const int32 *items;
	const int32 *segment;
	int32		segments;
	uint64		lists;

	validate_seen(m, true);
	names_validate(m, SECTION_SEGMENT_NAMES);
	segments = names_count(model_section(m, SECTION_SEGMENT_NAMES));
	indptr = model_require(m, SECTION_SEGMENT_LIST_INDPTR, ELEMENT_INT64, ROWS_NONE, (int64) segments + 2);
	lists = (uint64) segments + 1;
	if (indptr[0] != 0)
		model_corrupt("editorial lists");
	for (uint64 l = 0; l < lists; l++)
		if (indptr[l + 1] < indptr[l])
			model_corrupt("editorial lists");
	items = model_require(m, SECTION_SEGMENT_LIST_ITEMS, ELEMENT_INT32, ROWS_NONE, indptr[lists]);
	model_require(m, SECTION_SEGMENT_LIST_POSITIONS, ELEMENT_FLOAT4, ROWS_NONE, indptr[lists]);
	for (int64 j = 0; j < indptr[lists]; j++)
		if (items[j] < 0 || items[j] >= m->nitems)
			model_corrupt("editorial lists");
	segment = model_require(m, SECTION_USER_SEGMENT, ELEMENT_INT32, ROWS_USERS, 1);
	for (int32 u = 0; u < m->nusers; u++)
		if (segment[u] < 0 || segment[u] >= segments)
			model_corrupt("user segments");
}

/*
 * Every algorithm: its stored number, name, and the checks of its own
 * sections (the common ones, options, item ids and popularity, are checked
 * for all). A new algorithm adds one line here.
 */
static const struct
{
	ModelAlgorithm algorithm;
	const char *name;
	void		(*validate) (const ModelHeader *m);
}			model_algorithms[] =
{
	{MODEL_POPULARITY, "popularity", validate_popularity},
	{MODEL_ITEMKNN, "itemknn", validate_itemknn},
	{MODEL_ALS, "als", validate_als},
	{MODEL_LOGISTIC, "logistic", classifier_model_validate},
	{MODEL_UPLIFT, "uplift", classifier_model_validate},
	{MODEL_BPR, "bpr", validate_bpr},
	{MODEL_HYBRID, "hybrid", validate_hybrid},
	{MODEL_DP_POPULARITY, "dp_popularity", validate_dp_popularity},
	{MODEL_DP_ALS, "dp_als", validate_dp_als},
	{MODEL_EDITORIAL, "editorial", validate_editorial},
};

const char *
model_algorithm_name(int alg)
{
	for (int i = 0; i < lengthof(model_algorithms); i++)
		if (model_algorithms[i].algorithm == alg)
			return model_algorithms[i].name;
	return "unknown";
}

/* A header this version can read: right magic, a known format, the stated length. */
static void
model_check_header(const ModelHeader *m, uint64 bytes)
{
	if (bytes < offsetof(ModelHeader, section) || m->magic != MODEL_MAGIC)
		model_corrupt("bad header");
	if (m->format > MODEL_FORMAT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("personalize.model format %d is newer than this version of pg_personalize reads (format %d)",
						m->format, MODEL_FORMAT),
				 errhint("Update the extension, or export the model from the newer version's format.")));
	if (m->format != MODEL_FORMAT)
		model_corrupt(psprintf("unknown format %d", m->format));
	if (m->image_bytes != bytes)
		model_corrupt("bad length");
}

/*
 * Every section lies inside the image, after the directory and the previous
 * section, with a known element type and a whole number of rows; then the
 * algorithm's own checks (indexes in range, shapes).
 */
void
model_validate(const ModelHeader *m, uint64 bytes)
{
	uint64		end;
	const char *options;
	int			alg = -1;

	model_check_header(m, bytes);
	if (m->nsections < 0 || m->nsections > MODEL_MAX_SECTIONS)
		model_corrupt("section count");
	end = offsetof(ModelHeader, section) + sizeof(ModelSection) * m->nsections;
	if (end > bytes)
		model_corrupt("section directory");
	if (m->nusers < 0 || m->nitems < 0 || m->nnz < 0 || m->factors < 0 || m->neighbors < 0 ||
		m->rows < 0 || m->null_rows < 0)
		model_corrupt("negative count");
	for (int i = 0; i < m->nsections; i++)
	{
		const ModelSection *s = &m->section[i];
		Size		esize = model_element_size(s->element);
		int64		nrows;

		if (esize == 0 || s->rows < ROWS_NONE || s->rows > ROWS_USERS_PLUS_ONE)
			model_corrupt(psprintf("section %d: unknown element or row type", s->kind));
		if (s->offset % 8 != 0 || s->offset < end || s->offset > bytes || s->bytes > bytes - s->offset)
			model_corrupt(psprintf("section %d lies outside the image", s->kind));
		nrows = model_row_count(m, s->rows);
		/* divide, never multiply: a count of 2^62 pairs times 4 bytes wraps to 0 */
		if (s->bytes % esize != 0 || (nrows == 0 && s->bytes != 0) ||
			(nrows > 0 && (s->bytes / esize) % (uint64) nrows != 0))
			model_corrupt(psprintf("section %d: not a whole number of rows", s->kind));
		for (int j = 0; j < i; j++)
			if (m->section[j].kind == s->kind)
				model_corrupt(psprintf("section %d appears twice", s->kind));
		end = s->offset + s->bytes;
	}
	for (int i = 0; i < lengthof(model_algorithms); i++)
		if (model_algorithms[i].algorithm == m->algorithm)
			alg = i;
	if (alg < 0)
		model_corrupt(psprintf("unknown algorithm %d", m->algorithm));
	options = model_require(m, SECTION_OPTIONS, ELEMENT_CHAR, ROWS_NONE, 0);
	if (model_section_entry(m, SECTION_OPTIONS)->bytes < 2 || options[0] == '\0' ||
		options[model_section_entry(m, SECTION_OPTIONS)->bytes - 1] != '\0')
		model_corrupt("options");
	validate_ascending(model_require(m, SECTION_ITEM_IDS, ELEMENT_INT64, ROWS_ITEMS, 1), m->nitems, "item ids");
	model_require(m, SECTION_ITEM_POPULARITY, ELEMENT_FLOAT4, ROWS_ITEMS, 1);
	model_algorithms[alg].validate(m);
}

/* ---------- format 1 (0.1.0): fixed offsets, converted when read ---------- */

typedef struct ModelHeaderV1
{
	int32		vl_len_;
	int32		magic;
	int16		format;
	int16		algorithm;
	int32		factors;
	int32		neighbors;
	int32		nusers;
	int32		nitems;
	int32		pad;
	int64		nnz;
	int64		rows;
	int64		null_rows;
	double		loss;
	uint64		off_options;
	uint64		off_user_ids;
	uint64		off_item_ids;
	uint64		off_item_pop;
	uint64		off_indptr;
	uint64		off_indices;
	uint64		off_weights;
	uint64		off_user_factors;
	uint64		off_item_factors;
	uint64		off_nbr_index;
	uint64		off_nbr_sim;
} ModelHeaderV1;

/* Copy one format-1 section, checked to lie inside the value, into a reserved section. */
static void
v1_copy(ModelHeader *m, int kind, const ModelHeaderV1 *old, Size size, uint64 off)
{
	const ModelSection *s = model_section_entry(m, kind);

	if (s == NULL)
		return;
	if (off % 8 != 0 || off < sizeof(ModelHeaderV1) || off > size || s->bytes > size - off)
		model_corrupt("format 1 section outside the value");
	memcpy((char *) m + s->offset, (const char *) old + off, s->bytes);
}

/* The format-2 image of a format-1 value (same sections, same bytes), validated. */
static ModelHeader *
model_from_v1(const ModelHeaderV1 *old, Size size)
{
	ModelBuilder b;
	ModelHeader *m;
	const char *opts;
	const char *nul;

	if (size < sizeof(ModelHeaderV1))
		model_corrupt("bad length");
	if (old->off_options < sizeof(ModelHeaderV1) || old->off_options >= size)
		model_corrupt("options");
	opts = (const char *) old + old->off_options;
	nul = memchr(opts, 0, size - old->off_options);
	if (nul == NULL)
		model_corrupt("options");
	if (old->nusers < 0 || old->nitems < 0 || old->nnz < 0 || old->factors < 0 || old->neighbors < 0)
		model_corrupt("negative count");
	model_builder_init(&b, old->algorithm);
	b.hdr.factors = old->factors;
	b.hdr.neighbors = old->neighbors;
	b.hdr.nusers = old->nusers;
	b.hdr.nitems = old->nitems;
	b.hdr.nnz = old->nnz;
	b.hdr.rows = old->rows;
	b.hdr.null_rows = old->null_rows;
	b.hdr.loss = old->loss;
	model_reserve(&b, SECTION_OPTIONS, ELEMENT_CHAR, ROWS_NONE, nul - opts + 1);
	if (old->off_user_ids)
		model_reserve(&b, SECTION_USER_IDS, ELEMENT_INT64, ROWS_USERS, old->nusers);
	model_reserve(&b, SECTION_ITEM_IDS, ELEMENT_INT64, ROWS_ITEMS, old->nitems);
	model_reserve(&b, SECTION_ITEM_POPULARITY, ELEMENT_FLOAT4, ROWS_ITEMS, old->nitems);
	if (old->off_indptr)
	{
		model_reserve(&b, SECTION_SEEN_INDPTR, ELEMENT_INT64, ROWS_USERS_PLUS_ONE, (uint64) old->nusers + 1);
		model_reserve(&b, SECTION_SEEN_ITEMS, ELEMENT_INT32, ROWS_PAIRS, old->nnz);
		model_reserve(&b, SECTION_SEEN_WEIGHTS, ELEMENT_FLOAT4, ROWS_PAIRS, old->nnz);
	}
	if (old->off_user_factors)
		model_reserve(&b, SECTION_USER_FACTORS, ELEMENT_FLOAT4, ROWS_USERS, (uint64) old->nusers * old->factors);
	if (old->off_item_factors)
		model_reserve(&b, SECTION_ITEM_FACTORS, ELEMENT_FLOAT4, ROWS_ITEMS, (uint64) old->nitems * old->factors);
	if (old->off_nbr_index)
		model_reserve(&b, SECTION_NEIGHBOR_ITEMS, ELEMENT_INT32, ROWS_ITEMS, (uint64) old->nitems * old->neighbors);
	if (old->off_nbr_sim)
		model_reserve(&b, SECTION_NEIGHBOR_SIMILARITY, ELEMENT_FLOAT4, ROWS_ITEMS, (uint64) old->nitems * old->neighbors);
	if (model_layout(&b) > size + 4096 + sizeof(ModelSection) * MODEL_MAX_SECTIONS)
		model_corrupt("format 1 counts larger than the value");
	m = model_allocate(&b);
	v1_copy(m, SECTION_OPTIONS, old, size, old->off_options);
	v1_copy(m, SECTION_USER_IDS, old, size, old->off_user_ids);
	v1_copy(m, SECTION_ITEM_IDS, old, size, old->off_item_ids);
	v1_copy(m, SECTION_ITEM_POPULARITY, old, size, old->off_item_pop);
	v1_copy(m, SECTION_SEEN_INDPTR, old, size, old->off_indptr);
	v1_copy(m, SECTION_SEEN_ITEMS, old, size, old->off_indices);
	v1_copy(m, SECTION_SEEN_WEIGHTS, old, size, old->off_weights);
	v1_copy(m, SECTION_USER_FACTORS, old, size, old->off_user_factors);
	v1_copy(m, SECTION_ITEM_FACTORS, old, size, old->off_item_factors);
	v1_copy(m, SECTION_NEIGHBOR_ITEMS, old, size, old->off_nbr_index);
	v1_copy(m, SECTION_NEIGHBOR_SIMILARITY, old, size, old->off_nbr_sim);
	model_validate(m, m->image_bytes);
	return m;
}

/*
 * The format-2 image of a value: format 1 is converted (and checked), format
 * 2 is used in place; full checks where the bytes came from outside (I/O).
 */
static ModelHeader *
model_image_of(struct varlena *v, bool validate)
{
	ModelHeader *m = (ModelHeader *) v;
	Size		size = VARSIZE(v);

	if (size < offsetof(ModelHeader, section) || m->magic != MODEL_MAGIC)
		model_corrupt("bad header");
	if (m->format == MODEL_FORMAT_V1)
		return model_from_v1((const ModelHeaderV1 *) v, size);
	if (validate)
		model_validate(m, size);
	else
		model_check_header(m, size);
	return m;
}

/* Detoasted model image (format 1 converted, handle resolved); layout fully checked only in I/O. */
ModelHeader *
model_check(Datum d)
{
	struct varlena *v = PG_DETOAST_DATUM(d);

	if (model_is_handle(v))
		return model_from_handle(v);
	return model_image_of(v, false);
}

/* The bytes of a value as stored (format 1 kept as it is), or of the image a handle stands for. */
static struct varlena *
model_value_bytes(Datum d)
{
	struct varlena *v = PG_DETOAST_DATUM(d);

	return model_is_handle(v) ? model_as_value(model_from_handle(v)) : v;
}

PG_FUNCTION_INFO_V1(model_in);
Datum
model_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	size_t		len = strlen(str);
	struct varlena *v;

	if (len < 2 || str[0] != '\\' || str[1] != 'x' || (len - 2) % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type model"),
				 errdetail("A model is written as \\x followed by the hexadecimal digits of its value.")));
	if ((len - 2) / 2 < offsetof(ModelHeader, section) || (len - 2) / 2 > MaxAllocSize)
		model_corrupt("bad length");
	v = MemoryContextAllocHuge(CurrentMemoryContext, (len - 2) / 2);
	hex_decode(str + 2, len - 2, (char *) v);
	if (VARSIZE(v) != (len - 2) / 2)
		model_corrupt("bad length");
	PG_RETURN_POINTER(model_image_of(v, true));
}

PG_FUNCTION_INFO_V1(model_out);
Datum
model_out(PG_FUNCTION_ARGS)
{
	struct varlena *v = model_value_bytes(PG_GETARG_DATUM(0));
	Size		size = VARSIZE(v);
	char	   *out = MemoryContextAllocHuge(CurrentMemoryContext, size * 2 + 3);

	out[0] = '\\';
	out[1] = 'x';
	hex_encode((const char *) v, size, out + 2);
	out[size * 2 + 2] = '\0';
	PG_RETURN_CSTRING(out);
}

PG_FUNCTION_INFO_V1(model_recv);
Datum
model_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	struct varlena *v;

	if (len < (int) offsetof(ModelHeader, section))
		model_corrupt("bad length");
	v = MemoryContextAllocHuge(CurrentMemoryContext, len);
	pq_copymsgbytes(buf, (char *) v, len);
	if (VARSIZE(v) != (Size) len)
		model_corrupt("bad length");
	PG_RETURN_POINTER(model_image_of(v, true));
}

PG_FUNCTION_INFO_V1(model_send);
Datum
model_send(PG_FUNCTION_ARGS)
{
	struct varlena *v = model_value_bytes(PG_GETARG_DATUM(0));
	bytea	   *result = MemoryContextAllocHuge(CurrentMemoryContext, VARSIZE(v) + VARHDRSZ);

	SET_VARSIZE(result, VARSIZE(v) + VARHDRSZ);
	memcpy(VARDATA(result), v, VARSIZE(v));
	PG_RETURN_BYTEA_P(result);
}

/* jsonb summary of an image */
Datum
model_info_jsonb(const ModelHeader *m)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"algorithm\": \"%s\", \"options\": %s, \"rows\": " INT64_FORMAT
					 ", \"null_rows\": " INT64_FORMAT ", \"items\": %d, \"bytes\": " UINT64_FORMAT
					 ", \"format\": %d",
					 model_algorithm_name(m->algorithm), (const char *) model_section(m, SECTION_OPTIONS),
					 m->rows, m->null_rows, m->nitems, m->image_bytes, m->format);
	if (model_section_entry(m, SECTION_SEEN_INDPTR))
		appendStringInfo(&s, ", \"users\": %d, \"pairs\": " INT64_FORMAT, m->nusers, m->nnz);
	if (m->factors > 0)
		appendStringInfo(&s, ", \"factors\": %d", m->factors);
	if (m->neighbors > 0)
		appendStringInfo(&s, ", \"neighbors\": %d", m->neighbors);
	if (!isnan(m->loss))
		appendStringInfo(&s, ", \"loss\": %.9g", m->loss);
	if (m->algorithm == MODEL_LOGISTIC || m->algorithm == MODEL_UPLIFT)
		classifier_info(m, &s);
	if (m->algorithm == MODEL_HYBRID)
	{
		const void *item_names = model_section(m, SECTION_ITEM_FEATURE_NAMES);
		const void *user_names = model_section(m, SECTION_USER_FEATURE_NAMES);
		int32		contexts = names_count(model_section(m, SECTION_CONTEXT_NAMES));
		List	   *sets = NIL;
		ListCell   *lc;

		/* a feature's set: its name up to the first ':' */
		for (int side = 0; side < 2; side++)
		{
			const void *names = side == 0 ? item_names : user_names;

			for (int32 i = 0; i < names_count(names); i++)
			{
				const char *name = names_get(names, i);
				const char *colon = strchr(name, ':');
				char	   *set = colon ? pnstrdup(name, colon - name) : pstrdup(name);
				bool		known = false;

				foreach(lc, sets)
					known = known || strcmp(lfirst(lc), set) == 0;
				if (!known)
					sets = lappend(sets, set);
			}
		}
		if (contexts > 0)
			sets = lappend(sets, "context");
		appendStringInfo(&s, ", \"item_features\": %d, \"user_features\": %d, \"contexts\": %d, \"feature_sets\": [",
						 names_count(item_names), names_count(user_names), contexts);
		foreach(lc, sets)
		{
			if (foreach_current_index(lc) > 0)
				appendStringInfoString(&s, ", ");
			escape_json(&s, lfirst(lc));
		}
		appendStringInfoChar(&s, ']');
	}
	if (m->algorithm == MODEL_EDITORIAL)
		appendStringInfo(&s, ", \"segments\": %d", names_count(model_section(m, SECTION_SEGMENT_NAMES)));
	if (model_section(m, SECTION_PRIVACY))
		appendStringInfo(&s, ", \"privacy\": %s", (const char *) model_section(m, SECTION_PRIVACY));
	appendStringInfoChar(&s, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data));
}

/* personalize.model_info(model) -> jsonb summary */
PG_FUNCTION_INFO_V1(model_info);
Datum
model_info(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(model_info_jsonb(model_check(PG_GETARG_DATUM(0))));
}

/* ---------- options ---------- */

void
options_check_keys(Jsonb *options, const char *const *allowed)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			level = 0;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a jsonb object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			level++;
		else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			level--;
		else if (tok == WJB_KEY && level == 1)
		{
			char	   *key = pnstrdup(v.val.string.val, v.val.string.len);
			bool		ok = false;

			for (const char *const *a = allowed; *a; a++)
				if (strcmp(*a, key) == 0)
					ok = true;
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown option \"%s\"", key)));
		}
	}
}

static JsonbValue *
options_find(Jsonb *options, const char *key)
{
	return getKeyJsonValueFromContainer(&options->root, key, strlen(key), NULL);
}

double
options_get_number(Jsonb *options, const char *key, double dflt, double min, double max)
{
	JsonbValue *v = options_find(options, key);
	double		d;

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a number", key)));
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	if (!(d >= min && d <= max))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be between %g and %g, not %g", key, min, max, d)));
	return d;
}

bool
options_get_bool(Jsonb *options, const char *key, bool dflt)
{
	JsonbValue *v = options_find(options, key);

	if (v == NULL || v->type == jbvNull)
		return dflt;
	if (v->type != jbvBool)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a boolean", key)));
	return v->val.boolean;
}

/* A string option, or dflt; NULL dflt and absent key give NULL. */
char *
options_get_string(Jsonb *options, const char *key, const char *dflt)
{
	JsonbValue *v = options_find(options, key);

	if (v == NULL || v->type == jbvNull)
		return dflt ? pstrdup(dflt) : NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* One of the allowed strings; the index of the match. */
int
options_get_choice(Jsonb *options, const char *key, const char *const *allowed, int dflt)
{
	char	   *v = options_get_string(options, key, NULL);
	StringInfoData list;

	if (v == NULL)
		return dflt;
	initStringInfo(&list);
	for (int i = 0; allowed[i]; i++)
	{
		if (strcmp(v, allowed[i]) == 0)
			return i;
		appendStringInfo(&list, "%s%s", i ? ", " : "", allowed[i]);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be one of %s, not \"%s\"", key, list.data, v)));
	return dflt;
}

/* An array of strings (NULL or absent: none); returns the count. */
int
options_get_strings(Jsonb *options, const char *key, char ***out)
{
	JsonbValue *v = options_find(options, key);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;
	int			n = 0;

	*out = NULL;
	if (v == NULL || v->type == jbvNull)
		return 0;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be an array of strings", key)));
	*out = palloc(sizeof(char *) * (JsonContainerSize(v->val.binary.data) + 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" must be an array of strings", key)));
		(*out)[n++] = pnstrdup(e.val.string.val, e.val.string.len);
	}
	return n;
}

/* ---------- top-k: a min-heap of the k best, ties broken by lower index ---------- */

static inline bool
topk_worse(float s1, int32 i1, float s2, int32 i2)
{
	return s1 < s2 || (s1 == s2 && i1 > i2);
}

void
topk_init(TopK *t, int k)
{
	t->k = k;
	t->n = 0;
	t->score = palloc(sizeof(float) * k);
	t->index = palloc(sizeof(int32) * k);
}

void
topk_push(TopK *t, float score, int32 index)
{
	int			pos;

	if (t->n < t->k)
	{
		pos = t->n++;
		while (pos > 0)
		{
			int			parent = (pos - 1) / 2;

			if (!topk_worse(score, index, t->score[parent], t->index[parent]))
				break;
			t->score[pos] = t->score[parent];
			t->index[pos] = t->index[parent];
			pos = parent;
		}
		t->score[pos] = score;
		t->index[pos] = index;
		return;
	}
	if (t->k == 0 || !topk_worse(t->score[0], t->index[0], score, index))
		return;
	pos = 0;
	for (;;)
	{
		int			c = 2 * pos + 1;

		if (c >= t->n)
			break;
		if (c + 1 < t->n && topk_worse(t->score[c + 1], t->index[c + 1], t->score[c], t->index[c]))
			c++;
		if (!topk_worse(t->score[c], t->index[c], score, index))
			break;
		t->score[pos] = t->score[c];
		t->index[pos] = t->index[c];
		pos = c;
	}
	t->score[pos] = score;
	t->index[pos] = index;
}

/* Best first. */
void
topk_sort(TopK *t)
{
	for (int i = 1; i < t->n; i++)
	{
		float		s = t->score[i];
		int32		x = t->index[i];
		int			j = i - 1;

		while (j >= 0 && topk_worse(t->score[j], t->index[j], s, x))
		{
			t->score[j + 1] = t->score[j];
			t->index[j + 1] = t->index[j];
			j--;
		}
		t->score[j + 1] = s;
		t->index[j + 1] = x;
	}
}

/*
 * The image without user u: every ROWS_USERS section loses row u, every
 * ROWS_PAIRS section the user's pairs, the CSR row starts are shifted, and
 * the user's weights are taken out of item popularity. Other sections are
 * copied, so a section kind added later is erased correctly when its rows
 * are declared per user or per pair.
 */
ModelHeader *
model_without_user_index(const ModelHeader *m, int32 u)
{
	const int64 *indptr = model_require(m, SECTION_SEEN_INDPTR, ELEMENT_INT64, ROWS_USERS_PLUS_ONE, 1);
	int64		start = indptr[u],
				removed = indptr[u + 1] - indptr[u];
	ModelBuilder b;
	ModelHeader *r;

	model_builder_init(&b, m->algorithm);
	memcpy(&b.hdr, m, offsetof(ModelHeader, section));
	b.hdr.nsections = 0;
	b.hdr.nusers = m->nusers - 1;
	b.hdr.nnz = m->nnz - removed;
	for (int i = 0; i < m->nsections; i++)
	{
		const ModelSection *s = &m->section[i];
		uint64		rows = model_row_count(m, s->rows);
		uint64		drop = s->rows == ROWS_USERS || s->rows == ROWS_USERS_PLUS_ONE ? 1 :
			s->rows == ROWS_PAIRS ? removed : 0;
		uint64		bytes = drop == 0 ? s->bytes : s->bytes / rows * (rows - drop);

		model_reserve(&b, s->kind, s->element, s->rows, bytes / model_element_size(s->element));
	}
	r = model_allocate(&b);
	for (int i = 0; i < m->nsections; i++)
	{
		const ModelSection *s = &m->section[i];
		const char *src = (const char *) m + s->offset;
		char	   *dst = (char *) r + r->section[i].offset;

		if ((s->rows == ROWS_USERS || s->rows == ROWS_PAIRS) && model_row_count(m, s->rows) == 0)
			continue;			/* no rows (a model without pairs): nothing to copy */
		if (s->rows == ROWS_USERS || s->rows == ROWS_PAIRS)
		{
			uint64		rows = model_row_count(m, s->rows);
			uint64		width = s->bytes / rows;
			uint64		first = s->rows == ROWS_USERS ? (uint64) u : (uint64) start;
			uint64		drop = s->rows == ROWS_USERS ? 1 : (uint64) removed;

			memcpy(dst, src, width * first);
			memcpy(dst + width * first, src + width * (first + drop), width * (rows - first - drop));
		}
		else if (s->kind == SECTION_SEEN_INDPTR)
		{
			int64	   *ptr = (int64 *) dst;

			for (int32 i = 0; i <= r->nusers; i++)
				ptr[i] = i < u ? indptr[i] : indptr[i + 1] - removed;
		}
		else if (s->rows == ROWS_USERS_PLUS_ONE)
			model_corrupt(psprintf("section %d: rows per user plus one, but not the user-item matrix", s->kind));
		else
			memcpy(dst, src, s->bytes);
	}
	{
		float	   *pop = model_section(r, SECTION_ITEM_POPULARITY);
		const int32 *items = model_section(m, SECTION_SEEN_ITEMS);
		const float *weights = model_section(m, SECTION_SEEN_WEIGHTS);

		for (int64 j = start; j < start + removed; j++)
			pop[items[j]] = Max(0.0f, pop[items[j]] - weights[j]);
	}
	return r;
}

/* Index of a user in a model's ascending user ids, or -1. */
int32
model_find_user(const ModelHeader *m, int64 user)
{
	const int64 *ids = model_section(m, SECTION_USER_IDS);
	int32		lo = 0,
				hi = m->nusers;

	if (ids == NULL)
		return -1;
	while (lo < hi)
	{
		int32		mid = lo + (hi - lo) / 2;

		if (ids[mid] < user)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->nusers && ids[lo] == user ? lo : -1;
}

/*
 * The same model without one user (erasure): their id, their row of the
 * user-item matrix (the seen items) and their factors are removed, and their
 * weights are taken out of item popularity. Item factors and neighbour lists
 * stay as trained: they lose the user's influence only when the model is
 * trained again (personalize.forget marks it stale). NULL when the model does
 * not know the user, or keeps no users (popularity).
 */
PG_FUNCTION_INFO_V1(model_without_user);
Datum
model_without_user(PG_FUNCTION_ARGS)
{
	ModelHeader *m = model_check(PG_GETARG_DATUM(0));
	int32		u;
	ModelHeader *r;

	if (model_section_entry(m, SECTION_SEEN_INDPTR) == NULL || (u = model_find_user(m, PG_GETARG_INT64(1))) < 0)
		PG_RETURN_NULL();
	r = model_without_user_index(m, u);
	PG_RETURN_DATUM(model_datum(r));
}
