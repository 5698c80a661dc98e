/*
 * sgd.c — Hogwild SGD (Niu et al. 2011) for ranking factorizations: BPR
 * (Rendle et al. 2009) and WARP (Weston et al. 2011) over vectors that are
 * sums of parameter rows (LightFM's model, Kula 2015).
 *
 * An epoch draws nsamples positives (u, i, context) with replacement. BPR
 * draws one negative j, uniformly from the negatives; a j that is one of u's
 * positives skips the sample (implicit's verify_negative_samples). With
 * d = user vector (+ context) and x = d·(q_i - q_j), z = σ(-x), ascent on
 * log σ(x) - λ‖θ‖²/2 moves
 *     user rows    by  w z (q_i - q_j)   (the user's last component stays 1)
 *     item i rows  by  w z d,   item j rows by -w z d
 *     context row  by  z (q_i - q_j)
 * (w = the row's weight in the sum). WARP tries up to max_sampled negatives
 * until one violates s_uj > s_ui - 1, and steps on the hinge 1 - s_ui + s_uj
 * with weight L = ln(max(1, ⌊(negatives - 1) / tries⌋)), as LightFM.
 *
 * Threads: samples of an epoch are split evenly; thread t of epoch e draws
 * from its own generator (seed, e, t) and updates the shared parameters
 * without locks (Hogwild). One thread gives one fixed result per seed. The
 * worker threads run plain C on memory allocated beforehand; the backend
 * thread works too and watches for interrupts between chunks, stops the
 * others, joins them, and only then calls CHECK_FOR_INTERRUPTS().
 */
#include "postgres.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>

#include "miscadmin.h"
#include "model.h"
#include "portability/instr_time.h"
#include "random.h"
#include "sgd.h"

#define SGD_CHUNK 4096
#define SGD_MAX_THREADS 16

typedef struct SgdThread
{
	SgdProblem *p;
	Rng			rng;
	int64		quota;			/* samples left this epoch */
	double		loss;
	int64		updates;
	int64		skipped;
	float	   *scratch;		/* 4 dim */
	volatile bool *stop;
} SgdThread;

static inline uint64
rng_below64(Rng *r, uint64 n)
{
	if (n <= PG_UINT32_MAX)
		return rng_below(r, (uint32) n);
	return (uint64) (((unsigned __int128) rng_next(r) * n) >> 64);
}

/* out = Σ w params[row] over the composition of r (dim components). */
static inline void
compose(const SgdComposition *c, const float *params, int32 r, int dim, float *restrict out)
{
	if (c->indptr == NULL)
	{
		memcpy(out, params + (Size) r * dim, sizeof(float) * dim);
		return;
	}
	memset(out, 0, sizeof(float) * dim);
	for (int64 j = c->indptr[r]; j < c->indptr[r + 1]; j++)
		vec_axpy(dim, c->weights[j], params + (Size) c->indices[j] * dim, out);
}

static inline void
compose_user(const SgdProblem *p, int32 u, int32 context, float *out)
{
	compose(&p->users, p->user_params, u, p->dim, out);
	if (context >= 0)
		vec_axpy(p->dim - 1, 1.0f, p->context_params + (Size) context * p->dim, out);
	out[p->dim - 1] = 1.0f;
}

/* x += lr (scale g - λ x) on n components, with Adagrad's per-component rate when acc. */
static inline void
step(float *restrict x, float *restrict acc, const float *restrict g, float scale,
	 float lr, float reg, int n)
{
	if (acc)
	{
		for (int k = 0; k < n; k++)
		{
			float		gk = scale * g[k] - reg * x[k];

			acc[k] += gk * gk;
			x[k] += lr * gk / sqrtf(acc[k]);
		}
	}
	else
		for (int k = 0; k < n; k++)
			x[k] += lr * (scale * g[k] - reg * x[k]);
}

static inline void
distribute(const SgdComposition *c, float *params, float *acc, int32 r, int dim, const float *g,
		   float scale, float lr, float reg, int n)
{
	if (c->indptr == NULL)
	{
		step(params + (Size) r * dim, acc ? acc + (Size) r * dim : NULL, g, scale, lr, reg, n);
		return;
	}
	for (int64 j = c->indptr[r]; j < c->indptr[r + 1]; j++)
	{
		Size		row = (Size) c->indices[j] * dim;

		step(params + row, acc ? acc + row : NULL, g, scale * c->weights[j], lr, reg, n);
	}
}

static inline bool
is_positive(const SgdProblem *p, int32 u, int32 item)
{
	int64		lo = p->pos_indptr[u],
				hi = p->pos_indptr[u + 1];

	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (p->pos_indices[mid] < item)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->pos_indptr[u + 1] && p->pos_indices[lo] == item;
}

/* One positive and its update. */
MODEL_KERNEL static void
sgd_sample(SgdThread *t)
{
	SgdProblem *p = t->p;
	int			dim = p->dim;
	float	   *d = t->scratch,
			   *qi = d + dim,
			   *qj = qi + dim,
			   *g = qj + dim;
	int64		s;
	int32		u,
				i,
				ctx,
				j = -1;
	float		scale;
	float		lr = p->learning_rate;

	if (p->by_user)
	{
		int32		su = p->sample_users[rng_below(&t->rng, (uint32) p->nsample_users)];
		int64		first = p->user_samples[su];

		s = first + (int64) rng_below64(&t->rng, (uint64) (p->user_samples[su + 1] - first));
	}
	else
		s = (int64) rng_below64(&t->rng, (uint64) p->nsamples);
	u = p->sample_user[s];
	i = p->sample_item[s];
	ctx = p->sample_context ? p->sample_context[s] : -1;
	compose_user(p, u, ctx, d);
	compose(&p->items, p->item_params, i, dim, qi);
	if (p->loss == SGD_BPR)
	{
		float		x;

		j = p->negatives[rng_below(&t->rng, (uint32) p->nnegatives)];
		if (j == i || is_positive(p, u, j))
		{
			t->skipped++;
			return;
		}
		compose(&p->items, p->item_params, j, dim, qj);
		x = vec_dot(dim, d, qi) - vec_dot(dim, d, qj);
		/* z = σ(-x); loss -ln σ(x) = ln(1 + e^-x), computed without overflow */
		scale = 1.0f / (1.0f + expf(x));
		t->loss += x > 0 ? log1pf(expf(-x)) : -x + log1pf(expf(x));
	}
	else
	{
		float		si = vec_dot(dim, d, qi);
		int			tries;

		for (tries = 1; tries <= p->max_sampled; tries++)
		{
			int32		c = p->negatives[rng_below(&t->rng, (uint32) p->nnegatives)];
			const float *qc;

			/*
			 * Composed items are searched in the epoch's snapshot (one dot
			 * product instead of a sum of rows); the step uses the current one.
			 */
			if (p->item_cache)
				qc = p->item_cache + (Size) c * dim;
			else
			{
				compose(&p->items, p->item_params, c, dim, qj);
				qc = qj;
			}
			if (vec_dot(dim, d, qc) > si - 1.0f && c != i && !is_positive(p, u, c))
			{
				j = c;
				if (p->item_cache)
					compose(&p->items, p->item_params, c, dim, qj);
				break;
			}
		}
		if (j < 0)
		{
			t->skipped++;
			return;
		}
		scale = logf(Max(1.0f, floorf((float) (p->nnegatives - 1) / tries)));
		t->loss += scale;
	}
	t->updates++;
	/* user side: the gradient is q_i - q_j (its last component is unused) */
	for (int k = 0; k < dim; k++)
		g[k] = qi[k] - qj[k];
	distribute(&p->users, p->user_params, p->user_acc, u, dim, g, scale, lr, p->user_regularization, dim - 1);
	if (ctx >= 0)
		step(p->context_params + (Size) ctx * dim, p->context_acc ? p->context_acc + (Size) ctx * dim : NULL,
			 g, scale, lr, p->context_regularization, dim - 1);
	/* item side: ± d, bias included (d's last component is 1) */
	distribute(&p->items, p->item_params, p->item_acc, i, dim, d, scale, lr, p->item_regularization, dim);
	distribute(&p->items, p->item_params, p->item_acc, j, dim, d, -scale, lr, p->item_regularization, dim);
}

/* Samples until the quota is spent; false when asked to stop first. */
static bool
sgd_run(SgdThread *t, bool backend)
{
	while (t->quota > 0)
	{
		int64		n = Min(t->quota, SGD_CHUNK);

		if (*t->stop)
			return false;
		if (backend && InterruptPending && INTERRUPTS_CAN_BE_PROCESSED())
		{
			*t->stop = true;
			return false;
		}
		for (int64 s = 0; s < n; s++)
			sgd_sample(t);
		t->quota -= n;
	}
	return true;
}

static void *
sgd_worker_main(void *arg)
{
	sgd_run((SgdThread *) arg, false);
	return NULL;
}

void
sgd_init_params(SgdProblem *p)
{
	Rng			rng;
	int			dim = p->dim;
	float		scale = 1.0f / (dim - 1);

	rng_seed(&rng, p->seed, UINT64_C(0x5eed));
	for (int64 r = 0; r < p->n_user_params; r++)
	{
		float	   *x = p->user_params + (Size) r * dim;

		for (int k = 0; k < dim - 1; k++)
			x[k] = (float) (rng_uniform(&rng) - 0.5) * scale;
		x[dim - 1] = 1.0f;
	}
	for (int64 r = 0; r < p->n_item_params; r++)
	{
		float	   *x = p->item_params + (Size) r * dim;

		for (int k = 0; k < dim - 1; k++)
			x[k] = (float) (rng_uniform(&rng) - 0.5) * scale;
		x[dim - 1] = 0.0f;
	}
	if (p->ncontexts > 0)
		memset(p->context_params, 0, sizeof(float) * (Size) p->ncontexts * dim);
}

void
sgd_train(SgdProblem *p)
{
	int			nthreads = Max(1, Min(p->threads, SGD_MAX_THREADS));
	SgdThread	th[SGD_MAX_THREADS];
	volatile bool stop = false;
	float	   *scratch = palloc(sizeof(float) * 4 * p->dim * nthreads);
	int			averaged_from;
	double	   *sum_user = NULL,
			   *sum_item = NULL,
			   *sum_context = NULL;

	p->user_acc = p->item_acc = p->context_acc = NULL;
	if (p->adagrad)
	{
		/* Adagrad starts its sums of squares at 1, as LightFM */
		Size		nu = (Size) p->n_user_params * p->dim,
					ni = (Size) p->n_item_params * p->dim,
					nc = (Size) p->ncontexts * p->dim;
		float	   *acc = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(nu + ni + nc, 1));

		for (Size k = 0; k < nu + ni + nc; k++)
			acc[k] = 1.0f;
		p->user_acc = acc;
		p->item_acc = acc + nu;
		p->context_acc = nc ? acc + nu + ni : NULL;
	}
	if (p->nsamples == 0 || p->nnegatives < 2)
		p->epochs = 0;
	averaged_from = p->epochs - (int) floor(p->average * p->epochs);
	if (averaged_from < p->epochs)
	{
		Size		nu = (Size) p->n_user_params * p->dim,
					ni = (Size) p->n_item_params * p->dim,
					nc = (Size) p->ncontexts * p->dim;

		sum_user = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * Max(nu, 1));
		sum_item = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(double) * Max(ni, 1));
		sum_context = palloc(sizeof(double) * Max(nc, 1));
		memset(sum_user, 0, sizeof(double) * Max(nu, 1));
		memset(sum_item, 0, sizeof(double) * Max(ni, 1));
		memset(sum_context, 0, sizeof(double) * Max(nc, 1));
	}
	if (p->by_user && p->user_samples == NULL)
		sgd_group_samples_by_user(p);
	p->item_cache = NULL;
	if (p->loss == SGD_WARP && p->items.indptr != NULL && p->epochs > 0)
		p->item_cache = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max((Size) p->nitems * p->dim, 1));

	for (int epoch = 0; epoch < p->epochs; epoch++)
	{
		instr_time	start,
					elapsed;
		double		loss = 0;
		int64		updates = 0,
					skipped = 0;

		INSTR_TIME_SET_CURRENT(start);
		if (p->item_cache)
			sgd_compose_items(p, p->item_cache);
		for (int t = 0; t < nthreads; t++)
		{
			th[t].p = p;
			rng_seed(&th[t].rng, p->seed, ((uint64) epoch << 8) | (uint64) t);
			th[t].quota = p->nsamples / nthreads + (t < p->nsamples % nthreads ? 1 : 0);
			th[t].loss = 0;
			th[t].updates = th[t].skipped = 0;
			th[t].scratch = scratch + (Size) t * 4 * p->dim;
			th[t].stop = &stop;
		}
		for (;;)
		{
			pthread_t	tid[SGD_MAX_THREADS];
			bool		started[SGD_MAX_THREADS] = {false};
			sigset_t	all,
						old;
			bool		done = true;

			stop = false;
			/* workers must never run a PostgreSQL signal handler */
			sigfillset(&all);
			pthread_sigmask(SIG_BLOCK, &all, &old);
			for (int t = 1; t < nthreads; t++)
				if (th[t].quota > 0)
					started[t] = pthread_create(&tid[t], NULL, sgd_worker_main, &th[t]) == 0;
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			/* a worker that could not start leaves its quota to the backend */
			for (int t = 1; t < nthreads; t++)
				if (!started[t] && th[t].quota > 0 && !stop)
					sgd_run(&th[t], true);
			sgd_run(&th[0], true);
			for (int t = 1; t < nthreads; t++)
				if (started[t])
					pthread_join(tid[t], NULL);
			for (int t = 0; t < nthreads; t++)
				if (th[t].quota > 0)
					done = false;
			if (done)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		for (int t = 0; t < nthreads; t++)
		{
			loss += th[t].loss;
			updates += th[t].updates;
			skipped += th[t].skipped;
		}
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		/* BPR: mean -ln σ over the samples drawn; WARP: mean rank weight over them */
		p->last_loss = loss / (double) p->nsamples;
		if (epoch >= averaged_from)
		{
			for (Size k = 0; k < (Size) p->n_user_params * p->dim; k++)
				sum_user[k] += p->user_params[k];
			for (Size k = 0; k < (Size) p->n_item_params * p->dim; k++)
				sum_item[k] += p->item_params[k];
			for (Size k = 0; k < (Size) p->ncontexts * p->dim; k++)
				sum_context[k] += p->context_params[k];
		}
		ereport(DEBUG1,
				(errmsg("%s epoch %d of %d: %.3f s, loss %.6g, %.1f%% of samples updated",
						p->name, epoch + 1, p->epochs, INSTR_TIME_GET_DOUBLE(elapsed), p->last_loss,
						100.0 * updates / (double) p->nsamples)));
	}
	if (sum_user)
	{
		double		n = p->epochs - averaged_from;

		for (Size k = 0; k < (Size) p->n_user_params * p->dim; k++)
			p->user_params[k] = (float) (sum_user[k] / n);
		for (Size k = 0; k < (Size) p->n_item_params * p->dim; k++)
			p->item_params[k] = (float) (sum_item[k] / n);
		for (Size k = 0; k < (Size) p->ncontexts * p->dim; k++)
			p->context_params[k] = (float) (sum_context[k] / n);
		pfree(sum_user);
		pfree(sum_item);
		pfree(sum_context);
	}
	if (p->item_cache)
		pfree(p->item_cache);
	p->item_cache = NULL;
	if (p->user_acc)
		pfree(p->user_acc);
	p->user_acc = p->item_acc = p->context_acc = NULL;
	pfree(scratch);
}

/* The per-user grouping of samples sorted by user, for by_user sampling. */
void
sgd_group_samples_by_user(SgdProblem *p)
{
	int64	   *first = palloc0(sizeof(int64) * ((Size) p->nusers + 1));
	int32	   *users = palloc(sizeof(int32) * Max(p->nusers, 1));
	int32		n = 0;

	for (int64 s = 0; s < p->nsamples; s++)
	{
		Assert(s == 0 || p->sample_user[s] >= p->sample_user[s - 1]);
		first[p->sample_user[s] + 1]++;
	}
	for (int32 u = 0; u < p->nusers; u++)
	{
		if (first[u + 1] > 0)
			users[n++] = u;
		first[u + 1] += first[u];
	}
	p->user_samples = first;
	p->sample_users = users;
	p->nsample_users = n;
}

void
sgd_compose_users(const SgdProblem *p, float *out)
{
	for (int32 u = 0; u < p->nusers; u++)
		compose_user(p, u, -1, out + (Size) u * p->dim);
}

void
sgd_compose_items(const SgdProblem *p, float *out)
{
	for (int32 i = 0; i < p->nitems; i++)
		compose(&p->items, p->item_params, i, p->dim, out + (Size) i * p->dim);
}

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return (x > y) - (x < y);
}

void
sgd_fold_in(const float *item_vectors, int32 nitems, int dim, const int32 *items, int32 nseen,
			float regularization, float learning_rate, int epochs, uint64 seed, float *x)
{
	Rng			rng;
	float	   *g = palloc(sizeof(float) * dim);
	int32	   *sorted = palloc(sizeof(int32) * Max(nseen, 1));

	memcpy(sorted, items, sizeof(int32) * nseen);
	qsort(sorted, nseen, sizeof(int32), cmp_int32);
	rng_seed(&rng, seed, UINT64_C(0xf01d));
	for (int k = 0; k < dim - 1; k++)
		x[k] = (float) (rng_uniform(&rng) - 0.5) / (dim - 1);
	x[dim - 1] = 1.0f;
	if (nseen == 0 || nseen >= nitems)
		return;
	for (int64 s = 0; s < (int64) epochs * nseen; s++)
	{
		int32		i = sorted[rng_below(&rng, (uint32) nseen)];
		int32		j = (int32) rng_below(&rng, (uint32) nitems);
		const float *qi = item_vectors + (Size) i * dim,
				   *qj = item_vectors + (Size) j * dim;
		float		z;

		if (bsearch(&j, sorted, nseen, sizeof(int32), cmp_int32))
			continue;
		z = 1.0f / (1.0f + expf(vec_dot(dim, x, qi) - vec_dot(dim, x, qj)));
		for (int k = 0; k < dim - 1; k++)
			g[k] = qi[k] - qj[k];
		step(x, NULL, g, z, learning_rate, regularization, dim - 1);
	}
	pfree(g);
	pfree(sorted);
}
