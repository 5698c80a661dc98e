/*
 * evaluation.c — ranking metrics at K over a recommendation list and a truth
 * set (see doc/evaluation.md for every formula).
 *
 * Both inputs are the caller's queries, run through SPI as the caller (so
 * row-level security holds) and streamed into a DestReceiver: no tuple is
 * copied, and each row costs a few hash probes. Per user we keep two bitmaps
 * over ranks 1..k (recommended, relevant), which is all that precision,
 * recall, NDCG, MAP and MRR need.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "sqlsource.h"
#include "tcop/dest.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/plancache.h"

#define RANKING_MAX_K 10000

static inline uint32
Mix64(uint64 x)
{
	/* splitmix64 finalizer: ids are often sequential, spread them */
	x ^= x >> 30;
	x *= UINT64CONST(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64CONST(0x94d049bb133111eb);
	x ^= x >> 31;
	return (uint32) x;
}

/*
 * (user, item) pairs of the truth and of the recommendations, in one table:
 * each recommendation costs one probe, which both finds a hit and catches a
 * repeated item. At tens of millions of rows every probe is a cache (and TLB)
 * miss, so the number of probes per row is what sets the speed.
 */
#define PAIR_IN_TRUTH 1
#define PAIR_RECOMMENDED 2

typedef struct PairKey
{
	int64		user;
	int64		item;
} PairKey;

typedef struct PairEntry
{
	PairKey		key;
	uint32		hash;
	uint8		flags;
	char		status;
} PairEntry;

#define SH_PREFIX pairset
#define SH_ELEMENT_TYPE PairEntry
#define SH_KEY_TYPE PairKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) Mix64((uint64) (k).user * UINT64CONST(0x9e3779b97f4a7c15) ^ (uint64) (k).item)
#define SH_EQUAL(tb, a, b) ((a).user == (b).user && (a).item == (b).item)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_FILLFACTOR (0.75)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* user id -> dense index; also used as a plain set of item ids */
typedef struct IdEntry
{
	int64		id;
	int32		index;
	char		status;
} IdEntry;

#define SH_PREFIX idmap
#define SH_ELEMENT_TYPE IdEntry
#define SH_KEY_TYPE int64
#define SH_KEY id
#define SH_HASH_KEY(tb, k) Mix64((uint64) (k))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_FILLFACTOR (0.5)		/* short probes: item sets are probed on every row */
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct RankingRun
{
	MemoryContext cxt;
	int			k;
	int			words;			/* uint64 words per user bitmap */
	pairset_hash *pairs;
	idmap_hash *users;
	int64		last_user;		/* rows usually come grouped by user: skip the lookup */
	int32		last_index;
	idmap_hash *truth_items;
	idmap_hash *recommended_items;
	idmap_hash *catalog_items;
	int64	   *user_ids;		/* by index */
	int32	   *truth_count;	/* by index */
	uint64	   *rec_bits;		/* by index * words */
	uint64	   *hit_bits;
	int32		n_users;
	int32		capacity;
	uint64		rows;
} RankingRun;

typedef enum
{
	PHASE_TRUTH,
	PHASE_RECOMMENDATIONS,
	PHASE_CATALOG
} RankingPhase;

typedef struct RankingReceiver
{
	DestReceiver pub;
	RankingRun *run;
	RankingPhase phase;
} RankingReceiver;

static int32
UserIndex(RankingRun *run, int64 user)
{
	bool		found;
	IdEntry    *entry;

	if (user == run->last_user && run->last_index >= 0)
		return run->last_index;
	entry = idmap_insert(run->users, user, &found);

	if (!found)
	{
		if (run->n_users == run->capacity)
		{
			int32		grown = run->capacity * 2;

			run->user_ids = repalloc_huge(run->user_ids, sizeof(int64) * grown);
			run->truth_count = repalloc_huge(run->truth_count, sizeof(int32) * grown);
			run->rec_bits = repalloc_huge(run->rec_bits, sizeof(uint64) * run->words * grown);
			run->hit_bits = repalloc_huge(run->hit_bits, sizeof(uint64) * run->words * grown);
			run->capacity = grown;
		}
		entry->index = run->n_users++;
		run->user_ids[entry->index] = user;
		run->truth_count[entry->index] = 0;
		memset(run->rec_bits + (Size) entry->index * run->words, 0, sizeof(uint64) * run->words);
		memset(run->hit_bits + (Size) entry->index * run->words, 0, sizeof(uint64) * run->words);
	}
	run->last_user = user;
	run->last_index = entry->index;
	return entry->index;
}

static void
NotNull(TupleTableSlot *slot, int column, const char *what, const char *name)
{
	if (slot->tts_isnull[column])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL in column \"%s\"", what, name)));
}

static bool
ReceiveRankingRow(TupleTableSlot *slot, DestReceiver *self)
{
	RankingReceiver *receiver = (RankingReceiver *) self;
	RankingRun *run = receiver->run;
	bool		found;

	if ((++run->rows & 0xFFFF) == 0)
		CHECK_FOR_INTERRUPTS();
	slot_getallattrs(slot);

	if (receiver->phase == PHASE_TRUTH)
	{
		PairKey		key;
		PairEntry  *pair;

		NotNull(slot, 0, "truth", "user_id");
		NotNull(slot, 1, "truth", "item_id");
		key.user = DatumGetInt64(slot->tts_values[0]);
		key.item = DatumGetInt64(slot->tts_values[1]);
		pair = pairset_insert(run->pairs, key, &found);
		pair->flags = PAIR_IN_TRUTH;
		if (!found)				/* binary relevance: a repeated truth row counts once */
		{
			/* UserIndex may move truth_count: index it only afterwards */
			int32		user = UserIndex(run, key.user);

			run->truth_count[user]++;
			idmap_insert(run->truth_items, key.item, &found);
		}
	}
	else if (receiver->phase == PHASE_RECOMMENDATIONS)
	{
		PairKey		key;
		PairEntry  *pair;
		int32		rank;
		int32		user;
		uint64		bit;
		Size		word;

		NotNull(slot, 0, "recommendations", "user_id");
		NotNull(slot, 1, "recommendations", "item_id");
		NotNull(slot, 2, "recommendations", "rank");
		key.user = DatumGetInt64(slot->tts_values[0]);
		key.item = DatumGetInt64(slot->tts_values[1]);
		rank = DatumGetInt32(slot->tts_values[2]);
		if (rank < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("rank must be at least 1, not %d (user %lld, item %lld)",
							rank, (long long) key.user, (long long) key.item)));
		if (rank > run->k)
			return true;

		user = UserIndex(run, key.user);
		word = (Size) user * run->words + (rank - 1) / 64;
		bit = UINT64CONST(1) << ((rank - 1) % 64);
		if (run->rec_bits[word] & bit)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("rank %d appears twice in the recommendations for user %lld",
							rank, (long long) key.user)));
		pair = pairset_insert(run->pairs, key, &found);
		if (!found)
			pair->flags = 0;
		if (pair->flags & PAIR_RECOMMENDED)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("item %lld is recommended twice to user %lld",
							(long long) key.item, (long long) key.user)));
		pair->flags |= PAIR_RECOMMENDED;
		run->rec_bits[word] |= bit;
		if (pair->flags & PAIR_IN_TRUTH)
			run->hit_bits[word] |= bit;
		idmap_insert(run->recommended_items, key.item, &found);
	}
	else
	{
		NotNull(slot, 0, "catalog", "item_id");
		idmap_insert(run->catalog_items, DatumGetInt64(slot->tts_values[0]), &found);
	}
	return true;
}

static void
ReceiverStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
ReceiverShutdown(DestReceiver *self)
{
}

static void
ReceiverDestroy(DestReceiver *self)
{
}

/* The planner's row estimate for a query: sizes the hash table once, not by doubling. */
static double
EstimatedRows(const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);
	CachedPlan *cplan;
	double		rows = 0;

	if (plan == NULL)
		return 0;				/* the query itself will report the error */
	cplan = SPI_plan_get_cached_plan(plan);
	if (cplan != NULL && list_length(cplan->stmt_list) == 1)
	{
		PlannedStmt *stmt = linitial_node(PlannedStmt, cplan->stmt_list);

		if (stmt->planTree != NULL)
			rows = stmt->planTree->plan_rows;
	}
	if (cplan != NULL)
		ReleaseCachedPlan(cplan, NULL);	/* an unsaved plan is not owned by a resource owner */
	SPI_freeplan(plan);
	return rows;
}

static void
StreamQuery(RankingRun *run, RankingPhase phase, const char *sql)
{
	RankingReceiver receiver;
	SPIExecuteOptions options;
	int			rc;

	receiver.pub.receiveSlot = ReceiveRankingRow;
	receiver.pub.rStartup = ReceiverStartup;
	receiver.pub.rShutdown = ReceiverShutdown;
	receiver.pub.rDestroy = ReceiverDestroy;
	receiver.pub.mydest = DestNone;
	receiver.run = run;
	receiver.phase = phase;

	memset(&options, 0, sizeof(options));
	options.read_only = true;
	options.dest = (DestReceiver *) &receiver;
	rc = SPI_execute_extended(sql, &options);
	/* rows sent to our receiver are reported as a utility result */
	if (rc != SPI_OK_SELECT && rc != SPI_OK_UTILITY)
		elog(ERROR, "ranking metrics query failed: %s", SPI_result_code_string(rc));
}

static void
RequireArguments(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recommendations, truth and k must not be NULL")));
}

static RankingRun *
RunRanking(text *recommendations, text *truth, int32 k, text *catalog)
{
	RankingRun *run;
	MemoryContext old;

	if (k < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be at least 1, not %d", k)));
	if (k > RANKING_MAX_K)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("k cannot exceed %d", RANKING_MAX_K)));

	/* everything lives in one context under the caller's: freed on error too */
	run = palloc0(sizeof(RankingRun));
	run->cxt = AllocSetContextCreate(CurrentMemoryContext, "ranking metrics", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(run->cxt);
	run->k = k;
	run->words = (k + 63) / 64;
	run->capacity = 1024;
	run->pairs = pairset_create(run->cxt, 1024, NULL);
	run->users = idmap_create(run->cxt, 1024, NULL);
	run->last_index = -1;
	run->truth_items = idmap_create(run->cxt, 1024, NULL);
	run->recommended_items = idmap_create(run->cxt, 1024, NULL);
	run->user_ids = MemoryContextAllocHuge(run->cxt, sizeof(int64) * run->capacity);
	run->truth_count = MemoryContextAllocHuge(run->cxt, sizeof(int32) * run->capacity);
	run->rec_bits = MemoryContextAllocHuge(run->cxt, sizeof(uint64) * run->words * run->capacity);
	run->hit_bits = MemoryContextAllocHuge(run->cxt, sizeof(uint64) * run->words * run->capacity);
	MemoryContextSwitchTo(old);

	SPI_connect();
	old = MemoryContextSwitchTo(run->cxt);
	{
		static const char *const truth_columns[] = {"user_id", "item_id"};
		static const char *const rec_columns[] = {"user_id", "item_id", "rank"};
		static const char *const catalog_columns[] = {"item_id"};
		char	   *truth_from = SourceAsFromItem(text_to_cstring(truth), "t");
		char	   *rec_from = SourceAsFromItem(text_to_cstring(recommendations), "r");

		char	   *truth_sql;
		char	   *rec_sql;
		double		expected_pairs;

		CheckSourceColumns(truth_from, "truth", truth_columns, 2);
		CheckSourceColumns(rec_from, "recommendations", rec_columns, 3);
		truth_sql = psprintf("SELECT t.user_id::pg_catalog.int8, t.item_id::pg_catalog.int8 FROM %s", truth_from);
		rec_sql = psprintf("SELECT r.user_id::pg_catalog.int8, r.item_id::pg_catalog.int8, r.rank::pg_catalog.int4 FROM %s",
						   rec_from);

		/*
		 * Size the pair table for both inputs at once: growing by doubling
		 * would fault in fresh memory a dozen times. Recommendations beyond
		 * rank k are not stored, hence the cap. A wrong estimate only costs
		 * a resize.
		 */
		expected_pairs = EstimatedRows(truth_sql) + EstimatedRows(rec_sql);
		expected_pairs = Min(expected_pairs, (double) (PG_INT32_MAX / 4));
		if (expected_pairs > 1024)
		{
			MemoryContext saved = MemoryContextSwitchTo(run->cxt);

			pairset_destroy(run->pairs);
			run->pairs = pairset_create(run->cxt, (uint32) expected_pairs, NULL);
			MemoryContextSwitchTo(saved);
		}
		StreamQuery(run, PHASE_TRUTH, truth_sql);
		StreamQuery(run, PHASE_RECOMMENDATIONS, rec_sql);
		if (catalog != NULL)
		{
			char	   *catalog_from = SourceAsFromItem(text_to_cstring(catalog), "c");

			CheckSourceColumns(catalog_from, "catalog", catalog_columns, 1);
			run->catalog_items = idmap_create(run->cxt, 1024, NULL);
			StreamQuery(run, PHASE_CATALOG,
						psprintf("SELECT c.item_id::pg_catalog.int8 FROM %s", catalog_from));
		}
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	return run;
}

typedef struct UserMetrics
{
	int32		hits;
	double		precision;
	double		recall;
	double		ndcg;
	double		average_precision;
	double		reciprocal_rank;
} UserMetrics;

static void
ComputeUserMetrics(const RankingRun *run, int32 user, const double *ideal_dcg, UserMetrics *m)
{
	const uint64 *hits = run->hit_bits + (Size) user * run->words;
	int32		relevant = run->truth_count[user];
	int32		cutoff = Min(relevant, run->k);
	double		dcg = 0.0;
	double		ap = 0.0;

	memset(m, 0, sizeof(*m));
	for (int w = 0; w < run->words; w++)
	{
		uint64		bits = hits[w];

		while (bits)
		{
			int			rank = w * 64 + pg_rightmost_one_pos64(bits) + 1;

			bits &= bits - 1;
			m->hits++;
			dcg += 1.0 / log2(rank + 1.0);
			ap += (double) m->hits / rank;
			if (m->hits == 1)
				m->reciprocal_rank = 1.0 / rank;
		}
	}
	m->precision = (double) m->hits / run->k;
	m->recall = (double) m->hits / relevant;
	m->ndcg = dcg / ideal_dcg[cutoff];
	m->average_precision = ap / cutoff;
}

static double *
IdealDcg(int k)
{
	double	   *ideal = palloc(sizeof(double) * (k + 1));

	ideal[0] = 0.0;
	for (int i = 1; i <= k; i++)
		ideal[i] = ideal[i - 1] + 1.0 / log2(i + 1.0);
	return ideal;
}

PG_FUNCTION_INFO_V1(ranking_metrics);
Datum
ranking_metrics(PG_FUNCTION_ARGS)
{
	int32		k;
	RankingRun *run;
	double	   *ideal;
	double		sums[6] = {0};
	int64		users = 0;
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {0};
	double		universe;

	RequireArguments(fcinfo);
	k = PG_GETARG_INT32(2);
	run = RunRanking(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), k,
								 PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3));
	ideal = IdealDcg(k);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	for (int32 u = 0; u < run->n_users; u++)
	{
		UserMetrics m;

		if (run->truth_count[u] == 0)
			continue;
		ComputeUserMetrics(run, u, ideal, &m);
		users++;
		sums[0] += m.precision;
		sums[1] += m.recall;
		sums[2] += m.ndcg;
		sums[3] += m.average_precision;
		sums[4] += m.hits > 0;
		sums[5] += m.reciprocal_rank;
	}

	values[0] = Int64GetDatum(users);
	for (int i = 0; i < 6; i++)
	{
		nulls[1 + i] = users == 0;
		values[1 + i] = Float8GetDatum(users ? sums[i] / users : 0.0);
	}
	if (run->catalog_items != NULL)
		universe = run->catalog_items->members;
	else
	{
		/* distinct items of truth ∪ recommendations */
		idmap_iterator it;
		IdEntry    *entry;

		universe = run->truth_items->members;
		idmap_start_iterate(run->recommended_items, &it);
		while ((entry = idmap_iterate(run->recommended_items, &it)) != NULL)
			if (idmap_lookup(run->truth_items, entry->id) == NULL)
				universe++;
	}
	nulls[7] = universe == 0;
	values[7] = Float8GetDatum(universe ? run->recommended_items->members / universe : 0.0);

	MemoryContextDelete(run->cxt);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

PG_FUNCTION_INFO_V1(ranking_metrics_by_user);
Datum
ranking_metrics_by_user(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		k;
	RankingRun *run;
	double	   *ideal;

	RequireArguments(fcinfo);
	k = PG_GETARG_INT32(2);
	InitMaterializedSRF(fcinfo, 0);
	run = RunRanking(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), k, NULL);
	ideal = IdealDcg(k);
	for (int32 u = 0; u < run->n_users; u++)
	{
		UserMetrics m;
		Datum		values[8];
		bool		nulls[8] = {0};

		if (run->truth_count[u] == 0)
			continue;
		ComputeUserMetrics(run, u, ideal, &m);
		values[0] = Int64GetDatum(run->user_ids[u]);
		values[1] = Int32GetDatum(run->truth_count[u]);
		values[2] = Int32GetDatum(m.hits);
		values[3] = Float8GetDatum(m.precision);
		values[4] = Float8GetDatum(m.recall);
		values[5] = Float8GetDatum(m.ndcg);
		values[6] = Float8GetDatum(m.average_precision);
		values[7] = Float8GetDatum(m.reciprocal_rank);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextDelete(run->cxt);
	return (Datum) 0;
}
