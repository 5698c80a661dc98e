/*
 * sqlsource.c — a text argument naming a table/view ("shop.orders") or
 * holding a query ("SELECT ... FROM ...") becomes a FROM item. Relation names
 * are resolved now, so a missing one is reported as such (42P01); queries are
 * wrapped as a subquery and checked by the parser when they run.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "nodes/makefuncs.h"
#include "sqlsource.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
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
