/*
 * classifier.h — a trained logistic classifier as one flat, relocatable
 * payload (a stored model section, and the "spec" that the training passes
 * receive), and the encoding of a row of features into its design columns.
 *
 * Design columns: the intercept (when fitted), then numeric features and the
 * elements of array features (the dense columns), then one column per kept
 * level of each categorical feature (one-hot). A categorical value sets at
 * most one column of its feature: an unseen level and the reference level
 * (dropped with drop_first) set none.
 *
 * An uplift (T-learner) model holds two payloads back to back: the control
 * arm's classifier, then the treated arm's.
 */
#ifndef PERSONALIZE_CLASSIFIER_H
#define PERSONALIZE_CLASSIFIER_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#define CLASSIFIER_MAGIC	0x50434c31	/* "PCL1" */
#define CLASSIFIER_MAX_COLUMNS 4096		/* the Hessian is dense: 128 MB at this size */

typedef enum FeatureKind
{
	FEATURE_NUMERIC = 1,
	FEATURE_ARRAY = 2,
	FEATURE_CATEGORICAL = 3
} FeatureKind;

typedef enum CalibrationMethod
{
	CALIBRATION_NONE = 0,
	CALIBRATION_PLATT = 1,
	CALIBRATION_ISOTONIC = 2
} CalibrationMethod;

#define CLASSIFIER_INTERCEPT	0x01
#define CLASSIFIER_STANDARDIZED 0x02
#define CLASSIFIER_DROP_FIRST	0x04
#define CLASSIFIER_SKIP_NULLS	0x08

typedef struct ClassifierFeature
{
	int32		kind;			/* FeatureKind */
	int32		name;			/* offset of its NUL-terminated name in the pool */
	int32		column;			/* first design column */
	int32		width;			/* design columns: 1, array length, or kept levels */
	int32		first_level;	/* categorical: its first entry in levels[] */
	int32		nlevels;		/* categorical: training levels, the reference included */
} ClassifierFeature;

typedef struct ClassifierLevel
{
	int32		feature;
	int32		text;			/* pool offset (NUL-terminated; len bytes before it) */
	int32		len;
	int32		column;			/* design column; -1 for the dropped reference level */
	double		rows;			/* training rows with this level */
	double		positives;		/* ... and a positive label */
} ClassifierLevel;

typedef struct Classifier
{
	int32		size;			/* bytes, this header included */
	int32		magic;
	int32		nfeatures;
	int32		ncolumns;		/* design columns */
	int32		ndense;			/* columns [0, ndense) are intercept, numeric, array */
	int32		nlevels;
	int32		hash_size;		/* slots of the level table, a power of 2 */
	int32		pool_size;
	int32		label;			/* pool offset of the label column's name */
	int32		weight_column;	/* pool offset of the weight column's name, -1: none */
	int32		flags;			/* CLASSIFIER_* */
	int32		calibration;	/* CalibrationMethod */
	int32		nknots;			/* isotonic: interpolation knots */
	int32		iterations;		/* Newton iterations of the fit */
	int64		rows;			/* training rows used */
	int64		null_rows;		/* training rows skipped for a NULL (skip_nulls) */
	int64		positives;		/* training rows with a positive label */
	double		weight_negative;	/* class weights */
	double		weight_positive;
	double		l2;				/* penalty λ/2 ‖β‖², intercept excluded */
	double		log_likelihood; /* at the estimate, weighted, without the penalty */
	double		platt_a;		/* Platt: p = 1 / (1 + exp(a η + b)) */
	double		platt_b;
	/* sections: offsets from the start of this header, 8-aligned */
	int32		off_features;	/* ClassifierFeature[nfeatures] */
	int32		off_levels;		/* ClassifierLevel[nlevels] */
	int32		off_hash;		/* int32[hash_size]: level index, -1 empty */
	int32		off_pool;		/* char[pool_size] */
	int32		off_coef_fit;	/* double[ncolumns]: estimate on the fitted scale */
	int32		off_coef;		/* double[ncolumns]: on the features' own scale */
	int32		off_std_error;	/* double[ncolumns]: on the features' own scale */
	int32		off_center;		/* double[ndense]: standardization (0 when off) */
	int32		off_scale;		/* double[ndense]: (1 when off) */
	int32		off_knots;		/* isotonic: double[2 * nknots], x then y */
} Classifier;

#define CLF_SECTION(c, off, type)	((type *) ((char *) (c) + (off)))
#define CLF_FEATURES(c)		CLF_SECTION(c, (c)->off_features, ClassifierFeature)
#define CLF_LEVELS(c)		CLF_SECTION(c, (c)->off_levels, ClassifierLevel)
#define CLF_POOL(c)			CLF_SECTION(c, (c)->off_pool, char)
#define CLF_COEF_FIT(c)		CLF_SECTION(c, (c)->off_coef_fit, double)
#define CLF_COEF(c)			CLF_SECTION(c, (c)->off_coef, double)
#define CLF_STD_ERROR(c)	CLF_SECTION(c, (c)->off_std_error, double)
#define CLF_CENTER(c)		CLF_SECTION(c, (c)->off_center, double)
#define CLF_SCALE(c)		CLF_SECTION(c, (c)->off_scale, double)
#define CLF_KNOTS(c)		CLF_SECTION(c, (c)->off_knots, double)
#define CLF_NAME(c, f)		(CLF_POOL(c) + CLF_FEATURES(c)[f].name)

/* A classifier under construction: what the describe pass learned. */
typedef struct ClassifierDraft
{
	int			nfeatures;
	const char **names;
	int		   *kinds;
	int		   *widths;			/* numeric 1, array length; categorical: set by build */
	int		   *nlevels;		/* categorical: levels, sorted bytewise */
	char	 ***levels;
	double	  **level_rows;
	double	  **level_positives;
	double	  **center;			/* per feature, per element (numeric, array) */
	double	  **scale;
	const char *label;
	const char *weight_column;	/* NULL: none */
	int			flags;
	double		weight_negative;
	double		weight_positive;
	double		l2;
} ClassifierDraft;

extern Classifier *classifier_build(const ClassifierDraft *d);
extern void classifier_validate(const Classifier *c, Size avail);
extern Classifier *classifier_copy(const Classifier *c, Size extra_knots, MemoryContext cxt);
extern char *classifier_term(const Classifier *c, int column);
extern int32 classifier_level_column(const Classifier *c, int feature, const char *s, int len);

/* Turning a SQL value of a feature into numbers or a level. */
typedef enum InputKind
{
	INPUT_FLOAT8,
	INPUT_FLOAT4,
	INPUT_INT2,
	INPUT_INT4,
	INPUT_INT8,
	INPUT_NUMERIC,
	INPUT_BOOL,
	INPUT_ARRAY,
	INPUT_TEXT,					/* text, varchar: the bytes */
	INPUT_BPCHAR,				/* trailing blanks dropped, as ::text does */
	INPUT_CSTRING,				/* unknown-type literals */
	INPUT_OUTPUT				/* anything else: its output function */
} InputKind;

typedef struct FeatureInput
{
	Oid			type;
	int			kind;			/* InputKind */
	int			elem_kind;		/* arrays: InputKind of the elements */
	Oid			elem_type;
	int16		elem_len;
	bool		elem_byval;
	char		elem_align;
	FmgrInfo	output;			/* INPUT_OUTPUT */
} FeatureInput;

/* A numeric input's value as a double (inline: it runs per row and feature). */
static inline double
input_kind_number(int kind, Datum d)
{
	switch (kind)
	{
		case INPUT_FLOAT8:
			return DatumGetFloat8(d);
		case INPUT_FLOAT4:
			return DatumGetFloat4(d);
		case INPUT_INT2:
			return DatumGetInt16(d);
		case INPUT_INT4:
			return DatumGetInt32(d);
		case INPUT_INT8:
			return (double) DatumGetInt64(d);
		case INPUT_NUMERIC:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
		case INPUT_BOOL:
			return DatumGetBool(d) ? 1.0 : 0.0;
	}
	return 0.0;
}

extern void feature_input_init(FeatureInput *in, Oid type, int feature_kind, const char *feature,
							   MemoryContext cxt);
extern bool numeric_input_type(Oid type);
extern const char *feature_level_text(const FeatureInput *in, Datum value, int *len);

/*
 * Encoding of one row: x[0, ndense) the dense columns (raw values; x[0] = 1
 * with an intercept), cols[k] the design column set by the k-th categorical
 * feature or -1. Returns false when a value is NULL (or an array holds one).
 * "what" names the row in errors ("a training row", "a row").
 */
typedef struct RowEncoder
{
	const Classifier *c;
	FeatureInput *inputs;		/* per feature */
	int			ncategorical;
	const char *what;
} RowEncoder;

extern bool encode_row(const RowEncoder *e, const Datum *values, const bool *nulls, double *x, int32 *cols);

static inline double
classifier_dot(const double *coef, int ndense, const double *x, const int32 *cols, int ncat)
{
	double		eta = 0.0;

	for (int j = 0; j < ndense; j++)
		eta += coef[j] * x[j];
	for (int k = 0; k < ncat; k++)
		if (cols[k] >= 0)
			eta += coef[cols[k]];
	return eta;
}

/* numerically safe logistic function and log(1 + exp(x)) */
static inline double
sigmoid(double eta)
{
	if (eta >= 0)
		return 1.0 / (1.0 + exp(-eta));
	else
	{
		double		e = exp(eta);

		return e / (1.0 + e);
	}
}

static inline double
softplus(double x)
{
	return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* calibration.c: the calibrated probability for a linear predictor */
extern double calibrated_probability(const Classifier *c, double eta);

/* storage glue (classifier.c): heads in and out of a personalize.model */
struct ModelHeader;
extern struct ModelHeader *model_from_classifiers(int algorithm, Classifier **heads, int nheads,
												  const char *options);
extern int	model_classifiers(const struct ModelHeader *m, Classifier **heads, int max_heads);
extern void classifier_model_validate(const struct ModelHeader *m);
extern void classifier_info(const struct ModelHeader *m, StringInfo s);

#endif
