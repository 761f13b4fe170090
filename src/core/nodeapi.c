/* nodeapi — the node-facing routes (register, heartbeat, long-poll for assignments,
 * status reports) and the nodes' side of the user API. An assignment reaches a node on
 * the long-poll it keeps waiting at the core: no polling interval anywhere on the path. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "core/internal.h"
#include "core/metrics.h"
#include "core/store.h"
#include "core/traces.h"

#define HEARTBEAT_INTERVAL_S 5
#define POLL_DEFAULT_S 25.0
#define POLL_MAX_S 60.0

typedef void route_fn(struct core *c, struct evhttp_request *req, const char *id);
route_fn api_nodes_list, api_node_show, nodeapi_register, nodeapi_heartbeat, nodeapi_assignments,
	nodeapi_reports;

struct node *core_node(struct core *c, const char *id)
{
	for (int i = 0; i < c->n_nodes; i++)
		if (strcmp(c->nodes[i]->id, id) == 0)
			return c->nodes[i];
	return NULL;
}

static void poll_answer(struct node *n);

void node_release_poll(struct node *n)
{
	if (!n->poll)
		return;
	http_reply_json(n->poll, 503, json_pack("{s:{s:s,s:s}}", "error", "code", "shutting_down", "message",
	                                         "the core is shutting down"));
	n->poll = NULL;
	evtimer_del(n->poll_timer);
}

void node_free(struct node *n)
{
	struct assignment *a;
	if (!n)
		return;
	node_release_poll(n);
	if (n->poll_timer)
		event_free(n->poll_timer);
	while ((a = TAILQ_FIRST(&n->queue))) {
		TAILQ_REMOVE(&n->queue, a, link);
		free(a);
	}
	json_decref(n->drivers);
	json_decref(n->labels);
	json_decref(n->bridges);
	free(n);
}

static unsigned driver_mask_of(const json_t *drivers)
{
	unsigned mask = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)drivers, k, v) {
		int d = driver_index(k);
		if (d >= 0)
			mask |= 1u << d;
	}
	return mask;
}

static void node_capacity(struct core *c, struct node *n)
{
	n->driver_mask = driver_mask_of(n->drivers);
	n->exec_allow = json_object_get(json_object_get(n->drivers, "exec"), "allow");
	n->exec_bloom = sched_exec_bloom(n->exec_allow);
	n->exec_mask = 0;
	n->exec_exact = true;
	{
		const json_t *p;
		size_t i;
		json_array_foreach(n->exec_allow, i, p) {
			bool exact = true;
			n->exec_mask |= core_exec_bit(c, json_string_value(p), true, &exact);
			n->exec_exact = n->exec_exact && exact;
		}
	}
	node_view_sync(n);
	n->vcpus_milli_total = (int64_t)(n->cpus * c->opts.cpu_ratio * 1000.0);
	n->memory_mb_total = n->memory_mb;
}

static void poll_timeout(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	poll_answer(arg);
}

void core_add_node(struct core *c, struct node *n)
{
	if (c->n_nodes == c->cap_nodes) {
		c->cap_nodes = c->cap_nodes ? c->cap_nodes * 2 : 16;
		c->nodes = realloc(c->nodes, sizeof *c->nodes * (size_t)c->cap_nodes);
		c->sched_view = realloc(c->sched_view, sizeof *c->sched_view * (size_t)c->cap_nodes);
		if (!c->nodes || !c->sched_view)
			fatal("realloc");
	}
	TAILQ_INIT(&n->queue);
	n->core = c;
	n->next_seq = 1;
	n->poll_timer = evtimer_new(c->base, poll_timeout, n);
	n->view_idx = c->n_nodes;
	c->nodes[c->n_nodes++] = n;
	node_capacity(c, n);
}

/* The view is updated where a node changes, so that a create never rebuilds it: at
 * 10,000 nodes a rebuild costs more than the pick itself. */
uint64_t core_exec_bit(struct core *c, const char *path, bool add, bool *exact)
{
	uintptr_t id;
	char *key;
	if (!path) {
		*exact = false;
		return 0;
	}
	if ((id = (uintptr_t)hmap_get(&c->exec_ids, path)))
		return 1ULL << (id - 1);
	if (!add || c->n_exec_ids >= 64) {
		*exact = add ? false : *exact;
		return 0;
	}
	if (!(key = strdup(path)))
		fatal("strdup");
	hmap_put(&c->exec_ids, key, (void *)(uintptr_t)(++c->n_exec_ids));
	return 1ULL << (c->n_exec_ids - 1);
}

void node_view_sync(struct node *n)
{
	n->core->sched_view[n->view_idx] = (struct sched_node){
		.ready = n->ready, .drivers = n->driver_mask, .exec_allow = n->exec_allow,
		.exec_bloom = n->exec_bloom, .exec_mask = n->exec_mask, .exec_exact = n->exec_exact,
		.labels = n->labels, .bridges = n->bridges,
		.vcpus_milli_total = n->vcpus_milli_total, .memory_mb_total = n->memory_mb_total,
		.vcpus_milli_used = n->vcpus_milli_used, .memory_mb_used = n->memory_mb_used};
}

void node_reserve(struct node *n, const struct instance *in)
{
	n->vcpus_milli_used += in->vcpus_milli;
	n->memory_mb_used += in->memory_mb;
	n->n_instances++;
	node_view_sync(n);
}

void node_release(struct node *n, const struct instance *in)
{
	n->vcpus_milli_used -= in->vcpus_milli;
	n->memory_mb_used -= in->memory_mb;
	n->n_instances--;
	node_view_sync(n);
}

json_t *node_to_json(const struct node *n)
{
	char hb[40] = "";
	if (n->last_heartbeat_wall_us)
		clock_iso8601(n->last_heartbeat_wall_us, hb, sizeof hb);
	return json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:o, s:{s:f, s:I, s:i}, s:{s:f, s:I}, s:i, s:s?}",
	                 "id", n->id, "name", n->name, "state", n->ready ? "ready" : "down", "address",
	                 n->address, "drivers", n->drivers, "labels", n->labels, "bridges",
	                 n->bridges ? json_incref(n->bridges) : json_array(), "resources", "vcpus",
	                 (double)n->vcpus_milli_total / 1000.0, "memory_mb", (json_int_t)n->memory_mb_total,
	                 "cpus", n->cpus, "allocated", "vcpus", (double)n->vcpus_milli_used / 1000.0,
	                 "memory_mb", (json_int_t)n->memory_mb_used, "instances", n->n_instances,
	                 "last_heartbeat", n->last_heartbeat_wall_us ? hb : NULL);
}

void api_nodes_list(struct core *c, struct evhttp_request *req, UNUSED const char *id)
{
	json_t *list = json_array();
	for (int i = 0; i < c->n_nodes; i++)
		json_array_append_new(list, node_to_json(c->nodes[i]));
	http_reply_json(req, 200, json_pack("{s:o}", "nodes", list));
}

void api_node_show(struct core *c, struct evhttp_request *req, const char *id)
{
	struct node *n = core_node(c, id);
	struct mv_error err;
	if (!n) {
		mv_fail(&err, 404, "not_found", "no node with id %.64s", id);
		http_reply_error(req, &err);
		return;
	}
	http_reply_json(req, 200, node_to_json(n));
}

/* ---- assignments ---- */

static json_t *assignment_to_json(struct core *c, const struct assignment *a)
{
	struct instance *in = core_instance(c, a->instance_id);
	json_t *inst = json_pack("{s:s}", "id", a->instance_id);
	if (in && strcmp(a->op, "start") == 0)
		json_object_set_new(inst, "spec", instance_spec(in));
	return json_pack("{s:I, s:s, s:o}", "seq", (json_int_t)a->seq, "op", a->op, "instance", inst);
}

/* Answers the node's waiting long-poll with everything queued (possibly nothing). */
static void poll_answer(struct node *n)
{
	struct evhttp_request *req = n->poll;
	struct assignment *a;
	int64_t now = clock_mono_us();
	json_t *list;

	if (!req)
		return;
	list = json_array();
	n->poll = NULL;
	evtimer_del(n->poll_timer);
	TAILQ_FOREACH(a, &n->queue, link) {
		json_array_append_new(list, assignment_to_json(n->core, a));
		if (strcmp(a->op, "start") == 0) {
			struct instance *in = core_instance(n->core, a->instance_id);
			if (in && in->marks.sent_us == 0)
				in->marks.sent_us = now;
		}
	}
	http_reply_json(req, 200, json_pack("{s:o}", "assignments", list));
}

void node_enqueue_id(UNUSED struct core *c, struct node *n, const char *op, const char *id)
{
	struct assignment *a = calloc(1, sizeof *a);
	if (!a)
		fatal("calloc");
	a->seq = n->next_seq++;
	snprintf(a->op, sizeof a->op, "%s", op);
	snprintf(a->instance_id, sizeof a->instance_id, "%s", id);
	TAILQ_INSERT_TAIL(&n->queue, a, link);
	poll_answer(n);
}

void node_enqueue(struct core *c, struct node *n, const char *op, const struct instance *in)
{
	node_enqueue_id(c, n, op, in->id);
}

/* The node asked with after=SEQ: it has everything up to SEQ. Start assignments it has
 * taken mean the instance is starting. That state is not written to the store on its own:
 * after a core crash the record says "scheduled", the start is sent again, and the node
 * answers with where the instance really is. The next state change stores it. */
static void acknowledge(struct core *c, struct node *n, uint64_t after)
{
	struct assignment *a;
	while ((a = TAILQ_FIRST(&n->queue)) && a->seq <= after) {
		struct instance *in = core_instance(c, a->instance_id);
		TAILQ_REMOVE(&n->queue, a, link);
		if (in && strcmp(a->op, "start") == 0 && in->state == INST_SCHEDULED) {
			instance_state_assign(c, in, INST_STARTING);
			in->updated_wall_us = clock_wall_us();
			events_publish_instance(c, in);
		}
		free(a);
	}
}

static void touch(struct node *n)
{
	n->last_heartbeat_mono_us = clock_mono_us();
	n->last_heartbeat_wall_us = clock_wall_us();
}

/* Registration makes a node ready. */
static void node_ready(struct core *c, struct node *n)
{
	touch(n);
	if (!n->ready) {
		n->ready = true;
		node_view_sync(n);
		log_info("node %s (%s) is ready", n->name, n->id);
		events_publish_node(c, n, "ready");
	}
}

/* A node the core declared down (or has not seen since its own restart) must register
 * again, so that its instances are reconciled before it takes new work. */
static bool node_live(struct node *n, struct evhttp_request *req)
{
	struct mv_error err;
	if (!n->ready) {
		mv_fail(&err, 404, "register_again", "node %s is down in the core's view: register again", n->id);
		http_reply_error(req, &err);
		return false;
	}
	touch(n);
	return true;
}

void nodeapi_assignments(struct core *c, struct evhttp_request *req, const char *id)
{
	struct node *n = core_node(c, id);
	char buf[32], *end;
	uint64_t after = 0;
	double wait_s = POLL_DEFAULT_S;
	struct mv_error err;

	if (http_query(req, "after", buf, sizeof buf)) {
		errno = 0;
		after = strtoull(buf, &end, 10);
		if (errno || end == buf || *end) {
			mv_fail(&err, 400, "invalid_query", "after must be an unsigned integer");
			http_reply_error(req, &err);
			return;
		}
	}
	if (http_query_double(req, "wait", 0, POLL_MAX_S, &wait_s, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	if (!node_live(n, req))
		return;
	acknowledge(c, n, after);
	if (n->poll) /* a stale poll from a connection the node gave up on */
		poll_answer(n);
	n->poll = req;
	if (!TAILQ_EMPTY(&n->queue) || wait_s == 0) {
		poll_answer(n);
		return;
	}
	struct timeval tv = clock_timeval(wait_s);
	evtimer_add(n->poll_timer, &tv);
}

void nodeapi_heartbeat(struct core *c, struct evhttp_request *req, const char *id)
{
	if (node_live(core_node(c, id), req))
		http_reply_json(req, 200, json_object());
}

/* ---- register ---- */

static int check_register(const json_t *b, struct mv_error *err)
{
	const json_t *id = json_object_get(b, "id"), *name = json_object_get(b, "name");
	const json_t *res = json_object_get(b, "resources"), *drivers = json_object_get(b, "drivers");
	const json_t *labels = json_object_get(b, "labels"), *addr = json_object_get(b, "address");
	const json_t *bridges = json_object_get(b, "bridges");
	size_t i;
	const json_t *cpus = json_object_get(res, "cpus"), *mem = json_object_get(res, "memory_mb");
	const char *k;
	json_t *v;

	if (!json_is_string(id) || json_string_length(id) != MV_ID_LEN ||
	    strspn(json_string_value(id), "0123456789abcdef") != MV_ID_LEN)
		return mv_fail(err, 400, "invalid_value", "id must be %d lower-case hex characters", MV_ID_LEN);
	if (!json_is_string(name) || !name_valid(json_string_value(name)))
		return mv_fail(err, 400, "invalid_value", "name must be 1-%d characters [A-Za-z0-9._-]", MV_NAME_MAX);
	if (addr && (!json_is_string(addr) || json_string_length(addr) > 63))
		return mv_fail(err, 400, "invalid_value", "address must be a string of at most 63 bytes");
	if (!json_is_integer(cpus) || json_integer_value(cpus) < 1 || json_integer_value(cpus) > 65536)
		return mv_fail(err, 400, "invalid_value", "resources.cpus must be an integer 1-65536");
	if (!json_is_integer(mem) || json_integer_value(mem) < 1 || json_integer_value(mem) > (1LL << 40))
		return mv_fail(err, 400, "invalid_value", "resources.memory_mb must be a positive integer");
	if (!json_is_object(drivers))
		return mv_fail(err, 400, "invalid_type", "drivers must be an object");
	json_object_foreach((json_t *)drivers, k, v) {
		if (driver_index(k) < 0 || !json_is_object(v))
			return mv_fail(err, 400, "invalid_value", "drivers.%.32s is not a known driver description", k);
	}
	if (bridges && (!json_is_array(bridges) || json_array_size(bridges) > 1024))
		return mv_fail(err, 400, "invalid_type", "bridges must be an array of interface names");
	json_array_foreach(bridges, i, v) {
		if (!json_is_string(v) || json_string_length(v) > MV_BRIDGE_MAX || !name_valid(json_string_value(v)))
			return mv_fail(err, 400, "invalid_value", "bridges[%zu] is not an interface name", i);
	}
	if (labels && !json_is_object(labels))
		return mv_fail(err, 400, "invalid_type", "labels must be an object of strings");
	if (json_object_get(b, "instances") && !json_is_array(json_object_get(b, "instances")))
		return mv_fail(err, 400, "invalid_type", "instances must be an array of instance ids");
	json_object_foreach((json_t *)labels, k, v) {
		if (!name_valid(k) || !json_is_string(v) || !label_value_valid(json_string_value(v)))
			return mv_fail(err, 400, "invalid_value", "label %.64s is not valid", k);
	}
	return 0;
}


/* Reconciliation, when a node registers (its restart, the core's, or a healed partition).
 * The node says which instances it has alive; the core's record says what should run where.
 *   - alive on the node but unknown to the core, placed elsewhere since, or ended in the
 *     core's view: the node is told to stop its copy (never two copies of one instance);
 *   - lost in the core's view (the node was down) but alive there and not moved: running
 *     again;
 *   - running in the core's view but not alive on the node: lost;
 *   - scheduled or starting: the start is sent again (the node ignores what it already did).
 * Every difference is logged. */
static void reconcile(struct core *c, struct node *n, const json_t *alive)
{
	const char *key;
	void *v;
	const json_t *idv;
	size_t i;
	struct hmap listed; /* the node's alive ids, for lookups in O(1): a node may run 10,000 */

	hmap_init(&listed);
	json_array_foreach(alive, i, idv) {
		if (json_is_string(idv))
			hmap_put(&listed, json_string_value(idv), (void *)idv);
	}
	n->vcpus_milli_used = n->memory_mb_used = 0;
	n->n_instances = 0;
	node_view_sync(n);
	json_array_foreach(alive, i, idv) {
		const char *id = json_string_value(idv);
		struct instance *in = id ? core_instance(c, id) : NULL;
		if (!id)
			continue;
		if (in && in->state == INST_PENDING && strcmp(in->lost_node, n->id) == 0) {
			/* lost, not placed anywhere yet, and its old node is back with it: keep it there */
			log_info("reconcile: instance %s is alive on node %s again: adopted back", id, n->name);
			memcpy(in->node_id, n->id, sizeof in->node_id);
			in->lost_node[0] = '\0';
			free(in->error);
			in->error = NULL;
			if (instance_set_state(c, in, INST_RUNNING) < 0)
				log_warnx("reconcile: could not store instance %s as running", id);
		} else if (!in || strcmp(in->node_id, n->id) != 0 ||
		           (inst_state_terminal(in->state) && in->state != INST_LOST)) {
			log_warnx("reconcile: node %s runs %s, which the core %s: stopping that copy", n->name, id,
			          !in ? "has no record of" : strcmp(in->node_id, n->id) != 0 ? "placed on another node" : "sees ended");
			node_enqueue_id(c, n, "stop", id);
		} else if (in->state == INST_LOST) {
			log_info("reconcile: instance %s is alive on node %s again: running", id, n->name);
			free(in->error);
			in->error = NULL;
			if (instance_set_state(c, in, INST_RUNNING) < 0)
				log_warnx("reconcile: could not store instance %s as running", id);
		}
	}
	for (size_t k = 0; hmap_next(&c->instances, &k, &key, &v);) {
		struct instance *in = v;
		if (strcmp(in->node_id, n->id) != 0 || inst_state_terminal(in->state))
			continue;
		if (in->state == INST_RUNNING && !hmap_get(&listed, in->id)) {
			log_warnx("reconcile: node %s no longer has instance %s: lost", n->name, in->id);
			if (!in->error && !(in->error = strdup("its node no longer has it (restarted without its records?)")))
				fatal("strdup");
			if (instance_set_state(c, in, INST_LOST) < 0)
				log_warnx("reconcile: could not store instance %s as lost", in->id);
			continue;
		}
		node_reserve(n, in);
		if (in->state == INST_SCHEDULED || in->state == INST_STARTING)
			node_enqueue(c, n, "start", in);
		if (in->stop_requested)
			node_enqueue(c, n, "stop", in);
	}
	hmap_free(&listed);
}

/* Three heartbeats fit in the timeout, so one lost message does not make a node down. */
static int heartbeat_interval(struct core *c)
{
	int s = c->opts.heartbeat_timeout_s / 3;
	return s < 1 ? 1 : s > HEARTBEAT_INTERVAL_S ? HEARTBEAT_INTERVAL_S : s;
}

void nodeapi_register(struct core *c, struct evhttp_request *req, UNUSED const char *unused)
{
	json_t *b = NULL;
	struct mv_error err;
	struct node *n;
	bool is_new;
	json_t *alive;
	char token_a[MV_ID_LEN + 1], token_b[MV_ID_LEN + 1];
	const json_t *res;

	if (http_read_json(req, &b, &err) < 0 || check_register(b, &err) < 0) {
		json_decref(b);
		http_reply_error(req, &err);
		return;
	}
	n = core_node(c, json_string_value(json_object_get(b, "id")));
	is_new = !n;
	if (is_new) {
		if (!(n = calloc(1, sizeof *n)))
			fatal("calloc");
		snprintf(n->id, sizeof n->id, "%s", json_string_value(json_object_get(b, "id")));
	}
	snprintf(n->name, sizeof n->name, "%s", json_string_value(json_object_get(b, "name")));
	snprintf(n->address, sizeof n->address, "%s", json_string_value(json_object_get(b, "address")) ?: "");
	res = json_object_get(b, "resources");
	n->cpus = (int)json_integer_value(json_object_get(res, "cpus"));
	n->memory_mb = json_integer_value(json_object_get(res, "memory_mb"));
	json_decref(n->drivers);
	json_decref(n->labels);
	n->drivers = json_incref(json_object_get(b, "drivers"));
	n->labels = json_object_get(b, "labels") ? json_incref(json_object_get(b, "labels")) : json_object();
	json_decref(n->bridges);
	n->bridges = json_object_get(b, "bridges") ? json_incref(json_object_get(b, "bridges")) : json_array();
	alive = json_object_get(b, "instances") ? json_incref(json_object_get(b, "instances")) : json_array();
	json_decref(b);
	if (store_put_node(c->store, n) < 0) {
		json_decref(alive);
		if (is_new)
			node_free(n);
		mv_fail(&err, 500, "store_failed", "the store could not record the node; try again");
		http_reply_error(req, &err);
		return;
	}
	if (is_new)
		core_add_node(c, n);
	else
		node_capacity(c, n);
	id_generate(token_a);
	id_generate(token_b);
	snprintf(n->token, sizeof n->token, "%s%s", token_a, token_b);
	if (n->poll)
		poll_answer(n);
	log_info("node %s (%s) registered: %d cpus, %" PRId64 " MiB", n->name, n->id, n->cpus, n->memory_mb);
	node_ready(c, n);
	reconcile(c, n, alive);
	json_decref(alive);
	http_reply_json(req, 200, json_pack("{s:s, s:s, s:i}", "id", n->id, "token", n->token,
	                                    "heartbeat_interval_s", heartbeat_interval(c)));
	core_schedule_pending(c);
}

/* ---- reports ---- */

struct report {
	const char *id;
	struct instance *in;
	enum inst_state state;
	bool ready; /* the guest printed its ready marker */
	bool traced; /* its timing made the instance's trace */
	bool has_exit_code;
	int exit_code;
	const char *error;
	struct node_timing timing;
};

static int parse_report(struct core *c, struct node *n, const json_t *r, struct report *out, struct mv_error *err)
{
	const json_t *id = json_object_get(r, "id"), *st = json_object_get(r, "state");
	const json_t *code = json_object_get(r, "exit_code"), *msg = json_object_get(r, "error");
	const json_t *ready = json_object_get(r, "ready");
	int s;

	memset(out, 0, sizeof *out);
	if (!json_is_string(id) || !json_is_string(st))
		return mv_fail(err, 400, "invalid_value", "each report needs id and state strings");
	s = inst_state_parse(json_string_value(st));
	if (s != INST_STARTING && s != INST_RUNNING && s != INST_STOPPED && s != INST_EXITED && s != INST_FAILED)
		return mv_fail(err, 400, "invalid_value", "a node reports starting, running, stopped, exited or failed");
	if (code && !json_is_integer(code))
		return mv_fail(err, 400, "invalid_type", "exit_code must be an integer");
	if (msg && !json_is_string(msg))
		return mv_fail(err, 400, "invalid_type", "error must be a string");
	if (ready && (!json_is_boolean(ready) || s != INST_RUNNING))
		return mv_fail(err, 400, "invalid_value", "ready must be a boolean and comes with state running");
	if (json_object_get(r, "timing") && node_timing_from_json(&out->timing, json_object_get(r, "timing")) < 0)
		return mv_fail(err, 400, "invalid_value", "timing must hold durations in microseconds (0 to 1 h)");
	out->id = json_string_value(id);
	out->in = core_instance(c, out->id);
	if (out->in && strcmp(out->in->node_id, n->id) != 0)
		out->in = NULL; /* not this node's business */
	out->state = (enum inst_state)s;
	out->has_exit_code = code != NULL;
	out->exit_code = (int)json_integer_value(code);
	out->error = json_string_value(msg);
	out->ready = json_is_true(ready);
	return 0;
}

/* Is the report a step forward? Reports can repeat after reconnects. */
static bool transition_allowed(const struct instance *in, const struct report *r)
{
	enum inst_state from = in->state, to = r->state;
	if (inst_state_terminal(from))
		return false;
	if (r->ready)
		return !in->ready && (from == INST_SCHEDULED || from == INST_STARTING || from == INST_RUNNING);
	if (to == INST_STARTING)
		return from == INST_SCHEDULED;
	if (to == INST_RUNNING)
		return from == INST_SCHEDULED || from == INST_STARTING;
	return true;
}

/* Applies a report's state to memory and the store (inside the caller's transaction). */
static bool apply_report(struct core *c, struct node *n, struct report *r, int64_t arrived)
{
	struct instance *in = r->in;
	if (!in || !transition_allowed(in, r))
		return false;
	if (r->state == INST_RUNNING && in->marks.accepted_us && in->marks.sent_us && r->timing.work_us) {
		/* Only for an instantiation this core saw from its request on (not after its own
		 * restart or the node's). The trace is stored with the state it explains. notify ends here: the core has
		 * the report applied; storing it and waking the clients follow at once. */
		in->marks.reported_us = arrived;
		in->marks.notified_us = clock_mono_us();
		trace_compute(&in->trace, &in->marks, &r->timing);
		in->has_trace = r->traced = true;
	}
	instance_state_assign(c, in, r->state);
	in->ready = in->ready || r->ready;
	in->updated_wall_us = clock_wall_us();
	if (r->has_exit_code) {
		in->has_exit_code = true;
		in->exit_code = r->exit_code;
	}
	if (r->error && !in->error && !(in->error = strdup(r->error)))
		fatal("strdup");
	if (inst_state_terminal(r->state))
		node_release(n, in);
	return store_put_instance(c->store, in) == 0;
}

void nodeapi_reports(struct core *c, struct evhttp_request *req, const char *id)
{
	int64_t arrived = clock_mono_us();
	struct node *n = core_node(c, id);
	json_t *b = NULL, *list, *r;
	struct report *reps = NULL;
	struct mv_error err;
	size_t i, count;

	if (!node_live(n, req))
		return;
	if (http_read_json(req, &b, &err) < 0)
		goto fail;
	list = json_object_get(b, "reports");
	if (!json_is_array(list) || json_array_size(list) > 4096) {
		mv_fail(&err, 400, "invalid_type", "reports must be an array (at most 4096)");
		goto fail;
	}
	count = json_array_size(list);
	if (!(reps = calloc(count + 1, sizeof *reps)))
		fatal("calloc");
	json_array_foreach(list, i, r) {
		if (parse_report(c, n, r, &reps[i], &err) < 0)
			goto fail;
	}
	if (store_begin(c->store) < 0) {
		mv_fail(&err, 500, "store_failed", "the store is not writable; report again");
		goto fail;
	}
	for (i = 0; i < count; i++)
		if (!apply_report(c, n, &reps[i], arrived))
			reps[i].in = NULL;
	if (store_commit(c->store) < 0) {
		store_rollback(c->store);
		mv_fail(&err, 500, "store_failed", "the store could not save the reports; report again");
		goto fail; /* memory is ahead of the store; the node's retry rewrites the same states */
	}
	/* Durable now: tell the world. */
	for (i = 0; i < count; i++) {
		struct instance *in = reps[i].in;
		if (!in) {
			/* an ended copy the core does not count on (moved elsewhere, or purged):
			 * its node may remove its files */
			if (inst_state_terminal(reps[i].state) && strlen(reps[i].id) == MV_ID_LEN)
				node_enqueue_id(c, n, "purge", reps[i].id);
			continue;
		}
		/* A guest with a ready marker: the trace of "running" is provisional, the one of
		 * "ready" (with boot) is final and goes to the metrics. */
		if (reps[i].traced && (reps[i].ready || !in->has_ready)) {
			metrics_observe_trace(c->metrics, in->driver, &in->trace);
			traces_record(c->traces, in->driver, in->id, in->name, in->node_id, &in->trace, clock_wall_us());
		}
		events_publish_instance(c, in);
		instance_wake(in);
	}
	http_reply_json(req, 200, json_object());
	if (count > 0)
		core_schedule_pending(c);
	goto out;
fail:
	http_reply_error(req, &err);
out:
	free(reps);
	json_decref(b);
}

/* ---- liveness ---- */

/* A node is down: what it ran is lost. Instances with "restart": "on-lost" go back to
 * pending and are placed on another node; if the old node comes back, reconciliation
 * stops its copy. */
static void lose_instances(struct core *c, struct node *n)
{
	const char *key;
	void *v;
	bool replace = false;
	for (size_t i = 0; hmap_next(&c->instances, &i, &key, &v);) {
		struct instance *in = v;
		if (strcmp(in->node_id, n->id) != 0 || inst_state_terminal(in->state))
			continue;
		node_release(n, in);
		free(in->error);
		in->error = NULL;
		if (asprintf(&in->error, "node %s stopped heartbeating", n->name) < 0)
			fatal("asprintf");
		if (instance_set_state(c, in, INST_LOST) < 0)
			log_warnx("could not store instance %s as lost", in->id);
		if (in->restart_on_lost && !in->stop_requested) {
			log_info("instance %s was lost with node %s: placing it again", in->id, n->name);
			memcpy(in->lost_node, in->node_id, sizeof in->lost_node);
			in->node_id[0] = '\0';
			in->has_trace = in->ready = false;
			memset(&in->marks, 0, sizeof in->marks);
			if (instance_set_state(c, in, INST_PENDING) < 0)
				log_warnx("could not store instance %s as pending", in->id);
			replace = true;
		}
	}
	if (replace)
		core_schedule_pending(c);
}

void nodes_sweep(struct core *c)
{
	int64_t now = clock_mono_us(), limit = (int64_t)c->opts.heartbeat_timeout_s * 1000000;
	for (int i = 0; i < c->n_nodes; i++) {
		struct node *n = c->nodes[i];
		if (!n->ready || now - n->last_heartbeat_mono_us <= limit)
			continue;
		n->ready = false;
		node_view_sync(n);
		log_warnx("node %s (%s) is down: no heartbeat for %d s", n->name, n->id, c->opts.heartbeat_timeout_s);
		events_publish_node(c, n, "down");
		lose_instances(c, n);
	}
}
