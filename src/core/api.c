/* api — the user-facing routes: instances (create, list, show, delete), health, events,
 * metrics. HTTP in, typed values to the cluster, JSON out (see api.h). */
#include "core/api.h"

#include <event2/buffer.h>
#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/jsontext.h"
#include "common/log.h"
#include "common/version.h"
#include "core/cluster.h"
#include "core/pools.h"
#include "core/events.h"
#include "core/leader.h"
#include "core/metrics.h"
#include "core/tenants.h"
#include "drivers/drivers.h"

#define WAIT_DEFAULT_S 30.0
#define WAIT_MAX_S 600.0

/* ---- scope, shared with the other routes (api.h) ---- */

bool api_sees(const struct api *a, const char *project) { return authz_sees(a->who, project); }

int api_project_scope(struct api *a, struct evhttp_request *req, char out[MV_NAME_MAX + 1], struct mv_error *err)
{
	char q[MV_NAME_MAX + 2];
	bool admin = authz_allows(a->who->role, ACTION_ADMIN);
	if (!http_query(req, "project", q, sizeof q)) {
		snprintf(out, MV_NAME_MAX + 1, "%s", admin ? "" : a->who->project);
		return 0;
	}
	if (!name_valid(q))
		return mv_fail(err, 400, "invalid_query", "project must be a project's name (1-%d of [A-Za-z0-9._-])",
		               MV_NAME_MAX);
	if (!admin && strcmp(q, a->who->project) != 0)
		return mv_fail(err, 404, "not_found", "no project %s", q);
	snprintf(out, MV_NAME_MAX + 1, "%.*s", MV_NAME_MAX, q);
	return 0;
}

/* ---- rendering ---- */

/* An instance as the API shows it, written straight as JSON text (common/jsontext.h):
 * batches of 1,000 and listing pages of up to 10,000 are rendered here. */
static void instance_write_json(const struct instance *in, struct jtext *t)
{
	char when[40];
	jtext_lit(t, "{\"id\":");
	jtext_str(t, in->id);
	jtext_lit(t, ",\"name\":");
	jtext_str(t, in->spec.name);
	jtext_lit(t, ",\"project\":");
	jtext_str(t, in->project);
	jtext_lit(t, ",\"driver\":");
	jtext_str(t, in->spec.driver);
	jtext_lit(t, ",\"state\":");
	jtext_str(t, inst_state_names[in->state]);
	jtext_lit(t, in->stop_requested ? ",\"desired\":\"stopped\",\"spec\":" : ",\"desired\":\"running\",\"spec\":");
	spec_write_json(&in->spec, t);
	clock_iso8601(in->created_wall_us, when, sizeof when);
	jtext_lit(t, ",\"created_at\":");
	jtext_str(t, when);
	clock_iso8601(in->updated_wall_us, when, sizeof when);
	jtext_lit(t, ",\"updated_at\":");
	jtext_str(t, when);
	jtext_lit(t, ",\"run\":");
	jtext_int(t, in->run);
	jtext_lit(t, ",\"node\":");
	if (in->node_id[0])
		jtext_str(t, in->node_id);
	else
		jtext_lit(t, "null");
	if (in->has_exit_code) {
		jtext_lit(t, ",\"exit_code\":");
		jtext_int(t, in->exit_code);
	}
	if (in->error) {
		jtext_lit(t, ",\"error\":");
		jtext_str(t, in->error);
	}
	if (in->has_trace) {
		int n;
		jtext_lit(t, ",\"trace\":");
		if ((n = trace_format(&in->trace, jtext_reserve(t, TRACE_TEXT_MAX), TRACE_TEXT_MAX)) < 0)
			fatal("api: a trace longer than TRACE_TEXT_MAX");
		t->len += (size_t)n;
	}
	if (in->spec.ready_serial[0])
		jtext_lit(t, in->ready ? ",\"ready\":true" : ",\"ready\":false");
	jtext_lit(t, "}");
}

static void reply_instance(struct evhttp_request *req, int status, const struct instance *in)
{
	struct jtext t = {0};
	instance_write_json(in, &t);
	http_reply_jtext(req, status, &t);
}

/* {"instances": [...]} of the instances, or the first alone. */
static void reply_instances(struct evhttp_request *req, int status, struct instance *const *insts, int n,
                            bool as_list)
{
	struct jtext t = {0};
	if (!as_list && n > 0) {
		reply_instance(req, status, insts[0]);
		return;
	}
	if (!as_list) { /* none left to show: an empty body, as before */
		http_reply_json(req, status, NULL);
		return;
	}
	jtext_lit(&t, "{\"instances\":[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			jtext_lit(&t, ",");
		instance_write_json(insts[i], &t);
	}
	jtext_lit(&t, "]}");
	http_reply_jtext(req, status, &t);
}

/* The same for the ids still known. */
static void reply_instance_ids(struct evhttp_request *req, int status, struct cluster *c, char (*ids)[MV_ID_LEN + 1],
                               int n, bool as_list)
{
	struct instance **insts = calloc(n > 0 ? (size_t)n : 1, sizeof *insts);
	int known = 0;
	if (!insts)
		fatal("calloc");
	for (int i = 0; i < n; i++)
		if ((insts[known] = cluster_instance(c, ids[i])))
			known++;
	reply_instances(req, status, insts, known, as_list);
	free(insts);
}

/* ---- clients waiting for states (?wait=running, ?wait=stopped) ---- */

struct wait_reply {
	struct cluster *cluster;
	struct evhttp_request *req;
	int status;   /* answered with this when done */
	bool as_list; /* {"instances": [...]} rather than one instance */
};

static void wait_done(void *arg, char (*ids)[MV_ID_LEN + 1], int n)
{
	struct wait_reply *w = arg;
	reply_instance_ids(w->req, w->status, w->cluster, ids, n, w->as_list);
	free(w);
}

static void wait_then_reply(struct api *a, struct evhttp_request *req, enum wait_kind kind, int status, bool as_list,
                            struct instance *const *insts, int n, double timeout_s)
{
	struct wait_reply *w = calloc(1, sizeof *w);
	if (!w)
		fatal("calloc");
	*w = (struct wait_reply){.cluster = a->cluster, .req = req, .status = status, .as_list = as_list};
	cluster_wait(a->cluster, insts, n, kind, timeout_s, wait_done, w);
}

/* ---- POST /v1/instances ---- */

/* 128-bit digest of the canonical body and the project (two FNV-1a variants) for
 * idempotency checks: the same key from another project is another request. */
static void body_digest(const json_t *body, const char *project, char out[33])
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h1 = 1469598103934665603ULL, h2 = 0x9e3779b97f4a7c15ULL;
	for (const char *p = project; *p; p++) {
		h1 = (h1 ^ (unsigned char)*p) * 1099511628211ULL;
		h2 = (h2 ^ (unsigned char)*p) * 0x100000001b3ULL + 0x7f4a7c15ULL;
	}
	for (const char *p = text; p && *p; p++) {
		h1 = (h1 ^ (unsigned char)*p) * 1099511628211ULL;
		h2 = (h2 ^ (unsigned char)*p) * 0x100000001b3ULL + 0x7f4a7c15ULL;
	}
	free(text);
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

struct create_request {
	struct inst_spec spec;
	json_t *body;
	double wait_s;
	bool wait;
	enum wait_kind wait_kind;
	bool as_list; /* the body had "count": answer {"instances": [...]}, else the instance itself */
	const char *idem_key;
	char digest[33];
};

static int parse_create(struct api *a, struct evhttp_request *req, const char *project, struct create_request *cr,
                        struct mv_error *err)
{
	char wait[16];
	cr->wait_s = WAIT_DEFAULT_S;
	if (http_query(req, "wait", wait, sizeof wait)) {
		if (strcmp(wait, "running") == 0)
			cr->wait_kind = WAIT_RUNNING;
		else if (strcmp(wait, "ready") == 0)
			cr->wait_kind = WAIT_READY;
		else
			return mv_fail(err, 400, "invalid_query", "wait must be \"running\" or \"ready\" on create");
		cr->wait = true;
	}
	if (http_query_double(req, "timeout", 0, WAIT_MAX_S, &cr->wait_s, err) < 0)
		return -1;
	cr->idem_key = evhttp_find_header(evhttp_request_get_input_headers(req), "Idempotency-Key");
	if (cr->idem_key && !idem_key_valid(cr->idem_key))
		return mv_fail(err, 400, "invalid_header",
		               "Idempotency-Key must be 1-%d printable characters without spaces", MV_IDEM_KEY_MAX);
	if (http_read_json(req, &cr->body, err) < 0)
		return -1;
	if (cr->idem_key) /* of the body as sent, before a pool fills it in */
		body_digest(cr->body, project, cr->digest);
	cr->as_list = json_object_get(cr->body, "count") != NULL;
	if (pools_fill_request(a->pools, cr->body, err) < 0 ||
	    drv_spec_parse(&cr->spec, cr->body, SPEC_REQUEST, err) < 0)
		return -1;
	return pools_resolve(a->pools, &cr->spec, err);
}

/* A create whose answer waits for the cluster (cluster_instances_create: at once, or at the
 * end of the turn, once the store's commit is known). */
struct create_answer {
	struct api *a;
	struct evhttp_request *req;
	struct create_request cr;
};

static void create_answer_free(struct create_answer *ca)
{
	spec_free(&ca->cr.spec);
	json_decref(ca->cr.body);
	free(ca);
}

static void created(void *arg, struct instance *const *insts, int n, bool replayed, const struct mv_error *err)
{
	struct create_answer *ca = arg;
	const struct create_request *cr = &ca->cr;
	/* A retried create (a client failing over from a core that died before it answered)
	 * waits as the first would have, on whichever core it reached: 200, not 201. */
	int status = replayed ? 200 : 201;
	if (err && err->status == 503) {
		char retry[16];
		snprintf(retry, sizeof retry, "%d", CLUSTER_RETRY_AFTER_S);
		evhttp_add_header(evhttp_request_get_output_headers(ca->req), "Retry-After", retry);
	}
	if (err)
		http_reply_error(ca->req, err);
	else if (cr->wait)
		wait_then_reply(ca->a, ca->req, cr->wait_kind, status, cr->as_list, insts, n, cr->wait_s);
	else
		reply_instances(ca->req, status, insts, n, cr->as_list);
	create_answer_free(ca);
}

void api_instances_create(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	struct create_answer *ca = calloc(1, sizeof *ca);
	const struct tenant_project *p = tenants_project(a->tenants, a->who->project);
	struct cluster_create_req r = {.accepted_us = clock_mono_us(), .project = a->who->project,
	                               .quota = p ? &p->quota : NULL,
	                               .any_image = authz_allows(a->who->role, ACTION_ADMIN)};
	struct mv_error err;

	if (!ca)
		fatal("calloc");
	ca->a = a;
	ca->req = req;
	if (parse_create(a, req, a->who->project, &ca->cr, &err) < 0) {
		http_reply_error(req, &err);
		create_answer_free(ca);
		return;
	}
	r.spec = &ca->cr.spec;
	r.idem_key = ca->cr.idem_key;
	r.digest = ca->cr.digest;
	cluster_instances_create(a->cluster, &r, created, ca);
}

/* ---- GET /v1/instances, GET/DELETE /v1/instances/{id} ---- */

/* A page of GET /v1/instances: in id order, `limit` of them (at most LIST_LIMIT_MAX, by
 * default LIST_LIMIT_DEFAULT), after the id `after`; "next" (the after of the following
 * page) when there is one. Bounded, so that a million instances are never one answer. */
#define LIST_LIMIT_DEFAULT 1000
#define LIST_LIMIT_MAX 10000

struct list_scope {
	struct jtext text; /* {"instances":[... so far */
	const char *project; /* "": every project */
	size_t limit, n;
	bool more; /* one more than limit matched: there is a next page */
	char last[MV_ID_LEN + 1];
};

static bool list_one(void *arg, const struct instance *in)
{
	struct list_scope *l = arg;
	if (l->project[0] && strcmp(l->project, in->project) != 0)
		return false;
	if (l->n == l->limit) { /* the look-ahead: only says that a next page exists */
		l->more = true;
		return true;
	}
	if (l->n > 0)
		jtext_lit(&l->text, ",");
	instance_write_json(in, &l->text);
	snprintf(l->last, sizeof l->last, "%s", in->id);
	l->n++;
	return true;
}

static int list_query(struct evhttp_request *req, int *want, size_t *limit, char *after, size_t afterlen,
                      struct mv_error *err)
{
	char state[32], num[32], *end;
	long v;

	if (http_query(req, "state", state, sizeof state) && (*want = inst_state_parse(state)) < 0)
		return mv_fail(err, 400, "invalid_query",
		               "state must be one of pending, scheduled, starting, running, stopped, exited, failed, lost");
	if (http_query(req, "limit", num, sizeof num)) {
		errno = 0;
		v = strtol(num, &end, 10);
		if (errno || end == num || *end || v < 1 || v > LIST_LIMIT_MAX)
			return mv_fail(err, 400, "invalid_query", "limit must be a whole number from 1 to %d", LIST_LIMIT_MAX);
		*limit = (size_t)v;
	}
	/* Any id-shaped value is a page boundary: it need not exist (it may have been removed
	 * since the previous page). */
	if (http_query(req, "after", after, afterlen) &&
	    (!after[0] || strlen(after) > MV_ID_LEN || strspn(after, "0123456789abcdef") != strlen(after)))
		return mv_fail(err, 400, "invalid_query",
		               "after must be an instance id (1-%d lower-case hex characters), e.g. the \"next\" of the previous page",
		               MV_ID_LEN);
	return 0;
}

void api_instances_list(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	char project[MV_NAME_MAX + 1], after[MV_ID_LEN + 2] = "";
	int want = -1;
	struct list_scope l = {.project = project, .limit = LIST_LIMIT_DEFAULT};
	struct mv_error err;

	if (list_query(req, &want, &l.limit, after, sizeof after, &err) < 0 ||
	    api_project_scope(a, req, project, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	jtext_lit(&l.text, "{\"instances\":[");
	cluster_instances_list(a->cluster, want, after[0] ? after : NULL, l.limit + 1, list_one, &l);
	jtext_lit(&l.text, "]");
	if (l.more) {
		jtext_lit(&l.text, ",\"next\":");
		jtext_str(&l.text, l.last);
	}
	jtext_lit(&l.text, "}");
	http_reply_jtext(req, 200, &l.text);
}

/* Another project's instance is as missing as one that does not exist (no leak). */
static struct instance *find_or_404(struct api *a, struct evhttp_request *req, const char *id)
{
	struct instance *in = cluster_instance(a->cluster, id);
	struct mv_error err;
	/* the leader takes in what followers stored on their NOTIFY, a loop turn or more after
	 * their 201: a miss reads them now, so that an instance answered 201 by one core is
	 * found by every core at once (a follower read every row before this route already) */
	if (!in && a->leader && leader_is_leader(a->leader) && cluster_pick_up(a->cluster) == 0)
		in = cluster_instance(a->cluster, id);
	if (!in || !api_sees(a, in->project)) {
		in = NULL;
		mv_fail(&err, 404, "not_found", "no instance with id %.64s", id);
		http_reply_error(req, &err);
	}
	return in;
}

void api_instance_show(struct api *a, struct evhttp_request *req, const char *id)
{
	struct instance *in = find_or_404(a, req, id);
	if (in)
		reply_instance(req, 200, in);
}

/* A follower does not touch an instance the leader runs: it records the delete for the
 * leader (durably: a 2xx here is kept through a failover) and answers as the leader would,
 * at once or once the instance has ended (?wait=stopped, seen as the leader writes it). */
static void delete_on_follower(struct api *a, struct evhttp_request *req, struct instance *in, bool do_wait,
                               double wait_s)
{
	struct mv_error err;
	bool ended = inst_state_terminal(in->state);
	if (leader_request_delete(a->leader, in->id, false) < 0) {
		mv_fail(&err, 503, "store_failed", "this core could not record the delete for the leader; retry");
		http_reply_error(req, &err);
		return;
	}
	if (ended) {
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	in->stop_requested = true; /* until the next read of the database, which the leader has written */
	if (do_wait)
		wait_then_reply(a, req, WAIT_STOPPED, 200, false, &in, 1, wait_s);
	else
		reply_instance(req, 202, in);
}

void api_instance_delete(struct api *a, struct evhttp_request *req, const char *id)
{
	struct instance *in = find_or_404(a, req, id);
	struct mv_error err;
	char wait[16];
	double wait_s = WAIT_DEFAULT_S;
	bool do_wait = false;

	if (!in)
		return;
	if (http_query(req, "wait", wait, sizeof wait)) {
		if (strcmp(wait, "stopped") != 0) {
			mv_fail(&err, 400, "invalid_query", "wait must be \"stopped\" on delete");
			goto fail;
		}
		do_wait = true;
	}
	if (http_query_double(req, "timeout", 0, WAIT_MAX_S, &wait_s, &err) < 0)
		goto fail;
	if (a->leader && !leader_is_leader(a->leader)) {
		delete_on_follower(a, req, in, do_wait, wait_s);
		return;
	}
	if (inst_state_terminal(in->state)) {
		if (cluster_instance_remove(a->cluster, in, &err) < 0)
			goto fail;
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	if (cluster_instance_stop(a->cluster, in, &err) < 0)
		goto fail;
	if (do_wait)
		wait_then_reply(a, req, WAIT_STOPPED, 200, false, &in, 1, wait_s);
	else
		reply_instance(req, inst_state_terminal(in->state) ? 200 : 202, in);
	return;
fail:
	http_reply_error(req, &err);
}

/* ---- POST /v1/instances/{id}/start, /restart ---- */

typedef int start_fn(struct cluster *c, struct instance *in, int64_t accepted_us, struct mv_error *err);

/* ?wait=running|ready and ?timeout=S, as on create; the body, if any, is not read. */
static void start_again(struct api *a, struct evhttp_request *req, const char *id, start_fn *fn)
{
	int64_t accepted_us = clock_mono_us();
	struct instance *in = find_or_404(a, req, id);
	struct mv_error err;
	char wait[16];
	double wait_s = WAIT_DEFAULT_S;
	enum wait_kind kind = WAIT_RUNNING;
	bool do_wait = false;

	if (!in)
		return;
	if (http_query(req, "wait", wait, sizeof wait)) {
		if (strcmp(wait, "running") != 0 && strcmp(wait, "ready") != 0) {
			mv_fail(&err, 400, "invalid_query", "wait must be \"running\" or \"ready\" on start and restart");
			goto fail;
		}
		kind = strcmp(wait, "ready") == 0 ? WAIT_READY : WAIT_RUNNING;
		do_wait = true;
	}
	if (http_query_double(req, "timeout", 0, WAIT_MAX_S, &wait_s, &err) < 0 || fn(a->cluster, in, accepted_us, &err) < 0)
		goto fail;
	if (do_wait)
		wait_then_reply(a, req, kind, 200, false, &in, 1, wait_s);
	else
		reply_instance(req, 202, in);
	return;
fail:
	http_reply_error(req, &err);
}

void api_instance_start(struct api *a, struct evhttp_request *req, const char *id)
{
	start_again(a, req, id, cluster_instance_start);
}

void api_instance_restart(struct api *a, struct evhttp_request *req, const char *id)
{
	start_again(a, req, id, cluster_instance_restart);
}

/* ---- health, events, metrics ---- */

void api_health(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	bool leads = !a->leader || leader_is_leader(a->leader);
	const char *leader = !a->leader ? a->url : leader_url(a->leader);
	/* a follower's nodes_ready is 0: nodes register with the leader */
	http_reply_json(req, 200, json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:s?}", "status", "ok", "version",
	                                    MICROVIM_VERSION, "nodes_ready", cluster_nodes_ready(a->cluster),
	                                    "instances", (int)cluster_instance_count(a->cluster),
	                                    "heartbeat_interval_s", cluster_heartbeat_interval(a->cluster), "role",
	                                    leads ? "leader" : "follower", "leader", leader && leader[0] ? leader : NULL));
}

void api_events(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	char project[MV_NAME_MAX + 1];
	struct mv_error err;
	if (api_project_scope(a, req, project, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	/* a reader or member gets its project's instances only; nodes are an admin's */
	events_subscribe(a->events, req, project);
}

void api_metrics(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct metrics_gauges g = {
		.in_flight = cluster_in_flight(a->cluster),
		.in_flight_limit = cluster_options(a->cluster)->max_inflight,
		.refused_saturated = cluster_refused_saturated(a->cluster),
		.nodes_ready = cluster_nodes_ready(a->cluster),
		.lost_unwritten = cluster_lost_unwritten(a->cluster),
	};
	g.nodes_down = cluster_node_count(a->cluster) - g.nodes_ready;
	cluster_count_states(a->cluster, g.instances);
	http_guard_stats(a->guard, &g.http);
	metrics_render(a->metrics, &g, out);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", NULL);
}
