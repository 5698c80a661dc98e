/*
 * itemknn.c — personalize.itemknn_fit: item-item cosine similarity over the
 * user-item matrix, keeping the `neighbors` most similar items of each item.
 *
 *     sim(i, j) = Σ_u w_ui w_uj / (‖w_i‖ ‖w_j‖ + shrinkage)
 *
 * Co-occurrences of item i are accumulated through its users' rows (sparse
 * times sparse), so the cost is Σ_u |items of u|², not items².
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "model.h"
#include "utils/jsonb.h"

const char *const itemknn_options[] = {"neighbors", "shrinkage", NULL};

/*
 * Σ_u w_ui w_uj of item i with every item j its users have (i included), added
 * into acc; seen and touched (items long, seen all false) record which j: their
 * count is returned. t_* is the item-major transpose of d.
 */
int32
itemknn_row(const Interactions *d, const int64 *t_indptr, const int32 *t_users, const float *t_weights,
			int32 i, float *acc, bool *seen, int32 *touched)
{
	int32		ntouched = 0;

	for (int64 a = t_indptr[i]; a < t_indptr[i + 1]; a++)
	{
		int32		u = t_users[a];
		float		wu = t_weights[a];

		for (int64 b = d->indptr[u]; b < d->indptr[u + 1]; b++)
		{
			int32		j = d->indices[b];

			if (!seen[j])
			{
				seen[j] = true;
				touched[ntouched++] = j;
			}
			acc[j] += wu * d->weights[b];
		}
	}
	return ntouched;
}

/*
 * Item i's K best neighbours from its sums (acc over touched) into row i of
 * nbr and sim (-1 and 0 past the last); acc and seen are cleared for reuse.
 */
void
itemknn_select(int32 i, int K, const float *norms, float shrinkage, float *acc, bool *seen,
			   const int32 *touched, int32 ntouched, TopK *top, int32 *nbr, float *sim)
{
	top->n = 0;
	for (int32 t = 0; t < ntouched; t++)
	{
		int32		j = touched[t];
		float		denom = norms[i] * norms[j] + shrinkage;

		if (j != i && denom > 0 && acc[j] > 0)
			topk_push(top, acc[j] / denom, j);
		acc[j] = 0;
		seen[j] = false;
	}
	topk_sort(top);
	for (int a = 0; a < K; a++)
	{
		nbr[(Size) i * K + a] = a < top->n ? top->index[a] : -1;
		sim[(Size) i * K + a] = a < top->n ? top->score[a] : 0;
	}
}

PG_FUNCTION_INFO_V1(itemknn_final);
Datum
itemknn_final(PG_FUNCTION_ARGS)
{
	InteractionState *st;
	Jsonb	   *opts;
	int			K;
	float		shrinkage;
	Interactions *d;
	ModelHeader *m;
	int64	   *t_indptr;
	int32	   *t_indices;
	float	   *t_weights;
	float	   *norms,
			   *acc;
	int32	   *touched,
			   *nbr;
	float	   *sim;
	bool	   *seen;
	TopK		top;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	st = (InteractionState *) PG_GETARG_POINTER(0);
	opts = interactions_options(st);
	options_check_keys(opts, itemknn_options);
	K = (int) options_get_number(opts, "neighbors", KNN_DEFAULT_NEIGHBORS, 1, 10000);
	shrinkage = (float) options_get_number(opts, "shrinkage", 0, 0, 1e9);
	if (st->n == 0)
		PG_RETURN_NULL();
	interactions_check_memory(st, 8.0 * K * st->items.count, "itemknn");
	d = interactions_build(st);	/* consumes the triples (FINALFUNC_MODIFY = READ_WRITE) */

	m = model_from_interactions(MODEL_ITEMKNN, d, opts, 0, K, true);
	interactions_adopt(d, m);
	nbr = model_section(m, SECTION_NEIGHBOR_ITEMS);
	sim = model_section(m, SECTION_NEIGHBOR_SIMILARITY);
	interactions_transpose(d, &t_indptr, &t_indices, &t_weights);

	norms = palloc(sizeof(float) * d->nitems);
	for (int32 i = 0; i < d->nitems; i++)
	{
		double		s = 0;

		for (int64 j = t_indptr[i]; j < t_indptr[i + 1]; j++)
			s += (double) t_weights[j] * t_weights[j];
		norms[i] = (float) sqrt(s);
	}
	acc = palloc0(sizeof(float) * d->nitems);
	seen = palloc0(sizeof(bool) * d->nitems);
	touched = palloc(sizeof(int32) * d->nitems);
	topk_init(&top, K);

	for (int32 i = 0; i < d->nitems; i++)
	{
		CHECK_FOR_INTERRUPTS();
		itemknn_select(i, K, norms, shrinkage, acc, seen, touched,
					   itemknn_row(d, t_indptr, t_indices, t_weights, i, acc, seen, touched), &top, nbr, sim);
	}
	PG_RETURN_DATUM(model_datum(m));
}
