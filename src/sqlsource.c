/*
 * sqlsource.c — a text argument naming a table/view ("shop.orders") or
 * holding a query ("SELECT ... FROM ...") becomes a FROM item. Relation names
 * are resolved now, so a missing one is reported as such (42P01); queries are
 * wrapped as a subquery and checked by the parser when they run.
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "nodes/makefuncs.h"
#include "sqlsource.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/varlena.h"

static bool
LooksLikeQuery(const char *source)
{
	static const char *const starts[] = {"select", "with", "values", "table", "("};
	const char *p = source;

	while (isspace((unsigned char) *p))
		p++;
	for (int i = 0; i < lengthof(starts); i++)
	{
		size_t		len = strlen(starts[i]);

		if (pg_strncasecmp(p, starts[i], len) == 0 &&
			(starts[i][0] == '(' || (!isalnum((unsigned char) p[len]) && p[len] != '_')))
			return true;
	}
	return false;
}

/*
 * A table or view name, or a query, as SQL that can follow FROM (the caller
 * adds its alias). "what" names the argument in messages; without it a
 * missing relation gets PostgreSQL's own error.
 */
char *
SourceAsRelation(const char *source, const char *what)
{
	const char *noun = what ? what : "source";
	List	   *names;
	RangeVar   *rv;
	Oid			relid;

	if (source == NULL || source[strspn(source, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must name a table or view, or be a query", noun)));
	if (LooksLikeQuery(source))
	{
		/* a trailing semicolon, as typed at a psql prompt, would end the subquery */
		int			len = strlen(source);

		while (len > 0 && (isspace((unsigned char) source[len - 1]) || source[len - 1] == ';'))
			len--;
		return psprintf("(%.*s)", len, source);
	}

	names = stringToQualifiedNameList(source);
	rv = makeRangeVarFromNameList(names);
	relid = RangeVarGetRelid(rv, NoLock, what != NULL);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s relation \"%s\" does not exist", what, source),
				 errhint("Give a table or view name, or a query such as SELECT ... FROM ....")));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

char *
SourceAsFromItem(const char *source, const char *alias)
{
	return psprintf("%s AS %s", SourceAsRelation(source, NULL), quote_identifier(alias));
}

/* Column names of a table, view or query, in order: lets SQL code adapt to optional columns. */
PG_FUNCTION_INFO_V1(source_columns);
Datum
source_columns(PG_FUNCTION_ARGS)
{
	char	   *sql = psprintf("SELECT * FROM %s LIMIT 0",
							   SourceAsFromItem(text_to_cstring(PG_GETARG_TEXT_PP(0)), "s"));
	TupleDesc	desc;
	Datum	   *names;
	int			n = 0;
	ArrayType  *result;
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source must be a table, a view or a query that returns rows")));
	desc = SPI_tuptable->tupdesc;
	names = MemoryContextAlloc(caller, sizeof(Datum) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			names[n++] = CStringGetTextDatum(NameStr(TupleDescAttr(desc, i)->attname));
			MemoryContextSwitchTo(old);
		}
	SPI_finish();
	result = construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT);
	PG_RETURN_ARRAYTYPE_P(result);
}

/* personalize.source_sql(source text, what text DEFAULT NULL) */
PG_FUNCTION_INFO_V1(source_sql);
Datum
source_sql(PG_FUNCTION_ARGS)
{
	char	   *source = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *what = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_TEXT_P(cstring_to_text(SourceAsRelation(source, what)));
}

/*
 * Check that a FROM item yields the named columns, so that a missing one is
 * reported plainly (r.rank would otherwise be read as the function rank(r)).
 * Call inside SPI.
 */
void
CheckSourceColumns(const char *from_item, const char *what, const char *const *columns, int ncolumns)
{
	TupleDesc	desc;

	if (SPI_execute(psprintf("SELECT * FROM %s LIMIT 0", from_item), true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s must be a table, a view or a query that returns rows", what)));
	desc = SPI_tuptable->tupdesc;
	for (int c = 0; c < ncolumns; c++)
	{
		bool		found = false;

		for (int i = 0; i < desc->natts && !found; i++)
			found = !TupleDescAttr(desc, i)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(desc, i)->attname), columns[c]) == 0;
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("%s has no column \"%s\"", what, columns[c])));
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Rows (id, label, weight) of a source, read as the caller (privileges and
 * row-level security apply) through a cursor, into the caller's memory
 * context. label_column NULL: ids only. weight_column may be absent from the
 * source: weight 1. Rows with a NULL id, label or weight are skipped and
 * counted; a NaN or infinite weight is an error.
 */
SourceRows *
ReadSourceRows(const char *source, const char *what, const char *id_column,
			   const char *label_column, const char *weight_column)
{
	MemoryContext caller = CurrentMemoryContext;
	SourceRows *rows = palloc0(sizeof(SourceRows));
	char	   *from_item = SourceAsFromItem(source, "s");
	const char *required[2] = {id_column, label_column};
	bool		has_weight = false;
	int64		capacity = 1024;
	char	   *sql;
	Portal		portal;

	rows->ids = MemoryContextAllocHuge(caller, sizeof(int64) * capacity);
	rows->labels = label_column ? MemoryContextAllocHuge(caller, sizeof(char *) * capacity) : NULL;
	rows->weights = MemoryContextAllocHuge(caller, sizeof(float) * capacity);

	SPI_connect();
	CheckSourceColumns(from_item, what, required, label_column ? 2 : 1);
	if (weight_column)
	{
		SPI_execute(psprintf("SELECT * FROM %s LIMIT 0", from_item), true, 0);
		for (int i = 0; i < SPI_tuptable->tupdesc->natts; i++)
			if (!TupleDescAttr(SPI_tuptable->tupdesc, i)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(SPI_tuptable->tupdesc, i)->attname), weight_column) == 0)
				has_weight = true;
	}
	sql = psprintf("SELECT s.%s::pg_catalog.int8, %s, %s FROM %s", quote_identifier(id_column),
				   label_column ? psprintf("s.%s::pg_catalog.text", quote_identifier(label_column)) : "NULL::pg_catalog.text",
				   has_weight ? psprintf("s.%s::pg_catalog.float4", quote_identifier(weight_column)) : "1::pg_catalog.float4",
				   from_item);
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		id_null,
						label_null,
						weight_null;
			Datum		id = SPI_getbinval(tup, desc, 1, &id_null);
			Datum		label = SPI_getbinval(tup, desc, 2, &label_null);
			Datum		weight = SPI_getbinval(tup, desc, 3, &weight_null);
			float		w;

			if (id_null || (label_column && label_null) || weight_null)
			{
				rows->skipped++;
				continue;
			}
			w = DatumGetFloat4(weight);
			if (isnan(w) || isinf(w))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("%s weight must be finite, not \"%g\"", what, w)));
			if (rows->n == capacity)
			{
				capacity *= 2;
				rows->ids = repalloc_huge(rows->ids, sizeof(int64) * capacity);
				rows->weights = repalloc_huge(rows->weights, sizeof(float) * capacity);
				if (rows->labels)
					rows->labels = repalloc_huge(rows->labels, sizeof(char *) * capacity);
			}
			rows->ids[rows->n] = DatumGetInt64(id);
			rows->weights[rows->n] = w;
			if (label_column)
				rows->labels[rows->n] = MemoryContextStrdup(caller, TextDatumGetCString(label));
			rows->n++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	return rows;
}
