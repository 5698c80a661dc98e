/*
 * progress.c — progress of train() and refresh() for other sessions.
 *
 * PostgreSQL 15 offers extensions no progress command of their own, and
 * shared memory only when the library is preloaded. Every backend already has
 * twenty int64 progress slots in its PgBackendStatus entry (shared memory,
 * read by the pg_stat_progress_* views under the same visibility rules),
 * meant for VACUUM, ANALYZE, CLUSTER, CREATE INDEX, BASE_BACKUP and COPY. We
 * publish our record there only while none of those runs in the backend
 * (st_progress_command is PROGRESS_COMMAND_INVALID, so no pg_stat_progress_*
 * view shows our numbers), and read it back in personalize.training_progress().
 * This works with or without shared_preload_libraries.
 *
 * The slots are not ours alone: building an index outside CREATE INDEX (the
 * TOAST table of a CREATE TABLE ... AS, for one) writes the build's slots
 * 9-12, 15 and 16 with no progress command running. So the record avoids
 * those slots, carries a checksum (the reader skips a record that another
 * writer touched), and is kept in backend-local memory and published whole
 * at every update, so that a clobbered record heals at the next one.
 *
 * A record counts only while its backend still runs the statement that
 * published it (its start time is in the record), so an error or a cancel
 * leaves nothing stale and needs no cleanup. Parallel workers publish the
 * rows they read, tagged with the leader's pid; the reader adds them to the
 * leader's row, and serialize/combine move them to the leader's own count.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "progress.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/backend_progress.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#define PROGRESS_MARKER		INT64CONST(0x5047505A50524F47)	/* "PGPZPROG" */

/* The record, in the slots that an index build (slots 9-12, 15, 16) leaves alone. */
enum
{
	FIELD_MARKER,
	FIELD_STATEMENT,			/* st_activity_start_timestamp when published */
	FIELD_LEADER,				/* pid of the backend that runs the training */
	FIELD_STATE,				/* operation << 56 | phase << 48 | iterations << 24 | iteration */
	FIELD_ROWS,
	FIELD_LOSS,					/* float8 bits */
	FIELD_STARTED,
	FIELD_CHECKSUM,				/* of every other field */
	FIELD_NAME,					/* 6 fields: the model name, NUL-padded */
	NFIELDS = FIELD_NAME + 6
};
static const int field_slot[NFIELDS] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 17, 18, 19};

#define NAME_BYTES (6 * sizeof(int64))

static const char *const operation_names[] = {NULL, "train", "refresh"};
static const char *const phase_names[] = {
	NULL, "checking data", "measuring drift", "reading rows", "building", "training", "evaluating", "storing"
};

/* This backend's record, as last published; active while record[FIELD_MARKER] is set. */
static int64 record[NFIELDS];
int64		progress_pending_rows = 0;

static int64
record_checksum(const int64 *fields)
{
	int64		copy[NFIELDS];

	memcpy(copy, fields, sizeof(copy));
	copy[FIELD_CHECKSUM] = 0;
	return (int64) hash_bytes_extended((const unsigned char *) copy, sizeof(copy), 0x50475A);
}

/* The slots are free for us: no progress command runs in this backend. */
static bool
slots_free(void)
{
	return MyBEEntry != NULL && pgstat_track_activities &&
		MyBEEntry->st_progress_command == PROGRESS_COMMAND_INVALID;
}

/* This backend has a record of the statement it is running. */
static bool
record_active(void)
{
	return record[FIELD_MARKER] == PROGRESS_MARKER && MyBEEntry != NULL &&
		record[FIELD_STATEMENT] == MyBEEntry->st_activity_start_timestamp;
}

static void
publish(void)
{
	int			index[NFIELDS];

	if (!slots_free())
		return;
	record[FIELD_CHECKSUM] = record_checksum(record);
	for (int f = 0; f < NFIELDS; f++)
		index[f] = field_slot[f];
	pgstat_progress_update_multi_param(NFIELDS, index, record);
}

static void
record_begin(int operation, int leader)
{
	memset(record, 0, sizeof(record));
	record[FIELD_MARKER] = PROGRESS_MARKER;
	record[FIELD_STATEMENT] = MyBEEntry->st_activity_start_timestamp;
	record[FIELD_LEADER] = leader;
	record[FIELD_STATE] = (int64) operation << 56;
	record[FIELD_STARTED] = GetCurrentTimestamp();
	progress_pending_rows = 0;
}

static void
set_state(int phase, int iteration, int iterations)
{
	record[FIELD_STATE] = (record[FIELD_STATE] & (INT64CONST(0xFF) << 56)) | (int64) phase << 48 |
		(int64) (iterations & 0xFFFFFF) << 24 | (iteration & 0xFFFFFF);
}

static int
leader_pid(void)
{
	return MyProc->lockGroupLeader ? MyProc->lockGroupLeader->pid : MyProcPid;
}

void
progress_flush_rows(void)
{
	int64		rows = progress_pending_rows;

	progress_pending_rows = 0;
	if (!record_active())
	{
		/* a parallel worker's first batch: count for the leader */
		if (leader_pid() == MyProcPid || MyBEEntry == NULL)
			return;				/* a backend nobody asked to report */
		record_begin(0, leader_pid());
	}
	record[FIELD_ROWS] += rows;
	publish();
}

/*
 * A partial aggregate state leaves the process that read its rows (serialize)
 * and joins the leader's (combine): the count moves with it, so a worker's
 * rows still count after the worker has exited.
 */
void
progress_hand_over_rows(int64 rows)
{
	progress_flush_rows();
	if (record_active())
	{
		record[FIELD_ROWS] -= rows;
		publish();
	}
}

void
progress_take_over_rows(int64 rows)
{
	if (record_active() && leader_pid() == MyProcPid)
	{
		record[FIELD_ROWS] += rows;
		publish();
	}
}

void
progress_set_phase(ProgressPhase phase)
{
	if (!record_active())
		return;
	record[FIELD_ROWS] += progress_pending_rows;
	progress_pending_rows = 0;
	set_state(phase, 0, 0);
	publish();
}

void
progress_set_iteration(int iteration, int iterations, double loss)
{
	if (!record_active())
		return;
	set_state(PROGRESS_TRAINING, iteration, iterations);
	memcpy(&record[FIELD_LOSS], &loss, sizeof(double));
	publish();
}

static int
lookup(const char *const *names, int n, const char *name, const char *what)
{
	for (int i = 1; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown progress %s \"%s\"", what, name)));
	return 0;
}

/*
 * personalize.report_progress(operation text, phase text, model_name text)
 * Starts a record (or joins the one of an enclosing operation: train inside
 * refresh), sets its phase; a NULL phase ends the record if the operation
 * started it.
 */
PG_FUNCTION_INFO_V1(report_progress);
Datum
report_progress(PG_FUNCTION_ARGS)
{
	int			operation;
	int			phase;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be NULL")));
	operation = lookup(operation_names, lengthof(operation_names), text_to_cstring(PG_GETARG_TEXT_PP(0)), "operation");
	phase = PG_ARGISNULL(1) ? 0 : lookup(phase_names, lengthof(phase_names), text_to_cstring(PG_GETARG_TEXT_PP(1)), "phase");
	if (MyBEEntry == NULL)
		PG_RETURN_VOID();
	if (phase == 0)
	{
		if (record_active() && record[FIELD_STATE] >> 56 == operation)
		{
			record[FIELD_MARKER] = 0;
			publish();
		}
		PG_RETURN_VOID();
	}
	if (!record_active())
		record_begin(operation, MyProcPid);
	if (!PG_ARGISNULL(2))
	{
		char	   *given = text_to_cstring(PG_GETARG_TEXT_PP(2));
		char		name[NAME_BYTES] = {0};

		/* cut at a character boundary, NUL-terminated */
		memcpy(name, given, pg_mbcliplen(given, strlen(given), NAME_BYTES - 1));
		memcpy(&record[FIELD_NAME], name, NAME_BYTES);
	}
	set_state(phase, 0, 0);
	publish();
	PG_RETURN_VOID();
}

/* As pg_stat_get_progress_info: one's own roles' backends, or everything with pg_read_all_stats. */
static bool
may_see(Oid role)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) || has_privs_of_role(GetUserId(), role);
}

/* A record of ours, intact, of the statement its backend still runs. */
static bool
record_valid(const PgBackendStatus *be, int64 *fields)
{
	if (be->st_progress_command != PROGRESS_COMMAND_INVALID || be->st_state != STATE_RUNNING)
		return false;
	for (int f = 0; f < NFIELDS; f++)
		fields[f] = be->st_progress_param[field_slot[f]];
	return fields[FIELD_MARKER] == PROGRESS_MARKER &&
		fields[FIELD_STATEMENT] == be->st_activity_start_timestamp &&
		fields[FIELD_CHECKSUM] == record_checksum(fields);
}

/* personalize.training_progress_rows() */
PG_FUNCTION_INFO_V1(training_progress_rows);
Datum
training_progress_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n = pgstat_fetch_stat_numbackends();
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	for (int b = 1; b <= n; b++)
	{
		const PgBackendStatus *be = &pgstat_fetch_stat_local_beentry(b)->backendStatus;
		int64		p[NFIELDS];
		int			operation,
					phase,
					iteration,
					iterations;
		Datum		values[10];
		bool		nulls[10] = {0};
		int64		rows;
		char		name[NAME_BYTES + 1];
		double		loss;

		/* a leader's record; its workers' records only add rows */
		if (!record_valid(be, p) || p[FIELD_LEADER] != be->st_procpid || !may_see(be->st_userid))
			continue;
		operation = (int) ((uint64) p[FIELD_STATE] >> 56);
		phase = (int) (p[FIELD_STATE] >> 48 & 0xFF);
		iterations = (int) (p[FIELD_STATE] >> 24 & 0xFFFFFF);
		iteration = (int) (p[FIELD_STATE] & 0xFFFFFF);
		if (operation < 1 || operation >= lengthof(operation_names) || phase < 1 || phase >= lengthof(phase_names))
			continue;
		rows = p[FIELD_ROWS];
		for (int w = 1; w <= n; w++)
		{
			const PgBackendStatus *worker = &pgstat_fetch_stat_local_beentry(w)->backendStatus;
			int64		wp[NFIELDS];

			if (w != b && record_valid(worker, wp) && wp[FIELD_LEADER] == be->st_procpid)
				rows += wp[FIELD_ROWS];
		}
		memcpy(name, &p[FIELD_NAME], NAME_BYTES);
		name[NAME_BYTES] = '\0';
		memcpy(&loss, &p[FIELD_LOSS], sizeof(double));

		values[0] = Int32GetDatum(be->st_procpid);
		values[1] = CStringGetTextDatum(operation_names[operation]);
		values[2] = CStringGetTextDatum(name);
		values[3] = CStringGetTextDatum(phase_names[phase]);
		values[4] = Int64GetDatum(rows);
		values[5] = Int32GetDatum(iteration);
		values[6] = Int32GetDatum(iterations);
		values[7] = Float8GetDatum(loss);
		values[8] = TimestampTzGetDatum((TimestampTz) p[FIELD_STARTED]);
		values[9] = Float8GetDatum((now - (TimestampTz) p[FIELD_STARTED]) / (double) USECS_PER_SEC);
		nulls[2] = name[0] == '\0';
		nulls[5] = nulls[6] = iterations == 0;
		nulls[7] = iteration == 0 || isnan(loss);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
