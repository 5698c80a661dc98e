/*
 * pg_personalize.c — module entry point.
 */
#include "postgres.h"

#include "fmgr.h"
#include "als.h"
#include "model.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	modelstore_init();
	modelcache_init();
	serving_init();
	als_init();
}
