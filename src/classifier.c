/*
 * classifier.c — the logistic classifier payload (build, validate, level
 * lookup), the encoding of feature values into design columns, the storage
 * glue to personalize.model, and scoring: predict, predict_log_odds,
 * predictions and coefficients.
 *
 * Scoring caches the decoded classifier in fn_extra: the active version is
 * looked up on the first call of a query (model_cache_get, one index probe,
 * the value itself read once per backend and version) and copied into the
 * function's memory; later rows of the query only compare the model name.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "classifier.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "model.h"
#include "sqlsource.h"
#include "statistics.h"
#include "utils/array.h"
#include "utils/arrayaccess.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

/* ---------- building ---------- */

static int32
reserve(Size *size, Size bytes)
{
	Size		off = TYPEALIGN(8, *size);

	*size = off + bytes;
	if (*size > MaxAllocSize / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("classifier would take more than %zu bytes", (Size) MaxAllocSize / 2),
				 errhint("Use fewer features or categorical features with fewer levels.")));
	return (int32) off;
}

static uint32
level_hash(int feature, const char *s, int len)
{
	return hash_bytes((const unsigned char *) s, len) ^ ((uint32) feature * 0x9E3779B1u);
}

Classifier *
classifier_build(const ClassifierDraft *d)
{
	Classifier	h;
	Classifier *c;
	Size		size = sizeof(Classifier);
	int			ncolumns,
				ndense,
				nlevels = 0,
				pool = 0,
				column,
				level;
	bool		intercept = (d->flags & CLASSIFIER_INTERCEPT) != 0;
	bool		drop_first = (d->flags & CLASSIFIER_DROP_FIRST) != 0;
	ClassifierFeature *features;
	ClassifierLevel *levels;
	int32	   *hash;
	char	   *p;

	memset(&h, 0, sizeof(h));
	ndense = intercept ? 1 : 0;
	ncolumns = 0;
	pool += strlen(d->label) + 1;
	if (d->weight_column)
		pool += strlen(d->weight_column) + 1;
	for (int f = 0; f < d->nfeatures; f++)
	{
		pool += strlen(d->names[f]) + 1;
		if (d->kinds[f] == FEATURE_CATEGORICAL)
		{
			nlevels += d->nlevels[f];
			ncolumns += Max(d->nlevels[f] - (drop_first ? 1 : 0), 0);
			for (int l = 0; l < d->nlevels[f]; l++)
				pool += strlen(d->levels[f][l]) + 1;
		}
		else
			ndense += d->widths[f];
	}
	ncolumns += ndense;
	if (ncolumns > CLASSIFIER_MAX_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%d design columns are more than the %d a classifier can have", ncolumns,
						CLASSIFIER_MAX_COLUMNS),
				 errhint("Use fewer features or categorical features with fewer levels.")));
	if (ncolumns == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the model has no design columns"),
				 errhint("Give at least one feature, or keep the intercept.")));

	h.magic = CLASSIFIER_MAGIC;
	h.nfeatures = d->nfeatures;
	h.ncolumns = ncolumns;
	h.ndense = ndense;
	h.nlevels = nlevels;
	h.hash_size = 8;
	while (h.hash_size < 2 * nlevels)
		h.hash_size <<= 1;
	h.pool_size = pool;
	h.weight_column = -1;
	h.flags = d->flags;
	h.weight_negative = d->weight_negative;
	h.weight_positive = d->weight_positive;
	h.l2 = d->l2;
	h.log_likelihood = get_float8_nan();
	h.platt_a = h.platt_b = get_float8_nan();
	h.off_features = reserve(&size, sizeof(ClassifierFeature) * d->nfeatures);
	h.off_levels = reserve(&size, sizeof(ClassifierLevel) * nlevels);
	h.off_hash = reserve(&size, sizeof(int32) * h.hash_size);
	h.off_pool = reserve(&size, pool);
	h.off_coef_fit = reserve(&size, sizeof(double) * ncolumns);
	h.off_coef = reserve(&size, sizeof(double) * ncolumns);
	h.off_std_error = reserve(&size, sizeof(double) * ncolumns);
	h.off_center = reserve(&size, sizeof(double) * ndense);
	h.off_scale = reserve(&size, sizeof(double) * ndense);
	h.off_knots = reserve(&size, 0);
	h.size = (int32) size;

	c = palloc0(size);
	memcpy(c, &h, sizeof(h));
	features = CLF_FEATURES(c);
	levels = CLF_LEVELS(c);
	hash = CLF_SECTION(c, c->off_hash, int32);
	memset(hash, 0xff, sizeof(int32) * c->hash_size);
	p = CLF_POOL(c);

#define POOL_ADD(str) (strcpy(p, (str)), p += strlen(str) + 1, (int32) (p - CLF_POOL(c) - strlen(str) - 1))
	c->label = POOL_ADD(d->label);
	if (d->weight_column)
		c->weight_column = POOL_ADD(d->weight_column);

	column = intercept ? 1 : 0;
	for (int j = 0; j < ndense; j++)
	{
		CLF_CENTER(c)[j] = 0.0;
		CLF_SCALE(c)[j] = 1.0;
	}
	for (int f = 0; f < d->nfeatures; f++)
	{
		features[f].kind = d->kinds[f];
		features[f].name = POOL_ADD(d->names[f]);
		if (d->kinds[f] != FEATURE_CATEGORICAL)
		{
			features[f].column = column;
			features[f].width = d->widths[f];
			features[f].first_level = -1;
			for (int e = 0; e < d->widths[f]; e++)
			{
				if (d->center && d->center[f])
					CLF_CENTER(c)[column + e] = d->center[f][e];
				if (d->scale && d->scale[f])
					CLF_SCALE(c)[column + e] = d->scale[f][e];
			}
			column += d->widths[f];
		}
	}
	level = 0;
	for (int f = 0; f < d->nfeatures; f++)
	{
		if (d->kinds[f] != FEATURE_CATEGORICAL)
			continue;
		features[f].column = column;
		features[f].width = Max(d->nlevels[f] - (drop_first ? 1 : 0), 0);
		features[f].first_level = level;
		features[f].nlevels = d->nlevels[f];
		for (int l = 0; l < d->nlevels[f]; l++, level++)
		{
			ClassifierLevel *lv = &levels[level];
			uint32		slot;

			lv->feature = f;
			lv->len = strlen(d->levels[f][l]);
			lv->text = POOL_ADD(d->levels[f][l]);
			lv->column = (drop_first && l == 0) ? -1 : column++;
			lv->rows = d->level_rows ? d->level_rows[f][l] : 0;
			lv->positives = d->level_positives ? d->level_positives[f][l] : 0;
			slot = level_hash(f, d->levels[f][l], lv->len) & (c->hash_size - 1);
			while (hash[slot] >= 0)
				slot = (slot + 1) & (c->hash_size - 1);
			hash[slot] = level;
		}
	}
#undef POOL_ADD
	Assert(column == ncolumns);
	return c;
}

/* A copy with room for nknots isotonic knots (the last section). */
Classifier *
classifier_copy(const Classifier *c, Size nknots, MemoryContext cxt)
{
	Size		size = c->off_knots + sizeof(double) * 2 * nknots;
	Classifier *r = MemoryContextAllocZero(cxt, size);

	memcpy(r, c, Min((Size) c->size, size));
	r->size = (int32) size;
	r->nknots = (int32) nknots;
	return r;
}

/* ---------- validating ---------- */

static void
classifier_corrupt(const char *what)
{
	model_corrupt(psprintf("classifier %s", what));
}

static void
check_clf_section(const Classifier *c, int32 off, Size bytes, const char *what)
{
	if (off < (int32) sizeof(Classifier) || off % 8 != 0 || off > c->size || bytes > (Size) (c->size - off))
		classifier_corrupt(what);
}

static void
check_pool_string(const Classifier *c, int32 off, const char *what)
{
	if (off < 0 || off >= c->pool_size || memchr(CLF_POOL(c) + off, 0, c->pool_size - off) == NULL)
		classifier_corrupt(what);
}

/* Every section inside the payload and every index in range. */
void
classifier_validate(const Classifier *c, Size avail)
{
	const ClassifierFeature *features;
	const ClassifierLevel *levels;
	const int32 *hash;
	int			column;

	if (avail < sizeof(Classifier) || c->magic != CLASSIFIER_MAGIC || c->size < (int32) sizeof(Classifier) ||
		(Size) c->size > avail)
		classifier_corrupt("header");
	if (c->nfeatures < 0 || c->ncolumns < 1 || c->ncolumns > CLASSIFIER_MAX_COLUMNS || c->ndense < 0 ||
		c->ndense > c->ncolumns || c->nlevels < 0 || c->pool_size < 1 || c->nknots < 0 ||
		c->hash_size < 8 || (c->hash_size & (c->hash_size - 1)) != 0 || c->hash_size < 2 * (int64) c->nlevels)
		classifier_corrupt("counts");
	check_clf_section(c, c->off_features, sizeof(ClassifierFeature) * c->nfeatures, "features");
	check_clf_section(c, c->off_levels, sizeof(ClassifierLevel) * c->nlevels, "levels");
	check_clf_section(c, c->off_hash, sizeof(int32) * c->hash_size, "level table");
	check_clf_section(c, c->off_pool, c->pool_size, "strings");
	check_clf_section(c, c->off_coef_fit, sizeof(double) * c->ncolumns, "coefficients");
	check_clf_section(c, c->off_coef, sizeof(double) * c->ncolumns, "coefficients");
	check_clf_section(c, c->off_std_error, sizeof(double) * c->ncolumns, "standard errors");
	check_clf_section(c, c->off_center, sizeof(double) * c->ndense, "centers");
	check_clf_section(c, c->off_scale, sizeof(double) * c->ndense, "scales");
	check_clf_section(c, c->off_knots, sizeof(double) * 2 * c->nknots, "knots");
	check_pool_string(c, c->label, "label");
	if (c->weight_column != -1)
		check_pool_string(c, c->weight_column, "weight column");
	if (c->calibration < CALIBRATION_NONE || c->calibration > CALIBRATION_ISOTONIC ||
		(c->calibration == CALIBRATION_ISOTONIC) != (c->nknots > 0))
		classifier_corrupt("calibration");

	features = CLF_FEATURES(c);
	levels = CLF_LEVELS(c);
	hash = CLF_SECTION(c, c->off_hash, int32);
	column = (c->flags & CLASSIFIER_INTERCEPT) ? 1 : 0;
	for (int f = 0; f < c->nfeatures; f++)
	{
		const ClassifierFeature *ft = &features[f];

		check_pool_string(c, ft->name, "feature name");
		if (ft->kind == FEATURE_CATEGORICAL)
			continue;
		if ((ft->kind != FEATURE_NUMERIC && ft->kind != FEATURE_ARRAY) || ft->column != column ||
			ft->width < 1 || ft->width > c->ndense - column || (ft->kind == FEATURE_NUMERIC && ft->width != 1))
			classifier_corrupt("features");
		column += ft->width;
	}
	if (column != c->ndense)
		classifier_corrupt("features");
	for (int f = 0, level = 0; f < c->nfeatures; f++)
	{
		const ClassifierFeature *ft = &features[f];
		int			kept = 0;

		if (ft->kind != FEATURE_CATEGORICAL)
			continue;
		if (ft->column != column || ft->first_level != level || ft->nlevels < 0 ||
			ft->nlevels > c->nlevels - level)
			classifier_corrupt("features");
		for (int l = 0; l < ft->nlevels; l++, level++)
		{
			const ClassifierLevel *lv = &levels[level];

			check_pool_string(c, lv->text, "level");
			if (lv->feature != f || lv->len < 0 || (Size) lv->len != strlen(CLF_POOL(c) + lv->text) ||
				(lv->column != -1 && lv->column != column + kept))
				classifier_corrupt("levels");
			if (lv->column != -1)
				kept++;
		}
		if (kept != ft->width)
			classifier_corrupt("levels");
		column += kept;
	}
	if (column != c->ncolumns)
		classifier_corrupt("columns");
	for (int s = 0; s < c->hash_size; s++)
		if (hash[s] < -1 || hash[s] >= c->nlevels)
			classifier_corrupt("level table");
	for (int k = 1; k < c->nknots; k++)
		if (!(CLF_KNOTS(c)[k] > CLF_KNOTS(c)[k - 1]))
			classifier_corrupt("knots");
}

/* ---------- lookups ---------- */

/* Design column of a level; -1 for the reference level and unseen levels. */
int32
classifier_level_column(const Classifier *c, int feature, const char *s, int len)
{
	const int32 *hash = CLF_SECTION(c, c->off_hash, int32);
	const ClassifierLevel *levels = CLF_LEVELS(c);
	const char *pool = CLF_POOL(c);
	uint32		slot = level_hash(feature, s, len) & (c->hash_size - 1);

	for (int probes = 0; probes < c->hash_size; probes++)
	{
		int32		l = hash[slot];

		if (l < 0)
			return -1;
		if (levels[l].feature == feature && levels[l].len == len && memcmp(pool + levels[l].text, s, len) == 0)
			return levels[l].column;
		slot = (slot + 1) & (c->hash_size - 1);
	}
	return -1;
}

/* Name of a design column: intercept, feature, feature[i] or feature=level. */
char *
classifier_term(const Classifier *c, int column)
{
	const ClassifierFeature *features = CLF_FEATURES(c);

	if (column == 0 && (c->flags & CLASSIFIER_INTERCEPT))
		return pstrdup("intercept");
	for (int f = 0; f < c->nfeatures; f++)
	{
		const ClassifierFeature *ft = &features[f];

		if (column < ft->column || column >= ft->column + ft->width)
			continue;
		if (ft->kind == FEATURE_NUMERIC)
			return pstrdup(CLF_NAME(c, f));
		if (ft->kind == FEATURE_ARRAY)
			return psprintf("%s[%d]", CLF_NAME(c, f), column - ft->column + 1);
		for (int l = ft->first_level; l < ft->first_level + ft->nlevels; l++)
			if (CLF_LEVELS(c)[l].column == column)
				return psprintf("%s=%s", CLF_NAME(c, f), CLF_POOL(c) + CLF_LEVELS(c)[l].text);
	}
	return psprintf("column %d", column);
}

/* ---------- feature values ---------- */

bool
numeric_input_type(Oid type)
{
	return type == FLOAT8OID || type == FLOAT4OID || type == INT2OID || type == INT4OID ||
		type == INT8OID || type == NUMERICOID || type == BOOLOID;
}

static int
number_kind(Oid type)
{
	switch (type)
	{
		case FLOAT8OID:
			return INPUT_FLOAT8;
		case FLOAT4OID:
			return INPUT_FLOAT4;
		case INT2OID:
			return INPUT_INT2;
		case INT4OID:
			return INPUT_INT4;
		case INT8OID:
			return INPUT_INT8;
		case NUMERICOID:
			return INPUT_NUMERIC;
		case BOOLOID:
			return INPUT_BOOL;
	}
	return -1;
}

void
feature_input_init(FeatureInput *in, Oid type, int feature_kind, const char *feature, MemoryContext cxt)
{
	memset(in, 0, sizeof(*in));
	in->type = type;
	if (feature_kind == FEATURE_NUMERIC)
	{
		in->kind = number_kind(type);
		if (in->kind < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("feature \"%s\" must be a number or a boolean, not %s", feature, format_type_be(type))));
	}
	else if (feature_kind == FEATURE_ARRAY)
	{
		Oid			elem = get_element_type(type);

		in->kind = INPUT_ARRAY;
		in->elem_type = elem;
		in->elem_kind = OidIsValid(elem) ? number_kind(elem) : -1;
		if (in->elem_kind < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("feature \"%s\" must be an array of numbers, not %s", feature, format_type_be(type))));
		get_typlenbyvalalign(elem, &in->elem_len, &in->elem_byval, &in->elem_align);
	}
	else
	{
		Oid			out;
		bool		varlena;

		if (type == TEXTOID || type == VARCHAROID)
			in->kind = INPUT_TEXT;
		else if (type == BPCHAROID)
			in->kind = INPUT_BPCHAR;
		else if (type == UNKNOWNOID || type == CSTRINGOID)
			in->kind = INPUT_CSTRING;
		else
		{
			in->kind = INPUT_OUTPUT;
			getTypeOutputInfo(type, &out, &varlena);
			fmgr_info_cxt(out, &in->output, cxt);
		}
	}
}

static void
not_finite(const char *feature, double v)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("feature \"%s\" must be finite, not \"%s\"", feature, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity")));
}

/* Elements of an array feature into x; false when one is NULL. */
static bool
array_values(const Classifier *c, int f, const FeatureInput *in, Datum d, double *x)
{
	const ClassifierFeature *ft = &CLF_FEATURES(c)[f];
	ArrayType  *a = DatumGetArrayTypeP(d);
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature \"%s\" must be a one-dimensional array", CLF_NAME(c, f))));
	if (n != ft->width)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature \"%s\" must have %d elements, not %d", CLF_NAME(c, f), ft->width, n)));
	if (ARR_HASNULL(a))
	{
		bits8	   *bitmap = ARR_NULLBITMAP(a);

		for (int i = 0; i < n; i++)
			if (!(bitmap[i / 8] & (1 << (i % 8))))
				return false;
	}
	if (in->elem_kind == INPUT_FLOAT8 && !ARR_HASNULL(a))
		memcpy(x, ARR_DATA_PTR(a), sizeof(double) * n);
	else
	{
		array_iter	it;

		array_iter_setup(&it, (AnyArrayType *) a);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;
			Datum		e = array_iter_next(&it, &isnull, i, in->elem_len, in->elem_byval, in->elem_align);

			x[i] = input_kind_number(in->elem_kind, e);
		}
	}
	for (int i = 0; i < n; i++)
		if (!isfinite(x[i]))
			not_finite(CLF_NAME(c, f), x[i]);
	return true;
}

/* The text of a categorical value, as levels are stored: *len bytes, not terminated. */
const char *
feature_level_text(const FeatureInput *in, Datum value, int *len)
{
	const char *s;

	switch (in->kind)
	{
		case INPUT_TEXT:
		case INPUT_BPCHAR:
			{
				text	   *t = (text *) PG_DETOAST_DATUM_PACKED(value);

				s = VARDATA_ANY(t);
				*len = VARSIZE_ANY_EXHDR(t);
				if (in->kind == INPUT_BPCHAR)
					while (*len > 0 && s[*len - 1] == ' ')
						(*len)--;
				return s;
			}
		case INPUT_CSTRING:
			s = DatumGetCString(value);
			break;
		default:
			s = OutputFunctionCall((FmgrInfo *) &in->output, value);
			break;
	}
	*len = strlen(s);
	return s;
}

bool
encode_row(const RowEncoder *e, const Datum *values, const bool *nulls, double *x, int32 *cols)
{
	const Classifier *c = e->c;
	const ClassifierFeature *features = CLF_FEATURES(c);
	int			k = 0;

	if (c->flags & CLASSIFIER_INTERCEPT)
		x[0] = 1.0;
	for (int f = 0; f < c->nfeatures; f++)
	{
		const ClassifierFeature *ft = &features[f];
		const FeatureInput *in = &e->inputs[f];

		if (nulls[f])
			return false;
		if (ft->kind == FEATURE_NUMERIC)
		{
			double		v = input_kind_number(in->kind, values[f]);

			if (!isfinite(v))
				not_finite(CLF_NAME(c, f), v);
			x[ft->column] = v;
		}
		else if (ft->kind == FEATURE_ARRAY)
		{
			if (!array_values(c, f, in, values[f], x + ft->column))
				return false;
		}
		else
		{
			int			len;
			const char *s = feature_level_text(in, values[f], &len);

			cols[k++] = classifier_level_column(c, f, s, len);
		}
	}
	return true;
}

/* ---------- storage glue ---------- */

/*
 * The heads as a personalize.model: one char section per head
 * (SECTION_CLASSIFIER, and SECTION_CLASSIFIER_TREATED for uplift), no users
 * and no items (the item sections every model has are empty).
 */
ModelHeader *
model_from_classifiers(int algorithm, Classifier **heads, int nheads, const char *options)
{
	ModelBuilder b;
	ModelHeader *m;

	model_builder_init(&b, algorithm);
	for (int i = 0; i < nheads; i++)
	{
		b.hdr.rows += heads[i]->rows;
		b.hdr.null_rows += heads[i]->null_rows;
	}
	model_reserve(&b, SECTION_OPTIONS, ELEMENT_CHAR, ROWS_NONE, strlen(options) + 1);
	model_reserve(&b, SECTION_ITEM_IDS, ELEMENT_INT64, ROWS_ITEMS, 0);
	model_reserve(&b, SECTION_ITEM_POPULARITY, ELEMENT_FLOAT4, ROWS_ITEMS, 0);
	model_reserve(&b, SECTION_CLASSIFIER, ELEMENT_CHAR, ROWS_NONE, heads[0]->size);
	if (nheads > 1)
		model_reserve(&b, SECTION_CLASSIFIER_TREATED, ELEMENT_CHAR, ROWS_NONE, heads[1]->size);
	m = model_allocate(&b);
	strcpy(model_section(m, SECTION_OPTIONS), options);
	memcpy(model_section(m, SECTION_CLASSIFIER), heads[0], heads[0]->size);
	if (nheads > 1)
		memcpy(model_section(m, SECTION_CLASSIFIER_TREATED), heads[1], heads[1]->size);
	return m;
}

/* Pointers to the heads inside a validated model (not copied); their count. */
int
model_classifiers(const ModelHeader *m, Classifier **heads, int max_heads)
{
	heads[0] = model_section(m, SECTION_CLASSIFIER);
	if (m->algorithm != MODEL_UPLIFT || max_heads < 2)
		return m->algorithm == MODEL_UPLIFT ? 2 : 1;
	heads[1] = model_section(m, SECTION_CLASSIFIER_TREATED);
	return 2;
}

/* model_algorithms[] check of logistic and uplift models (model.c). */
void
classifier_model_validate(const ModelHeader *m)
{
	const int	kinds[2] = {SECTION_CLASSIFIER, SECTION_CLASSIFIER_TREATED};
	int			nheads = m->algorithm == MODEL_UPLIFT ? 2 : 1;

	if (m->nusers != 0 || m->nitems != 0 || m->nnz != 0)
		classifier_corrupt("with users or items");
	for (int h = 0; h < 2; h++)
	{
		if (h < nheads)
		{
			const Classifier *c = model_require(m, kinds[h], ELEMENT_CHAR, ROWS_NONE, 0);

			classifier_validate(c, model_section_entry(m, kinds[h])->bytes);
		}
		else if (model_section_entry(m, kinds[h]) != NULL)
			classifier_corrupt("head count");
	}
}

void
classifier_info(const ModelHeader *m, StringInfo s)
{
	Classifier *heads[2];
	int			n = model_classifiers(m, heads, 2);
	static const char *const arms[] = {"control", "treated"};

	for (int i = 0; i < n; i++)
	{
		Classifier *c = heads[i];
		static const char *const methods[] = {"none", "platt", "isotonic"};

		if (n > 1)
			appendStringInfo(s, ", \"%s\": {", arms[i]);
		else
			appendStringInfoString(s, ", \"classifier\": {");
		appendStringInfo(s, "\"features\": %d, \"columns\": %d, \"rows\": " INT64_FORMAT ", \"positives\": " INT64_FORMAT
						 ", \"null_rows\": " INT64_FORMAT ", \"iterations\": %d, \"log_likelihood\": %.17g, \"calibration\": \"%s\"}",
						 c->nfeatures, c->ncolumns, c->rows, c->positives, c->null_rows, c->iterations,
						 c->log_likelihood, methods[c->calibration]);
	}
}

/* ---------- scoring ---------- */

typedef struct ScoringCache
{
	MemoryContext cxt;			/* everything below; replaced on reload */
	char	   *name;
	int			name_len;
	int			algorithm;
	int			nheads;
	Classifier *heads[2];
	int			nfeatures;
	/* by name: one composite argument, features matched to its columns */
	bool		by_row;
	Oid			row_type;
	int32		row_typmod;
	TupleDesc	row_desc;
	int		   *row_attnums;	/* per feature, 0-based */
	Datum	   *row_values;
	bool	   *row_nulls;
	FeatureInput *inputs;		/* per feature */
	RowEncoder	enc[2];
	Datum	   *values;
	bool	   *nulls;
	double	   *x;
	int32	   *cols;
} ScoringCache;

static const char *
algorithm_article(int alg)
{
	return (alg == MODEL_ITEMKNN || alg == MODEL_ALS || alg == MODEL_UPLIFT) ? "an" : "a";
}

/* The classifier heads of a model, checked against what the caller serves. */
static void
require_algorithm(const char *name, int algorithm, int wanted)
{
	if (algorithm == wanted)
		return;
	if (wanted == MODEL_LOGISTIC && algorithm == MODEL_UPLIFT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is an uplift model, not a classifier", name),
				 errhint("Score it with personalize.uplift_score() or personalize.uplift_scores().")));
	if (wanted == MODEL_UPLIFT && algorithm == MODEL_LOGISTIC)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is a logistic model, not an uplift model", name),
				 errhint("Score it with personalize.predict() or personalize.predictions().")));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("model \"%s\" is %s %s model, not %s", name, algorithm_article(algorithm),
					model_algorithm_name(algorithm),
					wanted == MODEL_UPLIFT ? "an uplift model" : "a classifier")));
}

static void
scoring_encoders(ScoringCache *sc, const char *what)
{
	int			ncat = 0;

	for (int f = 0; f < sc->nfeatures; f++)
		if (CLF_FEATURES(sc->heads[0])[f].kind == FEATURE_CATEGORICAL)
			ncat++;
	for (int h = 0; h < sc->nheads; h++)
	{
		sc->enc[h].c = sc->heads[h];
		sc->enc[h].inputs = sc->inputs;
		sc->enc[h].ncategorical = ncat;
		sc->enc[h].what = what;
	}
	sc->x = MemoryContextAllocZero(sc->cxt, sizeof(double) * sc->heads[0]->ncolumns);
	sc->cols = MemoryContextAllocZero(sc->cxt, sizeof(int32) * Max(ncat, 1));
}

/* Load the active version of a model into a new cache in cxt. */
static ScoringCache *
scoring_load(text *name, int wanted, MemoryContext parent)
{
	char	   *cname = text_to_cstring(name);
	LoadedModel *lm = model_cache_get(name);
	MemoryContext cxt = AllocSetContextCreate(parent, "personalize scoring", ALLOCSET_SMALL_SIZES);
	ScoringCache *sc = MemoryContextAllocZero(cxt, sizeof(ScoringCache));
	Classifier *heads[2];

	require_algorithm(cname, lm->m->algorithm, wanted);
	sc->cxt = cxt;
	sc->name = MemoryContextStrdup(cxt, cname);
	sc->name_len = strlen(cname);
	sc->algorithm = lm->m->algorithm;
	sc->nheads = model_classifiers(lm->m, heads, 2);
	for (int h = 0; h < sc->nheads; h++)
		sc->heads[h] = classifier_copy(heads[h], heads[h]->nknots, cxt);
	sc->nfeatures = sc->heads[0]->nfeatures;
	return sc;
}

static ScoringCache *
scoring_cache(FunctionCallInfo fcinfo, int wanted)
{
	ScoringCache *sc = (ScoringCache *) fcinfo->flinfo->fn_extra;
	text	   *name;
	int			nargs = PG_NARGS() - 1;
	MemoryContext old;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name must not be NULL")));
	name = PG_GETARG_TEXT_PP(0);
	if (sc && sc->name_len == VARSIZE_ANY_EXHDR(name) && memcmp(sc->name, VARDATA_ANY(name), sc->name_len) == 0)
		return sc;

	if (get_fn_expr_variadic(fcinfo->flinfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("features must be passed as separate arguments, not as a VARIADIC array")));
	if (sc)
		MemoryContextDelete(sc->cxt);
	fcinfo->flinfo->fn_extra = NULL;
	sc = scoring_load(name, wanted, fcinfo->flinfo->fn_mcxt);
	old = MemoryContextSwitchTo(sc->cxt);
	sc->inputs = palloc0(sizeof(FeatureInput) * Max(sc->nfeatures, 1));
	sc->values = palloc0(sizeof(Datum) * Max(sc->nfeatures, 1));
	sc->nulls = palloc0(sizeof(bool) * Max(sc->nfeatures, 1));
	if (nargs == 1 && type_is_rowtype(get_fn_expr_argtype(fcinfo->flinfo, 1)))
		sc->by_row = true;		/* columns are matched when the first row arrives */
	else
	{
		if (nargs != sc->nfeatures)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model \"%s\" has %d features, not %d", sc->name, sc->nfeatures, nargs),
					 errhint("Pass the features in the order of personalize.model_info(), or one whole row.")));
		for (int f = 0; f < sc->nfeatures; f++)
			feature_input_init(&sc->inputs[f], get_fn_expr_argtype(fcinfo->flinfo, f + 1),
							   CLF_FEATURES(sc->heads[0])[f].kind, CLF_NAME(sc->heads[0], f), sc->cxt);
	}
	scoring_encoders(sc, "a row");
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = sc;
	return sc;
}

/* Map the features to the columns of a row type (once per row type). */
static void
scoring_row_type(ScoringCache *sc, Oid type, int32 typmod)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(type, typmod);
	MemoryContext old = MemoryContextSwitchTo(sc->cxt);

	sc->row_type = type;
	sc->row_typmod = typmod;
	sc->row_attnums = palloc(sizeof(int) * Max(sc->nfeatures, 1));
	sc->row_values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	sc->row_nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	for (int f = 0; f < sc->nfeatures; f++)
	{
		const char *feature = CLF_NAME(sc->heads[0], f);
		int			att = -1;

		for (int i = 0; i < desc->natts && att < 0; i++)
			if (!TupleDescAttr(desc, i)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, i)->attname), feature) == 0)
				att = i;
		if (att < 0)
		{
			ReleaseTupleDesc(desc);
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("row has no column \"%s\", a feature of model \"%s\"", feature, sc->name)));
		}
		sc->row_attnums[f] = att;
		feature_input_init(&sc->inputs[f], TupleDescAttr(desc, att)->atttypid,
						   CLF_FEATURES(sc->heads[0])[f].kind, feature, sc->cxt);
	}
	sc->row_desc = CreateTupleDescCopy(desc);
	ReleaseTupleDesc(desc);
	MemoryContextSwitchTo(old);
}

/* Linear predictors of every head for the current call; false if a feature is NULL. */
static bool
scoring_eta(ScoringCache *sc, FunctionCallInfo fcinfo, double *eta)
{
	if (sc->by_row)
	{
		HeapTupleHeader td;
		HeapTupleData tuple;

		if (PG_ARGISNULL(1))
			return false;
		td = PG_GETARG_HEAPTUPLEHEADER(1);
		if (sc->row_attnums == NULL || HeapTupleHeaderGetTypeId(td) != sc->row_type ||
			HeapTupleHeaderGetTypMod(td) != sc->row_typmod)
			scoring_row_type(sc, HeapTupleHeaderGetTypeId(td), HeapTupleHeaderGetTypMod(td));
		tuple.t_len = HeapTupleHeaderGetDatumLength(td);
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = td;
		heap_deform_tuple(&tuple, sc->row_desc, sc->row_values, sc->row_nulls);
		for (int f = 0; f < sc->nfeatures; f++)
		{
			sc->values[f] = sc->row_values[sc->row_attnums[f]];
			sc->nulls[f] = sc->row_nulls[sc->row_attnums[f]];
		}
	}
	else
		for (int f = 0; f < sc->nfeatures; f++)
		{
			sc->nulls[f] = PG_ARGISNULL(f + 1);
			sc->values[f] = sc->nulls[f] ? (Datum) 0 : PG_GETARG_DATUM(f + 1);
		}
	for (int h = 0; h < sc->nheads; h++)
	{
		const Classifier *c = sc->heads[h];

		if (!encode_row(&sc->enc[h], sc->values, sc->nulls, sc->x, sc->cols))
			return false;
		eta[h] = classifier_dot(CLF_COEF(c), c->ndense, sc->x, sc->cols, sc->enc[h].ncategorical);
	}
	return true;
}

/* personalize.predict(model_name text, VARIADIC features "any") */
PG_FUNCTION_INFO_V1(classifier_predict);
Datum
classifier_predict(PG_FUNCTION_ARGS)
{
	ScoringCache *sc = scoring_cache(fcinfo, MODEL_LOGISTIC);
	double		eta;

	if (!scoring_eta(sc, fcinfo, &eta))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(calibrated_probability(sc->heads[0], eta));
}

/* personalize.predict_log_odds(model_name text, VARIADIC features "any"): η, uncalibrated */
PG_FUNCTION_INFO_V1(classifier_predict_log_odds);
Datum
classifier_predict_log_odds(PG_FUNCTION_ARGS)
{
	ScoringCache *sc = scoring_cache(fcinfo, MODEL_LOGISTIC);
	double		eta;

	if (!scoring_eta(sc, fcinfo, &eta))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(eta);
}

/* personalize.uplift_score(model_name text, VARIADIC features "any"): p_treated - p_control */
PG_FUNCTION_INFO_V1(uplift_score);
Datum
uplift_score(PG_FUNCTION_ARGS)
{
	ScoringCache *sc = scoring_cache(fcinfo, MODEL_UPLIFT);
	double		eta[2];

	if (!scoring_eta(sc, fcinfo, eta))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(sigmoid(eta[1]) - sigmoid(eta[0]));
}

/*
 * Scores for every row of a source: predictions() for a classifier (id,
 * probability), uplift_scores() for an uplift model (id, treated and control
 * probabilities, uplift). The source runs as the caller, its rows streamed to
 * a receiver (one execution: parallel query may run it).
 */
typedef struct ScoreReceiver
{
	DestReceiver pub;
	ScoringCache *sc;
	int			wanted;
	const char *id_column;
	ReturnSetInfo *rsinfo;
	MemoryContext rowcxt;
} ScoreReceiver;

static void
score_startup(DestReceiver *self, int operation, TupleDesc desc)
{
	ScoreReceiver *r = (ScoreReceiver *) self;
	ScoringCache *sc = r->sc;
	Oid			idtype = TupleDescAttr(desc, 0)->atttypid;

	if (idtype != INT8OID && idtype != INT4OID && idtype != INT2OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("id column \"%s\" must be an integer, not %s", r->id_column, format_type_be(idtype))));
	for (int f = 0; f < sc->nfeatures; f++)
		feature_input_init(&sc->inputs[f], TupleDescAttr(desc, f + 1)->atttypid,
						   CLF_FEATURES(sc->heads[0])[f].kind, CLF_NAME(sc->heads[0], f), sc->cxt);
}

static bool
score_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ScoreReceiver *r = (ScoreReceiver *) self;
	ScoringCache *sc = r->sc;
	MemoryContext old = MemoryContextSwitchTo(r->rowcxt);
	Datum		out[4];
	bool		outnull[4] = {false, false, false, false};
	double		eta[2];
	bool		ok = true;

	CHECK_FOR_INTERRUPTS();
	slot_getallattrs(slot);
	outnull[0] = slot->tts_isnull[0];
	switch (TupleDescAttr(slot->tts_tupleDescriptor, 0)->atttypid)
	{
		case INT4OID:
			out[0] = Int64GetDatum((int64) DatumGetInt32(slot->tts_values[0]));
			break;
		case INT2OID:
			out[0] = Int64GetDatum((int64) DatumGetInt16(slot->tts_values[0]));
			break;
		default:
			out[0] = slot->tts_values[0];
	}
	for (int f = 0; f < sc->nfeatures; f++)
	{
		sc->values[f] = slot->tts_values[f + 1];
		sc->nulls[f] = slot->tts_isnull[f + 1];
	}
	for (int h = 0; h < sc->nheads && ok; h++)
	{
		ok = encode_row(&sc->enc[h], sc->values, sc->nulls, sc->x, sc->cols);
		if (ok)
			eta[h] = classifier_dot(CLF_COEF(sc->heads[h]), sc->heads[h]->ndense, sc->x, sc->cols, sc->enc[h].ncategorical);
	}
	if (r->wanted == MODEL_LOGISTIC)
	{
		outnull[1] = !ok;
		if (ok)
			out[1] = Float8GetDatum(calibrated_probability(sc->heads[0], eta[0]));
	}
	else
	{
		outnull[1] = outnull[2] = outnull[3] = !ok;
		if (ok)
		{
			double		pt = sigmoid(eta[1]),
						pc = sigmoid(eta[0]);

			out[1] = Float8GetDatum(pt);
			out[2] = Float8GetDatum(pc);
			out[3] = Float8GetDatum(pt - pc);
		}
	}
	tuplestore_putvalues(r->rsinfo->setResult, r->rsinfo->setDesc, out, outnull);
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->rowcxt);
	return true;
}

static void
receiver_noop(DestReceiver *self)
{
}

static Datum
score_source(FunctionCallInfo fcinfo, int wanted)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ScoreReceiver receiver;
	SPIExecuteOptions options;
	ScoringCache *sc;
	StringInfoData sql;
	MemoryContext caller = CurrentMemoryContext;
	const char **columns;
	char	   *from,
			   *id_column;
	int			rc;

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("model_name, source and id_column must not be NULL")));
	id_column = text_to_cstring(PG_GETARG_TEXT_PP(2));
	InitMaterializedSRF(fcinfo, 0);
	sc = scoring_load(PG_GETARG_TEXT_PP(0), wanted, caller);
	sc->inputs = MemoryContextAllocZero(sc->cxt, sizeof(FeatureInput) * Max(sc->nfeatures, 1));
	sc->values = MemoryContextAllocZero(sc->cxt, sizeof(Datum) * Max(sc->nfeatures, 1));
	sc->nulls = MemoryContextAllocZero(sc->cxt, sizeof(bool) * Max(sc->nfeatures, 1));
	scoring_encoders(sc, "a row");

	from = psprintf("%s AS s", SourceAsRelation(text_to_cstring(PG_GETARG_TEXT_PP(1)), "source"));
	columns = palloc(sizeof(char *) * (sc->nfeatures + 1));
	columns[0] = id_column;
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT s.%s", quote_identifier(id_column));
	for (int f = 0; f < sc->nfeatures; f++)
	{
		columns[f + 1] = CLF_NAME(sc->heads[0], f);
		appendStringInfo(&sql, ", s.%s", quote_identifier(columns[f + 1]));
	}
	appendStringInfo(&sql, " FROM %s", from);

	memset(&receiver, 0, sizeof(receiver));
	receiver.pub.receiveSlot = score_receive;
	receiver.pub.rStartup = score_startup;
	receiver.pub.rShutdown = receiver_noop;
	receiver.pub.rDestroy = receiver_noop;
	receiver.pub.mydest = DestNone;
	receiver.sc = sc;
	receiver.wanted = wanted;
	receiver.id_column = id_column;
	receiver.rsinfo = rsinfo;
	receiver.rowcxt = AllocSetContextCreate(caller, "personalize scoring rows", ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CheckSourceColumns(from, "source", columns, sc->nfeatures + 1);
	memset(&options, 0, sizeof(options));
	options.read_only = true;
	options.dest = (DestReceiver *) &receiver;
	rc = SPI_execute_extended(sql.data, &options);
	if (rc != SPI_OK_SELECT && rc != SPI_OK_UTILITY)
		elog(ERROR, "scoring query failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	MemoryContextDelete(receiver.rowcxt);
	MemoryContextDelete(sc->cxt);
	return (Datum) 0;
}

/* personalize.predictions(model_name, source, id_column) */
PG_FUNCTION_INFO_V1(classifier_predictions);
Datum
classifier_predictions(PG_FUNCTION_ARGS)
{
	return score_source(fcinfo, MODEL_LOGISTIC);
}

/* personalize.uplift_scores(model_name, source, id_column) */
PG_FUNCTION_INFO_V1(uplift_scores);
Datum
uplift_scores(PG_FUNCTION_ARGS)
{
	return score_source(fcinfo, MODEL_UPLIFT);
}

/*
 * personalize.coefficients(model_name text | model personalize.model, confidence):
 * per design column, the estimate on the features' own scale, its standard
 * error, z = coefficient / std_error, the two-sided normal p-value and the
 * Wald interval coefficient ± z(1 - α/2) std_error (statsmodels' summary).
 */
PG_FUNCTION_INFO_V1(classifier_coefficients);
Datum
classifier_coefficients(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	double		confidence = PG_GETARG_FLOAT8(1);
	const ModelHeader *m;
	Classifier *heads[2];
	int			nheads;
	double		zcrit;
	static const char *const arms[] = {"control", "treated"};

	if (!(confidence > 0 && confidence < 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("confidence must be between 0 and 1 (exclusive), not %g", confidence)));
	if (get_fn_expr_argtype(fcinfo->flinfo, 0) == TEXTOID)
	{
		text	   *name = PG_GETARG_TEXT_PP(0);
		LoadedModel *lm = model_cache_get(name);

		m = lm->m;
		if (m->algorithm != MODEL_LOGISTIC && m->algorithm != MODEL_UPLIFT)
			require_algorithm(text_to_cstring(name), m->algorithm, MODEL_LOGISTIC);
	}
	else
	{
		m = model_check(PG_GETARG_DATUM(0));
		if (m->algorithm != MODEL_LOGISTIC && m->algorithm != MODEL_UPLIFT)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("%s model has no coefficients", model_algorithm_name(m->algorithm))));
	}
	InitMaterializedSRF(fcinfo, 0);
	nheads = model_classifiers(m, heads, 2);
	zcrit = pz_norm_ppf(1.0 - (1.0 - confidence) / 2.0);
	for (int h = 0; h < nheads; h++)
	{
		Classifier *c = heads[h];
		const ClassifierFeature *features = CLF_FEATURES(c);

		for (int j = 0; j < c->ncolumns; j++)
		{
			Datum		values[10];
			bool		nulls[10] = {0};
			double		b = CLF_COEF(c)[j],
						se = CLF_STD_ERROR(c)[j];
			const char *feature = NULL,
					   *level = NULL;

			for (int f = 0; f < c->nfeatures; f++)
				if (j >= features[f].column && j < features[f].column + features[f].width)
				{
					feature = CLF_NAME(c, f);
					if (features[f].kind == FEATURE_CATEGORICAL)
						for (int l = features[f].first_level; l < features[f].first_level + features[f].nlevels; l++)
							if (CLF_LEVELS(c)[l].column == j)
								level = CLF_POOL(c) + CLF_LEVELS(c)[l].text;
				}
			nulls[0] = nheads == 1;
			if (nheads > 1)
				values[0] = CStringGetTextDatum(arms[h]);
			values[1] = CStringGetTextDatum(classifier_term(c, j));
			nulls[2] = feature == NULL;
			if (feature)
				values[2] = CStringGetTextDatum(feature);
			nulls[3] = level == NULL;
			if (level)
				values[3] = CStringGetTextDatum(level);
			values[4] = Float8GetDatum(b);
			if (isfinite(se) && se > 0)
			{
				double		z = b / se;

				values[5] = Float8GetDatum(se);
				values[6] = Float8GetDatum(z);
				values[7] = Float8GetDatum(2.0 * pz_norm_sf(fabs(z)));
				values[8] = Float8GetDatum(b - zcrit * se);
				values[9] = Float8GetDatum(b + zcrit * se);
			}
			else
				for (int i = 5; i < 10; i++)
					nulls[i] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

/*
 * personalize.logistic_spec(model, arm DEFAULT NULL): a stored classifier as
 * the spec of personalize.logistic_pass, whose pass then sums the gradient
 * and Hessian at the stored estimate (fitted scale). An uplift model's arm
 * is 'control' or 'treated'.
 */
PG_FUNCTION_INFO_V1(logistic_spec);
Datum
logistic_spec(PG_FUNCTION_ARGS)
{
	ModelHeader *m;
	Classifier *heads[2];
	Classifier *c;
	bytea	   *spec;
	char	   *arm = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	m = model_check(PG_GETARG_DATUM(0));
	if (m->algorithm != MODEL_LOGISTIC && m->algorithm != MODEL_UPLIFT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s model has no classifier", model_algorithm_name(m->algorithm))));
	model_classifiers(m, heads, 2);
	if (m->algorithm == MODEL_LOGISTIC && arm != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a logistic model has no arms, not \"%s\"", arm)));
	if (m->algorithm == MODEL_UPLIFT && (arm == NULL || (strcmp(arm, "control") != 0 && strcmp(arm, "treated") != 0)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("arm of an uplift model must be \"control\" or \"treated\"")));
	c = heads[arm != NULL && strcmp(arm, "treated") == 0 ? 1 : 0];
	spec = palloc(VARHDRSZ + c->size);
	SET_VARSIZE(spec, VARHDRSZ + c->size);
	memcpy(VARDATA(spec), c, c->size);
	PG_RETURN_BYTEA_P(spec);
}
