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

#endif
