/*
 * personalize_fuzz.c — test-only entry point for test/fuzz/fuzz.py: the
 * parallel training path of item-kNN and ALS (deserialize a partial state,
 * combine it, run the final function) on bytes given from SQL. Those
 * functions take `internal` and need an aggregate context, so SQL cannot call
 * them. Never part of the product: test/sanitize.sh and bench/fuzz.sh build
 * and install it into the PostgreSQL they test.
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;

/* fn(args) as the executor calls an aggregate support function */
static Datum
call_in_aggregate(PGFunction fn, int nargs, Datum *args, bool *nulls, bool *isnull)
{
	AggState   *agg = makeNode(AggState);
	ExprContext *econtext = makeNode(ExprContext);
	LOCAL_FCINFO(fcinfo, 2);
	Datum		result;

	econtext->ecxt_per_tuple_memory = CurrentMemoryContext;
	agg->curaggcontext = econtext;
	InitFunctionCallInfoData(*fcinfo, NULL, nargs, InvalidOid, (Node *) agg, NULL);
	for (int i = 0; i < nargs; i++)
	{
		fcinfo->args[i].value = args[i];
		fcinfo->args[i].isnull = nulls[i];
	}
	result = fn(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

static PGFunction
personalize_function(const char *name)
{
	return load_external_function("$libdir/pg_personalize", name, true, NULL);
}

/* fuzz_interactions(state bytea, algorithm text) -> personalize.model */
PG_FUNCTION_INFO_V1(fuzz_interactions);
Datum
fuzz_interactions(PG_FUNCTION_ARGS)
{
	char	   *algorithm = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Datum		args[2] = {PG_GETARG_DATUM(0), (Datum) 0};
	bool		nulls[2] = {false, false};
	bool		isnull;
	Datum		state;

	state = call_in_aggregate(personalize_function("interactions_deserialize"), 2, args, nulls, &isnull);
	args[0] = (Datum) 0;
	nulls[0] = true;
	args[1] = state;
	state = call_in_aggregate(personalize_function("interactions_combine"), 2, args, nulls, &isnull);
	args[0] = state;
	nulls[0] = isnull;
	state = call_in_aggregate(personalize_function(strcmp(algorithm, "als") == 0 ? "als_final" : "itemknn_final"),
							  1, args, nulls, &isnull);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(state);
}
