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
#include "storage/dsm.h"
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
	MemoryContext cxt;			/* the list entry, and the image in backend mode */
	struct dsm_segment *segment;	/* shared mode: the image's segment, owned by the transaction */
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

/*
 * Zeroed memory for an image that will be a handle; freed with the
 * transaction. In shared mode a segment that publishing the version adopts
 * without a copy (model_cache_new_segment), so training holds one copy.
 */
ModelHeader *
model_hold_allocate(const ModelHeader *header)
{
	uint64		bytes = header->image_bytes;
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
	h->segment = NULL;
	h->m = model_cache_new_segment(header, (void **) &h->segment);
	if (h->m == NULL)
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
			if (h->segment)
				dsm_detach(h->segment);	/* gone, unless published (pinned) */
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

/* The segment of a held image, or NULL. */
struct dsm_segment *
model_held_segment(const ModelHeader *m)
{
	HeldImage  *h = held_find(m, 0);

	return h ? h->segment : NULL;
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
			memset(VARDATA(buf) + offsetof(ModelHeader, vl_len_), 0, sizeof(int32));
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
	int32		expected = -1;

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
		/* chunks are numbered consecutively; erasure numbers the rewritten ones after the old */
		if (expected < 0)
			expected = chunk;
		if (chunk != expected++ || (m == NULL && len < offsetof(ModelHeader, section)))
			model_corrupt("stored chunks are not contiguous");
		if (m == NULL)
		{
			ModelHeader h;		/* aligned copy: bytea data is not */

			memcpy(&h, VARDATA_ANY(bytes), offsetof(ModelHeader, section));
			if (h.magic != MODEL_MAGIC || h.image_bytes < offsetof(ModelHeader, section))
				model_corrupt("bad header");
			image_bytes = h.image_bytes;
			MemoryContextSwitchTo(caller);
			m = alloc ? alloc(&h, arg) : MemoryContextAllocHuge(caller, image_bytes);
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
		ModelHeader *held = model_hold_allocate(m);

		memcpy(held, m, m->image_bytes);
		pfree(m);
		PG_RETURN_DATUM(model_datum(held));
	}
	SET_VARSIZE(m, m->image_bytes);
	PG_RETURN_POINTER(m);
}

/* ---------- rewriting a stored image in pieces (erasure) ---------- */

/* Bytes [off, off + len) of a stored image whose chunks start at number first; SPI connected. */
static void
read_range(text *name, int32 version, int32 first, uint64 off, uint64 len, char *dst)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {TEXTOID, INT4OID, INT4OID, INT4OID, INT4OID};

	store_plan(&plan, "SELECT substring(bytes FROM $4 FOR $5) FROM personalize.model_chunks"
			   " WHERE name = $1 AND version = $2 AND chunk = $3", 5, types);
	while (len > 0)
	{
		uint64		in = off % MODEL_CHUNK_BYTES;
		uint64		n = Min(len, MODEL_CHUNK_BYTES - in);
		Datum		args[5];
		bool		isnull;
		bytea	   *b;

		args[0] = PointerGetDatum(name);
		args[1] = Int32GetDatum(version);
		args[2] = Int32GetDatum(first + (int32) (off / MODEL_CHUNK_BYTES));
		args[3] = Int32GetDatum((int32) in + 1);
		args[4] = Int32GetDatum((int32) n);
		if (SPI_execute_plan(plan, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			model_corrupt("stored chunks are not contiguous");
		b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (isnull || VARSIZE_ANY_EXHDR(b) != n)
			model_corrupt("stored chunks shorter than the image");
		memcpy(dst, VARDATA_ANY(b), n);
		SPI_freetuptable(SPI_tuptable);
		dst += n;
		off += n;
		len -= n;
	}
}

/* Writes an image as chunks first, first + 1, ... of (name, version); SPI connected. */
typedef struct ChunkWriter
{
	text	   *name;
	int32		version;
	int32		chunk;
	bytea	   *buf;
	Size		used;
} ChunkWriter;

static void
writer_flush(ChunkWriter *w)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, INT4OID, INT4OID, BYTEAOID};
	Datum		args[4];

	if (w->used == 0)
		return;
	store_plan(&plan, "INSERT INTO personalize.model_chunks (name, version, chunk, bytes) VALUES ($1, $2, $3, $4)",
			   4, types);
	SET_VARSIZE(w->buf, VARHDRSZ + w->used);
	args[0] = PointerGetDatum(w->name);
	args[1] = Int32GetDatum(w->version);
	args[2] = Int32GetDatum(w->chunk++);
	args[3] = PointerGetDatum(w->buf);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "cannot insert into personalize.model_chunks");
	w->used = 0;
}

static void
writer_put(ChunkWriter *w, const void *src, Size len)
{
	while (len > 0)
	{
		Size		n = Min(len, MODEL_CHUNK_BYTES - w->used);

		if (src)
			memcpy(VARDATA(w->buf) + w->used, src, n);
		else
			memset(VARDATA(w->buf) + w->used, 0, n);
		w->used += n;
		if (src)
			src = (const char *) src + n;
		len -= n;
		if (w->used == MODEL_CHUNK_BYTES)
			writer_flush(w);
	}
}

/* Copy bytes [off, off + len) of the old image to the writer, a megabyte at a time. */
static void
copy_range(text *name, int32 version, int32 first, uint64 off, uint64 len, ChunkWriter *w, char *block)
{
	while (len > 0)
	{
		uint64		n = Min(len, 1024 * 1024);

		CHECK_FOR_INTERRUPTS();
		read_range(name, version, first, off, n, block);
		writer_put(w, block, n);
		off += n;
		len -= n;
	}
}

/*
 * personalize.model_forget_user(model_name, version, user_id) -> bytes of the
 * rewritten image, or NULL when the stored model does not know the user.
 *
 * The stored image is rewritten piece by piece, never held whole: what
 * model_without_user_index does in memory (rows of per-user and per-pair
 * sections removed, CSR starts shifted, popularity corrected), streamed from
 * the old chunks into new ones numbered after them; then the old are deleted.
 * Memory: the header, the user ids and the item popularity, and one megabyte.
 */
PG_FUNCTION_INFO_V1(model_forget_user);
Datum
model_forget_user(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	int32		version = PG_GETARG_INT32(1);
	int64		user = PG_GETARG_INT64(2);
	int32		first,
				last;
	ModelHeader fixed;
	ModelHeader *old;
	Size		dir_bytes;
	const ModelSection *ids_entry,
			   *ptr_entry,
			   *items_entry,
			   *weights_entry;
	int64	   *ids;
	int64		start_end[2],
				start,
				removed;
	int32		lo = 0,
				hi,
				u;
	int32	   *user_items;
	float	   *user_weights;
	ModelBuilder b;
	ChunkWriter w;
	char	   *block;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT min(chunk), max(chunk) FROM personalize.model_chunks WHERE name = $1 AND version = $2",
							  2, (Oid[]) {TEXTOID, INT4OID}, (Datum[]) {PointerGetDatum(name), Int32GetDatum(version)},
							  NULL, false, 1) != SPI_OK_SELECT)	/* sees this transaction's rewrites */
		elog(ERROR, "cannot read personalize.model_chunks");
	first = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" version %d has no stored image", text_to_cstring(name), version)));
	last = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	/* the header and directory, checked as far as this rewrite relies on them */
	read_range(name, version, first, 0, offsetof(ModelHeader, section), (char *) &fixed);
	if (fixed.magic != MODEL_MAGIC || fixed.format != MODEL_FORMAT || fixed.nsections < 0 ||
		fixed.nsections > MODEL_MAX_SECTIONS || fixed.nusers < 1 || fixed.nnz < 0 || fixed.nitems < 0)
		model_corrupt("bad header");
	dir_bytes = offsetof(ModelHeader, section) + sizeof(ModelSection) * fixed.nsections;
	old = palloc(dir_bytes);
	read_range(name, version, first, 0, dir_bytes, (char *) old);
	for (int i = 0; i < old->nsections; i++)
	{
		const ModelSection *s = &old->section[i];

		if (s->offset < dir_bytes || s->offset > old->image_bytes || s->bytes > old->image_bytes - s->offset ||
			model_element_size(s->element) == 0)
			model_corrupt(psprintf("section %d lies outside the image", s->kind));
	}
	ptr_entry = model_section_entry(old, SECTION_SEEN_INDPTR);
	ids_entry = model_section_entry(old, SECTION_USER_IDS);
	items_entry = model_section_entry(old, SECTION_SEEN_ITEMS);
	weights_entry = model_section_entry(old, SECTION_SEEN_WEIGHTS);
	if (ptr_entry == NULL || ids_entry == NULL || items_entry == NULL || weights_entry == NULL)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	if (ids_entry->bytes != sizeof(int64) * (uint64) old->nusers ||
		ptr_entry->bytes != sizeof(int64) * ((uint64) old->nusers + 1) ||
		items_entry->bytes != sizeof(int32) * (uint64) old->nnz || weights_entry->bytes != sizeof(float) * (uint64) old->nnz)
		model_corrupt("user-item matrix");

	/* the user, by binary search in the ascending ids */
	ids = MemoryContextAllocHuge(CurrentMemoryContext, ids_entry->bytes);
	read_range(name, version, first, ids_entry->offset, ids_entry->bytes, (char *) ids);
	hi = old->nusers;
	while (lo < hi)
	{
		int32		mid = lo + (hi - lo) / 2;

		if (ids[mid] < user)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == old->nusers || ids[lo] != user)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	u = lo;
	pfree(ids);
	read_range(name, version, first, ptr_entry->offset + sizeof(int64) * u, 2 * sizeof(int64), (char *) start_end);
	start = start_end[0];
	removed = start_end[1] - start_end[0];
	if (start < 0 || removed < 0 || start + removed > old->nnz)
		model_corrupt("indptr");
	user_items = palloc(sizeof(int32) * Max(removed, 1));
	user_weights = palloc(sizeof(float) * Max(removed, 1));
	read_range(name, version, first, items_entry->offset + sizeof(int32) * start, sizeof(int32) * removed, (char *) user_items);
	read_range(name, version, first, weights_entry->offset + sizeof(float) * start, sizeof(float) * removed, (char *) user_weights);

	/* the new directory: the same sections, one user and their pairs fewer */
	model_builder_init(&b, old->algorithm);
	memcpy(&b.hdr, old, offsetof(ModelHeader, section));
	b.hdr.nsections = 0;
	b.hdr.nusers = old->nusers - 1;
	b.hdr.nnz = old->nnz - removed;
	for (int i = 0; i < old->nsections; i++)
	{
		const ModelSection *s = &old->section[i];
		uint64		rows = s->rows == ROWS_USERS ? (uint64) old->nusers : s->rows == ROWS_PAIRS ? (uint64) old->nnz :
			s->rows == ROWS_USERS_PLUS_ONE ? (uint64) old->nusers + 1 : 1;
		uint64		drop = s->rows == ROWS_USERS || s->rows == ROWS_USERS_PLUS_ONE ? 1 :
			s->rows == ROWS_PAIRS ? (uint64) removed : 0;

		if (rows == 0 || s->bytes % rows != 0)
			model_corrupt(psprintf("section %d: not a whole number of rows", s->kind));
		model_reserve(&b, s->kind, s->element, s->rows,
					  (drop == 0 ? s->bytes : s->bytes / rows * (rows - drop)) / model_element_size(s->element));
	}
	model_layout(&b);

	/* stream: header, then every section at its new offset */
	memset(&w, 0, sizeof(w));
	w.name = name;
	w.version = version;
	w.chunk = last + 1;
	w.buf = palloc(VARHDRSZ + MODEL_CHUNK_BYTES);
	block = palloc(1024 * 1024);
	b.hdr.vl_len_ = 0;
	writer_put(&w, &b.hdr, offsetof(ModelHeader, section));
	writer_put(&w, b.section, sizeof(ModelSection) * b.hdr.nsections);
	for (int i = 0; i < old->nsections; i++)
	{
		const ModelSection *s = &old->section[i];
		uint64		written = (uint64) (w.chunk - last - 1) * MODEL_CHUNK_BYTES + w.used;

		writer_put(&w, NULL, b.section[i].offset - written);	/* alignment */
		if (s->rows == ROWS_USERS || s->rows == ROWS_PAIRS)
		{
			uint64		rows = s->rows == ROWS_USERS ? (uint64) old->nusers : (uint64) old->nnz;
			uint64		width = s->bytes / rows;
			uint64		cut = s->rows == ROWS_USERS ? (uint64) u : (uint64) start;
			uint64		drop = s->rows == ROWS_USERS ? 1 : (uint64) removed;

			copy_range(name, version, first, s->offset, width * cut, &w, block);
			copy_range(name, version, first, s->offset + width * (cut + drop), width * (rows - cut - drop), &w, block);
		}
		else if (s->kind == SECTION_SEEN_INDPTR && s->element == ELEMENT_INT64)
		{
			/* new[i] = old[i] before the user, old[i + 1] - removed from the user on */
			const int32 per = 1024 * 1024 / sizeof(int64) - 1;

			for (int32 i0 = 0; i0 <= b.hdr.nusers; i0 += per)
			{
				int32		n = Min(per, b.hdr.nusers + 1 - i0);
				int64	   *v = (int64 *) block;

				CHECK_FOR_INTERRUPTS();
				read_range(name, version, first, s->offset + sizeof(int64) * i0, sizeof(int64) * (n + 1), block);
				for (int32 j = 0; j < n; j++)
					v[j] = i0 + j < u ? v[j] : v[j + 1] - removed;
				writer_put(&w, v, sizeof(int64) * n);
			}
		}
		else if (s->rows == ROWS_USERS_PLUS_ONE)
			model_corrupt(psprintf("section %d: rows per user plus one, but not the user-item matrix", s->kind));
		else if (s->kind == SECTION_ITEM_POPULARITY && s->element == ELEMENT_FLOAT4 &&
				 s->bytes == sizeof(float) * (uint64) old->nitems)
		{
			float	   *pop = MemoryContextAllocHuge(CurrentMemoryContext, Max(s->bytes, 1));

			read_range(name, version, first, s->offset, s->bytes, (char *) pop);
			for (int64 j = 0; j < removed; j++)
			{
				if (user_items[j] < 0 || user_items[j] >= old->nitems)
					model_corrupt("indices");
				pop[user_items[j]] = Max(0.0f, pop[user_items[j]] - user_weights[j]);
			}
			writer_put(&w, pop, s->bytes);
			pfree(pop);
		}
		else
			copy_range(name, version, first, s->offset, s->bytes, &w, block);
	}
	if ((uint64) (w.chunk - last - 1) * MODEL_CHUNK_BYTES + w.used != b.hdr.image_bytes)
		elog(ERROR, "rewritten model image has the wrong length");
	writer_flush(&w);
	if (SPI_execute_with_args("DELETE FROM personalize.model_chunks WHERE name = $1 AND version = $2 AND chunk <= $3",
							  3, (Oid[]) {TEXTOID, INT4OID, INT4OID},
							  (Datum[]) {PointerGetDatum(name), Int32GetDatum(version), Int32GetDatum(last)},
							  NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "cannot delete from personalize.model_chunks");
	SPI_finish();
	PG_RETURN_INT64((int64) b.hdr.image_bytes);
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
