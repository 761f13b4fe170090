/* report — see report.h. Read the runs, summarise them, write data files and a gnuplot
 * script into a temporary directory, run gnuplot on it, check what it made. */
#include "tools/report.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h> /* NAN, isnan: macros only */
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/trace.h"
#include "tools/record.h"
#include "tools/stats.h"

#define REPORT_EXIT_OK 0
#define REPORT_EXIT_FAILED 1
#define REPORT_EXIT_USAGE 2

#define REPORT_MAX_FILE (1024 * 1024 * 1024)
#define REPORT_MAX_RUNS 64

extern char **environ;

enum kind { KIND_PHASES, KIND_DRIVER, KIND_LATENCY, KIND_CDF };
static const char *const kind_names[] = {"phases", "driver", "latency", "cdf"};

/* The columns report reads: the trace phases, the node's steps, the wire phases, Nova's
 * phases (analyze --vim nova), total. */
enum field {
	FLD_ACCEPT, FLD_SCHEDULE, FLD_DISPATCH, FLD_PREPARE, FLD_NETWORK, FLD_SPAWN, FLD_BOOT, FLD_NOTIFY, /* = enum phase */
	FLD_ARTIFACT, FLD_ENVIRONMENT, FLD_CONFIG, FLD_CALL, /* = enum trace_step */
	FLD_CLEANUP, /* the stop's clean-up (stop_steps.cleanup) */
	FLD_WIRE_CORE, FLD_WIRE_NODE, FLD_WIRE_NOTIFY,
	FLD_NOVA_API, FLD_NOVA_IMAGE, FLD_NOVA_SCHEDULING, FLD_NOVA_NETWORK, FLD_NOVA_SPAWN, FLD_NOVA_NOTIFICATION,
	FLD_TOTAL,
	FLD_COUNT
};

static const char *const field_column[FLD_COUNT] = {
	"accept", "schedule", "dispatch", "prepare", "network", "spawn", "boot", "notify",
	"artifact", "environment", "config", "call",
	"cleanup",
	"core_ms", "node_ms", "notify_ms",
	"api_auth_ms", "image_ms", "scheduling_ms", "compute_network_ms", "compute_spawn_ms", "notification_ms",
	"total_ms",
};

/* Which phases a run's bar stacks: push's trace, analyze's wire phases, Nova's, or (--kind
 * driver) the node's steps. */
enum phase_set { SET_TRACE, SET_WIRE, SET_NOVA, SET_STEPS };

/* Bars stack in this order; a run uses the phases of its set. Nova's follow the paper's
 * Fig. 4 (API and authentication, image, scheduling, compute: network + spawn,
 * notification) in colors of their own, so that both VIMs can share one figure. */
static const struct {
	enum field f;
	const char *legend, *color;
	enum phase_set set;
} stack_order[] = {
	{FLD_ACCEPT, "accept", "#4e79a7", SET_TRACE},        {FLD_SCHEDULE, "schedule", "#f28e2b", SET_TRACE},
	{FLD_DISPATCH, "dispatch", "#e15759", SET_TRACE},    {FLD_WIRE_CORE, "core (wire)", "#76b7b2", SET_WIRE},
	{FLD_PREPARE, "prepare", "#59a14f", SET_TRACE},      {FLD_NETWORK, "network", "#edc948", SET_TRACE},
	{FLD_SPAWN, "spawn", "#b07aa1", SET_TRACE},          {FLD_BOOT, "boot", "#ff9da7", SET_TRACE},
	{FLD_WIRE_NODE, "node (wire)", "#9c755f", SET_WIRE}, {FLD_NOTIFY, "notify", "#bab0ac", SET_TRACE},
	{FLD_WIRE_NOTIFY, "notify (wire)", "#d37295", SET_WIRE},
	{FLD_NOVA_API, "Nova: API + auth", "#1f4e79", SET_NOVA},
	{FLD_NOVA_IMAGE, "Nova: image (Glance)", "#6a3d9a", SET_NOVA},
	{FLD_NOVA_SCHEDULING, "Nova: scheduling", "#b15928", SET_NOVA},
	{FLD_NOVA_NETWORK, "Nova: compute, network", "#33a02c", SET_NOVA},
	{FLD_NOVA_SPAWN, "Nova: compute, spawn", "#e31a1c", SET_NOVA},
	{FLD_NOVA_NOTIFICATION, "Nova: notification", "#a6761d", SET_NOVA},
	/* --kind driver: the paper's Fig. 6b (create image, generate XML, libvirt spawn) for
	 * microvim's drivers: prepare's steps, the network phase, spawn's steps, and the
	 * clean-up of the stop */
	{FLD_ARTIFACT, "artifact (image)", "#59a14f", SET_STEPS},
	{FLD_ENVIRONMENT, "environment (dir, logs)", "#8cd17d", SET_STEPS},
	{FLD_NETWORK, "network", "#edc948", SET_STEPS},
	{FLD_CONFIG, "config (argv, XML, xl cfg)", "#b07aa1", SET_STEPS},
	{FLD_CALL, "toolstack/hypervisor call", "#e15759", SET_STEPS},
	/* after the instance's life: what the node releases once a stopped instance ended */
	{FLD_CLEANUP, "clean-up on stop", "#79706e", SET_STEPS},
};
#define N_STACK (sizeof stack_order / sizeof stack_order[0])

struct run {
	const char *path;
	char label[128];
	double rate; /* NaN: derive */
	struct stats_series v[FLD_COUNT];
	struct stats_summary sum[FLD_COUNT];
	size_t records;
	int64_t first_send_us, last_send_us;
	size_t sends;
	enum phase_set set; /* the phases its bar stacks */
};

struct options {
	const char *out, *title, *gnuplot;
	enum kind kind;
	const char *labels[REPORT_MAX_RUNS];
	double rates[REPORT_MAX_RUNS];
	int n_labels, n_rates;
	const char *files[REPORT_MAX_RUNS];
	int n_files;
	bool png;
};

/* ---- reading records ---- */

static void run_add(struct run *r, const double *vals, const char *state, bool has_send, int64_t send_us)
{
	bool running = strcmp(state, "running") == 0;
	for (int f = 0; f < FLD_COUNT; f++) {
		if (f == FLD_TOTAL && !running)
			continue;
		if (stats_add(&r->v[f], vals[f]) < 0)
			fatal("out of memory");
	}
	if (has_send) {
		if (r->sends == 0 || send_us < r->first_send_us)
			r->first_send_us = send_us;
		if (r->sends == 0 || send_us > r->last_send_us)
			r->last_send_us = send_us;
		r->sends++;
	}
	r->records++;
}

static int load_jsonl(struct run *r, char *text, char *err, size_t errlen)
{
	size_t lineno = 0;
	for (char *line = text, *next; line && *line; line = next) {
		json_t *o;
		json_error_t je;
		double vals[FLD_COUNT];
		const json_t *send;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (strspn(line, " \t\r") == strlen(line))
			continue;
		if (!(o = json_loads(line, 0, &je)) || !json_is_object(o)) {
			snprintf(err, errlen, "%s:%zu: not a JSON object%s%s", r->path, lineno, o ? "" : ": ", o ? "" : je.text);
			json_decref(o);
			return -EINVAL;
		}
		for (int f = 0; f < FLD_COUNT; f++) {
			const json_t *x = json_object_get(o, field_column[f]);
			vals[f] = json_is_number(x) ? json_number_value(x) : NAN;
		}
		send = json_object_get(o, "intended_send_us");
		run_add(r, vals, json_string_value(json_object_get(o, "state")) ?: "", json_is_integer(send),
		        json_is_integer(send) ? (int64_t)json_integer_value(send) : 0);
		json_decref(o);
	}
	return 0;
}

/* One CSV field (RFC 4180) from *p into out; returns 1 at the end of a row, 0 before a
 * comma, -1 at the end of the text. */
static int csv_field(const char **p, char *out, size_t outlen)
{
	const char *s = *p;
	size_t n = 0;
	int end;
	if (!*s)
		return -1;
	if (*s == '"') {
		s++;
		while (*s) {
			if (*s == '"' && s[1] == '"') {
				if (n + 1 < outlen)
					out[n++] = '"';
				s += 2;
			} else if (*s == '"') {
				s++;
				break;
			} else {
				if (n + 1 < outlen)
					out[n++] = *s;
				s++;
			}
		}
	}
	while (*s && *s != ',' && *s != '\n') {
		if (*s != '\r' && n + 1 < outlen)
			out[n++] = *s;
		s++;
	}
	out[n] = '\0';
	end = *s == ',' ? 0 : 1;
	if (*s)
		s++;
	*p = s;
	return end;
}

static int load_csv(struct run *r, const char *text, char *err, size_t errlen)
{
	enum { MAX_COLS = 64 };
	int col_field[MAX_COLS], n_cols = 0, col_state = -1, col_send = -1, rc;
	char cell[1024];
	const char *p = text;

	do { /* the header */
		rc = csv_field(&p, cell, sizeof cell);
		if (rc < 0 || n_cols == MAX_COLS) {
			snprintf(err, errlen, "%s: no CSV header line", r->path);
			return -EINVAL;
		}
		col_field[n_cols] = -1;
		for (int f = 0; f < FLD_COUNT; f++)
			if (strcmp(cell, field_column[f]) == 0)
				col_field[n_cols] = f;
		if (strcmp(cell, "state") == 0)
			col_state = n_cols;
		if (strcmp(cell, "intended_send_us") == 0)
			col_send = n_cols;
		n_cols++;
	} while (rc == 0);
	if (col_state < 0) {
		snprintf(err, errlen, "%s: the CSV header has no state column: not a push/analyze record file", r->path);
		return -EINVAL;
	}
	while (*p) {
		double vals[FLD_COUNT];
		char state[32] = "";
		int64_t send = 0;
		bool has_send = false;
		int col = 0;
		for (int f = 0; f < FLD_COUNT; f++)
			vals[f] = NAN;
		if (*p == '\n' || (*p == '\r' && p[1] == '\n')) {
			p += *p == '\r' ? 2 : 1;
			continue;
		}
		do {
			rc = csv_field(&p, cell, sizeof cell);
			if (rc < 0)
				break;
			if (col < n_cols && col_field[col] >= 0 && cell[0]) {
				char *end;
				double x = strtod(cell, &end);
				if (!*end)
					vals[col_field[col]] = x;
			}
			if (col == col_state)
				snprintf(state, sizeof state, "%.31s", cell);
			if (col == col_send && cell[0]) {
				char *end;
				long long x = strtoll(cell, &end, 10);
				if (!*end) {
					send = x;
					has_send = true;
				}
			}
			col++;
		} while (rc == 0);
		run_add(r, vals, state, has_send, send);
	}
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && strcmp(s + n - k, suffix) == 0;
}

static int run_load(struct run *r, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc;
	const char *q;

	if ((rc = fs_read_file(r->path, REPORT_MAX_FILE, &text, &len)) < 0) {
		snprintf(err, errlen, "%s: %s", r->path, strerror(-rc));
		return rc;
	}
	q = text + strspn(text, " \t\r\n");
	if (has_suffix(r->path, ".jsonl") || (!has_suffix(r->path, ".csv") && *q == '{'))
		rc = load_jsonl(r, text, err, errlen);
	else
		rc = load_csv(r, text, err, errlen);
	free(text);
	if (rc < 0)
		return rc;
	if (r->records == 0) {
		snprintf(err, errlen, "%s: no records", r->path);
		return -EINVAL;
	}
	for (int f = 0; f < FLD_COUNT; f++)
		if (stats_summarize(r->v[f].v, r->v[f].n, &r->sum[f]) < 0)
			fatal("out of memory");
	r->set = r->sum[FLD_NOVA_API].n > 0                                ? SET_NOVA
	         : r->sum[FLD_WIRE_CORE].n > 0 && r->sum[FLD_ACCEPT].n == 0 ? SET_WIRE
	                                                                     : SET_TRACE;
	return 0;
}

static void run_free(struct run *r)
{
	for (int f = 0; f < FLD_COUNT; f++)
		stats_series_free(&r->v[f]);
}

/* ---- writing the script ---- */

struct work {
	char dir[256];
	char *files[REPORT_MAX_RUNS + 4];
	int n_files;
};

/* Creates DIR/name; remembers it for removal. */
static FILE *work_open(struct work *w, const char *name, char *path, size_t pathlen)
{
	FILE *f;
	if ((size_t)snprintf(path, pathlen, "%s/%s", w->dir, name) >= pathlen || w->n_files == REPORT_MAX_RUNS + 4)
		return NULL;
	if (!(f = fopen(path, "w")))
		return NULL;
	if (!(w->files[w->n_files] = strdup(path))) {
		fclose(f);
		return NULL;
	}
	w->n_files++;
	return f;
}

static int work_close(FILE *f)
{
	int rc = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* A gnuplot single-quoted string: '' stands for '. */
static void gp_string(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		if (*s == '\n' || *s == '\r')
			fputc(' ', f);
		else
			fputc(*s, f);
	}
	fputc('\'', f);
}

static void gp_header(FILE *f, const struct options *o, const char *title, int height)
{
	if (o->png)
		fprintf(f, "set terminal pngcairo size 1200,%d noenhanced font 'sans,11' background rgb 'white'\n",
		        height * 5 / 4);
	else
		fprintf(f, "set terminal svg size 960,%d dynamic noenhanced font 'sans,12' background rgb 'white'\n", height);
	fprintf(f, "set output ");
	gp_string(f, o->out);
	fprintf(f, "\nset encoding utf8\nset title ");
	gp_string(f, o->title ? o->title : title);
	fprintf(f, "\nset grid xtics ytics lc rgb '#dddddd'\nset border 3\nset tics nomirror\n");
}

static int script_phases(FILE *sf, struct work *w, const struct options *o, struct run *runs, int n)
{
	char path[512];
	bool used[N_STACK] = {false};
	double xmax = 0;
	FILE *df = work_open(w, "phases.dat", path, sizeof path);
	bool first = true;

	if (!df)
		return -errno;
	for (int i = 0; i < n; i++) {
		bool any = false;
		for (size_t k = 0; k < N_STACK; k++) {
			const struct stats_summary *s = &runs[i].sum[stack_order[k].f];
			if (stack_order[k].set == runs[i].set && s->n > 0) {
				any = true;
				if (s->mean >= 0.0005)
					used[k] = true;
			}
		}
		if (!any) {
			if (o->kind == KIND_DRIVER)
				log_warnx("%s: no step values (records of push against a node that measures its steps?)",
				          runs[i].path);
			else
				log_warnx("%s: no phase values (records of push or analyze?)", runs[i].path);
			fclose(df);
			return -EINVAL;
		}
	}
	/* one block per stacked phase: y (top run first), from, to, ci */
	for (size_t k = 0; k < N_STACK; k++) {
		if (!used[k])
			continue;
		fprintf(df, "# %s\n", stack_order[k].legend);
		for (int i = 0; i < n; i++) {
			double from = 0;
			const struct stats_summary *s = &runs[i].sum[stack_order[k].f];
			if (stack_order[k].set != runs[i].set || s->n == 0)
				continue;
			for (size_t j = 0; j < k; j++)
				if (used[j] && stack_order[j].set == runs[i].set && runs[i].sum[stack_order[j].f].n > 0)
					from += runs[i].sum[stack_order[j].f].mean;
			fprintf(df, "%d %.6f %.6f %.6f\n", n - 1 - i, from, from + s->mean, s->ci95);
			if (from + s->mean + s->ci95 > xmax)
				xmax = from + s->mean + s->ci95;
		}
		fprintf(df, "\n\n");
	}
	if (work_close(df) < 0)
		return -EIO;

	bool steps = o->kind == KIND_DRIVER;
	gp_header(sf, o,
	          steps ? "Inside the driver: the node's steps of prepare and spawn, and its clean-up on stop; mean and 95% CI"
	                : "Instantiation phases: mean of each phase, 95% confidence interval",
	          180 + 70 * n);
	fprintf(sf, "set xlabel 'time (ms): mean of each %s, stacked; error bars: 95%% CI of that mean'\n",
	        steps ? "step" : "phase");
	fprintf(sf, "set ylabel 'run'\nset yrange [-0.6:%f]\nset xrange [0:%f]\n", n - 0.4, xmax > 0 ? xmax * 1.3 : 1);
	fprintf(sf, "set key outside right top vertical title '%s' box\nset style fill solid 0.85 border rgb '#333333'\n",
	        steps ? "step" : "phase");
	fprintf(sf, "set ytics (");
	for (int i = 0; i < n; i++) {
		fprintf(sf, "%s", i ? ", " : "");
		gp_string(sf, runs[i].label);
		fprintf(sf, " %d", n - 1 - i);
	}
	fprintf(sf, ")\n");
	for (int i = 0; i < n; i++) {
		double total = 0, end = 0;
		char text[160];
		for (size_t k = 0; k < N_STACK; k++) {
			const struct stats_summary *s = &runs[i].sum[stack_order[k].f];
			if (used[k] && stack_order[k].set == runs[i].set && s->n > 0) {
				total += s->mean;
				if (total + s->ci95 > end)
					end = total + s->ci95;
			}
		}
		snprintf(text, sizeof text, "%.3f ms (n=%zu)", total, runs[i].records);
		fprintf(sf, "set label %d ", i + 1);
		gp_string(sf, text);
		fprintf(sf, " at first %f, first %d left offset 1,0\n", end, n - 1 - i);
	}
	fprintf(sf, "plot ");
	for (size_t k = 0, block = 0; k < N_STACK; k++) {
		if (!used[k])
			continue;
		fprintf(sf, "%s", first ? "" : ", \\\n     ");
		first = false;
		gp_string(sf, path);
		fprintf(sf, " index %zu using (($2+$3)/2):1:2:3:($1-0.32):($1+0.32) with boxxyerror lc rgb '%s' title ", block,
		        stack_order[k].color);
		gp_string(sf, stack_order[k].legend);
		fprintf(sf, ", \\\n     '' index %zu using 3:1:($3-$4):($3+$4) with xerrorbars lc rgb 'black' pt 7 ps 0.3 notitle",
		        block);
		block++;
	}
	fprintf(sf, "\n");
	return 0;
}

static int cmp_rate(const void *x, const void *y)
{
	double a = ((const double *)x)[0], b = ((const double *)y)[0];
	return (a > b) - (a < b);
}

static int script_latency(FILE *sf, struct work *w, const struct options *o, struct run *runs, int n)
{
	char path[512];
	double (*pts)[4] = calloc((size_t)n, sizeof *pts); /* rate, p50, p99, run */
	FILE *df;

	if (!pts)
		fatal("out of memory");
	for (int i = 0; i < n; i++) {
		struct run *r = &runs[i];
		double rate = r->rate;
		if (isnan(rate)) {
			if (r->sends < 2 || r->last_send_us <= r->first_send_us) {
				log_warnx("%s: cannot tell the offered rate from the records (give --rate)", r->path);
				free(pts);
				return -EINVAL;
			}
			rate = (double)(r->sends - 1) * 1e6 / (double)(r->last_send_us - r->first_send_us);
		}
		if (r->sum[FLD_TOTAL].n == 0) {
			log_warnx("%s: no instance reached running: no total_ms to plot", r->path);
			free(pts);
			return -EINVAL;
		}
		pts[i][0] = rate;
		pts[i][1] = r->sum[FLD_TOTAL].p50;
		pts[i][2] = r->sum[FLD_TOTAL].p99;
		pts[i][3] = i;
	}
	qsort(pts, (size_t)n, sizeof *pts, cmp_rate);
	if (!(df = work_open(w, "latency.dat", path, sizeof path))) {
		free(pts);
		return -errno;
	}
	fprintf(df, "# rate/s p50_ms p99_ms\n");
	for (int i = 0; i < n; i++)
		fprintf(df, "%.6f %.6f %.6f\n", pts[i][0], pts[i][1], pts[i][2]);
	if (work_close(df) < 0) {
		free(pts);
		return -EIO;
	}
	gp_header(sf, o, "Instantiation latency against offered rate", 540);
	fprintf(sf, "set xlabel 'offered rate (instantiations/s)'\nset ylabel 'total instantiation time (ms)'\n");
	fprintf(sf, "set key top left box\nset xrange [0:*]\nset yrange [0:*]\nset offsets 0, graph 0.08, graph 0.12, 0\n");
	for (int i = 0; i < n; i++) {
		fprintf(sf, "set label %d ", i + 1);
		gp_string(sf, runs[(int)pts[i][3]].label);
		fprintf(sf, " at first %f, first %f center offset 0,1.2 textcolor rgb '#555555'\n", pts[i][0], pts[i][2]);
	}
	fprintf(sf, "plot ");
	gp_string(sf, path);
	fprintf(sf, " using 1:2 with linespoints lw 2 pt 7 lc rgb '#4e79a7' title 'p50 (median)', \\\n     '' using 1:3 "
	            "with linespoints lw 2 pt 5 lc rgb '#e15759' title 'p99'\n");
	free(pts);
	return 0;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static int script_cdf(FILE *sf, struct work *w, const struct options *o, struct run *runs, int n)
{
	static const char *const colors[] = {"#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#9c755f", "#edc948"};
	char paths[REPORT_MAX_RUNS][512];

	for (int i = 0; i < n; i++) {
		struct stats_series *s = &runs[i].v[FLD_TOTAL];
		char name[32];
		FILE *df;
		if (s->n == 0) {
			log_warnx("%s: no instance reached running: no total_ms to plot", runs[i].path);
			return -EINVAL;
		}
		snprintf(name, sizeof name, "cdf%d.dat", i);
		if (!(df = work_open(w, name, paths[i], sizeof paths[i])))
			return -errno;
		qsort(s->v, s->n, sizeof *s->v, cmp_double);
		fprintf(df, "%.6f 0\n", s->v[0]);
		for (size_t k = 0; k < s->n; k++)
			fprintf(df, "%.6f %.6f\n", s->v[k], (double)(k + 1) / (double)s->n);
		if (work_close(df) < 0)
			return -EIO;
	}
	gp_header(sf, o, "Distribution of instantiation time (CDF)", 540);
	fprintf(sf, "set xlabel 'total instantiation time (ms)'\nset ylabel 'fraction of instantiations (cumulative)'\n");
	fprintf(sf, "set yrange [0:1.02]\nset ytics 0.1\nset key bottom right box\n");
	fprintf(sf, "plot ");
	for (int i = 0; i < n; i++) {
		char title[200];
		fprintf(sf, "%s", i ? ", \\\n     " : "");
		gp_string(sf, paths[i]);
		fprintf(sf, " using 1:2 with steps lw 2 lc rgb '%s' title ", colors[i % 8]);
		snprintf(title, sizeof title, "%s (n=%zu, p50 %.3f ms)", runs[i].label, runs[i].sum[FLD_TOTAL].n, runs[i].sum[FLD_TOTAL].p50);
		gp_string(sf, title);
	}
	fprintf(sf, "\n");
	return 0;
}

/* ---- running gnuplot ---- */

static int run_gnuplot(const char *gnuplot, const char *script, const char *errpath)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = {(char *)gnuplot, (char *)script, NULL};
	pid_t pid;
	int rc, status;

	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return -rc;
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_addopen(&fa, 1, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if (rc == 0)
		rc = strchr(gnuplot, '/') ? posix_spawn(&pid, gnuplot, &fa, NULL, argv, environ)
		                          : posix_spawnp(&pid, gnuplot, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		log_warnx("cannot run %s: %s (install gnuplot: scripts/install-deps)", gnuplot, strerror(rc));
		return -rc;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			log_warn("waitpid");
			return -errno;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		log_warnx("%s exited with status %d", gnuplot, WEXITSTATUS(status));
	else
		log_warnx("%s was killed by signal %d", gnuplot, WTERMSIG(status));
	return -EIO;
}

static void show_file(const char *path)
{
	char *text;
	size_t len;
	if (fs_read_file(path, 64 * 1024, &text, &len) == 0) {
		fprintf(stderr, "%s", text);
		free(text);
	}
}

/* ---- the command ---- */

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_KIND = 256, OPT_LABEL, OPT_RATE, OPT_TITLE, OPT_GNUPLOT };
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},     {"kind", required_argument, NULL, OPT_KIND},
		{"label", required_argument, NULL, OPT_LABEL}, {"rate", required_argument, NULL, OPT_RATE},
		{"title", required_argument, NULL, OPT_TITLE}, {"gnuplot", required_argument, NULL, OPT_GNUPLOT},
		{NULL, 0, NULL, 0},
	};
	int ch;
	char *end;

	*o = (struct options){.kind = KIND_PHASES, .gnuplot = getenv("MICROVIM_GNUPLOT")};
	if (!o->gnuplot || !*o->gnuplot)
		o->gnuplot = "gnuplot";
	optind = 0; /* 0: glibc re-initialises getopt (the command may run more than once in a process) */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o': o->out = optarg; break;
		case OPT_KIND:
			for (o->kind = 0; o->kind < sizeof kind_names / sizeof kind_names[0]; o->kind++)
				if (strcmp(optarg, kind_names[o->kind]) == 0)
					break;
			if (o->kind == sizeof kind_names / sizeof kind_names[0]) {
				fprintf(stderr, "report: --kind: phases, driver, latency or cdf\n");
				return -1;
			}
			break;
		case OPT_LABEL:
			if (o->n_labels == REPORT_MAX_RUNS || !*optarg) {
				fprintf(stderr, "report: --label: a non-empty name, at most %d\n", REPORT_MAX_RUNS);
				return -1;
			}
			o->labels[o->n_labels++] = optarg;
			break;
		case OPT_RATE: {
			double v = strtod(optarg, &end);
			if (*end || !(v > 0) || o->n_rates == REPORT_MAX_RUNS) {
				fprintf(stderr, "report: --rate: instantiations per second, > 0\n");
				return -1;
			}
			o->rates[o->n_rates++] = v;
			break;
		}
		case OPT_TITLE: o->title = optarg; break;
		case OPT_GNUPLOT: o->gnuplot = optarg; break;
		default:
			fprintf(stderr, "report: unknown or incomplete option %s\n", argv[optind - 1]);
			return -1;
		}
	}
	for (; optind < argc; optind++) {
		if (o->n_files == REPORT_MAX_RUNS) {
			fprintf(stderr, "report: at most %d files\n", REPORT_MAX_RUNS);
			return -1;
		}
		o->files[o->n_files++] = argv[optind];
	}
	if (o->n_files == 0 || !o->out) {
		fprintf(stderr, "report: give record FILEs and -o OUT.svg|OUT.png\n");
		return -1;
	}
	if (has_suffix(o->out, ".png"))
		o->png = true;
	else if (!has_suffix(o->out, ".svg")) {
		fprintf(stderr, "report: -o: the name must end in .svg or .png\n");
		return -1;
	}
	if (o->n_labels > o->n_files || o->n_rates > o->n_files) {
		fprintf(stderr, "report: more --label or --rate than files\n");
		return -1;
	}
	return 0;
}

static void default_label(const char *path, char *out, size_t n)
{
	const char *base = strrchr(path, '/'), *dot;
	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	snprintf(out, n, "%.*s", (int)(dot && dot != base ? (size_t)(dot - base) : strlen(base)), base);
}

int report_main(int argc, char **argv)
{
	struct options o;
	struct run *runs;
	struct work w = {.n_files = 0};
	char script[512], errpath[512], err[512];
	const char *tmp = getenv("TMPDIR");
	FILE *sf = NULL;
	struct stat st;
	int exit_code = REPORT_EXIT_FAILED, rc = 0;
	bool keep = false;

	log_set_tag("report");
	if (parse_options(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: microvim report FILE... -o OUT.svg|OUT.png [--kind phases|driver|latency|cdf] "
		                "[--label NAME ...] [--rate R ...]   (microvim report --help)\n");
		return REPORT_EXIT_USAGE;
	}
	if (!(runs = calloc((size_t)o.n_files, sizeof *runs)))
		fatal("out of memory");
	for (int i = 0; i < o.n_files; i++) {
		runs[i].path = o.files[i];
		runs[i].rate = i < o.n_rates ? o.rates[i] : NAN;
		if (i < o.n_labels)
			snprintf(runs[i].label, sizeof runs[i].label, "%s", o.labels[i]);
		else
			default_label(o.files[i], runs[i].label, sizeof runs[i].label);
		if (run_load(&runs[i], err, sizeof err) < 0) {
			log_warnx("%s", err);
			goto out;
		}
	}
	snprintf(w.dir, sizeof w.dir, "%s/microvim-report-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(w.dir)) {
		log_warn("mkdtemp %s", w.dir);
		w.dir[0] = '\0';
		goto out;
	}
	if (!(sf = work_open(&w, "plot.gp", script, sizeof script))) {
		log_warn("cannot write the gnuplot script in %s", w.dir);
		goto out;
	}
	switch (o.kind) {
	case KIND_DRIVER: /* the same stacked bars, of the steps */
		for (int i = 0; i < o.n_files; i++)
			runs[i].set = SET_STEPS;
		rc = script_phases(sf, &w, &o, runs, o.n_files);
		break;
	case KIND_PHASES: rc = script_phases(sf, &w, &o, runs, o.n_files); break;
	case KIND_LATENCY: rc = script_latency(sf, &w, &o, runs, o.n_files); break;
	case KIND_CDF: rc = script_cdf(sf, &w, &o, runs, o.n_files); break;
	}
	if (work_close(sf) < 0 && rc == 0)
		rc = -EIO;
	sf = NULL;
	if (rc < 0) {
		if (rc != -EINVAL)
			log_warnx("cannot write the plot's data in %s: %s", w.dir, strerror(-rc));
		goto out;
	}
	snprintf(errpath, sizeof errpath, "%s/gnuplot.log", w.dir);
	w.files[w.n_files++] = strdup(errpath);
	if (run_gnuplot(o.gnuplot, script, errpath) < 0) {
		show_file(errpath);
		keep = true;
		goto out;
	}
	if (stat(o.out, &st) < 0 || st.st_size == 0) {
		log_warnx("gnuplot exited 0 but %s is %s", o.out, errno == ENOENT ? "missing" : "empty");
		show_file(errpath);
		keep = true;
		goto out;
	}
	printf("report: %s (%s, %d run%s)\n", o.out, kind_names[o.kind], o.n_files, o.n_files == 1 ? "" : "s");
	exit_code = REPORT_EXIT_OK;
out:
	if (sf)
		fclose(sf);
	if (keep)
		log_warnx("the script and data are kept in %s (gnuplot %s)", w.dir, script);
	for (int i = 0; i < w.n_files; i++) {
		if (!keep && w.files[i])
			unlink(w.files[i]);
		free(w.files[i]);
	}
	if (!keep && w.dir[0])
		rmdir(w.dir);
	for (int i = 0; i < o.n_files; i++)
		run_free(&runs[i]);
	free(runs);
	return exit_code;
}
