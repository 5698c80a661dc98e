/*
 * distributed.c — ALS and item-kNN trained from a Citus table distributed by
 * user_id, without gathering its rows on the coordinator.
 *
 * The work that depends on a user's rows runs on the node that holds them:
 * one query reads the table where it lives (row-level security applies there,
 * as the caller) and each node keeps its users' rows, compacted to a CSR
 * matrix, and their factors in the memory of its backend until the end of the
 * transaction. The coordinator keeps what the model needs of the item side:
 * item ids, item popularity, the item factors and the conjugate-gradient
 * vectors of the item half.
 *
 * Per iteration, as in als.c (same seed, same model to float rounding):
 *   round U: the item factors Y go to every node; each node solves its users
 *            (cg_steps of CG from their current factors) and returns XᵀX and,
 *            per item, Σ_u (c - (c-1) xᵤᵀyᵢ) xᵤ over its users;
 *   round P: cg_steps times, the CG directions p go out and each node returns
 *            Σ_u (c-1) (xᵤᵀpᵢ) xᵤ per item; the coordinator runs the item CG.
 * Data moved per round: nodes × items × factors floats each way.
 *
 * Item-kNN (itemknn_fit_distributed, at the end): a setup round returns each
 * node's popularity and Σ w² per item; then range by range of items, each node
 * returns its users' sparse co-occurrence sums of the range's rows, and the
 * coordinator adds them, keeps each item's neighbours and frees the range.
 *
 * Plumbing (Citus 11+ with metadata on every node):
 *  - personalize.train_runs is a reference table: the run's row is written in
 *    this transaction, so Citus sends every later query that joins it over the
 *    connection that wrote its copy on each node: one backend per node holds
 *    the node's state, whatever the connection pool does.
 *  - the reading query hands back a few rows of one shard per node (anchors);
 *    a round is a query with the payload as a parameter that reaches each node
 *    through its anchors (pruned by user_id, found by ctid): one task per node.
 *  - a node that does not answer (its anchor rows changed meanwhile) is an
 *    error (40001), never a smaller model.
 */
#include "postgres.h"

#include <cblas.h>
#include <math.h>

#include "access/xact.h"
#include "als.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "model.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#define TRAIN_MAGIC 0x50545231	/* "PTR1", native byte order */
#define ANCHORS_PER_NODE 8
#define COLLECT_CHUNK_BYTES (8 * 1024 * 1024)

typedef enum TrainCommand
{
	CMD_SUMMARY = 1,
	CMD_SETUP,
	CMD_USERS,
	CMD_PRODUCT,
	CMD_LOSS,
	CMD_COLLECT,
	CMD_KNN_SETUP,
	CMD_KNN_RANGE
} TrainCommand;

/* ---------------------------------------------------------------- wire format */

typedef struct Reader
{
	const char *p;
	const char *end;
} Reader;

static void
rd(Reader *r, void *out, Size len)
{
	if ((Size) (r->end - r->p) < len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("truncated training message")));
	memcpy(out, r->p, len);
	r->p += len;
}

static const char *
rd_ref(Reader *r, Size len)
{
	const char *at = r->p;

	if ((Size) (r->end - r->p) < len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("truncated training message")));
	r->p += len;
	return at;
}

static int32
rd_int32(Reader *r)
{
	int32		v;

	rd(r, &v, sizeof(v));
	return v;
}

static int64
rd_int64(Reader *r)
{
	int64		v;

	rd(r, &v, sizeof(v));
	return v;
}

static double
rd_double(Reader *r)
{
	double		v;

	rd(r, &v, sizeof(v));
	return v;
}

static Reader
reader_of(bytea *b)
{
	Reader		r;
	uint32		magic;

	r.p = VARDATA_ANY(b);
	r.end = r.p + VARSIZE_ANY_EXHDR(b);
	rd(&r, &magic, sizeof(magic));
	if (magic != TRAIN_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("not a training message of this version and byte order")));
	return r;
}

/* A bytea being written: the varlena header is reserved and set by msg_finish. */
static StringInfo
msg_start(void)
{
	StringInfo	s = makeStringInfo();
	uint32		magic = TRAIN_MAGIC;

	appendStringInfoSpaces(s, VARHDRSZ);
	appendBinaryStringInfo(s, (char *) &magic, sizeof(magic));
	return s;
}

static void
put(StringInfo s, const void *data, Size len)
{
	if ((Size) s->len + len >= MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training message exceeds 1 GB"),
				 errhint("Use fewer factors or fewer items.")));
	appendBinaryStringInfo(s, data, len);
}

static void
put_int32(StringInfo s, int32 v)
{
	put(s, &v, sizeof(v));
}

static void
put_int64(StringInfo s, int64 v)
{
	put(s, &v, sizeof(v));
}

static void
put_double(StringInfo s, double v)
{
	put(s, &v, sizeof(v));
}

static bytea *
msg_finish(StringInfo s)
{
	SET_VARSIZE(s->data, s->len);
	return (bytea *) s->data;
}

/* ---------------------------------------------------------------- node side */

/* One training run's state in a node's backend; lives until the transaction ends. */
typedef struct NodeRun
{
	int64		run;
	Oid			role;			/* whose rows it holds: only that role may use it */
	int64		token;			/* names this backend's answers */
	MemoryContext cxt;
	int64		answered;		/* last round answered */
	InteractionState *triples;	/* while reading rows */
	Oid			anchor_shard;	/* the first shard this backend read */
	int			anchors;		/* rows of it handed out as anchors */
	Interactions *d;			/* local users, CSR with global item indexes after setup */
	int32		nitems;			/* global */
	int			f;
	int			cg_steps;
	int			nthreads;
	float		alpha;
	float		reg;
	float	   *X;				/* local users x f */
	bool		ready;			/* set up (ALS or item-kNN) */
	int64	   *t_indptr;		/* item-kNN: CSR by global item, local users ascending */
	int32	   *t_users;
	float	   *t_weights;
	struct NodeRun *next;
} NodeRun;

/*
 * The start of a node's setup answer (read_setup on the coordinator): its
 * token, pairs, users' counts and item popularity by global item index.
 */
static StringInfo
setup_answer_start(NodeRun *nr, const int32 *item_global, int32 nitems)
{
	Interactions *d = nr->d;
	float	   *pop = palloc0(sizeof(float) * Max(nitems, 1));
	StringInfo	out = msg_start();

	for (int32 i = 0; i < d->nitems; i++)
		pop[item_global[i]] = d->item_pop[i];
	put_int64(out, nr->token);
	put_int64(out, d->nnz);
	for (int32 u = 0; u < d->nusers; u++)
		put_int32(out, (int32) (d->indptr[u + 1] - d->indptr[u]));
	put(out, pop, sizeof(float) * nitems);
	pfree(pop);
	return out;
}

static NodeRun *node_runs = NULL;
static bool node_callback_registered = false;

static void
node_runs_release(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			while (node_runs != NULL)
			{
				NodeRun    *next = node_runs->next;

				MemoryContextDelete(node_runs->cxt);
				node_runs = next;
			}
			break;
		default:
			break;
	}
}

static NodeRun *
node_run_find(int64 run, bool create)
{
	NodeRun    *nr;
	MemoryContext cxt;

	for (nr = node_runs; nr != NULL; nr = nr->next)
		if (nr->run == run)
		{
			if (nr->role != GetUserId())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("training run " INT64_FORMAT " belongs to another role", run)));
			return nr;
		}
	if (!create)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("training run " INT64_FORMAT " has no state in this backend", run),
				 errdetail("Distributed training keeps each node's part in the backend of the transaction's connection to it."),
				 errhint("Run personalize.train in its own transaction.")));
	if (!node_callback_registered)
	{
		RegisterXactCallback(node_runs_release, NULL);
		node_callback_registered = true;
	}
	cxt = AllocSetContextCreate(TopMemoryContext, "personalize training node", ALLOCSET_DEFAULT_SIZES);
	nr = MemoryContextAllocZero(cxt, sizeof(NodeRun));
	nr->run = run;
	nr->role = GetUserId();
	nr->cxt = cxt;
	nr->answered = -1;
	if (!pg_strong_random(&nr->token, sizeof(nr->token)))
		nr->token = (int64) MyProcPid << 32 ^ (int64) GetCurrentTimestamp();
	nr->triples = interactions_state_new(cxt);
	nr->next = node_runs;
	node_runs = nr;
	return nr;
}

/*
 * personalize.train_absorb(run, shard, user_id, item_id, weight): keeps the
 * row in the run's state of this backend. Returns the backend's token for the
 * first rows of the first shard it reads (NULL for the others): the
 * coordinator reaches this backend again through those rows (user_id, ctid).
 */
PG_FUNCTION_INFO_V1(train_absorb);
Datum
train_absorb(PG_FUNCTION_ARGS)
{
	NodeRun    *nr;
	Oid			shard;
	InteractionState *st;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("run and shard must not be NULL")));
	nr = node_run_find(PG_GETARG_INT64(0), true);
	shard = PG_GETARG_OID(1);
	st = nr->triples;
	if (st == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("training run " INT64_FORMAT " is past reading rows", nr->run)));
	if (PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
	{
		st->null_rows++;
		if (PG_ARGISNULL(2))
			PG_RETURN_NULL();	/* an anchor row needs a user_id to be routed by */
	}
	else
		interactions_add(st, PG_GETARG_INT64(2), PG_GETARG_INT64(3), PG_GETARG_FLOAT4(4));
	if (!OidIsValid(nr->anchor_shard))
		nr->anchor_shard = shard;
	if (shard == nr->anchor_shard && nr->anchors < ANCHORS_PER_NODE)
	{
		nr->anchors++;
		PG_RETURN_INT64(nr->token);
	}
	PG_RETURN_NULL();
}

static int32
index_of(const int64 *sorted, int32 n, int64 id)
{
	const int64 *hit = bsearch(&id, sorted, n, sizeof(int64), cmp_int64);

	if (hit == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id " INT64_FORMAT " is missing from the coordinator's list", id)));
	return (int32) (hit - sorted);
}

static bytea *
node_summary(NodeRun *nr)
{
	StringInfo	out;
	Interactions *d;
	MemoryContext old = MemoryContextSwitchTo(nr->cxt);

	d = interactions_build(nr->triples);	/* consumes the triples */
	nr->triples = NULL;
	nr->d = d;
	MemoryContextSwitchTo(old);

	out = msg_start();
	put_int64(out, nr->token);
	put_int64(out, d->rows);
	put_int64(out, d->null_rows);
	put_int32(out, d->nusers);
	put_int32(out, d->nitems);
	put(out, d->user_ids, sizeof(int64) * d->nusers);
	put(out, d->item_ids, sizeof(int64) * d->nitems);
	return msg_finish(out);
}

/*
 * The local CSR matrix with the coordinator's global item indexes; returns
 * the global index of each local item. Ids are ascending on both sides: the
 * map keeps the order, so CSR rows stay sorted.
 */
static int32 *
node_globalize_items(NodeRun *nr, const int64 *item_ids, int32 nitems)
{
	Interactions *d = nr->d;
	int32	   *item_global = palloc(sizeof(int32) * Max(d->nitems, 1));

	for (int32 i = 0; i < d->nitems; i++)
		item_global[i] = index_of(item_ids, nitems, d->item_ids[i]);
	for (int64 j = 0; j < d->nnz; j++)
		d->indices[j] = item_global[d->indices[j]];
	nr->ready = true;
	return item_global;
}

static bytea *
node_setup(NodeRun *nr, Reader *r)
{
	Interactions *d = nr->d;
	uint64		seed;
	int32		nusers,
				nitems;
	const int64 *user_ids,
			   *item_ids;
	int32	   *item_global,
			   *user_global;
	pg_prng_state rng;
	Size		pos = 0;
	StringInfo	out;
	MemoryContext old;

	if (d == NULL)
		elog(ERROR, "training run " INT64_FORMAT " was not summarised", nr->run);
	nr->f = rd_int32(r);
	nr->cg_steps = rd_int32(r);
	nr->nthreads = rd_int32(r);
	nr->alpha = (float) rd_double(r);
	nr->reg = (float) rd_double(r);
	rd(r, &seed, sizeof(seed));
	nusers = rd_int32(r);
	nitems = rd_int32(r);
	/* the coordinator checked the options; a payload from elsewhere is checked again */
	if (nr->f < 1 || nr->f > 1024 || nr->cg_steps < 1 || nr->cg_steps > 1024 ||
		nr->nthreads < 1 || nr->nthreads > 16 || !(nr->alpha >= 0) || isinf(nr->alpha) ||
		!(nr->reg >= 0) || isinf(nr->reg) || nusers < 0 || nitems < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid training setup message")));
	user_ids = (const int64 *) rd_ref(r, sizeof(int64) * nusers);
	item_ids = (const int64 *) rd_ref(r, sizeof(int64) * nitems);
	nr->nitems = nitems;

	item_global = node_globalize_items(nr, item_ids, nitems);
	user_global = palloc(sizeof(int32) * Max(d->nusers, 1));
	for (int32 u = 0; u < d->nusers; u++)
		user_global[u] = index_of(user_ids, nusers, d->user_ids[u]);

	/* starting factors: the user's slice of the seeded stream, as single-node training draws it */
	old = MemoryContextSwitchTo(nr->cxt);
	nr->X = MemoryContextAllocHuge(nr->cxt, sizeof(float) * Max((Size) d->nusers * nr->f, 1));
	MemoryContextSwitchTo(old);
	pg_prng_seed(&rng, seed);
	for (int32 u = 0; u < d->nusers; u++)
	{
		Size		start = (Size) user_global[u] * nr->f;

		if ((u & 0x3FFF) == 0)
			CHECK_FOR_INTERRUPTS();
		for (; pos < start; pos++)
			(void) pg_prng_double(&rng);
		for (int a = 0; a < nr->f; a++, pos++)
			nr->X[(Size) u * nr->f + a] = (float) (pg_prng_double(&rng) * 0.01);
	}

	out = setup_answer_start(nr, item_global, nitems);
	pfree(item_global);
	pfree(user_global);
	return msg_finish(out);
}

/* Σ_u xᵀ(YᵀY)x + Σ_pairs (c (1 - s)² - s²), and Σ_u ‖x‖², for the loss of als.c */
static void
node_loss_terms(NodeRun *nr, const float *Y, double *loss, double *norms)
{
	Interactions *d = nr->d;
	int			f = nr->f;
	float	   *G = palloc(sizeof(float) * f * f);
	float	   *tmp = palloc(sizeof(float) * f);

	als_gram(Y, nr->nitems, f, 0.0f, G);
	*loss = 0;
	*norms = 0;
	for (int32 u = 0; u < d->nusers; u++)
	{
		const float *x = nr->X + (Size) u * f;

		for (int a = 0; a < f; a++)
			tmp[a] = vec_dot(f, G + a * f, x);
		*loss += vec_dot(f, tmp, x);
		*norms += vec_dot(f, x, x);
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
		{
			double		s = vec_dot(f, x, Y + (Size) d->indices[j] * f);
			double		c = 1.0 + nr->alpha * d->weights[j];

			*loss += c * (1 - s) * (1 - s) - s * s;
		}
	}
	pfree(G);
	pfree(tmp);
}

MODEL_KERNEL static bytea *
node_users(NodeRun *nr, Reader *r)
{
	Interactions *d = nr->d;
	int			f = nr->f;
	int32		want_loss = rd_int32(r);
	const float *Y = (const float *) rd_ref(r, sizeof(float) * (Size) nr->nitems * f);
	float	   *gram = palloc(sizeof(float) * f * f);
	float	   *xtx;
	double		loss = 0,
				norms = 0;
	StringInfo	out;
	Size		s_at;
	float	   *s;

	if (want_loss)
		node_loss_terms(nr, Y, &loss, &norms);
	als_gram(Y, nr->nitems, f, nr->reg, gram);
	als_solve_rows(f, nr->cg_steps, nr->alpha, gram, Y, nr->X, d->indptr, d->indices, d->weights,
				   d->nusers, nr->nthreads);
	pfree(gram);

	out = msg_start();
	put_int64(out, nr->token);
	put_double(out, loss);
	put_double(out, norms);
	/* XᵀX of this node's users (upper triangle as ssyrk leaves it, mirrored) */
	xtx = palloc0(sizeof(float) * f * f);
	if (d->nusers > 0)
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, f, d->nusers, 1.0f, nr->X, f, 0.0f, xtx, f);
	for (int a = 0; a < f; a++)
		for (int b = 0; b < a; b++)
			xtx[a * f + b] = xtx[b * f + a];
	put(out, xtx, sizeof(float) * f * f);
	pfree(xtx);

	/* per item: Σ_u (c - (c-1) xᵤᵀyᵢ) xᵤ, written in place in the message */
	s_at = out->len;
	enlargeStringInfo(out, sizeof(float) * (Size) nr->nitems * f);
	memset(out->data + s_at, 0, sizeof(float) * (Size) nr->nitems * f);
	out->len += sizeof(float) * (Size) nr->nitems * f;
	s = (float *) (out->data + s_at);
	for (int32 u = 0; u < d->nusers; u++)
	{
		const float *x = nr->X + (Size) u * f;

		if ((u & 0x3FFF) == 0)
			CHECK_FOR_INTERRUPTS();
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
		{
			int32		i = d->indices[j];
			float		c = 1.0f + nr->alpha * d->weights[j];

			vec_axpy(f, c - (c - 1.0f) * vec_dot(f, Y + (Size) i * f, x), x, s + (Size) i * f);
		}
	}
	return msg_finish(out);
}

MODEL_KERNEL static bytea *
node_product(NodeRun *nr, Reader *r)
{
	Interactions *d = nr->d;
	int			f = nr->f;
	const float *P = (const float *) rd_ref(r, sizeof(float) * (Size) nr->nitems * f);
	StringInfo	out = msg_start();
	Size		t_at;
	float	   *t;

	put_int64(out, nr->token);
	t_at = out->len;
	enlargeStringInfo(out, sizeof(float) * (Size) nr->nitems * f);
	memset(out->data + t_at, 0, sizeof(float) * (Size) nr->nitems * f);
	out->len += sizeof(float) * (Size) nr->nitems * f;
	t = (float *) (out->data + t_at);
	for (int32 u = 0; u < d->nusers; u++)
	{
		const float *x = nr->X + (Size) u * f;

		if ((u & 0x3FFF) == 0)
			CHECK_FOR_INTERRUPTS();
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
		{
			int32		i = d->indices[j];
			float		c1 = nr->alpha * d->weights[j];

			vec_axpy(f, c1 * vec_dot(f, x, P + (Size) i * f), x, t + (Size) i * f);
		}
	}
	return msg_finish(out);
}

static bytea *
node_loss(NodeRun *nr, Reader *r)
{
	const float *Y = (const float *) rd_ref(r, sizeof(float) * (Size) nr->nitems * nr->f);
	double		loss,
				norms;
	StringInfo	out;

	node_loss_terms(nr, Y, &loss, &norms);
	out = msg_start();
	put_int64(out, nr->token);
	put_double(out, loss);
	put_double(out, norms);
	return msg_finish(out);
}

/* The node's users (ascending) in chunks: their seen items and weights, and factors. */
static List *
node_collect(NodeRun *nr)
{
	Interactions *d = nr->d;
	int			f = nr->f;
	List	   *chunks = NIL;
	int32		u = 0;

	while (u < d->nusers || chunks == NIL)
	{
		int32		first = u;
		int64		nnz = 0;
		Size		bytes = 0;
		StringInfo	out;

		while (u < d->nusers)
		{
			int64		len = d->indptr[u + 1] - d->indptr[u];
			Size		more = len * (sizeof(int32) + sizeof(float)) + sizeof(float) * f;

			if (u > first && bytes + more > COLLECT_CHUNK_BYTES)
				break;
			bytes += more;
			nnz += len;
			u++;
		}
		out = msg_start();
		put_int64(out, nr->token);
		put_int32(out, first);
		put_int32(out, u - first);
		put_int64(out, nnz);
		put(out, d->indices + d->indptr[first], sizeof(int32) * nnz);
		put(out, d->weights + d->indptr[first], sizeof(float) * nnz);
		if (f > 0)
			put(out, nr->X + (Size) first * f, sizeof(float) * (Size) (u - first) * f);
		chunks = lappend(chunks, msg_finish(out));
	}
	return chunks;
}

/*
 * item-kNN setup: global item indexes, the local columns (CSR by global item,
 * local users ascending) and, per global item, this node's popularity and
 * Σ_u w² (the square of its part of the item's norm, as itemknn.c sums it).
 */
static bytea *
node_knn_setup(NodeRun *nr, Reader *r)
{
	Interactions *d = nr->d;
	int32		nitems = rd_int32(r);
	const int64 *item_ids;
	int32	   *item_global;
	double	   *squares;
	int64	   *fill;
	StringInfo	out;

	if (nitems < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid training setup message")));
	item_ids = (const int64 *) rd_ref(r, sizeof(int64) * nitems);
	nr->nitems = nitems;
	item_global = node_globalize_items(nr, item_ids, nitems);

	nr->t_indptr = MemoryContextAllocHuge(nr->cxt, sizeof(int64) * ((Size) nitems + 1));
	nr->t_users = MemoryContextAllocHuge(nr->cxt, sizeof(int32) * Max(d->nnz, 1));
	nr->t_weights = MemoryContextAllocHuge(nr->cxt, sizeof(float) * Max(d->nnz, 1));
	memset(nr->t_indptr, 0, sizeof(int64) * ((Size) nitems + 1));
	for (int64 j = 0; j < d->nnz; j++)
		nr->t_indptr[d->indices[j] + 1]++;
	for (int32 i = 0; i < nitems; i++)
		nr->t_indptr[i + 1] += nr->t_indptr[i];
	fill = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(nitems, 1));
	memcpy(fill, nr->t_indptr, sizeof(int64) * nitems);
	for (int32 u = 0; u < d->nusers; u++)
	{
		if ((u & 0x3FFF) == 0)
			CHECK_FOR_INTERRUPTS();
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
		{
			int64		at = fill[d->indices[j]]++;

			nr->t_users[at] = u;
			nr->t_weights[at] = d->weights[j];
		}
	}
	pfree(fill);

	squares = palloc0(sizeof(double) * Max(nitems, 1));
	for (int32 i = 0; i < nitems; i++)
		for (int64 a = nr->t_indptr[i]; a < nr->t_indptr[i + 1]; a++)
			squares[i] += (double) nr->t_weights[a] * nr->t_weights[a];

	out = setup_answer_start(nr, item_global, nitems);
	put(out, squares, sizeof(double) * nitems);
	pfree(squares);
	pfree(item_global);
	return msg_finish(out);
}

/*
 * Rows lo..hi-1 of this node's part of the item-item co-occurrences:
 * Σ_u w_ui w_uj over its users, for every j that co-occurs with i (j = i
 * left out), summed in float in the order of itemknn.c. Answer: the count of
 * each row, then each row's item indexes and sums.
 */
MODEL_KERNEL static bytea *
node_knn_range(NodeRun *nr, Reader *r)
{
	Interactions *d = nr->d;
	int32		lo = rd_int32(r),
				hi = rd_int32(r);
	float	   *acc;
	bool	   *seen;
	int32	   *touched,
			   *counts;
	float	   *values;
	Size		counts_at;
	StringInfo	out;

	if (lo < 0 || hi < lo || hi > nr->nitems)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid item range %d..%d of %d items", lo, hi, nr->nitems)));
	acc = palloc0(sizeof(float) * Max(nr->nitems, 1));
	seen = palloc0(sizeof(bool) * Max(nr->nitems, 1));
	touched = palloc(sizeof(int32) * Max(nr->nitems, 1));
	values = palloc(sizeof(float) * Max(nr->nitems, 1));
	counts = palloc(sizeof(int32) * Max(hi - lo, 1));

	out = msg_start();
	put_int64(out, nr->token);
	put_int32(out, lo);
	put_int32(out, hi);
	counts_at = out->len;
	put(out, counts, sizeof(int32) * (hi - lo));	/* written below */
	for (int32 i = lo; i < hi; i++)
	{
		int32		ntouched,
					n = 0;

		CHECK_FOR_INTERRUPTS();
		ntouched = itemknn_row(d, nr->t_indptr, nr->t_users, nr->t_weights, i, acc, seen, touched);
		for (int32 t = 0; t < ntouched; t++)
		{
			int32		j = touched[t];

			if (j != i)
			{
				touched[n] = j;
				values[n++] = acc[j];
			}
			acc[j] = 0;
			seen[j] = false;
		}
		counts[i - lo] = n;
		put(out, touched, sizeof(int32) * n);
		put(out, values, sizeof(float) * n);
	}
	memcpy(out->data + counts_at, counts, sizeof(int32) * (hi - lo));
	pfree(acc);
	pfree(seen);
	pfree(touched);
	pfree(values);
	pfree(counts);
	return msg_finish(out);
}

/*
 * personalize.train_round(run, round, payload) RETURNS SETOF bytea: the
 * node's answer to the coordinator's command, once per round per backend
 * (later calls in the same round return nothing).
 */
PG_FUNCTION_INFO_V1(train_round);
Datum
train_round(PG_FUNCTION_ARGS)
{
	FuncCallContext *fc;
	List	   *answers;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		NodeRun    *nr;
		int64		round;
		bytea	   *payload;
		Reader		r;
		int32		cmd;

		fc = SRF_FIRSTCALL_INIT();
		if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("run, round and payload must not be NULL")));
		nr = node_run_find(PG_GETARG_INT64(0), false);
		round = PG_GETARG_INT64(1);
		old = MemoryContextSwitchTo(fc->multi_call_memory_ctx);
		answers = NIL;
		if (round != nr->answered)
		{
			nr->answered = round;
			payload = PG_GETARG_BYTEA_PP(2);
			r = reader_of(payload);
			cmd = rd_int32(&r);
			/* each command in its place: summary once, one setup once, the others after their setup */
			if ((cmd == CMD_SUMMARY && nr->triples == NULL) ||
				((cmd == CMD_SETUP || cmd == CMD_KNN_SETUP) && (nr->d == NULL || nr->ready)) ||
				((cmd == CMD_USERS || cmd == CMD_PRODUCT || cmd == CMD_LOSS) && nr->X == NULL) ||
				(cmd == CMD_KNN_RANGE && nr->t_indptr == NULL) ||
				(cmd == CMD_COLLECT && !nr->ready))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("training command %d out of order in run " INT64_FORMAT, cmd, nr->run)));
			switch (cmd)
			{
				case CMD_SUMMARY:
					answers = list_make1(node_summary(nr));
					break;
				case CMD_SETUP:
					answers = list_make1(node_setup(nr, &r));
					break;
				case CMD_USERS:
					answers = list_make1(node_users(nr, &r));
					break;
				case CMD_PRODUCT:
					answers = list_make1(node_product(nr, &r));
					break;
				case CMD_LOSS:
					answers = list_make1(node_loss(nr, &r));
					break;
				case CMD_COLLECT:
					answers = node_collect(nr);
					break;
				case CMD_KNN_SETUP:
					answers = list_make1(node_knn_setup(nr, &r));
					break;
				case CMD_KNN_RANGE:
					answers = list_make1(node_knn_range(nr, &r));
					break;
				default:
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("unknown training command %d", cmd)));
			}
		}
		fc->user_fctx = answers;
		MemoryContextSwitchTo(old);
	}
	fc = SRF_PERCALL_SETUP();
	answers = (List *) fc->user_fctx;
	if (fc->call_cntr < (uint64) list_length(answers))
	{
		Datum		answer = PointerGetDatum(list_nth(answers, (int) fc->call_cntr));

		SRF_RETURN_NEXT(fc, answer);
	}
	SRF_RETURN_DONE(fc);
}

/* ---------------------------------------------------------------- coordinator side */

typedef struct NodeSlot
{
	int64		token;
	int32		nusers;
	int32	   *user_global;	/* global index of each of its users */
	int64	   *user_ids;		/* until the merge */
	int64	   *item_ids;
	int32		nitems;
	bool		answered;
} NodeSlot;

typedef struct Driver
{
	int64		run;
	int64		round;
	const char *source;			/* qualified name */
	Oid			user_type;		/* of the source's user_id */
	Datum		anchor_users;	/* user_type[]: one shard per node */
	Datum		anchor_tids;	/* tid[] */
	int			nnodes;
	NodeSlot   *nodes;
	SPIPlanPtr	round_plan;
} Driver;

static NodeSlot *
slot_of(Driver *dr, int64 token)
{
	for (int n = 0; n < dr->nnodes; n++)
		if (dr->nodes[n].token == token)
			return &dr->nodes[n];
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("an unknown node backend answered distributed training")));
	return NULL;
}

typedef void (*AnswerHandler) (Driver *dr, Reader *r, void *arg);

/*
 * Send one command and hand each answer to the handler. Every node known from
 * the summary must answer (once, except for the chunks of CMD_COLLECT).
 */
static void
driver_round(Driver *dr, bytea *payload, bool summary, bool chunks, AnswerHandler handle, void *arg)
{
	Datum		args[5];
	Portal		portal;
	instr_time	t0,
				t1;
	uint64		received = 0;

	INSTR_TIME_SET_CURRENT(t0);
	dr->round++;
	args[0] = Int64GetDatum(dr->run);
	args[1] = Int64GetDatum(dr->round);
	args[2] = PointerGetDatum(payload);
	args[3] = dr->anchor_users;
	args[4] = dr->anchor_tids;
	portal = SPI_cursor_open(NULL, dr->round_plan, args, NULL, false);
	for (int n = 0; n < dr->nnodes; n++)
		dr->nodes[n].answered = false;
	for (;;)
	{
		bool		isnull;
		Datum		d;
		bytea	   *b;
		Reader		r;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 1);
		if (SPI_processed == 0)
			break;
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
			elog(ERROR, "a node answered distributed training with NULL");
		b = DatumGetByteaPP(d);
		received += VARSIZE_ANY(b);
		r = reader_of(b);
		if (!summary)
		{
			int64		token;
			NodeSlot   *slot;

			memcpy(&token, r.p, sizeof(token));
			slot = slot_of(dr, token);
			if (slot->answered && !chunks)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("a node answered a training round twice")));
			slot->answered = true;
		}
		handle(dr, &r, arg);
		if ((Pointer) b != DatumGetPointer(d))
			pfree(b);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	pfree(payload);
	INSTR_TIME_SET_CURRENT(t1);
	INSTR_TIME_SUBTRACT(t1, t0);
	elog(DEBUG1, "training round " INT64_FORMAT ": %.3f s, " UINT64_FORMAT " bytes received",
		 dr->round, INSTR_TIME_GET_DOUBLE(t1), received);
	if (!summary)
		for (int n = 0; n < dr->nnodes; n++)
			if (!dr->nodes[n].answered)
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("a node did not answer distributed training"),
						 errdetail("The rows it was reached through changed during training."),
						 errhint("Retry the training.")));
}

static void
on_summary(Driver *dr, Reader *r, void *arg)
{
	int64	   *totals = (int64 *) arg;
	NodeSlot   *slot;

	dr->nodes = repalloc(dr->nodes, sizeof(NodeSlot) * (dr->nnodes + 1));
	slot = &dr->nodes[dr->nnodes++];
	memset(slot, 0, sizeof(*slot));
	slot->token = rd_int64(r);
	for (int n = 0; n < dr->nnodes - 1; n++)
		if (dr->nodes[n].token == slot->token)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("a node answered a training round twice")));
	totals[0] += rd_int64(r);
	totals[1] += rd_int64(r);
	slot->nusers = rd_int32(r);
	slot->nitems = rd_int32(r);
	slot->user_ids = palloc(sizeof(int64) * Max(slot->nusers, 1));
	rd(r, slot->user_ids, sizeof(int64) * slot->nusers);
	slot->item_ids = palloc(sizeof(int64) * Max(slot->nitems, 1));
	rd(r, slot->item_ids, sizeof(int64) * slot->nitems);
}

typedef struct SetupResult
{
	int32		nitems;
	int64		nnz;
	int32	   *counts;			/* per global user */
	float	   *pop;
} SetupResult;

/* A node's setup answer (ALS and item-kNN): its pairs, users' counts and item popularity. */
static void
read_setup(Driver *dr, Reader *r, SetupResult *sr)
{
	NodeSlot   *slot = slot_of(dr, rd_int64(r));
	const float *pop;

	sr->nnz += rd_int64(r);
	for (int32 u = 0; u < slot->nusers; u++)
		sr->counts[slot->user_global[u]] = rd_int32(r);
	pop = (const float *) rd_ref(r, sizeof(float) * sr->nitems);
	for (int32 i = 0; i < sr->nitems; i++)
		sr->pop[i] += pop[i];
}

static void
on_setup(Driver *dr, Reader *r, void *arg)
{
	read_setup(dr, r, (SetupResult *) arg);
}

/*
 * The fitted model, laid out in the caller's context after the setup round:
 * ids, popularity and the seen matrix's row starts; frees the ids, counts and
 * popularity.
 */
static ModelHeader *
setup_model_new(MemoryContext caller, ModelAlgorithm alg, SetupResult *sr, int32 nusers, int64 *user_ids,
				int64 *item_ids, const int64 totals[2], Jsonb *opts, int factors, int neighbors)
{
	MemoryContext old = MemoryContextSwitchTo(caller);
	ModelHeader *m = model_new(alg, nusers, sr->nitems, sr->nnz, totals[0], totals[1], opts, factors, neighbors, true);
	int64	   *indptr;

	MemoryContextSwitchTo(old);
	memcpy(model_section(m, SECTION_USER_IDS), user_ids, sizeof(int64) * nusers);
	memcpy(model_section(m, SECTION_ITEM_IDS), item_ids, sizeof(int64) * sr->nitems);
	memcpy(model_section(m, SECTION_ITEM_POPULARITY), sr->pop, sizeof(float) * sr->nitems);
	indptr = model_section(m, SECTION_SEEN_INDPTR);
	indptr[0] = 0;
	for (int32 u = 0; u < nusers; u++)
		indptr[u + 1] = indptr[u] + sr->counts[u];
	pfree(user_ids);
	pfree(item_ids);
	pfree(sr->counts);
	pfree(sr->pop);
	return m;
}

typedef struct UsersResult
{
	int			f;
	int32		nitems;
	double		loss;
	double		norms;
	float	   *xtx;			/* f x f */
	float	   *sums;			/* items x f */
} UsersResult;

static void
on_users(Driver *dr, Reader *r, void *arg)
{
	UsersResult *ur = (UsersResult *) arg;
	const float *part;

	(void) rd_int64(r);
	ur->loss += rd_double(r);
	ur->norms += rd_double(r);
	part = (const float *) rd_ref(r, sizeof(float) * ur->f * ur->f);
	for (int a = 0; a < ur->f * ur->f; a++)
		ur->xtx[a] += part[a];
	part = (const float *) rd_ref(r, sizeof(float) * (Size) ur->nitems * ur->f);
	for (Size a = 0; a < (Size) ur->nitems * ur->f; a++)
		ur->sums[a] += part[a];
}

static void
on_loss(Driver *dr, Reader *r, void *arg)
{
	UsersResult *ur = (UsersResult *) arg;

	(void) rd_int64(r);
	ur->loss += rd_double(r);
	ur->norms += rd_double(r);
}

static void
on_product(Driver *dr, Reader *r, void *arg)
{
	UsersResult *ur = (UsersResult *) arg;
	const float *part;

	(void) rd_int64(r);
	part = (const float *) rd_ref(r, sizeof(float) * (Size) ur->nitems * ur->f);
	for (Size a = 0; a < (Size) ur->nitems * ur->f; a++)
		ur->sums[a] += part[a];
}

static void
on_collect(Driver *dr, Reader *r, void *arg)
{
	ModelHeader *m = (ModelHeader *) arg;
	NodeSlot   *slot = slot_of(dr, rd_int64(r));
	int32		first = rd_int32(r);
	int32		count = rd_int32(r);
	int64		nnz = rd_int64(r);
	int64	   *indptr = model_section(m, SECTION_SEEN_INDPTR);
	const int32 *indices;
	const float *weights,
			   *X;
	int			f = m->factors;
	int64		at = 0;

	if (first < 0 || count < 0 || first > slot->nusers - count)
		elog(ERROR, "invalid training chunk");
	indices = (const int32 *) rd_ref(r, sizeof(int32) * nnz);
	weights = (const float *) rd_ref(r, sizeof(float) * nnz);
	X = (const float *) rd_ref(r, sizeof(float) * (Size) count * f);
	for (int32 k = 0; k < count; k++)
	{
		int32		g = slot->user_global[first + k];
		int64		len = indptr[g + 1] - indptr[g];

		if (at + len > nnz)
			elog(ERROR, "invalid training chunk");
		memcpy(((int32 *) model_section(m, SECTION_SEEN_ITEMS)) + indptr[g], indices + at, sizeof(int32) * len);
		memcpy(((float *) model_section(m, SECTION_SEEN_WEIGHTS)) + indptr[g], weights + at, sizeof(float) * len);
		if (f > 0)
			memcpy(((float *) model_section(m, SECTION_USER_FACTORS)) + (Size) g * f, X + (Size) k * f, sizeof(float) * f);
		at += len;
	}
}

/* Merge the nodes' sorted id lists: users must be disjoint, items are united. */
static int64 *
merge_ids(Driver *dr, bool users, int32 *count)
{
	int		   *pos = palloc0(sizeof(int) * Max(dr->nnodes, 1));
	int64		total = 0;
	int64	   *out;
	int32		n = 0;

	for (int k = 0; k < dr->nnodes; k++)
	{
		total += users ? dr->nodes[k].nusers : dr->nodes[k].nitems;
		if (users)
			dr->nodes[k].user_global = palloc(sizeof(int32) * Max(dr->nodes[k].nusers, 1));
	}
	if (total > PG_INT32_MAX - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct ids")));
	out = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(total, 1));
	for (;;)
	{
		int			best = -1;
		int64		id = 0;

		for (int k = 0; k < dr->nnodes; k++)
		{
			NodeSlot   *s = &dr->nodes[k];
			int32		len = users ? s->nusers : s->nitems;
			int64		v;

			if (pos[k] >= len)
				continue;
			v = users ? s->user_ids[pos[k]] : s->item_ids[pos[k]];
			if (best < 0 || v < id)
			{
				best = k;
				id = v;
			}
		}
		if (best < 0)
			break;
		if (n > 0 && out[n - 1] == id)
		{
			if (users)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("user " INT64_FORMAT " has rows on more than one node", id),
						 errdetail("Distributed training needs the source distributed by user_id.")));
		}
		else
			out[n++] = id;
		if (users)
			dr->nodes[best].user_global[pos[best]] = n - 1;
		pos[best]++;
	}
	pfree(pos);
	*count = n;
	return out;
}

/* Items' CG of als.c, with the sums over users coming from the nodes. */
typedef struct ItemSolver
{
	int			f;
	int32		nitems;
	float	   *gram;			/* XᵀX + λI */
	float	   *Y;
	float	   *r;
	float	   *p;
	float	   *rs;				/* rsold per item */
	bool	   *done;
} ItemSolver;

MODEL_KERNEL static void
items_start(ItemSolver *is, const float *sums)
{
	int			f = is->f;

	for (int32 i = 0; i < is->nitems; i++)
	{
		float	   *y = is->Y + (Size) i * f,
				   *r = is->r + (Size) i * f,
				   *p = is->p + (Size) i * f;

		for (int a = 0; a < f; a++)
			r[a] = -vec_dot(f, is->gram + a * f, y);
		vec_axpy(f, 1.0f, sums + (Size) i * f, r);
		memcpy(p, r, sizeof(float) * f);
		is->rs[i] = vec_dot(f, r, r);
		is->done[i] = is->rs[i] < 1e-20f;
	}
}

MODEL_KERNEL static void
items_step(ItemSolver *is, const float *products, float *ap)
{
	int			f = is->f;

	for (int32 i = 0; i < is->nitems; i++)
	{
		float	   *y = is->Y + (Size) i * f,
				   *r = is->r + (Size) i * f,
				   *p = is->p + (Size) i * f;
		float		step,
					rsnew;

		if (is->done[i])
			continue;
		for (int a = 0; a < f; a++)
			ap[a] = vec_dot(f, is->gram + a * f, p);
		vec_axpy(f, 1.0f, products + (Size) i * f, ap);
		step = is->rs[i] / vec_dot(f, p, ap);
		vec_axpy(f, step, p, y);
		vec_axpy(f, -step, ap, r);
		rsnew = vec_dot(f, r, r);
		if (rsnew < 1e-20f)
		{
			is->done[i] = true;
			continue;
		}
		for (int a = 0; a < f; a++)
			p[a] = r[a] + (rsnew / is->rs[i]) * p[a];
		is->rs[i] = rsnew;
	}
}

static bytea *
command(TrainCommand cmd)
{
	StringInfo	s = msg_start();

	put_int32(s, cmd);
	return msg_finish(s);
}

static bytea *
command_with_factors(TrainCommand cmd, int32 flag, bool with_flag, const float *v, Size n)
{
	StringInfo	s = msg_start();

	put_int32(s, cmd);
	if (with_flag)
		put_int32(s, flag);
	put(s, v, sizeof(float) * n);
	return msg_finish(s);
}

/*
 * A round reaches each node through its anchor rows: user_id = ANY (anchors)
 * prunes to one shard per node, ctid = ANY (tids) finds the rows without a
 * scan, and the join with the run's row in personalize.train_runs sends the
 * task over the connection that wrote it, to the backend holding the state.
 * The payload travels as the result of a materialized CTE, which Citus copies
 * to the nodes in binary (as a parameter it would be inlined into the task's
 * SQL text as hex, at a cost that grows faster than its size).
 */
static void
prepare_round(Driver *dr)
{
	Oid			types[5] = {INT8OID, INT8OID, BYTEAOID, get_array_type(dr->user_type), TIDARRAYOID};
	char	   *sql;

	sql = psprintf("WITH p AS MATERIALIZED (SELECT $3::pg_catalog.bytea AS payload)"
				   " SELECT q.answer FROM (SELECT personalize.train_round(x.run, $2, p.payload) AS answer"
				   " FROM %s s CROSS JOIN personalize.train_runs x CROSS JOIN p"
				   " WHERE x.run = $1 AND s.user_id = ANY ($4) AND s.ctid = ANY ($5)) q", dr->source);
	dr->round_plan = SPI_prepare(sql, 5, types);
	if (dr->round_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(dr->round_plan);
}

/*
 * Read the source where it lives: every node keeps its rows in the backend of
 * this transaction's connection to it and names a few rows of one of its
 * shards to be reached through later (anchors).
 */
static void
driver_read(Driver *dr, MemoryContext caller)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1];
	char	   *sql;
	ArrayBuildState *users,
			   *tids;
	int64	   *tokens = NULL;
	int			ntokens = 0;

	args[0] = Int64GetDatum(dr->run);
	if (SPI_execute_with_args("INSERT INTO personalize.train_runs (run) VALUES ($1)", 1, types, args,
							  NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not register training run");
	sql = psprintf("SELECT q.token, q.user_id, q.tid FROM"
				   " (SELECT personalize.train_absorb(x.run, s.tableoid, s.user_id::pg_catalog.int8,"
				   "  s.item_id::pg_catalog.int8, s.weight::pg_catalog.float4) AS token, s.user_id, s.ctid AS tid"
				   "  FROM %s s CROSS JOIN personalize.train_runs x WHERE x.run = $1) q"
				   " WHERE q.token IS NOT NULL", dr->source);
	if (SPI_execute_with_args(sql, 1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the training source");
	users = initArrayResult(dr->user_type, caller, false);
	tids = initArrayResult(TIDOID, caller, false);
	tokens = palloc(sizeof(int64) * Max(SPI_processed, 1));
	for (uint64 k = 0; k < SPI_processed; k++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[k];
		int64		token = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		bool		known = false;

		for (int t = 0; t < ntokens; t++)
			known |= tokens[t] == token;
		if (!known)
			tokens[ntokens++] = token;
		accumArrayResult(users, SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull), false, dr->user_type, caller);
		accumArrayResult(tids, SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull), false, TIDOID, caller);
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(tokens);
	dr->anchor_users = makeArrayResult(users, caller);
	dr->anchor_tids = makeArrayResult(tids, caller);
}

static void
driver_finish(Driver *dr)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1];

	args[0] = Int64GetDatum(dr->run);
	SPI_execute_with_args("DELETE FROM personalize.train_runs WHERE run = $1", 1, types, args, NULL, false, 0);
	SPI_freeplan(dr->round_plan);
	SPI_finish();
}

/*
 * Start a run over the source: the nodes read their rows and summarise them;
 * the users' and items' ids are merged here. False (the run finished) when
 * the source has no rows.
 */
static bool
driver_start(Driver *dr, Oid source, MemoryContext caller, int64 totals[2],
			 int64 **user_ids, int32 *nusers, int64 **item_ids, int32 *nitems)
{
	memset(dr, 0, sizeof(*dr));
	dr->source = quote_qualified_identifier(get_namespace_name(get_rel_namespace(source)), get_rel_name(source));
	dr->user_type = get_atttype(source, get_attnum(source, "user_id"));
	if (!OidIsValid(dr->user_type) || !OidIsValid(get_array_type(dr->user_type)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("relation %s has no column user_id", dr->source)));
	if (!pg_strong_random(&dr->run, sizeof(dr->run)))
		elog(ERROR, "could not generate a training run id");
	dr->run &= PG_INT64_MAX;
	dr->nodes = palloc(sizeof(NodeSlot));

	SPI_connect();
	driver_read(dr, caller);
	prepare_round(dr);

	/* summary: every node's users and items; the ids are merged here */
	driver_round(dr, command(CMD_SUMMARY), true, false, on_summary, totals);
	if (totals[0] == 0)
	{
		driver_finish(dr);
		return false;
	}
	*user_ids = merge_ids(dr, true, nusers);
	*item_ids = merge_ids(dr, false, nitems);
	for (int k = 0; k < dr->nnodes; k++)
	{
		pfree(dr->nodes[k].user_ids);
		pfree(dr->nodes[k].item_ids);
	}
	return true;
}

/*
 * personalize.als_fit_distributed(source regclass, options jsonb): the ALS
 * model of personalize.als_fit over the rows of a table distributed by
 * user_id, trained where the rows are. NULL when the source has no rows.
 */
PG_FUNCTION_INFO_V1(als_fit_distributed);
Datum
als_fit_distributed(PG_FUNCTION_ARGS)
{
	static const char *const options[] = {ALS_OPTION_KEYS, NULL};
	Oid			source = PG_GETARG_OID(0);
	Jsonb	   *opts = PG_GETARG_JSONB_P(1);
	MemoryContext caller = CurrentMemoryContext;
	Driver		dr;
	int			f,
				iterations,
				cg_steps,
				nthreads;
	float		reg,
				alpha;
	uint64		seed;
	bool		want_loss;
	int64		totals[2] = {0, 0};
	int64	   *user_ids,
			   *item_ids;
	int32		nusers,
				nitems;
	StringInfo	setup;
	SetupResult sr;
	ModelHeader *m;
	float	   *Y,
			   *ap;
	pg_prng_state rng;
	UsersResult ur;
	ItemSolver	is;

	options_check_keys(opts, options);
	f = (int) options_get_number(opts, "factors", ALS_DEFAULT_FACTORS, 1, 1024);
	reg = (float) options_get_number(opts, "regularization", ALS_DEFAULT_REGULARIZATION, 0, 1e6);
	alpha = (float) options_get_number(opts, "alpha", ALS_DEFAULT_ALPHA, 0, 1e6);
	iterations = (int) options_get_number(opts, "iterations", 15, 0, 1000);
	cg_steps = (int) options_get_number(opts, "cg_steps", 3, 1, 1024);
	nthreads = (int) options_get_number(opts, "threads", 2, 1, 16);
	seed = (uint64) options_get_number(opts, "seed", 42, 0, 9007199254740991.0);
	want_loss = options_get_bool(opts, "calculate_loss", false);

	if (!driver_start(&dr, source, caller, totals, &user_ids, &nusers, &item_ids, &nitems))
		PG_RETURN_NULL();

	/* setup: dense indexes and starting user factors on the nodes */
	setup = msg_start();
	put_int32(setup, CMD_SETUP);
	put_int32(setup, f);
	put_int32(setup, cg_steps);
	put_int32(setup, nthreads);
	put_double(setup, alpha);
	put_double(setup, reg);
	put(setup, &seed, sizeof(seed));
	put_int32(setup, nusers);
	put_int32(setup, nitems);
	put(setup, user_ids, sizeof(int64) * nusers);
	put(setup, item_ids, sizeof(int64) * nitems);
	memset(&sr, 0, sizeof(sr));
	sr.counts = palloc0(sizeof(int32) * nusers);
	sr.pop = palloc0(sizeof(float) * nitems);
	sr.nitems = nitems;
	driver_round(&dr, msg_finish(setup), false, false, on_setup, &sr);

	/* the model, laid out now: the factors are trained in place */
	m = setup_model_new(caller, MODEL_ALS, &sr, nusers, user_ids, item_ids, totals, opts, f, 0);

	/* item factors: the stream after the users' draws, as als.c draws them */
	Y = model_section(m, SECTION_ITEM_FACTORS);
	pg_prng_seed(&rng, seed);
	for (Size i = 0; i < (Size) nusers * f; i++)
		(void) pg_prng_double(&rng);
	for (Size i = 0; i < (Size) nitems * f; i++)
		Y[i] = (float) (pg_prng_double(&rng) * 0.01);

	memset(&ur, 0, sizeof(ur));
	ur.f = f;
	ur.nitems = nitems;
	ur.xtx = palloc(sizeof(float) * f * f);
	ur.sums = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) nitems * f, 1));
	memset(&is, 0, sizeof(is));
	is.f = f;
	is.nitems = nitems;
	is.gram = palloc(sizeof(float) * f * f);
	is.Y = Y;
	is.r = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) nitems * f, 1));
	is.p = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) nitems * f, 1));
	is.rs = palloc(sizeof(float) * Max(nitems, 1));
	is.done = palloc(sizeof(bool) * Max(nitems, 1));
	ap = palloc(sizeof(float) * f);

	for (int it = 0; it < iterations; it++)
	{
		instr_time	start,
					elapsed;

		INSTR_TIME_SET_CURRENT(start);
		/* users on the nodes; XᵀX and the items' starting residual sums come back */
		memset(ur.xtx, 0, sizeof(float) * f * f);
		memset(ur.sums, 0, sizeof(float) * (Size) nitems * f);
		ur.loss = ur.norms = 0;
		driver_round(&dr, command_with_factors(CMD_USERS, want_loss && it > 0, true, Y, (Size) nitems * f),
					 false, false, on_users, &ur);
		if (want_loss && it > 0)
		{
			m->loss = (ur.loss + reg * (ur.norms + cblas_sdot(nitems * f, Y, 1, Y, 1)))
				/ ((double) nusers * nitems + m->nnz);
			ereport(DEBUG1, (errmsg("als loss after iteration %d: %.9g", it, m->loss)));
		}
		memcpy(is.gram, ur.xtx, sizeof(float) * f * f);
		for (int a = 0; a < f; a++)
			is.gram[a * f + a] += reg;
		items_start(&is, ur.sums);
		for (int step = 0; step < cg_steps; step++)
		{
			memset(ur.sums, 0, sizeof(float) * (Size) nitems * f);
			driver_round(&dr, command_with_factors(CMD_PRODUCT, 0, false, is.p, (Size) nitems * f),
						 false, false, on_product, &ur);
			items_step(&is, ur.sums, ap);
		}
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		ereport(DEBUG1,
				(errmsg("als iteration %d of %d: %.3f s", it + 1, iterations, INSTR_TIME_GET_DOUBLE(elapsed))));
	}
	if (want_loss && iterations > 0)
	{
		ur.loss = ur.norms = 0;
		driver_round(&dr, command_with_factors(CMD_LOSS, 0, false, Y, (Size) nitems * f), false, false, on_loss, &ur);
		m->loss = (ur.loss + reg * (ur.norms + cblas_sdot(nitems * f, Y, 1, Y, 1)))
			/ ((double) nusers * nitems + m->nnz);
		ereport(DEBUG1, (errmsg("als loss after iteration %d: %.9g", iterations, m->loss)));
	}

	/* the users' part of the model: seen items, weights and factors */
	driver_round(&dr, command(CMD_COLLECT), false, true, on_collect, m);
	driver_finish(&dr);
	PG_RETURN_DATUM(model_datum(m));	/* a handle when over personalize.model_value_limit (train) */
}


/* ---------------------------------------------------------------- item-kNN */

/* coordinator cells (item pairs) of one range: 9 bytes each (sum, seen, touched) */
#define KNN_RANGE_CELLS (4 * 1024 * 1024)

typedef struct KnnSetupResult
{
	SetupResult base;
	double	   *squares;		/* Σ w² per item */
} KnnSetupResult;

static void
on_knn_setup(Driver *dr, Reader *r, void *arg)
{
	KnnSetupResult *sr = (KnnSetupResult *) arg;
	const double *squares;

	read_setup(dr, r, &sr->base);
	squares = (const double *) rd_ref(r, sizeof(double) * sr->base.nitems);
	for (int32 i = 0; i < sr->base.nitems; i++)
		sr->squares[i] += squares[i];
}

/* One range of rows of the co-occurrence sums, dense on the coordinator. */
typedef struct KnnRange
{
	int32		nitems;
	int32		lo;
	int32		hi;
	float	   *acc;			/* (hi - lo) x nitems */
	bool	   *seen;
	int32	   *touched;		/* per row: the items with a sum, in arrival order */
	int32	   *ntouched;
} KnnRange;

static void
on_knn_range(Driver *dr, Reader *r, void *arg)
{
	KnnRange   *kr = (KnnRange *) arg;
	int32		lo,
				hi;
	const int32 *counts;

	(void) rd_int64(r);
	lo = rd_int32(r);
	hi = rd_int32(r);
	if (lo != kr->lo || hi != kr->hi)
		elog(ERROR, "a node answered another item range");
	counts = (const int32 *) rd_ref(r, sizeof(int32) * (hi - lo));
	for (int32 row = 0; row < hi - lo; row++)
	{
		int32		n = counts[row];
		const int32 *items;
		const float *sums;
		Size		base = (Size) row * kr->nitems;

		if (n < 0 || n > kr->nitems)
			elog(ERROR, "invalid item range answer");
		items = (const int32 *) rd_ref(r, sizeof(int32) * n);
		sums = (const float *) rd_ref(r, sizeof(float) * n);
		for (int32 t = 0; t < n; t++)
		{
			int32		j = items[t];

			if (j < 0 || j >= kr->nitems)
				elog(ERROR, "invalid item range answer");
			if (!kr->seen[base + j])
			{
				kr->seen[base + j] = true;
				kr->touched[base + kr->ntouched[row]++] = j;
			}
			kr->acc[base + j] += sums[t];
		}
	}
}

/*
 * personalize.itemknn_fit_distributed(source regclass, options jsonb,
 * range_items integer): the item-kNN model of personalize.itemknn_fit over
 * the rows of a table distributed by user_id. The nodes send their users'
 * co-occurrence sums for range_items rows of the item-item matrix at a time
 * (0: as many as KNN_RANGE_CELLS cells); the coordinator adds them up, keeps
 * each item's neighbours, and goes on to the next range. NULL when the source
 * has no rows.
 */
PG_FUNCTION_INFO_V1(itemknn_fit_distributed);
Datum
itemknn_fit_distributed(PG_FUNCTION_ARGS)
{
	Oid			source = PG_GETARG_OID(0);
	Jsonb	   *opts = PG_GETARG_JSONB_P(1);
	int32		range_items = PG_GETARG_INT32(2);
	MemoryContext caller = CurrentMemoryContext;
	Driver		dr;
	int			K;
	float		shrinkage;
	int64		totals[2] = {0, 0};
	int64	   *user_ids,
			   *item_ids;
	int32		nusers,
				nitems;
	StringInfo	setup;
	KnnSetupResult sr;
	KnnRange	kr;
	ModelHeader *m;
	int32	   *nbr;
	float	   *sim,
			   *norms;
	TopK		top;

	options_check_keys(opts, itemknn_options);
	K = (int) options_get_number(opts, "neighbors", KNN_DEFAULT_NEIGHBORS, 1, 10000);
	shrinkage = (float) options_get_number(opts, "shrinkage", 0, 0, 1e9);
	if (range_items < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("range_items must not be negative, not %d", range_items)));
	if (!driver_start(&dr, source, caller, totals, &user_ids, &nusers, &item_ids, &nitems))
		PG_RETURN_NULL();

	/* setup: global item indexes, each item's columns, popularity and norm parts */
	setup = msg_start();
	put_int32(setup, CMD_KNN_SETUP);
	put_int32(setup, nitems);
	put(setup, item_ids, sizeof(int64) * nitems);
	memset(&sr, 0, sizeof(sr));
	sr.base.nitems = nitems;
	sr.base.counts = palloc0(sizeof(int32) * nusers);
	sr.base.pop = palloc0(sizeof(float) * nitems);
	sr.squares = palloc0(sizeof(double) * nitems);
	driver_round(&dr, msg_finish(setup), false, false, on_knn_setup, &sr);

	m = setup_model_new(caller, MODEL_ITEMKNN, &sr.base, nusers, user_ids, item_ids, totals, opts, 0, K);
	norms = palloc(sizeof(float) * nitems);
	for (int32 i = 0; i < nitems; i++)
		norms[i] = (float) sqrt(sr.squares[i]);
	pfree(sr.squares);

	/* the neighbours, range by range: the coordinator holds one range of sums at a time */
	nbr = model_section(m, SECTION_NEIGHBOR_ITEMS);
	sim = model_section(m, SECTION_NEIGHBOR_SIMILARITY);
	if (range_items == 0)
		range_items = Max(1, KNN_RANGE_CELLS / nitems);
	range_items = Min(range_items, nitems);
	memset(&kr, 0, sizeof(kr));
	kr.nitems = nitems;
	kr.acc = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (Size) range_items * nitems);
	kr.seen = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(bool) * (Size) range_items * nitems);
	kr.touched = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * (Size) range_items * nitems);
	kr.ntouched = palloc(sizeof(int32) * range_items);
	memset(kr.acc, 0, sizeof(float) * (Size) range_items * nitems);
	memset(kr.seen, 0, sizeof(bool) * (Size) range_items * nitems);
	topk_init(&top, K);
	for (int32 lo = 0; lo < nitems; lo += range_items)
	{
		StringInfo	cmd = msg_start();

		kr.lo = lo;
		kr.hi = Min(lo + range_items, nitems);
		memset(kr.ntouched, 0, sizeof(int32) * range_items);
		put_int32(cmd, CMD_KNN_RANGE);
		put_int32(cmd, kr.lo);
		put_int32(cmd, kr.hi);
		driver_round(&dr, msg_finish(cmd), false, false, on_knn_range, &kr);
		for (int32 i = kr.lo; i < kr.hi; i++)
		{
			Size		base = (Size) (i - kr.lo) * nitems;

			CHECK_FOR_INTERRUPTS();
			itemknn_select(i, K, norms, shrinkage, kr.acc + base, kr.seen + base, kr.touched + base,
						   kr.ntouched[i - kr.lo], &top, nbr, sim);
		}
	}
	pfree(kr.acc);
	pfree(kr.seen);
	pfree(kr.touched);
	pfree(kr.ntouched);
	pfree(norms);

	/* the users' part of the model: seen items and weights */
	driver_round(&dr, command(CMD_COLLECT), false, true, on_collect, m);
	driver_finish(&dr);
	PG_RETURN_DATUM(model_datum(m));	/* a handle when over personalize.model_value_limit (train) */
}
