/*
 * embedding.h — the personalize.embedding type: a varlena of float4 elements.
 *
 * The on-disk layout matches pgvector's vector type (int16 dimension count,
 * int16 reserved, float4 elements) so that values can be exchanged in text or
 * binary form without conversion.
 */
#ifndef PERSONALIZE_EMBEDDING_H
#define PERSONALIZE_EMBEDDING_H

#include "postgres.h"
#include "fmgr.h"

#define EMBEDDING_MAX_DIM 16000

typedef struct Embedding
{
	int32		vl_len_;		/* varlena header (do not touch directly) */
	int16		dim;			/* number of dimensions */
	int16		unused;			/* reserved, always zero */
	float		x[FLEXIBLE_ARRAY_MEMBER];
} Embedding;

#define EMBEDDING_SIZE(dim)		(offsetof(Embedding, x) + sizeof(float) * (dim))
#define DatumGetEmbedding(d)	((Embedding *) PG_DETOAST_DATUM(d))
#define PG_GETARG_EMBEDDING_P(n)	DatumGetEmbedding(PG_GETARG_DATUM(n))
#define PG_RETURN_EMBEDDING_P(e)	PG_RETURN_POINTER(e)

extern Embedding *InitEmbedding(int dim);
extern void CheckEmbeddingDim(int dim);
extern void CheckEmbeddingElement(float value);
extern void CheckSameDims(const Embedding *a, const Embedding *b);
extern void CheckExpectedDims(int32 typmod, int dim);

#endif
