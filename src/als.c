/*
 * als.c — personalize.als_fit: implicit-feedback alternating least squares
 * (Hu, Koren & Volinsky 2008) solved with a few conjugate-gradient steps per
 * row, warm-started from the previous factors (Takács, Pilászy & Tikk 2011).
 *
 * For a user u with interactions w_ui the confidence is c_ui = 1 + alpha w_ui
 * and the preference is 1; unobserved pairs have confidence 1 and preference
 * 0. Each half-iteration solves, for every row x_u,
 *
 *     (YᵀY + λI + Σ_i (c_ui - 1) y_i y_iᵀ) x_u = Σ_i c_ui y_i
 *
 * YᵀY is computed once per half-iteration with OpenBLAS (cblas_ssyrk); the
 * per-row CG touches only that matrix and the row's own interactions.
 *
 * Threads: rows are split over `threads` POSIX threads (default 2) that run
 * plain C on memory allocated beforehand and call no PostgreSQL API, at the
 * niceness personalize.training_nice above the backend's, so that serving
 * queries on the same cores keep their latency. The backend thread waits and
 * watches InterruptPending; on an interrupt it stops the workers, joins them,
 * and only then calls CHECK_FOR_INTERRUPTS(). OpenBLAS is called only while
 * no worker runs.
 * Every row's update depends only on the other side's factors, so results
 * do not depend on how rows are scheduled: a seed gives one model.
 */
#include "postgres.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/pg_prng.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "als.h"
#include "model.h"
#include "progress.h"
#include "trainmem.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"

const char *const als_options[] = {ALS_OPTION_KEYS, "warm_start", NULL};

#define ALS_CHUNK 256
#define ALS_PREFETCH 8			/* other-side rows requested ahead of their use */
#define ALS_GATHER_MIN 1024		/* rows shorter than this stay in cache between CG steps */
#define ALS_GATHER_BYTES ((Size) 128 * 1024 * 1024)	/* per thread */
#define ALS_RIDGE_STEPS 20		/* CG steps for the feature factors, per half-iteration */

typedef struct AlsHalf
{
	int			f;
	int			cg_steps;
	float		alpha;
	const float *gram;			/* f x f, full, regularization on the diagonal */
	const float *other;			/* factors of the other side */
	float	   *self;			/* factors being solved */
	const int64 *indptr;
	const int32 *indices;
	const float *weights;
	int32		nrows;
	const AlsNoise *noise;		/* item side of dp_als (dp.c), else NULL */
	const float *prior;			/* hybrid: rows' prior means (nrows x f), else NULL */
	float		prior_weight;	/* its weight λ: the system gets + λ prior on the right */
	bool		shared_gram;	/* rows solve (gram) x = Σ c y: no per-row confidence term */
	int			iteration;
	int			scratch_floats; /* per thread */
	int			nice;			/* workers' niceness above the backend's */
	float	   *gather;			/* per thread gather_rows x f, else NULL */
	int64		gather_rows;
	volatile int32 next;		/* next chunk start (atomic) */
	volatile bool stop;
	pthread_mutex_t lock;
	pthread_cond_t finished;
	int			running;		/* workers not finished (under lock) */
} AlsHalf;

static int	training_nice = 10;

void
als_init(void)
{
	DefineCustomIntVariable("personalize.training_nice",
							"Niceness the ALS training threads add to the backend's.",
							"Higher: serving queries on the same cores wait less for training; 0: training competes as an equal.",
							&training_nice, 10, 0, 19, PGC_USERSET, 0, NULL, NULL, NULL);
}

/*
 * out = G v for the symmetric f x f gram matrix, as Σ_a v_a G_a (rows of G):
 * every step is a vector multiply-add over a row held in L1, several times
 * faster than f dot products with their horizontal sums (the f² term is what
 * dominates a row's solve when users have few interactions).
 */
static inline void
gram_times(int f, const float *restrict G, const float *restrict v, float *restrict out)
{
	memset(out, 0, sizeof(float) * f);
	for (int a = 0; a < f; a++)
		vec_axpy(f, v[a], G + (Size) a * f, out);
}

/*
 * One row: cg_steps of conjugate gradient from the current x. A long row's
 * other-side rows are read once, from scattered memory into gather (the
 * thread's buffer), and the steps read them there in order: the same
 * arithmetic, without reading each of them from memory cg_steps + 1 times.
 */
MODEL_KERNEL static void
als_cg_row(const AlsHalf *h, int32 row, float *r, float *p, float *ap, float *gather)
{
	int			f = h->f;
	float	   *x = h->self + (Size) row * f;
	int64		start = h->indptr[row],
				end = h->indptr[row + 1];
	float		rsold,
				rsnew;
	float	   *noise_matrix = NULL,
			   *noise_vector;
	int64		ahead_end = h->indptr[h->nrows];

	if (end - start < ALS_GATHER_MIN || end - start > h->gather_rows)
		gather = NULL;
	gram_times(f, h->gram, x, r);
	for (int a = 0; a < f; a++)
		r[a] = -r[a];
	for (int64 j = start; j < end; j++)
	{
		const float *y = h->other + (Size) h->indices[j] * f;
		float		c = 1.0f + h->alpha * h->weights[j];

		/* scattered rows, this row's and the next ones': keep several misses in flight */
		if (j + ALS_PREFETCH < ahead_end)
			for (int a = 0; a < f; a += 16)
				__builtin_prefetch(h->other + (Size) h->indices[j + ALS_PREFETCH] * f + a);

		if (gather)
			y = memcpy(gather + (Size) (j - start) * f, y, sizeof(float) * f);

		vec_axpy(f, h->shared_gram ? c : c - (c - 1.0f) * vec_dot(f, y, x), y, r);
	}
	if (h->prior)
		vec_axpy(f, h->prior_weight, h->prior + (Size) row * f, r);
	/* private statistics: A + E and b + e (noise after the three work vectors) */
	if (h->noise)
	{
		noise_vector = ap + f;
		noise_matrix = h->shared_gram ? NULL : noise_vector + f;
		h->noise->item_noise(h->noise->arg, h->iteration, row, noise_matrix, noise_vector);
		for (int a = 0; a < f; a++)
			r[a] += noise_vector[a] - (noise_matrix ? vec_dot(f, noise_matrix + (Size) a * f, x) : 0.0f);
	}
	memcpy(p, r, sizeof(float) * f);
	rsold = vec_dot(f, r, r);
	if (rsold < 1e-20f)
		return;
	for (int it = 0; it < h->cg_steps; it++)
	{
		float		step;

		gram_times(f, h->gram, p, ap);
		for (int64 j = h->shared_gram ? end : start; j < end; j++)
		{
			const float *y = gather ? gather + (Size) (j - start) * f : h->other + (Size) h->indices[j] * f;
			float		c1 = h->alpha * h->weights[j];

			vec_axpy(f, c1 * vec_dot(f, y, p), y, ap);
		}
		if (noise_matrix)
			for (int a = 0; a < f; a++)
				ap[a] += vec_dot(f, noise_matrix + (Size) a * f, p);
		step = vec_dot(f, p, ap);
		if (!(step > 0))
			break;				/* only a noisy system can stop being positive definite */
		step = rsold / step;
		vec_axpy(f, step, p, x);
		vec_axpy(f, -step, ap, r);
		rsnew = vec_dot(f, r, r);
		if (rsnew < 1e-20f)
			break;
		for (int a = 0; a < f; a++)
			p[a] = r[a] + (rsnew / rsold) * p[a];
		rsold = rsnew;
	}
}

/* Claim and solve chunks until none is left; returns false when asked to stop. */
static bool
als_run_chunks(AlsHalf *h, int thread, float *scratch, bool backend)
{
	float	   *r = scratch,
			   *p = scratch + h->f,
			   *ap = scratch + 2 * h->f;

	for (;;)
	{
		int32		start;

		if (h->stop)
			return false;
		if (backend && InterruptPending && INTERRUPTS_CAN_BE_PROCESSED())
		{
			h->stop = true;
			return false;
		}
		start = __atomic_fetch_add(&h->next, ALS_CHUNK, __ATOMIC_RELAXED);
		if (start >= h->nrows)
			return true;
		for (int32 row = start; row < Min(start + ALS_CHUNK, h->nrows); row++)
			als_cg_row(h, row, r, p, ap, h->gather ? h->gather + (Size) thread * h->gather_rows * h->f : NULL);
	}
}

typedef struct AlsWorker
{
	AlsHalf    *half;
	int			thread;
	float	   *scratch;
} AlsWorker;

static void *
als_worker_main(void *arg)
{
	AlsWorker  *w = (AlsWorker *) arg;
	AlsHalf    *h = w->half;

	/* this thread only (Linux: a thread id names one thread); may fail, harmlessly */
	if (h->nice > 0)
		(void) setpriority(PRIO_PROCESS, (id_t) syscall(SYS_gettid),
						   Min(getpriority(PRIO_PROCESS, 0) + h->nice, 19));
	als_run_chunks(h, w->thread, w->scratch, false);
	pthread_mutex_lock(&h->lock);
	h->running--;
	pthread_cond_signal(&h->finished);
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* gram = otherᵀ other + reg I, as a full symmetric matrix. */
void
als_gram(const float *other, int32 n, int f, float reg, float *gram)
{
	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, f, n, 1.0f, other, f, 0.0f, gram, f);
	for (int a = 0; a < f; a++)
	{
		gram[a * f + a] += reg;
		for (int b = 0; b < a; b++)
			gram[a * f + b] = gram[b * f + a];
	}
}

/*
 * Solve every row of h on nthreads workers while the backend thread waits;
 * without workers (none could start), on the backend thread.
 */
static void
als_half(AlsHalf *h, int nthreads, float *scratch)
{
	h->next = 0;
	h->nice = training_nice;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->finished, NULL);
	for (;;)
	{
		pthread_t	tid[16];
		AlsWorker	w[16];
		int			started = 0;
		sigset_t	all,
					old;

		h->stop = false;
		h->running = 0;
		/* workers must never run a PostgreSQL signal handler */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		for (int t = 0; t < nthreads; t++)
		{
			w[t].half = h;
			w[t].thread = t;
			w[t].scratch = scratch + (Size) t * h->scratch_floats;
			pthread_mutex_lock(&h->lock);
			h->running++;
			pthread_mutex_unlock(&h->lock);
			if (pthread_create(&tid[started], NULL, als_worker_main, &w[t]) != 0)
			{
				pthread_mutex_lock(&h->lock);
				h->running--;
				pthread_mutex_unlock(&h->lock);
				break;
			}
			started++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (started == 0)
			als_run_chunks(h, 0, scratch, true);
		pthread_mutex_lock(&h->lock);
		while (h->running > 0)
		{
			cond_wait_ms(&h->finished, &h->lock, 10);
			if (InterruptPending && INTERRUPTS_CAN_BE_PROCESSED())
				h->stop = true;
		}
		pthread_mutex_unlock(&h->lock);
		for (int t = 0; t < started; t++)
			pthread_join(tid[t], NULL);
		/* every claimed chunk is finished once the workers are joined */
		if (h->next >= h->nrows)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	pthread_cond_destroy(&h->finished);
	pthread_mutex_destroy(&h->lock);
}

/* One half: rows of self solved against other through the CSR (indptr, indices, weights). */
static void
als_half_init(AlsHalf *h, int f, int cg_steps, float alpha, const float *gram, const float *other, float *self,
			  const int64 *indptr, const int32 *indices, const float *weights, int32 nrows)
{
	memset(h, 0, sizeof(*h));
	h->f = f;
	h->cg_steps = cg_steps;
	h->alpha = alpha;
	h->gram = gram;
	h->other = other;
	h->self = self;
	h->indptr = indptr;
	h->indices = indices;
	h->weights = weights;
	h->nrows = nrows;
	h->scratch_floats = 3 * f;
}

/* Per-thread gather buffers for the longest rows of either half (or none: NULL). */
static float *
als_gather_alloc(const int64 *user_indptr, int32 nusers, const int64 *item_indptr, int32 nitems,
				 int f, int nthreads, int64 *rows)
{
	int64		longest = 0;

	for (int32 u = 0; u < nusers; u++)
		longest = Max(longest, user_indptr[u + 1] - user_indptr[u]);
	for (int32 i = 0; i < nitems; i++)
		longest = Max(longest, item_indptr[i + 1] - item_indptr[i]);
	*rows = Min(longest, (int64) (ALS_GATHER_BYTES / (sizeof(float) * f)));
	if (*rows < ALS_GATHER_MIN)
		return NULL;
	return MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * f * *rows * nthreads);
}

/* One half-iteration over caller-provided arrays (distributed.c solves a node's users with it). */
void
als_solve_rows(int f, int cg_steps, float alpha, const float *gram, const float *other, float *self,
			   const int64 *indptr, const int32 *indices, const float *weights, int32 nrows, int nthreads)
{
	AlsHalf		h;
	float	   *scratch = palloc(sizeof(float) * 3 * f * nthreads);

	als_half_init(&h, f, cg_steps, alpha, gram, other, self, indptr, indices, weights, nrows);
	als_half(&h, nthreads, scratch);
	pfree(scratch);
}

/*
 * Loss as in the paper, divided by the number of cells plus observed pairs:
 * Σ_all c (p - xᵀy)² + λ(‖X‖² + ‖Y‖²).
 */
static double
als_loss(const Interactions *d, const float *X, const float *Y, int f, float reg, float alpha)
{
	float	   *gram = palloc(sizeof(float) * f * f);
	float	   *tmp = palloc(sizeof(float) * f);
	double		loss = 0,
				norms = 0;

	cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, f, d->nitems, 1.0f, Y, f, 0.0f, gram, f);
	for (int a = 0; a < f; a++)
		for (int b = 0; b < a; b++)
			gram[a * f + b] = gram[b * f + a];
	for (int32 u = 0; u < d->nusers; u++)
	{
		const float *x = X + (Size) u * f;

		for (int a = 0; a < f; a++)
			tmp[a] = vec_dot(f, gram + a * f, x);
		loss += vec_dot(f, tmp, x);
		norms += vec_dot(f, x, x);
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
		{
			double		s = vec_dot(f, x, Y + (Size) d->indices[j] * f);
			double		c = 1.0 + alpha * d->weights[j];

			loss += c * (1 - s) * (1 - s) - s * s;
		}
	}
	for (int32 i = 0; i < d->nitems; i++)
		norms += vec_dot(f, Y + (Size) i * f, Y + (Size) i * f);
	pfree(gram);
	pfree(tmp);
	return (loss + reg * norms) / ((double) d->nusers * d->nitems + d->nnz);
}

/*
 * Warm start (refresh): rows of users and items that the active version of
 * another ALS model knows start from its factors; the others keep their
 * random start. Returns how many rows were copied.
 */
static int64
als_warm_start(const char *model_name, const Interactions *d, float *X, float *Y, int f)
{
	LoadedModel *lm = model_cache_get(cstring_to_text(model_name));
	const ModelHeader *m = lm->m;
	const float *oldX = lm->user_factors;
	const float *oldY = lm->item_factors;
	int64		copied = 0;

	if (m->algorithm != MODEL_ALS || m->factors != f || oldX == NULL || oldY == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("warm_start model \"%s\" must be an ALS model with %d factors", model_name, f)));
	for (int32 u = 0; u < d->nusers; u++)
	{
		int32		old = loaded_user(lm, d->user_ids[u]);

		if (old >= 0)
		{
			memcpy(X + (Size) u * f, oldX + (Size) old * f, sizeof(float) * f);
			copied++;
		}
	}
	for (int32 i = 0; i < d->nitems; i++)
	{
		int32		old = loaded_item(lm, d->item_ids[i]);

		if (old >= 0)
		{
			memcpy(Y + (Size) i * f, oldY + (Size) old * f, sizeof(float) * f);
			copied++;
		}
	}
	return copied;
}

/* The ALS options of opts (their keys checked by the caller), defaults for the others. */
void
als_read_options(Jsonb *opts, AlsOptions *o)
{
	o->factors = (int) options_get_number(opts, "factors", ALS_DEFAULT_FACTORS, 1, 1024);
	o->regularization = (float) options_get_number(opts, "regularization", ALS_DEFAULT_REGULARIZATION, 0, 1e6);
	o->alpha = (float) options_get_number(opts, "alpha", ALS_DEFAULT_ALPHA, 0, 1e6);
	o->iterations = (int) options_get_number(opts, "iterations", 15, 0, 1000);
	o->cg_steps = (int) options_get_number(opts, "cg_steps", 3, 1, 1024);
	o->threads = (int) options_get_number(opts, "threads", 2, 1, 16);
	o->seed = (uint64) options_get_number(opts, "seed", 42, 0, 9007199254740991.0);
	o->calculate_loss = options_get_bool(opts, "calculate_loss", false);
}

/*
 * A model of algorithm alg (options opts, recorded as given) trained by ALS
 * on d; noise, when given, perturbs the item-side statistics (dp_als). A
 * non-NULL note is stored as a char section of kind note_kind.
 */
ModelHeader *
als_fit_model(Interactions *d, Jsonb *opts, const AlsOptions *o, ModelAlgorithm alg,
			  const AlsNoise *noise, int note_kind, const char *note)
{
	int			f = o->factors,
				nthreads = o->threads;
	float		reg = o->regularization;
	pg_prng_state rng;
	ModelBuilder b;
	char	   *options_text;
	ModelHeader *m;
	float	   *X,
			   *Y,
			   *gram,
			   *scratch;
	int64	   *t_indptr;
	int32	   *t_indices;
	float	   *t_weights;
	AlsHalf		users,
				items;
	JsonbValue *warm;
	Size		x_bytes,
				y_bytes;
	void	   *x_chunk,
			   *y_chunk;
	bool		shared;

	pg_prng_seed(&rng, o->seed);
	options_text = model_reserve_interactions(&b, alg, d, opts, f, 0, true);
	if (note)
		model_reserve(&b, note_kind, ELEMENT_CHAR, ROWS_NONE, strlen(note) + 1);
	m = model_allocate(&b);
	model_fill_interactions(m, d, options_text);
	interactions_adopt(d, m);
	if (note)
		strcpy(model_section(m, note_kind), note);
	/* trained in huge pages, the image's factor pages given back meanwhile (trainmem.c) */
	x_bytes = sizeof(float) * (Size) d->nusers * f;
	y_bytes = sizeof(float) * (Size) d->nitems * f;
	X = trainmem_alloc(x_bytes, &x_chunk);
	Y = trainmem_alloc(y_bytes, &y_chunk);
	shared = model_held_segment(m) != NULL;
	trainmem_release(model_section(m, SECTION_USER_FACTORS), x_bytes, shared);
	trainmem_release(model_section(m, SECTION_ITEM_FACTORS), y_bytes, shared);
	/* small positive start, as the common implementations do; users then items */
	for (Size i = 0; i < (Size) d->nusers * f; i++)
		X[i] = (float) (pg_prng_double(&rng) * 0.01);
	for (Size i = 0; i < (Size) d->nitems * f; i++)
		Y[i] = (float) (pg_prng_double(&rng) * 0.01);
	warm = getKeyJsonValueFromContainer(&opts->root, "warm_start", strlen("warm_start"), NULL);
	if (warm && alg != MODEL_ALS)	/* dp_als: factors of a non-private model would leak */
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"warm_start\" is not supported by %s models", model_algorithm_name(alg))));
	if (warm && warm->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"warm_start\" must be the name of a model")));
	if (warm)
	{
		char	   *from = pnstrdup(warm->val.string.val, warm->val.string.len);
		int64		copied = als_warm_start(from, d, X, Y, f);

		ereport(DEBUG1,
				(errmsg("als warm start: " INT64_FORMAT " of %d user and item rows from model \"%s\"",
						copied, d->nusers + d->nitems, from)));
	}

	interactions_transpose(d, &t_indptr, &t_indices, &t_weights);
	gram = palloc(sizeof(float) * f * f);

	als_half_init(&users, f, o->cg_steps, o->alpha, gram, Y, X, d->indptr, d->indices, d->weights, d->nusers);
	als_half_init(&items, f, o->cg_steps, o->alpha, gram, X, Y, t_indptr, t_indices, t_weights, d->nitems);
	users.scratch_floats = items.scratch_floats = 3 * f + (noise ? f * f + f : 0);
	users.gather = items.gather = als_gather_alloc(d->indptr, d->nusers, t_indptr, d->nitems, f, nthreads, &users.gather_rows);
	items.gather_rows = users.gather_rows;
	items.noise = noise;
	items.shared_gram = noise && noise->shared_gram;
	scratch = palloc(sizeof(float) * users.scratch_floats * nthreads);

	for (int it = 0; it < o->iterations; it++)
	{
		instr_time	start,
					half,
					elapsed;
		double		users_seconds;

		INSTR_TIME_SET_CURRENT(start);
		als_gram(Y, d->nitems, f, reg, gram);
		als_half(&users, nthreads, scratch);
		INSTR_TIME_SET_CURRENT(half);
		INSTR_TIME_SUBTRACT(half, start);
		users_seconds = INSTR_TIME_GET_DOUBLE(half);
		if (noise)
			noise->before_items(noise->arg, it, X, d->nusers);
		als_gram(X, d->nusers, f, reg, gram);
		if (noise)
			noise->perturb_gram(noise->arg, it, gram);
		items.iteration = it;
		als_half(&items, nthreads, scratch);
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		if (o->calculate_loss)
			m->loss = als_loss(d, X, Y, f, reg, o->alpha);
		ereport(DEBUG1,
				(errmsg("%s iteration %d of %d: %.3f s%s; users %.3f s, items %.3f s",
						model_algorithm_name(alg), it + 1, o->iterations, INSTR_TIME_GET_DOUBLE(elapsed),
						o->calculate_loss ? psprintf(", loss %.9g", m->loss) : "",
						users_seconds, INSTR_TIME_GET_DOUBLE(elapsed) - users_seconds)));
		progress_set_iteration(it + 1, o->iterations, o->calculate_loss ? m->loss : NAN);
	}
	trainmem_copy_out(model_section(m, SECTION_USER_FACTORS), X, x_bytes);
	trainmem_copy_out(model_section(m, SECTION_ITEM_FACTORS), Y, y_bytes);
	pfree(x_chunk);
	pfree(y_chunk);
	return m;
}

PG_FUNCTION_INFO_V1(als_final);
Datum
als_final(PG_FUNCTION_ARGS)
{
	InteractionState *st;
	Jsonb	   *opts;
	AlsOptions	o;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (InteractionState *) PG_GETARG_POINTER(0);
	opts = interactions_options(st);
	options_check_keys(opts, als_options);
	als_read_options(opts, &o);
	if (st->n == 0)
		PG_RETURN_NULL();
	interactions_check_memory(st, 4.0 * o.factors * ((double) st->users.count + st->items.count), "als");
	/* interactions_build consumes the triples (FINALFUNC_MODIFY = READ_WRITE) */
	PG_RETURN_DATUM(model_datum(als_fit_model(interactions_build(st), opts, &o, MODEL_ALS, NULL, 0, NULL)));
}

/* ---------- the hybrid's ALS core: id factors plus feature factors ---------- */

/*
 * The warm rows (those with an id) of a side: their model rows, their id's
 * weight, and their features as a CSR over feature indices; prior = F W.
 */
typedef struct WarmSide
{
	int32		n;
	int32	   *rows;			/* model row of each warm row */
	float	   *id_weight;
	int64	   *f_indptr;
	int32	   *f_indices;
	float	   *f_weights;
	int32		nfeatures;
	float	   *W;				/* nfeatures x f */
	float	   *prior;			/* n x f */
} WarmSide;

static void
warm_side_build(const AlsFeatureSide *s, int f, WarmSide *w)
{
	int64		nnz = 0;

	w->rows = palloc(sizeof(int32) * Max(s->nrows, 1));
	w->id_weight = palloc(sizeof(float) * Max(s->nrows, 1));
	w->n = 0;
	for (int32 r = 0; r < s->nrows; r++)
		if (s->has_id[r])
			w->rows[w->n++] = r;
	w->f_indptr = palloc(sizeof(int64) * ((Size) w->n + 1));
	w->f_indices = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(s->indptr[s->nrows], 1));
	w->f_weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(s->indptr[s->nrows], 1));
	for (int32 k = 0; k < w->n; k++)
	{
		int32		r = w->rows[k];

		w->f_indptr[k] = nnz;
		w->id_weight[k] = 1.0f;
		for (int64 j = s->indptr[r]; j < s->indptr[r + 1]; j++)
		{
			if (s->indices[j] < s->nrows)
				w->id_weight[k] = s->weights[j];
			else
			{
				w->f_indices[nnz] = s->indices[j] - s->nrows;
				w->f_weights[nnz++] = s->weights[j];
			}
		}
	}
	w->f_indptr[w->n] = nnz;
	w->nfeatures = s->nfeatures;
	w->W = palloc0(sizeof(float) * Max((Size) s->nfeatures * f, 1));
	w->prior = s->nfeatures > 0 ? MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) w->n * f, 1)) : NULL;
}

/* out (n x f) = F P over the warm rows */
static void
features_times(const WarmSide *w, int f, const float *P, float *out)
{
	memset(out, 0, sizeof(float) * (Size) w->n * f);
	for (int32 k = 0; k < w->n; k++)
		for (int64 j = w->f_indptr[k]; j < w->f_indptr[k + 1]; j++)
			vec_axpy(f, w->f_weights[j], P + (Size) w->f_indices[j] * f, out + (Size) k * f);
}

/* out (nfeatures x f) = λ Fᵀ (F P) + μ P */
static void
ridge_apply(const WarmSide *w, int f, float lambda, float mu, const float *P, float *tmp, float *out)
{
	features_times(w, f, P, tmp);
	for (Size a = 0; a < (Size) w->nfeatures * f; a++)
		out[a] = mu * P[a];
	for (int32 k = 0; k < w->n; k++)
		for (int64 j = w->f_indptr[k]; j < w->f_indptr[k + 1]; j++)
			vec_axpy(f, lambda * w->f_weights[j], tmp + (Size) k * f, out + (Size) w->f_indices[j] * f);
}

/*
 * W = argmin λ Σ_k ‖x_k − F_k W‖² + μ ‖W‖² for the warm rows' factors X:
 * (λ FᵀF + μ I) W = λ Fᵀ X, by conjugate gradient with a Jacobi
 * preconditioner, each of the f columns its own system, from the current W.
 */
static void
ridge_features(WarmSide *w, int f, const float *X, float lambda, float mu, int steps)
{
	Size		nw = (Size) w->nfeatures * f;
	float	   *R = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * nw);
	float	   *Z = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * nw);
	float	   *P = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * nw);
	float	   *AP = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * nw);
	float	   *tmp = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) w->n * f, 1));
	float	   *diag = palloc0(sizeof(float) * w->nfeatures);
	double	   *rz = palloc0(sizeof(double) * f),
			   *rz_new = palloc(sizeof(double) * f),
			   *pap = palloc(sizeof(double) * f);

	for (int64 j = 0; j < w->f_indptr[w->n]; j++)
		diag[w->f_indices[j]] += lambda * w->f_weights[j] * w->f_weights[j];
	for (int32 g = 0; g < w->nfeatures; g++)
		diag[g] += mu;
	/* R = λ Fᵀ X − (λ FᵀF + μ I) W */
	ridge_apply(w, f, lambda, mu, w->W, tmp, AP);
	memset(R, 0, sizeof(float) * nw);
	for (int32 k = 0; k < w->n; k++)
		for (int64 j = w->f_indptr[k]; j < w->f_indptr[k + 1]; j++)
			vec_axpy(f, lambda * w->f_weights[j], X + (Size) k * f, R + (Size) w->f_indices[j] * f);
	for (Size a = 0; a < nw; a++)
	{
		R[a] -= AP[a];
		Z[a] = R[a] / diag[a / f];
		P[a] = Z[a];
		rz[a % f] += (double) R[a] * Z[a];
	}
	for (int s = 0; s < steps; s++)
	{
		CHECK_FOR_INTERRUPTS();
		ridge_apply(w, f, lambda, mu, P, tmp, AP);
		memset(pap, 0, sizeof(double) * f);
		for (Size a = 0; a < nw; a++)
			pap[a % f] += (double) P[a] * AP[a];
		memset(rz_new, 0, sizeof(double) * f);
		for (Size a = 0; a < nw; a++)
		{
			int			c = a % f;
			float		step = pap[c] > 0 ? (float) (rz[c] / pap[c]) : 0.0f;

			w->W[a] += step * P[a];
			R[a] -= step * AP[a];
			Z[a] = R[a] / diag[a / f];
			rz_new[c] += (double) R[a] * Z[a];
		}
		for (Size a = 0; a < nw; a++)
		{
			int			c = a % f;

			P[a] = Z[a] + (rz[c] > 0 ? (float) (rz_new[c] / rz[c]) : 0.0f) * P[a];
		}
		memcpy(rz, rz_new, sizeof(double) * f);
	}
	pfree(R);
	pfree(Z);
	pfree(P);
	pfree(AP);
	pfree(tmp);
}

/*
 * Fills the parameters of both sides: each feature's row is its row of W,
 * each warm row's id row what its solved vector has beyond F W (divided by
 * the id's weight); the last (bias) component 1 for users, 0 for items.
 */
static void
als_feature_params(const AlsFeatureSide *s, const WarmSide *w, const float *X, int f, bool user)
{
	int			dim = s->dim;

	memset(s->params, 0, sizeof(float) * ((Size) s->nrows + s->nfeatures) * dim);
	for (int32 g = 0; g < s->nfeatures; g++)
		memcpy(s->params + ((Size) s->nrows + g) * dim, w->W + (Size) g * f, sizeof(float) * f);
	for (int32 k = 0; k < w->n; k++)
	{
		float	   *out = s->params + (Size) w->rows[k] * dim;

		for (int a = 0; a < f; a++)
			out[a] = (X[(Size) k * f + a] - (w->prior ? w->prior[(Size) k * f + a] : 0.0f)) / w->id_weight[k];
	}
	if (user)
		for (Size r = 0; r < (Size) s->nrows + s->nfeatures; r++)
			s->params[r * dim + f] = 1.0f;
}

void
als_fit_features(const Interactions *d, const AlsOptions *o, float feature_regularization,
				 AlsFeatureSide *user_side, AlsFeatureSide *item_side)
{
	int			f = o->factors;
	float		reg = o->regularization;
	pg_prng_state rng;
	WarmSide	wu,
				wi;
	int32	   *item_warm;
	Interactions warm;
	float	   *X,
			   *Y,
			   *gram,
			   *scratch;
	int64	   *t_indptr;
	int32	   *t_indices;
	float	   *t_weights;
	AlsHalf		users,
				items;
	int64		nnz = 0;

	warm_side_build(user_side, f, &wu);
	warm_side_build(item_side, f, &wi);

	/* interactions over the warm rows */
	item_warm = palloc(sizeof(int32) * Max(item_side->nrows, 1));
	for (int32 k = 0; k < wi.n; k++)
		item_warm[wi.rows[k]] = k;
	memset(&warm, 0, sizeof(warm));
	warm.nusers = wu.n;
	warm.nitems = wi.n;
	warm.indptr = palloc(sizeof(int64) * ((Size) wu.n + 1));
	warm.indices = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(d->nnz, 1));
	warm.weights = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(d->nnz, 1));
	for (int32 k = 0; k < wu.n; k++)
	{
		int32		u = wu.rows[k];

		warm.indptr[k] = nnz;
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
		{
			warm.indices[nnz] = item_warm[d->indices[j]];
			warm.weights[nnz++] = d->weights[j];
		}
	}
	warm.indptr[wu.n] = nnz;
	warm.nnz = nnz;
	interactions_transpose(&warm, &t_indptr, &t_indices, &t_weights);

	/* the start of als_fit_model: without features the same model */
	pg_prng_seed(&rng, o->seed);
	X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) wu.n * f, 1));
	Y = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) wi.n * f, 1));
	for (Size i = 0; i < (Size) wu.n * f; i++)
		X[i] = (float) (pg_prng_double(&rng) * 0.01);
	for (Size i = 0; i < (Size) wi.n * f; i++)
		Y[i] = (float) (pg_prng_double(&rng) * 0.01);
	gram = palloc(sizeof(float) * f * f);

	als_half_init(&users, f, o->cg_steps, o->alpha, gram, Y, X, warm.indptr, warm.indices, warm.weights, wu.n);
	als_half_init(&items, f, o->cg_steps, o->alpha, gram, X, Y, t_indptr, t_indices, t_weights, wi.n);
	users.prior = wu.prior;
	users.prior_weight = items.prior_weight = reg;
	items.prior = wi.prior;
	scratch = palloc(sizeof(float) * users.scratch_floats * o->threads);

	for (int it = 0; it < o->iterations; it++)
	{
		als_gram(Y, wi.n, f, reg, gram);
		if (wu.prior)
			features_times(&wu, f, wu.W, wu.prior);
		als_half(&users, o->threads, scratch);
		if (wu.prior)
			ridge_features(&wu, f, X, reg, feature_regularization, ALS_RIDGE_STEPS);
		als_gram(X, wu.n, f, reg, gram);
		if (wi.prior)
			features_times(&wi, f, wi.W, wi.prior);
		als_half(&items, o->threads, scratch);
		if (wi.prior)
			ridge_features(&wi, f, Y, reg, feature_regularization, ALS_RIDGE_STEPS);
		progress_set_iteration(it + 1, o->iterations, NAN);
	}
	/* the priors of the final W, so that id rows are what the vectors have beyond them */
	if (wu.prior)
		features_times(&wu, f, wu.W, wu.prior);
	if (wi.prior)
		features_times(&wi, f, wi.W, wi.prior);
	als_feature_params(user_side, &wu, X, f, true);
	als_feature_params(item_side, &wi, Y, f, false);
}
