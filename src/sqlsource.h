/*
 * sqlsource.h — turn a user-given "relation or query" argument into a FROM
 * item, so functions that read user data run the caller's SQL as the caller.
 */
#ifndef PERSONALIZE_SQLSOURCE_H
#define PERSONALIZE_SQLSOURCE_H

extern char *SourceAsRelation(const char *source, const char *what);
extern char *SourceAsFromItem(const char *source, const char *alias);
extern void CheckSourceColumns(const char *from_item, const char *what,
							   const char *const *columns, int ncolumns);

#endif
