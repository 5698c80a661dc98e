/*
 * bpr.c — personalize.bpr_fit: Bayesian personalized ranking (Rendle et al.
 * 2009) by Hogwild SGD (sgd.c), the purely collaborative baseline of the
 * hybrid model: user and item vectors are id embeddings only.
 *
 * Stored like implicit's BPR: factors + 1 components, the item's last one
 * its bias and the user's last one 1, so serving is the dot product used
 * for ALS. Pairs with weight 0 are kept as seen but are not positives.
 */
#include "postgres.h"

#include "fmgr.h"
#include "model.h"
#include "sgd.h"
#include "utils/jsonb.h"

static const char *const bpr_options[] = {
	"factors", "learning_rate", "regularization", "iterations", "seed", "threads",
	"learning_schedule", "sampling", "average", NULL
};

static const char *const samplings[] = {"interactions", "users", NULL};
static const char *const learning_schedules[] = {"sgd", "adagrad", NULL};

#define BPR_DEFAULT_FACTORS 64

PG_FUNCTION_INFO_V1(bpr_final);
Datum
bpr_final(PG_FUNCTION_ARGS)
{
	InteractionState *st;
	Jsonb	   *opts;
	SgdProblem	p;
	Interactions *d;
	ModelHeader *m;
	int			f;
	int32	   *sample_user,
			   *sample_item,
			   *negatives;
	int64		n = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (InteractionState *) PG_GETARG_POINTER(0);
	opts = interactions_options(st);
	options_check_keys(opts, bpr_options);
	memset(&p, 0, sizeof(p));
	f = (int) options_get_number(opts, "factors", BPR_DEFAULT_FACTORS, 1, 1023);
	p.dim = f + 1;
	p.learning_rate = (float) options_get_number(opts, "learning_rate", 0.01, 1e-9, 10);
	p.user_regularization = p.item_regularization =
		(float) options_get_number(opts, "regularization", 0.01, 0, 100);
	p.epochs = (int) options_get_number(opts, "iterations", 100, 0, 10000);
	p.seed = (uint64) options_get_number(opts, "seed", 42, 0, 9007199254740991.0);
	p.average = options_get_number(opts, "average", 0, 0, 1);
	p.by_user = options_get_choice(opts, "sampling", samplings, 0) == 1;
	p.threads = (int) options_get_number(opts, "threads", 2, 1, 16);
	p.adagrad = options_get_choice(opts, "learning_schedule", learning_schedules, 0) == 1;
	p.loss = SGD_BPR;
	p.name = "bpr";
	if (st->n == 0)
		PG_RETURN_NULL();
	interactions_check_memory(st, 4.0 * p.dim * ((double) st->users.count + st->items.count) + 8.0 * st->n, "bpr");
	d = interactions_build(st);	/* consumes the triples (FINALFUNC_MODIFY = READ_WRITE) */

	m = model_from_interactions(MODEL_BPR, d, opts, p.dim, 0, true);
	interactions_adopt(d, m);
	sample_user = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(d->nnz, 1));
	sample_item = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int32) * Max(d->nnz, 1));
	for (int32 u = 0; u < d->nusers; u++)
		for (int64 j = d->indptr[u]; j < d->indptr[u + 1]; j++)
			if (d->weights[j] > 0)
			{
				sample_user[n] = u;
				sample_item[n++] = d->indices[j];
			}
	negatives = palloc(sizeof(int32) * d->nitems);
	for (int32 i = 0; i < d->nitems; i++)
		negatives[i] = i;

	p.nusers = d->nusers;
	p.nitems = d->nitems;
	p.user_params = model_section(m, SECTION_USER_FACTORS);	/* trained in place */
	p.n_user_params = d->nusers;
	p.item_params = model_section(m, SECTION_ITEM_FACTORS);
	p.n_item_params = d->nitems;
	p.nsamples = n;
	p.sample_user = sample_user;
	p.sample_item = sample_item;
	p.pos_indptr = d->indptr;
	p.pos_indices = d->indices;
	p.nnegatives = d->nitems;
	p.negatives = negatives;
	sgd_init_params(&p);
	sgd_train(&p);
	if (p.epochs > 0)
		m->loss = p.last_loss;
	PG_RETURN_DATUM(model_datum(m));
}
