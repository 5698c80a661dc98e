/*
 * model.c — the personalize.model type: layout checks, text and binary I/O
 * (hex of the flat value, so pg_dump carries models), model_info(), dense id
 * maps, option parsing and partial top-k selection shared by every algorithm.
 */
#include "postgres.h"

#include <cblas.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "model.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

const char *
model_algorithm_name(int alg)
{
	switch (alg)
	{
		case MODEL_POPULARITY:
			return "popularity";
		case MODEL_ITEMKNN:
			return "itemknn";
		case MODEL_ALS:
			return "als";
	}
	return "unknown";
}

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

/* ---------- building and checking values ---------- */

uint64
model_reserve(ModelBuilder *b, Size bytes)
{
	uint64		off = TYPEALIGN(8, b->size);

	b->size = off + bytes;
	return off;
}

ModelHeader *
model_allocate(ModelBuilder *b)
{
	ModelHeader *m;

	if (b->size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model would take %zu bytes, more than the 1 GB limit of a value", b->size),
				 errhint("Use fewer factors, fewer neighbors or less data.")));
	/* zeroed: alignment gaps too, so equal models are equal bytes */
	m = MemoryContextAllocExtended(CurrentMemoryContext, b->size, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	memcpy(m, &b->hdr, sizeof(ModelHeader));
	SET_VARSIZE(m, b->size);
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
	char	   *opts = JsonbToCString(NULL, &options->root, VARSIZE(options));
	ModelHeader *m;

	memset(&b, 0, sizeof(b));
	b.size = sizeof(ModelHeader);
	b.hdr.magic = MODEL_MAGIC;
	b.hdr.format = MODEL_FORMAT;
	b.hdr.algorithm = alg;
	b.hdr.factors = factors;
	b.hdr.neighbors = neighbors;
	b.hdr.nusers = keep_matrix ? data->nusers : 0;
	b.hdr.nitems = data->nitems;
	b.hdr.nnz = keep_matrix ? data->nnz : 0;
	b.hdr.rows = data->rows;
	b.hdr.null_rows = data->null_rows;
	b.hdr.loss = get_float8_nan();
	b.hdr.off_options = model_reserve(&b, strlen(opts) + 1);
	if (keep_matrix)
		b.hdr.off_user_ids = model_reserve(&b, sizeof(int64) * data->nusers);
	b.hdr.off_item_ids = model_reserve(&b, sizeof(int64) * data->nitems);
	b.hdr.off_item_pop = model_reserve(&b, sizeof(float) * data->nitems);
	if (keep_matrix)
	{
		b.hdr.off_indptr = model_reserve(&b, sizeof(int64) * ((Size) data->nusers + 1));
		b.hdr.off_indices = model_reserve(&b, sizeof(int32) * data->nnz);
		b.hdr.off_weights = model_reserve(&b, sizeof(float) * data->nnz);
	}
	if (factors > 0)
	{
		b.hdr.off_user_factors = model_reserve(&b, sizeof(float) * (Size) data->nusers * factors);
		b.hdr.off_item_factors = model_reserve(&b, sizeof(float) * (Size) data->nitems * factors);
	}
	if (neighbors > 0)
	{
		b.hdr.off_nbr_index = model_reserve(&b, sizeof(int32) * (Size) data->nitems * neighbors);
		b.hdr.off_nbr_sim = model_reserve(&b, sizeof(float) * (Size) data->nitems * neighbors);
	}
	m = model_allocate(&b);
	strcpy(MODEL_SECTION(m, m->off_options, char), opts);
	memcpy(MODEL_SECTION(m, m->off_item_ids, int64), data->item_ids, sizeof(int64) * data->nitems);
	memcpy(MODEL_SECTION(m, m->off_item_pop, float), data->item_pop, sizeof(float) * data->nitems);
	if (keep_matrix)
	{
		memcpy(MODEL_SECTION(m, m->off_user_ids, int64), data->user_ids, sizeof(int64) * data->nusers);
		memcpy(MODEL_SECTION(m, m->off_indptr, int64), data->indptr, sizeof(int64) * ((Size) data->nusers + 1));
		memcpy(MODEL_SECTION(m, m->off_indices, int32), data->indices, sizeof(int32) * data->nnz);
		memcpy(MODEL_SECTION(m, m->off_weights, float), data->weights, sizeof(float) * data->nnz);
	}
	return m;
}

static void
model_corrupt(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid personalize.model value: %s", what)));
}

static void
check_section(ModelHeader *m, uint64 off, Size bytes, bool required, const char *what)
{
	Size		size = VARSIZE(m);

	if (off == 0)
	{
		if (required)
			model_corrupt(what);
		return;
	}
	if (off % 8 != 0 || off < sizeof(ModelHeader) || off > size || bytes > size - off)
		model_corrupt(what);
}

/* Every section lies inside the value and the indexes it holds are in range. */
static void
model_validate(ModelHeader *m)
{
	Size		size = VARSIZE(m);
	bool		matrix;

	if (size < sizeof(ModelHeader) || m->magic != MODEL_MAGIC)
		model_corrupt("bad header");
	if (m->format != MODEL_FORMAT)
		model_corrupt("unsupported format");
	if (m->algorithm < MODEL_POPULARITY || m->algorithm > MODEL_ALS)
		model_corrupt("unknown algorithm");
	if (m->nusers < 0 || m->nitems < 0 || m->nnz < 0 || m->factors < 0 || m->neighbors < 0)
		model_corrupt("negative count");
	matrix = m->off_indptr != 0;
	check_section(m, m->off_options, 1, true, "options");
	if (MODEL_SECTION(m, m->off_options, char)[0] == '\0' || memchr(MODEL_SECTION(m, m->off_options, char), 0, size - m->off_options) == NULL)
		model_corrupt("options");
	check_section(m, m->off_item_ids, sizeof(int64) * m->nitems, true, "item ids");
	check_section(m, m->off_item_pop, sizeof(float) * m->nitems, true, "item popularity");
	check_section(m, m->off_user_ids, sizeof(int64) * m->nusers, matrix, "user ids");
	if (matrix)
	{
		int64	   *indptr;
		int32	   *indices;

		check_section(m, m->off_indptr, sizeof(int64) * ((Size) m->nusers + 1), true, "indptr");
		check_section(m, m->off_indices, sizeof(int32) * m->nnz, true, "indices");
		check_section(m, m->off_weights, sizeof(float) * m->nnz, true, "weights");
		indptr = MODEL_SECTION(m, m->off_indptr, int64);
		indices = MODEL_SECTION(m, m->off_indices, int32);
		if (indptr[0] != 0 || indptr[m->nusers] != m->nnz)
			model_corrupt("indptr");
		for (int32 u = 0; u < m->nusers; u++)
			if (indptr[u + 1] < indptr[u])
				model_corrupt("indptr");
		for (int64 i = 0; i < m->nnz; i++)
			if (indices[i] < 0 || indices[i] >= m->nitems)
				model_corrupt("indices");
	}
	if (m->algorithm == MODEL_ALS)
	{
		if (m->factors < 1 || !matrix)
			model_corrupt("factors");
		check_section(m, m->off_user_factors, sizeof(float) * (Size) m->nusers * m->factors, true, "user factors");
		check_section(m, m->off_item_factors, sizeof(float) * (Size) m->nitems * m->factors, true, "item factors");
	}
	if (m->algorithm == MODEL_ITEMKNN)
	{
		int32	   *nbr;

		if (m->neighbors < 1 || !matrix)
			model_corrupt("neighbors");
		check_section(m, m->off_nbr_index, sizeof(int32) * (Size) m->nitems * m->neighbors, true, "neighbors");
		check_section(m, m->off_nbr_sim, sizeof(float) * (Size) m->nitems * m->neighbors, true, "similarities");
		nbr = MODEL_SECTION(m, m->off_nbr_index, int32);
		for (Size i = 0; i < (Size) m->nitems * m->neighbors; i++)
			if (nbr[i] < -1 || nbr[i] >= m->nitems)
				model_corrupt("neighbors");
	}
}

/* Detoasted model; layout checked only where the bytes came from outside (I/O). */
ModelHeader *
model_check(Datum d)
{
	ModelHeader *m = (ModelHeader *) PG_DETOAST_DATUM(d);

	if (VARSIZE(m) < sizeof(ModelHeader) || m->magic != MODEL_MAGIC)
		model_corrupt("bad header");
	return m;
}

PG_FUNCTION_INFO_V1(model_in);
Datum
model_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	size_t		len = strlen(str);
	ModelHeader *m;

	if (len < 2 || str[0] != '\\' || str[1] != 'x' || (len - 2) % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type model"),
				 errdetail("A model is written as \\x followed by the hexadecimal digits of its value.")));
	if ((len - 2) / 2 < sizeof(ModelHeader) || (len - 2) / 2 > MaxAllocSize)
		model_corrupt("bad length");
	m = MemoryContextAllocHuge(CurrentMemoryContext, (len - 2) / 2);
	hex_decode(str + 2, len - 2, (char *) m);
	if (VARSIZE(m) != (len - 2) / 2)
		model_corrupt("bad length");
	model_validate(m);
	PG_RETURN_POINTER(m);
}

PG_FUNCTION_INFO_V1(model_out);
Datum
model_out(PG_FUNCTION_ARGS)
{
	ModelHeader *m = model_check(PG_GETARG_DATUM(0));
	Size		size = VARSIZE(m);
	char	   *out = MemoryContextAllocHuge(CurrentMemoryContext, size * 2 + 3);

	out[0] = '\\';
	out[1] = 'x';
	hex_encode((const char *) m, size, out + 2);
	out[size * 2 + 2] = '\0';
	PG_RETURN_CSTRING(out);
}

PG_FUNCTION_INFO_V1(model_recv);
Datum
model_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	ModelHeader *m;

	if (len < (int) sizeof(ModelHeader))
		model_corrupt("bad length");
	m = MemoryContextAllocHuge(CurrentMemoryContext, len);
	pq_copymsgbytes(buf, (char *) m, len);
	if (VARSIZE(m) != (Size) len)
		model_corrupt("bad length");
	model_validate(m);
	PG_RETURN_POINTER(m);
}

PG_FUNCTION_INFO_V1(model_send);
Datum
model_send(PG_FUNCTION_ARGS)
{
	ModelHeader *m = model_check(PG_GETARG_DATUM(0));
	bytea	   *result = MemoryContextAllocHuge(CurrentMemoryContext, VARSIZE(m) + VARHDRSZ);

	SET_VARSIZE(result, VARSIZE(m) + VARHDRSZ);
	memcpy(VARDATA(result), m, VARSIZE(m));
	PG_RETURN_BYTEA_P(result);
}

/* personalize.model_info(model) -> jsonb summary */
PG_FUNCTION_INFO_V1(model_info);
Datum
model_info(PG_FUNCTION_ARGS)
{
	ModelHeader *m = model_check(PG_GETARG_DATUM(0));
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"algorithm\": \"%s\", \"options\": %s, \"rows\": " INT64_FORMAT
					 ", \"null_rows\": " INT64_FORMAT ", \"items\": %d, \"bytes\": %u",
					 model_algorithm_name(m->algorithm), MODEL_SECTION(m, m->off_options, char),
					 m->rows, m->null_rows, m->nitems, (unsigned) VARSIZE(m));
	if (m->off_indptr)
		appendStringInfo(&s, ", \"users\": %d, \"pairs\": " INT64_FORMAT, m->nusers, m->nnz);
	if (m->factors > 0)
		appendStringInfo(&s, ", \"factors\": %d", m->factors);
	if (m->neighbors > 0)
		appendStringInfo(&s, ", \"neighbors\": %d", m->neighbors);
	if (!isnan(m->loss))
		appendStringInfo(&s, ", \"loss\": %.9g", m->loss);
	appendStringInfoChar(&s, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
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

/* ---------- per-backend cache of active models ---------- */

#define MODEL_CACHE_SIZE 4

static LoadedModel *model_cache = NULL;
static uint64 model_cache_clock = 0;
static SPIPlanPtr active_version_plan = NULL;
static SPIPlanPtr model_value_plan = NULL;

static SPIPlanPtr
model_cache_plan(SPIPlanPtr *plan, const char *sql)
{
	if (*plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, INT4OID};
		SPIPlanPtr	p = SPI_prepare(sql, strstr(sql, "$2") ? 2 : 1, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/* Derived data: id maps, and for ALS the item norms and YᵀY used by fold-in. */
static void
model_cache_prepare(LoadedModel *lm)
{
	ModelHeader *m = lm->m;

	lm->items = idmap_from_sorted(MODEL_SECTION(m, m->off_item_ids, int64), m->nitems);
	if (m->off_user_ids)
		lm->users = idmap_from_sorted(MODEL_SECTION(m, m->off_user_ids, int64), m->nusers);
	if (m->algorithm == MODEL_ALS)
	{
		int			f = m->factors;
		float	   *Y = MODEL_SECTION(m, m->off_item_factors, float);
		Jsonb	   *opts = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															  CStringGetDatum(MODEL_SECTION(m, m->off_options, char))));

		lm->item_norms = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(m->nitems, 1));
		for (int32 i = 0; i < m->nitems; i++)
			lm->item_norms[i] = sqrtf(vec_dot(f, Y + (Size) i * f, Y + (Size) i * f));
		lm->gram = palloc(sizeof(float) * f * f);
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, f, m->nitems, 1.0f, Y, f, 0.0f, lm->gram, f);
		for (int a = 0; a < f; a++)
			for (int b = 0; b < a; b++)
				lm->gram[a * f + b] = lm->gram[b * f + a];
		lm->regularization = (float) options_get_number(opts, "regularization", ALS_DEFAULT_REGULARIZATION, 0, 1e6);
		lm->alpha = (float) options_get_number(opts, "alpha", ALS_DEFAULT_ALPHA, 0, 1e6);
	}
}

/*
 * The active version of a model, loaded into this backend once per version.
 * Each call costs one indexed lookup of the active version number; a new
 * active version (or a dropped model) is seen at the next call. A model
 * value is read in one snapshot, so serving never sees a half-written one.
 */
LoadedModel *
model_cache_get(text *name_text)
{
	char	   *name = text_to_cstring(name_text);
	Datum		args[2];
	bool		isnull;
	int32		version;
	TimestampTz trained_at;
	LoadedModel *lm,
			   *victim = NULL,
			  **link;
	int			count = 0;
	MemoryContext caller = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = PointerGetDatum(name_text);
	if (SPI_execute_plan(model_cache_plan(&active_version_plan,
										  "SELECT version, coalesce(revised_at, trained_at) FROM personalize.models WHERE name = $1 AND active"),
						 args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "cannot read personalize.models");
	if (SPI_processed == 0)
	{
		bool		exists;

		if (SPI_execute_with_args("SELECT 1 FROM personalize.models WHERE name = $1", 1,
								  (Oid[]) {TEXTOID}, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "cannot read personalize.models");
		exists = SPI_processed > 0;
		if (exists)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" has no active version", name),
					 errhint("Activate one with personalize.activate().")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
	}
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/*
	 * A dropped and retrained model reuses version numbers, and forget rewrites
	 * a stored model in place: trained_at, or revised_at once set, tells them apart.
	 */
	trained_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	for (lm = model_cache; lm; lm = lm->next)
	{
		if (strcmp(lm->name, name) == 0 && lm->version == version && lm->trained_at == trained_at)
		{
			lm->last_used = ++model_cache_clock;
			SPI_finish();
			return lm;
		}
	}

	/* load into a context that becomes permanent only once complete */
	{
		MemoryContext cxt = AllocSetContextCreate(caller, "personalize model", ALLOCSET_DEFAULT_SIZES);
		MemoryContext old;
		Datum		value;

		args[1] = Int32GetDatum(version);
		if (SPI_execute_plan(model_cache_plan(&model_value_plan,
											  "SELECT model FROM personalize.models WHERE name = $1 AND version = $2"),
							 args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "cannot read model \"%s\" version %d", name, version);
		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		old = MemoryContextSwitchTo(cxt);
		lm = palloc0(sizeof(LoadedModel));
		lm->name = pstrdup(name);
		lm->version = version;
		lm->trained_at = trained_at;
		lm->cxt = cxt;
		lm->m = (ModelHeader *) pg_detoast_datum_copy((struct varlena *) DatumGetPointer(value));
		model_cache_prepare(lm);
		MemoryContextSwitchTo(old);
		MemoryContextSetParent(cxt, TopMemoryContext);
		lm->last_used = ++model_cache_clock;
	}
	SPI_finish();

	/* drop other versions of this model, and the least recently used beyond the limit */
	link = &model_cache;
	while (*link)
	{
		LoadedModel *e = *link;

		if (strcmp(e->name, name) == 0)
		{
			*link = e->next;
			MemoryContextDelete(e->cxt);
			continue;
		}
		count++;
		if (victim == NULL || e->last_used < victim->last_used)
			victim = e;
		link = &e->next;
	}
	if (count >= MODEL_CACHE_SIZE && victim)
	{
		for (link = &model_cache; *link != victim; link = &(*link)->next)
			;
		*link = victim->next;
		MemoryContextDelete(victim->cxt);
	}
	lm->next = model_cache;
	model_cache = lm;
	return lm;
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
	int64		user = PG_GETARG_INT64(1);
	const int64 *user_ids;
	const int64 *indptr;
	int32		lo = 0,
				hi,
				u;
	int64		start,
				removed;
	const char *options;
	ModelBuilder b;
	ModelHeader *r;

	if (m->off_user_ids == 0 || m->off_indptr == 0 || m->nusers == 0)
		PG_RETURN_NULL();
	user_ids = MODEL_SECTION(m, m->off_user_ids, int64);
	hi = m->nusers;
	while (lo < hi)				/* user ids are ascending */
	{
		int32		mid = lo + (hi - lo) / 2;

		if (user_ids[mid] < user)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == m->nusers || user_ids[lo] != user)
		PG_RETURN_NULL();
	u = lo;
	indptr = MODEL_SECTION(m, m->off_indptr, int64);
	start = indptr[u];
	removed = indptr[u + 1] - start;
	options = MODEL_SECTION(m, m->off_options, char);

	/* same sections, same order as model_from_interactions, one user fewer */
	memset(&b, 0, sizeof(b));
	b.hdr = *m;
	b.size = sizeof(ModelHeader);
	b.hdr.nusers = m->nusers - 1;
	b.hdr.nnz = m->nnz - removed;
	b.hdr.off_options = model_reserve(&b, strlen(options) + 1);
	b.hdr.off_user_ids = model_reserve(&b, sizeof(int64) * b.hdr.nusers);
	b.hdr.off_item_ids = model_reserve(&b, sizeof(int64) * m->nitems);
	b.hdr.off_item_pop = model_reserve(&b, sizeof(float) * m->nitems);
	b.hdr.off_indptr = model_reserve(&b, sizeof(int64) * ((Size) b.hdr.nusers + 1));
	b.hdr.off_indices = model_reserve(&b, sizeof(int32) * b.hdr.nnz);
	b.hdr.off_weights = model_reserve(&b, sizeof(float) * b.hdr.nnz);
	if (m->off_user_factors != 0)
		b.hdr.off_user_factors = model_reserve(&b, sizeof(float) * (Size) b.hdr.nusers * m->factors);
	if (m->off_item_factors != 0)
		b.hdr.off_item_factors = model_reserve(&b, sizeof(float) * (Size) m->nitems * m->factors);
	if (m->off_nbr_index != 0)
	{
		b.hdr.off_nbr_index = model_reserve(&b, sizeof(int32) * (Size) m->nitems * m->neighbors);
		b.hdr.off_nbr_sim = model_reserve(&b, sizeof(float) * (Size) m->nitems * m->neighbors);
	}
	r = model_allocate(&b);

	strcpy(MODEL_SECTION(r, r->off_options, char), options);
	{
		int64	   *ids = MODEL_SECTION(r, r->off_user_ids, int64);

		memcpy(ids, user_ids, sizeof(int64) * u);
		memcpy(ids + u, user_ids + u + 1, sizeof(int64) * (m->nusers - u - 1));
	}
	memcpy(MODEL_SECTION(r, r->off_item_ids, int64), MODEL_SECTION(m, m->off_item_ids, int64),
		   sizeof(int64) * m->nitems);
	{
		float	   *pop = MODEL_SECTION(r, r->off_item_pop, float);
		const int32 *indices = MODEL_SECTION(m, m->off_indices, int32);
		const float *weights = MODEL_SECTION(m, m->off_weights, float);

		memcpy(pop, MODEL_SECTION(m, m->off_item_pop, float), sizeof(float) * m->nitems);
		for (int64 i = start; i < start + removed; i++)
			pop[indices[i]] = Max(0.0f, pop[indices[i]] - weights[i]);
	}
	{
		int64	   *ptr = MODEL_SECTION(r, r->off_indptr, int64);

		for (int32 i = 0; i <= b.hdr.nusers; i++)
			ptr[i] = i < u ? indptr[i] : indptr[i + 1] - removed;
	}
	{
		int64		tail = m->nnz - start - removed;

		memcpy(MODEL_SECTION(r, r->off_indices, int32), MODEL_SECTION(m, m->off_indices, int32),
			   sizeof(int32) * start);
		memcpy(MODEL_SECTION(r, r->off_indices, int32) + start,
			   MODEL_SECTION(m, m->off_indices, int32) + start + removed, sizeof(int32) * tail);
		memcpy(MODEL_SECTION(r, r->off_weights, float), MODEL_SECTION(m, m->off_weights, float),
			   sizeof(float) * start);
		memcpy(MODEL_SECTION(r, r->off_weights, float) + start,
			   MODEL_SECTION(m, m->off_weights, float) + start + removed, sizeof(float) * tail);
	}
	if (m->off_user_factors != 0)
	{
		Size		row = sizeof(float) * m->factors;
		char	   *dst = MODEL_SECTION(r, r->off_user_factors, char);
		const char *src = MODEL_SECTION(m, m->off_user_factors, char);

		memcpy(dst, src, row * u);
		memcpy(dst + row * u, src + row * (u + 1), row * (m->nusers - u - 1));
	}
	if (m->off_item_factors != 0)
		memcpy(MODEL_SECTION(r, r->off_item_factors, float), MODEL_SECTION(m, m->off_item_factors, float),
			   sizeof(float) * (Size) m->nitems * m->factors);
	if (m->off_nbr_index != 0)
	{
		memcpy(MODEL_SECTION(r, r->off_nbr_index, int32), MODEL_SECTION(m, m->off_nbr_index, int32),
			   sizeof(int32) * (Size) m->nitems * m->neighbors);
		memcpy(MODEL_SECTION(r, r->off_nbr_sim, float), MODEL_SECTION(m, m->off_nbr_sim, float),
			   sizeof(float) * (Size) m->nitems * m->neighbors);
	}
	model_validate(r);
	PG_RETURN_POINTER(r);
}
