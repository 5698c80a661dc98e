/*
 * editorial.c — personalize.editorial_fit: the editorial or rule-based arm
 * (arm A of a study) as a model, so that it is served, assigned and measured
 * like the learned ones.
 *
 * Input rows (item_id, position, segment): curated lists, one per segment,
 * and the default list (segment NULL). The option "segments" names a source
 * of (user_id, segment) read as the caller: a user is served their
 * segment's list, anyone else the default list; recommend's context argument
 * names a segment and overrides. The score of the item at position p is
 * 1 / p. An item listed twice in one list keeps its first position.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "model.h"
#include "sqlsource.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

static const char *const editorial_options[] = {"segments", NULL};

typedef struct EditorialRow
{
	int64		item;
	int32		position;
	char	   *segment;		/* NULL: the default list */
} EditorialRow;

typedef struct EditorialState
{
	int64		n;
	int64		capacity;
	int64		null_rows;
	Jsonb	   *options;
	EditorialRow *rows;
} EditorialState;

/* editorial_transfn(internal, item bigint, position integer, segment text, options jsonb) */
PG_FUNCTION_INFO_V1(editorial_transfn);
Datum
editorial_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt,
				old;
	EditorialState *st;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "editorial_transfn called in non-aggregate context");
	if (PG_ARGISNULL(0))
	{
		st = MemoryContextAllocZero(cxt, sizeof(EditorialState));
		st->capacity = 256;
		st->rows = MemoryContextAllocHuge(cxt, sizeof(EditorialRow) * st->capacity);
	}
	else
		st = (EditorialState *) PG_GETARG_POINTER(0);
	old = MemoryContextSwitchTo(cxt);
	if (st->options == NULL && !PG_ARGISNULL(4))
	{
		Jsonb	   *opts = PG_GETARG_JSONB_P(4);

		st->options = palloc(VARSIZE(opts));
		memcpy(st->options, opts, VARSIZE(opts));
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		st->null_rows++;
	else
	{
		if (PG_GETARG_INT32(2) < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("editorial position must be at least 1, not %d", PG_GETARG_INT32(2))));
		if (st->n == st->capacity)
		{
			st->capacity *= 2;
			st->rows = repalloc_huge(st->rows, sizeof(EditorialRow) * st->capacity);
		}
		st->rows[st->n].item = PG_GETARG_INT64(1);
		st->rows[st->n].position = PG_GETARG_INT32(2);
		st->rows[st->n].segment = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
		st->n++;
	}
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(st);
}

typedef struct ListEntry
{
	int32		list;			/* 0 = default, s + 1 = segment s */
	int32		position;
	int32		item;
} ListEntry;

static int
cmp_entry(const void *a, const void *b)
{
	const ListEntry *x = a,
			   *y = b;

	if (x->list != y->list)
		return (x->list > y->list) - (x->list < y->list);
	if (x->item != y->item)
		return (x->item > y->item) - (x->item < y->item);
	return (x->position > y->position) - (x->position < y->position);
}

static int
cmp_entry_position(const void *a, const void *b)
{
	const ListEntry *x = a,
			   *y = b;

	if (x->list != y->list)
		return (x->list > y->list) - (x->list < y->list);
	if (x->position != y->position)
		return (x->position > y->position) - (x->position < y->position);
	return (x->item > y->item) - (x->item < y->item);
}

/* Index of name in the sorted distinct names, -1 when absent. */
static int32
find_name(char **names, int32 n, const char *name)
{
	char	  **hit = bsearch(&name, names, n, sizeof(char *), cmp_cstring);

	return hit ? (int32) (hit - names) : -1;
}

PG_FUNCTION_INFO_V1(editorial_final);
Datum
editorial_final(PG_FUNCTION_ARGS)
{
	EditorialState *st;
	Jsonb	   *opts;
	char	   *segments_source;
	SourceRows *assigned = NULL;
	char	  **names;
	int32		nnames = 0;
	int64		nall = 0;
	int64	   *items;
	int32		nitems = 0;
	IdMap	   *item_map;
	ListEntry  *entries;
	int64		nentries = 0;
	int64	   *list_indptr;
	int32	   *list_items;
	float	   *list_positions;
	Interactions d;
	int32	   *user_segment = NULL;
	ModelBuilder b;
	char	   *options_text;
	ModelHeader *m;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (EditorialState *) PG_GETARG_POINTER(0);
	opts = st->options ? st->options : DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	options_check_keys(opts, editorial_options);
	segments_source = options_get_string(opts, "segments", NULL);
	if (st->n == 0)
		PG_RETURN_NULL();
	if (segments_source)
		assigned = ReadSourceRows(segments_source, "segments", "user_id", "segment", NULL);

	/* segment names: of the lists and of the assignments, sorted and distinct */
	names = palloc(sizeof(char *) * (st->n + (assigned ? assigned->n : 0) + 1));
	for (int64 r = 0; r < st->n; r++)
		if (st->rows[r].segment)
			names[nall++] = st->rows[r].segment;
	if (assigned)
		for (int64 r = 0; r < assigned->n; r++)
			names[nall++] = assigned->labels[r];
	qsort(names, nall, sizeof(char *), cmp_cstring);
	for (int64 r = 0; r < nall; r++)
		if (nnames == 0 || strcmp(names[nnames - 1], names[r]) != 0)
			names[nnames++] = names[r];

	/* items: sorted distinct */
	items = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * st->n);
	for (int64 r = 0; r < st->n; r++)
		items[r] = st->rows[r].item;
	qsort(items, st->n, sizeof(int64), cmp_int64);
	for (int64 r = 0; r < st->n; r++)
		if (nitems == 0 || items[nitems - 1] != items[r])
		{
			if (nitems == PG_INT32_MAX - 1)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many editorial items")));
			items[nitems++] = items[r];
		}
	item_map = idmap_from_sorted(items, nitems);

	/* lists: one entry per (list, item), its first position; then by position */
	entries = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ListEntry) * st->n);
	for (int64 r = 0; r < st->n; r++)
	{
		entries[r].list = st->rows[r].segment ? find_name(names, nnames, st->rows[r].segment) + 1 : 0;
		entries[r].position = st->rows[r].position;
		entries[r].item = idmap_get(item_map, st->rows[r].item);
	}
	qsort(entries, st->n, sizeof(ListEntry), cmp_entry);
	for (int64 r = 0; r < st->n; r++)
		if (nentries == 0 || entries[nentries - 1].list != entries[r].list || entries[nentries - 1].item != entries[r].item)
			entries[nentries++] = entries[r];
	qsort(entries, nentries, sizeof(ListEntry), cmp_entry_position);
	list_indptr = palloc0(sizeof(int64) * ((Size) nnames + 2));
	list_items = palloc(sizeof(int32) * Max(nentries, 1));
	list_positions = palloc(sizeof(float) * Max(nentries, 1));
	for (int64 r = 0; r < nentries; r++)
	{
		list_indptr[entries[r].list + 1]++;
		list_items[r] = entries[r].item;
		list_positions[r] = (float) entries[r].position;
	}
	for (int32 l = 0; l <= nnames; l++)
		list_indptr[l + 1] += list_indptr[l];

	/* users with an assigned segment (the last assignment of a user wins), no interactions */
	memset(&d, 0, sizeof(d));
	d.rows = st->n;
	d.null_rows = st->null_rows;
	d.nitems = nitems;
	d.item_ids = items;
	d.item_pop = palloc(sizeof(float) * Max(nitems, 1));
	for (int32 i = 0; i < nitems; i++)
		d.item_pop[i] = 0;
	for (int64 r = 0; r < nentries; r++)	/* the best score the item has in any list */
		d.item_pop[entries[r].item] = Max(d.item_pop[entries[r].item], 1.0f / entries[r].position);
	if (assigned && assigned->n > 0)
	{
		int64	   *ids = palloc(sizeof(int64) * assigned->n);
		int32		n = 0;
		IdMap	   *user_map;

		memcpy(ids, assigned->ids, sizeof(int64) * assigned->n);
		qsort(ids, assigned->n, sizeof(int64), cmp_int64);
		for (int64 r = 0; r < assigned->n; r++)
			if (n == 0 || ids[n - 1] != ids[r])
				ids[n++] = ids[r];
		user_map = idmap_from_sorted(ids, n);
		user_segment = palloc(sizeof(int32) * n);
		for (int64 r = 0; r < assigned->n; r++)
			user_segment[idmap_get(user_map, assigned->ids[r])] = find_name(names, nnames, assigned->labels[r]);
		d.nusers = n;
		d.user_ids = ids;
	}
	else
		d.user_ids = palloc(sizeof(int64));
	d.indptr = palloc0(sizeof(int64) * ((Size) d.nusers + 1));
	d.indices = palloc(sizeof(int32));
	d.weights = palloc(sizeof(float));

	options_text = model_reserve_interactions(&b, MODEL_EDITORIAL, &d, opts, 0, 0, true);
	model_reserve(&b, SECTION_SEGMENT_NAMES, ELEMENT_CHAR, ROWS_NONE, names_size(names, nnames));
	model_reserve(&b, SECTION_SEGMENT_LIST_INDPTR, ELEMENT_INT64, ROWS_NONE, (uint64) nnames + 2);
	model_reserve(&b, SECTION_SEGMENT_LIST_ITEMS, ELEMENT_INT32, ROWS_NONE, nentries);
	model_reserve(&b, SECTION_SEGMENT_LIST_POSITIONS, ELEMENT_FLOAT4, ROWS_NONE, nentries);
	model_reserve(&b, SECTION_USER_SEGMENT, ELEMENT_INT32, ROWS_USERS, d.nusers);
	m = model_allocate(&b);
	model_fill_interactions(m, &d, options_text);
	names_write(model_section(m, SECTION_SEGMENT_NAMES), names, nnames);
	memcpy(model_section(m, SECTION_SEGMENT_LIST_INDPTR), list_indptr, sizeof(int64) * ((Size) nnames + 2));
	memcpy(model_section(m, SECTION_SEGMENT_LIST_ITEMS), list_items, sizeof(int32) * nentries);
	memcpy(model_section(m, SECTION_SEGMENT_LIST_POSITIONS), list_positions, sizeof(float) * nentries);
	if (d.nusers > 0)
		memcpy(model_section(m, SECTION_USER_SEGMENT), user_segment, sizeof(int32) * d.nusers);
	PG_RETURN_DATUM(model_datum(m));
}
