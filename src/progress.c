/*
 * progress.c — progress of train() and refresh() for other sessions.
 *
 * PostgreSQL 15 offers extensions no progress command of their own, and
 * shared memory only when the library is preloaded. Every backend already has
 * twenty int64 progress slots in its PgBackendStatus entry (shared memory,
 * read by pg_stat_progress_* views under the same visibility rules), used
 * only while a VACUUM, ANALYZE, CLUSTER, CREATE INDEX, BASE_BACKUP or COPY
 * runs. We write them only while no such command runs in the backend
 * (st_progress_command is PROGRESS_COMMAND_INVALID, so no pg_stat_progress_*
 * view shows our values), tag them with a marker and the start time of the
 * statement that runs the training, and read them back in
 * personalize.training_progress(). An entry counts only while its backend is
 * still running that statement, so an error or a cancel leaves nothing stale
 * and needs no cleanup. This works with or without shared_preload_libraries.
 *
 * Parallel workers count the rows they read into their own entries, tagged
 * with the leader's pid; the reader adds them to the leader's row.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_authid.h"
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

/* slots of st_progress_param */
enum
{
	SLOT_MARKER,
	SLOT_STATEMENT,				/* st_activity_start_timestamp when written */
	SLOT_LEADER,				/* pid of the backend that runs the training */
	SLOT_OPERATION,
	SLOT_PHASE,
	SLOT_ROWS,
	SLOT_ITERATION,
	SLOT_ITERATIONS,
	SLOT_LOSS,					/* float8 bits */
	SLOT_STARTED,
	SLOT_NAME					/* 8 slots: the model name, NUL-padded */
};
#define NAME_SLOTS 8

static const char *const operation_names[] = {NULL, "train", "refresh"};
static const char *const phase_names[] = {
	NULL, "checking data", "measuring drift", "reading rows", "building", "training", "evaluating", "storing"
};

int64		progress_pending_rows = 0;

/* Our slots are ours to write: no progress command runs in this backend. */
static bool
slots_free(void)
{
	return MyBEEntry != NULL && pgstat_track_activities &&
		MyBEEntry->st_progress_command == PROGRESS_COMMAND_INVALID;
}

/* This backend's slots hold a progress record of the running statement. */
static bool
own_record_valid(void)
{
	return slots_free() &&
		MyBEEntry->st_progress_param[SLOT_MARKER] == PROGRESS_MARKER &&
		MyBEEntry->st_progress_param[SLOT_STATEMENT] == MyBEEntry->st_activity_start_timestamp;
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
	if (!slots_free())
		return;
	if (!own_record_valid())
	{
		/* a parallel worker's first batch: mark the entry as counting for its leader */
		const int	index[] = {SLOT_MARKER, SLOT_STATEMENT, SLOT_LEADER, SLOT_OPERATION, SLOT_ROWS};
		const int64 value[] = {PROGRESS_MARKER, MyBEEntry->st_activity_start_timestamp, leader_pid(), 0, 0};

		if (leader_pid() == MyProcPid)
			return;				/* a backend nobody asked to report */
		pgstat_progress_update_multi_param(lengthof(index), index, value);
	}
	pgstat_progress_update_param(SLOT_ROWS, MyBEEntry->st_progress_param[SLOT_ROWS] + rows);
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
	if (own_record_valid())
		pgstat_progress_update_param(SLOT_ROWS, MyBEEntry->st_progress_param[SLOT_ROWS] - rows);
}

void
progress_take_over_rows(int64 rows)
{
	if (own_record_valid() && leader_pid() == MyProcPid)
		pgstat_progress_update_param(SLOT_ROWS, MyBEEntry->st_progress_param[SLOT_ROWS] + rows);
}

void
progress_set_phase(ProgressPhase phase)
{
	if (!own_record_valid())
		return;
	progress_flush_rows();
	pgstat_progress_update_param(SLOT_PHASE, phase);
}

void
progress_set_iteration(int iteration, int iterations, double loss)
{
	const int	index[] = {SLOT_PHASE, SLOT_ITERATION, SLOT_ITERATIONS, SLOT_LOSS};
	int64		value[] = {PROGRESS_TRAINING, iteration, iterations, 0};

	if (!own_record_valid())
		return;
	memcpy(&value[3], &loss, sizeof(double));
	pgstat_progress_update_multi_param(lengthof(index), index, value);
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

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be NULL")));
	operation = lookup(operation_names, lengthof(operation_names), text_to_cstring(PG_GETARG_TEXT_PP(0)), "operation");
	if (!slots_free())
		PG_RETURN_VOID();
	if (PG_ARGISNULL(1))
	{
		if (own_record_valid() && MyBEEntry->st_progress_param[SLOT_OPERATION] == operation)
			pgstat_progress_update_param(SLOT_MARKER, 0);
		PG_RETURN_VOID();
	}
	if (!own_record_valid())
	{
		int			index[PGSTAT_NUM_PROGRESS_PARAM];
		int64		value[PGSTAT_NUM_PROGRESS_PARAM];

		for (int i = 0; i < PGSTAT_NUM_PROGRESS_PARAM; i++)
		{
			index[i] = i;
			value[i] = 0;
		}
		value[SLOT_MARKER] = PROGRESS_MARKER;
		value[SLOT_STATEMENT] = MyBEEntry->st_activity_start_timestamp;
		value[SLOT_LEADER] = MyProcPid;
		value[SLOT_OPERATION] = operation;
		value[SLOT_STARTED] = GetCurrentTimestamp();
		pgstat_progress_update_multi_param(PGSTAT_NUM_PROGRESS_PARAM, index, value);
		progress_pending_rows = 0;
	}
	if (!PG_ARGISNULL(2))
	{
		char		name[NAME_SLOTS * sizeof(int64)] = {0};
		int			index[NAME_SLOTS];
		int64		value[NAME_SLOTS];
		char	   *given = text_to_cstring(PG_GETARG_TEXT_PP(2));

		/* a name cut at a character boundary, NUL-terminated */
		memcpy(name, given, pg_mbcliplen(given, strlen(given), sizeof(name) - 1));
		for (int i = 0; i < NAME_SLOTS; i++)
		{
			index[i] = SLOT_NAME + i;
			memcpy(&value[i], name + i * sizeof(int64), sizeof(int64));
		}
		pgstat_progress_update_multi_param(NAME_SLOTS, index, value);
	}
	pgstat_progress_update_param(SLOT_PHASE, lookup(phase_names, lengthof(phase_names),
													text_to_cstring(PG_GETARG_TEXT_PP(1)), "phase"));
	PG_RETURN_VOID();
}

/* As pg_stat_get_progress_info: one's own roles' backends, or everything with pg_read_all_stats. */
static bool
may_see(Oid role)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) || has_privs_of_role(GetUserId(), role);
}

static bool
record_valid(const PgBackendStatus *be)
{
	return be->st_progress_command == PROGRESS_COMMAND_INVALID &&
		be->st_progress_param[SLOT_MARKER] == PROGRESS_MARKER &&
		be->st_progress_param[SLOT_STATEMENT] == be->st_activity_start_timestamp &&
		be->st_state == STATE_RUNNING;
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
		const int64 *p = be->st_progress_param;
		Datum		values[10];
		bool		nulls[10] = {0};
		int64		rows;
		char		name[NAME_SLOTS * sizeof(int64) + 1];
		double		loss;

		/* a leader's record; its workers' entries only add rows */
		if (!record_valid(be) || p[SLOT_LEADER] != be->st_procpid || !may_see(be->st_userid) ||
			p[SLOT_OPERATION] < 1 || p[SLOT_OPERATION] >= lengthof(operation_names) ||
			p[SLOT_PHASE] < 1 || p[SLOT_PHASE] >= lengthof(phase_names))
			continue;
		rows = p[SLOT_ROWS];
		for (int w = 1; w <= n; w++)
		{
			const PgBackendStatus *worker = &pgstat_fetch_stat_local_beentry(w)->backendStatus;

			if (w != b && record_valid(worker) && worker->st_progress_param[SLOT_LEADER] == be->st_procpid)
				rows += worker->st_progress_param[SLOT_ROWS];
		}
		memcpy(name, &p[SLOT_NAME], NAME_SLOTS * sizeof(int64));
		name[NAME_SLOTS * sizeof(int64)] = '\0';
		memcpy(&loss, &p[SLOT_LOSS], sizeof(double));

		values[0] = Int32GetDatum(be->st_procpid);
		values[1] = CStringGetTextDatum(operation_names[p[SLOT_OPERATION]]);
		values[2] = CStringGetTextDatum(name);
		values[3] = CStringGetTextDatum(phase_names[p[SLOT_PHASE]]);
		values[4] = Int64GetDatum(rows);
		values[5] = Int32GetDatum((int32) p[SLOT_ITERATION]);
		values[6] = Int32GetDatum((int32) p[SLOT_ITERATIONS]);
		values[7] = Float8GetDatum(loss);
		values[8] = TimestampTzGetDatum((TimestampTz) p[SLOT_STARTED]);
		values[9] = Float8GetDatum((now - (TimestampTz) p[SLOT_STARTED]) / (double) USECS_PER_SEC);
		nulls[2] = name[0] == '\0';
		nulls[5] = nulls[6] = p[SLOT_ITERATIONS] == 0;
		nulls[7] = p[SLOT_ITERATION] == 0 || isnan(loss);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
