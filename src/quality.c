/*
 * quality.c — the data-quality profile of an interaction source in one scan.
 *
 * personalize.interaction_profile(user_id, item_id, weight, occurred_at,
 * settings) is a parallel-safe aggregate. Its state is a few counters, the
 * newest timestamp, a histogram of rows per time window before as_of, and
 * optionally the (user, item, time) triples (to count duplicates) and the
 * distinct user and item ids (to count those the active model has not seen).
 * The final function returns the counts as jsonb; check_interactions
 * (quality.sql) compares them with thresholds, one row per check.
 *
 * Duplicates are counted exactly in the final function: the triples are
 * partitioned by hash, and each partition is deduplicated in a small
 * open-addressing table (count_duplicates).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "common/hashfn.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "model.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define PROFILE_MAX_WINDOWS 366

static const char *const profile_settings[] = {
	"as_of_us", "window_us", "windows", "future_tolerance_us", "duplicates", "distinct", "model", NULL
};

typedef struct Triple
{
	int64		user;
	int64		item;
	int64		time;
} Triple;

typedef struct ProfileState
{
	/* settings, from the first row */
	TimestampTz as_of;
	int64		window_us;
	int32		windows;		/* trailing windows before the last one */
	TimestampTz windows_start;	/* as_of - (windows + 1) window_us */
	TimestampTz future_limit;
	bool		want_duplicates;
	bool		want_distinct;
	char	   *model;			/* NULL: no comparison with a model */

	/* counts */
	int64		rows;
	int64		null_users;
	int64		null_items;
	int64		null_weights;
	int64		negative_weights;
	int64		non_finite_weights;
	int64		null_times;
	int64		future;
	TimestampTz newest;			/* DT_NOBEGIN until a row with a usable time is seen */
	TimestampTz oldest;			/* DT_NOEND until then */
	int64		window_rows[PROFILE_MAX_WINDOWS + 1];	/* [0] = the last window */

	/* duplicates */
	Triple	   *triples;
	int64		ntriples;
	int64		capacity;

	/* distinct ids */
	IdMap		users;
	IdMap		items;
} ProfileState;

static TimestampTz
unix_us_to_timestamptz(double us)
{
	return (TimestampTz) us - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

static ProfileState *
profile_new(MemoryContext cxt, Jsonb *settings)
{
	ProfileState *st = MemoryContextAllocZero(cxt, sizeof(ProfileState));
	MemoryContext old = MemoryContextSwitchTo(cxt);
	JsonbValue *model;

	options_check_keys(settings, profile_settings);
	st->as_of = unix_us_to_timestamptz(options_get_number(settings, "as_of_us", 0, -9e15, 9e15));
	st->window_us = (int64) options_get_number(settings, "window_us", USECS_PER_DAY, 1, 9e15);
	st->windows = (int32) options_get_number(settings, "windows", 7, 1, PROFILE_MAX_WINDOWS);
	st->future_limit = st->as_of + (int64) options_get_number(settings, "future_tolerance_us", 0, 0, 9e15);
	st->windows_start = st->as_of - (st->windows + 1) * st->window_us;	/* at most 367 * 9e15: no overflow */
	st->want_duplicates = options_get_bool(settings, "duplicates", true);
	st->want_distinct = options_get_bool(settings, "distinct", true);
	model = getKeyJsonValueFromContainer(&settings->root, "model", 5, NULL);
	if (model && model->type == jbvString)
		st->model = pnstrdup(model->val.string.val, model->val.string.len);
	st->newest = DT_NOBEGIN;
	st->oldest = DT_NOEND;
	if (st->want_duplicates)
	{
		st->capacity = 1024;
		st->triples = MemoryContextAllocHuge(cxt, sizeof(Triple) * st->capacity);
	}
	if (st->want_distinct)
	{
		idmap_init(&st->users, 1024);
		idmap_init(&st->items, 1024);
	}
	MemoryContextSwitchTo(old);
	return st;
}

static void
profile_reserve(ProfileState *st, int64 extra)
{
	int64		cap = st->capacity;

	if (st->ntriples + extra <= cap)
		return;
	while (cap < st->ntriples + extra)
		cap *= 2;
	if ((Size) cap * sizeof(Triple) > MaxAllocHugeSize / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rows for the duplicate check: " INT64_FORMAT, st->ntriples + extra)));
	st->triples = repalloc_huge(st->triples, sizeof(Triple) * cap);
	st->capacity = cap;
}

static MemoryContext
profile_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext cxt;

	if (!AggCheckCallContext(fcinfo, &cxt))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return cxt;
}

/* interaction_profile_transfn(internal, user bigint, item bigint, weight float8, occurred_at timestamptz, settings jsonb) */
PG_FUNCTION_INFO_V1(interaction_profile_transfn);
Datum
interaction_profile_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = profile_context(fcinfo, "interaction_profile_transfn");
	ProfileState *st;
	bool		has_user = !PG_ARGISNULL(1),
				has_item = !PG_ARGISNULL(2),
				has_time = !PG_ARGISNULL(4);
	int64		user = has_user ? PG_GETARG_INT64(1) : 0;
	int64		item = has_item ? PG_GETARG_INT64(2) : 0;
	TimestampTz t = has_time ? PG_GETARG_TIMESTAMPTZ(4) : 0;

	if (PG_ARGISNULL(0))
	{
		if (PG_ARGISNULL(5))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("settings must not be NULL")));
		st = profile_new(cxt, PG_GETARG_JSONB_P(5));
	}
	else
		st = (ProfileState *) PG_GETARG_POINTER(0);

	st->rows++;
	st->null_users += !has_user;
	st->null_items += !has_item;
	if (PG_ARGISNULL(3))
		st->null_weights++;
	else
	{
		double		w = PG_GETARG_FLOAT8(3);

		/* training reads weights as real: what overflows it is not finite there */
		if (isnan(w) || fabs(w) > FLT_MAX)
			st->non_finite_weights++;
		else if (w < 0)
			st->negative_weights++;
	}
	if (!has_time || t == DT_NOBEGIN)
		st->null_times++;
	else if (t > st->future_limit)
		st->future++;
	else
	{
		if (t > st->newest)
			st->newest = t;
		if (t < st->oldest)
			st->oldest = t;
		/* most rows are older than the windows: one comparison, no division */
		if (t <= st->as_of && t > st->windows_start)
			st->window_rows[(uint64) (st->as_of - t) / (uint64) st->window_us]++;
	}

	if (st->want_duplicates && has_user && has_item && has_time)
	{
		if (unlikely(st->ntriples == st->capacity))
			profile_reserve(st, 1);
		st->triples[st->ntriples].user = user;
		st->triples[st->ntriples].item = item;
		st->triples[st->ntriples].time = t;
		st->ntriples++;
	}
	if (st->want_distinct && (has_user || has_item))
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		if (has_user)
			idmap_add(&st->users, user);
		if (has_item)
			idmap_add(&st->items, item);
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_POINTER(st);
}

static void
idmap_add_all(IdMap *into, const IdMap *from)
{
	for (uint64 i = 0; i <= from->mask; i++)
		if (from->values[i] >= 0)
			idmap_add(into, from->keys[i]);
}

PG_FUNCTION_INFO_V1(interaction_profile_combine);
Datum
interaction_profile_combine(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = profile_context(fcinfo, "interaction_profile_combine");
	ProfileState *a = PG_ARGISNULL(0) ? NULL : (ProfileState *) PG_GETARG_POINTER(0);
	ProfileState *b = PG_ARGISNULL(1) ? NULL : (ProfileState *) PG_GETARG_POINTER(1);
	MemoryContext old;

	if (b == NULL)
	{
		if (a == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(a);
	}
	if (a == NULL)
	{
		/* adopt b: it lives in a context at least as long-lived as ours */
		PG_RETURN_POINTER(b);
	}
	a->rows += b->rows;
	a->null_users += b->null_users;
	a->null_items += b->null_items;
	a->null_weights += b->null_weights;
	a->negative_weights += b->negative_weights;
	a->non_finite_weights += b->non_finite_weights;
	a->null_times += b->null_times;
	a->future += b->future;
	if (b->newest > a->newest)
		a->newest = b->newest;
	if (b->oldest < a->oldest)
		a->oldest = b->oldest;
	for (int w = 0; w <= PROFILE_MAX_WINDOWS; w++)
		a->window_rows[w] += b->window_rows[w];
	old = MemoryContextSwitchTo(cxt);
	if (a->want_duplicates)
	{
		profile_reserve(a, b->ntriples);
		memcpy(a->triples + a->ntriples, b->triples, sizeof(Triple) * b->ntriples);
		a->ntriples += b->ntriples;
	}
	if (a->want_distinct)
	{
		idmap_add_all(&a->users, &b->users);
		idmap_add_all(&a->items, &b->items);
	}
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(a);
}

/*
 * Serialized form: the settings as given (jsonb), the fixed-size part of the
 * state, then the triples, then the distinct user and item ids.
 */
typedef struct ProfileCounts
{
	int64		rows;
	int64		null_users;
	int64		null_items;
	int64		null_weights;
	int64		negative_weights;
	int64		non_finite_weights;
	int64		null_times;
	int64		future;
	TimestampTz newest;
	TimestampTz oldest;
	int64		window_rows[PROFILE_MAX_WINDOWS + 1];
	int64		ntriples;
	int64		nusers;
	int64		nitems;
} ProfileCounts;

static void
profile_counts_get(const ProfileState *st, ProfileCounts *c)
{
	c->rows = st->rows;
	c->null_users = st->null_users;
	c->null_items = st->null_items;
	c->null_weights = st->null_weights;
	c->negative_weights = st->negative_weights;
	c->non_finite_weights = st->non_finite_weights;
	c->null_times = st->null_times;
	c->future = st->future;
	c->newest = st->newest;
	c->oldest = st->oldest;
	memcpy(c->window_rows, st->window_rows, sizeof(c->window_rows));
	c->ntriples = st->want_duplicates ? st->ntriples : 0;
	c->nusers = st->want_distinct ? st->users.count : 0;
	c->nitems = st->want_distinct ? st->items.count : 0;
}

static char *
write_ids(char *p, const IdMap *map)
{
	for (uint64 i = 0; i <= map->mask; i++)
		if (map->values[i] >= 0)
		{
			memcpy(p, &map->keys[i], sizeof(int64));
			p += sizeof(int64);
		}
	return p;
}

/* The settings are kept in the state only as parsed; rebuild them for the leader. */
static Jsonb *
profile_settings_jsonb(const ProfileState *st)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"as_of_us\": " INT64_FORMAT ", \"window_us\": " INT64_FORMAT
					 ", \"windows\": %d, \"future_tolerance_us\": " INT64_FORMAT
					 ", \"duplicates\": %s, \"distinct\": %s",
					 st->as_of + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY,
					 st->window_us, st->windows, st->future_limit - st->as_of,
					 st->want_duplicates ? "true" : "false", st->want_distinct ? "true" : "false");
	if (st->model)
	{
		appendStringInfoString(&s, ", \"model\": ");
		escape_json(&s, st->model);
	}
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

PG_FUNCTION_INFO_V1(interaction_profile_serialize);
Datum
interaction_profile_serialize(PG_FUNCTION_ARGS)
{
	ProfileState *st = (ProfileState *) PG_GETARG_POINTER(0);
	Jsonb	   *settings = profile_settings_jsonb(st);
	ProfileCounts c;
	Size		size;
	bytea	   *out;
	char	   *p;

	profile_counts_get(st, &c);
	size = VARHDRSZ + VARSIZE(settings) + sizeof(ProfileCounts) + sizeof(Triple) * c.ntriples
		+ sizeof(int64) * (c.nusers + c.nitems);
	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("partial data-quality state of " INT64_FORMAT " rows exceeds 1 GB", st->rows),
				 errhint("Disable parallel query for this check (max_parallel_workers_per_gather = 0), or skip the duplicate check.")));
	out = palloc(size);
	SET_VARSIZE(out, size);
	p = VARDATA(out);
	memcpy(p, settings, VARSIZE(settings));
	p += VARSIZE(settings);
	memcpy(p, &c, sizeof(c));
	p += sizeof(c);
	memcpy(p, st->triples, sizeof(Triple) * c.ntriples);
	p += sizeof(Triple) * c.ntriples;
	if (st->want_distinct)
	{
		p = write_ids(p, &st->users);
		write_ids(p, &st->items);
	}
	PG_RETURN_BYTEA_P(out);
}

PG_FUNCTION_INFO_V1(interaction_profile_deserialize);
Datum
interaction_profile_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = profile_context(fcinfo, "interaction_profile_deserialize");
	bytea	   *in = PG_GETARG_BYTEA_P(0);
	const char *p = VARDATA(in);
	const char *end = p + VARSIZE(in) - VARHDRSZ;
	Jsonb	   *settings;
	ProfileCounts c;
	ProfileState *st;
	MemoryContext old;

	settings = palloc(VARSIZE_ANY(p));
	memcpy(settings, p, VARSIZE_ANY(p));
	p += VARSIZE(settings);
	if (p + sizeof(c) > end)
		elog(ERROR, "invalid data-quality state");
	memcpy(&c, p, sizeof(c));
	p += sizeof(c);
	if (p + sizeof(Triple) * c.ntriples + sizeof(int64) * (c.nusers + c.nitems) != end)
		elog(ERROR, "invalid data-quality state");
	st = profile_new(cxt, settings);
	st->rows = c.rows;
	st->null_users = c.null_users;
	st->null_items = c.null_items;
	st->null_weights = c.null_weights;
	st->negative_weights = c.negative_weights;
	st->non_finite_weights = c.non_finite_weights;
	st->null_times = c.null_times;
	st->future = c.future;
	st->newest = c.newest;
	st->oldest = c.oldest;
	memcpy(st->window_rows, c.window_rows, sizeof(c.window_rows));
	old = MemoryContextSwitchTo(cxt);
	if (st->want_duplicates)
	{
		profile_reserve(st, c.ntriples);
		memcpy(st->triples, p, sizeof(Triple) * c.ntriples);
		st->ntriples = c.ntriples;
	}
	p += sizeof(Triple) * c.ntriples;
	for (int64 i = 0; i < c.nusers + c.nitems; i++)
	{
		int64		id;

		memcpy(&id, p, sizeof(int64));
		p += sizeof(int64);
		idmap_add(i < c.nusers ? &st->users : &st->items, id);
	}
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(st);
}

static inline uint64
triple_hash(const Triple *t)
{
	uint64		h = hash_bytes_uint32_extended((uint32) t->user, (uint64) (t->user >> 32));

	h = hash_bytes_uint32_extended((uint32) t->item, h ^ (uint64) (t->item >> 32));
	return hash_bytes_uint32_extended((uint32) t->time, h ^ (uint64) (t->time >> 32));
}

typedef struct DupEntry
{
	uint32		key;			/* low 32 bits of the triple's hash */
	uint32		row;
} DupEntry;

static inline uint64
triple_partition(uint64 h, int bits)
{
	return bits ? h >> (64 - bits) : 0;
}

/*
 * Rows equal to an earlier row in (user, item, time). The rows are first
 * partitioned by the top bits of their hash (two sequential passes), so that
 * each partition's hash table of a few thousand entries stays in cache;
 * triples are compared only when the 32-bit keys match.
 */
static int64
count_duplicates(const Triple *triples, int64 n)
{
	int			bits = 0;
	int64		nparts,
				largest = 0,
				duplicates = 0;
	int64	   *start,
			   *next;
	DupEntry   *entries;
	uint32	   *table;			/* index + 1 in the partition; 0 = empty */
	uint64		size = 16;

	if (n == 0)
		return 0;
	if (n >= (int64) PG_UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rows for the duplicate check: " INT64_FORMAT, n)));
	while (bits < 20 && ((int64) 1 << bits) * 4096 < n)
		bits++;
	nparts = (int64) 1 << bits;
	start = palloc0(sizeof(int64) * (nparts + 1));
	next = palloc(sizeof(int64) * nparts);
	entries = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(DupEntry) * n);

	for (int64 r = 0; r < n; r++)
		start[triple_partition(triple_hash(&triples[r]), bits) + 1]++;
	CHECK_FOR_INTERRUPTS();
	for (int64 p = 0; p < nparts; p++)
	{
		largest = Max(largest, start[p + 1]);
		start[p + 1] += start[p];
		next[p] = start[p];
	}
	for (int64 r = 0; r < n; r++)
	{
		uint64		h = triple_hash(&triples[r]);
		DupEntry   *e = &entries[next[triple_partition(h, bits)]++];

		e->key = (uint32) h;
		e->row = (uint32) r;
	}
	CHECK_FOR_INTERRUPTS();

	while (size < (uint64) largest * 2)
		size <<= 1;
	table = palloc(sizeof(uint32) * size);
	for (int64 p = 0; p < nparts; p++)
	{
		const DupEntry *part = entries + start[p];
		int64		m = start[p + 1] - start[p];
		uint64		mask = 16;

		while (mask < (uint64) m * 2)
			mask <<= 1;
		mask--;
		memset(table, 0, sizeof(uint32) * (mask + 1));
		for (int64 j = 0; j < m; j++)
		{
			uint64		pos = part[j].key & mask;

			for (;;)
			{
				uint32		slot = table[pos];
				const DupEntry *o;

				if (slot == 0)
				{
					table[pos] = (uint32) j + 1;
					break;
				}
				o = &part[slot - 1];
				if (o->key == part[j].key &&
					triples[o->row].user == triples[part[j].row].user &&
					triples[o->row].item == triples[part[j].row].item &&
					triples[o->row].time == triples[part[j].row].time)
				{
					duplicates++;
					break;
				}
				pos = (pos + 1) & mask;
			}
		}
		if ((p & 0xFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	pfree(table);
	pfree(entries);
	pfree(next);
	pfree(start);
	return duplicates;
}

/* Distinct ids of the source that the model does not know. */
static int64
count_unknown(const IdMap *ids, const LoadedModel *lm, bool users)
{
	int64		unknown = 0;

	for (uint64 i = 0; i <= ids->mask; i++)
		if (ids->values[i] >= 0 &&
			(users ? loaded_user(lm, ids->keys[i]) : loaded_item(lm, ids->keys[i])) < 0)
			unknown++;
	return unknown;
}

/* ", "key": "ISO 8601 in UTC" (whatever DateStyle and TimeZone are), or null */
static void
append_timestamp(StringInfo s, const char *key, bool absent, TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[MAXDATELEN + 1];

	appendStringInfo(s, ", \"%s\": ", key);
	if (absent)
	{
		appendStringInfoString(s, "null");
		return;
	}
	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	EncodeDateTime(&tm, fsec, true, 0, "UTC", USE_XSD_DATES, buf);
	appendStringInfo(s, "\"%s\"", buf);
}

PG_FUNCTION_INFO_V1(interaction_profile_final);
Datum
interaction_profile_final(PG_FUNCTION_ARGS)
{
	ProfileState *st;
	StringInfoData s;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (ProfileState *) PG_GETARG_POINTER(0);

	initStringInfo(&s);
	appendStringInfo(&s, "{\"rows\": " INT64_FORMAT ", \"null_user_ids\": " INT64_FORMAT
					 ", \"null_item_ids\": " INT64_FORMAT ", \"null_weights\": " INT64_FORMAT
					 ", \"negative_weights\": " INT64_FORMAT ", \"non_finite_weights\": " INT64_FORMAT
					 ", \"null_timestamps\": " INT64_FORMAT ", \"future_timestamps\": " INT64_FORMAT,
					 st->rows, st->null_users, st->null_items, st->null_weights,
					 st->negative_weights, st->non_finite_weights, st->null_times, st->future);
	append_timestamp(&s, "newest", st->newest == DT_NOBEGIN, st->newest);
	append_timestamp(&s, "oldest", st->oldest == DT_NOEND, st->oldest);
	appendStringInfoString(&s, ", \"window_rows\": [");
	for (int w = 0; w <= st->windows; w++)
		appendStringInfo(&s, "%s" INT64_FORMAT, w ? ", " : "", st->window_rows[w]);
	appendStringInfoChar(&s, ']');
	if (st->want_duplicates)
		appendStringInfo(&s, ", \"duplicate_rows\": " INT64_FORMAT, count_duplicates(st->triples, st->ntriples));
	if (st->want_distinct)
	{
		appendStringInfo(&s, ", \"users\": %d, \"items\": %d", st->users.count, st->items.count);
		if (st->model)
		{
			LoadedModel *lm = model_cache_get(cstring_to_text(st->model));

			if (lm->user_ids)
				appendStringInfo(&s, ", \"unseen_users\": " INT64_FORMAT, count_unknown(&st->users, lm, true));
			appendStringInfo(&s, ", \"unseen_items\": " INT64_FORMAT, count_unknown(&st->items, lm, false));
		}
	}
	appendStringInfoChar(&s, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}
