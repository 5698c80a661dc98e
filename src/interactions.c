/*
 * interactions.c — the transition state shared by the item-kNN and ALS
 * training aggregates. Ids are mapped to dense indexes as rows arrive (one
 * open-addressing map each for users and items), and rows are kept as index
 * triples in blocks of INTERACTION_BLOCK: 12 bytes a row, huge allocations,
 * nothing copied when the input grows. Combine, serialize and deserialize
 * let the aggregates run in parallel.
 *
 * interactions_build() turns the state into a CSR matrix by user with
 * duplicates summed and ids sorted ascending (so the result does not depend
 * on row order or on how parallel workers split the table), freeing each
 * block as soon as it is sorted in: its peak is about 20 bytes a row.
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "model.h"
#include "progress.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

InteractionState *
interactions_state_new(MemoryContext cxt)
{
	InteractionState *st = MemoryContextAllocZero(cxt, sizeof(InteractionState));
	MemoryContext old = MemoryContextSwitchTo(cxt);

	st->cxt = cxt;
	idmap_init(&st->users, 1024);
	idmap_init(&st->items, 1024);
	st->max_blocks = 16;
	st->blocks = palloc(sizeof(InteractionBlock *) * st->max_blocks);
	MemoryContextSwitchTo(old);
	return st;
}

void
interactions_check_weight(float w)
{
	if (isnan(w) || isinf(w))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("interaction weight must be finite, not \"%g\"", w)));
	if (w < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("interaction weight must not be negative, not \"%g\"", w)));
}

/* Dense index of an id, added when new; the map grows in the state's context. */
static inline int32
state_index(InteractionState *st, IdMap *map, int64 id)
{
	int32		v;

	if (likely((uint64) (map->count + 1) * 2 <= map->mask + 1))
		return idmap_add(map, id);
	if (unlikely(map->count == PG_INT32_MAX - 1))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct ids")));
	{
		MemoryContext old = MemoryContextSwitchTo(st->cxt);

		v = idmap_add(map, id);
		MemoryContextSwitchTo(old);
	}
	return v;
}

static void
state_append(InteractionState *st, int32 u, int32 i, float w)
{
	int64		at = st->n % INTERACTION_BLOCK;
	InteractionBlock *b;

	if (at == 0)
	{
		if (st->nblocks == st->max_blocks)
		{
			st->max_blocks *= 2;
			st->blocks = repalloc_huge(st->blocks, sizeof(InteractionBlock *) * st->max_blocks);
		}
		st->blocks[st->nblocks++] = MemoryContextAllocHuge(st->cxt, sizeof(InteractionBlock));
	}
	b = st->blocks[st->nblocks - 1];
	b->user[at] = u;
	b->item[at] = i;
	b->weight[at] = w;
	st->n++;
}

/* One row as the transition function adds it (distributed.c on the nodes, hybrid.c from its own rows). */
void
interactions_add(InteractionState *st, int64 user, int64 item, float weight)
{
	int32		u,
				i;

	interactions_check_weight(weight);
	u = state_index(st, &st->users, user);
	i = state_index(st, &st->items, item);
	state_append(st, u, i, weight);
}

static MemoryContext
aggregate_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return cxt;
}

static void
state_set_options(InteractionState *st, Jsonb *opts)
{
	st->options = MemoryContextAlloc(st->cxt, VARSIZE(opts));
	memcpy(st->options, opts, VARSIZE(opts));
}

/* interactions_transfn(internal, user bigint, item bigint, weight real, options jsonb) */
PG_FUNCTION_INFO_V1(interactions_transfn);
Datum
interactions_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "interactions_transfn");
	InteractionState *st;
	int32		u,
				i;

	if (PG_ARGISNULL(0))
		st = interactions_state_new(cxt);
	else
		st = (InteractionState *) PG_GETARG_POINTER(0);
	progress_count_row();

	if (st->options == NULL && !PG_ARGISNULL(4))
		state_set_options(st, PG_GETARG_JSONB_P(4));
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		st->null_rows++;
		PG_RETURN_POINTER(st);
	}
	interactions_check_weight(PG_GETARG_FLOAT4(3));
	u = state_index(st, &st->users, PG_GETARG_INT64(1));
	i = state_index(st, &st->items, PG_GETARG_INT64(2));
	state_append(st, u, i, PG_GETARG_FLOAT4(3));
	PG_RETURN_POINTER(st);
}

/* The ids of a map in index order. */
static int64 *
map_keys(const IdMap *map)
{
	int64	   *keys = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(map->count, 1));

	for (uint64 s = 0; s <= map->mask; s++)
		if (map->values[s] >= 0)
			keys[map->values[s]] = map->keys[s];
	return keys;
}

static void
map_free(IdMap *map)
{
	pfree(map->keys);
	pfree(map->values);
	map->keys = NULL;
	map->values = NULL;
}

/* Append b's rows to a, mapping b's indexes through a's maps. */
static void
state_merge(InteractionState *a, const InteractionState *b)
{
	int64	   *keys;
	int32	   *user_map = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(b->users.count, 1));
	int32	   *item_map = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(b->items.count, 1));

	keys = map_keys(&b->users);
	for (int32 k = 0; k < b->users.count; k++)
		user_map[k] = state_index(a, &a->users, keys[k]);
	pfree(keys);
	keys = map_keys(&b->items);
	for (int32 k = 0; k < b->items.count; k++)
		item_map[k] = state_index(a, &a->items, keys[k]);
	pfree(keys);
	for (int64 r = 0; r < b->n; r++)
	{
		const InteractionBlock *blk = b->blocks[r / INTERACTION_BLOCK];
		int64		at = r % INTERACTION_BLOCK;

		if ((r & 0xFFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		state_append(a, user_map[blk->user[at]], item_map[blk->item[at]], blk->weight[at]);
	}
	a->null_rows += b->null_rows;
	pfree(user_map);
	pfree(item_map);
}

PG_FUNCTION_INFO_V1(interactions_combine);
Datum
interactions_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "interactions_combine");
	InteractionState *a = PG_ARGISNULL(0) ? NULL : (InteractionState *) PG_GETARG_POINTER(0);
	InteractionState *b = PG_ARGISNULL(1) ? NULL : (InteractionState *) PG_GETARG_POINTER(1);

	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
		a = interactions_state_new(cxt);
	if (a->options == NULL && b->options != NULL)
		state_set_options(a, b->options);
	progress_take_over_rows(b->n + b->null_rows);
	state_merge(a, b);
	/* b is a worker's deserialized state, not used again: free it now, not at the end */
	for (int32 i = 0; i < b->nblocks; i++)
		pfree(b->blocks[i]);
	b->nblocks = 0;
	b->n = 0;
	map_free(&b->users);
	map_free(&b->items);
	PG_RETURN_POINTER(a);
}

/*
 * Layout: int64 n, null_rows; int32 options length (0 = none), users, items;
 * the options as NUL-terminated jsonb text (deserialize parses it, so no byte
 * string reaches the jsonb accessors unchecked); user ids and item ids in
 * index order; the n user indexes, item indexes and weights.
 */
PG_FUNCTION_INFO_V1(interactions_serialize);
Datum
interactions_serialize(PG_FUNCTION_ARGS)
{
	InteractionState *st = (InteractionState *) PG_GETARG_POINTER(0);
	char	   *opts = st->options ? JsonbToCString(NULL, &st->options->root, VARSIZE(st->options)) : NULL;
	int32		optlen = opts ? strlen(opts) + 1 : 0;
	Size		size = VARHDRSZ + 2 * sizeof(int64) + 3 * sizeof(int32) + optlen
		+ sizeof(int64) * ((Size) st->users.count + st->items.count) + st->n * (2 * sizeof(int32) + sizeof(float));
	bytea	   *out;
	char	   *p;
	int64	   *keys;

	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("partial aggregate state of " INT64_FORMAT " interactions exceeds 1 GB", st->n),
				 errhint("Disable parallel query for this training (max_parallel_workers_per_gather = 0).")));
	progress_hand_over_rows(st->n + st->null_rows);
	out = palloc(size);
	SET_VARSIZE(out, size);
	p = VARDATA(out);
#define PUT(src, len) do { memcpy(p, (src), (len)); p += (len); } while (0)
	PUT(&st->n, sizeof(int64));
	PUT(&st->null_rows, sizeof(int64));
	PUT(&optlen, sizeof(int32));
	PUT(&st->users.count, sizeof(int32));
	PUT(&st->items.count, sizeof(int32));
	if (optlen)
		PUT(opts, optlen);
	keys = map_keys(&st->users);
	PUT(keys, sizeof(int64) * st->users.count);
	pfree(keys);
	keys = map_keys(&st->items);
	PUT(keys, sizeof(int64) * st->items.count);
	pfree(keys);
	for (int f = 0; f < 3; f++)
		for (int32 b = 0; b < st->nblocks; b++)
		{
			int64		rows = Min(INTERACTION_BLOCK, st->n - (int64) b * INTERACTION_BLOCK);
			const void *col = f == 0 ? (const void *) st->blocks[b]->user :
				f == 1 ? (const void *) st->blocks[b]->item : (const void *) st->blocks[b]->weight;

			PUT(col, 4 * rows);
			if (f == 2)
				pfree(st->blocks[b]);
		}
#undef PUT
	/* a partial state is serialized once, as its aggregate's last use: free it now, not at the end */
	st->nblocks = 0;
	st->n = 0;
	map_free(&st->users);
	map_free(&st->items);
	PG_RETURN_BYTEA_P(out);
}

static void
interactions_state_invalid(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid interactions state")));
}

PG_FUNCTION_INFO_V1(interactions_deserialize);
Datum
interactions_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "interactions_deserialize");
	bytea	   *in = PG_GETARG_BYTEA_P(0);
	const char *p = VARDATA(in);
	Size		len = VARSIZE(in) - VARHDRSZ;
	Size		fixed = 2 * sizeof(int64) + 3 * sizeof(int32),
				rest;
	int64		n,
				nulls;
	int32		optlen,
				nusers,
				nitems;
	const int64 *user_ids,
			   *item_ids;
	const int32 *uidx,
			   *iidx;
	const float *w;
	InteractionState *st;
	MemoryContext old;

	if (len < fixed)
		interactions_state_invalid();
	memcpy(&n, p, sizeof(int64));
	memcpy(&nulls, p + 8, sizeof(int64));
	memcpy(&optlen, p + 16, sizeof(int32));
	memcpy(&nusers, p + 20, sizeof(int32));
	memcpy(&nitems, p + 24, sizeof(int32));
	p += fixed;
	/* sizes compared by division: their products could wrap */
	if (n < 0 || optlen < 0 || nusers < 0 || nitems < 0 || (Size) optlen > len - fixed)
		interactions_state_invalid();
	rest = len - fixed - optlen;
	if ((Size) nusers + nitems > rest / sizeof(int64))
		interactions_state_invalid();
	rest -= sizeof(int64) * ((Size) nusers + nitems);
	if (rest % (2 * sizeof(int32) + sizeof(float)) != 0 ||
		(Size) n != rest / (2 * sizeof(int32) + sizeof(float)) ||
		(optlen > 0 && memchr(p, '\0', optlen) != p + optlen - 1))
		interactions_state_invalid();
	st = interactions_state_new(cxt);
	st->null_rows = nulls;
	if (optlen)
	{
		state_set_options(st, DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(p))));
		p += optlen;
	}
	/* int64 ids follow a 28 + optlen byte prefix: copy rather than assume alignment */
	old = MemoryContextSwitchTo(cxt);
	user_ids = memcpy(palloc(sizeof(int64) * Max(nusers, 1)), p, sizeof(int64) * nusers);
	p += sizeof(int64) * nusers;
	item_ids = memcpy(palloc(sizeof(int64) * Max(nitems, 1)), p, sizeof(int64) * nitems);
	p += sizeof(int64) * nitems;
	MemoryContextSwitchTo(old);
	for (int32 k = 0; k < nusers; k++)
		if (state_index(st, &st->users, user_ids[k]) != k)
			interactions_state_invalid();
	for (int32 k = 0; k < nitems; k++)
		if (state_index(st, &st->items, item_ids[k]) != k)
			interactions_state_invalid();
	pfree((void *) user_ids);
	pfree((void *) item_ids);
	uidx = (const int32 *) p;
	iidx = (const int32 *) (p + sizeof(int32) * n);
	w = (const float *) (p + 2 * sizeof(int32) * n);
	for (int64 r = 0; r < n; r++)
	{
		int32		u,
					i;
		float		x;

		memcpy(&u, uidx + r, sizeof(int32));
		memcpy(&i, iidx + r, sizeof(int32));
		memcpy(&x, w + r, sizeof(float));
		if (u < 0 || u >= nusers || i < 0 || i >= nitems)
			interactions_state_invalid();
		interactions_check_weight(x);
		state_append(st, u, i, x);
	}
	PG_RETURN_POINTER(st);
}

/* ---------- dense indexes and CSR ---------- */

/* qsort and bsearch order of int64 keys */
int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* qsort order of C strings (an array of char *) */
int
cmp_cstring(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The ids of a map sorted ascending, and rank[first-seen index] = position
 * of that id among them. Frees the map.
 */
static int64 *
rank_ids(IdMap *map, int32 **rank_out)
{
	int32		count = map->count;
	int64	   *sorted = map_keys(map);
	int32	   *rank = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(count, 1));
	IdMap		pos;

	/* rank by the map: first-seen index -> id -> sorted position */
	qsort(sorted, count, sizeof(int64), cmp_int64);
	idmap_init(&pos, count);
	for (int32 i = 0; i < count; i++)
		idmap_insert(&pos, sorted[i], i);
	for (uint64 s = 0; s <= map->mask; s++)
		if (map->values[s] >= 0)
			rank[map->values[s]] = idmap_get(&pos, map->keys[s]);
	map_free(&pos);
	map_free(map);
	*rank_out = rank;
	return sorted;
}

typedef struct ItemWeight
{
	int32		item;
	float		weight;
} ItemWeight;

static int
cmp_item_weight(const void *a, const void *b)
{
	int32		x = ((const ItemWeight *) a)->item,
				y = ((const ItemWeight *) b)->item;

	return (x > y) - (x < y);
}

Interactions *
interactions_build(InteractionState *st)
{
	Interactions *d = palloc0(sizeof(Interactions));
	int64		n = st->n;
	int32	   *urank,
			   *irank;
	int64	   *fill;
	ItemWeight *pairs;
	int64		out;

	progress_set_phase(PROGRESS_BUILDING);
	d->rows = n;
	d->null_rows = st->null_rows;
	d->nusers = st->users.count;
	d->nitems = st->items.count;
	d->user_ids = rank_ids(&st->users, &urank);
	d->item_ids = rank_ids(&st->items, &irank);

	/* counting sort by user; each block is freed once sorted in */
	d->indptr = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * ((Size) d->nusers + 1));
	memset(d->indptr, 0, sizeof(int64) * ((Size) d->nusers + 1));
	for (int64 r = 0; r < n; r++)
		d->indptr[urank[st->blocks[r / INTERACTION_BLOCK]->user[r % INTERACTION_BLOCK]] + 1]++;
	for (int32 u = 0; u < d->nusers; u++)
		d->indptr[u + 1] += d->indptr[u];
	fill = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(d->nusers, 1));
	memcpy(fill, d->indptr, sizeof(int64) * d->nusers);
	pairs = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemWeight) * Max(n, 1));
	for (int32 b = 0; b < st->nblocks; b++)
	{
		InteractionBlock *blk = st->blocks[b];
		int64		rows = Min(INTERACTION_BLOCK, n - (int64) b * INTERACTION_BLOCK);

		CHECK_FOR_INTERRUPTS();
		for (int64 r = 0; r < rows; r++)
		{
			int64		at = fill[urank[blk->user[r]]]++;

			pairs[at].item = irank[blk->item[r]];
			pairs[at].weight = blk->weight[r];
		}
		pfree(blk);
		st->blocks[b] = NULL;
	}
	st->nblocks = 0;
	st->n = 0;
	pfree(fill);
	pfree(urank);
	pfree(irank);

	/* sort each user's items and sum duplicates, compacting in place */
	out = 0;
	for (int32 u = 0; u < d->nusers; u++)
	{
		int64		start = d->indptr[u],
					end = d->indptr[u + 1];

		if ((u & 0x3FFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (end - start > 1)
			qsort(pairs + start, end - start, sizeof(ItemWeight), cmp_item_weight);
		d->indptr[u] = out;
		for (int64 j = start; j < end; j++)
		{
			if (out > d->indptr[u] && pairs[out - 1].item == pairs[j].item)
				pairs[out - 1].weight += pairs[j].weight;
			else
				pairs[out++] = pairs[j];
		}
	}
	d->indptr[d->nusers] = out;
	d->nnz = out;

	/* split the pairs: items into a new array, weights compacted into the pairs' memory */
	d->indices = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(out, 1));
	d->item_pop = palloc0(sizeof(float) * Max(d->nitems, 1));
	for (int64 j = 0; j < out; j++)
	{
		if (isinf(pairs[j].weight))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("summed interaction weight is out of range")));
		d->indices[j] = pairs[j].item;
		d->item_pop[pairs[j].item] += pairs[j].weight;
	}
	d->weights = (float *) pairs;
	for (int64 j = 0; j < out; j++)
		d->weights[j] = pairs[j].weight;	/* writes at 4j, reads at 8j + 4: never ahead */
	d->weights = repalloc_huge(d->weights, sizeof(float) * Max(out, 1));
	return d;
}

/* The model holds a copy of the matrix and ids: use it, and free ours. */
void
interactions_adopt(Interactions *d, const ModelHeader *m)
{
	pfree(d->user_ids);
	pfree(d->item_ids);
	pfree(d->indptr);
	pfree(d->indices);
	pfree(d->weights);
	d->user_ids = model_section(m, SECTION_USER_IDS);
	d->item_ids = model_section(m, SECTION_ITEM_IDS);
	d->indptr = model_section(m, SECTION_SEEN_INDPTR);
	d->indices = model_section(m, SECTION_SEEN_ITEMS);
	d->weights = model_section(m, SECTION_SEEN_WEIGHTS);
}

/*
 * A clear error before training when its memory would not fit: the user-item
 * matrix twice, the ids and the algorithm's own sections (model_bytes),
 * against the memory the system has available now.
 */
void
interactions_check_memory(const InteractionState *st, double model_bytes, const char *algorithm)
{
	long		pages = sysconf(_SC_AVPHYS_PAGES),
				page = sysconf(_SC_PAGESIZE);
	double		need = 16.0 * st->n + 24.0 * ((double) st->users.count + st->items.count) + model_bytes;
	double		available;

	if (pages <= 0 || page <= 0)
		return;
	available = (double) pages * page;
	if (need > available)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("%s training needs about %.0f MB, more than the %.0f MB of memory available",
						algorithm, need / 1048576, available / 1048576),
				 errdetail("%lld interactions, %d users, %d items.",
						   (long long) st->n, st->users.count, st->items.count),
				 errhint("Train on fewer interactions, with fewer factors or neighbors, or free memory.")));
}

/* CSR by item (columns of the user matrix); users ascending within an item. */
void
interactions_transpose(const Interactions *d, int64 **indptr_out, int32 **indices_out, float **weights_out)
{
	int64	   *indptr = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * ((Size) d->nitems + 1));
	int32	   *indices = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(d->nnz, 1));
	float	   *weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(d->nnz, 1));
	int64	   *fill = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(d->nitems, 1));

	memset(indptr, 0, sizeof(int64) * ((Size) d->nitems + 1));
	for (int64 j = 0; j < d->nnz; j++)
		indptr[d->indices[j] + 1]++;
	for (int32 i = 0; i < d->nitems; i++)
		indptr[i + 1] += indptr[i];
	memcpy(fill, indptr, sizeof(int64) * d->nitems);
	for (int32 u = 0; u < d->nusers; u++)
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
		{
			int64		at = fill[d->indices[j]]++;

			indices[at] = u;
			weights[at] = d->weights[j];
		}
	pfree(fill);
	*indptr_out = indptr;
	*indices_out = indices;
	*weights_out = weights;
}

/* Options of the state, or an empty object when the input had no rows. */
Jsonb *
interactions_options(InteractionState *st)
{
	if (st->options)
		return st->options;
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
}
