/*
 * popularity.c — personalize.popularity_fit: summed weight per item.
 *
 * The state reduces the data (one slot per item), so it is a concrete type —
 * a bytea holding an open-addressing table — rather than internal: Citus
 * pushes partial aggregation to workers only for such states, and parallel
 * query needs no serialization. The table is updated in place while in
 * aggregate context; when it must grow, a table of twice the size is
 * returned and the executor copies it into the aggregate context.
 */
#include "postgres.h"

#include <math.h>

#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "model.h"
#include "progress.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#define POP_MAGIC 0x504f5031	/* "POP1" */

typedef struct PopSlot
{
	int64		item;
	double		weight;			/* < 0 = empty slot */
} PopSlot;

typedef struct PopState
{
	int32		vl_len_;
	int32		magic;
	int64		slots;			/* power of two */
	int64		count;
	int64		rows;
	int64		null_rows;
	PopSlot		slot[FLEXIBLE_ARRAY_MEMBER];
} PopState;

static PopState *
pop_new(int64 slots)
{
	Size		size = offsetof(PopState, slot) + sizeof(PopSlot) * slots;
	PopState   *st;

	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct items for popularity_fit")));
	st = palloc(size);
	SET_VARSIZE(st, size);
	st->magic = POP_MAGIC;
	st->slots = slots;
	st->count = 0;
	st->rows = 0;
	st->null_rows = 0;
	for (int64 i = 0; i < slots; i++)
		st->slot[i].weight = -1;
	return st;
}

static void
pop_invalid(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid popularity_fit state")));
}

static PopState *
pop_get(Datum d)
{
	PopState   *st = (PopState *) PG_DETOAST_DATUM(d);

	/*
	 * A partial state read from a worker's tuple is only int-aligned (bytea);
	 * the slots hold int64 and double. Our own states are palloc'd (aligned).
	 */
	if ((uintptr_t) st % MAXIMUM_ALIGNOF != 0)
	{
		PopState   *copy = palloc(VARSIZE(st));

		memcpy(copy, st, VARSIZE(st));
		st = copy;
	}

	/* the functions are callable with any bytea: slots a power of two that fits, count within */
	if (VARSIZE(st) < offsetof(PopState, slot) || st->magic != POP_MAGIC ||
		st->slots < 1 || (st->slots & (st->slots - 1)) != 0 ||
		(Size) st->slots != (VARSIZE(st) - offsetof(PopState, slot)) / sizeof(PopSlot) ||
		VARSIZE(st) != offsetof(PopState, slot) + sizeof(PopSlot) * st->slots ||
		st->count < 0 || st->count > st->slots)
		pop_invalid();
	return st;
}

static void
pop_add(PopState *st, int64 item, double weight)
{
	uint64		mask = st->slots - 1;
	uint64		pos = hash_bytes_uint32_extended((uint32) item, (uint64) (item >> 32)) & mask;

	/* a table with room never needs more probes; a full one is a state whose count lies */
	for (int64 probes = 0; probes < st->slots; probes++)
	{
		PopSlot    *s = &st->slot[pos];

		if (s->weight < 0)
		{
			s->item = item;
			s->weight = weight;
			st->count++;
			return;
		}
		if (s->item == item)
		{
			s->weight += weight;
			return;
		}
		pos = (pos + 1) & mask;
	}
	pop_invalid();
}

/* The table, or a bigger copy when it would be more than half full. */
static PopState *
pop_room(PopState *st, int64 extra)
{
	PopState   *bigger;
	int64		slots = st->slots;

	if ((st->count + extra) * 2 <= st->slots)
		return st;
	while ((st->count + extra) * 2 > slots)
		slots *= 2;
	bigger = pop_new(slots);
	bigger->rows = st->rows;
	bigger->null_rows = st->null_rows;
	for (int64 i = 0; i < st->slots; i++)
		if (st->slot[i].weight >= 0)
			pop_add(bigger, st->slot[i].item, st->slot[i].weight);
	return bigger;
}

static const char *const popularity_options[] = {NULL};

/* popularity_transfn(bytea, user bigint, item bigint, weight real, options jsonb) */
PG_FUNCTION_INFO_V1(popularity_transfn);
Datum
popularity_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	PopState   *st;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "popularity_transfn called in non-aggregate context");
	if (PG_ARGISNULL(0))
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		if (!PG_ARGISNULL(4))
			options_check_keys(PG_GETARG_JSONB_P(4), popularity_options);
		st = pop_new(64);
		MemoryContextSwitchTo(old);
	}
	else
		st = pop_get(PG_GETARG_DATUM(0));
	progress_count_row();

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
	{
		st->null_rows++;
		PG_RETURN_POINTER(st);
	}
	interactions_check_weight(PG_GETARG_FLOAT4(3));
	st = pop_room(st, 1);
	pop_add(st, PG_GETARG_INT64(2), PG_GETARG_FLOAT4(3));
	st->rows++;
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(popularity_combine);
Datum
popularity_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	PopState   *a,
			   *b;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "popularity_combine called in non-aggregate context");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	b = pop_get(PG_GETARG_DATUM(1));
	if (PG_ARGISNULL(0))
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		a = pop_new(b->slots);
		MemoryContextSwitchTo(old);
	}
	else
		a = pop_get(PG_GETARG_DATUM(0));
	a = pop_room(a, b->count);
	for (int64 i = 0; i < b->slots; i++)
		if (b->slot[i].weight >= 0)
			pop_add(a, b->slot[i].item, b->slot[i].weight);
	a->rows += b->rows;
	a->null_rows += b->null_rows;
	PG_RETURN_POINTER(a);
}

static int
cmp_slot(const void *x, const void *y)
{
	int64		a = ((const PopSlot *) x)->item,
				b = ((const PopSlot *) y)->item;

	return (a > b) - (a < b);
}

PG_FUNCTION_INFO_V1(popularity_final);
Datum
popularity_final(PG_FUNCTION_ARGS)
{
	PopState   *st;
	PopSlot    *items;
	int64		n = 0;
	Interactions d;
	Jsonb	   *opts;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = pop_get(PG_GETARG_DATUM(0));
	if (st->count == 0)
		PG_RETURN_NULL();
	items = palloc(sizeof(PopSlot) * st->count);
	for (int64 i = 0; i < st->slots; i++)
		if (st->slot[i].weight >= 0)
		{
			if (n == st->count)
				pop_invalid();
			items[n++] = st->slot[i];
		}
	qsort(items, n, sizeof(PopSlot), cmp_slot);
	memset(&d, 0, sizeof(d));
	if (n > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct items")));
	d.nitems = (int32) n;
	d.rows = st->rows;
	d.null_rows = st->null_rows;
	d.item_ids = palloc(sizeof(int64) * n);
	d.item_pop = palloc(sizeof(float) * n);
	for (int64 i = 0; i < n; i++)
	{
		d.item_ids[i] = items[i].item;
		d.item_pop[i] = (float) items[i].weight;
	}
	opts = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	PG_RETURN_DATUM(model_datum(model_from_interactions(MODEL_POPULARITY, &d, opts, 0, 0, false)));
}
