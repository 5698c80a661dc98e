/*
 * statistics.c — distribution functions, hypothesis tests, multiple-testing
 * corrections, power, and the moment aggregates behind the experiment read-outs.
 *
 * Distribution functions are our own: the regularized incomplete gamma and beta
 * functions by power series and continued fractions (modified Lentz), with the
 * prefactors x^a e^-x / Gamma(a) and x^a y^b / B(a,b) computed through Stirling's
 * series so that they keep full precision for large arguments (no cancellation
 * of big lgamma values). The normal quantile starts from Acklam's rational
 * approximation and is refined with Halley steps; t and chi-square quantiles are
 * found by a bracketed Newton iteration on the log tail probability. Only C99
 * <math.h> (erf, erfc, lgamma, log1p) is used underneath.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"

#include "statistics.h"

#define PZ_EPS		1e-16
#define PZ_FPMIN	1e-300
#define PZ_MAXIT	200000
#define PZ_LN_SQRT_2PI 0.918938533204672741780329736406

/* ---------------------------------------------------------------------------
 * Special functions
 * ------------------------------------------------------------------------- */

/* Stirling's remainder: lgamma(z) - ((z - 1/2) log z - z + log sqrt(2 pi)), z >= 15 */
static double
stirling_delta(double z)
{
	double		r = 1.0 / z,
				r2 = r * r;

	return r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680
				- r2 * (1.0 / 1188 - r2 * (691.0 / 360360 - r2 * (1.0 / 156)))))));
}

/* phi(r) = r - 1 - log r >= 0 for r = 1 + d, accurate when r is near 1 */
static double
phi_ratio(double d, double r)
{
	if (fabs(d) < 0.1)
	{
		double		sum = 0.0,
					term = -d;
		int			k;

		for (k = 2; k < 60; k++)
		{
			double		add;

			term *= -d;
			add = term / k;
			sum += add;
			if (fabs(add) < 1e-17 * fabs(sum))
				break;
		}
		return sum;
	}
	return d - log(r);
}

/* log(x^a e^-x / Gamma(a)) */
static double
log_gamma_front(double a, double x)
{
	if (a < 15.0)
		return a * log(x) - x - lgamma(a);
	return -a * phi_ratio((x - a) / a, x / a) + 0.5 * log(a) - PZ_LN_SQRT_2PI - stirling_delta(a);
}

/* regularized incomplete gamma P(a, x) and Q(a, x) */
static void
gamma_pq(double a, double x, double *P, double *Q)
{
	double		front;

	if (x <= 0.0)
	{
		*P = 0.0;
		*Q = 1.0;
		return;
	}
	if (isinf(x))
	{
		*P = 1.0;
		*Q = 0.0;
		return;
	}
	front = exp(log_gamma_front(a, x));
	if (x < a + 1.0)
	{
		double		term = 1.0 / a,
					sum = term;
		int			n;

		for (n = 1; n < PZ_MAXIT; n++)
		{
			term *= x / (a + n);
			sum += term;
			if (term < sum * PZ_EPS)
				break;
		}
		*P = front * sum;
		*Q = 1.0 - *P;
	}
	else
	{
		double		b = x + 1.0 - a,
					c = 1.0 / PZ_FPMIN,
					d = 1.0 / b,
					h = d;
		int			i;

		for (i = 1; i < PZ_MAXIT; i++)
		{
			double		an = -i * (i - a),
						del;

			b += 2.0;
			d = an * d + b;
			if (fabs(d) < PZ_FPMIN)
				d = PZ_FPMIN;
			c = b + an / c;
			if (fabs(c) < PZ_FPMIN)
				c = PZ_FPMIN;
			d = 1.0 / d;
			del = d * c;
			h *= del;
			if (fabs(del - 1.0) < PZ_EPS)
				break;
		}
		*Q = front * h;
		*P = 1.0 - *Q;
	}
}

/* log of x^a y^b / B(a, b), with y = 1 - x given separately for precision */
static double
log_beta_front(double a, double b, double x, double y)
{
	double		lx = (x <= 0.5) ? log(x) : log1p(-y);
	double		ly = (y <= 0.5) ? log(y) : log1p(-x);
	double		c = a + b;

	if (a < 15.0 && b < 15.0)
		return a * lx + b * ly - (lgamma(a) + lgamma(b) - lgamma(c));
	if (a >= 15.0 && b >= 15.0)
		return -a * phi_ratio((x * c - a) / a, x * c / a) - b * phi_ratio((y * c - b) / b, y * c / b)
			+ c * (x + y - 1.0)
			+ 0.5 * log(a * (b / c)) - PZ_LN_SQRT_2PI
			- stirling_delta(a) - stirling_delta(b) + stirling_delta(c);
	if (a >= 15.0)
		return a * lx + (a - 0.5) * log1p(b / a) - b + b * log(y * c) - lgamma(b)
			- stirling_delta(a) + stirling_delta(c);
	return b * ly + (b - 0.5) * log1p(a / b) - a + a * log(x * c) - lgamma(a)
		- stirling_delta(b) + stirling_delta(c);
}

/* continued fraction for I_x(a, b) (Numerical Recipes' betacf, modified Lentz) */
static double
beta_cf(double a, double b, double x, double y)
{
	double		qab = a + b,
				qap = a + 1.0,
				qam = a - 1.0,
				c = 1.0,
				d,
				h;
	int			m;

	/* 1 - (a+b)x/(a+1), written in y when that avoids cancellation */
	if (b <= 1.0)
		d = ((1.0 - b) + qab * y) / qap;
	else
		d = 1.0 - qab * x / qap;
	if (fabs(d) < PZ_FPMIN)
		d = PZ_FPMIN;
	d = 1.0 / d;
	h = d;
	for (m = 1; m < PZ_MAXIT; m++)
	{
		double		m2 = 2.0 * m,
					aa,
					del;

		aa = m * (b - m) * x / ((qam + m2) * (a + m2));
		d = 1.0 + aa * d;
		if (fabs(d) < PZ_FPMIN)
			d = PZ_FPMIN;
		c = 1.0 + aa / c;
		if (fabs(c) < PZ_FPMIN)
			c = PZ_FPMIN;
		d = 1.0 / d;
		h *= d * c;
		aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
		d = 1.0 + aa * d;
		if (fabs(d) < PZ_FPMIN)
			d = PZ_FPMIN;
		c = 1.0 + aa / c;
		if (fabs(c) < PZ_FPMIN)
			c = PZ_FPMIN;
		d = 1.0 / d;
		del = d * c;
		h *= del;
		if (fabs(del - 1.0) < PZ_EPS)
			break;
	}
	return h;
}

/* regularized incomplete beta I_x(a, b) and its complement */
static void
beta_inc(double a, double b, double x, double y, double *I, double *Ic)
{
	double		v;

	if (x <= 0.0)
	{
		*I = 0.0;
		*Ic = 1.0;
		return;
	}
	if (y <= 0.0)
	{
		*I = 1.0;
		*Ic = 0.0;
		return;
	}
	if (x < (a + 1.0) / (a + b + 2.0))
	{
		v = exp(log_beta_front(a, b, x, y)) * beta_cf(a, b, x, y) / a;
		*I = v;
		*Ic = 1.0 - v;
	}
	else
	{
		v = exp(log_beta_front(b, a, y, x)) * beta_cf(b, a, y, x) / b;
		*Ic = v;
		*I = 1.0 - v;
	}
}

/* ---------------------------------------------------------------------------
 * Distributions
 * ------------------------------------------------------------------------- */

double
pz_norm_cdf(double x)
{
	return 0.5 * erfc(-x * M_SQRT1_2);
}

double
pz_norm_sf(double x)
{
	return 0.5 * erfc(x * M_SQRT1_2);
}

static double
norm_pdf(double x)
{
	return exp(-0.5 * x * x - PZ_LN_SQRT_2PI);
}

/* Acklam's rational approximation (relative error below 1.2e-9), p in (0, 1) */
static double
acklam(double p)
{
	static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
		-2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01,
	2.506628277459239e+00};
	static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
		-1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01};
	static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
		-2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00,
	2.938163982698783e+00};
	static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
	2.445134137142996e+00, 3.754408661907416e+00};
	double		q,
				r;

	if (p < 0.02425)
	{
		q = sqrt(-2.0 * log(p));
		return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
			((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
	}
	if (p > 1.0 - 0.02425)
	{
		q = sqrt(-2.0 * log1p(-p));
		return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
			((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
	}
	q = p - 0.5;
	r = q * q;
	return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
		(((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
}

/* quantile of the standard normal for p <= 0.5, refined by Halley steps */
static double
norm_ppf_lower(double p)
{
	double		x = acklam(p);
	int			i;

	for (i = 0; i < 4; i++)
	{
		double		e,
					pdf = norm_pdf(x),
					u,
					dx;

		if (pdf <= 0.0)
			break;
		if (p > 0.25)
			e = 0.5 * erf(x * M_SQRT1_2) - (p - 0.5);	/* p - 0.5 is exact here */
		else
			e = pz_norm_cdf(x) - p;
		u = e / pdf;
		dx = u / (1.0 + 0.5 * x * u);
		x -= dx;
		if (fabs(dx) <= 1e-17 * fabs(x))
			break;
	}
	return x;
}

double
pz_norm_ppf(double p)
{
	if (isnan(p))
		return p;
	if (p <= 0.0)
		return -get_float8_infinity();
	if (p >= 1.0)
		return get_float8_infinity();
	if (p == 0.5)
		return 0.0;
	if (p < 0.5)
		return norm_ppf_lower(p);
	return -norm_ppf_lower(1.0 - p);	/* 1 - p is exact for p >= 0.5 */
}

/*
 * P(T > t) for t > 0 and large df by exp-sinh quadrature of the density. The
 * continued fraction for I_x(df/2, 1/2) loses about df * 1e-16 relative
 * accuracy when x is near 1, so large df take this path instead.
 */
static double
t_sf_term(double t, double df, double logc, double tau)
{
	double		v = exp(M_PI_2 * sinh(tau)),
				s = t + v;

	return exp(logc - (0.5 * df + 0.5) * log1p(s / df * s)) * v * M_PI_2 * cosh(tau);
}

static double
t_sf_quadrature(double t, double df)
{
	double		a = 0.5 * df,
				logc,
				h = 0.125,
				sum,
				prev = 0.0;
	int			level,
				k;

	/* log of Gamma((df+1)/2) / (Gamma(df/2) sqrt(df pi)), via Stirling for a >= 15 */
	logc = a * log1p(0.5 / a) - 0.5 - PZ_LN_SQRT_2PI + stirling_delta(a + 0.5) - stirling_delta(a);


	sum = t_sf_term(t, df, logc, 0.0);
	for (k = 1; k * h <= 4.5; k++)
		sum += t_sf_term(t, df, logc, k * h) + t_sf_term(t, df, logc, -k * h);
	prev = sum * h;
	for (level = 0; level < 7; level++)
	{
		double		est;

		h *= 0.5;
		for (k = 1; k * h <= 4.5; k += 2)
			sum += t_sf_term(t, df, logc, k * h) + t_sf_term(t, df, logc, -k * h);
		est = sum * h;
		if (fabs(est - prev) <= 1e-16 * est)
			return est;
		prev = est;
	}
	return prev;
}

/* Student t: tail probability P(T > t) */
double
pz_t_sf(double t, double df)
{
	double		x,
				y,
				I,
				Ic;

	if (isnan(t))
		return t;
	if (isinf(df))
		return pz_norm_sf(t);
	if (t == 0.0)
		return 0.5;
	if (isinf(t))
		return t > 0 ? 0.0 : 1.0;
	/* x = df / (df + t^2), y = t^2 / (df + t^2), without overflow */
	if (fabs(t) > 1.0)
	{
		double		q = df / t / t;

		x = q / (1.0 + q);
		y = 1.0 / (1.0 + q);
	}
	else
	{
		x = df / (df + t * t);
		y = t * t / (df + t * t);
	}
	if (df > 200.0 && x < (0.5 * df + 1.0) / (0.5 * df + 2.5))
	{
		double		tail = t_sf_quadrature(fabs(t), df);

		return t > 0 ? tail : 1.0 - tail;
	}
	beta_inc(0.5 * df, 0.5, x, y, &I, &Ic);
	/* P(|T| > |t|) = I_x(df/2, 1/2) */
	if (t > 0)
		return 0.5 * I;
	return 1.0 - 0.5 * I;
}

double
pz_t_cdf(double t, double df)
{
	return pz_t_sf(-t, df);
}

static double
t_log_pdf(double t, double df)
{
	return lgamma(0.5 * (df + 1.0)) - lgamma(0.5 * df) - 0.5 * log(df * M_PI)
		- 0.5 * (df + 1.0) * log1p(t * t / df);
}

double
pz_chi2_sf(double x, double df)
{
	double		P,
				Q;

	if (isnan(x))
		return x;
	gamma_pq(0.5 * df, 0.5 * x, &P, &Q);
	return Q;
}

double
pz_chi2_cdf(double x, double df)
{
	double		P,
				Q;

	if (isnan(x))
		return x;
	gamma_pq(0.5 * df, 0.5 * x, &P, &Q);
	return P;
}

static double
chi2_log_pdf(double x, double df)
{
	double		k = 0.5 * df;

	return (k - 1.0) * log(x) - 0.5 * x - k * M_LN2 - lgamma(k);
}

/*
 * Solve tail(x) = target for x > 0 by Newton steps in (log x, log tail),
 * safeguarded by a bracket: heavy and light tails both become nearly linear
 * there. 'upper' says the tail decreases in x (survival function); otherwise
 * it is the increasing lower tail (cdf).
 */
typedef double (*pz_tail_fn) (double x, double df);
typedef double (*pz_logpdf_fn) (double x, double df);

static double
solve_tail(pz_tail_fn tail, pz_logpdf_fn logpdf, double df, double target,
		   bool upper, double x0)
{
	double		lo = 0.0,
				hi = 0.0,
				x = x0,
				lt = log(target);
	int			i;

	if (!(x > 0.0) || !isfinite(x))
		x = 1.0;
	/* bracket: lo has tail on the near side of target, hi on the far side */
	for (i = 0; i < 4000; i++)
	{
		double		f = log(tail(x, df)) - lt;
		bool		below = upper ? (f > 0) : (f < 0);	/* root lies above x */

		if (f == 0.0)
			return x;
		if (below)
		{
			lo = x;
			if (hi > 0.0)
				break;
			x = x * fmax(2.0, x);
		}
		else
		{
			hi = x;
			if (lo > 0.0)
				break;
			if (x < 1e-300)
				return 0.0;		/* the root underflows double precision */
			x = (x > 1e-150) ? x * fmin(0.5, x) : fmax(x * 1e-10, 1e-301);
		}
	}
	x = (lo > 0.0 && hi > 0.0) ? sqrt(lo) * sqrt(hi) : x;
	if (x0 > lo && x0 < hi)
		x = x0;
	for (i = 0; i < 300; i++)
	{
		double		p = tail(x, df),
					f = log(p / target),
					slope,
					xn;
		bool		below = upper ? (f > 0) : (f < 0);

		if (f == 0.0)
			break;
		if (below)
			lo = x;
		else
			hi = x;
		/* d log tail / d log x = -+ x pdf(x) / tail(x) */
		slope = exp(logpdf(x, df) + log(x) - log(p));
		if (upper)
			slope = -slope;
		xn = (slope != 0.0 && isfinite(slope)) ? x * exp(-f / slope) : 0.0;
		if (!(xn > lo && xn < hi))
			xn = sqrt(lo) * sqrt(hi);
		if (fabs(xn - x) <= 2e-16 * x || hi - lo <= 4e-16 * hi)
		{
			x = xn;
			break;
		}
		x = xn;
	}
	return x;
}

/* positive t with P(T > t) = q, 0 < q < 0.5 */
static double
t_isf_positive(double q, double df)
{
	double		z = -norm_ppf_lower(q),
				x0,
				tailguess;

	x0 = z + (z * z * z + z) / (4.0 * df)
		+ (5.0 * pow(z, 5) + 16.0 * pow(z, 3) + 3.0 * z) / (96.0 * df * df);
	/* heavy tail: P(T > t) ~ K t^-df / df */
	tailguess = exp((lgamma(0.5 * (df + 1.0)) - lgamma(0.5 * df) - 0.5 * log(df * M_PI)
					 + 0.5 * (df + 1.0) * log(df) - log(q * df)) / df);
	if (z > 3.0 && isfinite(tailguess) && tailguess > x0)
		x0 = tailguess;
	return solve_tail(pz_t_sf, t_log_pdf, df, q, true, x0);
}

double
pz_t_isf(double q, double df)
{
	if (isnan(q))
		return q;
	if (isinf(df))
		return -pz_norm_ppf(q);
	if (q <= 0.0)
		return get_float8_infinity();
	if (q >= 1.0)
		return -get_float8_infinity();
	if (q == 0.5)
		return 0.0;
	if (q < 0.5)
		return t_isf_positive(q, df);
	return -t_isf_positive(1.0 - q, df);
}

static double
chi2_guess(double p_lower, double q_upper, double df)
{
	double		z = (q_upper < 0.5) ? -norm_ppf_lower(q_upper) : norm_ppf_lower(p_lower),
				h = 2.0 / (9.0 * df),
				wh = df * pow(1.0 - h + z * sqrt(h), 3);

	if (wh > 0.1 * df || q_upper < 0.5)
		return wh;
	/* lower tail: P(x) ~ (x/2)^(df/2) / Gamma(df/2 + 1) */
	return 2.0 * exp((log(p_lower) + lgamma(0.5 * df + 1.0)) / (0.5 * df));
}

double
pz_chi2_isf(double q, double df)
{
	if (isnan(q))
		return q;
	if (q <= 0.0)
		return get_float8_infinity();
	if (q >= 1.0)
		return 0.0;
	if (q < 0.5)
		return solve_tail(pz_chi2_sf, chi2_log_pdf, df, q, true, chi2_guess(1.0 - q, q, df));
	return solve_tail(pz_chi2_cdf, chi2_log_pdf, df, 1.0 - q, false, chi2_guess(1.0 - q, q, df));
}

double
pz_chi2_ppf(double p, double df)
{
	if (isnan(p))
		return p;
	if (p <= 0.0)
		return 0.0;
	if (p >= 1.0)
		return get_float8_infinity();
	if (p <= 0.5)
		return solve_tail(pz_chi2_cdf, chi2_log_pdf, df, p, false, chi2_guess(p, 1.0 - p, df));
	return solve_tail(pz_chi2_sf, chi2_log_pdf, df, 1.0 - p, true, chi2_guess(p, 1.0 - p, df));
}

/* ---------------------------------------------------------------------------
 * SQL: distribution functions
 * ------------------------------------------------------------------------- */

static void
check_probability(double p)
{
	if (!isnan(p) && (p < 0.0 || p > 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("probability must be between 0 and 1, not %g", p)));
}

static void
check_df(double df, bool allow_infinite)
{
	if (isnan(df) || df <= 0.0 || (!allow_infinite && isinf(df)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("degrees of freedom must be positive%s, not %g",
						allow_infinite ? "" : " and finite", df)));
}

PG_FUNCTION_INFO_V1(pz_norm_cdf_sql);
Datum
pz_norm_cdf_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(pz_norm_cdf(PG_GETARG_FLOAT8(0)));
}

PG_FUNCTION_INFO_V1(pz_norm_sf_sql);
Datum
pz_norm_sf_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(pz_norm_sf(PG_GETARG_FLOAT8(0)));
}

PG_FUNCTION_INFO_V1(pz_norm_ppf_sql);
Datum
pz_norm_ppf_sql(PG_FUNCTION_ARGS)
{
	double		p = PG_GETARG_FLOAT8(0);

	check_probability(p);
	PG_RETURN_FLOAT8(pz_norm_ppf(p));
}

PG_FUNCTION_INFO_V1(pz_norm_isf_sql);
Datum
pz_norm_isf_sql(PG_FUNCTION_ARGS)
{
	double		q = PG_GETARG_FLOAT8(0);

	check_probability(q);
	PG_RETURN_FLOAT8(-pz_norm_ppf(q));
}

PG_FUNCTION_INFO_V1(pz_t_cdf_sql);
Datum
pz_t_cdf_sql(PG_FUNCTION_ARGS)
{
	double		df = PG_GETARG_FLOAT8(1);

	check_df(df, true);
	PG_RETURN_FLOAT8(pz_t_cdf(PG_GETARG_FLOAT8(0), df));
}

PG_FUNCTION_INFO_V1(pz_t_sf_sql);
Datum
pz_t_sf_sql(PG_FUNCTION_ARGS)
{
	double		df = PG_GETARG_FLOAT8(1);

	check_df(df, true);
	PG_RETURN_FLOAT8(pz_t_sf(PG_GETARG_FLOAT8(0), df));
}

PG_FUNCTION_INFO_V1(pz_t_ppf_sql);
Datum
pz_t_ppf_sql(PG_FUNCTION_ARGS)
{
	double		p = PG_GETARG_FLOAT8(0),
				df = PG_GETARG_FLOAT8(1);

	check_probability(p);
	check_df(df, true);
	if (p < 0.5)
		PG_RETURN_FLOAT8(-pz_t_isf(p, df));
	PG_RETURN_FLOAT8(pz_t_isf(1.0 - p, df));	/* exact subtraction */
}

PG_FUNCTION_INFO_V1(pz_t_isf_sql);
Datum
pz_t_isf_sql(PG_FUNCTION_ARGS)
{
	double		q = PG_GETARG_FLOAT8(0),
				df = PG_GETARG_FLOAT8(1);

	check_probability(q);
	check_df(df, true);
	PG_RETURN_FLOAT8(pz_t_isf(q, df));
}

PG_FUNCTION_INFO_V1(pz_chi2_cdf_sql);
Datum
pz_chi2_cdf_sql(PG_FUNCTION_ARGS)
{
	double		df = PG_GETARG_FLOAT8(1);

	check_df(df, false);
	PG_RETURN_FLOAT8(pz_chi2_cdf(PG_GETARG_FLOAT8(0), df));
}

PG_FUNCTION_INFO_V1(pz_chi2_sf_sql);
Datum
pz_chi2_sf_sql(PG_FUNCTION_ARGS)
{
	double		df = PG_GETARG_FLOAT8(1);

	check_df(df, false);
	PG_RETURN_FLOAT8(pz_chi2_sf(PG_GETARG_FLOAT8(0), df));
}

PG_FUNCTION_INFO_V1(pz_chi2_ppf_sql);
Datum
pz_chi2_ppf_sql(PG_FUNCTION_ARGS)
{
	double		p = PG_GETARG_FLOAT8(0),
				df = PG_GETARG_FLOAT8(1);

	check_probability(p);
	check_df(df, false);
	PG_RETURN_FLOAT8(pz_chi2_ppf(p, df));
}

PG_FUNCTION_INFO_V1(pz_chi2_isf_sql);
Datum
pz_chi2_isf_sql(PG_FUNCTION_ARGS)
{
	double		q = PG_GETARG_FLOAT8(0),
				df = PG_GETARG_FLOAT8(1);

	check_probability(q);
	check_df(df, false);
	PG_RETURN_FLOAT8(pz_chi2_isf(q, df));
}

/* ---------------------------------------------------------------------------
 * Hypothesis tests
 * ------------------------------------------------------------------------- */

/*
 * Two-sample comparison of treatment against control from their moments
 * (n, mean, M2 = sum of squared deviations). Proportions: pooled z-test, Wald
 * interval for the difference, log-ratio (delta method) interval for the ratio.
 * Means: Welch t-test, Welch-Satterthwaite df, t interval for the difference,
 * delta-method interval on the log ratio with the same critical value.
 */

void
pz_compare_arms(double n_c, double mean_c, double m2_c,
			 double n_t, double mean_t, double m2_t,
			 bool proportion, double confidence, PzComparison *r)
{
	double		se,
				crit,
				var_c,
				var_t;

	memset(r, 0, sizeof(*r));
	if (n_c < 1 || n_t < 1)
		return;
	r->lift_abs = mean_t - mean_c;
	if (mean_c != 0.0)
	{
		r->valid_rel = true;
		r->lift_rel = mean_t / mean_c - 1.0;
	}
	if (proportion)
	{
		double		pooled = (mean_c * n_c + mean_t * n_t) / (n_c + n_t),
					se0 = sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t));

		var_c = mean_c * (1.0 - mean_c) / n_c;
		var_t = mean_t * (1.0 - mean_t) / n_t;
		r->df = get_float8_infinity();
		if (se0 > 0.0)
		{
			r->valid_test = true;
			r->statistic = r->lift_abs / se0;
			r->p_value = 2.0 * pz_norm_sf(fabs(r->statistic));
		}
		crit = -pz_norm_ppf(0.5 * (1.0 - confidence));
	}
	else
	{
		if (n_c < 2 || n_t < 2)
			return;
		var_c = m2_c / (n_c - 1.0) / n_c;
		var_t = m2_t / (n_t - 1.0) / n_t;
		if (var_c + var_t <= 0.0)
			return;
		r->df = (var_c + var_t) * (var_c + var_t) /
			(var_c * var_c / (n_c - 1.0) + var_t * var_t / (n_t - 1.0));
		r->valid_test = true;
		r->statistic = r->lift_abs / sqrt(var_c + var_t);
		r->p_value = 2.0 * pz_t_sf(fabs(r->statistic), r->df);
		crit = pz_t_isf(0.5 * (1.0 - confidence), r->df);
	}
	se = sqrt(var_c + var_t);
	r->valid_abs = true;
	r->abs_low = r->lift_abs - crit * se;
	r->abs_high = r->lift_abs + crit * se;
	if (mean_c > 0.0 && mean_t > 0.0)
	{
		double		se_log = sqrt(var_t / (mean_t * mean_t) + var_c / (mean_c * mean_c)),
					log_ratio = log(mean_t / mean_c);

		r->valid_rel_ci = true;
		r->rel_low = expm1(log_ratio - crit * se_log);
		r->rel_high = expm1(log_ratio + crit * se_log);
	}
}

static void
check_confidence(double confidence)
{
	if (!(confidence > 0.0 && confidence < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("confidence must be between 0 and 1 (exclusive), not %g", confidence)));
}

/* ---------------------------------------------------------------------------
 * Moment aggregates: float8[] states so that partial aggregation can be pushed
 * down (Citus refuses internal states). Sums of squares are kept centred
 * (Youngs-Cramer, as PostgreSQL's float8_accum), and plain sums are compensated
 * (Neumaier), so that a large mean neither cancels the variance nor blurs a
 * small difference between arms.
 *
 *   moments(v):        {N, Sv, Svv, count of values other than 0 and 1}
 *   comoments(y, x):   {N, Sy, Sx, Syy, Sxx, Sxy, count of y other than 0 and 1}
 * The transition states carry the compensation terms after these elements
 * (5 and 9 elements); the final functions fold them in.
 * ------------------------------------------------------------------------- */

#define PZ_MOMENTS_LEN 4
#define PZ_COMOMENTS_LEN 7
#define PZ_MOMENTS_STATE 5
#define PZ_COMOMENTS_STATE 9

static double *
state_values(ArrayType *a, int expected, const char *what)
{
	if (ARR_NDIM(a) != 1 || ARR_DIMS(a)[0] != expected || ARR_HASNULL(a) ||
		ARR_ELEMTYPE(a) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s state must be a double precision array of %d elements without NULLs",
						what, expected)));
	return (double *) ARR_DATA_PTR(a);
}

static ArrayType *
state_array(const double *values, int n)
{
	Datum		d[PZ_COMOMENTS_STATE];
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Float8GetDatumFast(values[i]);
	return construct_array(d, n, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

static void
check_finite_value(double v)
{
	if (!isfinite(v))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("value must be finite, not \"%g\"", v)));
}

/* state to modify: in place when called as an aggregate transition, else a copy */
static ArrayType *
state_for_update(FunctionCallInfo fcinfo, int argno)
{
	if (AggCheckCallContext(fcinfo, NULL))
		return PG_GETARG_ARRAYTYPE_P(argno);
	return PG_GETARG_ARRAYTYPE_P_COPY(argno);
}

/* Neumaier's compensated addition: *sum + *comp carries the exact running total closely */
static inline void
compensated_add(double *sum, double *comp, double v)
{
	double		t = *sum + v;

	if (fabs(*sum) >= fabs(v))
		*comp += (*sum - t) + v;
	else
		*comp += (v - t) + *sum;
	*sum = t;
}

PG_FUNCTION_INFO_V1(pz_moments_accum);
Datum
pz_moments_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *a = state_for_update(fcinfo, 0);
	double	   *s = state_values(a, PZ_MOMENTS_STATE, "moments");
	double		v = PG_GETARG_FLOAT8(1),
				n = s[0] + 1.0;

	check_finite_value(v);
	compensated_add(&s[1], &s[4], v);
	if (s[0] > 0.0)
	{
		double		tmp = v * n - (s[1] + s[4]);

		s[2] += tmp * tmp / (s[0] * n);
	}
	else
		s[2] = 0.0;
	s[0] = n;
	if (v != 0.0 && v != 1.0)
		s[3] += 1.0;
	PG_RETURN_ARRAYTYPE_P(a);
}

/* merge s2 into s1; 'compensated': both carry compensation terms (transition states) */
static void
moments_merge(double *s1, const double *s2, bool compensated)
{
	double		n = s1[0] + s2[0],
				sum1 = s1[1] + (compensated ? s1[4] : 0.0),
				sum2 = s2[1] + (compensated ? s2[4] : 0.0),
				tmp;

	if (s2[0] == 0.0)
		return;
	if (s1[0] == 0.0)
	{
		memcpy(s1, s2, sizeof(double) * (compensated ? PZ_MOMENTS_STATE : PZ_MOMENTS_LEN));
		return;
	}
	tmp = sum1 / s1[0] - sum2 / s2[0];
	s1[2] += s2[2] + s1[0] * s2[0] * tmp * tmp / n;
	s1[0] = n;
	if (compensated)
	{
		compensated_add(&s1[1], &s1[4], s2[1]);
		s1[4] += s2[4];
	}
	else
		s1[1] += s2[1];
	s1[3] += s2[3];
}

PG_FUNCTION_INFO_V1(pz_moments_combine);
Datum
pz_moments_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *a = state_for_update(fcinfo, 0);
	double	   *s1 = state_values(a, PZ_MOMENTS_STATE, "moments");
	double	   *s2 = state_values(PG_GETARG_ARRAYTYPE_P(1), PZ_MOMENTS_STATE, "moments");

	moments_merge(s1, s2, true);
	PG_RETURN_ARRAYTYPE_P(a);
}

PG_FUNCTION_INFO_V1(pz_moments_final);
Datum
pz_moments_final(PG_FUNCTION_ARGS)
{
	double	   *s = state_values(PG_GETARG_ARRAYTYPE_P(0), PZ_MOMENTS_STATE, "moments");
	double		out[PZ_MOMENTS_LEN] = {s[0], s[1] + s[4], s[2], s[3]};

	PG_RETURN_ARRAYTYPE_P(state_array(out, PZ_MOMENTS_LEN));
}

PG_FUNCTION_INFO_V1(pz_comoments_accum);
Datum
pz_comoments_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *a = state_for_update(fcinfo, 0);
	double	   *s = state_values(a, PZ_COMOMENTS_STATE, "comoments");
	double		y = PG_GETARG_FLOAT8(1),
				x = PG_GETARG_FLOAT8(2),
				n = s[0] + 1.0;

	check_finite_value(y);
	check_finite_value(x);
	compensated_add(&s[1], &s[7], y);
	compensated_add(&s[2], &s[8], x);
	if (s[0] > 0.0)
	{
		double		ty = y * n - (s[1] + s[7]),
					tx = x * n - (s[2] + s[8]),
					scale = 1.0 / (s[0] * n);

		s[3] += ty * ty * scale;
		s[4] += tx * tx * scale;
		s[5] += tx * ty * scale;
	}
	else
		s[3] = s[4] = s[5] = 0.0;
	s[0] = n;
	if (y != 0.0 && y != 1.0)
		s[6] += 1.0;
	PG_RETURN_ARRAYTYPE_P(a);
}

static void
comoments_merge(double *s1, const double *s2, bool compensated)
{
	double		n = s1[0] + s2[0];

	if (s2[0] == 0.0)
		return;
	if (s1[0] == 0.0)
	{
		memcpy(s1, s2, sizeof(double) * (compensated ? PZ_COMOMENTS_STATE : PZ_COMOMENTS_LEN));
		return;
	}
	{
		double		y1 = s1[1] + (compensated ? s1[7] : 0.0),
					x1 = s1[2] + (compensated ? s1[8] : 0.0),
					y2 = s2[1] + (compensated ? s2[7] : 0.0),
					x2 = s2[2] + (compensated ? s2[8] : 0.0),
					dy = y1 / s1[0] - y2 / s2[0],
					dx = x1 / s1[0] - x2 / s2[0],
					w = s1[0] * s2[0] / n;

		s1[3] += s2[3] + w * dy * dy;
		s1[4] += s2[4] + w * dx * dx;
		s1[5] += s2[5] + w * dx * dy;
	}
	s1[0] = n;
	if (compensated)
	{
		compensated_add(&s1[1], &s1[7], s2[1]);
		compensated_add(&s1[2], &s1[8], s2[2]);
		s1[7] += s2[7];
		s1[8] += s2[8];
	}
	else
	{
		s1[1] += s2[1];
		s1[2] += s2[2];
	}
	s1[6] += s2[6];
}

PG_FUNCTION_INFO_V1(pz_comoments_combine);
Datum
pz_comoments_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *a = state_for_update(fcinfo, 0);
	double	   *s1 = state_values(a, PZ_COMOMENTS_STATE, "comoments");
	double	   *s2 = state_values(PG_GETARG_ARRAYTYPE_P(1), PZ_COMOMENTS_STATE, "comoments");

	comoments_merge(s1, s2, true);
	PG_RETURN_ARRAYTYPE_P(a);
}

PG_FUNCTION_INFO_V1(pz_comoments_final);
Datum
pz_comoments_final(PG_FUNCTION_ARGS)
{
	double	   *s = state_values(PG_GETARG_ARRAYTYPE_P(0), PZ_COMOMENTS_STATE, "comoments");
	double		out[PZ_COMOMENTS_LEN] = {s[0], s[1] + s[7], s[2] + s[8], s[3], s[4], s[5], s[6]};

	PG_RETURN_ARRAYTYPE_P(state_array(out, PZ_COMOMENTS_LEN));
}

/*
 * moments_pad(state, n): the state of the same values plus zeros up to n
 * observations (intention to treat: an assigned unit without outcome rows has
 * value 0). Works on moments and comoments states; NULL is the empty state.
 */
PG_FUNCTION_INFO_V1(pz_moments_pad);
Datum
pz_moments_pad(PG_FUNCTION_ARGS)
{
	double		n,
				s[PZ_COMOMENTS_LEN] = {0},
				zeros[PZ_COMOMENTS_LEN] = {0};
	int			len = PZ_MOMENTS_LEN;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	n = PG_GETARG_FLOAT8(1);
	if (!PG_ARGISNULL(0))
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);

		len = (ARR_NDIM(a) == 1 && ARR_DIMS(a)[0] == PZ_COMOMENTS_LEN) ? PZ_COMOMENTS_LEN : PZ_MOMENTS_LEN;
		memcpy(s, state_values(a, len, "moments"), sizeof(double) * len);
	}
	if (isnan(n) || n < s[0] || n != floor(n) || isinf(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot pad %g observations to %g", s[0], n)));
	zeros[0] = n - s[0];
	if (len == PZ_MOMENTS_LEN)
		moments_merge(s, zeros, false);
	else
		comoments_merge(s, zeros, false);
	PG_RETURN_ARRAYTYPE_P(state_array(s, len));
}

/*
 * ab_test(control moments, treatment moments, proportion, confidence)
 *   -> (lift_abs, lift_abs_low, lift_abs_high, lift_rel, lift_rel_low,
 *       lift_rel_high, statistic, df, p_value)
 */
PG_FUNCTION_INFO_V1(pz_ab_test);
Datum
pz_ab_test(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[9];
	bool		nulls[9];
	double	   *c,
			   *t,
				confidence;
	bool		proportion;
	PzComparison r;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	c = state_values(PG_GETARG_ARRAYTYPE_P(0), PZ_MOMENTS_LEN, "moments");
	t = state_values(PG_GETARG_ARRAYTYPE_P(1), PZ_MOMENTS_LEN, "moments");
	proportion = PG_GETARG_BOOL(2);
	confidence = PG_ARGISNULL(3) ? 0.95 : PG_GETARG_FLOAT8(3);
	check_confidence(confidence);
	if (proportion && (c[3] > 0 || t[3] > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a proportion test needs values 0 and 1 only")));
	pz_compare_arms(c[0], c[0] > 0 ? c[1] / c[0] : 0, c[2],
				 t[0], t[0] > 0 ? t[1] / t[0] : 0, t[2],
				 proportion, confidence, &r);
	for (i = 0; i < 9; i++)
		nulls[i] = false;
	values[0] = Float8GetDatum(r.lift_abs);
	values[1] = Float8GetDatum(r.abs_low);
	values[2] = Float8GetDatum(r.abs_high);
	nulls[0] = !(c[0] >= 1 && t[0] >= 1);
	nulls[1] = nulls[2] = !r.valid_abs;
	values[3] = Float8GetDatum(r.lift_rel);
	nulls[3] = !r.valid_rel;
	values[4] = Float8GetDatum(r.rel_low);
	values[5] = Float8GetDatum(r.rel_high);
	nulls[4] = nulls[5] = !r.valid_rel_ci;
	values[6] = Float8GetDatum(r.statistic);
	values[7] = Float8GetDatum(r.df);
	values[8] = Float8GetDatum(r.p_value);
	nulls[6] = nulls[8] = !r.valid_test;
	nulls[7] = !r.valid_test && !r.valid_abs;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

static void
check_count(double v, const char *what)
{
	if (isnan(v) || isinf(v) || v < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite non-negative number, not %g", what, v)));
}

static Datum
test_result(FunctionCallInfo fcinfo, int nvalues, const double *v, const bool *isnull)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4];
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	for (i = 0; i < nvalues; i++)
	{
		values[i] = Float8GetDatum(v[i]);
		nulls[i] = isnull[i];
	}
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/* proportions_ztest(count1, nobs1, count2, nobs2) -> (statistic, p_value) */
PG_FUNCTION_INFO_V1(pz_proportions_ztest);
Datum
pz_proportions_ztest(PG_FUNCTION_ARGS)
{
	double		x1 = PG_GETARG_FLOAT8(0),
				n1 = PG_GETARG_FLOAT8(1),
				x2 = PG_GETARG_FLOAT8(2),
				n2 = PG_GETARG_FLOAT8(3),
				out[2] = {0, 0},
				pooled,
				se;
	bool		isnull[2] = {true, true};

	check_count(x1, "count1");
	check_count(n1, "nobs1");
	check_count(x2, "count2");
	check_count(n2, "nobs2");
	if (x1 > n1 || x2 > n2 || n1 == 0 || n2 == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("counts must be between 0 and their positive number of observations")));
	pooled = (x1 + x2) / (n1 + n2);
	se = sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2));
	if (se > 0)
	{
		out[0] = (x1 / n1 - x2 / n2) / se;
		out[1] = 2.0 * pz_norm_sf(fabs(out[0]));
		isnull[0] = isnull[1] = false;
	}
	PG_RETURN_DATUM(test_result(fcinfo, 2, out, isnull));
}

/* welch_ttest(mean1, stddev1, n1, mean2, stddev2, n2) -> (statistic, df, p_value) */
PG_FUNCTION_INFO_V1(pz_welch_ttest);
Datum
pz_welch_ttest(PG_FUNCTION_ARGS)
{
	double		m1 = PG_GETARG_FLOAT8(0),
				s1 = PG_GETARG_FLOAT8(1),
				n1 = PG_GETARG_FLOAT8(2),
				m2 = PG_GETARG_FLOAT8(3),
				s2 = PG_GETARG_FLOAT8(4),
				n2 = PG_GETARG_FLOAT8(5),
				out[3] = {0, 0, 0},
				v1,
				v2;
	bool		isnull[3] = {true, true, true};

	check_count(s1, "stddev1");
	check_count(s2, "stddev2");
	if (!isfinite(m1) || !isfinite(m2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("means must be finite")));
	if (isnan(n1) || isnan(n2) || n1 < 2 || n2 < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("each sample needs at least 2 observations")));
	v1 = s1 * s1 / n1;
	v2 = s2 * s2 / n2;
	if (v1 + v2 > 0)
	{
		out[0] = (m1 - m2) / sqrt(v1 + v2);
		out[1] = (v1 + v2) * (v1 + v2) / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1));
		out[2] = 2.0 * pz_t_sf(fabs(out[0]), out[1]);
		isnull[0] = isnull[1] = isnull[2] = false;
	}
	PG_RETURN_DATUM(test_result(fcinfo, 3, out, isnull));
}

static double *
float8_array_values(ArrayType *a, int *n, const char *what, bool allow_nulls, bool **nullsp)
{
	Datum	   *elems;
	bool	   *nulls;
	double	   *v;
	int			i;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(a, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, n);
	v = palloc(sizeof(double) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i] && !allow_nulls)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULLs", what)));
		v[i] = nulls[i] ? 0.0 : DatumGetFloat8(elems[i]);
	}
	if (nullsp)
		*nullsp = nulls;
	return v;
}

/* chisq_gof(observed, expected) -> (statistic, df, p_value); expected is rescaled to the observed total */
PG_FUNCTION_INFO_V1(pz_chisq_gof);
Datum
pz_chisq_gof(PG_FUNCTION_ARGS)
{
	int			n,
				ne,
				i;
	double	   *obs = float8_array_values(PG_GETARG_ARRAYTYPE_P(0), &n, "observed", false, NULL);
	double	   *exp_ = NULL,
				total = 0,
				etotal = 0,
				stat = 0,
				out[3];
	bool		isnull[3] = {false, false, false};

	if (!PG_ARGISNULL(1))
	{
		exp_ = float8_array_values(PG_GETARG_ARRAYTYPE_P(1), &ne, "expected", false, NULL);
		if (ne != n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("observed and expected have different lengths %d and %d", n, ne)));
	}
	if (n < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a goodness-of-fit test needs at least 2 categories")));
	for (i = 0; i < n; i++)
	{
		check_count(obs[i], "observed count");
		total += obs[i];
		if (exp_)
		{
			if (!(exp_[i] > 0) || isinf(exp_[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("expected values must be positive and finite")));
			etotal += exp_[i];
		}
	}
	for (i = 0; i < n; i++)
	{
		double		e = exp_ ? total * (exp_[i] / etotal) : total / n,
					d = obs[i] - e;

		if (e > 0)
			stat += d * d / e;
	}
	out[0] = stat;
	out[1] = n - 1;
	out[2] = pz_chi2_sf(stat, n - 1);
	if (total == 0)
		isnull[0] = isnull[2] = true;
	PG_RETURN_DATUM(test_result(fcinfo, 3, out, isnull));
}

/* ---------------------------------------------------------------------------
 * Multiple testing
 * ------------------------------------------------------------------------- */

typedef struct PzRank
{
	double		p;
	int			index;
} PzRank;

static int
rank_cmp(const void *a, const void *b)
{
	const PzRank *x = a,
			   *y = b;

	if (x->p < y->p)
		return -1;
	if (x->p > y->p)
		return 1;
	return x->index - y->index;
}

PG_FUNCTION_INFO_V1(pz_p_adjust);
Datum
pz_p_adjust(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(0);
	char	   *method = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bool	   *nulls;
	int			n,
				m = 0,
				i,
				kind;
	double	   *p = float8_array_values(a, &n, "p-values", true, &nulls);
	double	   *adj = palloc(sizeof(double) * Max(n, 1));
	PzRank	   *r = palloc(sizeof(PzRank) * Max(n, 1));
	Datum	   *out = palloc(sizeof(Datum) * Max(n, 1));
	int			dims[1],
				lbs[1] = {1};

	if (pg_strcasecmp(method, "bonferroni") == 0)
		kind = 0;
	else if (pg_strcasecmp(method, "holm") == 0)
		kind = 1;
	else if (pg_strcasecmp(method, "bh") == 0 || pg_strcasecmp(method, "fdr_bh") == 0)
		kind = 2;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown p-value adjustment method \"%s\"", method),
				 errhint("Use 'bonferroni', 'holm' or 'bh'.")));
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		if (isnan(p[i]) || p[i] < 0.0 || p[i] > 1.0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("p-value must be between 0 and 1, not %g", p[i])));
		r[m].p = p[i];
		r[m].index = i;
		m++;
	}
	qsort(r, m, sizeof(PzRank), rank_cmp);
	if (kind == 0)
		for (i = 0; i < m; i++)
			adj[r[i].index] = Min(1.0, r[i].p * m);
	else if (kind == 1)
	{
		double		run = 0.0;

		for (i = 0; i < m; i++)
		{
			run = Max(run, Min(1.0, r[i].p * (m - i)));
			adj[r[i].index] = run;
		}
	}
	else
	{
		double		run = 1.0;

		for (i = m - 1; i >= 0; i--)
		{
			run = Min(run, r[i].p * m / (i + 1));
			adj[r[i].index] = run;
		}
	}
	for (i = 0; i < n; i++)
		out[i] = nulls[i] ? (Datum) 0 : Float8GetDatum(adj[i]);
	dims[0] = n;
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(FLOAT8OID));
	PG_RETURN_ARRAYTYPE_P(construct_md_array(out, nulls, 1, dims, lbs, FLOAT8OID,
											 sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* ---------------------------------------------------------------------------
 * Power and sample size for two proportions (Cohen's h, normal approximation,
 * two-sided, equal arms) — statsmodels' NormalIndPower with
 * proportion_effectsize.
 * ------------------------------------------------------------------------- */

static double
effect_size_h(double baseline, double relative_mde)
{
	double		p1;

	if (!(baseline > 0.0 && baseline < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("baseline_rate must be between 0 and 1 (exclusive), not %g", baseline)));
	p1 = baseline * (1.0 + relative_mde);
	if (isnan(relative_mde) || relative_mde == 0.0 || !(p1 > 0.0 && p1 <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relative_mde must be non-zero and keep the treated rate in (0, 1], not %g",
						relative_mde)));
	return fabs(2.0 * asin(sqrt(p1)) - 2.0 * asin(sqrt(baseline)));
}

static void
check_alpha(double alpha)
{
	if (!(alpha > 0.0 && alpha < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("alpha must be between 0 and 1 (exclusive), not %g", alpha)));
}

static double
two_sided_power(double h, double n_per_arm, double crit)
{
	double		shift = h * sqrt(0.5 * n_per_arm);

	return pz_norm_sf(crit - shift) + pz_norm_cdf(-crit - shift);
}

PG_FUNCTION_INFO_V1(pz_power);
Datum
pz_power(PG_FUNCTION_ARGS)
{
	double		h = effect_size_h(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1)),
				n = PG_GETARG_FLOAT8(2),
				alpha = PG_GETARG_FLOAT8(3);

	check_alpha(alpha);
	if (!(n > 0) || isinf(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n_per_arm must be positive and finite, not %g", n)));
	PG_RETURN_FLOAT8(two_sided_power(h, n, -pz_norm_ppf(0.5 * alpha)));
}

PG_FUNCTION_INFO_V1(pz_sample_size);
Datum
pz_sample_size(PG_FUNCTION_ARGS)
{
	double		h = effect_size_h(PG_GETARG_FLOAT8(0), PG_GETARG_FLOAT8(1)),
				alpha = PG_GETARG_FLOAT8(2),
				target = PG_GETARG_FLOAT8(3),
				crit,
				n;
	int			i;

	check_alpha(alpha);
	if (!(target > alpha && target < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("power must be between alpha and 1 (exclusive), not %g", target)));
	crit = -pz_norm_ppf(0.5 * alpha);
	n = 2.0 * pow((crit - pz_norm_ppf(1.0 - target)) / h, 2);
	/* Newton on the exact two-tailed power (the far tail adds a little) */
	for (i = 0; i < 100; i++)
	{
		double		s = sqrt(0.5 * n),
					f = two_sided_power(h, n, crit) - target,
					dfdn = (norm_pdf(crit - h * s) - norm_pdf(crit + h * s)) * h / (4.0 * s),
					step = f / dfdn;

		n -= step;
		if (fabs(step) <= 1e-12 * n)
			break;
	}
	if (n > 9.2e18)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("sample size out of range")));
	PG_RETURN_INT64((int64) ceil(n));
}
