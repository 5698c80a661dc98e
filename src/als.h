/*
 * als.h — implicit ALS (als.c) for the algorithms built on it (als, dp_als) and
 * for training from a Citus table (distributed.c).
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

extern void als_init(void);	/* personalize.training_nice */
extern const char *const als_options[];	/* ALS_OPTION_KEYS and warm_start */

extern void als_read_options(Jsonb *opts, AlsOptions *o);
extern ModelHeader *als_fit_model(Interactions *d, Jsonb *opts, const AlsOptions *o, ModelAlgorithm alg,
								  const AlsNoise *noise, int note_kind, const char *note);

#define ALS_OPTION_KEYS "factors", "regularization", "alpha", "iterations", "cg_steps", "seed", \
	"calculate_loss", "threads"

/* gram = otherᵀ other + reg I (n rows of f floats), full f x f */
extern void als_gram(const float *other, int32 n, int f, float reg, float *gram);

/* cg_steps of conjugate gradient for each of nrows rows of self, from its current value */
extern void als_solve_rows(int f, int cg_steps, float alpha, const float *gram, const float *other, float *self,
						   const int64 *indptr, const int32 *indices, const float *weights, int32 nrows,
						   int nthreads);

/*
 * One side (users or items) of the hybrid's ALS core: a row's vector is its
 * id factor (rows with interactions) plus the weighted sum of its features'
 * factors, given as a composition of parameter rows (id row r is parameter r,
 * feature g is parameter nrows + g).
 */
typedef struct AlsFeatureSide
{
	int32		nrows;
	const bool *has_id;
	const int64 *indptr;
	const int32 *indices;
	const float *weights;
	int32		nfeatures;
	int			dim;			/* components per parameter row: factors + 1 (bias) */
	float	   *params;			/* (nrows + nfeatures) x dim, filled by als_fit_features */
} AlsFeatureSide;

/*
 * Implicit ALS whose row factors have the prior mean F W (their features'
 * factors) instead of 0: each half-iteration solves the rows with λ‖x − F W‖²
 * for λ‖x‖², then W by ridge regression of the rows on their features
 * (penalty feature_regularization ‖W‖²). d is over the sides' rows.
 */
extern void als_fit_features(const Interactions *d, const AlsOptions *o, float feature_regularization,
							 AlsFeatureSide *users, AlsFeatureSide *items);

#endif
