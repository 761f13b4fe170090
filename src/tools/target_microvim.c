/* target_microvim — push's target for microvim's own API (docs/API.md): one request
 * creates and waits (POST /v1/instances?wait=running), the answer carries the core's phase
 * trace (or a GET fetches it); deletion stops and waits (DELETE ?wait=stopped), then
 * removes the record (DELETE again).
 *
 * With several cores (--core URL1,URL2,...: common/corelist.h's rules) a request that gets
 * no answer, or 502/503/504, moves every job to the next core and is sent again there after
 * the list's backoff, for up to CORELIST_WINDOW_S from the job's first failure: creates
 * carry an Idempotency-Key of their own, the same on every try, so that a create the lost
 * core committed is answered from its first result; GETs and DELETEs are safe to repeat.
 * With one core, nothing is retried and no key is sent (as before lists). */
#include <errno.h>
#include <jansson.h>
#include <math.h> /* NAN, isnan: macros only */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/corelist.h"
#include "common/http.h"
#include "common/log.h"
#include "common/model.h"
#include "common/trace.h"
#include "tools/push_target.h"

enum step { STEP_CREATE, STEP_GET, STEP_STOP, STEP_PURGE };

struct microvim {
	const struct push_options *o;
	json_t *body_template;
	struct corelist cores;
	unsigned gen; /* push_endpoint_move()s: the endpoint jobs' requests go to now */
	int rounds;   /* rounds of the list without an answer since the last one */
};

static double json_ms(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static int check(const struct push_options *o)
{
	if (o->flavor || o->network || o->os_cloud) {
		fprintf(stderr, "microvim push: --flavor, --network and --os-cloud go with --api openstack\n");
		return -1;
	}
	if (!o->image && !o->config && strcmp(o->driver, "exec") == 0) {
		fprintf(stderr, "microvim push: the exec driver needs --config '{\"command\":\"/bin/sleep\",\"args\":[\"60\"]}'\n");
		return -1;
	}
	return 0;
}

static json_t *body_template(const struct push_options *o)
{
	json_t *b = json_pack("{s:s, s:s}", "name", "x", "driver", o->driver);
	if (!b)
		fatal("out of memory");
	if (o->image)
		json_object_set_new(b, "image", json_string(o->image));
	if (o->config)
		json_object_set(b, "config", o->config);
	if (o->ready)
		json_object_set_new(b, "ready", json_pack("{s:s}", "serial", o->ready));
	if (o->vcpus > 0 || o->memory_mb > 0) {
		json_t *res = json_object();
		if (o->vcpus > 0)
			json_object_set_new(res, "vcpus", json_real(o->vcpus));
		if (o->memory_mb > 0)
			json_object_set_new(res, "memory_mb", json_integer((json_int_t)o->memory_mb));
		json_object_set_new(b, "resources", res);
	}
	return b;
}

static int open_(const struct push_options *o, struct push_endpoint *ep, void **state)
{
	struct http_response resp;
	struct microvim *m;
	struct corelist cores;
	struct corelist_request health = {.method = "GET", .path = "/v1/health", .token = o->token, .timeout_s = 10,
	                                  .note = "microvim push"};
	char err[768];

	if (corelist_parse(&cores, o->core, err, sizeof err) < 0) {
		fprintf(stderr, "microvim push: %s: %s\n", o->core_from, err);
		return PUSH_EXIT_USAGE;
	}
	/* the core must answer before anything is measured: the first of the list that does */
	if (corelist_call(&cores, &health, &resp, err, sizeof err) < 0) {
		fprintf(stderr, "microvim push: %s\n", err);
		return PUSH_EXIT_UNREACHABLE;
	}
	http_response_free(&resp);
	http_parse_url(corelist_current(&cores), ep->host, sizeof ep->host, &ep->port); /* checked by the parse */
	if (http_url_is_tls(corelist_current(&cores)) && !(ep->tls = http_client_tls(err, sizeof err))) {
		fprintf(stderr, "microvim push: %s\n", err);
		return PUSH_EXIT_USAGE;
	}
	if (o->token && o->token[0]) {
		snprintf(ep->headers[0][0], sizeof ep->headers[0][0], "Authorization");
		if ((size_t)snprintf(ep->headers[0][1], sizeof ep->headers[0][1], "Bearer %s", o->token) >=
		    sizeof ep->headers[0][1]) {
			fprintf(stderr, "microvim push: the token is longer than %zu bytes\n", sizeof ep->headers[0][1] - 8);
			return PUSH_EXIT_USAGE;
		}
		ep->n_headers = 1;
	}
	if (!(m = calloc(1, sizeof *m)))
		fatal("out of memory");
	m->o = o;
	m->body_template = body_template(o);
	m->cores = cores; /* at the core that answered */
	*state = m;
	return PUSH_EXIT_OK;
}

static void close_(void *state)
{
	struct microvim *m = state;
	if (!m)
		return;
	json_decref(m->body_template);
	free(m);
}

/* What the API said, as one line for the record's error field, and its code. */
static void describe_error(struct push_job *j, int status, const json_t *body)
{
	const json_t *e = json_object_get(body, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	char fallback[16];
	if (status == 0) {
		push_job_failed(j, "no_answer", "no answer from the core");
		return;
	}
	snprintf(fallback, sizeof fallback, "http_%d", status);
	push_job_failed(j, code ?: fallback, "HTTP %d %s: %s", status, code ?: "error",
	                json_string_value(json_object_get(e, "message")) ?: "(no message)");
}

static void take_trace(struct push_job *j, const json_t *inst)
{
	const json_t *trace = json_object_get(inst, "trace"), *phases = json_object_get(trace, "phases");
	double spawn, boot;
	if (!trace)
		return;
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		j->rec.phase_ms[ph] = json_ms(phases, phase_names[ph]);
	for (int s = 0; s < STEP_COUNT; s++)
		j->rec.step_ms[s] = json_ms(json_object_get(trace, "steps"), step_names[s]);
	j->rec.core_total_ms = json_ms(trace, "total_ms");
	spawn = j->rec.phase_ms[PHASE_SPAWN];
	boot = isnan(j->rec.phase_ms[PHASE_BOOT]) ? 0 : j->rec.phase_ms[PHASE_BOOT];
	/* only a finished instantiation has an overhead: a guest that never printed its ready
	 * marker has no total, its wait being the guest's */
	if (j->running && !isnan(spawn) && !isnan(j->rec.total_ms))
		j->rec.overhead_ms = j->rec.total_ms - spawn - boot;
}

static void finish(struct push_job *j, const json_t *trace_holder)
{
	if (trace_holder)
		take_trace(j, trace_holder);
	if (j->running && isnan(j->rec.core_total_ms) && !j->rec.error[0])
		snprintf(j->rec.error, sizeof j->rec.error, "running, but the core gave no phase trace");
	push_job_instantiated(j);
}

/* Did the create's answer finish the instantiation? If not, the record says why. */
static void judge_answer(struct push_job *j, const struct microvim *m, const char *state, const json_t *body)
{
	const char *error = json_string_value(json_object_get(body, "error"));
	int st = inst_state_parse(state);
	bool running = strcmp(state, "running") == 0;

	if (running && m->o->ready && !json_is_true(json_object_get(body, "ready"))) {
		/* the wait for the marker is the guest's: no total, no overhead (see take_trace) */
		j->rec.total_ms = NAN;
		push_job_failed(j, "not_ready", "running, but the guest did not print its ready marker within the %.12g s wait",
		                m->o->timeout);
	} else if (running) {
		push_job_reached(j);
	} else if (st >= 0 && inst_state_terminal((enum inst_state)st)) {
		push_job_failed(j, state, "%s", error ?: state);
	} else {
		push_job_failed(j, "timeout", "still %s after the %.12g s wait%s%s", state, m->o->timeout, error ? ": " : "",
		                error ?: "");
	}
}

/* A request without a usable answer: with several cores, sent again (again(j, state))
 * at the next core (see the top); true then, and the caller returns. A usable answer
 * (false) ends the job's failures and the list's round. */
static bool fail_over(struct push_job *j, struct microvim *m, int status, push_timer_fn again)
{
	int64_t now = clock_mono_us();
	double delay_s = 0;
	int gen;
	if (m->cores.n < 2)
		return false;
	if (!corelist_status_fails_over(status)) {
		corelist_answered(&m->cores);
		m->rounds = 0;
		j->since_us = 0;
		return false;
	}
	if (!j->since_us)
		j->since_us = now;
	else if (now - j->since_us > (int64_t)(CORELIST_WINDOW_S * 1e6))
		return false;
	if (j->endpoint_gen == m->gen) { /* the first to find this core gone: every job moves */
		const char *from = corelist_current(&m->cores);
		char left[CORELIST_URL_MAX];
		snprintf(left, sizeof left, "%s", from);
		if (corelist_advance(&m->cores))
			delay_s = corelist_backoff_s(++m->rounds);
		if ((gen = push_endpoint_move(j, corelist_current(&m->cores))) < 0)
			return false;
		m->gen = (unsigned)gen;
		fprintf(stderr, "microvim push: %s: %s; going on with %s\n", left, status ? "unavailable" : "no answer",
		        corelist_current(&m->cores));
	} else if (m->rounds > 0) {
		delay_s = corelist_backoff_s(m->rounds);
	}
	push_job_later(j, (int64_t)(delay_s * 1e6), again);
	return true;
}

static void send_get(struct push_job *j, void *state);

static void on_get(struct push_job *j, int status, json_t *body, void *state)
{
	if (fail_over(j, state, status, send_get))
		return;
	finish(j, status == 200 ? body : NULL);
}

static void send_get(struct push_job *j, void *state UNUSED)
{
	char path[160];
	j->step = STEP_GET;
	snprintf(path, sizeof path, "/v1/instances/%s", j->rec.id);
	push_job_send(j, "GET", path, NULL, on_get);
}

static void create(struct push_job *j, void *state);

static void on_create(struct push_job *j, int status, json_t *body, void *state)
{
	struct microvim *m = state;
	const char *st;

	if (fail_over(j, m, status, create))
		return;
	j->rec.total_ms = (double)(clock_mono_us() - j->intended_us) / 1000.0;
	if (status != 201 && status != 200) {
		snprintf(j->rec.state, sizeof j->rec.state, "error");
		describe_error(j, status, body);
		finish(j, NULL);
		return;
	}
	st = json_string_value(json_object_get(body, "state")) ?: "";
	snprintf(j->rec.id, sizeof j->rec.id, "%s", json_string_value(json_object_get(body, "id")) ?: "");
	snprintf(j->rec.state, sizeof j->rec.state, "%s", st);
	judge_answer(j, m, st, body);
	if (j->running && !json_object_get(body, "trace") && j->rec.id[0]) {
		send_get(j, m);
		return;
	}
	finish(j, body);
}

static void create(struct push_job *j, void *state)
{
	struct microvim *m = state;
	char path[160], *body;

	if (m->cores.n > 1 && !j->idempotency_key[0])
		corelist_idem_key(j->idempotency_key); /* kept for every try of this create */
	json_object_set_new(m->body_template, "name", json_string(j->name));
	if (!(body = json_dumps(m->body_template, JSON_COMPACT)))
		fatal("out of memory");
	snprintf(path, sizeof path, "/v1/instances?wait=%s&timeout=%.12g", m->o->ready ? "ready" : "running", m->o->timeout);
	j->step = STEP_CREATE;
	push_job_send(j, "POST", path, body, on_create);
	free(body);
}

static void send_purge(struct push_job *j, void *state);
static void remove_(struct push_job *j, void *state);

static void on_purge(struct push_job *j, int status, json_t *body UNUSED, void *state)
{
	if (fail_over(j, state, status, send_purge))
		return;
	push_job_deleted(j, status == 204 || status == 404);
}

static void send_purge(struct push_job *j, void *state UNUSED)
{
	char path[160];
	j->step = STEP_PURGE;
	snprintf(path, sizeof path, "/v1/instances/%s", j->rec.id);
	push_job_send(j, "DELETE", path, NULL, on_purge);
}

static void on_stop(struct push_job *j, int status, json_t *body, void *state)
{
	const json_t *stop = json_object_get(json_object_get(body, "trace"), "stop_steps");
	if (fail_over(j, state, status, remove_))
		return;
	for (int s = 0; stop && s < STOP_STEP_COUNT; s++)
		j->rec.stop_step_ms[s] = json_ms(stop, stop_step_names[s]);
	if (status != 200) {
		push_job_deleted(j, status == 204 || status == 404);
		return;
	}
	send_purge(j, state); /* stopped: now remove the record */
}

static void remove_(struct push_job *j, void *state UNUSED)
{
	char path[160];
	j->step = STEP_STOP;
	snprintf(path, sizeof path, "/v1/instances/%s?wait=stopped&timeout=%d", j->rec.id, PUSH_STOP_TIMEOUT_S);
	push_job_send(j, "DELETE", path, NULL, on_stop);
}

const struct push_target push_target_microvim = {
	.name = "microvim",
	.has_trace = true,
	.check = check,
	.open = open_,
	.create = create,
	.remove = remove_,
	.close = close_,
};
