/*
 * sqlsource.h — turn a user-given "relation or query" argument into a FROM
 * item, so functions that read user data run the caller's SQL as the caller.
 */
#ifndef PERSONALIZE_SQLSOURCE_H
#define PERSONALIZE_SQLSOURCE_H

#include "postgres.h"

extern char *SourceAsRelation(const char *source, const char *what);
extern char *SourceAsFromItem(const char *source, const char *alias);
extern void CheckSourceColumns(const char *from_item, const char *what,
							   const char *const *columns, int ncolumns);

typedef struct SourceRows
{
	int64		n;
	int64	   *ids;
	char	  **labels;			/* NULL when no label column was read */
	float	   *weights;
	int64		skipped;		/* rows with a NULL */
} SourceRows;

extern SourceRows *ReadSourceRows(const char *source, const char *what, const char *id_column,
								  const char *label_column, const char *weight_column);

#endif
