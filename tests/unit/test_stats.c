/* test_stats — the statistics and record formats of push and spawn-baseline. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "tools/record.h"
#include "tools/stats.h"
#include "unit.h"

static int near(double a, double b, double tol) { return a - b <= tol && b - a <= tol; } /* no libm */

static void test_t_table(void)
{
	CHECK(isnan(stats_t95(0)));
	CHECK(near(stats_t95(1), 12.706, 1e-9));
	CHECK(near(stats_t95(9), 2.262, 1e-9)); /* n = 10 */
	CHECK(near(stats_t95(29), 2.045, 1e-9));
	CHECK(near(stats_t95(30), 2.042, 1e-9));
	CHECK(near(stats_t95(40), 2.021, 1e-9));
	CHECK(near(stats_t95(60), 2.000, 1e-9));
	CHECK(near(stats_t95(120), 1.980, 1e-9));
	/* between table points, close to the exact quantiles: t(50) = 2.0086, t(100) = 1.9840,
	 * t(999) = 1.9623; the asymptote is 1.96 */
	CHECK(near(stats_t95(50), 2.0086, 0.003));
	CHECK(near(stats_t95(100), 1.9840, 0.003));
	CHECK(near(stats_t95(999), 1.9623, 0.001));
	CHECK(near(stats_t95(100000000), 1.960, 1e-6));
	for (size_t df = 1; df < 2000; df++) /* never increasing */
		CHECK(stats_t95(df + 1) <= stats_t95(df));
}

static void test_math(void)
{
	CHECK(near(stats_sqrt(2), 1.4142135623730951, 1e-15));
	CHECK(near(stats_sqrt(1e12), 1e6, 1e-9));
	CHECK(near(stats_sqrt(0.25), 0.5, 1e-15));
	CHECK(stats_sqrt(0) == 0);
	CHECK(isnan(stats_sqrt(-1)));
	CHECK(near(stats_ln(1), 0, 1e-15));
	CHECK(near(stats_ln(2.718281828459045), 1, 1e-14));
	CHECK(near(stats_ln(1e-9), -20.72326583694641, 1e-12));
	CHECK(near(stats_ln(12345.678), 9.421061321291832, 1e-12));
	CHECK(isnan(stats_ln(-1)));
}

/* 10 values: mean 5.5, s = sqrt(82.5 / 9) = 3.0276503540974917, CI = 2.262 * s / sqrt(10). */
static void test_mean_ci(void)
{
	double v[10] = {3, 1, 4, 10, 5, 9, 2, 6, 8, 7};
	struct stats_summary s;
	CHECK(stats_summarize(v, 10, &s) == 0);
	CHECK_EQ_INT(s.n, 10);
	CHECK(near(s.mean, 5.5, 1e-12));
	CHECK(near(s.stddev, 3.0276503540974917, 1e-12));
	CHECK(near(s.ci95, 2.262 * 3.0276503540974917 / 3.1622776601683795, 1e-12));
	CHECK(near(s.ci95, 2.16570, 1e-4));
	CHECK(s.min == 1 && s.max == 10);
	CHECK(v[0] == 3 && v[3] == 10); /* input untouched */

	/* a textbook sample: 12.6, 13.4, 11.8, 12.9, 13.1 -> mean 12.76, s 0.61074, t(4) 2.776 */
	double w[5] = {12.6, 13.4, 11.8, 12.9, 13.1};
	CHECK(stats_summarize(w, 5, &s) == 0);
	CHECK(near(s.mean, 12.76, 1e-12));
	CHECK(near(s.stddev, 0.6107372593840986, 1e-12));
	CHECK(near(s.ci95, 2.776 * 0.6107372593840986 / stats_sqrt(5), 1e-12));
}

static void test_percentiles(void)
{
	double v[10] = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, sorted[10];
	struct stats_summary s;
	for (int i = 0; i < 10; i++)
		sorted[i] = i + 1;
	/* linear interpolation at rank (n - 1) p: NumPy's np.percentile(range(1, 11), p) */
	CHECK(near(stats_percentile_sorted(sorted, 10, 50), 5.5, 1e-12));
	CHECK(near(stats_percentile_sorted(sorted, 10, 95), 9.55, 1e-12));
	CHECK(near(stats_percentile_sorted(sorted, 10, 99), 9.91, 1e-12));
	CHECK(near(stats_percentile_sorted(sorted, 10, 25), 3.25, 1e-12));
	CHECK(stats_percentile_sorted(sorted, 10, 0) == 1);
	CHECK(stats_percentile_sorted(sorted, 10, 100) == 10);
	CHECK(stats_summarize(v, 10, &s) == 0);
	CHECK(near(s.p50, 5.5, 1e-12) && near(s.p95, 9.55, 1e-12) && near(s.p99, 9.91, 1e-12));

	/* 1..1000: p50 500.5, p95 950.05, p99 990.01, max 1000 */
	double *big = malloc(1000 * sizeof *big);
	for (int i = 0; i < 1000; i++)
		big[i] = 1000 - i;
	CHECK(stats_summarize(big, 1000, &s) == 0);
	CHECK(near(s.p50, 500.5, 1e-9) && near(s.p95, 950.05, 1e-9) && near(s.p99, 990.01, 1e-9));
	CHECK(s.max == 1000 && near(s.mean, 500.5, 1e-9));
	CHECK(near(s.ci95, 1.9623 * s.stddev / stats_sqrt(1000), 0.01));
	free(big);

	/* one value; NaNs skipped; nothing at all */
	double one[3] = {NAN, 4.2, NAN};
	CHECK(stats_summarize(one, 3, &s) == 0);
	CHECK_EQ_INT(s.n, 1);
	CHECK(s.p50 == 4.2 && s.p99 == 4.2 && s.max == 4.2 && s.ci95 == 0 && s.stddev == 0);
	CHECK(stats_summarize(one, 0, &s) == 0);
	CHECK_EQ_INT(s.n, 0);
	CHECK(isnan(s.mean) && isnan(s.p50));
}

static void test_series(void)
{
	struct stats_series s = {0};
	for (int i = 0; i < 1000; i++)
		CHECK(stats_add(&s, i % 3 == 0 ? NAN : i) == 0);
	CHECK_EQ_INT(s.n, 666);
	stats_series_free(&s);
	CHECK(s.n == 0 && s.v == NULL);
}

static void sample_records(struct record r[2])
{
	record_init(&r[0]);
	snprintf(r[0].id, sizeof r[0].id, "3f2a9c1b7d4e5f60");
	r[0].intended_send_us = 1000;
	r[0].actual_send_us = 1250;
	r[0].phase_ms[PHASE_ACCEPT] = 0.041;
	r[0].phase_ms[PHASE_SCHEDULE] = 0.012;
	r[0].phase_ms[PHASE_DISPATCH] = 0.08;
	r[0].phase_ms[PHASE_PREPARE] = 0.05;
	r[0].phase_ms[PHASE_NETWORK] = 0;
	r[0].phase_ms[PHASE_SPAWN] = 1.9;
	r[0].phase_ms[PHASE_NOTIFY] = 0.12;
	r[0].total_ms = 2.5;
	r[0].core_total_ms = 2.203;
	r[0].overhead_ms = 0.6;
	snprintf(r[0].state, sizeof r[0].state, "running");

	record_init(&r[1]);
	r[1].intended_send_us = 2000;
	r[1].actual_send_us = 2001;
	r[1].total_ms = 0.25;
	snprintf(r[1].state, sizeof r[1].state, "error");
	snprintf(r[1].error, sizeof r[1].error, "HTTP 422 no_node: no \"ready\" node, offers exec");
}

static char *write_temp(const char *suffix, const struct record *r, size_t n)
{
	char *path = NULL;
	struct record_writer w;
	if (asprintf(&path, "/tmp/test_stats_%d%s", (int)getpid(), suffix) < 0)
		return NULL;
	CHECK(record_open(&w, path) == 0);
	for (size_t i = 0; i < n; i++)
		CHECK(record_write(&w, &r[i]) == 0);
	CHECK(record_close(&w) == 0);
	return path;
}

static void test_jsonl(void)
{
	struct record r[2];
	char line[4096];
	char *path;
	FILE *f;
	json_t *o;
	int lines = 0;

	sample_records(r);
	path = write_temp(".jsonl", r, 2);
	f = fopen(path, "r");
	CHECK(f != NULL);
	while (f && fgets(line, sizeof line, f)) {
		o = json_loads(line, 0, NULL);
		CHECK(json_is_object(o));
		if (lines == 0) {
			CHECK_STR(json_string_value(json_object_get(o, "id")), "3f2a9c1b7d4e5f60");
			CHECK_EQ_INT(json_integer_value(json_object_get(o, "intended_send_us")), 1000);
			CHECK_EQ_INT(json_integer_value(json_object_get(o, "actual_send_us")), 1250);
			CHECK(near(json_number_value(json_object_get(o, "accept")), 0.041, 1e-12));
			CHECK(near(json_number_value(json_object_get(o, "spawn")), 1.9, 1e-12));
			CHECK(json_is_number(json_object_get(o, "network")));
			CHECK(json_is_null(json_object_get(o, "boot")));
			CHECK(near(json_number_value(json_object_get(o, "total_ms")), 2.5, 1e-12));
			CHECK(near(json_number_value(json_object_get(o, "core_total_ms")), 2.203, 1e-12));
			CHECK(near(json_number_value(json_object_get(o, "overhead_ms")), 0.6, 1e-12));
			CHECK_STR(json_string_value(json_object_get(o, "state")), "running");
			CHECK_STR(json_string_value(json_object_get(o, "error")), "");
			for (int p = 0; p < PHASE_COUNT; p++)
				CHECK(json_object_get(o, phase_names[p]) != NULL);
		} else {
			CHECK(json_is_string(json_object_get(o, "id")));
			CHECK(json_is_null(json_object_get(o, "accept")));
			CHECK(json_is_null(json_object_get(o, "core_total_ms")));
			CHECK_STR(json_string_value(json_object_get(o, "state")), "error");
			CHECK_STR(json_string_value(json_object_get(o, "error")), "HTTP 422 no_node: no \"ready\" node, offers exec");
		}
		json_decref(o);
		lines++;
	}
	CHECK_EQ_INT(lines, 2);
	if (f)
		fclose(f);
	unlink(path);
	free(path);
}

/* Splits one CSV line (RFC 4180 quoting) into at most max cells; returns the count. */
static int csv_split(const char *line, char cells[][256], int max)
{
	int n = 0;
	size_t k = 0;
	int quoted = 0;
	const char *s = line;
	cells[0][0] = '\0';
	for (; *s && *s != '\n'; s++) {
		if (quoted) {
			if (*s == '"' && s[1] == '"') {
				cells[n][k++] = '"';
				s++;
			} else if (*s == '"') {
				quoted = 0;
			} else {
				cells[n][k++] = *s;
			}
		} else if (*s == '"') {
			quoted = 1;
		} else if (*s == ',') {
			cells[n][k] = '\0';
			if (++n >= max)
				return n;
			k = 0;
			cells[n][0] = '\0';
		} else {
			cells[n][k++] = *s;
		}
		if (k >= 255)
			k = 254;
	}
	cells[n][k] = '\0';
	return n + 1;
}

static void test_csv(void)
{
	struct record r[2];
	char line[4096], cells[32][256];
	char *path;
	FILE *f;
	int n, ncols = 3 + PHASE_COUNT + STEP_COUNT + STOP_STEP_COUNT + 5;
	const int T = 3 + PHASE_COUNT + STEP_COUNT + STOP_STEP_COUNT; /* the totals' first column */

	sample_records(r);
	path = write_temp(".csv", r, 2);
	f = fopen(path, "r");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(fgets(line, sizeof line, f) != NULL);
	n = csv_split(line, cells, 32);
	CHECK_EQ_INT(n, ncols);
	CHECK_STR(cells[0], "id");
	CHECK_STR(cells[1], "intended_send_us");
	CHECK_STR(cells[2], "actual_send_us");
	for (int p = 0; p < PHASE_COUNT; p++)
		CHECK_STR(cells[3 + p], phase_names[p]);
	for (int st = 0; st < STEP_COUNT; st++)
		CHECK_STR(cells[3 + PHASE_COUNT + st], step_names[st]);
	for (int st = 0; st < STOP_STEP_COUNT; st++)
		CHECK_STR(cells[3 + PHASE_COUNT + STEP_COUNT + st], stop_step_names[st]);
	CHECK_STR(cells[T], "total_ms");
	CHECK_STR(cells[T + 1], "core_total_ms");
	CHECK_STR(cells[T + 2], "overhead_ms");
	CHECK_STR(cells[T + 3], "state");
	CHECK_STR(cells[T + 4], "error");

	CHECK(fgets(line, sizeof line, f) != NULL);
	n = csv_split(line, cells, 32);
	CHECK_EQ_INT(n, ncols);
	CHECK_STR(cells[0], "3f2a9c1b7d4e5f60");
	CHECK_EQ_INT(atoll(cells[1]), 1000);
	CHECK_EQ_INT(atoll(cells[2]), 1250);
	CHECK(near(atof(cells[3 + PHASE_ACCEPT]), 0.041, 1e-12));
	CHECK(near(atof(cells[3 + PHASE_SPAWN]), 1.9, 1e-12));
	CHECK_STR(cells[3 + PHASE_NETWORK], "0.000");
	CHECK_STR(cells[3 + PHASE_BOOT], ""); /* absent */
	CHECK_STR(cells[3 + PHASE_COUNT + STEP_CALL], ""); /* no steps measured */
	CHECK(near(atof(cells[T]), 2.5, 1e-12));
	CHECK(near(atof(cells[T + 1]), 2.203, 1e-12));
	CHECK(near(atof(cells[T + 2]), 0.6, 1e-12));
	CHECK_STR(cells[T + 3], "running");
	CHECK_STR(cells[T + 4], "");

	CHECK(fgets(line, sizeof line, f) != NULL);
	n = csv_split(line, cells, 32);
	CHECK_EQ_INT(n, ncols);
	CHECK_STR(cells[0], "");
	CHECK_STR(cells[3 + PHASE_ACCEPT], "");
	CHECK_STR(cells[T + 3], "error");
	CHECK_STR(cells[T + 4], "HTTP 422 no_node: no \"ready\" node, offers exec");
	CHECK(fgets(line, sizeof line, f) == NULL);
	fclose(f);
	unlink(path);
	free(path);
}

static void test_format_of(void)
{
	enum record_format f;
	struct record_writer w;
	CHECK(record_format_of("a/b.jsonl", &f) == 0 && f == RECORD_JSONL);
	CHECK(record_format_of("x.csv", &f) == 0 && f == RECORD_CSV);
	CHECK(record_format_of("x.json", &f) < 0);
	CHECK(record_format_of(".csv", &f) < 0);
	CHECK(record_open(&w, "/nonexistent-dir/x.csv") < 0);
}

int main(void)
{
	RUN(test_t_table);
	RUN(test_math);
	RUN(test_mean_ci);
	RUN(test_percentiles);
	RUN(test_series);
	RUN(test_jsonl);
	RUN(test_csv);
	RUN(test_format_of);
	UNIT_END();
}
