/*
 * nodeconsent.c — personalize.has_consent_on_node(subject_id, purpose): the
 * consent check that protect() writes into the policy of a Citus table.
 *
 * Citus runs a policy inside each shard query on the node that holds the
 * shard; there a subquery is refused and a query on a Citus table fails
 * ("cannot execute a distributed query from a query on a shard"). So this
 * function reads the node's own copy of personalize.consent_state (a reference
 * table: every node has a placement, written in the same two-phase commit as
 * the decision) directly, with the statement's snapshot, and asks nothing of
 * Citus's planner. Without Citus it reads personalize.consent_state itself.
 *
 * Per statement (fn_extra lives as long as the executor's expression state):
 * answers are remembered per subject; once the distinct subjects probed pass a
 * quarter of the replica's rows, one scan loads every granted subject instead
 * of probing the primary key row by row. The answers are tied to the snapshot
 * they were read with, so a withdrawal shows from the next statement on.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

typedef struct ConsentAnswer
{
	int64		subject;
	char		status;			/* simplehash's slot state */
	bool		granted;
} ConsentAnswer;

#define SH_PREFIX consent_answers
#define SH_ELEMENT_TYPE ConsentAnswer
#define SH_KEY_TYPE int64
#define SH_KEY subject
#define SH_HASH_KEY(tb, key) hash_bytes_uint32_extended((uint32) (key), (uint64) (key) >> 32)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct NodeConsent
{
	Oid			readrel;		/* consent_state, or its placement on this node */
	Oid			pkey;			/* its primary key (subject_id, purpose), if any */
	AttrNumber	att_subject;
	AttrNumber	att_purpose;
	AttrNumber	att_granted;
	text	   *purpose;
	bool		purpose_const;	/* the argument is a constant (as in protect()'s policy) */
	Pointer		purpose_arg;	/* then: the argument pointer last seen equal to purpose */
	/* the snapshot the answers were read with */
	TransactionId xmin;
	TransactionId xmax;
	CommandId	curcid;
	uint64		completions;
	consent_answers_hash *answers;
	bool		complete;		/* answers hold every granted subject */
	double		load_after;		/* distinct subjects probed before one full scan */
} NodeConsent;

/* A Citus catalog table, or InvalidOid when Citus is not installed here. */
static Oid
citus_catalog(const char *name)
{
	return get_relname_relid(name, PG_CATALOG_NAMESPACE);
}

/*
 * The shard id of a Citus table with exactly one shard (a reference table),
 * 0 when the relation is not a Citus table; more shards is an error.
 */
static int64
single_shard_of(Oid relid)
{
	Oid			shards = citus_catalog("pg_dist_shard");
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	AttrNumber	att_relid,
				att_shard;
	int64		shard = 0;
	int			n = 0;

	if (!OidIsValid(shards))
		return 0;
	rel = table_open(shards, AccessShareLock);
	att_relid = get_attnum(shards, "logicalrelid");
	att_shard = get_attnum(shards, "shardid");
	if (att_relid == InvalidAttrNumber || att_shard == InvalidAttrNumber)
		elog(ERROR, "pg_dist_shard has no column logicalrelid or shardid");
	ScanKeyInit(&key, att_relid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	/* the catalog is small: a heap scan, no assumption about its indexes */
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull;

		shard = DatumGetInt64(heap_getattr(tup, att_shard, RelationGetDescr(rel), &isnull));
		n++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (n > 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("personalize.consent_state has %d shards on this node, expected a reference table", n),
				 errhint("Run SELECT personalize.distribute_catalog() on the coordinator.")));
	return shard;
}

static AttrNumber
column_of(Oid relid, const char *name)
{
	AttrNumber	att = get_attnum(relid, name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "personalize.consent_state has no column \"%s\"", name);
	return att;
}

static void
node_consent_locate(NodeConsent *nc)
{
	Oid			ns = get_namespace_oid("personalize", false);
	Oid			logical = get_relname_relid("consent_state", ns);
	int64		shard;
	Relation	rel;
	AclResult	acl;

	if (!OidIsValid(logical))
		elog(ERROR, "relation personalize.consent_state does not exist");
	shard = single_shard_of(logical);
	if (shard == 0)
		nc->readrel = logical;
	else
	{
		char		placement[NAMEDATALEN];

		snprintf(placement, sizeof(placement), "consent_state_" INT64_FORMAT, shard);
		nc->readrel = get_relname_relid(placement, ns);
		if (!OidIsValid(nc->readrel))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("personalize.consent_state has no placement on this node"),
					 errdetail("Consent is checked on the node that holds the rows; it reads the node's copy of the reference table."),
					 errhint("Replicate reference tables to every node: SELECT replicate_reference_tables().")));
	}

	/* closed, not open: the caller must be allowed to read consent state */
	acl = pg_class_aclcheck(nc->readrel, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, "consent_state");
	if (check_enable_rls(nc->readrel, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("row-level security on personalize.consent_state is not supported")));

	rel = table_open(nc->readrel, AccessShareLock);
	nc->pkey = RelationGetPrimaryKeyIndex(rel);
	nc->load_after = Max(64.0, rel->rd_rel->reltuples / 4.0);
	table_close(rel, NoLock);
	nc->att_subject = column_of(nc->readrel, "subject_id");
	nc->att_purpose = column_of(nc->readrel, "purpose");
	nc->att_granted = column_of(nc->readrel, "granted");
}

static bool
same_snapshot(const NodeConsent *nc, Snapshot snap)
{
	return nc->xmin == snap->xmin && nc->xmax == snap->xmax && nc->curcid == snap->curcid &&
		nc->completions == snap->snapXactCompletionCount;
}

static bool
purpose_matches(const NodeConsent *nc, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, nc->att_purpose, desc, &isnull);
	text	   *p;
	bool		eq;

	if (isnull)
		return false;
	p = DatumGetTextPP(d);
	eq = VARSIZE_ANY_EXHDR(p) == VARSIZE_ANY_EXHDR(nc->purpose) &&
		memcmp(VARDATA_ANY(p), VARDATA_ANY(nc->purpose), VARSIZE_ANY_EXHDR(p)) == 0;
	if ((Pointer) p != DatumGetPointer(d))
		pfree(p);
	return eq;
}

static bool
tuple_granted(const NodeConsent *nc, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, nc->att_granted, desc, &isnull);

	return !isnull && DatumGetBool(d);
}

/* The latest decision of one subject, by its primary key. */
static bool
probe(NodeConsent *nc, int64 subject, Snapshot snap)
{
	Relation	rel = table_open(nc->readrel, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		granted = false;

	ScanKeyInit(&key, nc->att_subject, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(subject));
	scan = systable_beginscan(rel, nc->pkey, true, snap, 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		if (purpose_matches(nc, tup, RelationGetDescr(rel)))
		{
			granted = tuple_granted(nc, tup, RelationGetDescr(rel));
			break;
		}
	}
	systable_endscan(scan);
	table_close(rel, NoLock);
	return granted;
}

/* Every granted subject of the purpose, in one scan. */
static void
load_all(NodeConsent *nc, Snapshot snap)
{
	Relation	rel = table_open(nc->readrel, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, snap, 0, NULL);
	HeapTuple	tup;
	uint64		n = 0;

	consent_answers_reset(nc->answers);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull;
		Datum		subject;
		bool		found;
		ConsentAnswer *a;

		if ((++n & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		if (!purpose_matches(nc, tup, desc) || !tuple_granted(nc, tup, desc))
			continue;
		subject = heap_getattr(tup, nc->att_subject, desc, &isnull);
		if (isnull)
			continue;
		a = consent_answers_insert(nc->answers, DatumGetInt64(subject), &found);
		a->granted = true;
	}
	systable_endscan(scan);
	table_close(rel, NoLock);
	nc->complete = true;
}

PG_FUNCTION_INFO_V1(has_consent_on_node);
Datum
has_consent_on_node(PG_FUNCTION_ARGS)
{
	int64		subject = PG_GETARG_INT64(0);
	text	   *purpose = PG_GETARG_TEXT_PP(1);
	NodeConsent *nc = (NodeConsent *) fcinfo->flinfo->fn_extra;
	Snapshot	snap = GetActiveSnapshot();
	ConsentAnswer *a;
	bool		found;
	bool		same_purpose;

	if (nc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		nc = palloc0(sizeof(NodeConsent));
		node_consent_locate(nc);
		nc->answers = consent_answers_create(fcinfo->flinfo->fn_mcxt, 256, NULL);
		nc->purpose_const = get_fn_expr_arg_stable(fcinfo->flinfo, 1);
		MemoryContextSwitchTo(old);
		fcinfo->flinfo->fn_extra = nc;
	}
	/*
	 * The purpose of a policy is a constant: the same pointer row after row,
	 * compared once. Any other argument is compared by value on every call
	 * (a per-row value may reuse the previous row's address).
	 */
	if (nc->purpose == NULL)
		same_purpose = false;
	else if (nc->purpose_const && (Pointer) purpose == nc->purpose_arg)
		same_purpose = true;
	else
	{
		same_purpose = VARSIZE_ANY_EXHDR(purpose) == VARSIZE_ANY_EXHDR(nc->purpose) &&
			memcmp(VARDATA_ANY(purpose), VARDATA_ANY(nc->purpose), VARSIZE_ANY_EXHDR(purpose)) == 0;
		if (same_purpose)
			nc->purpose_arg = (Pointer) purpose;
	}
	if (!same_purpose || !same_snapshot(nc, snap))
	{
		if (nc->purpose != NULL)
			pfree(nc->purpose);
		nc->purpose = (text *) MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, VARSIZE_ANY(purpose));
		memcpy(nc->purpose, purpose, VARSIZE_ANY(purpose));
		nc->purpose_arg = (Pointer) purpose;
		nc->xmin = snap->xmin;
		nc->xmax = snap->xmax;
		nc->curcid = snap->curcid;
		nc->completions = snap->snapXactCompletionCount;
		consent_answers_reset(nc->answers);
		nc->complete = false;
	}

	if (nc->complete)
	{
		a = consent_answers_lookup(nc->answers, subject);
		PG_RETURN_BOOL(a != NULL && a->granted);
	}
	a = consent_answers_lookup(nc->answers, subject);
	if (a != NULL)
		PG_RETURN_BOOL(a->granted);
	if (!OidIsValid(nc->pkey) || nc->answers->members >= nc->load_after)
	{
		load_all(nc, snap);
		a = consent_answers_lookup(nc->answers, subject);
		PG_RETURN_BOOL(a != NULL && a->granted);
	}
	a = consent_answers_insert(nc->answers, subject, &found);
	a->granted = probe(nc, subject, snap);
	PG_RETURN_BOOL(a->granted);
}
