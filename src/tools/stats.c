#include "tools/stats.h"

#include <errno.h>
#include <math.h> /* macros only (NAN, INFINITY, isnan): no libm */
#include <stdlib.h>
#include <string.h>

int stats_add(struct stats_series *s, double x)
{
	if (isnan(x))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		double *v = realloc(s->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = x;
	return 0;
}

void stats_series_free(struct stats_series *s)
{
	free(s->v);
	*s = (struct stats_series){0};
}

double stats_sqrt(double x)
{
	double r, next;
	if (isnan(x) || x < 0)
		return NAN;
	if (x == 0 || x == INFINITY)
		return x;
	/* Newton from above (r >= sqrt(x)) decreases r until rounding stops it. */
	r = x > 1 ? x : 1;
	for (;;) {
		next = 0.5 * (r + x / r);
		if (next >= r)
			break;
		r = next;
	}
	return r;
}

double stats_ln(double x)
{
	static const double ln2 = 0.69314718055994530942;
	double y, y2, term, sum = 0;
	int e = 0;
	if (isnan(x) || x < 0)
		return NAN;
	if (x == 0)
		return -INFINITY;
	if (x == INFINITY)
		return x;
	while (x >= 2) {
		x /= 2;
		e++;
	}
	while (x < 1) {
		x *= 2;
		e--;
	}
	/* ln m = 2 atanh((m - 1) / (m + 1)), |y| <= 1/3 for m in [1, 2) */
	y = (x - 1) / (x + 1);
	y2 = y * y;
	term = y;
	for (int k = 1; k < 80; k += 2) {
		sum += term / k;
		term *= y2;
	}
	return 2 * sum + e * ln2;
}

/* t(0.975, df) for df = 1..30. */
static const double t95_table[30] = {
	12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
	2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
	2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
};

/* Beyond 30: points (df, t), interpolated linearly in 1/df; 1/df = 0 is the normal 1.96. */
static const struct { double df, t; } t95_tail[] = {
	{30, 2.042}, {40, 2.021}, {60, 2.000}, {120, 1.980}, {INFINITY, 1.960},
};

double stats_t95(size_t df)
{
	double x;
	if (df == 0)
		return NAN;
	if (df <= 30)
		return t95_table[df - 1];
	x = 1.0 / (double)df;
	for (size_t i = 0; i + 1 < sizeof t95_tail / sizeof t95_tail[0]; i++) {
		double x0 = 1.0 / t95_tail[i].df, x1 = 1.0 / t95_tail[i + 1].df;
		if (x <= x0 && x >= x1)
			return t95_tail[i + 1].t + (t95_tail[i].t - t95_tail[i + 1].t) * (x - x1) / (x0 - x1);
	}
	return 1.960;
}

double stats_percentile_sorted(const double *sorted, size_t n, double p)
{
	double h, frac;
	size_t lo;
	if (n == 0)
		return NAN;
	if (p <= 0)
		return sorted[0];
	if (p >= 100)
		return sorted[n - 1];
	h = (double)(n - 1) * p / 100.0;
	lo = (size_t)h; /* h >= 0: truncation is floor */
	frac = h - (double)lo;
	if (lo + 1 >= n)
		return sorted[n - 1];
	return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int stats_summarize(const double *values, size_t n, struct stats_summary *out)
{
	double *v, sum = 0, sq = 0;
	size_t k = 0;

	*out = (struct stats_summary){.mean = NAN, .stddev = NAN, .ci95 = NAN, .min = NAN, .p50 = NAN,
	                              .p95 = NAN, .p99 = NAN, .max = NAN};
	if (n == 0)
		return 0;
	if (!(v = malloc(n * sizeof *v)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!isnan(values[i]))
			v[k++] = values[i];
	out->n = k;
	if (k == 0) {
		free(v);
		return 0;
	}
	qsort(v, k, sizeof *v, cmp_double);
	for (size_t i = 0; i < k; i++)
		sum += v[i];
	out->mean = sum / (double)k;
	for (size_t i = 0; i < k; i++)
		sq += (v[i] - out->mean) * (v[i] - out->mean);
	out->stddev = k > 1 ? stats_sqrt(sq / (double)(k - 1)) : 0;
	out->ci95 = k > 1 ? stats_t95(k - 1) * out->stddev / stats_sqrt((double)k) : 0;
	out->min = v[0];
	out->p50 = stats_percentile_sorted(v, k, 50);
	out->p95 = stats_percentile_sorted(v, k, 95);
	out->p99 = stats_percentile_sorted(v, k, 99);
	out->max = v[k - 1];
	free(v);
	return 0;
}

void stats_print_header(FILE *out)
{
	fprintf(out, "%-14s %7s %10s %9s %10s %10s %10s %10s   (ms)\n", "series", "n", "mean", "±95%CI", "p50",
	        "p95", "p99", "max");
}

void stats_print_row(FILE *out, const char *label, const struct stats_summary *s)
{
	if (s->n == 0) {
		fprintf(out, "%-14s %7zu %10s %9s %10s %10s %10s %10s\n", label, s->n, "-", "-", "-", "-", "-", "-");
		return;
	}
	fprintf(out, "%-14s %7zu %10.3f %9.3f %10.3f %10.3f %10.3f %10.3f\n", label, s->n, s->mean, s->ci95, s->p50,
	        s->p95, s->p99, s->max);
}
