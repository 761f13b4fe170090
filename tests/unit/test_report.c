/* test_report — `microvim report` on synthetic records: every plot kind, SVG and PNG,
 * gnuplot's exit status, the files it makes and the words on them; and the refusals. */
#include <errno.h>
#include <math.h> /* NAN: a macro */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "tools/analyze.h"
#include "tools/record.h"
#include "tools/report.h"
#include "unit.h"

static char dir[] = "/tmp/test_report.XXXXXX";
static bool have_gnuplot;

static char *path_of(const char *name)
{
	static char buf[64][256];
	static int k;
	k = (k + 1) % 64; /* several names live in one argument list */
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

/* n push records: phases scaled by `scale`, one every `gap_us`, a few deterministic
 * variations so that the CIs are not zero. */
static void write_push(const char *name, size_t n, double scale, int64_t gap_us)
{
	struct record_writer w;
	CHECK_EQ_INT(record_open(&w, path_of(name)), 0);
	for (size_t i = 0; i < n; i++) {
		struct record r;
		double jitter = (double)(i % 7) / 7.0;
		record_init(&r);
		snprintf(r.id, sizeof r.id, "%016zx", i + 1);
		r.intended_send_us = r.actual_send_us = (int64_t)i * gap_us;
		r.phase_ms[PHASE_ACCEPT] = 0.05 * scale;
		r.phase_ms[PHASE_SCHEDULE] = 0.02 * scale;
		r.phase_ms[PHASE_DISPATCH] = (0.1 + 0.05 * jitter) * scale;
		r.phase_ms[PHASE_PREPARE] = 0.2 * scale;
		r.phase_ms[PHASE_NETWORK] = 0;
		r.phase_ms[PHASE_SPAWN] = 1.0 + jitter;
		r.phase_ms[PHASE_NOTIFY] = 0.1 * scale;
		r.step_ms[STEP_ARTIFACT] = 0.05 * scale;
		r.step_ms[STEP_ENVIRONMENT] = r.phase_ms[PHASE_PREPARE] - r.step_ms[STEP_ARTIFACT];
		r.step_ms[STEP_CONFIG] = 0.1 * scale;
		r.step_ms[STEP_CALL] = r.phase_ms[PHASE_SPAWN] - r.step_ms[STEP_CONFIG];
		r.total_ms = 1.6 * scale + jitter * 3;
		r.core_total_ms = r.total_ms - 0.1;
		r.overhead_ms = r.total_ms - r.phase_ms[PHASE_SPAWN];
		snprintf(r.state, sizeof r.state, "%s", i == 3 ? "failed" : "running");
		if (i == 3)
			snprintf(r.error, sizeof r.error, "exec failed, \"quoted\"");
		CHECK_EQ_INT(record_write(&w, &r), 0);
	}
	CHECK_EQ_INT(record_close(&w), 0);
}

static void write_wire(const char *name, size_t n)
{
	struct analyze_record *v = calloc(n, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		record_init(&v[i].rec);
		snprintf(v[i].rec.id, sizeof v[i].rec.id, "%016zx", i + 100);
		v[i].rec.phase_ms[PHASE_SPAWN] = 1.0;
		v[i].core_ms = 0.2 + (double)(i % 3) * 0.01;
		v[i].node_ms = 1.3;
		v[i].notify_ms = 0.15;
		v[i].node_work_ms = 1.25;
		v[i].rec.total_ms = 1.7 + (double)(i % 5) * 0.1;
		snprintf(v[i].rec.state, sizeof v[i].rec.state, "running");
	}
	CHECK_EQ_INT(analyze_write(path_of(name), v, n), 0);
	free(v);
}

static int report(const char **args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = "report";
	for (; *args && argc < 31; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return report_main(argc, argv);
}

static char *slurp(const char *path)
{
	char *text = NULL;
	size_t len;
	if (fs_read_file(path, 16 * 1024 * 1024, &text, &len) < 0)
		return NULL;
	return text;
}

static void check_svg(const char *path, const char *const *words)
{
	char *svg = slurp(path);
	CHECK(svg != NULL);
	if (!svg)
		return;
	CHECK(strstr(svg, "<svg") != NULL);
	for (; *words; words++) {
		if (!strstr(svg, *words))
			fprintf(stderr, "  %s lacks \"%s\"\n", path, *words);
		CHECK(strstr(svg, *words) != NULL);
	}
	free(svg);
}

static void setup(void)
{
	write_push("stock.jsonl", 100, 3.0, 10000);
	write_push("tuned.csv", 100, 1.0, 5000);
	write_push("fast.jsonl", 50, 1.2, 1000);
	write_wire("wire.csv", 40);
	CHECK(1);
}

static void test_phases_svg(void)
{
	const char *args[] = {path_of("stock.jsonl"), path_of("tuned.csv"), path_of("wire.csv"), "--label", "stock",
	                      "--label", "tuned", "-o", path_of("phases.svg"), NULL};
	const char *words[] = {"Instantiation phases", "time (ms)", "95% CI", "stock", "tuned", "wire", "accept",
	                       "dispatch", "spawn", "notify", "core (wire)", "node (wire)", "run", NULL};
	struct stat st;
	CHECK_EQ_INT(report(args), 0);
	CHECK(stat(path_of("phases.svg"), &st) == 0 && st.st_size > 0);
	check_svg(path_of("phases.svg"), words);
	{ /* network's mean is 0 in every run: left out of the legend */
		char *svg = slurp(path_of("phases.svg"));
		CHECK(svg && !strstr(svg, ">network<"));
		free(svg);
	}
}

/* Fig. 6b: one bar per driver, stacked from the node's steps. */
static void test_driver_svg(void)
{
	const char *args[] = {path_of("stock.jsonl"), path_of("tuned.csv"), "--kind", "driver", "--label", "qemu",
	                      "--label", "exec", "-o", path_of("driver.svg"), NULL};
	const char *words[] = {"Inside the driver", "artifact (image)", "environment (dir, logs)",
	                       "config (argv, XML, xl cfg)", "toolstack/hypervisor call", "qemu", "exec", "step", NULL};
	const char *wire[] = {path_of("wire.csv"), "--kind", "driver", "-o", path_of("driver2.svg"), NULL};
	CHECK_EQ_INT(report(args), 0);
	check_svg(path_of("driver.svg"), words);
	{ /* the trace phases are not stacked here */
		char *svg = slurp(path_of("driver.svg"));
		CHECK(svg && !strstr(svg, ">accept<") && !strstr(svg, ">notify<"));
		free(svg);
	}
	CHECK_EQ_INT(report(wire), 1); /* analyze's records have no steps */
}

static void test_latency_svg(void)
{
	const char *args[] = {path_of("stock.jsonl"), path_of("tuned.csv"), path_of("fast.jsonl"), "--kind", "latency",
	                      "-o", path_of("latency.svg"), "--title", "Latency vs rate, exec driver", NULL};
	const char *words[] = {"Latency vs rate, exec driver", "offered rate (instantiations/s)",
	                       "total instantiation time (ms)", "p50 (median)", "p99", "stock", "tuned", "fast", NULL};
	CHECK_EQ_INT(report(args), 0);
	check_svg(path_of("latency.svg"), words);
}

static void test_cdf_svg_and_png(void)
{
	const char *args[] = {path_of("stock.jsonl"), path_of("wire.csv"), "--kind", "cdf", "-o", path_of("cdf.svg"), NULL};
	const char *words[] = {"Distribution of instantiation time", "total instantiation time (ms)",
	                       "fraction of instantiations", "stock (n=99", "wire (n=40", NULL};
	const char *png_args[] = {path_of("stock.jsonl"), path_of("tuned.csv"), "--kind", "cdf", "-o", path_of("cdf.png"), NULL};
	const char *ph_png[] = {path_of("stock.jsonl"), path_of("tuned.csv"), "-o", path_of("phases.png"), NULL};
	char *png;
	CHECK_EQ_INT(report(args), 0);
	check_svg(path_of("cdf.svg"), words);
	CHECK_EQ_INT(report(png_args), 0);
	CHECK_EQ_INT(report(ph_png), 0);
	png = slurp(path_of("cdf.png"));
	CHECK(png && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
	free(png);
}

static void test_refusals(void)
{
	const char *bad_ext[] = {path_of("stock.jsonl"), "-o", path_of("x.pdf"), NULL};
	const char *no_out[] = {path_of("stock.jsonl"), NULL};
	const char *bad_kind[] = {path_of("stock.jsonl"), "--kind", "pie", "-o", path_of("x.svg"), NULL};
	const char *labels[] = {path_of("stock.jsonl"), "--label", "a", "--label", "b", "-o", path_of("x.svg"), NULL};
	const char *missing[] = {path_of("nothing.jsonl"), "-o", path_of("x.svg"), NULL};
	const char *no_gnuplot[] = {path_of("stock.jsonl"), "--gnuplot", "/nonexistent/gnuplot", "-o", path_of("x.svg"), NULL};
	const char *failing[] = {path_of("stock.jsonl"), "--gnuplot", "/bin/false", "-o", path_of("x.svg"), NULL};
	const char *no_rate[] = {path_of("one.jsonl"), "--kind", "latency", "-o", path_of("x.svg"), NULL};
	const char *rate[] = {path_of("one.jsonl"), "--kind", "latency", "--rate", "10", "-o", path_of("x.svg"), NULL};
	const char *garbage[] = {path_of("garbage.jsonl"), "-o", path_of("x.svg"), NULL};
	FILE *f;

	CHECK_EQ_INT(report(bad_ext), 2);
	CHECK_EQ_INT(report(no_out), 2);
	CHECK_EQ_INT(report(bad_kind), 2);
	CHECK_EQ_INT(report(labels), 2);
	CHECK_EQ_INT(report(missing), 1);
	CHECK_EQ_INT(report(no_gnuplot), 1);
	CHECK_EQ_INT(report(failing), 1);
	write_push("one.jsonl", 1, 1.0, 0);
	CHECK_EQ_INT(report(no_rate), 1);
	if (have_gnuplot)
		CHECK_EQ_INT(report(rate), 0);
	f = fopen(path_of("garbage.jsonl"), "w");
	if (f) {
		fputs("{\"id\": \"x\"}\nnot json\n", f);
		fclose(f);
	}
	CHECK_EQ_INT(report(garbage), 1);
}

static bool on_path(const char *prog)
{
	const char *p = getenv("PATH");
	char buf[512];
	while (p && *p) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, prog);
		if (access(buf, X_OK) == 0)
			return true;
		p = colon ? colon + 1 : NULL;
	}
	return false;
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("TMPDIR", dir, 1); /* report's work dirs, checked below to be gone */
	have_gnuplot = on_path("gnuplot");
	RUN(setup);
	if (have_gnuplot) {
		RUN(test_phases_svg);
		RUN(test_driver_svg);
		RUN(test_latency_svg);
		RUN(test_cdf_svg_and_png);
	} else {
		printf("(gnuplot is not installed: the plots are not checked; scripts/install-deps installs it)\n");
	}
	RUN(test_refusals);
	fs_remove_tree(dir);
	UNIT_END();
}
