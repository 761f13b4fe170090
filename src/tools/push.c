/* push — see push.h. One event loop; each request in flight owns one keep-alive
 * connection taken from a pool; a job is one instance's life: create -> (get) ->
 * (stop -> purge). */
#include "tools/push.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "common/model.h"
#include "common/tls.h"
#include "common/trace.h"
#include "tools/push_target.h"
#include "tools/record.h"
#include "tools/stats.h"

#define PUSH_OPEN_LOOP_INFLIGHT 256 /* default cap on requests in flight in the open loop */
#define PUSH_DEFAULT_POLL_MS 10

/* The APIs push speaks: one row each (push_target.h). */
static const struct push_target *const targets[] = {&push_target_microvim, &push_target_openstack};

struct push;

struct job {
	struct push_job pub; /* what the target sees */
	struct push *p;
	struct evhttp_connection *conn;
	unsigned conn_gen;       /* the endpoint conn goes to (push.ep_gen when it was made) */
	push_reply_fn reply_fn;  /* the request in flight */
	push_timer_fn timer_fn;  /* the wait in progress */
	struct job *next; /* ready queue (open loop) */
};

#define JOB_OF(pj) ((struct job *)((char *)(pj) - offsetof(struct job, pub)))

/* The instances that did not reach running, grouped by error code, one example each. */
struct error_group {
	char code[48];
	size_t count;
	char example[256];
};

struct series {
	struct stats_series phase[PHASE_COUNT];
	struct stats_series total, overhead, core_total, core_overhead;
};

struct push {
	struct push_options o;
	struct push_endpoint ep;
	unsigned ep_gen; /* push_endpoint_move()s so far */
	void *target_state;
	bool target_open;
	char hostport[300], run_tag[8];
	struct event_base *base;
	struct event *arrival_timer, *progress_timer, *sigint;
	struct record_writer out;
	bool have_out;

	/* connections not in use */
	struct evhttp_connection **idle;
	size_t n_idle, cap_idle;
	struct evhttp_connection **retired; /* to endpoints left behind (conn_retire) */
	size_t n_retired;

	/* open loop: due instants (µs after start) and the requests waiting for a connection */
	int64_t *schedule;
	size_t n_schedule, next_arrival;
	struct job *ready_head, *ready_tail;

	int64_t start_us, last_running_us;
	size_t launched, creating, deleting, finished_create, done;
	size_t n_running, n_errors, n_delete_errors;
	size_t total_jobs; /* known in advance in every mode */
	bool stopping;
	struct series s;
	struct error_group *groups; /* in order of first appearance */
	size_t n_groups;
};

/* ---- small helpers ---- */

static void out_of_memory(void) { fatal("out of memory"); }

static double ms_between(int64_t from_us, int64_t to_us) { return (double)(to_us - from_us) / 1000.0; }

/* xorshift64*: a seeded PRNG so an open-loop schedule can be reproduced (--seed). */
static double uniform01(unsigned long long *state)
{
	unsigned long long x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0; /* [0, 1) */
}

/* ---- connections ---- */

static struct evhttp_connection *conn_get(struct push *p)
{
	struct evhttp_connection *c;
	if (p->n_idle > 0)
		return p->idle[--p->n_idle];
	c = tls_http_connection(p->base, p->ep.tls, p->ep.host, p->ep.port);
	if (!c)
		return NULL;
	/* longer than any wait the core is asked for: it answers those itself */
	evhttp_connection_set_timeout_tv(
		c, &(struct timeval){.tv_sec = (time_t)(p->o.timeout > PUSH_STOP_TIMEOUT_S ? p->o.timeout : PUSH_STOP_TIMEOUT_S) + 15});
	evhttp_connection_set_retries(c, 0);
	return c;
}

/* A connection to an endpoint left behind (a failover): kept unused and freed at the end,
 * never now (this may run inside a callback of one of its own requests). Few: at most one
 * per request in flight and move. */
static void conn_retire(struct push *p, struct evhttp_connection *c)
{
	struct evhttp_connection **v;
	if (!(v = realloc(p->retired, (p->n_retired + 1) * sizeof *v)))
		out_of_memory();
	p->retired = v;
	p->retired[p->n_retired++] = c;
}

static void conn_put(struct push *p, struct evhttp_connection *c, unsigned gen)
{
	if (gen != p->ep_gen) {
		conn_retire(p, c);
		return;
	}
	if (p->n_idle == p->cap_idle) {
		size_t cap = p->cap_idle ? p->cap_idle * 2 : 64;
		struct evhttp_connection **v = realloc(p->idle, cap * sizeof *v);
		if (!v)
			out_of_memory();
		p->idle = v;
		p->cap_idle = cap;
	}
	p->idle[p->n_idle++] = c;
}

/* ---- the life of a job ---- */

static void pump(struct push *p);
static void on_reply(struct evhttp_request *req, void *arg);
static void job_send_failed(evutil_socket_t fd, short what, void *arg);

static int send_request(struct job *j, enum evhttp_cmd_type cmd, const char *path, const char *body)
{
	struct push *p = j->p;
	struct evhttp_request *req;
	struct evkeyvalq *hdr;

	if (j->conn && j->conn_gen != p->ep_gen) {
		conn_retire(p, j->conn);
		j->conn = NULL;
	}
	if (!j->conn && !(j->conn = conn_get(p)))
		return -1;
	j->conn_gen = j->pub.endpoint_gen = p->ep_gen;
	if (!(req = evhttp_request_new(on_reply, j)))
		return -1;
	hdr = evhttp_request_get_output_headers(req);
	evhttp_add_header(hdr, "Host", p->hostport);
	for (int i = 0; i < p->ep.n_headers; i++)
		evhttp_add_header(hdr, p->ep.headers[i][0], p->ep.headers[i][1]);
	if (j->pub.idempotency_key[0])
		evhttp_add_header(hdr, "Idempotency-Key", j->pub.idempotency_key);
	if (body) {
		evhttp_add_header(hdr, "Content-Type", "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	}
	/* on failure libevent has already freed req */
	return evhttp_make_request(j->conn, req, cmd, path) < 0 ? -1 : 0;
}

static enum evhttp_cmd_type method_of(const char *method)
{
	if (strcmp(method, "POST") == 0)
		return EVHTTP_REQ_POST;
	if (strcmp(method, "DELETE") == 0)
		return EVHTTP_REQ_DELETE;
	if (strcmp(method, "PUT") == 0)
		return EVHTTP_REQ_PUT;
	return EVHTTP_REQ_GET;
}

/* When the request cannot even be sent, its failure is handled on the next loop turn
 * (never recursively from here). */
void push_job_send(struct push_job *pj, const char *method, const char *path, const char *body, push_reply_fn fn)
{
	struct job *j = JOB_OF(pj);
	j->reply_fn = fn;
	if (send_request(j, method_of(method), path, body) < 0 &&
	    event_base_once(j->p->base, -1, EV_TIMEOUT, job_send_failed, j, &(struct timeval){0}) < 0)
		fatalx("cannot schedule an event");
}

int push_endpoint_move(struct push_job *pj, const char *url)
{
	struct push *p = JOB_OF(pj)->p;
	char host[sizeof p->ep.host];
	int port;
	if (http_parse_url(url, host, sizeof host, &port) < 0 || http_url_is_tls(url) != (p->ep.tls != NULL))
		return -1;
	snprintf(p->ep.host, sizeof p->ep.host, "%s", host);
	p->ep.port = port;
	snprintf(p->hostport, sizeof p->hostport, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	while (p->n_idle > 0)
		conn_retire(p, p->idle[--p->n_idle]);
	return (int)++p->ep_gen;
}

static void on_job_timer(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct job *j = arg;
	push_timer_fn fn = j->timer_fn;
	j->timer_fn = NULL;
	fn(&j->pub, j->p->target_state);
}

void push_job_later(struct push_job *pj, int64_t delay_us, push_timer_fn fn)
{
	struct job *j = JOB_OF(pj);
	struct timeval tv = {.tv_sec = delay_us / 1000000, .tv_usec = delay_us % 1000000};
	j->timer_fn = fn;
	if (event_base_once(j->p->base, -1, EV_TIMEOUT, on_job_timer, j, &tv) < 0)
		fatalx("cannot schedule an event");
}

void push_job_reached(struct push_job *pj)
{
	struct job *j = JOB_OF(pj);
	int64_t now = clock_mono_us();
	pj->rec.total_ms = ms_between(pj->intended_us, now);
	pj->running = true;
	j->p->last_running_us = now;
}

void push_job_failed(struct push_job *pj, const char *code, const char *fmt, ...)
{
	va_list ap;
	pj->running = false;
	snprintf(pj->error_code, sizeof pj->error_code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(pj->rec.error, sizeof pj->rec.error, fmt, ap); /* a long message is cut: it is a record field */
	va_end(ap);
}

static void job_free(struct job *j)
{
	struct push *p = j->p;
	if (j->conn)
		conn_put(p, j->conn, j->conn_gen);
	free(j);
	p->done++;
}

static void count_error(struct push *p, const struct job *j)
{
	struct error_group *g;
	for (size_t i = 0; i < p->n_groups; i++) {
		if (strcmp(p->groups[i].code, j->pub.error_code) == 0) {
			p->groups[i].count++;
			return;
		}
	}
	if (!(g = realloc(p->groups, (p->n_groups + 1) * sizeof *g)))
		out_of_memory();
	p->groups = g;
	g = &p->groups[p->n_groups++];
	snprintf(g->code, sizeof g->code, "%s", j->pub.error_code[0] ? j->pub.error_code : "unknown");
	snprintf(g->example, sizeof g->example, "%s", j->pub.rec.error);
	g->count = 1;
}

static void record_out(struct push *p, const struct record *r)
{
	int rc;
	if (p->have_out && (rc = record_write(&p->out, r)) < 0)
		log_warnx("cannot write %s: %s", p->o.out, strerror(-rc));
}

/* The instantiation is over (running or not): count it, free its slot, then delete. Its
 * record is written once the deletion is over too, which adds the stop's steps. */
void push_job_instantiated(struct push_job *pj)
{
	struct job *j = JOB_OF(pj);
	struct push *p = j->p;
	struct series *s = &p->s;
	struct record *r = &pj->rec;

	for (int ph = 0; ph < PHASE_COUNT; ph++)
		if (stats_add(&s->phase[ph], r->phase_ms[ph]) < 0)
			out_of_memory();
	if (pj->running) {
		double core_over = NAN;
		if (!isnan(r->core_total_ms))
			core_over = r->core_total_ms - r->phase_ms[PHASE_SPAWN] -
			            (isnan(r->phase_ms[PHASE_BOOT]) ? 0 : r->phase_ms[PHASE_BOOT]);
		if (stats_add(&s->total, r->total_ms) < 0 || stats_add(&s->overhead, r->overhead_ms) < 0 ||
		    stats_add(&s->core_total, r->core_total_ms) < 0 || stats_add(&s->core_overhead, core_over) < 0)
			out_of_memory();
		p->n_running++;
	} else {
		p->n_errors++;
		count_error(p, j);
	}
	p->creating--;
	p->finished_create++;
	if (p->o.delete && r->id[0]) {
		p->deleting++;
		pj->step = 0;
		p->o.target->remove(pj, p->target_state);
	} else {
		record_out(p, r);
		job_free(j);
	}
	pump(p);
}

void push_job_deleted(struct push_job *pj, bool ok)
{
	struct job *j = JOB_OF(pj);
	struct push *p = j->p;
	if (!ok)
		p->n_delete_errors++;
	record_out(p, &pj->rec);
	p->deleting--;
	job_free(j);
	pump(p);
}

static void on_reply(struct evhttp_request *req, void *arg)
{
	struct job *j = arg;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	push_reply_fn fn = j->reply_fn;
	json_t *body = NULL;

	if (req && status > 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);
		if (len > 0)
			body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
	}
	j->reply_fn = NULL;
	fn(&j->pub, status, body, j->p->target_state);
	json_decref(body);
}

static void job_send_failed(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct job *j = arg;
	push_reply_fn fn = j->reply_fn;
	j->reply_fn = NULL;
	fn(&j->pub, 0, NULL, j->p->target_state);
}

/* ---- scheduling ---- */

static struct job *job_new(struct push *p, int64_t intended_us)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		out_of_memory();
	j->p = p;
	j->pub.index = ++p->launched;
	j->pub.intended_us = intended_us;
	snprintf(j->pub.name, sizeof j->pub.name, "%.40s-%s-%06zu", p->o.name_prefix, p->run_tag, j->pub.index);
	record_init(&j->pub.rec);
	j->pub.rec.intended_send_us = intended_us - p->start_us;
	return j;
}

static bool slot_free(const struct push *p)
{
	size_t c = (size_t)p->o.concurrency;
	if (p->o.mode == MODE_REPLICATE)
		return p->creating + p->deleting < c;
	return p->creating < c && p->deleting < c;
}

static void check_finished(struct push *p)
{
	bool all_launched = p->o.mode == MODE_OPEN ? p->next_arrival == p->n_schedule && !p->ready_head
	                                           : p->launched == p->o.count;
	if ((all_launched || p->stopping) && !p->ready_head && p->creating == 0 && p->deleting == 0)
		event_base_loopbreak(p->base);
}

static void pump(struct push *p)
{
	while (slot_free(p)) {
		struct job *j;
		if (p->o.mode == MODE_OPEN) {
			if (!(j = p->ready_head))
				break;
			if (!(p->ready_head = j->next))
				p->ready_tail = NULL;
			if (p->stopping) { /* never sent: not counted */
				free(j);
				continue;
			}
		} else {
			if (p->stopping || p->launched >= p->o.count)
				break;
			j = job_new(p, clock_mono_us());
		}
		p->creating++;
		j->pub.rec.actual_send_us = clock_mono_us() - p->start_us;
		p->o.target->create(&j->pub, p->target_state);
	}
	check_finished(p);
}

static void arm_arrival_timer(struct push *p)
{
	int64_t wait_us;
	struct timeval tv;
	if (p->next_arrival >= p->n_schedule || p->stopping)
		return;
	wait_us = p->start_us + p->schedule[p->next_arrival] - clock_mono_us();
	if (wait_us < 0)
		wait_us = 0;
	tv = (struct timeval){.tv_sec = wait_us / 1000000, .tv_usec = wait_us % 1000000};
	evtimer_add(p->arrival_timer, &tv);
}

static void on_arrival(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct push *p = arg;
	int64_t now = clock_mono_us() - p->start_us;
	while (!p->stopping && p->next_arrival < p->n_schedule && p->schedule[p->next_arrival] <= now) {
		struct job *j = job_new(p, p->start_us + p->schedule[p->next_arrival++]);
		if (p->ready_tail)
			p->ready_tail->next = j;
		else
			p->ready_head = j;
		p->ready_tail = j;
	}
	pump(p);
	arm_arrival_timer(p);
}

/* The due instants of the open loop, µs after the start. */
static int build_schedule(struct push *p)
{
	const struct push_options *o = &p->o;
	double horizon_us = o->duration > 0 ? o->duration * 1e6 : INFINITY, t = 0;
	size_t limit = o->count > 0 ? o->count : (size_t)-1, n = 0, cap = 1024;
	unsigned long long rng = o->seed ? o->seed : 0x9e3779b97f4a7c15ULL;
	int64_t *v = malloc(cap * sizeof *v);

	if (!v)
		return -ENOMEM;
	while (n < limit) {
		int k = o->arrival == ARRIVAL_BURST ? o->burst : 1;
		if (t >= horizon_us)
			break;
		for (int i = 0; i < k && n < limit; i++) {
			if (n == cap) {
				int64_t *w = realloc(v, (cap *= 2) * sizeof *v);
				if (!w) {
					free(v);
					return -ENOMEM;
				}
				v = w;
			}
			v[n++] = (int64_t)t;
		}
		switch (o->arrival) {
		case ARRIVAL_CONSTANT: t += 1e6 / o->rate; break;
		case ARRIVAL_BURST: t += 1e6 * o->burst / o->rate; break; /* K at once, R per second on average */
		case ARRIVAL_POISSON: t += -stats_ln(1.0 - uniform01(&rng)) * 1e6 / o->rate; break;
		}
	}
	p->schedule = v;
	p->n_schedule = n;
	return 0;
}

/* ---- progress, signals ---- */

static void on_progress(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct push *p = arg;
	double secs = (double)(clock_mono_us() - p->start_us) / 1e6;
	size_t total = p->total_jobs ? p->total_jobs : 1, width = 30, filled = p->finished_create * width / total;
	char bar[64];
	for (size_t i = 0; i < width; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu  running %zu  errors %zu  in flight %zu+%zu  %.1f/s ", bar, p->finished_create,
	        p->total_jobs, p->n_running, p->n_errors, p->creating, p->deleting,
	        secs > 0 ? (double)p->n_running / secs : 0.0);
}

static void on_sigint(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct push *p = arg;
	if (p->stopping) {
		event_base_loopbreak(p->base);
		return;
	}
	p->stopping = true;
	fprintf(stderr, "\nmicrovim push: interrupted; finishing the requests in flight (again to quit at once)\n");
	pump(p);
}

/* ---- summary ---- */

static json_t *num(double v) { return isnan(v) ? json_null() : json_real(v); }

/* One row of the table, or one member of "series" with --json. */
static void summarize_row(struct push *p, json_t *series, const char *label, const struct stats_series *s)
{
	struct stats_summary sum;
	if (stats_summarize(s->v, s->n, &sum) < 0)
		out_of_memory();
	if (!p->o.json) {
		stats_print_row(stdout, label, &sum);
		return;
	}
	json_object_set_new(series, label,
	                    json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "n", (json_int_t)sum.n, "mean",
	                              num(sum.mean), "stddev", num(sum.stddev), "ci95", num(sum.ci95), "min", num(sum.min),
	                              "p50", num(sum.p50), "p95", num(sum.p95), "p99", num(sum.p99), "max", num(sum.max)));
}

static void print_summary(struct push *p, int64_t end_us)
{
	const struct push_options *o = &p->o;
	double window = (double)(p->last_running_us - p->start_us) / 1e6;
	double wall = (double)(end_us - p->start_us) / 1e6;
	double throughput = window > 0 ? (double)p->n_running / window : 0.0;
	const char *arrival = o->arrival == ARRIVAL_CONSTANT ? "constant" : o->arrival == ARRIVAL_POISSON ? "poisson" : "burst";
	const char *mode = o->mode == MODE_REPLICATE ? "replicate" : o->mode == MODE_CLOSED ? "closed" : "open";
	json_t *series = o->json ? json_object() : NULL;

	if (!o->json) {
		if (o->target == &push_target_microvim)
			printf("microvim push: %zu instances, driver %s, ", p->finished_create, o->driver);
		else
			printf("microvim push: %zu instances, api %s, ", p->finished_create, o->target->name);
		if (o->mode == MODE_REPLICATE)
			printf("replicate (one at a time, each deleted before the next)\n");
		else if (o->mode == MODE_CLOSED)
			printf("closed loop, concurrency %d%s\n", o->concurrency, o->delete ? ", deleted as they run" : "");
		else
			printf("open loop, %s arrivals at %.12g/s (%zu scheduled), at most %d in flight%s\n", arrival, o->rate,
			       p->n_schedule, o->concurrency, o->delete ? ", deleted as they run" : "");
		stats_print_header(stdout);
	}
	for (int ph = 0; ph < PHASE_COUNT && o->target->has_trace; ph++)
		if (ph != PHASE_BOOT || p->s.phase[ph].n > 0)
			summarize_row(p, series, phase_names[ph], &p->s.phase[ph]);
	summarize_row(p, series, "total", &p->s.total);
	if (o->target->has_trace) { /* without the VIM's trace, no spawn to take out, no core total */
		summarize_row(p, series, "overhead", &p->s.overhead);
		summarize_row(p, series, "core_total", &p->s.core_total);
		summarize_row(p, series, "core_overhead", &p->s.core_overhead);
	}
	if (o->json) {
		json_t *groups = json_array();
		for (size_t i = 0; i < p->n_groups; i++)
			json_array_append_new(groups, json_pack("{s:s, s:I, s:s}", "code", p->groups[i].code, "count",
			                                        (json_int_t)p->groups[i].count, "example", p->groups[i].example));
		json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:i, s:I, s:I, s:o, s:I, s:f, s:f, s:f, s:o}", "mode", mode,
		                      "api", o->target->name, "driver", o->target == &push_target_microvim ? o->driver : "",
		                      "instances", (json_int_t)p->finished_create, "concurrency", o->concurrency,
		                      "running", (json_int_t)p->n_running, "errors", (json_int_t)p->n_errors, "error_codes",
		                      groups, "delete_errors", (json_int_t)p->n_delete_errors, "throughput_per_s", throughput,
		                      "window_s", window, "wall_s", wall, "series", series);
		if (o->mode == MODE_OPEN) {
			json_object_set_new(j, "arrival", json_string(arrival));
			json_object_set_new(j, "rate", json_real(o->rate));
		}
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
		printf("\n");
		json_decref(j);
		return;
	}
	if (o->target->has_trace)
		printf("(total: client, from the intended send to \"%s\" seen; overhead = total - spawn - boot;\n"
		       " core_*: the core's own trace, from the request's first byte to waiting clients woken)\n",
		       o->ready ? "ready" : "running");
	else
		printf("(total: client, from the intended send to %s seen by polling every %.12g ms)\n", "ACTIVE", o->poll_ms);
	printf("throughput %.1f instances/s (%zu running in %.3f s; wall time with deletions %.3f s)\n", throughput,
	       p->n_running, window, wall);
	printf("errors %zu (did not reach running%s)", p->n_errors, o->ready ? " and ready" : "");
	if (o->delete)
		printf("; delete errors %zu", p->n_delete_errors);
	printf("\n");
	for (size_t i = 0; i < p->n_groups; i++) /* by code, in order of first appearance */
		printf("  %s x %zu, e.g. %s\n", p->groups[i].code, p->groups[i].count, p->groups[i].example);
}

/* ---- command line ---- */

enum { O_CORE = 400, O_TOKEN_FILE, O_DRIVER, O_IMAGE, O_CONFIG, O_VCPUS, O_MEMORY, O_COUNT, O_CONCURRENCY,
       O_RATE, O_ARRIVAL, O_DURATION, O_REPLICATE, O_DELETE, O_KEEP, O_NAME_PREFIX, O_OUT, O_TIMEOUT, O_SEED,
       O_QUIET, O_JSON, O_READY, O_API, O_FLAVOR, O_NETWORK, O_OS_CLOUD, O_POLL_MS, O_TLS_CA };

static const struct option push_long_options[] = {
	{"api", required_argument, NULL, O_API},
	{"flavor", required_argument, NULL, O_FLAVOR},
	{"network", required_argument, NULL, O_NETWORK},
	{"os-cloud", required_argument, NULL, O_OS_CLOUD},
	{"poll-ms", required_argument, NULL, O_POLL_MS},
	{"core", required_argument, NULL, O_CORE},
	{"token-file", required_argument, NULL, O_TOKEN_FILE},
	{"tls-ca", required_argument, NULL, O_TLS_CA},
	{"driver", required_argument, NULL, O_DRIVER},
	{"image", required_argument, NULL, O_IMAGE},
	{"ready", required_argument, NULL, O_READY},
	{"config", required_argument, NULL, O_CONFIG},
	{"vcpus", required_argument, NULL, O_VCPUS},
	{"memory-mb", required_argument, NULL, O_MEMORY},
	{"count", required_argument, NULL, O_COUNT},
	{"concurrency", required_argument, NULL, O_CONCURRENCY},
	{"rate", required_argument, NULL, O_RATE},
	{"arrival", required_argument, NULL, O_ARRIVAL},
	{"duration", required_argument, NULL, O_DURATION},
	{"replicate", required_argument, NULL, O_REPLICATE},
	{"delete", no_argument, NULL, O_DELETE},
	{"keep", no_argument, NULL, O_KEEP},
	{"name-prefix", required_argument, NULL, O_NAME_PREFIX},
	{"out", required_argument, NULL, O_OUT},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"seed", required_argument, NULL, O_SEED},
	{"quiet", no_argument, NULL, O_QUIET},
	{"json", no_argument, NULL, O_JSON},
	{NULL, 0, NULL, 0},
};

static int number_arg(const char *s, double min, double max, double *out, const char *what)
{
	char *end;
	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || !(*out >= min && *out <= max)) {
		fprintf(stderr, "microvim push: --%s must be a number between %.12g and %.12g\n", what, min, max);
		return -1;
	}
	return 0;
}

static int parse_arrival(struct push_options *o, const char *s)
{
	double k;
	if (strcmp(s, "constant") == 0) {
		o->arrival = ARRIVAL_CONSTANT;
	} else if (strcmp(s, "poisson") == 0) {
		o->arrival = ARRIVAL_POISSON;
	} else if (strncmp(s, "burst:", 6) == 0 && number_arg(s + 6, 1, 100000, &k, "arrival burst:K") == 0 &&
	           k == (int)k) {
		o->arrival = ARRIVAL_BURST;
		o->burst = (int)k;
	} else {
		fprintf(stderr, "microvim push: --arrival is constant, poisson or burst:K\n");
		return -1;
	}
	return 0;
}

static int parse_options(struct push_options *o, int argc, char **argv)
{
	double v, count = 0, conc = 0, repl = 0;
	bool have_count = false, have_conc = false, have_repl = false;
	const char *tf = getenv("MICROVIM_TOKEN");
	int opt;

	*o = (struct push_options){.core = getenv("MICROVIM_CORE") ?: "http://127.0.0.1:4650", .driver = "exec",
	                           .name_prefix = "push", .timeout = 30, .delete = -1, .arrival = ARRIVAL_CONSTANT,
	                           .target = &push_target_microvim, .poll_ms = PUSH_DEFAULT_POLL_MS};
	o->core_from = getenv("MICROVIM_CORE") ? "$MICROVIM_CORE" : "the default core URL";
	o->token = tf ? strdup(tf) : NULL;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "q", push_long_options, NULL)) != -1) {
		switch (opt) {
		case O_API: {
			size_t i;
			for (i = 0; i < sizeof targets / sizeof targets[0]; i++)
				if (strcmp(targets[i]->name, optarg) == 0)
					break;
			if (i == sizeof targets / sizeof targets[0]) {
				fprintf(stderr, "microvim push: --api is microvim (default) or openstack\n");
				return -1;
			}
			o->target = targets[i];
			break;
		}
		case O_FLAVOR: o->flavor = optarg; break;
		case O_NETWORK: o->network = optarg; break;
		case O_OS_CLOUD: o->os_cloud = optarg; break;
		case O_POLL_MS: if (number_arg(optarg, 0.1, 60000, &o->poll_ms, "poll-ms") < 0) return -1; break;
		case O_CORE: o->core = optarg; o->core_from = "--core"; break;
		case O_TLS_CA: http_client_tls_files(&(struct tls_files){.ca = optarg}); break;
		case O_TOKEN_FILE: {
			int rc;
			free(o->token);
			o->token = NULL;
			if ((rc = fs_read_token(optarg, &o->token)) < 0) {
				fprintf(stderr, "microvim push: cannot read --token-file %s: %s\n", optarg, strerror(-rc));
				return -1;
			}
			break;
		}
		case O_DRIVER: o->driver = optarg; break;
		case O_IMAGE: o->image = optarg; break;
		case O_READY: o->ready = optarg; break;
		case O_CONFIG: {
			json_error_t jerr;
			json_decref(o->config);
			o->config = json_loads(optarg, 0, &jerr);
			if (!json_is_object(o->config)) {
				fprintf(stderr, "microvim push: --config must be a JSON object (%s)\n",
				        o->config ? "not an object" : jerr.text);
				return -1;
			}
			break;
		}
		case O_VCPUS: if (number_arg(optarg, 0.001, 256, &o->vcpus, "vcpus") < 0) return -1; break;
		case O_MEMORY: if (number_arg(optarg, 1, 1048576, &o->memory_mb, "memory-mb") < 0) return -1; break;
		case O_COUNT: if (number_arg(optarg, 1, 1e8, &count, "count") < 0) return -1; have_count = true; break;
		case O_CONCURRENCY: if (number_arg(optarg, 1, 10000, &conc, "concurrency") < 0) return -1; have_conc = true; break;
		case O_RATE: if (number_arg(optarg, 0.001, 1e6, &o->rate, "rate") < 0) return -1; break;
		case O_ARRIVAL: if (parse_arrival(o, optarg) < 0) return -1; break;
		case O_DURATION: if (number_arg(optarg, 0.001, 86400, &o->duration, "duration") < 0) return -1; break;
		case O_REPLICATE: if (number_arg(optarg, 1, 1e8, &repl, "replicate") < 0) return -1; have_repl = true; break;
		case O_DELETE: o->delete = 1; break;
		case O_KEEP: o->delete = 0; break;
		case O_NAME_PREFIX: o->name_prefix = optarg; break;
		case O_OUT: o->out = optarg; break;
		case O_TIMEOUT: if (number_arg(optarg, 0, 600, &o->timeout, "timeout") < 0) return -1; break;
		case O_SEED: if (number_arg(optarg, 0, 1e18, &v, "seed") < 0) return -1; o->seed = (unsigned long long)v; break;
		case 'q':
		case O_QUIET: o->quiet = true; break;
		case O_JSON: o->json = true; break;
		default: return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "microvim push: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (have_repl) {
		if (o->rate > 0 || have_conc || have_count) {
			fprintf(stderr, "microvim push: --replicate N runs one at a time: no --count, --concurrency or --rate\n");
			return -1;
		}
		o->mode = MODE_REPLICATE;
		o->count = (size_t)repl;
		o->concurrency = 1;
		if (o->delete < 0)
			o->delete = 1;
	} else if (o->rate > 0) {
		if (o->duration <= 0 && !have_count) {
			fprintf(stderr, "microvim push: the open loop (--rate) needs --duration S or --count N\n");
			return -1;
		}
		o->mode = MODE_OPEN;
		o->count = (size_t)count;
		o->concurrency = have_conc ? (int)conc : PUSH_OPEN_LOOP_INFLIGHT;
	} else {
		if (o->duration > 0 || o->arrival != ARRIVAL_CONSTANT) {
			fprintf(stderr, "microvim push: --duration and --arrival belong to the open loop (--rate R)\n");
			return -1;
		}
		o->mode = MODE_CLOSED;
		o->count = have_count ? (size_t)count : 1;
		o->concurrency = have_conc ? (int)conc : 1;
	}
	if (o->delete < 0)
		o->delete = 0;
	if (o->target->check(o) < 0)
		return -1;
	if (strspn(o->name_prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
	        strlen(o->name_prefix) || !o->name_prefix[0]) {
		fprintf(stderr, "microvim push: --name-prefix takes [A-Za-z0-9._-], starting with a letter or digit\n");
		return -1;
	}
	if (o->out) {
		enum record_format f;
		if (record_format_of(o->out, &f) < 0) {
			fprintf(stderr, "microvim push: --out FILE must end in .jsonl or .csv\n");
			return -1;
		}
	}
	return 0;
}

static void push_free(struct push *p)
{
	for (size_t i = 0; i < p->n_idle; i++)
		evhttp_connection_free(p->idle[i]);
	free(p->idle);
	for (size_t i = 0; i < p->n_retired; i++)
		evhttp_connection_free(p->retired[i]);
	free(p->retired);
	while (p->ready_head) {
		struct job *j = p->ready_head;
		p->ready_head = j->next;
		free(j);
	}
	if (p->arrival_timer)
		event_free(p->arrival_timer);
	if (p->progress_timer)
		event_free(p->progress_timer);
	if (p->sigint)
		event_free(p->sigint);
	if (p->base)
		event_base_free(p->base);
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		stats_series_free(&p->s.phase[ph]);
	stats_series_free(&p->s.total);
	stats_series_free(&p->s.overhead);
	stats_series_free(&p->s.core_total);
	stats_series_free(&p->s.core_overhead);
	json_decref(p->o.config);
	free(p->schedule);
	free(p->groups);
	free(p->o.token);
}

int push_main(int argc, char **argv)
{
	struct push *p = calloc(1, sizeof *p);
	struct event_config *cfg;
	unsigned short tag = 0;
	int rc = PUSH_EXIT_OK, wrc;
	bool interrupted;

	if (!p)
		out_of_memory();
	log_set_tag("push");
	if (parse_options(&p->o, argc, argv) < 0) {
		rc = PUSH_EXIT_USAGE;
		goto out;
	}
	if ((rc = p->o.target->open(&p->o, &p->ep, &p->target_state)) != PUSH_EXIT_OK)
		goto out;
	p->target_open = true;
	snprintf(p->hostport, sizeof p->hostport, strchr(p->ep.host, ':') ? "[%s]:%d" : "%s:%d", p->ep.host, p->ep.port);
	if (getrandom(&tag, sizeof tag, 0) < 0)
		tag = (unsigned short)clock_mono_us();
	snprintf(p->run_tag, sizeof p->run_tag, "%04x", tag);
	if (p->o.out) {
		int orc = record_open(&p->out, p->o.out);
		if (orc < 0) {
			fprintf(stderr, "microvim push: cannot create %s: %s\n", p->o.out, strerror(-orc));
			rc = PUSH_EXIT_USAGE;
			goto out;
		}
		p->have_out = true;
	}
	/* a precise timer: the open loop's instants are µs apart, not ms */
	if (!(cfg = event_config_new()))
		out_of_memory();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	p->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!p->base)
		fatalx("cannot create an event loop");
	signal(SIGPIPE, SIG_IGN);
	p->sigint = evsignal_new(p->base, SIGINT, on_sigint, p);
	evsignal_add(p->sigint, NULL);
	if (p->o.mode == MODE_OPEN) {
		if (build_schedule(p) < 0)
			out_of_memory();
		p->total_jobs = p->n_schedule;
		p->arrival_timer = evtimer_new(p->base, on_arrival, p);
	} else {
		p->total_jobs = p->o.count;
	}
	if (!p->o.quiet && isatty(STDERR_FILENO)) {
		p->progress_timer = event_new(p->base, -1, EV_PERSIST, on_progress, p);
		event_add(p->progress_timer, &(struct timeval){.tv_usec = 250000});
	}

	p->start_us = p->last_running_us = clock_mono_us();
	if (p->o.mode == MODE_OPEN) {
		if (p->n_schedule == 0)
			event_base_loopbreak(p->base);
		else
			arm_arrival_timer(p);
	} else {
		pump(p);
	}
	event_base_dispatch(p->base);
	interrupted = p->stopping;
	if (p->progress_timer) {
		on_progress(-1, 0, p);
		fprintf(stderr, "\n");
	}
	print_summary(p, clock_mono_us());
	if (p->creating || p->deleting)
		fprintf(stderr, "microvim push: quit with %zu creations and %zu deletions still in flight\n", p->creating,
		        p->deleting);
	if (p->have_out && (wrc = record_close(&p->out)) < 0) {
		fprintf(stderr, "microvim push: writing %s failed: %s\n", p->o.out, strerror(-wrc));
		rc = PUSH_EXIT_FAILED;
	}
	p->have_out = false;
	if (p->n_running != p->total_jobs || interrupted || p->total_jobs == 0)
		rc = PUSH_EXIT_FAILED;
out:
	if (p->have_out)
		record_close(&p->out);
	if (p->target_open)
		p->o.target->close(p->target_state);
	push_free(p);
	free(p);
	return rc;
}
