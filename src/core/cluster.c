/* cluster — see cluster.h. Sections: instances in memory; the lifecycle (every state
 * change is a step of core/lifecycle.h's table, carried out here: memory, then the store,
 * then the world); batches (several steps, one transaction); waiting clients; creation and
 * placement; nodes (registration, reconciliation, assignments, reports, liveness); loading. */
#include "core/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/hmap.h"
#include "common/idset.h"
#include "common/log.h"
#include "core/images.h"
#include "core/lifecycle.h"
#include "core/metrics.h"
#include "core/pools.h"
#include "core/store.h"
#include "drivers/drivers.h"

#define HEARTBEAT_INTERVAL_MAX_S 5
#define SWEEP_INTERVAL_S 1.0

struct cluster {
	struct cluster_options opts;
	struct event_base *base;
	struct store *store;
	struct images *images;
	struct metrics *metrics;
	struct cluster_hooks hooks;
	struct hmap instances; /* id -> struct instance */
	struct idset by_id;    /* the same, in id order: listing pages (GET /v1/instances) */
	struct hmap names;     /* name -> struct instance */
	struct hmap usage;     /* project -> struct project_usage (quotas) */
	struct hmap node_ids;  /* id -> struct node */
	struct hmap on_node;   /* node id -> struct node_members: the instances placed on it */
	struct hmap pending;   /* id -> struct instance, those pending: what placement retries */
	int64_t settled_us;    /* monotonic: until then creates are not refused for want of a node */
	struct node **nodes;   /* array: the scheduler scans it */
	int n_nodes, cap_nodes;
	struct sched_node *sched_view; /* the scheduler's view of every node, kept current */
	struct sched_slot *sched_scratch; /* sched_place()'s heap: cap_nodes slots */
	int *chosen, cap_chosen;          /* sched_place()'s answer for one run of requests */
	struct pools *pools;              /* the nodes' warm stock, for placement; NULL: none */
	int *warm, cap_warm;              /* a request's pool: warm guests per node view */
	bool warm_any;                    /* ... some node has one */
	struct hmap exec_ids;  /* executable path -> id + 1 (at most 64): one bit in a node's mask */
	int n_exec_ids;
	struct event *sweep_timer;
	/* Instances lost in memory whose rows are still to say so (lost_write_later), in the order
	 * they were lost: ids, the next to write at ids[lost_next]. */
	char (*lost_ids)[MV_ID_LEN + 1];
	size_t n_lost, lost_next, cap_lost;
	struct event *lost_writer;
	/* Kept current by instance_state_assign, so that no count needs a scan. */
	int64_t n_in_flight; /* pending, scheduled, starting: what --max-inflight bounds */
	int64_t n_pending;
	int n_state[INST_STATE_COUNT]; /* instances per state: /metrics reads these, not a scan */
	uint64_t n_refused_saturated;
	int n_waiters; /* clients waiting for states (a follower refreshes while there are) */
};

const struct cluster_options *cluster_options(const struct cluster *c) { return &c->opts; }

/* Whether this core acts: places, sends to nodes, declares nodes down. A follower among
 * several cores (hooks.leading false) only records what it is asked; the leader acts. */
static bool leading(const struct cluster *c) { return !c->hooks.leading || c->hooks.leading(c->hooks.arg); }
bool cluster_leading(const struct cluster *c) { return leading(c); }

/* ---- instances in memory ---- */

struct instance *cluster_instance(const struct cluster *c, const char *id) { return hmap_get(&c->instances, id); }

size_t cluster_instance_count(const struct cluster *c) { return hmap_size(&c->instances); }
int64_t cluster_in_flight(const struct cluster *c) { return c->n_in_flight; }
uint64_t cluster_refused_saturated(const struct cluster *c) { return c->n_refused_saturated; }

static void counts_add(struct cluster *c, enum inst_state st, int sign)
{
	c->n_in_flight += sign * (int)inst_state_in_flight(st);
	c->n_pending += sign * (st == INST_PENDING);
	c->n_state[st] += sign;
}

/* What a project's instance records hold, kept current by instance_insert/remove. */
struct project_usage {
	char project[MV_NAME_MAX + 1];
	struct authz_quota used;
};

static void usage_add(struct cluster *c, const struct instance *in, int sign)
{
	struct project_usage *u = hmap_get(&c->usage, in->project);
	if (!u) {
		if (!(u = calloc(1, sizeof *u)))
			fatal("calloc");
		snprintf(u->project, sizeof u->project, "%s", in->project);
		hmap_put(&c->usage, u->project, u);
	}
	u->used.instances += sign;
	u->used.vcpus_milli += sign * in->spec.vcpus_milli;
	u->used.memory_mb += sign * in->spec.memory_mb;
}

void cluster_project_usage(const struct cluster *c, const char *project, struct authz_quota *out)
{
	const struct project_usage *u = hmap_get(&c->usage, project);
	*out = u ? u->used : (struct authz_quota){0};
}

/* The instances whose node_id is one node's, by node id (the node may not be registered
 * yet): a node's registration reconciles its own instances, not a scan of every instance
 * (a million, with 10,000 nodes registering again after a core restart). */
struct node_members {
	char node_id[MV_ID_LEN + 1];
	struct hmap ids; /* instance id -> struct instance */
};

static void members_add(struct cluster *c, struct instance *in)
{
	struct node_members *m;
	if (!in->node_id[0])
		return;
	if (!(m = hmap_get(&c->on_node, in->node_id))) {
		if (!(m = calloc(1, sizeof *m)))
			fatal("calloc");
		memcpy(m->node_id, in->node_id, sizeof m->node_id);
		hmap_init(&m->ids);
		hmap_put(&c->on_node, m->node_id, m);
	}
	hmap_put(&m->ids, in->id, in);
}

static void members_free(struct node_members *m)
{
	hmap_free(&m->ids);
	free(m);
}

static void members_remove(struct cluster *c, struct instance *in)
{
	struct node_members *m;
	if (!in->node_id[0] || !(m = hmap_get(&c->on_node, in->node_id)))
		return;
	if (hmap_get(&m->ids, in->id) == in)
		hmap_remove(&m->ids, in->id);
	if (hmap_size(&m->ids) == 0) {
		hmap_remove(&c->on_node, m->node_id);
		members_free(m);
	}
}

/* Every change of in->node_id of an instance in the maps goes through here. */
static void instance_node_assign(struct cluster *c, struct instance *in, const char *node_id)
{
	members_remove(c, in);
	snprintf(in->node_id, sizeof in->node_id, "%s", node_id);
	members_add(c, in);
}

/* The instances placed on node_id now, in an array of the caller's (NULL when none): safe
 * to walk while their events move or remove them. */
static struct instance **members_of(const struct cluster *c, const char *node_id, size_t *n)
{
	const struct node_members *m = hmap_get(&c->on_node, node_id);
	struct instance **out;
	const char *key;
	void *v;
	*n = 0;
	if (!m)
		return NULL;
	if (!(out = calloc(hmap_size(&m->ids), sizeof *out)))
		fatal("calloc");
	for (size_t i = 0; hmap_next(&m->ids, &i, &key, &v);)
		out[(*n)++] = v;
	return out;
}

size_t cluster_node_instance_records(const struct cluster *c, const char *node_id)
{
	const struct node_members *m = hmap_get(&c->on_node, node_id);
	return m ? hmap_size(&m->ids) : 0;
}

/* The pending set follows the state (instance_insert, _remove and _state_assign). */
static void pending_follow(struct cluster *c, struct instance *in)
{
	if (in->state == INST_PENDING)
		hmap_put(&c->pending, in->id, in);
	else if (hmap_get(&c->pending, in->id) == in)
		hmap_remove(&c->pending, in->id);
}

static void instance_insert(struct cluster *c, struct instance *in)
{
	hmap_put(&c->instances, in->id, in);
	members_add(c, in);
	pending_follow(c, in);
	idset_put(&c->by_id, in->id, in);
	hmap_put(&c->names, in->spec.name, in);
	counts_add(c, in->state, +1);
	usage_add(c, in, +1);
}

static void instance_remove(struct cluster *c, struct instance *in)
{
	hmap_remove(&c->instances, in->id);
	members_remove(c, in);
	if (hmap_get(&c->pending, in->id) == in)
		hmap_remove(&c->pending, in->id);
	void *had = idset_remove(&c->by_id, in->id);
	if (had && had != in) /* a follower's refresh may have put a newer record under the id */
		idset_put(&c->by_id, in->id, had);
	if (hmap_get(&c->names, in->spec.name) == in) /* a refresh may have given the name to a newer one */
		hmap_remove(&c->names, in->spec.name);
	counts_add(c, in->state, -1);
	usage_add(c, in, -1);
}

/* Every change of in->state of an instance in the maps goes through here. */
static void instance_state_assign(struct cluster *c, struct instance *in, enum inst_state st)
{
	counts_add(c, in->state, -1);
	in->state = st;
	counts_add(c, st, +1);
	pending_follow(c, in);
}

static void instance_free(struct instance *in)
{
	if (!in)
		return;
	spec_free(&in->spec);
	free(in->error);
	free(in->waiters);
	free(in);
}

static void instance_status(const struct instance *in, struct store_instance_status *st)
{
	*st = (struct store_instance_status){.state = in->state, .stop_requested = in->stop_requested, .run = in->run,
	                                     .has_exit_code = in->has_exit_code, .exit_code = in->exit_code,
	                                     .error = in->error, .has_trace = in->has_trace, .trace = in->trace,
	                                     .updated_us = in->updated_wall_us};
	memcpy(st->node_id, in->node_id, sizeof st->node_id);
}

/* Kept by counts_add: a scan of a million instances took ~0.1 s, and bench/scale's node-loss
 * phase reads /metrics ten times a second, which left the loop no time for the sweep. */
void cluster_count_states(const struct cluster *c, int counts[INST_STATE_COUNT])
{
	memcpy(counts, c->n_state, sizeof c->n_state);
}

const struct instance *cluster_image_user(const struct cluster *c, const char *name)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&c->instances, &i, &k, &v);) {
		const struct instance *in = v;
		if (!inst_state_terminal(in->state) && strcmp(in->spec.image, name) == 0)
			return in;
	}
	return NULL;
}

struct list_walk {
	int state;
	size_t limit, given;
	cluster_instance_fn *fn;
	void *arg;
};

static int list_step(void *arg, const char *id, void *value)
{
	struct list_walk *w = arg;
	const struct instance *in = value;
	(void)id;
	if ((w->state < 0 || in->state == (enum inst_state)w->state) && w->fn(w->arg, in))
		w->given++;
	return w->given >= w->limit;
}

size_t cluster_instances_list(struct cluster *c, int state, const char *after_id, size_t limit,
                              cluster_instance_fn *fn, void *arg)
{
	struct list_walk w = {.state = state, .limit = limit, .fn = fn, .arg = arg};
	if (limit > 0)
		idset_walk(&c->by_id, after_id, list_step, &w);
	return w.given;
}

/* ---- nodes in memory ---- */

struct node *cluster_node(const struct cluster *c, const char *id) { return hmap_get(&c->node_ids, id); }
int cluster_node_count(const struct cluster *c) { return c->n_nodes; }
struct node *cluster_node_at(const struct cluster *c, int i) { return i >= 0 && i < c->n_nodes ? c->nodes[i] : NULL; }

int cluster_nodes_ready(const struct cluster *c)
{
	int ready = 0;
	for (int i = 0; i < c->n_nodes; i++)
		ready += c->nodes[i]->ready;
	return ready;
}

/* The view is updated where a node changes, so that a create never rebuilds it: at
 * 10,000 nodes a rebuild costs more than the pick itself. */
static void node_view_sync(struct cluster *c, struct node *n)
{
	c->sched_view[n->view_idx] = (struct sched_node){
		.ready = n->ready, .drivers = n->driver_mask, .exec_allow = &n->exec_allow,
		.exec_bloom = n->exec_bloom, .exec_mask = n->exec_mask, .exec_exact = n->exec_exact,
		.labels = n->labels, .bridges = n->bridges,
		.vcpus_milli_total = n->vcpus_milli_total, .memory_mb_total = n->memory_mb_total,
		.vcpus_milli_used = n->vcpus_milli_used, .memory_mb_used = n->memory_mb_used};
}

static void node_reserve(struct cluster *c, struct node *n, const struct instance *in)
{
	n->vcpus_milli_used += in->spec.vcpus_milli;
	n->memory_mb_used += in->spec.memory_mb;
	n->n_instances++;
	node_view_sync(c, n);
}

static void node_release(struct cluster *c, struct node *n, const struct instance *in)
{
	n->vcpus_milli_used -= in->spec.vcpus_milli;
	n->memory_mb_used -= in->spec.memory_mb;
	n->n_instances--;
	node_view_sync(c, n);
}

/* The id bit of an executable path (0 when it has none); with add, gives it one if there is
 * room. *exact turns false once some path had to go without (then the masks are not exact). */
static uint64_t exec_bit(struct cluster *c, const char *path, bool add, bool *exact)
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

/* The executables a node allows: those its drivers list under "allow" (driver.h). */
static int node_exec_allow(const json_t *driver_infos, struct exec_allow *out)
{
	const char *k;
	json_t *info;
	memset(out, 0, sizeof *out);
	json_object_foreach((json_t *)driver_infos, k, info) {
		struct exec_allow more;
		if (exec_allow_from_json(&more, json_object_get(info, "allow")) < 0) {
			exec_allow_free(out);
			return -1;
		}
		for (size_t i = 0; i < more.n; i++) {
			char **grown = realloc(out->paths, sizeof *out->paths * (out->n + 1));
			if (!grown)
				fatal("realloc");
			out->paths = grown;
			out->paths[out->n++] = more.paths[i];
		}
		free(more.paths);
	}
	return 0;
}

static void node_capacity(struct cluster *c, struct node *n)
{
	const char *k;
	json_t *v;
	n->driver_mask = 0;
	json_object_foreach(n->drivers, k, v) {
		int d = driver_index(k);
		if (d >= 0)
			n->driver_mask |= 1u << d;
	}
	n->exec_bloom = sched_exec_bloom(&n->exec_allow);
	n->exec_mask = 0;
	n->exec_exact = true;
	for (size_t i = 0; i < n->exec_allow.n; i++) {
		bool exact = true;
		n->exec_mask |= exec_bit(c, n->exec_allow.paths[i], true, &exact);
		n->exec_exact = n->exec_exact && exact;
	}
	n->vcpus_milli_total = (int64_t)(n->cpus * c->opts.cpu_ratio * 1000.0);
	n->memory_mb_total = n->memory_mb;
	node_view_sync(c, n);
}

static void node_free(struct node *n)
{
	struct assignment *a;
	if (!n)
		return;
	while ((a = TAILQ_FIRST(&n->queue))) {
		TAILQ_REMOVE(&n->queue, a, link);
		free(a);
	}
	json_decref(n->drivers);
	json_decref(n->labels);
	json_decref(n->bridges);
	json_decref(n->run_dir);
	exec_allow_free(&n->exec_allow);
	free(n);
}

static struct node *node_new(const char *id)
{
	struct node *n = calloc(1, sizeof *n);
	if (!n)
		fatal("calloc");
	snprintf(n->id, sizeof n->id, "%s", id);
	TAILQ_INIT(&n->queue);
	n->next_seq = 1;
	return n;
}

static void node_add(struct cluster *c, struct node *n)
{
	if (c->n_nodes == c->cap_nodes) {
		c->cap_nodes = c->cap_nodes ? c->cap_nodes * 2 : 16;
		c->nodes = realloc(c->nodes, sizeof *c->nodes * (size_t)c->cap_nodes);
		c->sched_view = realloc(c->sched_view, sizeof *c->sched_view * (size_t)c->cap_nodes);
		c->sched_scratch = realloc(c->sched_scratch, sizeof *c->sched_scratch * (size_t)c->cap_nodes);
		if (!c->nodes || !c->sched_view || !c->sched_scratch)
			fatal("realloc");
	}
	n->view_idx = c->n_nodes;
	c->nodes[c->n_nodes++] = n;
	hmap_put(&c->node_ids, n->id, n);
	node_capacity(c, n);
}

/* The node of an instance, or NULL when it has none (or one the core does not know). */
static struct node *node_of(const struct cluster *c, const struct instance *in)
{
	return in->node_id[0] ? cluster_node(c, in->node_id) : NULL;
}

/* ---- the assignment queues ---- */

static void node_enqueue(struct cluster *c, struct node *n, enum node_op op, const char *id)
{
	struct assignment *a;
	if (!leading(c)) /* a follower's nodes are the leader's to talk to */
		return;
	if (!(a = calloc(1, sizeof *a)))
		fatal("calloc");
	a->seq = n->next_seq++;
	a->op = op;
	snprintf(a->instance_id, sizeof a->instance_id, "%s", id);
	TAILQ_INSERT_TAIL(&n->queue, a, link);
	if (c->hooks.node_wake)
		c->hooks.node_wake(c->hooks.arg, n);
}

bool cluster_node_has_work(const struct node *n) { return !TAILQ_EMPTY(&n->queue); }

void cluster_node_take(struct cluster *c, struct node *n, cluster_assignment_fn *fn, void *arg)
{
	int64_t now = clock_mono_us();
	struct assignment *a;
	TAILQ_FOREACH(a, &n->queue, link) {
		struct instance *in = a->op == NODE_OP_START ? cluster_instance(c, a->instance_id) : NULL;
		fn(arg, a->seq, a->op, a->instance_id, in ? &in->spec : NULL, in ? in->run : 0);
		if (in && in->marks.sent_us == 0)
			in->marks.sent_us = now;
	}
}

/* ---- the lifecycle: one step of the table, carried out ---- */

/* What an event carries. */
struct step_args {
	struct node *node;               /* the node it came from or goes to (placement, reports, registration) */
	const struct wire_report *report;
	int64_t arrived_us;              /* when the report arrived */
	const char *down_why;            /* why its node is down ("was revoked"); NULL: its heartbeats stopped */
	int64_t accepted_us;             /* a new run: when its request began */
};

/* What a step changed in memory, to undo when the store refuses it. */
struct undo {
	struct instance *in;
	enum inst_state state;
	bool stop_requested, ready, has_exit_code, has_trace;
	int exit_code;
	uint32_t run;
	char node_id[MV_ID_LEN + 1], lost_node[MV_ID_LEN + 1];
	char *error;            /* the error before; freed once the step is durable */
	bool error_changed;
	struct trace trace;
	struct core_marks marks;
	int64_t updated_wall_us;
	struct node *reserved_on, *released_on;
};

/* One step, done in memory and waiting for the store: the actions left for after. */
struct step {
	struct undo undo;
	uint32_t actions;
	struct node *node;  /* where its assignments go */
	bool traced;        /* its trace was computed by this step */
	bool observe;       /* the trace is final: metrics */
};

static void set_error(struct instance *in, struct undo *u, const char *text)
{
	char *copy = text ? strdup(text) : NULL;
	if (text && !copy)
		fatal("strdup");
	if (u->error_changed)
		free(in->error); /* an earlier action of this step set it */
	in->error = copy;
	u->error_changed = true;
}

static void step_memory(struct cluster *c, struct instance *in, const struct inst_transition *t,
                        const struct step_args *x, struct step *s)
{
	uint32_t a = t->actions;
	struct node *n;

	*s = (struct step){0};
	s->undo = (struct undo){.in = in, .state = in->state, .stop_requested = in->stop_requested, .run = in->run,
	                        .ready = in->ready, .has_exit_code = in->has_exit_code, .has_trace = in->has_trace,
	                        .exit_code = in->exit_code, .error = in->error, .trace = in->trace,
	                        .marks = in->marks, .updated_wall_us = in->updated_wall_us};
	memcpy(s->undo.node_id, in->node_id, sizeof in->node_id);
	memcpy(s->undo.lost_node, in->lost_node, sizeof in->lost_node);
	s->actions = a;
	s->node = x->node ? x->node : node_of(c, in);

	if (a & IA_RELEASE && (n = node_of(c, in))) {
		node_release(c, n, in);
		s->undo.released_on = n;
	}
	if (a & IA_SET_NODE) {
		instance_node_assign(c, in, x->node->id);
		in->lost_node[0] = '\0';
	}
	if (a & IA_RESERVE && (n = node_of(c, in))) {
		node_reserve(c, n, in);
		s->undo.reserved_on = n;
	}
	if (a & IA_DESIRE_STOP)
		in->stop_requested = true;
	if (a & IA_NEW_RUN) {
		in->run++;
		in->stop_requested = in->ready = in->has_exit_code = in->has_trace = false;
		in->exit_code = 0;
		set_error(in, &s->undo, NULL);
		in->marks = (struct core_marks){.accepted_us = x->accepted_us};
	}
	if (a & IA_CLEAR_ERROR)
		set_error(in, &s->undo, NULL);
	if (a & IA_ERROR_NODE_DOWN) {
		char text[128];
		snprintf(text, sizeof text, "node %s %s", x->node ? x->node->name : in->node_id,
		         x->down_why ? x->down_why : "stopped heartbeating");
		set_error(in, &s->undo, text);
	}
	if (a & IA_ERROR_GONE && !in->error)
		set_error(in, &s->undo, "its node no longer has it (restarted without its records?)");
	if (a & IA_REPORT) {
		const struct wire_report *r = x->report;
		in->ready = in->ready || r->ready;
		if (r->has_exit_code) {
			in->has_exit_code = true;
			in->exit_code = r->exit_code;
		}
		if (r->error[0] && !in->error)
			set_error(in, &s->undo, r->error);
		/* the stop's steps complete the trace of the instantiation it ends */
		if (r->has_stop_timing && in->has_trace) {
			in->trace.has_stop = true;
			memcpy(in->trace.stop_us, r->stop_timing.step_us, sizeof in->trace.stop_us);
		}
	}
	/* Only for an instantiation this core saw from its request on (not after its own restart
	 * or the node's). The trace is stored with the state it explains. notify ends here: the
	 * core has the report applied; storing it and waking the clients follow at once. */
	if (a & IA_TRACE && in->marks.accepted_us && in->marks.sent_us && x->report->has_timing &&
	    x->report->timing.work_us) {
		in->marks.reported_us = x->arrived_us;
		in->marks.notified_us = clock_mono_us();
		trace_compute(&in->trace, &in->marks, &x->report->timing);
		in->has_trace = s->traced = true;
		/* with a ready marker the trace of "running" is provisional; the one of ready is final */
		s->observe = a & IA_OBSERVE && (x->report->ready || !in->spec.ready_serial[0]);
	}
	if (a & IA_FORGET_NODE) {
		memcpy(in->lost_node, in->node_id, sizeof in->lost_node);
		instance_node_assign(c, in, "");
		in->has_trace = in->ready = false;
		memset(&in->marks, 0, sizeof in->marks);
	}
	if (t->next != in->state || a & (IA_STORE | IA_PUBLISH)) {
		instance_state_assign(c, in, (enum inst_state)t->next);
		in->updated_wall_us = clock_wall_us();
	}
}

static void step_undo(struct cluster *c, struct step *s)
{
	struct undo *u = &s->undo;
	struct instance *in = u->in;
	if (u->reserved_on)
		node_release(c, u->reserved_on, in);
	if (u->released_on)
		node_reserve(c, u->released_on, in);
	if (u->error_changed) {
		free(in->error);
		in->error = u->error;
	}
	instance_state_assign(c, in, u->state);
	in->stop_requested = u->stop_requested;
	in->run = u->run;
	in->ready = u->ready;
	in->has_exit_code = u->has_exit_code;
	in->exit_code = u->exit_code;
	in->has_trace = u->has_trace;
	in->trace = u->trace;
	in->marks = u->marks;
	in->updated_wall_us = u->updated_wall_us;
	instance_node_assign(c, in, u->node_id);
	memcpy(in->lost_node, u->lost_node, sizeof in->lost_node);
}

/* Whether the step's write must be on disk before the answers of its turn go out. */
static bool step_flushed(const struct step *s)
{
	return (s->actions & (IA_STORE | IA_DELETE)) && !(s->actions & IA_STORE_NO_FLUSH);
}

static int step_store(struct cluster *c, const struct step *s)
{
	struct store_instance_status st;
	if (!leading(c)) /* a stalled leader, resumed: its term may be over (core/leader.h) */
		return -1;
	if (s->actions & IA_DELETE)
		return store_instance_delete(c->store, s->undo.in->id);
	if (!(s->actions & IA_STORE))
		return 0;
	instance_status(s->undo.in, &st);
	/* the row holds the trace memory held before the step (memory and store agree after each) */
	st.trace_kept = s->undo.has_trace == st.has_trace &&
	                (!st.has_trace || memcmp(&s->undo.trace, &st.trace, sizeof st.trace) == 0);
	return store_instance_update(c->store, s->undo.in->id, &st);
}

static void instance_wake(struct instance *in);

/* The step is durable: tell the world. */
static void step_after(struct cluster *c, struct step *s)
{
	struct instance *in = s->undo.in;
	uint32_t a = s->actions;
	struct node *n = s->node;

	if (s->undo.error_changed)
		free(s->undo.error);
	if (a & IA_NEW_RUN)
		in->marks.persisted_us = clock_mono_us();
	if (a & IA_MARK_SCHEDULED)
		in->marks.scheduled_us = clock_mono_us();
	if (s->observe) {
		metrics_observe_trace(c->metrics, in->spec.driver, &in->trace);
		if (c->hooks.instance_traced)
			c->hooks.instance_traced(c->hooks.arg, in);
	}
	if (a & IA_PUBLISH && c->hooks.instance_event)
		c->hooks.instance_event(c->hooks.arg, in);
	if (a & IA_WAKE)
		instance_wake(in);
	if (n && a & IA_SEND_START)
		node_enqueue(c, n, NODE_OP_START, in->id);
	if (n && (a & IA_SEND_STOP || (a & IA_SEND_STOP_IF_ASKED && in->stop_requested)))
		node_enqueue(c, n, NODE_OP_STOP, in->id);
	if (n && a & IA_SEND_PURGE)
		node_enqueue(c, n, NODE_OP_PURGE, in->id);
	if (a & IA_DELETE) {
		instance_remove(c, in);
		instance_free(in);
	}
}

/* Looks the event up; a refusal is logged here and nowhere else. *s is the step done in
 * memory (for a T_MOVE). Returns the kind. */
static int step_begin(struct cluster *c, struct instance *in, enum inst_event ev, const struct step_args *x,
                      struct step *s)
{
	unsigned flags = (in->ready ? LF_READY : 0) | (in->stop_requested ? LF_STOP_REQUESTED : 0);
	struct inst_transition t = lifecycle_step(in->state, ev, flags);
	if (t.kind == T_REFUSE)
		log_warnx("instance %s: event \"%s\" refused in state %s", in->id, inst_event_names[ev],
		          inst_state_names[in->state]);
	else if (t.kind == T_MOVE)
		step_memory(c, in, &t, x, s);
	return t.kind;
}

/* One event, stored on its own (autocommit). 0; -EINVAL when the state does not take
 * the event; -EIO when the store refused it (memory unchanged). */
static int instance_event(struct cluster *c, struct instance *in, enum inst_event ev, const struct step_args *x)
{
	struct step s;
	int kind = step_begin(c, in, ev, x, &s);
	if (kind == T_REFUSE)
		return -EINVAL;
	if (kind == T_REPEAT)
		return 0;
	if (s.actions & IA_STORE_NO_FLUSH && !step_flushed(&s))
		store_no_flush_next(c->store);
	if (step_store(c, &s) < 0) {
		step_undo(c, &s);
		return -EIO;
	}
	step_after(c, &s);
	return 0;
}

/* ---- batches: several steps, one transaction ---- */

struct batch {
	struct step *steps;
	int n, cap;
};

static void batch_event(struct cluster *c, struct batch *b, struct instance *in, enum inst_event ev,
                        const struct step_args *x)
{
	struct step s;
	if (step_begin(c, in, ev, x, &s) != T_MOVE)
		return;
	if (b->n == b->cap && !(b->steps = realloc(b->steps, sizeof *b->steps * (size_t)(b->cap = b->cap ? b->cap * 2 : 16))))
		fatal("realloc");
	b->steps[b->n++] = s;
}

/* Stores every step in one transaction, then tells the world; when the store refuses,
 * every step is undone (in reverse) and -1 returned. Frees the batch. */
static int batch_commit(struct cluster *c, struct batch *b)
{
	int rc = 0, i;
	bool flushed = false;
	for (i = 0; i < b->n; i++)
		flushed |= step_flushed(&b->steps[i]);
	if (b->n > 0) {
		if (!flushed)
			store_no_flush_next(c->store);
		if (store_begin(c->store) < 0)
			rc = -1;
		for (i = 0; rc == 0 && i < b->n; i++)
			if (step_store(c, &b->steps[i]) < 0)
				rc = -1;
		if (rc == 0 && store_commit(c->store) < 0)
			rc = -1;
		if (rc < 0) {
			store_rollback(c->store);
			for (i = b->n - 1; i >= 0; i--)
				step_undo(c, &b->steps[i]);
		} else {
			for (i = 0; i < b->n; i++)
				step_after(c, &b->steps[i]);
		}
	}
	free(b->steps);
	*b = (struct batch){0};
	return rc;
}

/* ---- clients waiting for states ---- */

struct waiter {
	struct cluster *c;
	enum wait_kind kind;
	int n, remaining;
	char (*ids)[MV_ID_LEN + 1];
	struct event *timer;
	cluster_wait_fn *done;
	void *arg;
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

static void waiter_finish(struct waiter *w)
{
	for (int i = 0; i < w->n; i++) {
		struct instance *in = cluster_instance(w->c, w->ids[i]);
		if (in)
			detach(in, w);
	}
	w->done(w->arg, w->ids, w->n);
	w->c->n_waiters--;
	event_free(w->timer);
	free(w->ids);
	free(w);
}

static void waiter_timeout(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { waiter_finish(arg); }

void cluster_wait(struct cluster *c, struct instance *const *insts, int n, enum wait_kind kind, double timeout_s,
                  cluster_wait_fn *done, void *arg)
{
	struct waiter *w = calloc(1, sizeof *w);
	struct timeval tv = clock_timeval(timeout_s);
	if (!w || !(w->ids = calloc((size_t)n + 1, sizeof *w->ids)))
		fatal("calloc");
	*w = (struct waiter){.c = c, .kind = kind, .n = n, .ids = w->ids, .done = done, .arg = arg};
	c->n_waiters++;
	for (int i = 0; i < n; i++) {
		struct instance *in = insts[i];
		memcpy(w->ids[i], in->id, sizeof w->ids[i]);
		if (wait_satisfied(kind, in))
			continue;
		if (!(in->waiters = realloc(in->waiters, sizeof *in->waiters * (size_t)(in->n_waiters + 1))))
			fatal("realloc");
		in->waiters[in->n_waiters++] = w;
		w->remaining++;
	}
	w->timer = evtimer_new(c->base, waiter_timeout, w);
	if (w->remaining == 0) {
		waiter_finish(w);
		return;
	}
	evtimer_add(w->timer, &tv);
}

/* Answers the clients waiting for a state this instance has now reached. */
static void instance_wake(struct instance *in)
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

void cluster_drain(struct cluster *c)
{
	const char *key;
	void *v;
	for (size_t i = 0; hmap_next(&c->instances, &i, &key, &v);) {
		struct instance *in = v;
		while (in->n_waiters > 0)
			waiter_finish(in->waiters[0]);
	}
}

/* ---- placement ---- */

static struct sched_request sched_request_of(struct cluster *c, const struct inst_spec *spec)
{
	bool known = true;
	return (struct sched_request){
		.driver = driver_index(spec->driver),
		.executable = spec->executable,
		.exec_bit = sched_exec_bit(spec->executable),
		/* a path without an id is on no exact node's list */
		.exec_id_bit = spec->executable ? exec_bit(c, spec->executable, false, &known) : 0,
		.exec_id_known = spec->executable != NULL,
		.labels = spec->labels,
		.bridge = spec->bridge[0] ? spec->bridge : NULL,
		.vcpus_milli = spec->vcpus_milli,
		.memory_mb = spec->memory_mb,
		.pool = spec->pool[0] ? spec->pool : NULL,
	};
}

void cluster_set_pools(struct cluster *c, struct pools *pools) { c->pools = pools; }

static void warm_of_node(void *arg, const char *node_id, int ready)
{
	struct cluster *c = arg;
	struct node *n = hmap_get(&c->node_ids, node_id);
	if (n) {
		c->warm[n->view_idx] = ready;
		c->warm_any = true;
	}
}

/* Warm guests of `pool` per node view (sched_request.warm), or NULL when no node has any:
 * a clear of n ints and a walk of the nodes that reported a stock, for pooled creates only. */
static const int *warm_view(struct cluster *c, const char *pool)
{
	if (!pool || !c->pools)
		return NULL;
	if (c->cap_warm < c->n_nodes) {
		c->cap_warm = c->cap_nodes;
		if (!(c->warm = realloc(c->warm, sizeof *c->warm * (size_t)c->cap_warm)))
			fatal("realloc");
	}
	memset(c->warm, 0, sizeof *c->warm * (size_t)c->n_nodes);
	c->warm_any = false;
	pools_warm_nodes(c->pools, pool, warm_of_node, c);
	return c->warm_any ? c->warm : NULL;
}

/* The nodes for `count` instances of request r, each where a pick would put it after the
 * ones before (sched_place): c->chosen[0 ..] for the returned number. */
static int place_run(struct cluster *c, const struct sched_request *r, int count, enum sched_miss *miss)
{
	if (count > c->cap_chosen) {
		c->cap_chosen = count > 2 * c->cap_chosen ? count : 2 * c->cap_chosen;
		if (!(c->chosen = realloc(c->chosen, sizeof *c->chosen * (size_t)c->cap_chosen)))
			fatal("realloc");
	}
	struct sched_request rw = *r;
	rw.warm = warm_view(c, r->pool);
	return sched_place(c->sched_view, c->n_nodes, &rw, c->opts.policy, count, c->sched_scratch, c->chosen, miss);
}

/* All-or-nothing feasibility: can every one of `count` instances be placed right now? */
static int check_placeable(struct cluster *c, const struct inst_spec *spec, int count, struct mv_error *err)
{
	struct sched_request r = sched_request_of(c, spec);
	enum sched_miss miss = SCHED_NO_NODE;
	if (place_run(c, &r, count, &miss) < count)
		return mv_fail(err, 422, miss == SCHED_NO_CAPACITY ? "no_capacity" : "no_node", "%s%s",
		               sched_miss_message(miss), count > 1 ? " (for all of count; nothing was created)" : "");
	return 0;
}

static bool same_string(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* Whether two requests are placed alike (sched_place takes a run of them at once). */
static bool same_request(const struct sched_request *a, const struct sched_request *b)
{
	return a->driver == b->driver && same_string(a->executable, b->executable) &&
	       same_string(a->bridge, b->bridge) && a->vcpus_milli == b->vcpus_milli &&
	       a->memory_mb == b->memory_mb && same_string(a->pool, b->pool) &&
	       (a->labels == b->labels || (a->labels && b->labels && json_equal(a->labels, b->labels)));
}

/* Places pending instances on nodes and records the choices in one transaction; the
 * starts go out once it is durable. Instances that fit nowhere stay pending. Each run of
 * alike requests (all the instances of one create) is placed by one sched_place: a create
 * of count 1000 among 10,000 nodes scans them once, not 1000 times. */
/* The placements of insts, done in memory as steps of b (not stored): runs of alike
 * requests are placed together. */
static void schedule_steps(struct cluster *c, struct instance **insts, int n, struct batch *b)
{
	for (int i = 0, run; i < n; i += run) {
		struct sched_request r = sched_request_of(c, &insts[i]->spec);
		enum sched_miss miss;
		int placed;
		for (run = 1; i + run < n; run++) {
			struct sched_request next = sched_request_of(c, &insts[i + run]->spec);
			if (!same_request(&r, &next))
				break;
		}
		placed = place_run(c, &r, run, &miss);
		/* reserved as each step is done in memory: the next run sees them */
		for (int j = 0; j < placed; j++)
			batch_event(c, b, insts[i + j], IEV_PLACE, &(struct step_args){.node = c->nodes[c->chosen[j]]});
		for (int j = placed; j < run; j++)
			log_warnx("instance %s stays pending: %s", insts[i + j]->id, sched_miss_message(miss));
	}
}

static void schedule(struct cluster *c, struct instance **insts, int n)
{
	struct batch b = {0};
	if (!leading(c))
		return;
	schedule_steps(c, insts, n, &b);
	int placed = b.n;
	if (batch_commit(c, &b) < 0)
		log_warnx("could not record placements; %d instances stay pending", placed);
}

static void schedule_pending(struct cluster *c)
{
	const char *key;
	void *v;
	int n = 0, cap = 0;
	struct instance **pending = NULL;
	int64_t now;

	if (c->n_pending == 0 || !leading(c))
		return;
	for (size_t i = 0; hmap_next(&c->pending, &i, &key, &v);) {
		struct instance *in = v;
		if (in->stop_requested)
			continue;
		if (n == cap && !(pending = realloc(pending, sizeof *pending * (size_t)(cap = cap ? cap * 2 : 16))))
			fatal("realloc");
		pending[n++] = in;
	}
	now = clock_mono_us();
	for (int i = 0; i < n; i++)
		pending[i]->marks.accepted_us = pending[i]->marks.persisted_us = now;
	if (n > 0)
		schedule(c, pending, n);
	free(pending);
}

/* ---- creation ---- */

/* Answers a retried create from the stored ids; true when the key was known. */
static int idem_replay(struct cluster *c, const struct cluster_create_req *r, struct instance ***out, int *n,
                       bool *replayed, struct mv_error *err)
{
	struct store_idem_row row;
	bool found;
	*replayed = false;
	if (store_idem_get(c->store, r->idem_key, &row, &found) < 0)
		return mv_fail(err, 500, "store_failed", "the store could not be read; nothing was created");
	if (!found)
		return 0;
	if (strcmp(row.digest, r->digest) != 0) {
		store_idem_row_free(&row);
		return mv_fail(err, 409, "idempotency_conflict", "Idempotency-Key %s was already used with a different body",
		               r->idem_key);
	}
	if (!(*out = calloc(row.n_ids + 1, sizeof **out)))
		fatal("calloc");
	for (size_t i = 0; i < row.n_ids; i++) {
		struct instance *in = cluster_instance(c, row.ids[i]);
		if (in)
			(*out)[(*n)++] = in;
	}
	store_idem_row_free(&row);
	*replayed = true;
	return 0;
}

/* Admission control (--max-inflight). Past the limit a create is refused at once and
 * changes nothing, rather than queued: past saturation a queue only adds its length to the
 * latency of every request behind it, and a client told to come back can go elsewhere.
 * Checked before names, images and placement so that a refusal costs little. */
static int admit(struct cluster *c, int count, struct mv_error *err)
{
	long long limit = (long long)c->opts.max_inflight, now = (long long)c->n_in_flight;
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
	return mv_fail(err, 503, "saturated",
	               "the core is saturated: %lld instances are in flight (pending, scheduled or starting) and "
	               "this request adds %d, past its limit of %lld (--max-inflight); nothing was created: "
	               "retry after %d s",
	               now, count, limit, CLUSTER_RETRY_AFTER_S);
}

static int check_names_free(struct cluster *c, const struct inst_spec *spec, struct mv_error *err)
{
	char name[MV_NAME_MAX + 16];
	for (int i = 0; i < spec->count; i++) {
		spec_instance_name(spec, i, name, sizeof name);
		if (hmap_get(&c->names, name))
			return mv_fail(err, 409, "name_conflict",
			               "an instance named %s exists; delete it or choose another name", name);
	}
	return 0;
}

/* All count instances within the project's quota, or none. */
static int check_quota(struct cluster *c, const char *project, const struct authz_quota *quota,
                       const struct inst_spec *spec, struct mv_error *err)
{
	struct authz_quota used, want = {.instances = spec->count, .vcpus_milli = spec->count * spec->vcpus_milli,
	                                 .memory_mb = spec->count * spec->memory_mb};
	if (!quota)
		return 0;
	cluster_project_usage(c, project, &used);
	return authz_quota_check(project, quota, &used, &want, err);
}

static struct instance *instance_new(const struct inst_spec *spec, const struct image *img, int i,
                                     const struct cluster_create_req *r)
{
	struct instance *in = calloc(1, sizeof *in);
	if (!in)
		fatal("calloc");
	id_generate(in->id);
	snprintf(in->project, sizeof in->project, "%s", r->project ? r->project : AUTHZ_ADMIN_PROJECT);
	spec_copy(&in->spec, spec);
	spec_instance_name(spec, i, in->spec.name, sizeof in->spec.name);
	in->spec.count = 1;
	if (img) { /* resolved now: a later change of the image does not change this instance */
		images_boot_of(img, &in->spec.boot);
		in->spec.has_boot = true;
		if (spec->cmdline) { /* its own command line instead of the image's */
			free(in->spec.boot.cmdline);
			if (!(in->spec.boot.cmdline = strdup(spec->cmdline)))
				fatal("strdup");
		}
	}
	free(in->spec.cmdline); /* the stored form has it in boot */
	in->spec.cmdline = NULL;
	in->state = INST_PENDING;
	in->created_wall_us = in->updated_wall_us = clock_wall_us();
	in->marks.accepted_us = r->accepted_us;
	return in;
}

/* Stores new instances as pending, with the idempotency key, in one transaction: 0; -1 when
 * the store failed (rolled back); STORE_TAKEN when another core took one of their names
 * first (*taken: its index) or the key (*taken -1): what the unit wrote is deleted again,
 * and the turn's transaction goes on (store.h, "A taken key"). */
static int persist_new(struct cluster *c, struct instance **insts, int n, const struct cluster_create_req *r,
                       int *taken)
{
	int i, rc;
	if (store_begin(c->store) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct store_instance_row row = {.spec = insts[i]->spec, .created_us = insts[i]->created_wall_us};
		memcpy(row.id, insts[i]->id, sizeof row.id);
		memcpy(row.project, insts[i]->project, sizeof row.project);
		instance_status(insts[i], &row.status);
		if ((rc = store_instance_insert(c->store, &row)) == STORE_TAKEN) {
			*taken = i;
			goto take_back;
		}
		if (rc < 0)
			goto fail;
	}
	if (r->idem_key) {
		struct store_idem_row row = {.n_ids = (size_t)n, .created_us = clock_wall_us()};
		if (!(row.ids = calloc((size_t)n, sizeof *row.ids)))
			fatal("calloc");
		snprintf(row.key, sizeof row.key, "%s", r->idem_key);
		snprintf(row.digest, sizeof row.digest, "%s", r->digest);
		for (int j = 0; j < n; j++)
			memcpy(row.ids[j], insts[j]->id, sizeof row.ids[j]);
		rc = store_idem_put(c->store, &row);
		free(row.ids);
		if (rc == STORE_TAKEN) {
			*taken = -1;
			goto take_back;
		}
		if (rc < 0)
			goto fail;
	}
	if (store_commit(c->store) < 0)
		goto fail;
	return 0;
take_back:
	for (int j = 0; j < i; j++)
		if (store_instance_delete(c->store, insts[j]->id) < 0)
			goto fail;
	if (store_commit(c->store) < 0)
		goto fail;
	return STORE_TAKEN;
fail:
	store_rollback(c->store);
	return -1;
}

/* What another core took at the same moment, as the client is told. */
static void taken_error(const struct cluster_create_req *r, const struct instance *in, struct mv_error *err)
{
	if (!in) { /* a 503, which clients retry (with Retry-After): the retry gets the first answer */
		mv_fail(err, 503, "idempotency_in_progress",
		        "a request with Idempotency-Key %s is in progress through another core; nothing was created: "
		        "retry it to get that request's answer", r->idem_key);
		return;
	}
	mv_fail(err, 409, "name_conflict",
	        "an instance named %s was created at the same moment through another core; nothing was created",
	        in->spec.name);
}

/* A create between its write and the turn's commit: memory holds its instances (and, on
 * the leader, their placements), the store their rows; its effects on the world (events,
 * starts, the answer) wait for create_settled. */
struct creating {
	struct cluster *c;
	struct instance **insts;
	int n;
	struct batch b;        /* the leader's placements, done in memory */
	bool leader;           /* it was made as the leader (else: for the leader to place) */
	cluster_created_fn *done;
	void *arg;
};

/* The store refused the create: placements undone, the instances out of memory. */
static void create_undo(struct creating *k)
{
	for (int i = k->b.n - 1; i >= 0; i--)
		step_undo(k->c, &k->b.steps[i]);
	for (int i = 0; i < k->n; i++) {
		instance_remove(k->c, k->insts[i]);
		instance_free(k->insts[i]);
	}
}

static void creating_free(struct creating *k)
{
	free(k->b.steps);
	free(k->insts);
	free(k);
}

/* The turn's commit holds the create's rows (stored), or its insert found the name taken
 * by another core's create of the same moment (store.h, "Units settled at the commit"). */
static void create_settled(void *arg, bool stored)
{
	struct creating *k = arg;
	struct cluster *c = k->c;
	struct mv_error err;
	if (!stored) {
		taken_error(NULL, k->insts[0], &err);
		create_undo(k);
		k->done(k->arg, NULL, 0, false, &err);
		creating_free(k);
		return;
	}
	for (int i = 0; i < k->n; i++) {
		if (!k->leader) /* a follower's: accept ends with its record stored */
			k->insts[i]->marks.persisted_us = clock_mono_us();
		if (c->hooks.instance_event)
			c->hooks.instance_event(c->hooks.arg, k->insts[i]);
	}
	for (int i = 0; i < k->b.n; i++)
		step_after(c, &k->b.steps[i]);
	if (!k->leader && c->hooks.follower_wrote)
		c->hooks.follower_wrote(c->hooks.arg);
	k->done(k->arg, k->insts, k->n, false, NULL);
	creating_free(k);
}

/* Into memory, placed first on the leader, so that each record is written once, with its
 * placement (one insert, not an insert and then an update: half the writes of a batch, and
 * one round trip less on PostgreSQL); then stored. A lone instance without a key is a
 * deferred unit: on PostgreSQL its insert goes with the turn's commit. When the store
 * refuses, memory is as before: nothing was created. */
static void create_store(struct cluster *c, const struct cluster_create_req *r, struct creating *k)
{
	struct mv_error err;
	int rc, taken = 0;
	int64_t built = clock_mono_us();
	for (int i = 0; i < k->n; i++) {
		k->insts[i]->marks.persisted_us = built; /* accept ends: the record is made; schedule follows */
		instance_insert(c, k->insts[i]);
	}
	if (k->leader)
		schedule_steps(c, k->insts, k->n, &k->b);
	if (k->n == 1 && !r->idem_key)
		store_defer_next(c->store);
	if ((rc = persist_new(c, k->insts, k->n, r, &taken)) < 0) {
		if (rc == STORE_TAKEN)
			taken_error(r, taken >= 0 ? k->insts[taken] : NULL, &err);
		else
			mv_fail(&err, 500, "store_failed", "the store could not save the request; nothing was created");
		create_undo(k);
		k->done(k->arg, NULL, 0, false, &err);
		creating_free(k);
		return;
	}
	store_unit_then(c->store, create_settled, k);
}

/* Just after taking the lead from another core, while the nodes it knows (at least one:
 * a follower may have known none) have not registered yet (see cluster_took_lead).
 * O(nodes), only inside that window. */
static bool settling(const struct cluster *c)
{
	return c->settled_us && clock_mono_us() < c->settled_us &&
	       cluster_nodes_ready(c) < (c->n_nodes > 0 ? c->n_nodes : 1);
}

/* The checks before anything is made; 0 or -1 with err. */
static int create_check(struct cluster *c, const struct cluster_create_req *r, const struct image **img,
                        struct mv_error *err)
{
	const struct inst_spec *spec = r->spec;
	const char *project = r->project ? r->project : AUTHZ_ADMIN_PROJECT;
	if (admit(c, spec->count, err) < 0)
		return -1;
	/* another project's image is as unknown as a missing one: its existence does not leak */
	if (spec->image[0] && (!(*img = images_get(c->images, spec->image)) ||
	                       (!r->any_image && strcmp((*img)->project, project) != 0)))
		return mv_fail(err, 422, "unknown_image",
		               "image %s is not registered (microvim image add NAME --kernel FILE)", spec->image);
	if (spec->cmdline && !*img)
		return mv_fail(err, 422, "cmdline_without_image",
		               "cmdline is a guest's kernel command line: it needs an image (driver %s boots none here)",
		               spec->driver);
	/* a follower knows no node's live capacity: the leader places, or keeps them pending */
	if (check_names_free(c, spec, err) < 0 || check_quota(c, project, r->quota, spec, err) < 0 ||
	    (leading(c) && !settling(c) && check_placeable(c, spec, spec->count, err) < 0))
		return -1;
	return 0;
}

void cluster_instances_create(struct cluster *c, const struct cluster_create_req *r, cluster_created_fn *done,
                              void *arg)
{
	const struct image *img = NULL;
	struct instance **insts = NULL;
	struct creating *k;
	struct mv_error err;
	bool replayed = false;
	int n = 0;

	if (r->idem_key && idem_replay(c, r, &insts, &n, &replayed, &err) < 0) {
		done(arg, NULL, 0, false, &err);
		return;
	}
	if (replayed) {
		done(arg, insts, n, true, NULL);
		free(insts);
		return;
	}
	if (create_check(c, r, &img, &err) < 0) {
		done(arg, NULL, 0, false, &err);
		return;
	}
	if (!(insts = calloc((size_t)r->spec->count, sizeof *insts)) || !(k = malloc(sizeof *k)))
		fatal("calloc");
	*k = (struct creating){.c = c, .insts = insts, .n = r->spec->count, .leader = leading(c), .done = done,
	                       .arg = arg};
	for (int i = 0; i < k->n; i++)
		k->insts[i] = instance_new(r->spec, img, i, r);
	create_store(c, r, k);
}

int cluster_instance_stop(struct cluster *c, struct instance *in, struct mv_error *err)
{
	enum inst_event ev = in->node_id[0] && !node_of(c, in) ? IEV_STOP_NO_NODE : IEV_STOP;
	int rc = instance_event(c, in, ev, &(struct step_args){0});
	if (rc == -EINVAL)
		return mv_fail(err, 409, "invalid_state", "instance %s is %s: there is nothing to stop", in->id,
		               inst_state_names[in->state]);
	if (rc < 0)
		return mv_fail(err, 500, "store_failed", "the store could not record the stop; nothing changed");
	return 0;
}

/* Can in's node take a new run of it now: known, up, and room for it (what the scheduler
 * asks of any node: driver, executable, labels, bridge, resources)? held: its resources are
 * already counted there (a restart). */
static int check_own_node(struct cluster *c, const struct instance *in, bool held, struct mv_error *err)
{
	struct node *n = node_of(c, in);
	struct sched_request r;
	enum sched_miss miss = SCHED_NO_NODE;
	if (!n || !n->ready)
		return mv_fail(err, 409, "node_down",
		               "instance %s runs on node %s, which is down: it starts again there once the node is back; "
		               "or delete it and create it anew",
		               in->id, n ? n->name : in->node_id);
	r = sched_request_of(c, &in->spec);
	if (held)
		r.vcpus_milli = r.memory_mb = 0;
	if (sched_pick(&c->sched_view[n->view_idx], 1, &r, c->opts.policy, &miss) < 0)
		return mv_fail(err, 409, "no_capacity",
		               "instance %s cannot start again on its node %s: %s; free room there, or delete it and "
		               "create it anew",
		               in->id, n->name, sched_miss_message(miss));
	return 0;
}

/* Why a start or restart is refused in this state, for a person. */
static int refuse_start(const struct instance *in, const char *what, struct mv_error *err)
{
	if (in->state == INST_RUNNING)
		return mv_fail(err, 409, "invalid_state",
		               "instance %s is running already: restart it (POST /v1/instances/%s/restart) to run it anew",
		               in->id, in->id);
	if (in->state == INST_LOST)
		return mv_fail(err, 409, "invalid_state",
		               "instance %s is lost (its node went away): delete it and create it again", in->id);
	return mv_fail(err, 409, "invalid_state", "instance %s is %s: wait until it is running or ended, then %s it",
	               in->id, inst_state_names[in->state], what);
}

static int start_event(struct cluster *c, struct instance *in, enum inst_event ev, int64_t accepted_us,
                       const char *what, struct mv_error *err)
{
	int rc = instance_event(c, in, ev, &(struct step_args){.accepted_us = accepted_us});
	if (rc == -EINVAL)
		return refuse_start(in, what, err);
	if (rc < 0)
		return mv_fail(err, 500, "store_failed", "the store could not record the %s; nothing changed", what);
	if (ev == IEV_START_NO_NODE)
		schedule_pending(c);
	log_info("instance %s: %s (run %" PRIu32 ")", in->id, what, in->run);
	return 0;
}

int cluster_instance_start(struct cluster *c, struct instance *in, int64_t accepted_us, struct mv_error *err)
{
	if (!inst_state_terminal(in->state) || in->state == INST_LOST)
		return refuse_start(in, "start", err);
	if (!in->node_id[0]) /* stopped before it was placed: placed now, like a new one */
		return start_event(c, in, IEV_START_NO_NODE, accepted_us, "start", err);
	if (check_own_node(c, in, false, err) < 0)
		return -1;
	return start_event(c, in, IEV_START, accepted_us, "start", err);
}

int cluster_instance_restart(struct cluster *c, struct instance *in, int64_t accepted_us, struct mv_error *err)
{
	if (in->state != INST_RUNNING)
		return in->state == INST_LOST || !inst_state_terminal(in->state)
		               ? refuse_start(in, "restart", err)
		               : cluster_instance_start(c, in, accepted_us, err);
	if (check_own_node(c, in, true, err) < 0)
		return -1;
	return start_event(c, in, IEV_RESTART, accepted_us, "restart", err);
}

int cluster_instance_remove(struct cluster *c, struct instance *in, struct mv_error *err)
{
	int rc = instance_event(c, in, IEV_REMOVE, &(struct step_args){0});
	if (rc == -EINVAL)
		return mv_fail(err, 409, "invalid_state", "instance %s is %s: stop it before removing it", in->id,
		               inst_state_names[in->state]);
	if (rc < 0)
		return mv_fail(err, 500, "store_failed", "the store could not remove the instance; it is kept");
	return 0;
}

/* ---- nodes: registration and reconciliation ---- */

static void touch(struct node *n)
{
	n->last_heartbeat_mono_us = clock_mono_us();
	n->last_heartbeat_wall_us = clock_wall_us();
}

int cluster_node_touch(UNUSED struct cluster *c, struct node *n, struct mv_error *err)
{
	if (!n->ready)
		return mv_fail(err, 404, "register_again", "node %s is down in the core's view: register again", n->id);
	touch(n);
	return 0;
}

int cluster_heartbeat_interval(const struct cluster *c)
{
	int s = c->opts.heartbeat_timeout_s / 3;
	int rate = c->opts.heartbeat_rate_max;
	s = s < 1 ? 1 : s > HEARTBEAT_INTERVAL_MAX_S ? HEARTBEAT_INTERVAL_MAX_S : s;
	if (rate > 0 && c->n_nodes > rate * s)
		s = (c->n_nodes + rate - 1) / rate;
	return s;
}

int cluster_node_interval_tell(struct cluster *c, struct node *n)
{
	n->hb_told_before_s = n->hb_told_s;
	n->hb_told_s = cluster_heartbeat_interval(c);
	return n->hb_told_s;
}

int cluster_node_silence_limit_s(const struct cluster *c, const struct node *n)
{
	int longest = n->hb_told_s > n->hb_told_before_s ? n->hb_told_s : n->hb_told_before_s;
	return 3 * longest > c->opts.heartbeat_timeout_s ? 3 * longest : c->opts.heartbeat_timeout_s;
}

/* Reconciliation, when a node registers (its restart, the core's, or a healed partition).
 * The node says which instances it has alive; the core's record says what should run
 * where. An instance of this node (or lost from it and not placed again) steps with
 * NODE_HAS_IT or NODE_LACKS_IT (the table says what follows: adopted back, running again,
 * lost, its start sent again, its copy stopped); a copy alive there that is someone else's
 * (unknown, placed elsewhere) is stopped. Every difference is logged. */
static void reconcile(struct cluster *c, struct node *n, const struct wire_register *reg)
{
	struct hmap listed; /* the node's alive ids, for lookups in O(1): a node may run 10,000 */
	struct instance **ours;
	size_t n_ours;
	const char *key;
	void *v;

	hmap_init(&listed);
	for (size_t i = 0; i < reg->n_alive; i++)
		hmap_put(&listed, reg->alive[i], reg->alive[i]);
	n->vcpus_milli_used = n->memory_mb_used = 0;
	n->n_instances = 0;
	node_view_sync(c, n);
	for (size_t i = 0; i < reg->n_alive; i++) {
		const char *id = reg->alive[i];
		struct instance *in = cluster_instance(c, id);
		bool known_here = in && (strcmp(in->node_id, n->id) == 0 ||
		                         (in->state == INST_PENDING && strcmp(in->lost_node, n->id) == 0));
		if (!known_here) {
			log_warnx("reconcile: node %s runs %s, which the core %s: stopping that copy", n->name, id,
			          !in ? "has no record of" : "placed on another node");
			node_enqueue(c, n, NODE_OP_STOP, id);
		}
	}
	/* its own: those placed on it, and those it still runs that were made pending when it
	 * was taken for down */
	ours = members_of(c, n->id, &n_ours);
	for (size_t i = 0; hmap_next(&listed, &i, &key, &v);) {
		struct instance *in = cluster_instance(c, key);
		if (in && !in->node_id[0] && in->state == INST_PENDING && strcmp(in->lost_node, n->id) == 0) {
			if (!(ours = realloc(ours, sizeof *ours * (n_ours + 1))))
				fatal("realloc");
			ours[n_ours++] = in;
		}
	}
	for (size_t k = 0; k < n_ours; k++) {
		struct instance *in = ours[k];
		bool alive = hmap_get(&listed, in->id) != NULL;
		enum inst_state was = in->state;
		if (instance_event(c, in, alive ? IEV_NODE_HAS_IT : IEV_NODE_LACKS_IT, &(struct step_args){.node = n}) < 0)
			log_warnx("reconcile: could not store instance %s", in->id);
		else if (in->state != was)
			log_info("reconcile: instance %s was %s, node %s %s it: %s", in->id, inst_state_names[was], n->name,
			         alive ? "has" : "no longer has", inst_state_names[in->state]);
		else if (alive && inst_state_terminal(in->state))
			log_warnx("reconcile: node %s runs %s, which the core sees ended: stopping that copy", n->name, in->id);
	}
	free(ours);
	hmap_free(&listed);
}

static int check_drivers(const struct wire_register *reg, struct mv_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(reg->drivers, k, v) {
		if (!driver_find(k))
			return mv_fail(err, 400, "invalid_value", "drivers.%.32s is not a known driver description", k);
	}
	return 0;
}

static void node_set_facts(struct node *n, const struct wire_register *reg, struct exec_allow *allow)
{
	memcpy(n->name, reg->name, sizeof n->name);
	memcpy(n->address, reg->address, sizeof n->address);
	n->cpus = reg->cpus;
	n->memory_mb = reg->memory_mb;
	json_decref(n->drivers);
	json_decref(n->labels);
	json_decref(n->bridges);
	n->drivers = json_incref(reg->drivers);
	n->labels = json_incref(reg->labels);
	n->bridges = json_incref(reg->bridges);
	json_decref(n->run_dir);
	n->run_dir = reg->run_dir ? json_incref(reg->run_dir) : NULL;
	exec_allow_free(&n->exec_allow);
	n->exec_allow = *allow;
}

int cluster_node_register(struct cluster *c, const struct wire_register *reg, struct node **out,
                          struct mv_error *err)
{
	struct node *n = cluster_node(c, reg->id);
	bool is_new = !n;
	struct store_node_row row;
	struct exec_allow allow;
	char token_a[MV_ID_LEN + 1], token_b[MV_ID_LEN + 1];

	if (check_drivers(reg, err) < 0)
		return -1;
	if (node_exec_allow(reg->drivers, &allow) < 0)
		return mv_fail(err, 400, "invalid_value", "a driver's allow must be an array of absolute paths");
	/* a node is known once it is durable */
	row = (struct store_node_row){.cpus = reg->cpus, .memory_mb = reg->memory_mb, .drivers = reg->drivers,
	                              .labels = reg->labels, .bridges = reg->bridges, .run_dir = reg->run_dir};
	memcpy(row.id, reg->id, sizeof row.id);
	memcpy(row.name, reg->name, sizeof row.name);
	memcpy(row.address, reg->address, sizeof row.address);
	if (store_node_put(c->store, &row) < 0) {
		exec_allow_free(&allow);
		return mv_fail(err, 500, "store_failed", "the store could not record the node; try again");
	}
	if (is_new)
		n = node_new(reg->id);
	node_set_facts(n, reg, &allow);
	if (is_new)
		node_add(c, n);
	else
		node_capacity(c, n);
	id_generate(token_a);
	id_generate(token_b);
	snprintf(n->token, sizeof n->token, "%s%s", token_a, token_b);
	log_info("node %s (%s) registered: %d cpus, %" PRId64 " MiB", n->name, n->id, n->cpus, n->memory_mb);
	touch(n);
	if (!n->ready) {
		n->ready = true;
		node_view_sync(c, n);
		log_info("node %s (%s) is ready", n->name, n->id);
		if (c->hooks.node_event)
			c->hooks.node_event(c->hooks.arg, n, "ready");
	}
	reconcile(c, n, reg);
	*out = n;
	schedule_pending(c);
	return 0;
}

static void node_row(const struct node *n, struct store_node_row *row, json_t *bridges)
{
	*row = (struct store_node_row){.cpus = n->cpus, .memory_mb = n->memory_mb, .drivers = n->drivers,
	                               .labels = n->labels, .bridges = bridges, .run_dir = n->run_dir};
	memcpy(row->id, n->id, sizeof row->id);
	memcpy(row->name, n->name, sizeof row->name);
	memcpy(row->address, n->address, sizeof row->address);
}

int cluster_node_set_bridges(struct cluster *c, struct node *n, json_t *bridges, struct mv_error *err)
{
	struct store_node_row row;
	if (json_equal(n->bridges, bridges))
		return 0;
	node_row(n, &row, bridges);
	if (store_node_put(c->store, &row) < 0)
		return mv_fail(err, 500, "store_failed", "the store could not record the node's bridges; try again");
	json_decref(n->bridges);
	n->bridges = json_incref(bridges);
	node_view_sync(c, n);
	log_info("node %s (%s) now has %zu bridges", n->name, n->id, json_array_size(bridges));
	schedule_pending(c); /* a pending instance may wait for exactly this bridge */
	return 0;
}

/* ---- nodes: assignments and reports ---- */

/* Start assignments the node has taken mean the instance is starting. That state is not
 * written to the store on its own: after a core crash the record says "scheduled", the
 * start is sent again, and the node answers with where the instance really is. */
void cluster_node_ack(struct cluster *c, struct node *n, uint64_t after)
{
	struct assignment *a;
	while ((a = TAILQ_FIRST(&n->queue)) && a->seq <= after) {
		struct instance *in = cluster_instance(c, a->instance_id);
		TAILQ_REMOVE(&n->queue, a, link);
		if (in && a->op == NODE_OP_START)
			instance_event(c, in, IEV_DISPATCHED, &(struct step_args){.node = n});
		free(a);
	}
}

int cluster_node_reports(struct cluster *c, struct node *n, const struct wire_report *reps, size_t count,
                         int64_t arrived_us, struct mv_error *err)
{
	struct batch b = {0};
	for (size_t i = 0; i < count; i++) {
		struct instance *in = cluster_instance(c, reps[i].id);
		int ev = lifecycle_report_event(reps[i].state, reps[i].ready);
		if (!in || strcmp(in->node_id, n->id) != 0 || ev < 0 || reps[i].run < in->run)
			continue; /* not this node's business (an ended copy is purged below), or of a run before */
		batch_event(c, &b, in, (enum inst_event)ev,
		            &(struct step_args){.node = n, .report = &reps[i], .arrived_us = arrived_us});
	}
	if (batch_commit(c, &b) < 0)
		return mv_fail(err, 500, "store_failed", "the store could not save the reports; report again");
	for (size_t i = 0; i < count; i++) {
		struct instance *in = cluster_instance(c, reps[i].id);
		/* an ended copy the core does not count on (moved elsewhere, or forgotten): its node
		 * may remove its files */
		if ((!in || strcmp(in->node_id, n->id) != 0) && inst_state_terminal(reps[i].state))
			node_enqueue(c, n, NODE_OP_PURGE, reps[i].id);
	}
	if (count > 0)
		schedule_pending(c);
	return 0;
}

/* ---- nodes: liveness ---- */

/* ---- rows of lost instances, written after the fact ----
 *
 * Nodes that go down together may have held a million instances. Each is lost in memory at
 * once (its state, the answers and events that say so, placement again for "restart":
 * "on-lost"), and its row is rewritten later, LOST_WRITES_PER_TURN per loop turn, in the
 * order they were lost: written one by one in the sweep, their rows were most of the time
 * the core spent not answering (bench/scale: 909,200 lost took 10.5 s past the nodes'
 * silence limit). Nothing is lost by the wait: what those rows would say is learnt again.
 * After a crash a node that does not come back is found down again and its instances lost
 * again; one that comes back says what it runs. Any other change of such an instance
 * writes its whole row at once, as always; the late write then writes the same again. */
#define LOST_WRITES_PER_TURN 4096

static void on_lost_writes(evutil_socket_t fd, short what, void *arg);

size_t cluster_lost_unwritten(const struct cluster *c) { return c->n_lost - c->lost_next; }

static void lost_writer_arm(struct cluster *c, double after_s)
{
	struct timeval tv = clock_timeval(after_s);
	if (!c->lost_writer && !(c->lost_writer = event_new(c->base, -1, 0, on_lost_writes, c)))
		fatal("event_new");
	if (!evtimer_pending(c->lost_writer, NULL))
		evtimer_add(c->lost_writer, &tv); /* after the loop has polled: heartbeats and requests go between chunks */
}

static void lost_write_later(struct cluster *c, const struct instance *in)
{
	if (c->n_lost == c->cap_lost) {
		c->cap_lost = c->cap_lost ? 2 * c->cap_lost : 1024;
		if (!(c->lost_ids = realloc(c->lost_ids, c->cap_lost * sizeof *c->lost_ids)))
			fatal("realloc");
	}
	memcpy(c->lost_ids[c->n_lost++], in->id, sizeof *c->lost_ids);
	lost_writer_arm(c, 0);
}

static void lost_writes_forget(struct cluster *c)
{
	free(c->lost_ids);
	c->lost_ids = NULL;
	c->n_lost = c->lost_next = c->cap_lost = 0;
}

/* The next chunk, in one transaction that waits for no disk flush (learnt again, above): each
 * row gets what memory holds now. A refusal leaves the chunk for a second later. */
static void on_lost_writes(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct cluster *c = arg;
	size_t end = c->lost_next + LOST_WRITES_PER_TURN < c->n_lost ? c->lost_next + LOST_WRITES_PER_TURN : c->n_lost;
	int rc = 0;
	if (!leading(c)) { /* the next leader learns them again */
		log_warnx("no longer leading: %zu lost instances' rows left to the next leader", cluster_lost_unwritten(c));
		return lost_writes_forget(c);
	}
	store_no_flush_next(c->store);
	if (store_begin(c->store) < 0)
		rc = -1;
	for (size_t i = c->lost_next; rc == 0 && i < end; i++) {
		struct instance *in = cluster_instance(c, c->lost_ids[i]);
		struct store_instance_status st;
		if (!in)
			continue; /* removed since: its row went with it */
		instance_status(in, &st);
		st.trace_kept = true; /* a loss leaves the trace as its row has it */
		rc = store_instance_update(c->store, in->id, &st);
	}
	if (rc == 0 && store_commit(c->store) < 0)
		rc = -1;
	if (rc < 0) {
		store_rollback(c->store);
		log_warnx("could not write the rows of %zu lost instances; trying again in 1 s", cluster_lost_unwritten(c));
		return lost_writer_arm(c, 1.0);
	}
	c->lost_next = end;
	if (c->lost_next < c->n_lost)
		return lost_writer_arm(c, 0);
	log_info("the rows of %zu lost instances are written", c->n_lost);
	lost_writes_forget(c);
}

/* Creation order, which is the order of the store's rows (an instance's rowid follows its
 * insert): a million updates in that order read and rewrite each page of the table once;
 * in the index's hash order they came back to each page several times. */
static int by_creation(const void *a, const void *b)
{
	const struct instance *x = *(struct instance *const *)a, *y = *(struct instance *const *)b;
	if (x->created_wall_us != y->created_wall_us)
		return x->created_wall_us < y->created_wall_us ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* The down nodes' instances that are still alive, in creation order; *n how many. */
static struct instance **alive_on(struct cluster *c, struct node *const *down, int n_down, size_t *n)
{
	struct instance **all = NULL;
	size_t cap = 0;
	*n = 0;
	for (int k = 0; k < n_down; k++)
		cap += cluster_node_instance_records(c, down[k]->id);
	if (cap == 0)
		return NULL;
	if (!(all = calloc(cap, sizeof *all)))
		fatal("calloc");
	for (int k = 0; k < n_down; k++) {
		size_t n_on;
		struct instance **on = members_of(c, down[k]->id, &n_on); /* only the nodes' own */
		for (size_t i = 0; i < n_on; i++)
			if (!inst_state_terminal(on[i]->state))
				all[(*n)++] = on[i];
		free(on);
	}
	qsort(all, *n, sizeof *all, by_creation);
	return all;
}

/* One instance lost with its node: in memory and to the world now, its row later (above).
 * A core that does not lead writes nothing and changes nothing (step_store refuses). */
static int lose_one(struct cluster *c, struct instance *in, const struct step_args *x)
{
	struct step s;
	int kind;
	if (!leading(c))
		return instance_event(c, in, IEV_NODE_DOWN, x);
	if ((kind = step_begin(c, in, IEV_NODE_DOWN, x, &s)) == T_REFUSE)
		return -EINVAL;
	if (kind == T_MOVE) {
		step_after(c, &s);
		lost_write_later(c, in);
	}
	return 0;
}

/* Nodes are down: what they ran is lost. Instances with "restart": "on-lost" go back to
 * pending and are placed on another node; if an old node comes back, reconciliation stops
 * its copy. Only the down nodes' own instances are visited (the index by node): a pass over
 * every instance per node cost 1,000 passes over a million when 1,000 nodes went at once
 * (bench/scale's node loss), and the core answered nothing for minutes. */
static int lose_instances(struct cluster *c, struct node *const *down, int n_down, const char *why)
{
	size_t n;
	int lost = 0;
	struct instance **alive = alive_on(c, down, n_down, &n);
	for (size_t i = 0; i < n; i++) {
		struct instance *in = alive[i];
		struct node *on = node_of(c, in);
		if (lose_one(c, in, &(struct step_args){.node = on, .down_why = why}) < 0) {
			log_warnx("could not store instance %s as lost", in->id);
			continue;
		}
		lost++;
		if (in->spec.restart_on_lost && !in->stop_requested) {
			log_info("instance %s was lost with node %s: placing it again", in->id, on ? on->name : "?");
			if (instance_event(c, in, IEV_REPLACE, &(struct step_args){0}) < 0)
				log_warnx("could not store instance %s as pending", in->id);
		}
	}
	free(alive);
	schedule_pending(c);
	return lost;
}

/* A node goes down: out of placement, said on the event stream. Its instances are the
 * caller's to lose (lose_instances, for all the nodes that went down together). */
static void node_mark_down(struct cluster *c, struct node *n)
{
	n->ready = false;
	node_view_sync(c, n);
	if (c->hooks.node_event)
		c->hooks.node_event(c->hooks.arg, n, "down");
}

/* One node down, its instances lost (why goes in their error; NULL: its heartbeats stopped). */
static int node_down(struct cluster *c, struct node *n, const char *why)
{
	node_mark_down(c, n);
	return lose_instances(c, &n, 1, why);
}

int cluster_node_revoke(struct cluster *c, struct node *n)
{
	memset(n->token, 0, sizeof n->token);
	if (!n->ready)
		return 0; /* down already: what it ran was lost then */
	log_warnx("node %s (%s) is down: revoked", n->name, n->id);
	return node_down(c, n, "was revoked");
}

bool cluster_node_uses_blob(const struct cluster *c, const char *node_id, const char *digest)
{
	const struct node_members *m = hmap_get(&c->on_node, node_id);
	const char *key;
	void *v;
	for (size_t i = 0; m && hmap_next(&m->ids, &i, &key, &v);) {
		const struct instance *in = v;
		if (in->spec.has_boot &&
		    (strcmp(in->spec.boot.kernel, digest) == 0 || strcmp(in->spec.boot.initrd, digest) == 0))
			return true;
	}
	return false;
}

void cluster_sweep(struct cluster *c, int64_t now)
{
	struct node **down = NULL;
	int n_down = 0;
	if (!leading(c))
		return;
	for (int i = 0; i < c->n_nodes; i++) {
		struct node *n = c->nodes[i];
		int limit_s = cluster_node_silence_limit_s(c, n);
		if (!n->ready || now - n->last_heartbeat_mono_us <= (int64_t)limit_s * 1000000)
			continue;
		log_warnx("node %s (%s) is down: no heartbeat for %d s", n->name, n->id, limit_s);
		if (!down && !(down = calloc((size_t)c->n_nodes, sizeof *down)))
			fatal("calloc");
		node_mark_down(c, n);
		down[n_down++] = n;
	}
	if (n_down > 0)
		lose_instances(c, down, n_down, NULL);
	free(down);
}

static void on_sweep(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { cluster_sweep(arg, clock_mono_us()); }

/* ---- loading and teardown ---- */

static void load_node(void *arg, struct store_node_row *row)
{
	struct cluster *c = arg;
	struct node *n = node_new(row->id);
	struct exec_allow allow;
	memcpy(n->name, row->name, sizeof n->name);
	memcpy(n->address, row->address, sizeof n->address);
	n->cpus = row->cpus;
	n->memory_mb = row->memory_mb;
	n->drivers = row->drivers;
	n->labels = row->labels;
	n->bridges = row->bridges;
	n->run_dir = row->run_dir;
	row->drivers = row->labels = row->bridges = row->run_dir = NULL; /* taken */
	if (node_exec_allow(n->drivers, &allow) == 0)
		n->exec_allow = allow;
	else
		log_warnx("store: node %s: an allow list of its drivers does not read back; it allows nothing", n->id);
	node_add(c, n);
}

static void load_instance(void *arg, struct store_instance_row *row)
{
	struct cluster *c = arg;
	struct instance *in = calloc(1, sizeof *in);
	struct mv_error err;
	if (!in)
		fatal("calloc");
	memcpy(in->id, row->id, sizeof in->id);
	snprintf(in->project, sizeof in->project, "%s", row->project[0] ? row->project : AUTHZ_ADMIN_PROJECT);
	in->spec = row->spec;
	memset(&row->spec, 0, sizeof row->spec); /* taken */
	/* the driver sets what it alone knows (the executable); a spec stored by an older core
	 * that the driver now refuses is kept as it was accepted then */
	if (drv_spec_check(&in->spec, SPEC_STORED, &err) < 0)
		log_warnx("store: instance %s: its spec does not pass the driver's check now (%s); kept", in->id,
		          err.message);
	in->state = row->status.state;
	in->stop_requested = row->status.stop_requested;
	in->run = row->status.run;
	memcpy(in->node_id, row->status.node_id, sizeof in->node_id);
	in->has_exit_code = row->status.has_exit_code;
	in->exit_code = row->status.exit_code;
	if (row->status.error && !(in->error = strdup(row->status.error)))
		fatal("strdup");
	in->has_trace = row->status.has_trace;
	in->trace = row->status.trace;
	in->ready = in->has_trace && in->trace.has_boot; /* boot is measured when ready came */
	in->created_wall_us = row->created_us;
	in->updated_wall_us = row->status.updated_us;
	instance_insert(c, in); /* counts those still in flight (--max-inflight) */
}

/* ---- several cores: what the database says, read again ---- */

struct refresh {
	struct cluster *c;
	struct hmap seen;  /* ids of the rows read */
	bool leader;       /* pick up new pending rows only */
};

/* An instance's status as its row says (a follower's memory follows the leader's writes). */
static bool status_from_row(struct cluster *c, struct instance *in, const struct store_instance_row *row)
{
	const struct store_instance_status *st = &row->status;
	bool changed = in->state != st->state || in->stop_requested != st->stop_requested || in->run != st->run ||
	               strcmp(in->node_id, st->node_id) != 0 || in->updated_wall_us != st->updated_us;
	if (!changed)
		return false;
	instance_state_assign(c, in, st->state);
	in->stop_requested = st->stop_requested;
	in->run = st->run;
	instance_node_assign(c, in, st->node_id);
	in->has_exit_code = st->has_exit_code;
	in->exit_code = st->exit_code;
	free(in->error);
	in->error = NULL;
	if (st->error && !(in->error = strdup(st->error)))
		fatal("strdup");
	in->has_trace = st->has_trace;
	in->trace = st->trace;
	in->ready = in->has_trace && in->trace.has_boot;
	in->updated_wall_us = st->updated_us;
	return true;
}

static void refresh_row(void *arg, struct store_instance_row *row)
{
	struct refresh *r = arg;
	struct instance *in = cluster_instance(r->c, row->id);
	if (r->leader) {
		/* the leader's memory is the truth of what it runs; a row it lacks is a follower's
		 * create (pending); a row of another state it lacks is one it removed itself */
		if (!in && row->status.state == INST_PENDING) {
			load_instance(r->c, row);
			log_info("instance %s: created through another core, now placed here", row->id);
		}
		return;
	}
	if (!in) {
		load_instance(r->c, row);
		in = cluster_instance(r->c, row->id);
		if (r->c->hooks.instance_event)
			r->c->hooks.instance_event(r->c->hooks.arg, in);
	} else if (status_from_row(r->c, in, row)) {
		if (r->c->hooks.instance_event)
			r->c->hooks.instance_event(r->c->hooks.arg, in);
		instance_wake(in);
	}
	hmap_put(&r->seen, in->id, in);
}

/* Instances whose rows are gone (the leader removed them): their clients are answered. */
static void drop_unseen(struct cluster *c, struct hmap *seen)
{
	const char *key;
	void *v;
	struct instance **gone = NULL;
	size_t n = 0;
	for (size_t i = 0; hmap_next(&c->instances, &i, &key, &v);) {
		if (hmap_get(seen, key))
			continue;
		if (!(gone = realloc(gone, sizeof *gone * (n + 1))))
			fatal("realloc");
		gone[n++] = v;
	}
	for (size_t i = 0; i < n; i++) {
		while (gone[i]->n_waiters > 0)
			waiter_finish(gone[i]->waiters[0]);
		instance_remove(c, gone[i]);
		instance_free(gone[i]);
	}
	free(gone);
}

int cluster_refresh(struct cluster *c)
{
	struct refresh r = {.c = c};
	int rc;
	hmap_init(&r.seen);
	rc = store_instances_load(c->store, refresh_row, &r);
	if (rc == 0)
		drop_unseen(c, &r.seen);
	hmap_free(&r.seen);
	if (rc < 0)
		log_warnx("could not read the instances again from the store; answering from memory");
	return rc;
}

void cluster_took_lead(struct cluster *c)
{
	int interval = cluster_heartbeat_interval(c);
	int limit_s = 3 * interval > c->opts.heartbeat_timeout_s ? 3 * interval : c->opts.heartbeat_timeout_s;
	c->settled_us = clock_mono_us() + (int64_t)limit_s * 1000000;
}

int cluster_pick_up(struct cluster *c)
{
	struct refresh r = {.c = c, .leader = true};
	if (store_instances_load(c->store, refresh_row, &r) < 0) {
		log_warnx("could not read the instances other cores created; trying at the next wake");
		return -1;
	}
	schedule_pending(c);
	return 0;
}

int cluster_waiting(const struct cluster *c) { return c->n_waiters; }

struct cluster *cluster_create(struct event_base *base, struct store *store, struct images *images,
                               struct metrics *metrics, const struct cluster_options *o,
                               const struct cluster_hooks *hooks, char *err, size_t errlen)
{
	struct cluster *c = calloc(1, sizeof *c);
	struct timeval tv = clock_timeval(SWEEP_INTERVAL_S);
	if (!c)
		fatal("calloc");
	*c = (struct cluster){.opts = *o, .base = base, .store = store, .images = images, .metrics = metrics,
	                      .hooks = *hooks};
	hmap_init(&c->instances);
	idset_init(&c->by_id);
	hmap_init(&c->names);
	hmap_init(&c->usage);
	hmap_init(&c->node_ids);
	hmap_init(&c->on_node);
	hmap_init(&c->pending);
	hmap_init(&c->exec_ids);
	if (store_nodes_load(store, load_node, c) < 0 || store_instances_load(store, load_instance, c) < 0) {
		snprintf(err, errlen, "cannot load the store");
		cluster_destroy(c);
		return NULL;
	}
	c->sweep_timer = event_new(base, -1, EV_PERSIST, on_sweep, c);
	event_add(c->sweep_timer, &tv);
	return c;
}

void cluster_destroy(struct cluster *c)
{
	const char *key;
	void *v;
	if (!c)
		return;
	cluster_drain(c);
	if (c->sweep_timer)
		event_free(c->sweep_timer);
	if (c->lost_writer)
		event_free(c->lost_writer);
	if (cluster_lost_unwritten(c) > 0) /* learnt again at the next start (above) */
		log_info("%zu lost instances' rows were not written yet: the next start finds their nodes down again",
		         cluster_lost_unwritten(c));
	lost_writes_forget(c);
	for (int i = 0; i < c->n_nodes; i++)
		node_free(c->nodes[i]);
	free(c->nodes);
	free(c->sched_view);
	free(c->sched_scratch);
	free(c->warm);
	free(c->chosen);
	hmap_free(&c->node_ids);
	for (size_t i = 0; hmap_next(&c->instances, &i, &key, &v);)
		instance_free(v);
	hmap_free(&c->instances);
	for (size_t i = 0; hmap_next(&c->on_node, &i, &key, &v);)
		members_free(v);
	hmap_free(&c->on_node);
	hmap_free(&c->pending);
	idset_free(&c->by_id);
	hmap_free(&c->names);
	for (size_t i = 0; hmap_next(&c->usage, &i, &key, &v);)
		free(v);
	hmap_free(&c->usage);
	for (size_t i = 0; hmap_next(&c->exec_ids, &i, &key, &v);)
		free((char *)key);
	hmap_free(&c->exec_ids);
	free(c);
}
