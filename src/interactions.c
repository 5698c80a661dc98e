/*
 * interactions.c — the transition state shared by the item-kNN and ALS
 * training aggregates: (user, item, weight) triples in three flat arrays that
 * grow by doubling (huge allocations past 1 GB, no palloc per row), with
 * combine, serialize and deserialize so the aggregates run in parallel.
 *
 * interactions_build() turns the triples into dense indexes (ids sorted
 * ascending, so the result does not depend on row order or on how parallel
 * workers split the table) and a CSR matrix by user with duplicates summed.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "model.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#define INITIAL_CAPACITY 1024

InteractionState *
interactions_state_new(MemoryContext cxt)
{
	InteractionState *st = MemoryContextAllocZero(cxt, sizeof(InteractionState));

	st->capacity = INITIAL_CAPACITY;
	st->users = MemoryContextAllocHuge(cxt, sizeof(int64) * st->capacity);
	st->items = MemoryContextAllocHuge(cxt, sizeof(int64) * st->capacity);
	st->weights = MemoryContextAllocHuge(cxt, sizeof(float) * st->capacity);
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

/* Make room for extra more triples; repalloc_huge keeps the arrays in their context. */
static void
interactions_reserve(InteractionState *st, int64 extra)
{
	int64		need = st->n + extra;
	int64		cap = st->capacity;

	if (need <= cap)
		return;
	while (cap < need)
		cap *= 2;
	if ((Size) cap * sizeof(int64) > MaxAllocHugeSize / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many interactions: " INT64_FORMAT, need)));
	st->users = repalloc_huge(st->users, sizeof(int64) * cap);
	st->items = repalloc_huge(st->items, sizeof(int64) * cap);
	st->weights = repalloc_huge(st->weights, sizeof(float) * cap);
	st->capacity = cap;
}

static MemoryContext
aggregate_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return cxt;
}

/* interactions_transfn(internal, user bigint, item bigint, weight real, options jsonb) */
PG_FUNCTION_INFO_V1(interactions_transfn);
Datum
interactions_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = aggregate_context(fcinfo, "interactions_transfn");
	InteractionState *st;

	if (PG_ARGISNULL(0))
		st = interactions_state_new(cxt);
	else
		st = (InteractionState *) PG_GETARG_POINTER(0);

	if (st->options == NULL && !PG_ARGISNULL(4))
	{
		Jsonb	   *opts = PG_GETARG_JSONB_P(4);

		st->options = MemoryContextAlloc(cxt, VARSIZE(opts));
		memcpy(st->options, opts, VARSIZE(opts));
	}

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		st->null_rows++;
		PG_RETURN_POINTER(st);
	}
	interactions_check_weight(PG_GETARG_FLOAT4(3));
	interactions_reserve(st, 1);
	st->users[st->n] = PG_GETARG_INT64(1);
	st->items[st->n] = PG_GETARG_INT64(2);
	st->weights[st->n] = PG_GETARG_FLOAT4(3);
	st->n++;
	PG_RETURN_POINTER(st);
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
	{
		a->options = MemoryContextAlloc(cxt, VARSIZE(b->options));
		memcpy(a->options, b->options, VARSIZE(b->options));
	}
	interactions_reserve(a, b->n);
	memcpy(a->users + a->n, b->users, sizeof(int64) * b->n);
	memcpy(a->items + a->n, b->items, sizeof(int64) * b->n);
	memcpy(a->weights + a->n, b->weights, sizeof(float) * b->n);
	a->n += b->n;
	a->null_rows += b->null_rows;
	PG_RETURN_POINTER(a);
}

/*
 * Layout: int64 n, int64 null_rows, int32 options length (0 = none), the
 * options as NUL-terminated jsonb text, users, items, weights. Text rather
 * than the jsonb value: deserialize parses it, so no byte string reaches the
 * jsonb accessors unchecked.
 */
PG_FUNCTION_INFO_V1(interactions_serialize);
Datum
interactions_serialize(PG_FUNCTION_ARGS)
{
	InteractionState *st = (InteractionState *) PG_GETARG_POINTER(0);
	char	   *opts = st->options ? JsonbToCString(NULL, &st->options->root, VARSIZE(st->options)) : NULL;
	int32		optlen = opts ? strlen(opts) + 1 : 0;
	Size		size = VARHDRSZ + 2 * sizeof(int64) + sizeof(int32) + optlen
		+ st->n * (2 * sizeof(int64) + sizeof(float));
	bytea	   *out;
	char	   *p;

	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("partial aggregate state of " INT64_FORMAT " interactions exceeds 1 GB", st->n),
				 errhint("Disable parallel query for this training (max_parallel_workers_per_gather = 0).")));
	out = palloc(size);
	SET_VARSIZE(out, size);
	p = VARDATA(out);
	memcpy(p, &st->n, sizeof(int64));
	p += sizeof(int64);
	memcpy(p, &st->null_rows, sizeof(int64));
	p += sizeof(int64);
	memcpy(p, &optlen, sizeof(int32));
	p += sizeof(int32);
	if (optlen)
		memcpy(p, opts, optlen);
	p += optlen;
	memcpy(p, st->users, sizeof(int64) * st->n);
	p += sizeof(int64) * st->n;
	memcpy(p, st->items, sizeof(int64) * st->n);
	p += sizeof(int64) * st->n;
	memcpy(p, st->weights, sizeof(float) * st->n);
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
	Size		fixed = 2 * sizeof(int64) + sizeof(int32);
	int64		n,
				nulls;
	int32		optlen;
	InteractionState *st;

	if (len < fixed)
		interactions_state_invalid();
	memcpy(&n, p, sizeof(int64));
	memcpy(&nulls, p + sizeof(int64), sizeof(int64));
	memcpy(&optlen, p + 2 * sizeof(int64), sizeof(int32));
	p += fixed;
	/* sizes compared by division: n * 20 could wrap */
	if (n < 0 || optlen < 0 || (Size) optlen > len - fixed ||
		(len - fixed - optlen) % (2 * sizeof(int64) + sizeof(float)) != 0 ||
		(Size) n != (len - fixed - optlen) / (2 * sizeof(int64) + sizeof(float)) ||
		(optlen > 0 && memchr(p, '\0', optlen) != p + optlen - 1))
		interactions_state_invalid();
	st = interactions_state_new(cxt);
	st->null_rows = nulls;
	if (optlen)
	{
		Jsonb	   *opts = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(p)));

		st->options = MemoryContextAlloc(cxt, VARSIZE(opts));
		memcpy(st->options, opts, VARSIZE(opts));
		p += optlen;
	}
	interactions_reserve(st, n);
	memcpy(st->users, p, sizeof(int64) * n);
	p += sizeof(int64) * n;
	memcpy(st->items, p, sizeof(int64) * n);
	p += sizeof(int64) * n;
	memcpy(st->weights, p, sizeof(float) * n);
	for (int64 i = 0; i < n; i++)
		interactions_check_weight(st->weights[i]);
	st->n = n;
	PG_RETURN_POINTER(st);
}

/* ---------- dense indexes and CSR ---------- */

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * Replace ids by dense indexes in order of ascending id; returns the sorted
 * distinct ids and writes the index of each row into out.
 */
static int64 *
densify(const int64 *ids, int64 n, int32 *out, int32 *ndistinct)
{
	IdMap		map;
	int64	   *keys;
	int32	   *rank;
	int32		count;

	idmap_init(&map, 1024);
	for (int64 r = 0; r < n; r++)
	{
		if ((r & 0xFFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		if (unlikely(map.count == PG_INT32_MAX - 1))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many distinct ids")));
		out[r] = idmap_add(&map, ids[r]);
	}
	count = map.count;
	keys = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(count, 1));
	for (uint64 i = 0; i <= map.mask; i++)
		if (map.values[i] >= 0)
			keys[map.values[i]] = map.keys[i];
	/* rank[first-seen index] = position of that id in ascending order */
	{
		int64	   *sorted = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(count, 1));
		IdMap		pos;

		memcpy(sorted, keys, sizeof(int64) * count);
		qsort(sorted, count, sizeof(int64), cmp_int64);
		idmap_init(&pos, count);
		for (int32 i = 0; i < count; i++)
			idmap_insert(&pos, sorted[i], i);
		rank = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(count, 1));
		for (int32 i = 0; i < count; i++)
			rank[i] = idmap_get(&pos, keys[i]);
		pfree(pos.keys);
		pfree(pos.values);
		pfree(keys);
		keys = sorted;
	}
	for (int64 r = 0; r < n; r++)
		out[r] = rank[out[r]];
	pfree(rank);
	pfree(map.keys);
	pfree(map.values);
	*ndistinct = count;
	return keys;
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
	int32	   *uidx = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(n, 1));
	int32	   *iidx = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(n, 1));
	int64	   *fill;
	ItemWeight *pairs;
	int64		out;

	d->rows = n;
	d->null_rows = st->null_rows;
	d->user_ids = densify(st->users, n, uidx, &d->nusers);
	d->item_ids = densify(st->items, n, iidx, &d->nitems);

	/* counting sort by user */
	d->indptr = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * ((Size) d->nusers + 1));
	memset(d->indptr, 0, sizeof(int64) * ((Size) d->nusers + 1));
	for (int64 r = 0; r < n; r++)
		d->indptr[uidx[r] + 1]++;
	for (int32 u = 0; u < d->nusers; u++)
		d->indptr[u + 1] += d->indptr[u];
	fill = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(d->nusers, 1));
	memcpy(fill, d->indptr, sizeof(int64) * d->nusers);
	pairs = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ItemWeight) * Max(n, 1));
	for (int64 r = 0; r < n; r++)
	{
		int64		at = fill[uidx[r]]++;

		pairs[at].item = iidx[r];
		pairs[at].weight = st->weights[r];
	}
	pfree(fill);
	pfree(uidx);
	pfree(iidx);

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
	d->indices = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(out, 1));
	d->weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(out, 1));
	d->item_pop = palloc0(sizeof(float) * Max(d->nitems, 1));
	for (int64 j = 0; j < out; j++)
	{
		if (isinf(pairs[j].weight))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("summed interaction weight is out of range")));
		d->indices[j] = pairs[j].item;
		d->weights[j] = pairs[j].weight;
		d->item_pop[pairs[j].item] += pairs[j].weight;
	}
	pfree(pairs);

	/* the triples are consumed: release them before training allocates its matrices */
	pfree(st->users);
	pfree(st->items);
	pfree(st->weights);
	st->users = st->items = NULL;
	st->weights = NULL;
	st->n = st->capacity = 0;
	return d;
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
