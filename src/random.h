/*
 * random.h — a small counter-seeded generator for training and noise:
 * xoroshiro128** (Blackman & Vigna 2018) seeded through splitmix64, with the
 * uniform, Gaussian and Laplace draws the SGD trainers and the differential
 * privacy mechanisms need.
 *
 * Plain C with the state in the caller's hands: worker threads use it
 * without touching any PostgreSQL API, and a stream is fixed by
 * (seed, stream), e.g. (seed, iteration * items + item), so results do not
 * depend on how work is scheduled over threads.
 */
#ifndef PERSONALIZE_RANDOM_H
#define PERSONALIZE_RANDOM_H

#include <math.h>
#include <stdint.h>

typedef struct Rng
{
	uint64_t	s0;
	uint64_t	s1;
} Rng;

static inline uint64_t
rng_splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* The generator of stream `stream` under `seed`: distinct pairs give independent-looking streams. */
static inline void
rng_seed(Rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t	x = seed ^ rng_splitmix64(&stream);

	r->s0 = rng_splitmix64(&x);
	r->s1 = rng_splitmix64(&x);
	if (r->s0 == 0 && r->s1 == 0)
		r->s1 = 1;
}

static inline uint64_t
rng_next(Rng *r)
{
	uint64_t	s0 = r->s0,
				s1 = r->s1;
	uint64_t	x = s0 * 5;
	uint64_t	result = ((x << 7) | (x >> 57)) * 9;

	s1 ^= s0;
	r->s0 = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
	r->s1 = (s1 << 37) | (s1 >> 27);
	return result;
}

/* Uniform in [0, 1), 53 bits. */
static inline double
rng_uniform(Rng *r)
{
	return (double) (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in (0, 1): never 0, so logarithms are finite. */
static inline double
rng_uniform_open(Rng *r)
{
	return ((double) (rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0 (Lemire's multiply-shift, rejection for exactness). */
static inline uint32_t
rng_below(Rng *r, uint32_t n)
{
	uint64_t	m = (uint64_t) (uint32_t) (rng_next(r) >> 32) * n;
	uint32_t	low = (uint32_t) m;

	if (low < n)
	{
		uint32_t	threshold = (uint32_t) (-n) % n;

		while (low < threshold)
		{
			m = (uint64_t) (uint32_t) (rng_next(r) >> 32) * n;
			low = (uint32_t) m;
		}
	}
	return (uint32_t) (m >> 32);
}

/* Standard normal (Box–Muller; one draw per call, the pair's second is dropped for simplicity). */
static inline double
rng_normal(Rng *r)
{
	double		u = rng_uniform_open(r),
				v = rng_uniform(r);

	return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/*
 * Laplace(0, b): density exp(-|x| / b) / 2b, variance 2 b². The inverse of
 * the distribution function at a uniform u in (0, 1):
 * x = b ln(2u) for u < 1/2, x = -b ln(2 - 2u) otherwise.
 */
static inline double
rng_laplace(Rng *r, double b)
{
	double		u = rng_uniform_open(r);

	return u < 0.5 ? b * log(2.0 * u) : -b * log(2.0 - 2.0 * u);
}

#endif
