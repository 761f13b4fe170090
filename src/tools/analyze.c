/* analyze — see analyze.h. Exchanges come in as their answers complete (pcapread), in
 * whatever order: an instance's assignment and report usually come before its create,
 * whose answer waited for them. Everything is kept per instance id and the records are
 * derived at the end. */
#include "tools/analyze.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h> /* NAN, isnan: macros only */
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/trace.h"
#include "tools/analyze_nova.h"
#include "tools/stats.h"

#define ANALYZE_SNAPLEN 262144
#define ANALYZE_BUFFER_BYTES (64 * 1024 * 1024)

enum wait_kind { WAIT_NONE, WAIT_RUNNING, WAIT_READY };

/* What the capture showed of one instance. Times in ns; 0 = not seen. */
struct inst {
	char id[72];
	size_t order; /* creates in the order they were answered, refusals included */
	bool has_create, answered;
	enum wait_kind wait;
	int64_t req_first, req_last, ans_first, ans_last;
	int status;
	char state[24], error[256];
	int64_t assign_first, assign_last;
	/* the first "running" report, and the first "ready" one */
	int64_t run_first, run_last, ready_first, ready_last;
	struct node_timing run_timing, ready_timing;
	bool run_has_timing, ready_has_timing;
	char report_state[24]; /* the last state a report gave */
};

struct analyze {
	struct hmap by_id;
	struct inst **all; /* every inst, also refused creates (id "") */
	size_t n, cap;
	size_t creates, duplicate_creates;
};

struct analyze *analyze_new(void)
{
	struct analyze *a = calloc(1, sizeof *a);
	if (a)
		hmap_init(&a->by_id);
	return a;
}

void analyze_free(struct analyze *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->all[i]);
	free(a->all);
	hmap_free(&a->by_id);
	free(a);
}

static struct inst *inst_add(struct analyze *a, const char *id)
{
	struct inst *in;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		struct inst **v = realloc(a->all, cap * sizeof *v);
		if (!v)
			return NULL;
		a->all = v;
		a->cap = cap;
	}
	if (!(in = calloc(1, sizeof *in)))
		return NULL;
	snprintf(in->id, sizeof in->id, "%s", id);
	a->all[a->n++] = in;
	if (in->id[0])
		hmap_put(&a->by_id, in->id, in);
	return in;
}

static struct inst *inst_get(struct analyze *a, const char *id)
{
	struct inst *in;
	if (!id || !*id || strlen(id) >= sizeof in->id)
		return NULL;
	if ((in = hmap_get(&a->by_id, id)))
		return in;
	return inst_add(a, id);
}

/* ---- classifying exchanges ---- */

/* The path of a request target, without its query: "/v1/instances". */
static bool path_is(const char *target, const char *path)
{
	size_t n = strlen(path);
	return strncmp(target, path, n) == 0 && (target[n] == '\0' || target[n] == '?');
}

/* "/v1/nodes/{id}/SUFFIX" (with or without a query). */
static bool node_path(const char *target, const char *suffix)
{
	const char *p, *slash;
	size_t n = strlen(suffix);
	if (strncmp(target, "/v1/nodes/", 10) != 0)
		return false;
	p = target + 10;
	if (!(slash = strchr(p, '/')) || slash == p)
		return false;
	return strncmp(slash + 1, suffix, n) == 0 && (slash[1 + n] == '\0' || slash[1 + n] == '?');
}

static enum wait_kind wait_of(const char *target)
{
	const char *q = strchr(target, '?');
	while (q) {
		q++;
		if (strncmp(q, "wait=running", 12) == 0 && (q[12] == '&' || q[12] == '\0'))
			return WAIT_RUNNING;
		if (strncmp(q, "wait=ready", 10) == 0 && (q[10] == '&' || q[10] == '\0'))
			return WAIT_READY;
		q = strchr(q, '&');
	}
	return WAIT_NONE;
}

static json_t *body_json(const struct http_message *m)
{
	if (!m || !m->body || m->body_len == 0 || m->body_truncated)
		return NULL;
	return json_loadb((const char *)m->body, m->body_len, 0, NULL);
}

static void create_answered(struct analyze *a, const struct http_exchange *x)
{
	const struct http_message *req = x->request, *resp = x->response;
	json_t *b = body_json(resp), *list;
	enum wait_kind wait = wait_of(req->target);
	size_t k;

	a->creates++;
	if (!resp || resp->status < 200 || resp->status > 299) {
		struct inst *in = inst_add(a, "");
		const json_t *e = json_object_get(b, "error");
		if (!in)
			goto out;
		in->order = a->creates;
		in->has_create = true;
		in->wait = wait;
		in->req_first = req->first_ns;
		in->req_last = req->last_ns;
		snprintf(in->state, sizeof in->state, "error");
		if (resp) {
			in->answered = true;
			in->status = resp->status;
			in->ans_first = resp->first_ns;
			in->ans_last = resp->last_ns;
			snprintf(in->error, sizeof in->error, "HTTP %d %s: %s", resp->status,
			         json_string_value(json_object_get(e, "code")) ?: "error",
			         json_string_value(json_object_get(e, "message")) ?: "(no message)");
		} else {
			snprintf(in->error, sizeof in->error, "no answer in the capture");
		}
		goto out;
	}
	list = json_object_get(b, "instances");
	for (k = 0; k < (json_is_array(list) ? json_array_size(list) : 1); k++) {
		const json_t *inst = json_is_array(list) ? json_array_get(list, k) : b;
		struct inst *in = inst_get(a, json_string_value(json_object_get(inst, "id")));
		if (!in)
			continue;
		if (in->has_create) { /* an idempotent retry: the first create counts */
			a->duplicate_creates++;
			continue;
		}
		in->order = a->creates;
		in->has_create = in->answered = true;
		in->wait = wait;
		in->status = resp->status;
		in->req_first = req->first_ns;
		in->req_last = req->last_ns;
		in->ans_first = resp->first_ns;
		in->ans_last = resp->last_ns;
		snprintf(in->state, sizeof in->state, "%s", json_string_value(json_object_get(inst, "state")) ?: "");
		snprintf(in->error, sizeof in->error, "%s", json_string_value(json_object_get(inst, "error")) ?: "");
	}
out:
	json_decref(b);
}

static void assignments(struct analyze *a, const struct http_message *resp, const json_t *b)
{
	const json_t *list = json_object_get(b, "assignments"), *as;
	size_t k;
	json_array_foreach(list, k, as) {
		const json_t *op = json_object_get(as, "op");
		struct inst *in;
		if (!json_is_string(op) || strcmp(json_string_value(op), "start") != 0)
			continue;
		in = inst_get(a, json_string_value(json_object_get(json_object_get(as, "instance"), "id")));
		if (!in || in->assign_first) /* re-sent until acknowledged: the first counts */
			continue;
		in->assign_first = resp->first_ns;
		in->assign_last = resp->last_ns;
	}
}

static void reports(struct analyze *a, const struct http_message *req)
{
	json_t *b = body_json(req), *rep;
	size_t k;
	json_array_foreach(json_object_get(b, "reports"), k, rep) {
		struct inst *in = inst_get(a, json_string_value(json_object_get(rep, "id")));
		const char *state = json_string_value(json_object_get(rep, "state"));
		struct node_timing t;
		bool has_timing;
		if (!in || !state)
			continue;
		snprintf(in->report_state, sizeof in->report_state, "%s", state);
		if (strcmp(state, "running") != 0)
			continue;
		has_timing = node_timing_from_json(&t, json_object_get(rep, "timing")) == 0;
		if (!in->run_first) {
			in->run_first = req->first_ns;
			in->run_last = req->last_ns;
			in->run_timing = t;
			in->run_has_timing = has_timing;
		}
		if (json_is_true(json_object_get(rep, "ready")) && !in->ready_first) {
			in->ready_first = req->first_ns;
			in->ready_last = req->last_ns;
			in->ready_timing = t;
			in->ready_has_timing = has_timing;
		}
	}
	json_decref(b);
}

void analyze_exchange(const struct http_exchange *x, void *arg)
{
	struct analyze *a = arg;
	const struct http_message *req = x->request, *resp = x->response;

	if (req && strcmp(req->method, "POST") == 0 && path_is(req->target, "/v1/instances")) {
		create_answered(a, x);
	} else if (req && strcmp(req->method, "POST") == 0 && node_path(req->target, "reports")) {
		reports(a, req);
	} else if (resp && resp->status == 200 && (!req || (strcmp(req->method, "GET") == 0 && node_path(req->target, "assignments")))) {
		/* without its request (the poll began before the capture): known by its body */
		json_t *b = body_json(resp);
		if (json_is_array(json_object_get(b, "assignments")))
			assignments(a, resp, b);
		json_decref(b);
	}
}

/* ---- records ---- */

static double ms(int64_t from_ns, int64_t to_ns)
{
	if (!from_ns || !to_ns)
		return NAN;
	return (double)(to_ns - from_ns) / 1e6;
}

static int cmp_order(const void *x, const void *y)
{
	const struct inst *a = *(struct inst *const *)x, *b = *(struct inst *const *)y;
	if (a->req_first != b->req_first)
		return a->req_first < b->req_first ? -1 : 1;
	return (a->order > b->order) - (a->order < b->order);
}

static void derive(const struct inst *in, int64_t t0, struct analyze_record *out)
{
	struct record *r = &out->rec;
	bool ready = in->wait == WAIT_READY;
	int64_t rep_first = ready ? in->ready_first : in->run_first, rep_last = ready ? in->ready_last : in->run_last;
	const struct node_timing *t = ready ? &in->ready_timing : &in->run_timing;
	bool has_timing = ready ? in->ready_has_timing : in->run_has_timing;

	record_init(r);
	out->core_ms = out->node_ms = out->notify_ms = out->node_work_ms = NAN;
	snprintf(r->id, sizeof r->id, "%s", in->id);
	r->intended_send_us = r->actual_send_us = (in->req_first - t0) / 1000;
	if (has_timing) {
		r->phase_ms[PHASE_PREPARE] = (double)t->prepare_us / 1000.0;
		r->phase_ms[PHASE_NETWORK] = (double)t->network_us / 1000.0;
		r->phase_ms[PHASE_SPAWN] = (double)t->spawn_us / 1000.0;
		if (t->boot_us > 0)
			r->phase_ms[PHASE_BOOT] = (double)t->boot_us / 1000.0;
		out->node_work_ms = (double)t->work_us / 1000.0;
	}
	out->core_ms = ms(in->req_last, in->assign_first);
	out->node_ms = ms(in->assign_last, rep_first);
	if (in->wait != WAIT_NONE && in->answered && in->status / 100 == 2) {
		out->notify_ms = rep_last ? ms(rep_last, in->ans_first) : NAN;
		r->total_ms = ms(in->req_first, in->ans_last);
		r->core_total_ms = ms(in->req_last, in->ans_first);
		if (!isnan(r->phase_ms[PHASE_SPAWN]))
			r->overhead_ms = r->total_ms - r->phase_ms[PHASE_SPAWN] -
			                 (isnan(r->phase_ms[PHASE_BOOT]) ? 0 : r->phase_ms[PHASE_BOOT]);
	}
	if (in->wait == WAIT_NONE && in->report_state[0] && in->status / 100 == 2)
		snprintf(r->state, sizeof r->state, "%s", in->report_state);
	else
		snprintf(r->state, sizeof r->state, "%s", in->state);
	snprintf(r->error, sizeof r->error, "%s", in->error);
}

int analyze_records(const struct analyze *a, struct analyze_record **out, size_t *n)
{
	struct inst **v;
	size_t k = 0;
	int64_t t0 = 0;

	*out = NULL;
	*n = 0;
	if (!(v = malloc((a->n ? a->n : 1) * sizeof *v)))
		return -ENOMEM;
	for (size_t i = 0; i < a->n; i++)
		if (a->all[i]->has_create)
			v[k++] = a->all[i];
	qsort(v, k, sizeof *v, cmp_order);
	if (k > 0)
		t0 = v[0]->req_first;
	if (!(*out = calloc(k ? k : 1, sizeof **out))) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++)
		derive(v[i], t0, &(*out)[i]);
	*n = k;
	free(v);
	return 0;
}

/* ---- writing ---- */

static const char *const wire_names[4] = {"core_ms", "node_ms", "notify_ms", "node_work_ms"};

static int write_row(FILE *f, enum record_format fmt, size_t i, const void *rows)
{
	const struct analyze_record *ar = (const struct analyze_record *)rows + i;
	const struct record *r = &ar->rec;
	const double wire[4] = {ar->core_ms, ar->node_ms, ar->notify_ms, ar->node_work_ms};
	if (fmt == RECORD_JSONL) {
		json_t *o = record_json_head(r);
		for (int w = 0; w < 4; w++)
			json_object_set_new(o, wire_names[w], record_json_ms(wire[w]));
		return record_json_finish(f, o, r);
	}
	record_csv_string(f, r->id);
	fprintf(f, ",%lld,%lld", (long long)r->intended_send_us, (long long)r->actual_send_us);
	for (int p = 0; p < PHASE_COUNT; p++) {
		fputc(',', f);
		record_csv_number(f, r->phase_ms[p]);
	}
	for (int w = 0; w < 4; w++) {
		fputc(',', f);
		record_csv_number(f, wire[w]);
	}
	fputc(',', f);
	record_csv_number(f, r->total_ms);
	fputc(',', f);
	record_csv_number(f, r->core_total_ms);
	fputc(',', f);
	record_csv_number(f, r->overhead_ms);
	fputc(',', f);
	record_csv_string(f, r->state);
	fputc(',', f);
	record_csv_string(f, r->error);
	fputc('\n', f);
	return 0;
}

static void write_header(FILE *f, UNUSED const void *rows)
{
	fprintf(f, "id,intended_send_us,actual_send_us");
	for (int p = 0; p < PHASE_COUNT; p++)
		fprintf(f, ",%s", phase_names[p]);
	fprintf(f, ",core_ms,node_ms,notify_ms,node_work_ms,total_ms,core_total_ms,overhead_ms,state,error\n");
}

int analyze_write(const char *path, const struct analyze_record *v, size_t n)
{
	return record_file_write(path, write_header, write_row, n, v);
}

/* ---- the command ---- */


static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig UNUSED) { stop_requested = 1; }

struct live {
	struct pcapread *reader;
	pcap_dumper_t *dump;
	int linktype;
};

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
	struct live *l = (struct live *)user;
	if (l->dump)
		pcap_dump((u_char *)l->dump, h, data);
	pcapread_frame(l->reader, l->linktype, (int64_t)h->ts.tv_sec * 1000000000 + (int64_t)h->ts.tv_usec, data, h->caplen);
}

static int capture(const struct analyze_capture *o, const char *filter, struct pcapread *reader)
{
	char errbuf[PCAP_ERRBUF_SIZE] = "";
	struct bpf_program prog;
	struct live l = {.reader = reader};
	struct sigaction sa = {.sa_handler = on_stop_signal}, old_int, old_term;
	struct pcap_stat ps;
	int64_t deadline = o->duration > 0 ? clock_mono_us() + (int64_t)(o->duration * 1e6) : 0;
	pcap_t *pc;
	int fd, rc = -1;

	if (!(pc = pcap_create(o->iface, errbuf))) {
		log_warnx("capture on %s: %s", o->iface, errbuf);
		return -1;
	}
	pcap_set_snaplen(pc, ANALYZE_SNAPLEN);
	pcap_set_promisc(pc, 0);
	pcap_set_immediate_mode(pc, 1);
	pcap_set_buffer_size(pc, ANALYZE_BUFFER_BYTES);
	pcap_set_tstamp_precision(pc, PCAP_TSTAMP_PRECISION_NANO);
	if ((rc = pcap_activate(pc)) < 0) {
		log_warnx("capture on %s: %s%s", o->iface, pcap_geterr(pc),
		          rc == PCAP_ERROR_PERM_DENIED ? " (live capture needs root or CAP_NET_RAW)" : "");
		rc = -1;
		goto out;
	}
	rc = -1;
	l.linktype = pcap_datalink(pc);
	if (!pcapread_linktype_supported(l.linktype)) {
		log_warnx("capture on %s: link type %s is not supported", o->iface, pcap_datalink_val_to_name(l.linktype) ?: "?");
		goto out;
	}
	if (pcap_compile(pc, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0 || pcap_setfilter(pc, &prog) < 0) {
		log_warnx("capture filter \"%s\": %s", filter, pcap_geterr(pc));
		goto out;
	}
	pcap_freecode(&prog);
	if (o->write && !(l.dump = pcap_dump_open(pc, o->write))) {
		log_warnx("cannot write %s: %s", o->write, pcap_geterr(pc));
		goto out;
	}
	if (pcap_setnonblock(pc, 1, errbuf) < 0 || (fd = pcap_get_selectable_fd(pc)) < 0) {
		log_warnx("capture on %s: no pollable descriptor", o->iface);
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	fprintf(stderr, "analyze: capturing on %s, %s%s\n", o->iface, filter, deadline ? "" : " (until SIGINT or SIGTERM)");
	while (!stop_requested) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t now = clock_mono_us();
		int wait_ms = 100;
		if (deadline) {
			if (now >= deadline)
				break;
			if ((deadline - now) / 1000 < wait_ms)
				wait_ms = (int)((deadline - now) / 1000) + 1;
		}
		if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
			log_warn("poll");
			break;
		}
		if (pcap_dispatch(pc, -1, on_packet, (u_char *)&l) == PCAP_ERROR) {
			log_warnx("capture on %s: %s", o->iface, pcap_geterr(pc));
			goto restore;
		}
	}
	/* what the kernel still holds */
	while (pcap_dispatch(pc, -1, on_packet, (u_char *)&l) > 0)
		;
	if (pcap_stats(pc, &ps) == 0 && ps.ps_drop > 0)
		log_warnx("the kernel dropped %u packets: the analysis misses them", ps.ps_drop);
	rc = 0;
restore:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
out:
	if (l.dump) {
		if (pcap_dump_flush(l.dump) < 0) {
			log_warnx("cannot write %s", o->write);
			rc = -1;
		}
		pcap_dump_close(l.dump);
	}
	pcap_close(pc);
	pcapread_finish(reader);
	return rc;
}

static void summary(FILE *out, const struct analyze *a, const struct pcapread_stats *st,
                    const struct analyze_record *v, size_t n)
{
	struct stats_series s[5] = {{0}};
	static const char *const labels[5] = {"core", "node", "notify", "total", "overhead"};
	size_t running = 0, refused = 0;

	fprintf(out, "capture: %llu frames, %llu segments of the port, %llu connections, %llu requests, %llu responses\n",
	        (unsigned long long)st->frames, (unsigned long long)st->segments, (unsigned long long)st->connections,
	        (unsigned long long)st->requests, (unsigned long long)st->responses);
	fprintf(out, "tcp:     %llu retransmitted, %llu out of order, %llu bytes lost, %llu bytes skipped; "
	             "http: %llu parse errors, %llu incomplete\n",
	        (unsigned long long)st->retransmitted, (unsigned long long)st->out_of_order,
	        (unsigned long long)st->lost_bytes, (unsigned long long)st->skipped_bytes,
	        (unsigned long long)st->parse_errors, (unsigned long long)st->incomplete);
	for (size_t i = 0; i < n; i++) {
		const struct analyze_record *r = &v[i];
		const double x[5] = {r->core_ms, r->node_ms, r->notify_ms, r->rec.total_ms, r->rec.overhead_ms};
		if (strcmp(r->rec.state, "running") == 0)
			running++;
		if (strcmp(r->rec.state, "error") == 0)
			refused++;
		for (int k = 0; k < 5; k++)
			if (stats_add(&s[k], x[k]) < 0)
				fatal("out of memory");
	}
	fprintf(out, "instances: %zu created in the capture (%zu running, %zu refused or unanswered)%s\n", n, running,
	        refused, a->duplicate_creates ? ", some created twice (idempotent retries)" : "");
	fprintf(out, "wire phases (ms): core = request -> assignment, node = assignment -> report, "
	             "notify = report -> answer\n");
	stats_print_header(out);
	for (int k = 0; k < 5; k++) {
		struct stats_summary sum;
		if (stats_summarize(s[k].v, s[k].n, &sum) < 0)
			fatal("out of memory");
		stats_print_row(out, labels[k], &sum);
		stats_series_free(&s[k]);
	}
}

int analyze_feed(const struct analyze_input *in, const char *filter, struct pcapread *reader)
{
	char err[512];
	int rc;
	if (!in->file)
		return capture(&in->cap, filter, reader);
	rc = pcapread_file(reader, in->file, err, sizeof err);
	if (rc == -EINVAL) {
		log_warnx("%s", err);
		return -1;
	}
	if (rc < 0) /* damaged or cut short: what came before still counts */
		log_warnx("%s (analysing what came before)", err);
	return 0;
}

static int run_microvim(const struct analyze_job *job)
{
	struct analyze *a;
	struct pcapread *reader;
	struct analyze_record *recs = NULL;
	char filter[32];
	size_t n = 0;
	int rc, exit_code = ANALYZE_EXIT_OK;

	if (job->ports || job->events) {
		fprintf(stderr, "analyze: --ports and --events go with --vim nova (microvim: --port)\n");
		return ANALYZE_EXIT_USAGE;
	}
	if (!(a = analyze_new()) || !(reader = pcapread_new((uint16_t)job->port, analyze_exchange, a)))
		fatal("out of memory");
	snprintf(filter, sizeof filter, "tcp port %d", job->port);
	if (analyze_feed(&job->in, filter, reader) < 0) {
		exit_code = ANALYZE_EXIT_FAILED;
		goto out;
	}
	if (analyze_records(a, &recs, &n) < 0)
		fatal("out of memory");
	if (job->out && (rc = analyze_write(job->out, recs, n)) < 0) {
		log_warnx("cannot write %s: %s", job->out, strerror(-rc));
		exit_code = ANALYZE_EXIT_FAILED;
	}
	if (!job->quiet)
		summary(stdout, a, pcapread_get_stats(reader), recs, n);
out:
	free(recs);
	pcapread_free(reader);
	analyze_free(a);
	return exit_code;
}

/* The VIMs whose messages analyze knows: one row each. */
static const struct {
	const char *name;
	int (*run)(const struct analyze_job *job);
} vims[] = {
	{"microvim", run_microvim},
	{"nova", analyze_nova_run},
};

static int parse_options(int argc, char **argv, struct analyze_job *o, const char **vim)
{
	enum { OPT_PORT = 256, OPT_IFACE, OPT_DURATION, OPT_OUT, OPT_WRITE, OPT_VIM, OPT_PORTS, OPT_EVENTS };
	static const struct option longopts[] = {
		{"port", required_argument, NULL, OPT_PORT},         {"iface", required_argument, NULL, OPT_IFACE},
		{"duration", required_argument, NULL, OPT_DURATION}, {"out", required_argument, NULL, OPT_OUT},
		{"write", required_argument, NULL, OPT_WRITE},       {"quiet", no_argument, NULL, 'q'},
		{"vim", required_argument, NULL, OPT_VIM},           {"ports", required_argument, NULL, OPT_PORTS},
		{"events", no_argument, NULL, OPT_EVENTS},           {NULL, 0, NULL, 0},
	};
	int ch;
	char *end;
	enum record_format fmt;

	*o = (struct analyze_job){.port = ANALYZE_DEFAULT_PORT};
	*vim = "microvim";
	optind = 0; /* 0: glibc re-initialises getopt (the command may run more than once in a process) */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "q", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_PORT: {
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 65535) {
				fprintf(stderr, "analyze: --port: a TCP port, 1..65535\n");
				return -1;
			}
			o->port = (int)v;
			break;
		}
		case OPT_IFACE: o->in.cap.iface = optarg; break;
		case OPT_DURATION:
			o->in.cap.duration = strtod(optarg, &end);
			if (*end || !(o->in.cap.duration > 0) || o->in.cap.duration > 86400) {
				fprintf(stderr, "analyze: --duration: seconds, > 0\n");
				return -1;
			}
			break;
		case OPT_OUT:
			if (record_format_of(optarg, &fmt) < 0) {
				fprintf(stderr, "analyze: --out: the name must end in .jsonl or .csv\n");
				return -1;
			}
			o->out = optarg;
			break;
		case OPT_WRITE: o->in.cap.write = optarg; break;
		case OPT_VIM: *vim = optarg; break;
		case OPT_PORTS: o->ports = optarg; break;
		case OPT_EVENTS: o->events = true; break;
		case 'q': o->quiet = true; break;
		default:
			fprintf(stderr, "analyze: unknown or incomplete option %s\n", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc)
		o->in.file = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "analyze: one capture file at a time\n");
		return -1;
	}
	if (!o->in.file == !o->in.cap.iface) {
		fprintf(stderr, "analyze: give a capture FILE or --iface IFACE (one of them)\n");
		return -1;
	}
	if (o->in.file && (o->in.cap.write || o->in.cap.duration > 0)) {
		fprintf(stderr, "analyze: --write and --duration go with --iface\n");
		return -1;
	}
	return 0;
}

int analyze_main(int argc, char **argv)
{
	struct analyze_job job;
	const char *vim;

	log_set_tag("analyze");
	if (parse_options(argc, argv, &job, &vim) < 0) {
		fprintf(stderr, "usage: microvim analyze FILE.pcap [--vim microvim|nova] [--port P | --ports LIST] [--out FILE] "
		                "| --iface IFACE [--duration S] [--write FILE.pcap] ...   (microvim analyze --help)\n");
		return ANALYZE_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof vims / sizeof vims[0]; i++)
		if (strcmp(vims[i].name, vim) == 0)
			return vims[i].run(&job);
	fprintf(stderr, "analyze: --vim %s: not a VIM analyze knows (microvim, nova)\n", vim);
	return ANALYZE_EXIT_USAGE;
}
