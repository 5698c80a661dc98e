/*
 * membw.c — single-core sequential read bandwidth, the physical bound for a
 * scan: sums a buffer far larger than the caches, reports the median GB/s.
 *   cc -O2 -o membw membw.c && ./membw [MiB]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a, y = *(const double *) b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	size_t		mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	size_t		n = mib * 1024 * 1024 / sizeof(long);
	long	   *buf = malloc(n * sizeof(long));
	double		rates[9];
	long		total = 0;

	if (!buf)
		return 1;
	memset(buf, 1, n * sizeof(long));
	for (int r = 0; r < 9; r++)
	{
		double		t0 = now();
		long		s0 = 0, s1 = 0, s2 = 0, s3 = 0;

		for (size_t i = 0; i + 3 < n; i += 4)
		{
			s0 += buf[i];
			s1 += buf[i + 1];
			s2 += buf[i + 2];
			s3 += buf[i + 3];
		}
		total += s0 + s1 + s2 + s3;
		rates[r] = n * sizeof(long) / (now() - t0) / 1e9;
	}
	qsort(rates, 9, sizeof(double), cmp);
	printf("%.2f\n", rates[4]);
	fprintf(stderr, "checksum %ld\n", total);
	free(buf);
	return 0;
}
