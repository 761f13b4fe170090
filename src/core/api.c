/* api — the user-facing routes: instances (create, list, show, delete), health, events,
 * metrics; and the instance state machine every route and node report goes through. */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "common/version.h"
#include "core/internal.h"
#include "core/metrics.h"
#include "core/store.h"

#define WAIT_DEFAULT_S 30.0
#define WAIT_MAX_S 600.0
#define IDEM_KEY_MAX 128
/* Seconds a refused create is told to wait (Retry-After). At saturation a node starts an
 * instance in about a millisecond, so a second frees hundreds of slots. */
#define SATURATED_RETRY_S 1

typedef void route_fn(struct core *c, struct evhttp_request *req, const char *id);
route_fn api_instances_create, api_instances_list, api_instance_show, api_instance_delete;
route_fn api_health, api_events, api_metrics;

/* ---- instances in memory ---- */

struct instance *core_instance(struct core *c, const char *id) { return hmap_get(&c->instances, id); }

void core_instance_insert(struct core *c, struct instance *in)
{
	hmap_put(&c->instances, in->id, in);
	hmap_put(&c->names, in->name, in);
	c->n_in_flight += inst_state_in_flight(in->state);
}

static void core_instance_remove(struct core *c, struct instance *in)
{
	hmap_remove(&c->instances, in->id);
	hmap_remove(&c->names, in->name);
	c->n_in_flight -= inst_state_in_flight(in->state);
}

void instance_state_assign(struct core *c, struct instance *in, enum inst_state st)
{
	c->n_in_flight += (int)inst_state_in_flight(st) - (int)inst_state_in_flight(in->state);
	in->state = st;
}

void instance_free(struct instance *in)
{
	if (!in)
		return;
	free(in->spec_text);
	free(in->error);
	free(in->waiters);
	free(in);
}

json_t *instance_spec(const struct instance *in)
{
	json_t *j = in->spec_text ? json_loads(in->spec_text, 0, NULL) : NULL;
	if (!j) {
		log_warnx("instance %s: its stored spec does not parse", in->id);
		j = json_object();
	}
	return j;
}

int instance_set_spec(struct instance *in, const json_t *spec)
{
	const json_t *res = json_object_get(spec, "resources");
	const char *restart = json_string_value(json_object_get(spec, "restart"));
	char *text = json_dumps(spec, JSON_COMPACT | JSON_REAL_PRECISION(12));
	if (!text)
		return -1;
	free(in->spec_text);
	in->spec_text = text;
	in->has_ready = json_object_get(spec, "ready") != NULL;
	in->restart_on_lost = restart && strcmp(restart, "on-lost") == 0;
	in->vcpus_milli = (int64_t)(json_number_value(json_object_get(res, "vcpus")) * 1000.0 + 0.5);
	in->memory_mb = json_integer_value(json_object_get(res, "memory_mb"));
	return 0;
}

json_t *instance_to_json(const struct instance *in)
{
	char created[40], updated[40];
	json_t *j;
	clock_iso8601(in->created_wall_us, created, sizeof created);
	clock_iso8601(in->updated_wall_us, updated, sizeof updated);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "id", in->id, "name", in->name,
	              "driver", in->driver, "state", inst_state_names[in->state], "desired",
	              in->stop_requested ? "stopped" : "running", "spec", instance_spec(in), "created_at", created,
	              "updated_at", updated);
	json_object_set_new(j, "node", in->node_id[0] ? json_string(in->node_id) : json_null());
	if (in->has_exit_code)
		json_object_set_new(j, "exit_code", json_integer(in->exit_code));
	if (in->error)
		json_object_set_new(j, "error", json_string(in->error));
	if (in->has_trace)
		json_object_set_new(j, "trace", trace_to_json(&in->trace));
	if (in->has_ready)
		json_object_set_new(j, "ready", json_boolean(in->ready));
	return j;
}

/* ---- clients waiting for states (?wait=running, ?wait=stopped) ---- */

enum wait_kind { WAIT_RUNNING, WAIT_READY, WAIT_STOPPED };

struct waiter {
	struct core *core;
	struct evhttp_request *req;
	enum wait_kind kind;
	int status;      /* answered with this when done */
	bool as_list;    /* {"instances": [...]} rather than one instance */
	int n, remaining;
	char (*ids)[MV_ID_LEN + 1];
	struct event *timer;
};

static bool wait_satisfied(enum wait_kind kind, const struct instance *in)
{
	switch (kind) {
	case WAIT_RUNNING: return in->state == INST_RUNNING || inst_state_terminal(in->state);
	case WAIT_READY: return (in->state == INST_RUNNING && in->ready) || inst_state_terminal(in->state);
	case WAIT_STOPPED: return inst_state_terminal(in->state);
	}
	return true;
}

static void detach(struct instance *in, struct waiter *w)
{
	for (int i = 0; i < in->n_waiters; i++) {
		if (in->waiters[i] == w) {
			in->waiters[i] = in->waiters[--in->n_waiters];
			return;
		}
	}
}

static json_t *instances_reply(struct core *c, char (*ids)[MV_ID_LEN + 1], int n)
{
	json_t *list = json_array();
	for (int i = 0; i < n; i++) {
		struct instance *in = core_instance(c, ids[i]);
		if (in)
			json_array_append_new(list, instance_to_json(in));
	}
	return json_pack("{s:o}", "instances", list);
}

static void waiter_finish(struct waiter *w)
{
	struct core *c = w->core;
	json_t *body;
	for (int i = 0; i < w->n; i++) {
		struct instance *in = core_instance(c, w->ids[i]);
		if (in)
			detach(in, w);
	}
	body = instances_reply(c, w->ids, w->n);
	if (!w->as_list) {
		json_t *one = json_array_get(json_object_get(body, "instances"), 0);
		json_incref(one);
		json_decref(body);
		body = one;
	}
	http_reply_json(w->req, w->status, body);
	event_free(w->timer);
	free(w->ids);
	free(w);
}

static void waiter_timeout(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	waiter_finish(arg);
}

static void waiter_start(struct core *c, struct evhttp_request *req, enum wait_kind kind, int status,
                         bool as_list, struct instance **insts, int n, double timeout_s)
{
	struct waiter *w = calloc(1, sizeof *w);
	if (!w || !(w->ids = calloc((size_t)n, sizeof *w->ids)))
		fatal("calloc");
	*w = (struct waiter){.core = c, .req = req, .kind = kind, .status = status, .as_list = as_list,
	                     .n = n, .ids = w->ids};
	for (int i = 0; i < n; i++) {
		memcpy(w->ids[i], insts[i]->id, sizeof w->ids[i]);
		if (wait_satisfied(kind, insts[i]))
			continue;
		insts[i]->waiters = realloc(insts[i]->waiters, sizeof(struct waiter *) * (size_t)(insts[i]->n_waiters + 1));
		if (!insts[i]->waiters)
			fatal("realloc");
		insts[i]->waiters[insts[i]->n_waiters++] = w;
		w->remaining++;
	}
	w->timer = evtimer_new(c->base, waiter_timeout, w);
	if (w->remaining == 0) {
		waiter_finish(w);
		return;
	}
	struct timeval tv = clock_timeval(timeout_s);
	evtimer_add(w->timer, &tv);
}

void instance_wake(struct instance *in)
{
	for (int i = 0; i < in->n_waiters;) {
		struct waiter *w = in->waiters[i];
		if (!wait_satisfied(w->kind, in)) {
			i++;
			continue;
		}
		in->waiters[i] = in->waiters[--in->n_waiters];
		if (--w->remaining == 0)
			waiter_finish(w);
	}
}

/* Answers every waiting client (used at shutdown). */
void api_finish_waiters(struct core *c)
{
	const char *key;
	void *v;
	for (size_t i = 0; hmap_next(&c->instances, &i, &key, &v);) {
		struct instance *in = v;
		while (in->n_waiters > 0)
			waiter_finish(in->waiters[0]);
	}
}

int instance_set_state(struct core *c, struct instance *in, enum inst_state st)
{
	enum inst_state old = in->state;
	int64_t old_updated = in->updated_wall_us;
	instance_state_assign(c, in, st);
	in->updated_wall_us = clock_wall_us();
	if (store_put_instance(c->store, in) < 0) {
		instance_state_assign(c, in, old);
		in->updated_wall_us = old_updated;
		return -1;
	}
	events_publish_instance(c, in);
	instance_wake(in);
	return 0;
}

/* ---- POST /v1/instances ---- */

/* 128-bit digest of the canonical body (two FNV-1a variants) for idempotency checks. */
static void body_digest(const json_t *body, char out[33])
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h1 = 1469598103934665603ULL, h2 = 0x9e3779b97f4a7c15ULL;
	for (const char *p = text; p && *p; p++) {
		h1 = (h1 ^ (unsigned char)*p) * 1099511628211ULL;
		h2 = (h2 ^ (unsigned char)*p) * 0x100000001b3ULL + 0x7f4a7c15ULL;
	}
	free(text);
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

static bool idem_key_valid(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > IDEM_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return false;
	return true;
}

/* Answers a retried create from the stored ids; returns true when it did. */
static bool idem_replay(struct core *c, struct evhttp_request *req, const char *key, const char *digest,
                        bool as_list, struct mv_error *err, bool *failed)
{
	char *stored_digest, *ids_text;
	json_t *ids;
	size_t i;
	json_t *v, *list;

	*failed = false;
	if (store_idem_get(c->store, key, &stored_digest, &ids_text) < 0) {
		*failed = true;
		mv_fail(err, 500, "store_failed", "the store could not be read; nothing was created");
		return false;
	}
	if (!stored_digest)
		return false;
	if (strcmp(stored_digest, digest) != 0) {
		*failed = true;
		mv_fail(err, 409, "idempotency_conflict",
		        "Idempotency-Key %s was already used with a different body", key);
		free(stored_digest);
		free(ids_text);
		return false;
	}
	ids = json_loads(ids_text, 0, NULL);
	list = json_array();
	json_array_foreach(ids, i, v) {
		struct instance *in = core_instance(c, json_string_value(v));
		if (in)
			json_array_append_new(list, instance_to_json(in));
	}
	if (as_list)
		http_reply_json(req, 200, json_pack("{s:o}", "instances", list));
	else {
		http_reply_json(req, 200, json_incref(json_array_get(list, 0)));
		json_decref(list);
	}
	json_decref(ids);
	free(stored_digest);
	free(ids_text);
	return true;
}

static void instance_name(const struct inst_spec *spec, int i, char *out, size_t len)
{
	/* spec_parse made sure NAME-COUNT fits */
	int n = spec->count == 1 ? snprintf(out, len, "%s", spec->name) : snprintf(out, len, "%s-%d", spec->name, i + 1);
	if (n >= (int)len)
		fatalx("instance name overflow: %s", out);
}

static int check_names_free(struct core *c, const struct inst_spec *spec, struct mv_error *err)
{
	char name[MV_NAME_MAX + 16];
	for (int i = 0; i < spec->count; i++) {
		instance_name(spec, i, name, sizeof name);
		if (hmap_get(&c->names, name))
			return mv_fail(err, 409, "name_conflict",
			               "an instance named %s exists; delete it or choose another name", name);
	}
	return 0;
}

static struct sched_request sched_request_of(struct core *c, const json_t *spec)
{
	bool known = true;
	const json_t *res = json_object_get(spec, "resources");
	const char *driver = json_string_value(json_object_get(spec, "driver"));
	const char *executable = strcmp(driver, "exec") == 0
	                                 ? json_string_value(json_object_get(json_object_get(spec, "config"), "command"))
	                                 : NULL;
	return (struct sched_request){
		.driver = driver_index(driver),
		.executable = executable,
		.exec_bit = sched_exec_bit(executable),
		/* a path without an id is on no exact node's list */
		.exec_id_bit = executable ? core_exec_bit(c, executable, false, &known) : 0,
		.exec_id_known = executable != NULL,
		.labels = json_object_get(spec, "labels"),
		.bridge = json_string_value(json_object_get(json_object_get(spec, "network"), "bridge")),
		.vcpus_milli = (int64_t)(json_number_value(json_object_get(res, "vcpus")) * 1000.0 + 0.5),
		.memory_mb = json_integer_value(json_object_get(res, "memory_mb")),
	};
}

/* All-or-nothing feasibility: can every one of `count` instances be placed right now? */
static int check_placeable(struct core *c, const json_t *spec, int count, struct mv_error *err)
{
	struct sched_request r = sched_request_of(c, spec);
	enum sched_miss miss = SCHED_NO_NODE;
	struct sched_node *view = c->sched_view;
	int rc = 0;
	/* one instance: the live view, untouched; several: a scratch copy that takes the
	 * tentative reservations */
	if (count > 1) {
		if (!(view = malloc(sizeof *view * (size_t)(c->n_nodes + 1))))
			fatal("malloc");
		memcpy(view, c->sched_view, sizeof *view * (size_t)c->n_nodes);
	}
	for (int i = 0; i < count && rc == 0; i++) {
		int k = sched_pick(view, c->n_nodes, &r, c->opts.policy, &miss);
		if (k < 0) {
			rc = mv_fail(err, 422, miss == SCHED_NO_CAPACITY ? "no_capacity" : "no_node", "%s%s",
			             sched_miss_message(miss), count > 1 ? " (for all of count; nothing was created)" : "");
		} else if (count > 1) {
			view[k].vcpus_milli_used += r.vcpus_milli;
			view[k].memory_mb_used += r.memory_mb;
		}
	}
	if (view != c->sched_view)
		free(view);
	return rc;
}

static struct instance *instance_new(const struct inst_spec *spec, const json_t *canon, int i, int64_t now_mono)
{
	struct instance *in = calloc(1, sizeof *in);
	if (!in)
		fatal("calloc");
	id_generate(in->id);
	instance_name(spec, i, in->name, sizeof in->name);
	snprintf(in->driver, sizeof in->driver, "%s", spec->driver);
	json_t *named = json_deep_copy(canon);
	json_object_set_new(named, "name", json_string(in->name));
	if (instance_set_spec(in, named) < 0)
		fatalx("cannot serialise an instance spec");
	json_decref(named);
	in->state = INST_PENDING;
	in->created_wall_us = in->updated_wall_us = clock_wall_us();
	in->marks.accepted_us = now_mono;
	return in;
}

/* Persists new instances as pending, in one transaction. */
static int persist_new(struct core *c, struct instance **insts, int n, const char *idem_key, const char *digest)
{
	if (store_begin(c->store) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (store_put_instance(c->store, insts[i]) < 0)
			goto fail;
	if (idem_key) {
		json_t *ids = json_array();
		char *text;
		int rc;
		for (int i = 0; i < n; i++)
			json_array_append_new(ids, json_string(insts[i]->id));
		text = json_dumps(ids, JSON_COMPACT);
		json_decref(ids);
		rc = store_idem_put(c->store, idem_key, digest, text);
		free(text);
		if (rc < 0)
			goto fail;
	}
	if (store_commit(c->store) < 0)
		goto fail;
	return 0;
fail:
	store_rollback(c->store);
	return -1;
}

static int record_placements(struct core *c, struct instance **insts, struct node **chosen, int n)
{
	if (store_begin(c->store) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (chosen[i] && store_put_instance(c->store, insts[i]) < 0) {
			store_rollback(c->store);
			return -1;
		}
	}
	if (store_commit(c->store) < 0) {
		store_rollback(c->store);
		return -1;
	}
	return 0;
}

/* Places pending instances on nodes, records the choice in one transaction, then queues
 * the assignments. Instances that fit nowhere stay pending. */
static void schedule_instances(struct core *c, struct instance **insts, int n)
{
	struct node **chosen = calloc((size_t)n, sizeof *chosen);
	int placed = 0;
	if (!chosen)
		fatal("calloc");
	for (int i = 0; i < n; i++) {
		json_t *spec = instance_spec(insts[i]);
		struct sched_request r = sched_request_of(c, spec);
		enum sched_miss miss;
		int k = sched_pick(c->sched_view, c->n_nodes, &r, c->opts.policy, &miss);
		json_decref(spec); /* r pointed into it; only its numbers are used below */
		if (k < 0) {
			log_warnx("instance %s stays pending: %s", insts[i]->id, sched_miss_message(miss));
			continue;
		}
		chosen[i] = c->nodes[k];
		node_reserve(chosen[i], insts[i]); /* at once: the next pick of this batch sees it */
		memcpy(insts[i]->node_id, chosen[i]->id, sizeof insts[i]->node_id);
		insts[i]->lost_node[0] = '\0';
		instance_state_assign(c, insts[i], INST_SCHEDULED);
		insts[i]->updated_wall_us = clock_wall_us();
		placed++;
	}
	if (placed > 0 && record_placements(c, insts, chosen, n) < 0) {
		log_warnx("could not record placements; %d instances stay pending", placed);
		for (int i = 0; i < n; i++) {
			if (chosen[i]) {
				node_release(chosen[i], insts[i]);
				insts[i]->node_id[0] = '\0';
				instance_state_assign(c, insts[i], INST_PENDING);
			}
		}
		free(chosen);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (!chosen[i])
			continue;
		insts[i]->marks.scheduled_us = clock_mono_us();
		events_publish_instance(c, insts[i]);
		node_enqueue(c, chosen[i], "start", insts[i]);
	}
	free(chosen);
}

void core_schedule_pending(struct core *c)
{
	const char *key;
	void *v;
	int n = 0, cap = 0;
	struct instance **pending = NULL;
	for (size_t i = 0; hmap_next(&c->instances, &i, &key, &v);) {
		struct instance *in = v;
		if (in->state != INST_PENDING || in->stop_requested)
			continue;
		if (n == cap && !(pending = realloc(pending, sizeof *pending * (size_t)(cap = cap ? cap * 2 : 16))))
			fatal("realloc");
		pending[n++] = in;
	}
	if (n > 0) {
		int64_t now = clock_mono_us();
		for (int i = 0; i < n; i++)
			pending[i]->marks.accepted_us = pending[i]->marks.persisted_us = now;
		schedule_instances(c, pending, n);
	}
	free(pending);
}

struct create_request {
	struct inst_spec spec;
	json_t *body, *canon;
	double wait_s;
	bool wait;
	enum wait_kind wait_kind;
	bool as_list; /* the body had "count": answer {"instances": [...]}, else the instance itself */
	const char *idem_key;
	char digest[33];
};

static int parse_create(struct evhttp_request *req, struct create_request *cr, struct mv_error *err)
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
		               "Idempotency-Key must be 1-%d printable characters without spaces", IDEM_KEY_MAX);
	if (http_read_json(req, &cr->body, err) < 0 || spec_parse(&cr->spec, cr->body, err) < 0)
		return -1;
	if (cr->idem_key)
		body_digest(cr->body, cr->digest);
	cr->as_list = json_object_get(cr->body, "count") != NULL;
	return 0;
}

static int check_create(struct core *c, struct create_request *cr, struct mv_error *err)
{
	json_t *boot = NULL;
	if (cr->spec.image[0] && !(boot = images_boot_of(c, cr->spec.image)))
		return mv_fail(err, 422, "unknown_image",
		               "image %s is not registered (microvim image add NAME --kernel FILE)", cr->spec.image);
	if (check_names_free(c, &cr->spec, err) < 0) {
		json_decref(boot);
		return -1;
	}
	cr->canon = spec_to_json(&cr->spec);
	if (boot) /* resolved now: a later change of the image does not change this instance */
		json_object_set_new(cr->canon, "boot", boot);
	return check_placeable(c, cr->canon, cr->spec.count, err);
}

/* Admission control (core --max-inflight). Past the limit a create is refused at once and
 * changes nothing, rather than queued: past saturation a queue only adds its length to the
 * latency of every request behind it, and a client told to come back can go elsewhere.
 * Checked before names, images and placement so that a refusal costs little. */
static int admit(struct core *c, struct evhttp_request *req, int count, struct mv_error *err)
{
	long long limit = (long long)c->opts.max_inflight, now = (long long)c->n_in_flight;
	char retry[16];

	switch (admission_check(c->opts.max_inflight, c->n_in_flight, count)) {
	case ADMIT:
		return 0;
	case ADMIT_NEVER:
		return mv_fail(err, 422, "over_max_inflight",
		               "count %d is more instances than this core ever holds in flight (--max-inflight %lld); "
		               "send smaller batches",
		               count, limit);
	case ADMIT_LATER:
		break;
	}
	c->n_refused_saturated++;
	snprintf(retry, sizeof retry, "%d", SATURATED_RETRY_S);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", retry);
	return mv_fail(err, 503, "saturated",
	               "the core is saturated: %lld instances are in flight (pending, scheduled or starting) and "
	               "this request adds %d, past its limit of %lld (--max-inflight); nothing was created: "
	               "retry after %d s",
	               now, count, limit, SATURATED_RETRY_S);
}

void api_instances_create(struct core *c, struct evhttp_request *req, UNUSED const char *id)
{
	int64_t accepted = clock_mono_us();
	struct create_request cr = {0};
	struct instance **insts = NULL;
	struct mv_error err;
	bool replay_failed;
	int n = 0;

	if (parse_create(req, &cr, &err) < 0)
		goto fail;
	if (cr.idem_key && idem_replay(c, req, cr.idem_key, cr.digest, cr.as_list, &err, &replay_failed))
		goto out;
	if ((cr.idem_key && replay_failed) || admit(c, req, cr.spec.count, &err) < 0 ||
	    check_create(c, &cr, &err) < 0)
		goto fail;

	n = cr.spec.count;
	if (!(insts = calloc((size_t)n, sizeof *insts)))
		fatal("calloc");
	for (int i = 0; i < n; i++)
		insts[i] = instance_new(&cr.spec, cr.canon, i, accepted);
	if (persist_new(c, insts, n, cr.idem_key, cr.digest) < 0) {
		for (int i = 0; i < n; i++)
			instance_free(insts[i]);
		mv_fail(&err, 500, "store_failed", "the store could not save the request; nothing was created");
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		insts[i]->marks.persisted_us = clock_mono_us();
		core_instance_insert(c, insts[i]);
		events_publish_instance(c, insts[i]);
	}
	schedule_instances(c, insts, n);
	if (cr.wait) {
		waiter_start(c, req, cr.wait_kind, 201, cr.as_list, insts, n, cr.wait_s);
	} else if (cr.as_list) {
		json_t *list = json_array();
		for (int i = 0; i < n; i++)
			json_array_append_new(list, instance_to_json(insts[i]));
		http_reply_json(req, 201, json_pack("{s:o}", "instances", list));
	} else {
		http_reply_json(req, 201, instance_to_json(insts[0]));
	}
	goto out;
fail:
	http_reply_error(req, &err);
out:
	free(insts);
	spec_free(&cr.spec);
	json_decref(cr.body);
	json_decref(cr.canon);
}

/* ---- GET /v1/instances, GET/DELETE /v1/instances/{id} ---- */

static int cmp_created(const void *a, const void *b)
{
	const struct instance *x = *(struct instance *const *)a, *y = *(struct instance *const *)b;
	if (x->created_wall_us != y->created_wall_us)
		return x->created_wall_us < y->created_wall_us ? -1 : 1;
	return strcmp(x->id, y->id);
}

void api_instances_list(struct core *c, struct evhttp_request *req, UNUSED const char *id)
{
	char state[32];
	int want = -1;
	size_t n = 0;
	const char *key;
	void *v;
	struct instance **all;
	json_t *list = json_array();
	struct mv_error err;

	if (http_query(req, "state", state, sizeof state) && (want = inst_state_parse(state)) < 0) {
		json_decref(list);
		mv_fail(&err, 400, "invalid_query",
		        "state must be one of pending, scheduled, starting, running, stopped, exited, failed, lost");
		http_reply_error(req, &err);
		return;
	}
	if (!(all = malloc(sizeof *all * (hmap_size(&c->instances) + 1))))
		fatal("malloc");
	for (size_t i = 0; hmap_next(&c->instances, &i, &key, &v);)
		if (want < 0 || ((struct instance *)v)->state == (enum inst_state)want)
			all[n++] = v;
	qsort(all, n, sizeof *all, cmp_created);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, instance_to_json(all[i]));
	free(all);
	http_reply_json(req, 200, json_pack("{s:o}", "instances", list));
}

static struct instance *find_or_404(struct core *c, struct evhttp_request *req, const char *id)
{
	struct instance *in = core_instance(c, id);
	struct mv_error err;
	if (!in) {
		mv_fail(&err, 404, "not_found", "no instance with id %.64s", id);
		http_reply_error(req, &err);
	}
	return in;
}

void api_instance_show(struct core *c, struct evhttp_request *req, const char *id)
{
	struct instance *in = find_or_404(c, req, id);
	if (in)
		http_reply_json(req, 200, instance_to_json(in));
}

/* Removes an ended instance's record; its node removes the instance dir. */
static int purge(struct core *c, struct instance *in)
{
	struct node *n = in->node_id[0] ? core_node(c, in->node_id) : NULL;
	if (store_delete_instance(c->store, in->id) < 0)
		return -1;
	if (n)
		node_enqueue(c, n, "purge", in);
	core_instance_remove(c, in);
	instance_free(in);
	return 0;
}

/* Asks the instance's node to stop it. An instance without a node stops at once. */
static int request_stop(struct core *c, struct instance *in)
{
	struct node *n = in->node_id[0] ? core_node(c, in->node_id) : NULL;
	bool was = in->stop_requested;
	in->stop_requested = true;
	if (!n || in->state == INST_PENDING) {
		if (instance_set_state(c, in, INST_STOPPED) < 0) {
			in->stop_requested = was;
			return -1;
		}
		if (n)
			node_release(n, in);
		return 0;
	}
	if (was)
		return 0; /* already asked */
	in->updated_wall_us = clock_wall_us();
	if (store_put_instance(c->store, in) < 0) {
		in->stop_requested = was;
		return -1;
	}
	node_enqueue(c, n, "stop", in);
	return 0;
}

void api_instance_delete(struct core *c, struct evhttp_request *req, const char *id)
{
	struct instance *in = find_or_404(c, req, id);
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
	if (inst_state_terminal(in->state)) {
		if (purge(c, in) < 0) {
			mv_fail(&err, 500, "store_failed", "the store could not remove the instance; it is kept");
			goto fail;
		}
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	if (request_stop(c, in) < 0) {
		mv_fail(&err, 500, "store_failed", "the store could not record the stop; nothing changed");
		goto fail;
	}
	if (do_wait)
		waiter_start(c, req, WAIT_STOPPED, 200, false, &in, 1, wait_s);
	else
		http_reply_json(req, inst_state_terminal(in->state) ? 200 : 202, instance_to_json(in));
	return;
fail:
	http_reply_error(req, &err);
}

/* ---- health, events, metrics ---- */

void api_health(struct core *c, struct evhttp_request *req, UNUSED const char *id)
{
	int ready = 0;
	for (int i = 0; i < c->n_nodes; i++)
		ready += c->nodes[i]->ready;
	http_reply_json(req, 200, json_pack("{s:s, s:s, s:i, s:i}", "status", "ok", "version", MICROVIM_VERSION,
	                                    "nodes_ready", ready, "instances", (int)hmap_size(&c->instances)));
}

void api_events(struct core *c, struct evhttp_request *req, UNUSED const char *id)
{
	events_handle(c, req);
}

void api_metrics(struct core *c, struct evhttp_request *req, UNUSED const char *id)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	metrics_render(c->metrics, c, out);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", NULL);
}
