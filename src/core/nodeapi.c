/* nodeapi — the nodes' routes: listing them for users, and the node-facing protocol
 * (register, heartbeat, the long-poll for assignments, status reports; common/wire.h).
 * An assignment reaches a node on the long-poll it keeps waiting here: no polling
 * interval anywhere on the path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/http.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/wire.h"
#include "core/api.h"
#include "core/cluster.h"
#include "core/nodeauth.h"
#include "core/pools.h"

#define POLL_DEFAULT_S 25.0
#define POLL_MAX_S 60.0

/* A node's waiting long-poll (node->poll). */
struct node_poll {
	struct api *api;
	struct node *node;
	struct evhttp_request *req; /* NULL while none waits */
	struct event *timer;
	bool wants_pools;           /* the node asked with pools=VERSION (warm pools, core/pools.h) */
	uint64_t pools_seen;        /* ... the version of its pools it has */
};

/* ---- users: GET /v1/nodes[/{id}] ---- */

static json_t *node_to_json(const struct node *n)
{
	char hb[40] = "";
	if (n->last_heartbeat_wall_us)
		clock_iso8601(n->last_heartbeat_wall_us, hb, sizeof hb);
	return json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:{s:f, s:I, s:i}, s:{s:f, s:I}, s:i, s:s?, s:O?}",
	                 "id", n->id, "name", n->name, "state", n->ready ? "ready" : "down", "address",
	                 n->address, "drivers", n->drivers, "labels", n->labels, "bridges", n->bridges, "resources",
	                 "vcpus", (double)n->vcpus_milli_total / 1000.0, "memory_mb", (json_int_t)n->memory_mb_total,
	                 "cpus", n->cpus, "allocated", "vcpus", (double)n->vcpus_milli_used / 1000.0,
	                 "memory_mb", (json_int_t)n->memory_mb_used, "instances", n->n_instances,
	                 "last_heartbeat", n->last_heartbeat_wall_us ? hb : NULL, "run_dir", n->run_dir);
}

void api_nodes_list(struct api *a, struct evhttp_request *req, UNUSED const char *id)
{
	json_t *list = json_array();
	for (int i = 0; i < cluster_node_count(a->cluster); i++)
		json_array_append_new(list, node_to_json(cluster_node_at(a->cluster, i)));
	http_reply_json(req, 200, json_pack("{s:o}", "nodes", list));
}

void api_node_show(struct api *a, struct evhttp_request *req, const char *id)
{
	struct node *n = cluster_node(a->cluster, id);
	struct mv_error err;
	if (!n) {
		mv_fail(&err, 404, "not_found", "no node with id %.64s", id);
		http_reply_error(req, &err);
		return;
	}
	http_reply_json(req, 200, node_to_json(n));
}

/* ---- the long-poll ---- */

static void add_assignment(void *arg, uint64_t seq, enum node_op op, const char *id, const struct inst_spec *spec,
                           uint32_t run)
{
	json_array_append_new(arg, wire_assignment_to_json(seq, op, id, spec, run));
}

static bool pools_outdated(const struct node_poll *p)
{
	return p->wants_pools && p->pools_seen != pools_version(p->api->pools);
}

static json_t *node_pools(struct api *a, const struct node *n);

/* Answers the node's waiting long-poll with everything queued (possibly nothing), and the
 * pools it keeps when its version of them is not the core's. */
static void poll_answer(struct node_poll *p)
{
	struct evhttp_request *req = p->req;
	json_t *list;
	if (!req)
		return;
	p->req = NULL;
	evtimer_del(p->timer);
	list = json_array();
	cluster_node_take(p->api->cluster, p->node, add_assignment, list);
	if (pools_outdated(p)) /* what it must keep warm now, whole */
		http_reply_json(req, 200, json_pack("{s:o, s:{s:I, s:o}}", "assignments", list, "pools", "version",
		                                    (json_int_t)pools_version(p->api->pools), "list",
		                                    node_pools(p->api, p->node)));
	else
		http_reply_json(req, 200, json_pack("{s:o}", "assignments", list));
}

bool nodeapi_keeps_pool(const struct node *n, const struct pool *pl)
{
	return n->ready && json_object_get(n->drivers, pl->spec.driver) != NULL;
}

int nodeapi_pool_share(struct api *a, const struct pool *pl, const struct node *want)
{
	int idx = -1, k = 0;
	for (int i = 0; i < cluster_node_count(a->cluster); i++) {
		const struct node *n = cluster_node_at(a->cluster, i);
		if (!nodeapi_keeps_pool(n, pl))
			continue;
		if (n == want)
			idx = k;
		k++;
	}
	return pools_share(pl->size, idx, k);
}

struct node_pools {
	struct api *api;
	const struct node *node;
	json_t *list;
};

static void add_node_pool(void *arg, const struct pool *pl)
{
	struct node_pools *np = arg;
	if (!nodeapi_keeps_pool(np->node, pl))
		return;
	json_array_append_new(np->list, json_pack("{s:s, s:i, s:o}", "name", pl->name, "size",
	                                          nodeapi_pool_share(np->api, pl, np->node), "spec",
	                                          spec_to_json(&pl->spec)));
}

/* The pools node n keeps, with its share of each: [{"name", "size", "spec"}]. */
static json_t *node_pools(struct api *a, const struct node *n)
{
	struct node_pools np = {.api = a, .node = n, .list = json_array()};
	pools_foreach(a->pools, add_node_pool, &np);
	return np.list;
}

void nodeapi_pools_changed(struct api *a)
{
	for (int i = 0; i < cluster_node_count(a->cluster); i++) {
		struct node_poll *p = cluster_node_at(a->cluster, i)->poll;
		if (p && p->req && pools_outdated(p))
			poll_answer(p);
	}
}

static void poll_timeout(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { poll_answer(arg); }

static struct node_poll *poll_of(struct api *a, struct node *n)
{
	struct node_poll *p = n->poll;
	if (p)
		return p;
	if (!(p = calloc(1, sizeof *p)))
		fatal("calloc");
	*p = (struct node_poll){.api = a, .node = n};
	p->timer = evtimer_new(a->base, poll_timeout, p);
	n->poll = p;
	return p;
}

void nodeapi_node_wake(UNUSED void *arg, struct node *n)
{
	if (n->poll)
		poll_answer(n->poll);
}

void nodeapi_poll_refuse(UNUSED struct api *a, struct node *n, const struct mv_error *err)
{
	struct node_poll *p = n->poll;
	struct evhttp_request *req;
	if (!p || !(req = p->req))
		return;
	p->req = NULL;
	evtimer_del(p->timer);
	http_reply_error(req, err);
}

void nodeapi_release_polls(struct api *a)
{
	struct mv_error err;
	mv_fail(&err, 503, "shutting_down", "the core is shutting down");
	for (int i = 0; i < cluster_node_count(a->cluster); i++) {
		struct node *n = cluster_node_at(a->cluster, i);
		struct node_poll *p = n->poll;
		if (!p)
			continue;
		if (p->req)
			http_reply_error(p->req, &err);
		event_free(p->timer);
		free(p);
		n->poll = NULL;
	}
}

/* A node the core declared down (or has not seen since its own restart) must register
 * again, so that its instances are reconciled before it takes new work. */
struct node *nodeapi_live_node(struct api *a, struct evhttp_request *req, const char *id)
{
	struct node *n = cluster_node(a->cluster, id);
	struct mv_error err;
	if (!n) {
		mv_fail(&err, 404, "register_again", "node %.64s is unknown to the core: register again", id);
		http_reply_error(req, &err);
		return NULL;
	}
	if (cluster_node_touch(a->cluster, n, &err) < 0) {
		http_reply_error(req, &err);
		return NULL;
	}
	return n;
}

void nodeapi_assignments(struct api *a, struct evhttp_request *req, const char *id)
{
	struct node *n;
	struct node_poll *p;
	char buf[32], *end;
	uint64_t after = 0, pools_seen = 0;
	bool wants_pools = false;
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
	if (http_query(req, "pools", buf, sizeof buf)) {
		errno = 0;
		pools_seen = strtoull(buf, &end, 10);
		if (errno || end == buf || *end) {
			mv_fail(&err, 400, "invalid_query", "pools must be an unsigned integer (the version of the pools the node has)");
			http_reply_error(req, &err);
			return;
		}
		wants_pools = true;
	}
	if (http_query_double(req, "wait", 0, POLL_MAX_S, &wait_s, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	if (!(n = nodeapi_live_node(a, req, id)))
		return;
	cluster_node_ack(a->cluster, n, after);
	p = poll_of(a, n);
	if (p->req) /* a stale poll from a connection the node gave up on */
		poll_answer(p);
	p->req = req;
	p->wants_pools = wants_pools;
	p->pools_seen = pools_seen;
	if (cluster_node_has_work(n) || pools_outdated(p) || wait_s == 0) {
		poll_answer(p);
		return;
	}
	struct timeval tv = clock_timeval(wait_s);
	evtimer_add(p->timer, &tv);
}

void nodeapi_heartbeat(struct api *a, struct evhttp_request *req, const char *id)
{
	struct node *n = nodeapi_live_node(a, req, id);
	if (n) /* the interval may have grown (or shrunk back) with the number of nodes */
		http_reply_json(req, 200, json_pack("{s:i}", "heartbeat_interval_s", cluster_node_interval_tell(a->cluster, n)));
}

/* Who may register reg->id (authz_node_register_check), asked before anything changes. */
static int register_allowed(struct api *a, const struct wire_register *reg, struct mv_error *err)
{
	const struct node_credential *k = nodeauth_credential(a->nodeauth, reg->id);
	return authz_node_register_check(a->who, reg->id, k && !k->revoked, k && k->revoked, err);
}

/* A node that joined with a join token gets its own credential, bound to its id, in the
 * reply (its only copy). Issued after the registration is durable: if this fails, the
 * node is registered without one and may join again. */
static int credential_for(struct api *a, const struct node *n, json_t *reply, struct mv_error *err)
{
	char token[SECRET_TOKEN_LEN + 1];
	const struct node_credential *k;
	if (a->who->kind != AUTHZ_JOIN)
		return 0;
	if (nodeauth_credential_issue(a->nodeauth, n->id, a->who->token_id, token, &k, err) < 0)
		return -1;
	json_object_set_new(reply, "credential", json_string(token));
	json_object_set_new(reply, "credential_id", json_string(k->id));
	memset(token, 0, sizeof token);
	log_info("node %s (%s) joined with join token %s: credential %s issued", n->name, n->id, a->who->token_id,
	         k->id);
	return 0;
}

void nodeapi_register(struct api *a, struct evhttp_request *req, UNUSED const char *unused)
{
	json_t *b = NULL, *reply;
	struct wire_register reg;
	struct mv_error err;
	struct node *n;

	if (http_read_json_max(req, WIRE_REGISTER_BODY_MAX, &b, &err) < 0 || wire_register_parse(&reg, b, &err) < 0) {
		json_decref(b);
		http_reply_error(req, &err);
		return;
	}
	json_decref(b);
	if (register_allowed(a, &reg, &err) < 0 || cluster_node_register(a->cluster, &reg, &n, &err) < 0) {
		wire_register_free(&reg);
		http_reply_error(req, &err);
		return;
	}
	wire_register_free(&reg);
	/* its warm stock is what it says after registering (it always does): a node that
	 * restarted re-attaches its paused guests first, and they are not takeable until then */
	pools_set_stock(a->pools, n->id, NULL);
	if (n->poll) /* a poll from before it registered again gets what is queued */
		poll_answer(n->poll);
	n->hb_told_s = 0; /* a registration starts the node's timer afresh */
	reply = json_pack("{s:s, s:s, s:i}", "id", n->id, "token", n->token, "heartbeat_interval_s",
	                  cluster_node_interval_tell(a->cluster, n));
	if (credential_for(a, n, reply, &err) < 0) {
		json_decref(reply);
		http_reply_error(req, &err);
		return;
	}
	http_reply_json(req, 200, reply);
}

/* POST /v1/nodes/{id}/revoke (admin): the node's credential ends and its id is refused
 * from now on; the node is down at once (its token of the moment stops working, its
 * long-poll is answered 401) and its instances are lost, as when a node stops beating. */
void api_node_revoke(struct api *a, struct evhttp_request *req, const char *id)
{
	struct node *n = cluster_node(a->cluster, id);
	const struct node_credential *k = nodeauth_credential(a->nodeauth, id);
	struct mv_error err;
	int lost;

	if (!n && !k) {
		mv_fail(&err, 404, "not_found", "no node with id %.64s", id);
		http_reply_error(req, &err);
		return;
	}
	if (nodeauth_node_revoke(a->nodeauth, id, &err) < 0) {
		http_reply_error(req, &err);
		return;
	}
	lost = n ? cluster_node_revoke(a->cluster, n) : 0;
	if (n) {
		mv_fail(&err, 401, "unauthorized", "node %s was revoked", id);
		nodeapi_poll_refuse(a, n, &err);
	}
	log_info("node %s revoked: %d instances lost with it", id, lost);
	http_reply_json(req, 200, json_pack("{s:s, s:b, s:i}", "id", id, "revoked", 1, "instances_lost", lost));
}

void nodeapi_bridges(struct api *a, struct evhttp_request *req, const char *id)
{
	struct node *n;
	json_t *b = NULL, *bridges = NULL;
	struct mv_error err;

	if (!(n = nodeapi_live_node(a, req, id)))
		return;
	if (http_read_json(req, &b, &err) < 0 || wire_bridges_parse(b, &bridges, &err) < 0 ||
	    cluster_node_set_bridges(a->cluster, n, bridges, &err) < 0)
		http_reply_error(req, &err);
	else
		http_reply_json(req, 200, json_object());
	json_decref(bridges);
	json_decref(b);
}

/* The reply to a node's reports: {"skipped": [ids]} names those about instances the core
 * has placed on another node, which changed nothing (cluster_node_reports applies a
 * node's reports to its own instances only). The batch is not refused for them: after a
 * partition a node's stale copy may still report, and a refused batch would hold back
 * the reports of its own instances. */
static json_t *others_skipped(struct api *a, const struct node *n, const struct wire_report *reps, size_t count)
{
	json_t *skipped = json_array();
	for (size_t i = 0; i < count; i++) {
		const struct instance *in = cluster_instance(a->cluster, reps[i].id);
		if (in && in->node_id[0] && strcmp(in->node_id, n->id) != 0)
			json_array_append_new(skipped, json_string(in->id));
	}
	if (json_array_size(skipped) == 0) {
		json_decref(skipped);
		return json_object();
	}
	return json_pack("{s:o}", "skipped", skipped);
}

void nodeapi_reports(struct api *a, struct evhttp_request *req, const char *id)
{
	int64_t arrived = clock_mono_us();
	struct node *n;
	json_t *b = NULL;
	struct wire_report *reps = NULL;
	size_t count;
	struct mv_error err;

	if (!(n = nodeapi_live_node(a, req, id)))
		return;
	if (http_read_json(req, &b, &err) < 0 || wire_reports_parse(b, &reps, &count, &err) < 0 ||
	    cluster_node_reports(a->cluster, n, reps, count, arrived, &err) < 0)
		http_reply_error(req, &err);
	else
		http_reply_json(req, 200, others_skipped(a, n, reps, count));
	free(reps);
	json_decref(b);
}

/* PUT /v1/nodes/{id}/pools {"pools": {"NAME": {"ready": N, "booting": N}}}: what it has warm. */
void nodeapi_pools_stock(struct api *a, struct evhttp_request *req, const char *id)
{
	struct node *n;
	json_t *b = NULL;
	struct mv_error err;
	if (!(n = nodeapi_live_node(a, req, id)))
		return;
	if (http_read_json(req, &b, &err) < 0 || pools_stock_check(b, &err) < 0) {
		json_decref(b);
		http_reply_error(req, &err);
		return;
	}
	pools_set_stock(a->pools, n->id, json_object_get(b, "pools"));
	json_decref(b);
	http_reply_json(req, 200, json_object());
}
