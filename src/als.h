/*
 * als.h — implicit ALS (als.c) for the algorithms built on it: als and dp_als.
 */
#ifndef PERSONALIZE_ALS_H
#define PERSONALIZE_ALS_H

#include "model.h"

/*
 * Perturbation of the item-side statistics (dp.c). In every iteration, after
 * the user half: before_items(X) in the backend (it may clip the user
 * factors in place), then perturb_gram on XᵀX + λI, then item_noise for each
 * item row — in any thread, so it must be plain C — giving a symmetric f x f
 * matrix E and a vector e; the item's system becomes (A + E) y = b + e.
 * With shared_gram, A is XᵀX + λI for every item (the per-item confidence
 * term Σ (c - 1) x xᵀ is left out) and item_noise gets a NULL matrix.
 */
typedef struct AlsNoise
{
	void		(*before_items) (void *arg, int iteration, float *X, int32 nusers);
	void		(*perturb_gram) (void *arg, int iteration, float *gram);
	void		(*item_noise) (void *arg, int iteration, int32 item, float *matrix, float *vector);
	void	   *arg;
	bool		shared_gram;
} AlsNoise;

typedef struct AlsOptions
{
	int			factors;
	float		regularization;
	float		alpha;
	int			iterations;
	int			cg_steps;
	int			threads;
	uint64		seed;
	bool		calculate_loss;
} AlsOptions;

extern const char *const als_options[];

extern void als_read_options(Jsonb *opts, AlsOptions *o);
extern ModelHeader *als_fit_model(Interactions *d, Jsonb *opts, const AlsOptions *o, ModelAlgorithm alg,
								  const AlsNoise *noise, int note_kind, const char *note);

#endif
