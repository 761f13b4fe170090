/* stats — the statistics push and spawn-baseline report: mean, sample standard deviation,
 * the 95% confidence interval of the mean (Student t), and percentiles.
 *
 * Percentiles use LINEAR INTERPOLATION between closest ranks (Hyndman & Fan type 7, the
 * default of R, NumPy and spreadsheets' PERCENTILE.INC): on the sorted sample x[0..n-1],
 * the p-th percentile sits at rank h = (n - 1) * p / 100 and is
 * x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
 * So p0 is the minimum, p100 the maximum, and p50 the usual median.
 *
 * The confidence interval is mean ± t(0.975, n - 1) * s / sqrt(n) with s the sample
 * standard deviation (n - 1 in the denominator). t comes from a table for 1..30 degrees of
 * freedom, is interpolated in 1/df between 30, 40, 60 and 120, and tends to 1.96.
 *
 * NaN marks a missing value (a phase an instance never reached): it is never counted. */
#ifndef MICROVIM_STATS_H
#define MICROVIM_STATS_H

#include <stddef.h>
#include <stdio.h>

/* A growable series of samples. Zero-initialise it; stats_series_free releases it. */
struct stats_series {
	double *v;
	size_t n, cap;
};

/* Appends x (ignored when NaN). 0 or -ENOMEM. */
int stats_add(struct stats_series *s, double x);
void stats_series_free(struct stats_series *s);

struct stats_summary {
	size_t n;
	double mean;
	double stddev; /* sample standard deviation; 0 when n < 2 */
	double ci95;   /* half-width of the 95% CI of the mean; 0 when n < 2 */
	double min, p50, p95, p99, max;
};

/* Two-sided 95% Student t quantile, t(0.975, df); df >= 1 (df 0 gives NaN). */
double stats_t95(size_t df);
/* Percentile p (0..100) of an ascending sorted array of n > 0 values (see above). */
double stats_percentile_sorted(const double *sorted, size_t n, double p);
/* Summarises n values (NaNs skipped; the input is not modified). An empty input gives
 * n = 0 and NaN everywhere else. 0 or -ENOMEM. */
int stats_summarize(const double *values, size_t n, struct stats_summary *out);

/* The build links no libm, so the two functions the tools need are here: square root
 * (x >= 0) and natural logarithm (x > 0), both to double precision. */
double stats_sqrt(double x);
double stats_ln(double x);

/* The summary table: a header, then one row per series, values in milliseconds.
 *   label     n      mean    ±ci95       p50       p95       p99       max
 * Labels are single words so that scripts can pick rows with awk. */
void stats_print_header(FILE *out);
void stats_print_row(FILE *out, const char *label, const struct stats_summary *s);

#endif
