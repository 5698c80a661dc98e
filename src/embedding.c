/*
 * embedding.c — the personalize.embedding type: text and binary I/O, typmod,
 * casts from and to arrays, element-wise arithmetic, ordering and hashing,
 * and the sum/avg aggregates.
 *
 * Every value enters through CheckEmbeddingDim and CheckEmbeddingElement, so
 * each error reads the same wherever it comes from.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/shortest_dec.h"
#include "distance.h"
#include "embedding.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

Embedding *
InitEmbedding(int dim)
{
	Embedding  *result = (Embedding *) palloc0(EMBEDDING_SIZE(dim));

	SET_VARSIZE(result, EMBEDDING_SIZE(dim));
	result->dim = dim;
	return result;
}

void
CheckEmbeddingDim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("embedding must have at least 1 dimension")));
	if (dim > EMBEDDING_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("embedding cannot have more than %d dimensions", EMBEDDING_MAX_DIM)));
}

void
CheckEmbeddingElement(float value)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in embedding")));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in embedding")));
}

void
CheckSameDims(const Embedding *a, const Embedding *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different embedding dimensions %d and %d", a->dim, b->dim)));
}

void
CheckExpectedDims(int32 typmod, int dim)
{
	if (typmod != -1 && typmod != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

/* A float8 result of arithmetic stored back as float4: overflow is an error, not Inf. */
static inline float
ToEmbeddingElement(double value)
{
	float		result = (float) value;

	if (unlikely(isinf(result)) && !isinf(value))
		float_overflow_error();
	CheckEmbeddingElement(result);
	return result;
}

static inline bool
IsTextSpace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

PG_FUNCTION_INFO_V1(embedding_in);
Datum
embedding_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			capacity = 1;
	int			dim = 0;
	char	   *pt = lit;
	Embedding  *result;

	/* at most one element per comma, plus one: parse straight into the result */
	for (const char *c = lit; *c; c++)
		capacity += (*c == ',');
	result = InitEmbedding(Min(capacity, EMBEDDING_MAX_DIM));

	while (IsTextSpace(*pt))
		pt++;
	if (*pt != '[')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type embedding: \"%s\"", lit),
				 errdetail("Embedding contents must start with \"[\".")));
	pt++;
	while (IsTextSpace(*pt))
		pt++;
	if (*pt == ']')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("embedding must have at least 1 dimension")));

	for (;;)
	{
		char	   *end;
		float		value;

		if (dim == EMBEDDING_MAX_DIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("embedding cannot have more than %d dimensions", EMBEDDING_MAX_DIM)));
		while (IsTextSpace(*pt))
			pt++;
		if (*pt == '\0' || *pt == ',' || *pt == ']')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", lit)));

		errno = 0;
		value = strtof(pt, &end);
		if (end == pt)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", lit)));
		/* As float4in: denormals are fine, overflow and total underflow are not. */
		if (errno == ERANGE && (value == 0.0f || isinf(value)))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("\"%s\" is out of range for type embedding", pnstrdup(pt, end - pt))));
		CheckEmbeddingElement(value);
		result->x[dim++] = value;

		pt = end;
		while (IsTextSpace(*pt))
			pt++;
		if (*pt == ',')
			pt++;
		else if (*pt == ']')
		{
			pt++;
			break;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type embedding: \"%s\"", lit)));
	}

	while (IsTextSpace(*pt))
		pt++;
	if (*pt != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type embedding: \"%s\"", lit),
				 errdetail("Junk after closing right bracket.")));

	CheckExpectedDims(typmod, dim);
	result->dim = dim;
	SET_VARSIZE(result, EMBEDDING_SIZE(dim));
	PG_RETURN_EMBEDDING_P(result);
}

PG_FUNCTION_INFO_V1(embedding_out);
Datum
embedding_out(PG_FUNCTION_ARGS)
{
	Embedding  *e = PG_GETARG_EMBEDDING_P(0);
	char	   *buf = palloc(e->dim * (FLOAT_SHORTEST_DECIMAL_LEN + 1) + 2);
	char	   *pt = buf;

	*pt++ = '[';
	for (int i = 0; i < e->dim; i++)
	{
		if (i > 0)
			*pt++ = ',';
		pt += float_to_shortest_decimal_bufn(e->x[i], pt);
	}
	*pt++ = ']';
	*pt = '\0';
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(embedding_typmod_in);
Datum
embedding_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("Type embedding takes one modifier, its number of dimensions.")));
	if (*tl < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type embedding must be at least 1")));
	if (*tl > EMBEDDING_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("dimensions for type embedding cannot exceed %d", EMBEDDING_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

PG_FUNCTION_INFO_V1(embedding_typmod_out);
Datum
embedding_typmod_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	PG_RETURN_CSTRING(typmod < 0 ? pstrdup("") : psprintf("(%d)", typmod));
}

PG_FUNCTION_INFO_V1(embedding_recv);
Datum
embedding_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int16		dim = pq_getmsgint(buf, sizeof(int16));
	int16		unused = pq_getmsgint(buf, sizeof(int16));
	Embedding  *result;

	CheckEmbeddingDim(dim);
	CheckExpectedDims(typmod, dim);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary representation of embedding: reserved field is %d", unused)));

	result = InitEmbedding(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = pq_getmsgfloat4(buf);
		CheckEmbeddingElement(result->x[i]);
	}
	PG_RETURN_EMBEDDING_P(result);
}

PG_FUNCTION_INFO_V1(embedding_send);
Datum
embedding_send(PG_FUNCTION_ARGS)
{
	Embedding  *e = PG_GETARG_EMBEDDING_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint(&buf, e->dim, sizeof(int16));
	pq_sendint(&buf, 0, sizeof(int16));
	for (int i = 0; i < e->dim; i++)
		pq_sendfloat4(&buf, e->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Cast embedding to embedding(n): enforces the typmod on assignment and explicit casts. */
PG_FUNCTION_INFO_V1(embedding_typmod_cast);
Datum
embedding_typmod_cast(PG_FUNCTION_ARGS)
{
	Embedding  *e = PG_GETARG_EMBEDDING_P(0);

	CheckExpectedDims(PG_GETARG_INT32(1), e->dim);
	PG_RETURN_EMBEDDING_P(e);
}

PG_FUNCTION_INFO_V1(array_to_embedding);
Datum
array_to_embedding(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Embedding  *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("array must be one-dimensional")));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);

	CheckEmbeddingDim(n);
	CheckExpectedDims(typmod, n);
	result = InitEmbedding(n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("array must not contain nulls")));
		switch (elemtype)
		{
			case INT4OID:
				result->x[i] = (float) DatumGetInt32(elems[i]);
				break;
			case FLOAT4OID:
				result->x[i] = DatumGetFloat4(elems[i]);
				break;
			case FLOAT8OID:
				result->x[i] = ToEmbeddingElement(DatumGetFloat8(elems[i]));
				break;
			case NUMERICOID:
				result->x[i] = ToEmbeddingElement(DatumGetFloat8(DirectFunctionCall1(numeric_float8, elems[i])));
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("unsupported array element type %s", format_type_be(elemtype))));
		}
		CheckEmbeddingElement(result->x[i]);
	}
	PG_RETURN_EMBEDDING_P(result);
}

static ArrayType *
EmbeddingToArray(const Embedding *e, Oid elemtype)
{
	Datum	   *elems = palloc(sizeof(Datum) * e->dim);
	int16		typlen;
	bool		typbyval;
	char		typalign;

	for (int i = 0; i < e->dim; i++)
	{
		switch (elemtype)
		{
			case FLOAT4OID:
				elems[i] = Float4GetDatum(e->x[i]);
				break;
			case FLOAT8OID:
				elems[i] = Float8GetDatum((double) e->x[i]);
				break;
			case INT4OID:
				elems[i] = DirectFunctionCall1(ftoi4, Float4GetDatum(e->x[i]));
				break;
			case NUMERICOID:
				elems[i] = DirectFunctionCall1(float4_numeric, Float4GetDatum(e->x[i]));
				break;
		}
	}
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return construct_array(elems, e->dim, elemtype, typlen, typbyval, typalign);
}

PG_FUNCTION_INFO_V1(embedding_to_float4);
Datum
embedding_to_float4(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), FLOAT4OID));
}

PG_FUNCTION_INFO_V1(embedding_to_float8);
Datum
embedding_to_float8(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), FLOAT8OID));
}

PG_FUNCTION_INFO_V1(embedding_to_int4);
Datum
embedding_to_int4(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), INT4OID));
}

PG_FUNCTION_INFO_V1(embedding_to_numeric);
Datum
embedding_to_numeric(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(EmbeddingToArray(PG_GETARG_EMBEDDING_P(0), NUMERICOID));
}

/* ---- distances and norms ---- */

PG_FUNCTION_INFO_V1(embedding_l2_distance);
Datum
embedding_l2_distance(PG_FUNCTION_ARGS)
{
	Embedding  *a = PG_GETARG_EMBEDDING_P(0);
	Embedding  *b = PG_GETARG_EMBEDDING_P(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8(sqrt((double) l2_squared_distance(a->dim, a->x, b->x)));
}

PG_FUNCTION_INFO_V1(embedding_inner_product);
Datum
embedding_inner_product(PG_FUNCTION_ARGS)
{
	Embedding  *a = PG_GETARG_EMBEDDING_P(0);
	Embedding  *b = PG_GETARG_EMBEDDING_P(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8((double) inner_product(a->dim, a->x, b->x));
}

PG_FUNCTION_INFO_V1(embedding_negative_inner_product);
Datum
embedding_negative_inner_product(PG_FUNCTION_ARGS)
{
	Embedding  *a = PG_GETARG_EMBEDDING_P(0);
	Embedding  *b = PG_GETARG_EMBEDDING_P(1);

	CheckSameDims(a, b);
	PG_RETURN_FLOAT8(-(double) inner_product(a->dim, a->x, b->x));
}

/* 1 - cosine similarity, in [0, 2]; NaN when either side has zero norm. */
PG_FUNCTION_INFO_V1(embedding_cosine_distance);
Datum
embedding_cosine_distance(PG_FUNCTION_ARGS)
{
	Embedding  *a = PG_GETARG_EMBEDDING_P(0);
	Embedding  *b = PG_GETARG_EMBEDDING_P(1);
	double		similarity;

	CheckSameDims(a, b);
	similarity = cosine_similarity(a->dim, a->x, b->x);
	if (isnan(similarity))
		PG_RETURN_FLOAT8(get_float8_nan());
	/* rounding can push |similarity| a hair past 1 */
	similarity = Max(-1.0, Min(1.0, similarity));
	PG_RETURN_FLOAT8(1.0 - similarity);
}

PG_FUNCTION_INFO_V1(embedding_dims);
Datum
embedding_dims(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(PG_GETARG_EMBEDDING_P(0)->dim);
}

PG_FUNCTION_INFO_V1(embedding_norm);
Datum
embedding_norm(PG_FUNCTION_ARGS)
{
	Embedding  *e = PG_GETARG_EMBEDDING_P(0);

	PG_RETURN_FLOAT8(sqrt(squared_norm(e->dim, e->x)));
}

/* Unit-length copy; the zero vector stays zero (it has no direction). */
PG_FUNCTION_INFO_V1(embedding_normalize);
Datum
embedding_normalize(PG_FUNCTION_ARGS)
{
	Embedding  *e = PG_GETARG_EMBEDDING_P(0);
	double		norm = sqrt(squared_norm(e->dim, e->x));
	Embedding  *result = InitEmbedding(e->dim);

	if (norm > 0)
		for (int i = 0; i < e->dim; i++)
			result->x[i] = (float) ((double) e->x[i] / norm);
	PG_RETURN_EMBEDDING_P(result);
}

/* ---- element-wise arithmetic ---- */

typedef enum
{
	OP_ADD,
	OP_SUB,
	OP_MUL
} ElementOp;

static Embedding *
ElementWise(const Embedding *a, const Embedding *b, ElementOp op)
{
	Embedding  *result;

	CheckSameDims(a, b);
	result = InitEmbedding(a->dim);
	for (int i = 0; i < a->dim; i++)
	{
		double		x = a->x[i];
		double		y = b->x[i];

		result->x[i] = ToEmbeddingElement(op == OP_ADD ? x + y : op == OP_SUB ? x - y : x * y);
	}
	return result;
}

PG_FUNCTION_INFO_V1(embedding_add);
Datum
embedding_add(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(ElementWise(PG_GETARG_EMBEDDING_P(0), PG_GETARG_EMBEDDING_P(1), OP_ADD));
}

PG_FUNCTION_INFO_V1(embedding_sub);
Datum
embedding_sub(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(ElementWise(PG_GETARG_EMBEDDING_P(0), PG_GETARG_EMBEDDING_P(1), OP_SUB));
}

PG_FUNCTION_INFO_V1(embedding_mul);
Datum
embedding_mul(PG_FUNCTION_ARGS)
{
	PG_RETURN_EMBEDDING_P(ElementWise(PG_GETARG_EMBEDDING_P(0), PG_GETARG_EMBEDDING_P(1), OP_MUL));
}

/* ---- ordering and hashing: lexicographic by element, then by length ---- */

static int
EmbeddingCompare(const Embedding *a, const Embedding *b)
{
	int			n = Min(a->dim, b->dim);

	for (int i = 0; i < n; i++)
	{
		if (a->x[i] < b->x[i])
			return -1;
		if (a->x[i] > b->x[i])
			return 1;
	}
	return (a->dim > b->dim) - (a->dim < b->dim);
}

#define EMBEDDING_COMPARISON(name, test) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	int			c = EmbeddingCompare(PG_GETARG_EMBEDDING_P(0), PG_GETARG_EMBEDDING_P(1)); \
	PG_RETURN_BOOL(test); \
}

EMBEDDING_COMPARISON(embedding_lt, c < 0)
EMBEDDING_COMPARISON(embedding_le, c <= 0)
EMBEDDING_COMPARISON(embedding_eq, c == 0)
EMBEDDING_COMPARISON(embedding_ne, c != 0)
EMBEDDING_COMPARISON(embedding_ge, c >= 0)
EMBEDDING_COMPARISON(embedding_gt, c > 0)

PG_FUNCTION_INFO_V1(embedding_cmp);
Datum
embedding_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(EmbeddingCompare(PG_GETARG_EMBEDDING_P(0), PG_GETARG_EMBEDDING_P(1)));
}

/* Equal embeddings hash equally: -0 and +0 compare equal, so hash as +0. */
PG_FUNCTION_INFO_V1(embedding_hash);
Datum
embedding_hash(PG_FUNCTION_ARGS)
{
	Embedding  *e = PG_GETARG_EMBEDDING_P(0);
	uint32		hash = hash_uint32((uint32) e->dim);

	for (int i = 0; i < e->dim; i++)
	{
		float		value = e->x[i] == 0.0f ? 0.0f : e->x[i];
		uint32		bits;

		memcpy(&bits, &value, sizeof(bits));
		hash = hash_combine(hash, hash_uint32(bits));
	}
	PG_RETURN_UINT32(hash);
}

/*
 * ---- sum and avg ----
 *
 * The state is a float8[] {count, sum_1 .. sum_dim}: a concrete type, so Citus
 * can push partial aggregation to its workers, and float8 sums keep the
 * average exact enough for millions of rows. Inside an aggregate the state is
 * updated in place, as float8_accum does.
 */

/* A state array can come from anywhere (the functions are callable): check it as input. */
static void
InvalidAccumState(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid embedding aggregate state"),
			 errdetail("The state is a double precision array {count, sum_1, ..., sum_n} without NULLs.")));
}

static int
AccumStateDim(ArrayType *state)
{
	if (ARR_NDIM(state) != 1 || ARR_DIMS(state)[0] < 2)
		InvalidAccumState();
	CheckEmbeddingDim(ARR_DIMS(state)[0] - 1);
	return ARR_DIMS(state)[0] - 1;
}

static float8 *
CheckAccumState(ArrayType *state, int dim)
{
	if (ARR_NDIM(state) != 1 || ARR_DIMS(state)[0] < 2 ||
		ARR_HASNULL(state) || ARR_ELEMTYPE(state) != FLOAT8OID)
		InvalidAccumState();
	if (ARR_DIMS(state)[0] != dim + 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different embedding dimensions %d and %d",
						ARR_DIMS(state)[0] - 1, dim)));
	return (float8 *) ARR_DATA_PTR(state);
}

static ArrayType *
NewAccumState(int dim)
{
	Datum	   *zeros = palloc(sizeof(Datum) * (dim + 1));

	for (int i = 0; i <= dim; i++)
		zeros[i] = Float8GetDatumFast(0.0);
	return construct_array(zeros, dim + 1, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

PG_FUNCTION_INFO_V1(embedding_accum);
Datum
embedding_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *state;
	Embedding  *e;
	float8	   *sums;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	e = PG_GETARG_EMBEDDING_P(1);

	if (PG_ARGISNULL(0))
		state = NewAccumState(e->dim);
	else if (AggCheckCallContext(fcinfo, NULL))
		state = PG_GETARG_ARRAYTYPE_P(0);
	else
		state = PG_GETARG_ARRAYTYPE_P_COPY(0);

	sums = CheckAccumState(state, e->dim);
	sums[0] += 1.0;
	for (int i = 0; i < e->dim; i++)
		sums[i + 1] += e->x[i];
	PG_RETURN_ARRAYTYPE_P(state);
}

PG_FUNCTION_INFO_V1(embedding_combine);
Datum
embedding_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *state;
	ArrayType  *other;
	float8	   *sums;
	float8	   *more;
	int			dim;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	if (PG_ARGISNULL(0))
		PG_RETURN_ARRAYTYPE_P(PG_GETARG_ARRAYTYPE_P_COPY(1));

	other = PG_GETARG_ARRAYTYPE_P(1);
	state = AggCheckCallContext(fcinfo, NULL) ? PG_GETARG_ARRAYTYPE_P(0) : PG_GETARG_ARRAYTYPE_P_COPY(0);
	dim = AccumStateDim(other);
	more = CheckAccumState(other, dim);
	sums = CheckAccumState(state, dim);
	for (int i = 0; i <= dim; i++)
		sums[i] += more[i];
	PG_RETURN_ARRAYTYPE_P(state);
}

static Datum
FinishAccum(FunctionCallInfo fcinfo, bool average)
{
	ArrayType  *state;
	float8	   *sums;
	int			dim;
	Embedding  *result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = PG_GETARG_ARRAYTYPE_P(0);
	dim = AccumStateDim(state);
	sums = CheckAccumState(state, dim);
	if (sums[0] == 0)
		PG_RETURN_NULL();

	result = InitEmbedding(dim);
	for (int i = 0; i < dim; i++)
		result->x[i] = ToEmbeddingElement(average ? sums[i + 1] / sums[0] : sums[i + 1]);
	PG_RETURN_EMBEDDING_P(result);
}

PG_FUNCTION_INFO_V1(embedding_avg);
Datum
embedding_avg(PG_FUNCTION_ARGS)
{
	return FinishAccum(fcinfo, true);
}

PG_FUNCTION_INFO_V1(embedding_sum);
Datum
embedding_sum(PG_FUNCTION_ARGS)
{
	return FinishAccum(fcinfo, false);
}
