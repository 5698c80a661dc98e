/*
 * distance.c — vector kernels.
 *
 * Compiled with -ftree-vectorize and relaxed float associativity (Makefile),
 * so the reductions below become SIMD loops. On x86-64 each kernel is also
 * cloned for x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512); an ifunc resolver
 * picks one at load time, so one binary runs on any x86-64 and uses wide
 * registers where the CPU has them.
 */
#include "postgres.h"

#include <math.h>

#include "distance.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define KERNEL_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define KERNEL_CLONES
#endif

KERNEL_CLONES float
l2_squared_distance(int dim, const float *a, const float *b)
{
	float		sum = 0.0f;

	for (int i = 0; i < dim; i++)
	{
		float		diff = a[i] - b[i];

		sum += diff * diff;
	}
	return sum;
}

KERNEL_CLONES float
inner_product(int dim, const float *a, const float *b)
{
	float		sum = 0.0f;

	for (int i = 0; i < dim; i++)
		sum += a[i] * b[i];
	return sum;
}

/* Cosine similarity; NaN when either vector has zero norm. */
KERNEL_CLONES double
cosine_similarity(int dim, const float *a, const float *b)
{
	float		dot = 0.0f;
	float		na = 0.0f;
	float		nb = 0.0f;

	for (int i = 0; i < dim; i++)
	{
		dot += a[i] * b[i];
		na += a[i] * a[i];
		nb += b[i] * b[i];
	}
	return (double) dot / sqrt((double) na * (double) nb);
}

/* Accumulated in double: norm() and normalize() must not overflow for large elements. */
double
squared_norm(int dim, const float *a)
{
	double		sum = 0.0;

	for (int i = 0; i < dim; i++)
		sum += (double) a[i] * (double) a[i];
	return sum;
}
