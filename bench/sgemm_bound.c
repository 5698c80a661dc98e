/*
 * sgemm_bound.c — the compute bound of recommend_all: cblas_sgemm on the
 * shapes it scores (users x items x factors), on two threads, each running a
 * single-threaded sgemm on its own blocks of users against tiles of items
 * (the layout of serving.c), scores written and nothing selected. Also the
 * GFLOP/s of one square sgemm (2048^3, OpenBLAS's own threads), the figure
 * bench/scale.sh quotes. Prints "tiled_users_per_s square_gflops
 * tiled_users_per_cpu_s" (medians of the repeats; the last counts the CPU
 * time of the process, both threads, so it is steadier on a shared machine).
 *   cc -O2 -o sgemm_bound sgemm_bound.c -lopenblas -lpthread
 *   ./sgemm_bound users items factors tile_users tile_items [repeats]
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 2

typedef struct Run
{
	const float *X,
			   *Y;
	float	   *C;
	int			users,
				items,
				f,
				tile_users,
				tile_items,
				first;			/* this thread takes blocks first, first + THREADS, ... */
} Run;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static void *
run_blocks(void *arg)
{
	Run		   *r = arg;

	for (int u0 = r->first * r->tile_users; u0 < r->users; u0 += THREADS * r->tile_users)
	{
		int			b = r->users - u0 < r->tile_users ? r->users - u0 : r->tile_users;

		for (int i0 = 0; i0 < r->items; i0 += r->tile_items)
		{
			int			t = r->items - i0 < r->tile_items ? r->items - i0 : r->tile_items;

			/* the fastest way to get C = X Y^T here: memset and beta 1 (OpenBLAS's beta-0 pass is slower) */
			memset(r->C, 0, sizeof(float) * b * t);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, t, r->f, 1.0f,
						r->X + (size_t) u0 * r->f, r->f, r->Y + (size_t) i0 * r->f, r->f, 1.0f, r->C, t);
		}
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	int			users,
				items,
				f,
				tile_users,
				tile_items,
				repeats;
	float	   *X,
			   *Y,
			   *A;
	double		tiled[32],
				square[32],
				per_cpu[32];

	if (argc < 6)
	{
		fprintf(stderr, "usage: %s users items factors tile_users tile_items [repeats]\n", argv[0]);
		return 2;
	}
	users = atoi(argv[1]);
	items = atoi(argv[2]);
	f = atoi(argv[3]);
	tile_users = atoi(argv[4]);
	tile_items = atoi(argv[5]);
	repeats = argc > 6 ? atoi(argv[6]) : 3;
	if (repeats < 1 || repeats > 32)
		repeats = 3;
	X = malloc(sizeof(float) * (size_t) users * f);
	Y = malloc(sizeof(float) * (size_t) items * f);
	A = malloc(sizeof(float) * 2048 * 2048 * 2);
	srand(1);
	for (size_t i = 0; i < (size_t) users * f; i++)
		X[i] = rand() / (float) RAND_MAX - 0.5f;
	for (size_t i = 0; i < (size_t) items * f; i++)
		Y[i] = rand() / (float) RAND_MAX - 0.5f;
	for (size_t i = 0; i < (size_t) 2048 * 2048; i++)
		A[i] = rand() / (float) RAND_MAX;
	for (int rep = 0; rep < repeats; rep++)
	{
		Run			runs[THREADS];
		pthread_t	tid[THREADS];
		double		start,
					cpu_start;

		openblas_set_num_threads(THREADS);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2048, 2048, 2048, 1.0f, A, 2048, A, 2048, 0.0f,
					A + 2048 * 2048, 2048);
		start = now();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2048, 2048, 2048, 1.0f, A, 2048, A, 2048, 0.0f,
					A + 2048 * 2048, 2048);
		square[rep] = 2.0 * 2048 * 2048 * 2048 / (now() - start) / 1e9;

		openblas_set_num_threads(1);
		start = now();
		cpu_start = cpu_now();
		for (int t = 0; t < THREADS; t++)
		{
			runs[t] = (Run) {X, Y, malloc(sizeof(float) * (size_t) tile_users * tile_items), users, items, f,
			tile_users, tile_items, t};
			pthread_create(&tid[t], NULL, run_blocks, &runs[t]);
		}
		for (int t = 0; t < THREADS; t++)
		{
			pthread_join(tid[t], NULL);
			free(runs[t].C);
		}
		tiled[rep] = users / (now() - start);
		per_cpu[rep] = users / (cpu_now() - cpu_start);
	}
	qsort(tiled, repeats, sizeof(double), cmp);
	qsort(square, repeats, sizeof(double), cmp);
	qsort(per_cpu, repeats, sizeof(double), cmp);
	printf("%.0f %.1f %.0f\n", tiled[repeats / 2], square[repeats / 2], per_cpu[repeats / 2]);
	return 0;
}
