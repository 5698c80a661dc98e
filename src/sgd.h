/*
 * sgd.h — stochastic gradient training of factorizations for ranking (BPR,
 * WARP), shared by the bpr and hybrid algorithms.
 *
 * A user's vector is a weighted sum of rows of the user-side parameters (its
 * id row, and rows of its features), plus a context row when the
 * interaction has one; an item's vector likewise over the item side. With
 * only id rows this is plain matrix factorization (BPR). Vectors have
 * factors + 1 components: the item's last one is its bias, the user's last
 * one is 1, so a score is one dot product (as implicit's BPR stores them).
 */
#ifndef PERSONALIZE_SGD_H
#define PERSONALIZE_SGD_H

#include "postgres.h"

typedef enum SgdLoss
{
	SGD_BPR,					/* Rendle et al. 2009: log σ(s_ui - s_uj) */
	SGD_WARP					/* Weston et al. 2011: rank-weighted hinge, as LightFM */
} SgdLoss;

/* Rows of parameters that make up each vector; indptr NULL: row r is parameter row r. */
typedef struct SgdComposition
{
	const int64 *indptr;
	const int32 *indices;
	const float *weights;
} SgdComposition;

typedef struct SgdProblem
{
	int			dim;			/* components per vector: factors + 1 */
	int32		nusers;
	int32		nitems;
	int32		ncontexts;
	SgdComposition users;
	SgdComposition items;
	float	   *user_params;	/* n_user_params x dim (last component unused) */
	int64		n_user_params;
	float	   *item_params;	/* n_item_params x dim (last component: bias) */
	int64		n_item_params;
	float	   *context_params; /* ncontexts x dim (last component 0) */

	/* positive samples; context -1 = none */
	int64		nsamples;
	const int32 *sample_user;
	const int32 *sample_item;
	const int32 *sample_context;	/* NULL: no contexts */
	/*
	 * by_user: draw a user uniformly among those with samples, then one of
	 * theirs (samples grouped by user: user_samples[u]..user_samples[u + 1]),
	 * so every user weighs the same; else draw samples uniformly.
	 */
	bool		by_user;
	const int64 *user_samples;
	int32		nsample_users;
	const int32 *sample_users;	/* the users with samples */

	/* each user's positive items, ascending, to reject negatives that are positives */
	const int64 *pos_indptr;
	const int32 *pos_indices;

	/* negatives are drawn uniformly from these items */
	int32		nnegatives;
	const int32 *negatives;

	SgdLoss		loss;
	float		learning_rate;
	float		user_regularization;
	float		item_regularization;
	float		context_regularization;
	int			epochs;
	int			max_sampled;	/* WARP: negatives tried per positive */
	bool		adagrad;		/* per-parameter rates (Duchi et al. 2011), as LightFM */
	double		average;		/* the result averages the parameters after each of this last fraction of epochs */
	uint64		seed;
	int			threads;
	const char *name;			/* in progress messages */

	/* filled by sgd_train */
	double		last_loss;
	float	   *item_cache;		/* WARP over composed items: their vectors as of the epoch's start */
	float	   *user_acc;		/* Adagrad sums of squares, while training */
	float	   *item_acc;
	float	   *context_acc;
} SgdProblem;

/* Uniform in (-0.5, 0.5) / factors; item biases 0, the unused user component 1, contexts 0. */
extern void sgd_init_params(SgdProblem *p);

/* Samples must be sorted by user. */
extern void sgd_group_samples_by_user(SgdProblem *p);

/* Runs the epochs; worker threads never call a PostgreSQL function. */
extern void sgd_train(SgdProblem *p);

/* out[r] = the composed vector of each user (last component 1) or item. */
extern void sgd_compose_users(const SgdProblem *p, float *out);
extern void sgd_compose_items(const SgdProblem *p, float *out);

/*
 * A user known only by some items: the user vector maximizing the BPR
 * objective against fixed item vectors (dim components, last one the bias),
 * by SGD from a seed. items must be ascending; x gets dim components.
 */
extern void sgd_fold_in(const float *item_vectors, int32 nitems, int dim,
						const int32 *items, int32 nseen, float regularization,
						float learning_rate, int epochs, uint64 seed, float *x);

#endif
