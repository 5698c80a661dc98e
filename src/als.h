/*
 * als.h — the pieces of ALS training that other training paths reuse
 * (distributed.c trains from a Citus table with them).
 */
#ifndef PERSONALIZE_ALS_H
#define PERSONALIZE_ALS_H

#include "postgres.h"

#define ALS_OPTION_KEYS "factors", "regularization", "alpha", "iterations", "cg_steps", "seed", \
	"calculate_loss", "threads"

/* gram = otherᵀ other + reg I (n rows of f floats), full f x f */
extern void als_gram(const float *other, int32 n, int f, float reg, float *gram);

/* cg_steps of conjugate gradient for each of nrows rows of self, from its current value */
extern void als_solve_rows(int f, int cg_steps, float alpha, const float *gram, const float *other, float *self,
						   const int64 *indptr, const int32 *indices, const float *weights, int32 nrows,
						   int nthreads);

#endif
