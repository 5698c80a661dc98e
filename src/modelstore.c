/*
 * modelstore.c — models of any size. A trained image is stored in rows of
 * personalize.model_chunks (MODEL_CHUNK_BYTES each, uncompressed) in the
 * transaction that inserts its registry row, read back chunk by chunk, and
 * rewritten by erasure.
 *
 * An image over personalize.model_value_limit (1 GB, the limit of a value)
 * cannot be a personalize.model value: the training aggregate keeps it in
 * memory of the current transaction and returns a small handle instead,
 * which personalize.train stores. A handle is valid only in the backend and
 * transaction that made it; the image is freed at the end of the
 * transaction (commit or error) or as soon as it is stored.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "model.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#define MODEL_HANDLE_MAGIC	0x504d4844	/* "PMHD" */

int			model_value_limit = MaxAllocSize;

typedef struct ModelHandle
{
	int32		vl_len_;
	int32		magic;
	int32		pid;
	uint32		lxid;			/* local transaction id of the transaction that made it */
	uint64		id;
	uint64		image_bytes;
} ModelHandle;

/* Images held for handles: allocated under TopTransactionContext. */
typedef struct HeldImage
{
	uint64		id;
	ModelHeader *m;
	MemoryContext cxt;
	struct HeldImage *next;
} HeldImage;

static HeldImage *held_images = NULL;
static uint64 held_next_id = 1;
static bool held_callback_registered = false;

/* The contexts go with TopTransactionContext; forget the list. */
static void
held_images_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		held_images = NULL;
}

/* Zeroed memory for an image that will be a handle; freed with the transaction. */
ModelHeader *
model_hold_allocate(uint64 bytes)
{
	MemoryContext cxt;
	HeldImage  *h;

	if (!held_callback_registered)
	{
		RegisterXactCallback(held_images_xact_callback, NULL);
		held_callback_registered = true;
	}
	cxt = AllocSetContextCreate(TopTransactionContext, "personalize model image", ALLOCSET_DEFAULT_SIZES);
	h = MemoryContextAlloc(cxt, sizeof(HeldImage));
	h->id = held_next_id++;
	h->cxt = cxt;
	h->m = MemoryContextAllocExtended(cxt, bytes, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	h->next = held_images;
	held_images = h;
	return h->m;
}

static HeldImage *
held_find(const ModelHeader *m, uint64 id)
{
	for (HeldImage *h = held_images; h; h = h->next)
		if ((m && h->m == m) || (!m && h->id == id))
			return h;
	return NULL;
}

/* Free a held image now (it has been stored); no-op for an image that is a value. */
void
model_release(ModelHeader *m)
{
	HeldImage **link;

	for (link = &held_images; *link; link = &(*link)->next)
		if ((*link)->m == m)
		{
			HeldImage  *h = *link;

			*link = h->next;
			MemoryContextDelete(h->cxt);
			return;
		}
}

/* The datum of an image: the image itself when it is a value, else a handle. */
Datum
model_datum(ModelHeader *m)
{
	HeldImage  *h;
	ModelHandle *handle;

	if (m->vl_len_ != 0)
		return PointerGetDatum(m);
	h = held_find(m, 0);
	if (h == NULL)
		elog(ERROR, "model image is neither a value nor held");
	handle = palloc0(sizeof(ModelHandle));
	SET_VARSIZE(handle, sizeof(ModelHandle));
	handle->magic = MODEL_HANDLE_MAGIC;
	handle->pid = MyProcPid;
	handle->lxid = MyProc->lxid;
	handle->id = h->id;
	handle->image_bytes = m->image_bytes;
	return PointerGetDatum(handle);
}

bool
model_is_handle(const struct varlena *v)
{
	return VARSIZE(v) == sizeof(ModelHandle) && ((const ModelHandle *) v)->magic == MODEL_HANDLE_MAGIC;
}

/* The image a handle stands for, in this backend and transaction only. */
ModelHeader *
model_from_handle(const struct varlena *v)
{
	const ModelHandle *handle = (const ModelHandle *) v;
	HeldImage  *h = NULL;

	if (handle->pid == MyProcPid && handle->lxid == MyProc->lxid)
		h = held_find(NULL, handle->id);
	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model of " UINT64_FORMAT " bytes is no longer available", handle->image_bytes),
				 errdetail("A model larger than personalize.model_value_limit exists as a value only in the transaction that trained it."),
				 errhint("Train it with personalize.train(), which stores it in personalize.model_chunks.")));
	return h->m;
}

/* A copy of an image as a personalize.model value (its varlena header set). */
struct varlena *
model_as_value(const ModelHeader *m)
{
	ModelHeader *copy;

	if (m->image_bytes > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model of " UINT64_FORMAT " bytes is larger than a value can be (1 GB)", m->image_bytes),
				 errhint("Models this large are kept in personalize.model_chunks; pg_dump carries them.")));
	copy = MemoryContextAllocHuge(CurrentMemoryContext, m->image_bytes);
	memcpy(copy, m, m->image_bytes);
	SET_VARSIZE(copy, m->image_bytes);
	return (struct varlena *) copy;
}

/* ---------- chunks ---------- */

static SPIPlanPtr
store_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}

/* Write the image as chunks 0, 1, ... of (name, version); the caller has SPI connected. */
static void
write_chunks(text *name, int32 version, const ModelHeader *m)
{
	static SPIPlanPtr insert_plan = NULL;
	Oid			types[4] = {TEXTOID, INT4OID, INT4OID, BYTEAOID};
	bytea	   *buf = palloc(VARHDRSZ + Min(m->image_bytes, MODEL_CHUNK_BYTES));
	Datum		args[4];
	int32		chunk = 0;

	store_plan(&insert_plan,
			   "INSERT INTO personalize.model_chunks (name, version, chunk, bytes) VALUES ($1, $2, $3, $4)",
			   4, types);
	args[0] = PointerGetDatum(name);
	args[1] = Int32GetDatum(version);
	for (uint64 off = 0; off < m->image_bytes; off += MODEL_CHUNK_BYTES, chunk++)
	{
		Size		len = Min(m->image_bytes - off, MODEL_CHUNK_BYTES);

		CHECK_FOR_INTERRUPTS();
		memcpy(VARDATA(buf), (const char *) m + off, len);
		if (off == 0)			/* stored images carry no varlena header */
			((ModelHeader *) VARDATA(buf))->vl_len_ = 0;
		SET_VARSIZE(buf, VARHDRSZ + len);
		args[2] = Int32GetDatum(chunk);
		args[3] = PointerGetDatum(buf);
		if (SPI_execute_plan(insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "cannot insert into personalize.model_chunks");
	}
	pfree(buf);
}

void
model_write_chunks(text *name, int32 version, const ModelHeader *m)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	write_chunks(name, version, m);
	SPI_finish();
}

/*
 * The stored image of (name, version), read chunk by chunk into memory that
 * alloc gives once the header is read (huge memory of the current context
 * when alloc is NULL). Only one chunk at a time is held besides it.
 */
ModelHeader *
model_read_chunks(text *name, int32 version, ModelImageAlloc alloc, void *arg)
{
	static SPIPlanPtr select_plan = NULL;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		args[2];
	Portal		portal;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext chunk_cxt = AllocSetContextCreate(caller, "model chunk", ALLOCSET_DEFAULT_SIZES);
	ModelHeader *m = NULL;
	uint64		image_bytes = 0,
				off = 0;
	int32		expected = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	store_plan(&select_plan,
			   "SELECT chunk, bytes FROM personalize.model_chunks WHERE name = $1 AND version = $2 ORDER BY chunk",
			   2, types);
	args[0] = PointerGetDatum(name);
	args[1] = Int32GetDatum(version);
	portal = SPI_cursor_open(NULL, select_plan, args, NULL, true);
	for (;;)
	{
		bool		isnull;
		int32		chunk;
		bytea	   *bytes;
		Size		len;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 1);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(chunk_cxt);
		chunk = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		bytes = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		len = VARSIZE_ANY_EXHDR(bytes);
		if (chunk != expected++ || (m == NULL && len < offsetof(ModelHeader, section)))
			model_corrupt("stored chunks are not contiguous");
		if (m == NULL)
		{
			const ModelHeader *h = (const ModelHeader *) VARDATA_ANY(bytes);

			if (h->magic != MODEL_MAGIC || h->image_bytes < offsetof(ModelHeader, section))
				model_corrupt("bad header");
			image_bytes = h->image_bytes;
			MemoryContextSwitchTo(caller);
			m = alloc ? alloc(h, arg) : MemoryContextAllocHuge(caller, image_bytes);
			MemoryContextSwitchTo(chunk_cxt);
		}
		if (len > image_bytes - off)
			model_corrupt("stored chunks longer than the image");
		memcpy((char *) m + off, VARDATA_ANY(bytes), len);
		off += len;
		MemoryContextSwitchTo(old);
		MemoryContextReset(chunk_cxt);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(chunk_cxt);
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" version %d has no stored image", text_to_cstring(name), version)));
	if (off != image_bytes)
		model_corrupt("stored chunks shorter than the image");
	return m;
}

/* Whether this database stores models in chunks (0.2.0 and later). */
bool
model_chunks_exist(void)
{
	bool		exist;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pg_catalog.to_regclass('personalize.model_chunks') IS NOT NULL", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "cannot look up personalize.model_chunks");
	exist = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool) {false}));
	SPI_finish();
	return exist;
}

/*
 * The stored image of a version, in the current memory context. A database
 * still at 0.1.0 (library updated, ALTER EXTENSION UPDATE not yet run) keeps
 * it in the column personalize.models.model: read it from there.
 */
ModelHeader *
model_load_stored(text *name, int32 version)
{
	ModelHeader *m;
	MemoryContext caller = CurrentMemoryContext;

	if (model_chunks_exist())
		return model_read_chunks(name, version, NULL, NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT model FROM personalize.models WHERE name = $1 AND version = $2",
							  2, (Oid[]) {TEXTOID, INT4OID}, (Datum[]) {PointerGetDatum(name), Int32GetDatum(version)},
							  NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "cannot read model \"%s\" version %d", text_to_cstring(name), version);
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(caller);

		m = (ModelHeader *) model_as_value(model_check(value));	/* a copy that outlives SPI */
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return m;
}

/* personalize.model_store(model_name, version, model) -> bytes: write the chunks of a new version */
PG_FUNCTION_INFO_V1(model_store);
Datum
model_store(PG_FUNCTION_ARGS)
{
	ModelHeader *m = model_check(PG_GETARG_DATUM(2));
	uint64		bytes = m->image_bytes;

	model_write_chunks(PG_GETARG_TEXT_PP(0), PG_GETARG_INT32(1), m);
	/* an active version is in shared memory before the transaction commits */
	model_publish(PG_GETARG_TEXT_PP(0), PG_GETARG_INT32(1), m);
	model_release(m);
	PG_RETURN_INT64((int64) bytes);
}

/* personalize.model_export(model_name, version) -> model */
PG_FUNCTION_INFO_V1(model_export);
Datum
model_export(PG_FUNCTION_ARGS)
{
	ModelHeader *m = model_read_chunks(PG_GETARG_TEXT_PP(0), PG_GETARG_INT32(1), NULL, NULL);

	model_validate(m, m->image_bytes);
	if (m->image_bytes > (uint64) model_value_limit)
	{
		ModelHeader *held = model_hold_allocate(m->image_bytes);

		memcpy(held, m, m->image_bytes);
		pfree(m);
		PG_RETURN_DATUM(model_datum(held));
	}
	SET_VARSIZE(m, m->image_bytes);
	PG_RETURN_POINTER(m);
}

/*
 * personalize.model_forget_user(model_name, version, user_id) -> bytes of the
 * rewritten image, or NULL when the stored model does not know the user.
 */
PG_FUNCTION_INFO_V1(model_forget_user);
Datum
model_forget_user(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	int32		version = PG_GETARG_INT32(1);
	ModelHeader *m = model_read_chunks(name, version, NULL, NULL);
	ModelHeader *r;
	int32		u;
	uint64		bytes;

	if (model_section_entry(m, SECTION_SEEN_INDPTR) == NULL || (u = model_find_user(m, PG_GETARG_INT64(2))) < 0)
	{
		pfree(m);
		PG_RETURN_NULL();
	}
	r = model_without_user_index(m, u);
	pfree(m);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM personalize.model_chunks WHERE name = $1 AND version = $2",
							  2, (Oid[]) {TEXTOID, INT4OID}, (Datum[]) {PointerGetDatum(name), Int32GetDatum(version)},
							  NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "cannot delete from personalize.model_chunks");
	write_chunks(name, version, r);
	SPI_finish();
	bytes = r->image_bytes;
	model_release(r);
	PG_RETURN_INT64((int64) bytes);
}

void
modelstore_init(void)
{
	DefineCustomIntVariable("personalize.model_value_limit",
							"Models with a larger image are handles valid only in the transaction that trained them.",
							"Bytes; at most 1 GB, the limit of a value. Lower it only to test the handle path.",
							&model_value_limit, MaxAllocSize, 1024, MaxAllocSize,
							PGC_USERSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}
