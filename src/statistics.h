/*
 * statistics.h — distribution functions and tests shared by the experiment read-outs.
 */
#ifndef PERSONALIZE_STATISTICS_H
#define PERSONALIZE_STATISTICS_H

extern double pz_norm_cdf(double x);
extern double pz_norm_sf(double x);
extern double pz_norm_ppf(double p);
extern double pz_t_sf(double t, double df);
extern double pz_t_cdf(double t, double df);
extern double pz_t_isf(double q, double df);
extern double pz_chi2_sf(double x, double df);
extern double pz_chi2_cdf(double x, double df);
extern double pz_chi2_isf(double q, double df);
extern double pz_chi2_ppf(double p, double df);


/* Two arms compared as in experiment_results (doc/experiments.md#formulas). */
typedef struct PzComparison
{
	bool		valid_abs;		/* lift_abs and its interval defined */
	bool		valid_test;		/* statistic and p-value defined */
	bool		valid_rel;		/* lift_rel defined */
	bool		valid_rel_ci;	/* interval of lift_rel defined */
	double		lift_abs,
				abs_low,
				abs_high,
				lift_rel,
				rel_low,
				rel_high,
				statistic,
				df,
				p_value;
} PzComparison;

extern void pz_compare_arms(double n_c, double mean_c, double m2_c,
							double n_t, double mean_t, double m2_t,
							bool proportion, double confidence, PzComparison *r);

#endif
