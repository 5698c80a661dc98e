/*
 * modelcache.c — the active version of a model, ready to serve.
 *
 * Shared mode (the library is in shared_preload_libraries): one copy of each
 * loaded version per server, in a dynamic shared memory segment holding the
 * image followed by its derived data (ALS item norms, YᵀY, the items by
 * descending norm with float4 and bfloat16 copies of their factors), listed in a
 * small directory in the main shared memory (one LWLock). A backend maps the
 * segment of each version it serves and keeps it mapped while that version
 * is active, so its private memory holds no model.
 *
 * A version is loaded once per server: by train / activate before their
 * transaction commits (model_publish, personalize.model_prewarm), so that the
 * first request after the commit finds it ready; otherwise by the first
 * backend that needs it, while the others that need it wait for that load
 * (never load it twice). A load that fails or is cancelled frees its slot
 * and segment: nothing half-loaded is ever visible. When the transaction
 * that published a version commits, the other versions of the name are
 * retired; an aborted one retires what it published; drop_model retires
 * every version at commit. A retired version is freed when the last backend
 * mapping it moves on (its next request, or its exit): its slot at once, its
 * segment by the model reaper, a background worker, since destroying a
 * segment costs about 20 ms per 100 MB (a request must not wait for it);
 * without the reaper, by the backend, never while holding the directory lock.
 *
 * Backend mode (not preloaded, or personalize.shared_models = off): each
 * backend loads its own copy into its private memory (the last four models
 * it served), as 0.1.0 did.
 */
#include "postgres.h"

#include <cblas.h>
#include <float.h>
#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#define BACKEND_CACHE_SIZE	4
#define MODEL_SLOTS			64
#define SLOT_NAME_BYTES		128

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_LOADING,
	SLOT_READY
} SlotState;

typedef struct ModelSlot
{
	char		name[SLOT_NAME_BYTES];
	int32		version;
	TimestampTz revision;		/* coalesce(revised_at, trained_at) */
	SlotState	state;
	int			refcount;		/* backends mapping it */
	bool		retired;		/* free it when refcount drops to 0 */
	int			loader_pid;
	dsm_handle	handle;
	uint64		bytes;
	uint64		last_used;
} ModelSlot;

typedef struct ModelDirectory
{
	LWLock	   *lock;
	ConditionVariable changed;	/* a slot finished loading or was freed */
	uint64		clock;
	ModelSlot	slot[MODEL_SLOTS];
	Latch	   *reaper;			/* the model reaper's latch, NULL when it is not running */
	int			ndoomed;		/* segments of freed slots, for the reaper to destroy */
	dsm_handle	doomed[MODEL_SLOTS];
} ModelDirectory;

/* At the start of a segment (or private copy): where the image and derived data are. */
typedef struct ModelBlock
{
	uint64		image_offset;
	uint64		norms_offset;	/* 0: none */
	uint64		gram_offset;
	uint64		order_offset;	/* items by descending norm (int32) */
	uint64		position_offset;	/* item -> its place in that order (int32) */
	uint64		sorted_offset;	/* item factors in that order (float4) */
	uint64		bf16_offset;	/* item factors rounded to bfloat16, in that order */
	uint64		bf16_error_offset;	/* in that order: ‖y_i - bf16(y_i)‖, rounded up */
	uint64		total_bytes;
	int32		scan_limit;		/* see block_scan_limit */
	float		regularization;
	float		alpha;
} ModelBlock;

static ModelDirectory *directory = NULL;
static bool shared_models = true;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static LoadedModel *loaded = NULL;	/* this backend's models */
static uint64 local_clock = 0;
static SPIPlanPtr active_version_plan = NULL;

/* Slots published or names dropped by the current transaction: settled at its end. */
typedef struct PendingChange
{
	char		name[SLOT_NAME_BYTES];
	int32		version;		/* 0: drop every version of the name */
	TimestampTz revision;
	struct PendingChange *next;
} PendingChange;

static PendingChange *pending = NULL;
static bool xact_callback_registered = false;

static void modelcache_backend_init(void);

/* Segments this backend must unpin once it no longer holds the directory lock. */
static dsm_handle unpin_later[MODEL_SLOTS];
static int	nunpin_later = 0;

static bool
use_shared(void)
{
	return directory != NULL && shared_models;
}

/* ---------- shared memory setup ---------- */

static void
modelcache_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ModelDirectory)));
	RequestNamedLWLockTranche("pg_personalize", 1);
}

static void
modelcache_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	directory = ShmemInitStruct("pg_personalize models", sizeof(ModelDirectory), &found);
	if (!found)
	{
		memset(directory, 0, sizeof(ModelDirectory));
		directory->lock = &(GetNamedLWLockTranche("pg_personalize"))->lock;
		ConditionVariableInit(&directory->changed);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ---------- slots (the caller holds directory->lock exclusively) ---------- */

static bool
slot_is(const ModelSlot *s, const char *name, int32 version, TimestampTz revision)
{
	return s->state != SLOT_FREE && s->version == version && s->revision == revision &&
		strcmp(s->name, name) == 0;
}

static int
slot_find(const char *name, int32 version, TimestampTz revision)
{
	for (int i = 0; i < MODEL_SLOTS; i++)
		if (slot_is(&directory->slot[i], name, version, revision))
			return i;
	return -1;
}

/*
 * Nobody maps the slot: free it, and hand its segment to the reaper (or to
 * unpin_deferred once the lock is released) to destroy.
 */
static void
slot_free(ModelSlot *s)
{
	if (s->state == SLOT_READY)
	{
		if (directory->reaper != NULL && directory->ndoomed < MODEL_SLOTS)
		{
			directory->doomed[directory->ndoomed++] = s->handle;
			SetLatch(directory->reaper);
		}
		else
			unpin_later[nunpin_later++] = s->handle;
	}
	memset(s, 0, sizeof(ModelSlot));
	ConditionVariableBroadcast(&directory->changed);
}

/* After releasing the directory lock: destroy the segments slot_free left to this backend. */
static void
unpin_deferred(void)
{
	while (nunpin_later > 0)
		dsm_unpin_segment(unpin_later[--nunpin_later]);
}

/* Retire a slot; free it at once if no backend maps it. */
static void
slot_retire(ModelSlot *s)
{
	s->retired = true;
	if (s->refcount == 0 && s->state == SLOT_READY)
		slot_free(s);
}

/* A free slot: an empty one, else the least recently used version nobody maps. */
static int
slot_claim(void)
{
	int			victim = -1;

	for (int i = 0; i < MODEL_SLOTS; i++)
	{
		ModelSlot  *s = &directory->slot[i];

		if (s->state == SLOT_FREE)
			return i;
		if (s->state == SLOT_READY && s->refcount == 0 &&
			(victim < 0 || (s->retired && !directory->slot[victim].retired) ||
			 (s->retired == directory->slot[victim].retired && s->last_used < directory->slot[victim].last_used)))
			victim = i;
	}
	if (victim >= 0)
		slot_free(&directory->slot[victim]);
	return victim;
}

/* This backend stops mapping a slot. */
static void
slot_release(int slot)
{
	ModelSlot  *s;

	LWLockAcquire(directory->lock, LW_EXCLUSIVE);
	s = &directory->slot[slot];
	if (s->refcount > 0)
		s->refcount--;
	if (s->refcount == 0 && s->retired)
		slot_free(s);
	LWLockRelease(directory->lock);
	unpin_deferred();
}

/* ---------- the block: image and derived data ---------- */

static uint64
block_layout(const ModelHeader *h, ModelBlock *b)
{
	uint64		off = TYPEALIGN(64, sizeof(ModelBlock));

	memset(b, 0, sizeof(ModelBlock));
	b->image_offset = off;
	off = TYPEALIGN(64, off + h->image_bytes);
	if (model_has_factors(h->algorithm))
	{
		if (h->nitems < 0 || h->factors < 1 || h->factors > 1024 ||
			(uint64) h->nitems * sizeof(float) > h->image_bytes)
			model_corrupt("bad header");
		b->norms_offset = off;
		off = TYPEALIGN(64, off + sizeof(float) * (uint64) h->nitems);
		b->gram_offset = off;
		off = TYPEALIGN(64, off + sizeof(float) * h->factors * h->factors);
		b->order_offset = off;
		off = TYPEALIGN(64, off + sizeof(int32) * (uint64) h->nitems);
		b->position_offset = off;
		off = TYPEALIGN(64, off + sizeof(int32) * (uint64) h->nitems);
		b->sorted_offset = off;
		off = TYPEALIGN(64, off + sizeof(float) * (uint64) h->nitems * h->factors);
		b->bf16_offset = off;
		off = TYPEALIGN(64, off + sizeof(uint16) * (uint64) h->nitems * h->factors);
		b->bf16_error_offset = off;
		off = TYPEALIGN(64, off + sizeof(float) * (uint64) h->nitems);
	}
	b->total_bytes = off;
	return off;
}

/* qsort_arg comparator of item indexes: descending norm, then ascending index */
int
cmp_norm_desc(const void *a, const void *b, void *arg)
{
	const float *norms = (const float *) arg;
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	if (norms[x] != norms[y])
		return norms[x] < norms[y] ? 1 : -1;
	return (x > y) - (x < y);
}

/*
 * How far serving should scan items by descending norm before scoring every
 * item instead: for 32 users spread over the model, the position at which the
 * Cauchy-Schwarz bound stops a top-10 scan; twice the 90th percentile, or 0
 * (never scan by norm) when that passes a quarter of the items.
 */
#define SCAN_SAMPLE_USERS 32

static int32
block_scan_limit(const ModelHeader *m, const float *norms, const int32 *order)
{
	const float *X = model_section(m, SECTION_USER_FACTORS);
	const float *Y = model_section(m, SECTION_ITEM_FACTORS);
	int			f = m->factors;
	int32		quarter = m->nitems / 4;
	int32		stops[SCAN_SAMPLE_USERS];
	int			n = Min(SCAN_SAMPLE_USERS, m->nusers);
	TopK		top;
	int64		limit;

	if (X == NULL || n == 0 || m->nitems < 2048)
		return 0;
	topk_init(&top, 10);
	for (int s = 0; s < n; s++)
	{
		const float *x = X + (Size) ((int64) s * m->nusers / n) * f;
		float		xnorm = sqrtf(vec_dot(f, x, x));
		int32		p = 0;

		top.n = 0;
		for (; p < quarter; p++)
		{
			float		score = vec_dot(f, x, Y + (Size) order[p] * f);

			if ((p & 255) == 0 && top.n == top.k && top.score[0] > xnorm * norms[order[p]] * 1.0001f)
				break;
			if (top.n < top.k || score >= top.score[0])
				topk_push(&top, score, order[p]);
		}
		stops[s] = p;
	}
	pfree(top.score);
	pfree(top.index);
	for (int s = 1; s < n; s++)	/* insertion sort of at most 32 */
		for (int t = s; t > 0 && stops[t - 1] > stops[t]; t--)
		{
			int32		swap = stops[t];

			stops[t] = stops[t - 1];
			stops[t - 1] = swap;
		}
	limit = 2 * (int64) stops[(n * 9) / 10] + 512;
	return limit <= quarter ? (int32) limit : 0;
}

/* Validate the image in a block and compute the derived data. */
static void
block_prepare(ModelBlock *b)
{
	ModelHeader *m = (ModelHeader *) ((char *) b + b->image_offset);

	model_validate(m, m->image_bytes);
	if (model_has_factors(m->algorithm))
	{
		int			f = m->factors;
		const float *Y = model_section(m, SECTION_ITEM_FACTORS);
		float	   *norms = (float *) ((char *) b + b->norms_offset);
		float	   *gram = (float *) ((char *) b + b->gram_offset);
		Jsonb	   *opts = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															  CStringGetDatum(model_section(m, SECTION_OPTIONS))));

		int32	   *order = (int32 *) ((char *) b + b->order_offset);
		int32	   *position = (int32 *) ((char *) b + b->position_offset);
		float	   *sorted = (float *) ((char *) b + b->sorted_offset);
		uint16	   *half = (uint16 *) ((char *) b + b->bf16_offset);
		float	   *error = (float *) ((char *) b + b->bf16_error_offset);

		for (int32 i = 0; i < m->nitems; i++)
		{
			norms[i] = sqrtf(vec_dot(f, Y + (Size) i * f, Y + (Size) i * f));
			order[i] = i;
		}
		qsort_arg(order, m->nitems, sizeof(int32), cmp_norm_desc, norms);
		for (int32 p = 0; p < m->nitems; p++)
		{
			const float *y = Y + (Size) order[p] * f;
			double		e = 0;

			position[order[p]] = p;
			memcpy(sorted + (Size) p * f, y, sizeof(float) * f);
			for (int a = 0; a < f; a++)
			{
				uint16		h = float_to_bf16(y[a]);

				half[(Size) p * f + a] = h;
				e += ((double) y[a] - bf16_to_float(h)) * ((double) y[a] - bf16_to_float(h));
			}
			error[p] = (float) (sqrt(e) * (1 + 1e-6)) + FLT_MIN;
		}
		b->scan_limit = block_scan_limit(m, norms, order);
		ereport(DEBUG1,
				(errmsg("serving scans up to %d of %d items by norm (0: scores every item)", b->scan_limit, m->nitems)));
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, f, m->nitems, 1.0f, Y, f, 0.0f, gram, f);
		for (int a = 0; a < f; a++)
			for (int c = 0; c < a; c++)
				gram[a * f + c] = gram[c * f + a];
		/* the fold-in's parameters (ALS and dp_als; bpr and hybrid fold in by SGD) */
		if (model_is_als(m->algorithm))
		{
			b->regularization = (float) options_get_number(opts, "regularization", ALS_DEFAULT_REGULARIZATION, 0, 1e6);
			b->alpha = (float) options_get_number(opts, "alpha", ALS_DEFAULT_ALPHA, 0, 1e6);
		}
	}
}

/* Fill a LoadedModel's pointers from a prepared block. */
static void
loaded_from_block(LoadedModel *lm, const ModelBlock *b)
{
	const ModelHeader *m = (const ModelHeader *) ((const char *) b + b->image_offset);

	lm->m = m;
	lm->user_ids = model_section(m, SECTION_USER_IDS);
	lm->item_ids = model_section(m, SECTION_ITEM_IDS);
	lm->item_pop = model_section(m, SECTION_ITEM_POPULARITY);
	lm->indptr = model_section(m, SECTION_SEEN_INDPTR);
	lm->seen_items = model_section(m, SECTION_SEEN_ITEMS);
	lm->seen_weights = model_section(m, SECTION_SEEN_WEIGHTS);
	lm->user_factors = model_section(m, SECTION_USER_FACTORS);
	lm->item_factors = model_section(m, SECTION_ITEM_FACTORS);
	lm->nbr_items = model_section(m, SECTION_NEIGHBOR_ITEMS);
	lm->nbr_sim = model_section(m, SECTION_NEIGHBOR_SIMILARITY);
	lm->item_norms = b->norms_offset ? (const float *) ((const char *) b + b->norms_offset) : NULL;
	lm->gram = b->gram_offset ? (const float *) ((const char *) b + b->gram_offset) : NULL;
	lm->norm_order = b->order_offset ? (const int32 *) ((const char *) b + b->order_offset) : NULL;
	lm->norm_position = b->position_offset ? (const int32 *) ((const char *) b + b->position_offset) : NULL;
	lm->item_factors_by_norm = b->sorted_offset ? (const float *) ((const char *) b + b->sorted_offset) : NULL;
	lm->item_factors_bf16 = b->bf16_offset ? (const uint16 *) ((const char *) b + b->bf16_offset) : NULL;
	lm->item_bf16_error = b->bf16_error_offset ? (const float *) ((const char *) b + b->bf16_error_offset) : NULL;
	lm->scan_limit = b->scan_limit;
	lm->regularization = b->regularization;
	lm->alpha = b->alpha;
}

static int32
search_ids(const int64 *ids, int32 n, int64 id)
{
	int32		lo = 0,
				hi = n;

	if (ids == NULL)
		return -1;
	while (lo < hi)
	{
		int32		mid = lo + (hi - lo) / 2;

		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && ids[lo] == id ? lo : -1;
}

/* Ids are ascending in every image: binary search, no per-backend maps. */
int32
loaded_user(const LoadedModel *lm, int64 user_id)
{
	return search_ids(lm->user_ids, lm->m->nusers, user_id);
}

int32
loaded_item(const LoadedModel *lm, int64 item_id)
{
	return search_ids(lm->item_ids, lm->m->nitems, item_id);
}

/* ---------- loading ---------- */

typedef struct SegmentAlloc
{
	dsm_segment *segment;
	MemoryContext cxt;			/* backend mode */
	ModelBlock *block;
} SegmentAlloc;

/* model_read_chunks' allocator: a block (segment or private) sized from the header. */
static ModelHeader *
block_alloc(const ModelHeader *header, void *arg)
{
	SegmentAlloc *a = (SegmentAlloc *) arg;
	ModelBlock	layout;
	uint64		bytes = block_layout(header, &layout);

	if (a->cxt == NULL)
	{
		a->segment = dsm_create(bytes, 0);
		a->block = dsm_segment_address(a->segment);
	}
	else
		a->block = MemoryContextAllocExtended(a->cxt, bytes, MCXT_ALLOC_HUGE);
	memcpy(a->block, &layout, sizeof(ModelBlock));
	return (ModelHeader *) ((char *) a->block + layout.image_offset);
}

/* Fill a block from an image in memory, or from the stored chunks. */
static void
block_fill(SegmentAlloc *a, text *name, int32 version, const ModelHeader *image)
{
	if (image)
	{
		ModelHeader *dst = block_alloc(image, a);

		memcpy(dst, image, image->image_bytes);
		dst->vl_len_ = 0;
	}
	else if (model_chunks_exist())
		model_read_chunks(name, version, block_alloc, a);
	else
	{
		/* a database still at 0.1.0 keeps models in a column */
		ModelHeader *m = model_load_stored(name, version);

		block_fill(a, name, version, m);
		pfree(m);
		return;
	}
	block_prepare(a->block);
}

/*
 * Map (name, version, revision) from shared memory, loading it first if no
 * backend has; image, when given, is the image already in memory. NULL when
 * every slot is in use (the caller loads a private copy).
 */
static LoadedModel *
shared_get(const char *name, text *name_text, int32 version, TimestampTz revision, const ModelHeader *image)
{
	int			slot;
	SegmentAlloc a;
	LoadedModel *lm;
	dsm_handle	handle;

	modelcache_backend_init();
	for (;;)
	{
		LWLockAcquire(directory->lock, LW_EXCLUSIVE);
		slot = slot_find(name, version, revision);
		if (slot >= 0 && directory->slot[slot].state == SLOT_READY)
		{
			ModelSlot  *s = &directory->slot[slot];

			s->refcount++;
			s->last_used = ++directory->clock;
			handle = s->handle;
			LWLockRelease(directory->lock);
			break;
		}
		if (slot >= 0)
		{
			/* another backend is loading it: wait for that load */
			LWLockRelease(directory->lock);
			ConditionVariableTimedSleep(&directory->changed, 100, PG_WAIT_EXTENSION);
			continue;
		}
		slot = slot_claim();
		if (slot < 0)
		{
			LWLockRelease(directory->lock);
			ConditionVariableCancelSleep();
			unpin_deferred();
			return NULL;
		}
		{
			ModelSlot  *s = &directory->slot[slot];

			strlcpy(s->name, name, SLOT_NAME_BYTES);
			s->version = version;
			s->revision = revision;
			s->state = SLOT_LOADING;
			s->loader_pid = MyProcPid;
			s->refcount = 0;
			s->retired = false;
		}
		LWLockRelease(directory->lock);
		ConditionVariableCancelSleep();
		unpin_deferred();

		memset(&a, 0, sizeof(a));
		PG_TRY();
		{
			block_fill(&a, name_text, version, image);
			dsm_pin_segment(a.segment);
		}
		PG_CATCH();
		{
			LWLockAcquire(directory->lock, LW_EXCLUSIVE);
			memset(&directory->slot[slot], 0, sizeof(ModelSlot));
			ConditionVariableBroadcast(&directory->changed);
			LWLockRelease(directory->lock);
			if (a.segment)
				dsm_detach(a.segment);
			PG_RE_THROW();
		}
		PG_END_TRY();
		LWLockAcquire(directory->lock, LW_EXCLUSIVE);
		{
			ModelSlot  *s = &directory->slot[slot];

			s->handle = dsm_segment_handle(a.segment);
			s->bytes = a.block->total_bytes;
			s->state = SLOT_READY;
			s->refcount = 1;
			s->last_used = ++directory->clock;
		}
		ConditionVariableBroadcast(&directory->changed);
		LWLockRelease(directory->lock);
		handle = 0;
		break;
	}
	ConditionVariableCancelSleep();

	lm = MemoryContextAllocZero(TopMemoryContext, sizeof(LoadedModel));
	lm->name = MemoryContextStrdup(TopMemoryContext, name);
	lm->version = version;
	lm->trained_at = revision;
	lm->slot = slot;
	if (handle != 0)
	{
		PG_TRY();
		{
			a.segment = dsm_attach(handle);
			if (a.segment == NULL)
				elog(ERROR, "shared segment of model \"%s\" version %d is gone", name, version);
		}
		PG_CATCH();
		{
			slot_release(slot);
			PG_RE_THROW();
		}
		PG_END_TRY();
		a.block = dsm_segment_address(a.segment);
	}
	dsm_pin_mapping(a.segment);
	lm->segment = a.segment;
	loaded_from_block(lm, a.block);
	return lm;
}

/* A private copy (backend mode, or no free shared slot). */
static LoadedModel *
private_get(const char *name, text *name_text, int32 version, TimestampTz revision)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "personalize model", ALLOCSET_DEFAULT_SIZES);
	SegmentAlloc a;
	LoadedModel *lm;

	memset(&a, 0, sizeof(a));
	a.cxt = cxt;
	block_fill(&a, name_text, version, NULL);
	lm = MemoryContextAllocZero(cxt, sizeof(LoadedModel));
	lm->name = MemoryContextStrdup(cxt, name);
	lm->version = version;
	lm->trained_at = revision;
	lm->slot = -1;
	lm->cxt = cxt;
	loaded_from_block(lm, a.block);
	/* permanent only once complete */
	MemoryContextSetParent(cxt, TopMemoryContext);
	return lm;
}

/* The SQL of the source the version was trained from, or NULL when unknown. */
const char *
loaded_source(LoadedModel *lm)
{
	if (!lm->source_read)
	{
		MemoryContext keep = lm->cxt ? lm->cxt : TopMemoryContext;
		bool		isnull = true;
		Datum		d = (Datum) 0;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		/* a database still at 0.1.0 has no source column */
		if (SPI_execute("SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = 'personalize.models'::pg_catalog.regclass"
						" AND attname = 'source' AND NOT attisdropped", true, 1) == SPI_OK_SELECT && SPI_processed == 1 &&
			SPI_execute_with_args("SELECT source FROM personalize.models WHERE name = $1 AND version = $2", 2,
								  (Oid[]) {TEXTOID, INT4OID},
								  (Datum[]) {CStringGetTextDatum(lm->name), Int32GetDatum(lm->version)},
								  NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			lm->source = MemoryContextStrdup(keep, TextDatumGetCString(d));
		SPI_finish();
		lm->source_read = true;
	}
	return lm->source;
}

static void
loaded_free(LoadedModel *lm)
{
	if (lm->seen_plan)
		SPI_freeplan(lm->seen_plan);
	if (lm->source && lm->segment)
		pfree(lm->source);
	if (lm->segment)
	{
		dsm_detach(lm->segment);
		slot_release(lm->slot);
		pfree(lm->name);
		pfree(lm);
	}
	else
		MemoryContextDelete(lm->cxt);
}

/* Keep lm, drop other versions of its name, and beyond the limit the least recently used private copy. */
static void
loaded_add(LoadedModel *lm)
{
	LoadedModel **link = &loaded,
			   *victim = NULL;
	int			copies = 0;

	while (*link)
	{
		LoadedModel *e = *link;

		if (strcmp(e->name, lm->name) == 0)
		{
			*link = e->next;
			loaded_free(e);
			continue;
		}
		if (e->segment == NULL)
		{
			copies++;
			if (victim == NULL || e->last_used < victim->last_used)
				victim = e;
		}
		link = &e->next;
	}
	if (copies >= BACKEND_CACHE_SIZE && victim)
	{
		for (link = &loaded; *link != victim; link = &(*link)->next)
			;
		*link = victim->next;
		loaded_free(victim);
	}
	lm->last_used = ++local_clock;
	lm->next = loaded;
	loaded = lm;
}

/* Unmap models whose slot was retired (a newer version is active, or dropped). */
static void
loaded_drop_retired(void)
{
	LoadedModel **link = &loaded;

	if (directory == NULL)
		return;
	while (*link)
	{
		LoadedModel *e = *link;
		bool		retired = false;

		if (e->segment)
		{
			LWLockAcquire(directory->lock, LW_SHARED);
			retired = directory->slot[e->slot].retired;
			LWLockRelease(directory->lock);
		}
		if (retired)
		{
			*link = e->next;
			loaded_free(e);
			continue;
		}
		link = &e->next;
	}
}

static SPIPlanPtr
active_plan(void)
{
	if (active_version_plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare("SELECT version, coalesce(revised_at, trained_at) FROM personalize.models WHERE name = $1 AND active",
									1, (Oid[]) {TEXTOID});

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		active_version_plan = p;
	}
	return active_version_plan;
}

/*
 * The active version of a model. Each call costs one indexed lookup of the
 * active version in the caller's snapshot; a new active version (or a
 * dropped model) is seen at the next call.
 */
LoadedModel *
model_cache_get(text *name_text)
{
	char	   *name = text_to_cstring(name_text);
	Datum		args[1];
	bool		isnull;
	int32		version;
	TimestampTz revision;
	LoadedModel *lm = NULL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = PointerGetDatum(name_text);
	if (SPI_execute_plan(active_plan(), args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "cannot read personalize.models");
	if (SPI_processed == 0)
	{
		if (SPI_execute_with_args("SELECT 1 FROM personalize.models WHERE name = $1", 1,
								  (Oid[]) {TEXTOID}, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "cannot read personalize.models");
		if (SPI_processed > 0)
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
	revision = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();

	loaded_drop_retired();
	for (lm = loaded; lm; lm = lm->next)
		if (lm->version == version && lm->trained_at == revision && strcmp(lm->name, name) == 0 &&
			(lm->segment == NULL || use_shared()))
		{
			lm->last_used = ++local_clock;
			return lm;
		}
	lm = NULL;
	if (use_shared() && strlen(name) < SLOT_NAME_BYTES)
		lm = shared_get(name, name_text, version, revision, NULL);
	if (lm == NULL)
		lm = private_get(name, name_text, version, revision);
	loaded_add(lm);
	return lm;
}

/*
 * Memory for an image being built in this transaction, in shared mode: a
 * segment laid out as a block (image, then room for the derived data), owned
 * by the transaction, so that publishing it is no copy. NULL in backend mode
 * or when no segment can be had.
 */
ModelHeader *
model_cache_new_segment(const ModelHeader *header, void **segment)
{
	ModelBlock	layout;
	uint64		bytes;
	ResourceOwner save = CurrentResourceOwner;
	dsm_segment *seg;
	ModelBlock *block;

	if (!use_shared() || TopTransactionResourceOwner == NULL)
		return NULL;
	bytes = block_layout(header, &layout);
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		seg = dsm_create(bytes, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save;
	}
	PG_END_TRY();
	if (seg == NULL)
		return NULL;
	block = dsm_segment_address(seg);
	memset(block, 0, bytes);
	memcpy(block, &layout, sizeof(ModelBlock));
	*segment = seg;
	return (ModelHeader *) ((char *) block + layout.image_offset);
}

/* Register a segment built by model_cache_new_segment as the shared copy of a version. */
static bool
shared_adopt(const char *name, int32 version, TimestampTz revision, dsm_segment *seg)
{
	ModelBlock *b = dsm_segment_address(seg);
	int			slot;

	block_prepare(b);
	LWLockAcquire(directory->lock, LW_EXCLUSIVE);
	if (slot_find(name, version, revision) >= 0)
	{
		LWLockRelease(directory->lock);
		return true;
	}
	slot = slot_claim();
	if (slot >= 0)
	{
		ModelSlot  *s = &directory->slot[slot];

		strlcpy(s->name, name, SLOT_NAME_BYTES);
		s->version = version;
		s->revision = revision;
		s->state = SLOT_READY;
		s->handle = dsm_segment_handle(seg);
		s->bytes = b->total_bytes;
		s->refcount = 0;		/* this backend's mapping goes with its transaction */
		s->retired = false;
		s->last_used = ++directory->clock;
		dsm_pin_segment(seg);
		ConditionVariableBroadcast(&directory->changed);
	}
	LWLockRelease(directory->lock);
	unpin_deferred();
	return slot >= 0;
}

/* ---------- publishing before commit ---------- */

static void
modelcache_xact_callback(XactEvent event, void *arg)
{
	PendingChange *p;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (pending == NULL || directory == NULL)
	{
		pending = NULL;
		return;
	}
	LWLockAcquire(directory->lock, LW_EXCLUSIVE);
	for (p = pending; p; p = p->next)
		for (int i = 0; i < MODEL_SLOTS; i++)
		{
			ModelSlot  *s = &directory->slot[i];
			bool		mine;

			if (s->state != SLOT_READY || strcmp(s->name, p->name) != 0)
				continue;
			mine = p->version != 0 && s->version == p->version && s->revision == p->revision;
			/* commit: the others of the name are replaced; abort: ours never existed */
			if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) ? !mine : mine)
				slot_retire(s);
		}
	LWLockRelease(directory->lock);
	pending = NULL;				/* allocated in TopTransactionContext */
	unpin_deferred();
}

static void
pending_add(const char *name, int32 version, TimestampTz revision)
{
	PendingChange *p = MemoryContextAllocZero(TopTransactionContext, sizeof(PendingChange));

	if (!xact_callback_registered)
	{
		RegisterXactCallback(modelcache_xact_callback, NULL);
		xact_callback_registered = true;
	}
	strlcpy(p->name, name, SLOT_NAME_BYTES);
	p->version = version;
	p->revision = revision;
	p->next = pending;
	pending = p;
}

/*
 * Load an active version into shared memory before the caller's transaction
 * commits (image: the image in memory, or NULL to read the stored chunks).
 * false in backend mode, or when the version is not active.
 */
bool
model_publish(text *name_text, int32 version, const ModelHeader *image)
{
	char	   *name = text_to_cstring(name_text);
	TimestampTz revision;
	bool		isnull,
				active;
	LoadedModel *lm;

	if (!use_shared() || strlen(name) >= SLOT_NAME_BYTES)
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT active, coalesce(revised_at, trained_at) FROM personalize.models WHERE name = $1 AND version = $2",
							  2, (Oid[]) {TEXTOID, INT4OID}, (Datum[]) {PointerGetDatum(name_text), Int32GetDatum(version)},
							  NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "cannot read personalize.models");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no version %d", name, version)));
	active = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	revision = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_finish();
	if (!active)
		return false;
	pending_add(name, version, revision);
	/* this backend may map it already (it served it) */
	for (lm = loaded; lm; lm = lm->next)
		if (lm->segment && lm->version == version && lm->trained_at == revision && strcmp(lm->name, name) == 0)
			return true;
	/* trained into a segment: it becomes the shared copy as it is */
	if (image && model_held_segment(image))
		return shared_adopt(name, version, revision, model_held_segment(image));
	lm = shared_get(name, name_text, version, revision, image);
	if (lm == NULL)
		return false;
	/* the publisher need not keep it mapped */
	dsm_detach(lm->segment);
	slot_release(lm->slot);
	pfree(lm->name);
	pfree(lm);
	return true;
}

/* personalize.model_prewarm(model_name, version) -> boolean */
PG_FUNCTION_INFO_V1(model_prewarm);
Datum
model_prewarm(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(model_publish(PG_GETARG_TEXT_PP(0), PG_GETARG_INT32(1), NULL));
}

/* personalize.model_unload(model_name): retire every shared version of the name when the transaction commits */
PG_FUNCTION_INFO_V1(model_unload);
Datum
model_unload(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (directory != NULL && strlen(name) < SLOT_NAME_BYTES)
		pending_add(name, 0, 0);
	PG_RETURN_VOID();
}

/* personalize.model_cache_mode() -> 'shared' or 'backend' */
PG_FUNCTION_INFO_V1(model_cache_mode);
Datum
model_cache_mode(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(use_shared() ? "shared" : "backend"));
}

/* personalize.model_cache() -> (name, version, bytes, state, backends, shared) */
PG_FUNCTION_INFO_V1(model_cache);
Datum
model_cache(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	InitMaterializedSRF(fcinfo, 0);
	if (directory != NULL)
	{
		LWLockAcquire(directory->lock, LW_SHARED);
		for (int i = 0; i < MODEL_SLOTS; i++)
		{
			ModelSlot  *s = &directory->slot[i];

			if (s->state == SLOT_FREE)
				continue;
			values[0] = CStringGetTextDatum(s->name);
			values[1] = Int32GetDatum(s->version);
			values[2] = Int64GetDatum((int64) s->bytes);
			values[3] = CStringGetTextDatum(s->state == SLOT_LOADING ? "loading" : s->retired ? "retired" : "ready");
			values[4] = Int32GetDatum(s->refcount);
			values[5] = BoolGetDatum(true);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		LWLockRelease(directory->lock);
	}
	for (LoadedModel *lm = loaded; lm; lm = lm->next)
	{
		if (lm->segment)
			continue;
		values[0] = CStringGetTextDatum(lm->name);
		values[1] = Int32GetDatum(lm->version);
		values[2] = Int64GetDatum((int64) MemoryContextMemAllocated(lm->cxt, true));
		values[3] = CStringGetTextDatum("ready");
		values[4] = Int32GetDatum(1);
		values[5] = BoolGetDatum(false);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* At exit: free slots this backend was loading, release the ones it maps. */
static void
modelcache_exit(int code, Datum arg)
{
	if (directory == NULL)
		return;
	for (LoadedModel *lm = loaded; lm; lm = lm->next)
		if (lm->segment)
			slot_release(lm->slot);
	loaded = NULL;
	LWLockAcquire(directory->lock, LW_EXCLUSIVE);
	for (int i = 0; i < MODEL_SLOTS; i++)
		if (directory->slot[i].state == SLOT_LOADING && directory->slot[i].loader_pid == MyProcPid)
		{
			memset(&directory->slot[i], 0, sizeof(ModelSlot));
			ConditionVariableBroadcast(&directory->changed);
		}
	LWLockRelease(directory->lock);
}

void
modelcache_init(void)
{
	DefineCustomBoolVariable("personalize.shared_models",
							 "Serve models from one copy in shared memory per server.",
							 "Needs pg_personalize in shared_preload_libraries; off: each backend loads its own copy.",
							 &shared_models, true, PGC_USERSET, 0, NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = modelcache_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = modelcache_shmem_startup;
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		/* connected to no database: listed in pg_stat_activity */
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = 1;
		strlcpy(worker.bgw_library_name, "pg_personalize", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "modelcache_reaper_main", BGW_MAXLEN);
		strlcpy(worker.bgw_name, "pg_personalize model reaper", BGW_MAXLEN);
		strlcpy(worker.bgw_type, "pg_personalize model reaper", BGW_MAXLEN);
		RegisterBackgroundWorker(&worker);
	}
}

static void
reaper_exit(int code, Datum arg)
{
	LWLockReleaseAll();			/* a background worker's error path does not */
	LWLockAcquire(directory->lock, LW_EXCLUSIVE);
	directory->reaper = NULL;
	LWLockRelease(directory->lock);
}

/*
 * The model reaper (a background worker, preloading only): destroys the
 * segments of freed slots, so that the backend whose request released a
 * version last does not wait for it.
 */
PGDLLEXPORT void modelcache_reaper_main(Datum arg);

void
modelcache_reaper_main(Datum arg)
{
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SIG_IGN);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	before_shmem_exit(reaper_exit, (Datum) 0);
	LWLockAcquire(directory->lock, LW_EXCLUSIVE);
	directory->reaper = MyLatch;
	LWLockRelease(directory->lock);
	while (!ShutdownRequestPending)
	{
		dsm_handle	doomed[MODEL_SLOTS];
		int			n;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS(); /* absorbs barriers: DROP DATABASE waits for every process */
		LWLockAcquire(directory->lock, LW_EXCLUSIVE);
		n = directory->ndoomed;
		memcpy(doomed, directory->doomed, sizeof(dsm_handle) * n);
		directory->ndoomed = 0;
		LWLockRelease(directory->lock);
		for (int i = 0; i < n; i++)
			dsm_unpin_segment(doomed[i]);
		if (n == 0)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000, PG_WAIT_EXTENSION);
	}
	proc_exit(0);
}

/* In a backend that uses shared models: clean up at exit. */
static void
modelcache_backend_init(void)
{
	static bool done = false;

	if (done || directory == NULL)
		return;
	before_shmem_exit(modelcache_exit, (Datum) 0);
	done = true;
}
