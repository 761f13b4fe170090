/* cluster — the core's model: the instances, the nodes, placement, each node's queue of
 * assignments, the clients waiting for states, and every state change of an instance (the
 * lifecycle table, core/lifecycle.h). Front ends (the native REST API: api.c, nodeapi.c,
 * imageapi.c; any other API later) parse their requests into typed values, call these
 * functions and render what they return: nothing here knows HTTP. Everything runs on the
 * core's one event loop.
 *
 * Errors: 0, or -1 with an mv_error (status, code, a sentence naming what to change). */
#ifndef MICROVIM_CLUSTER_H
#define MICROVIM_CLUSTER_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "common/error.h"
#include "common/model.h"
#include "common/trace.h"
#include "common/wire.h"
#include "core/authz.h"
#include "core/sched.h"

struct store;
struct images;
struct metrics;
struct waiter;

/* Seconds a create refused as saturated is told to wait (Retry-After). At saturation a
 * node starts an instance in about a millisecond, so a second frees hundreds of slots. */
#define CLUSTER_RETRY_AFTER_S 1

struct cluster_options {
	double cpu_ratio;        /* vCPUs offered per host CPU (Nova's cpu_allocation_ratio) */
	enum sched_policy policy;
	int heartbeat_timeout_s; /* a node silent this long is down */
	int heartbeat_rate_max;  /* heartbeats/s from all nodes together; past it their interval
	                          * grows with the nodes, as Nomad's max_heartbeats_per_second (0: no cap) */
	int64_t max_inflight;    /* instances pending, scheduled or starting at once; 0: no limit */
};

struct instance {
	char id[MV_ID_LEN + 1];
	char project[MV_NAME_MAX + 1]; /* its owner (authz.h) */
	struct inst_spec spec;         /* stored form: this instance's name, the image resolved */
	enum inst_state state;
	bool stop_requested;           /* a client asked it to stop (desired: stopped) */
	uint32_t run;                  /* 0; one more each time it starts again (common/wire.h) */
	bool ready;                    /* the guest printed its ready marker (spec ready) */
	char node_id[MV_ID_LEN + 1];   /* "" while unplaced */
	char lost_node[MV_ID_LEN + 1]; /* waiting to be placed again after this node was lost */
	bool has_exit_code;
	int exit_code;
	char *error;                   /* malloc'd or NULL */
	bool has_trace;
	struct trace trace;
	struct core_marks marks;       /* this run of the core only */
	int64_t created_wall_us, updated_wall_us;
	struct waiter **waiters;       /* clients blocked on this instance */
	int n_waiters;
};

/* One queued operation for a node, handed out on its long-poll. */
struct assignment {
	uint64_t seq;
	enum node_op op;
	char instance_id[MV_ID_LEN + 1];
	TAILQ_ENTRY(assignment) link;
};
TAILQ_HEAD(assignment_list, assignment);

struct node {
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char token[65];                /* its own bearer token, from its last registration */
	char address[WIRE_ADDRESS_MAX + 1];
	bool ready;
	json_t *drivers;               /* {"exec": {"version": ..., "allow": [...]}, ...}: what it advertised */
	json_t *labels;
	json_t *bridges;               /* ["br0", ...] */
	json_t *run_dir;               /* a string: its run dir, as it said at registration; or NULL */
	unsigned driver_mask;          /* bit driver_index() of each driver it offers */
	struct exec_allow exec_allow;  /* the executables its drivers allow ("allow" in their info) */
	uint64_t exec_bloom, exec_mask;
	bool exec_exact;               /* exec_mask lists all of exec_allow */
	int cpus;
	int64_t memory_mb;
	int64_t vcpus_milli_total, memory_mb_total;
	int64_t vcpus_milli_used, memory_mb_used;
	int n_instances;
	int64_t last_heartbeat_mono_us, last_heartbeat_wall_us;
	int hb_told_s, hb_told_before_s; /* the heartbeat interval it was told last, and the time before */
	uint64_t next_seq;
	struct assignment_list queue;
	int view_idx;                  /* its entry in the scheduler's view */
	void *poll;                    /* the front end's waiting long-poll, or NULL (not the cluster's) */
};

/* What the cluster tells its front ends. Called on the loop, after the change is durable. */
struct cluster_hooks {
	void *arg;
	/* Assignments were queued for n: answer its waiting long-poll, if any. */
	void (*node_wake)(void *arg, struct node *n);
	/* For the event stream: an instance's state, or a node's readiness ("ready", "down"). */
	void (*instance_event)(void *arg, const struct instance *in);
	void (*node_event)(void *arg, const struct node *n, const char *what);
	/* An instantiation's trace is final (also what goes to the metrics): recent traces. */
	void (*instance_traced)(void *arg, const struct instance *in);
	/* Several cores over one database (core/leader.h): whether this one leads now (NULL:
	 * always, the one core of SQLite). A follower stores creates as pending and sends
	 * nothing to nodes; it then calls follower_wrote, to wake the leader. */
	bool (*leading)(void *arg);
	void (*follower_wrote)(void *arg);
};

struct cluster;
struct pools;

/* Loads nodes (as down until they register again) and instances from the store. */
struct cluster *cluster_create(struct event_base *base, struct store *store, struct images *images,
                               struct metrics *metrics, const struct cluster_options *o,
                               const struct cluster_hooks *hooks, char *err, size_t errlen);
/* Warm pools (core/pools.h): a create that takes from a pool is placed on a node that said
 * it holds a warm guest of it, when one fits (sched.h). NULL (the default): no preference. */
void cluster_set_pools(struct cluster *c, struct pools *pools);
/* Answers every waiting client (at shutdown). */
void cluster_drain(struct cluster *c);
void cluster_destroy(struct cluster *c);
const struct cluster_options *cluster_options(const struct cluster *c);

/* ---- instances ---- */

struct cluster_create_req {
	const struct inst_spec *spec;  /* SPEC_REQUEST form, checked (drv_spec_parse) */
	const char *idem_key;          /* Idempotency-Key, or NULL */
	const char *digest;            /* of the request body, with idem_key */
	int64_t accepted_us;           /* when the request began (the accept phase) */
	const char *project;           /* the new instances' owner; NULL: AUTHZ_ADMIN_PROJECT */
	const struct authz_quota *quota; /* the project's limits; NULL: none */
	bool any_image;                /* may boot another project's image (an admin) */
};

/* How a create ends: its instances (the array lives for the call; replayed: a retry with a
 * known key, answered from the first creation), or err. */
typedef void cluster_created_fn(void *arg, struct instance *const *insts, int n, bool replayed,
                                const struct mv_error *err);
/* Creates spec->count instances, all or none: a retry with the same key answers the first
 * creation (the instances still known); then admission (--max-inflight), names, the image
 * (of the project, unless any_image), the project's quota for all count of them (403
 * quota_exceeded), room on the nodes; one transaction stores them with the key; then they
 * are placed. The checks and the store happen in one turn of the loop, so that concurrent
 * creates can never overshoot a quota. done is called once: at once, or at the end of this
 * turn, once the store's commit says whether the rows are stored (store.h, "Units settled
 * at the commit": a name another core took at the same moment is a 409 then). r is not
 * used after the call returns. */
void cluster_instances_create(struct cluster *c, const struct cluster_create_req *r, cluster_created_fn *done,
                              void *arg);
struct instance *cluster_instance(const struct cluster *c, const char *id);
/* Stops a live instance (a stop for its node; at once when it has none yet). */
int cluster_instance_stop(struct cluster *c, struct instance *in, struct mv_error *err);
/* Runs an ended instance again on its node, with the same spec, resources and network: a new
 * run (common/wire.h) whose trace is measured from accepted_us. 409 when it is not ended,
 * its node is down, or its node has no room for it now; an instance stopped before it had
 * a node is placed like a new one. */
int cluster_instance_start(struct cluster *c, struct instance *in, int64_t accepted_us, struct mv_error *err);
/* Stops a running instance and runs it again on its node (the node ends the old run
 * first; its resources stay held); an ended one is started as above. 409 while it is on
 * its way to running or lost. */
int cluster_instance_restart(struct cluster *c, struct instance *in, int64_t accepted_us, struct mv_error *err);
/* Removes an ended instance (its record; its node removes its files); in is freed. */
int cluster_instance_remove(struct cluster *c, struct instance *in, struct mv_error *err);

/* Instances in id order, of one state (or -1: all), whose id comes after `after_id` (NULL:
 * from the first; it need not exist, so a page boundary survives the removal of its last
 * instance), until fn has taken `limit` of them (fn returns true for one it takes, false for
 * one its own filter skips). Costs O(log n + what is visited) and no memory: a pager over a
 * million instances never builds the whole list. Returns how many fn took. */
typedef bool cluster_instance_fn(void *arg, const struct instance *in);
size_t cluster_instances_list(struct cluster *c, int state, const char *after_id, size_t limit,
                              cluster_instance_fn *fn, void *arg);
size_t cluster_instance_count(const struct cluster *c);
/* The instance records placed on node_id (what its registration reconciles): kept by node,
 * not found by a scan. */
size_t cluster_node_instance_records(const struct cluster *c, const char *node_id);
/* Instances lost with their nodes whose rows do not say so yet (cluster.c, "Rows of lost
 * instances"): they are written a chunk per loop turn. */
size_t cluster_lost_unwritten(const struct cluster *c);
void cluster_count_states(const struct cluster *c, int counts[INST_STATE_COUNT]);
int64_t cluster_in_flight(const struct cluster *c);
uint64_t cluster_refused_saturated(const struct cluster *c);
/* What a project's instances hold: every instance record counts until it is removed, as
 * Nova counts a stopped server (zeros for a project with none). */
void cluster_project_usage(const struct cluster *c, const char *project, struct authz_quota *out);
/* An instance not ended that boots image `name`, or NULL (an image in use stays). */
const struct instance *cluster_image_user(const struct cluster *c, const char *name);

/* ---- clients waiting for states ---- */

enum wait_kind {
	WAIT_RUNNING, /* running, or ended */
	WAIT_READY,   /* running with its ready marker seen, or ended */
	WAIT_STOPPED, /* ended */
};
/* Called once: when every instance is there, at the timeout, or at shutdown. ids stay
 * valid for the call; an instance removed meanwhile is no longer found by its id. */
typedef void cluster_wait_fn(void *arg, char (*ids)[MV_ID_LEN + 1], int n);
void cluster_wait(struct cluster *c, struct instance *const *insts, int n, enum wait_kind kind, double timeout_s,
                  cluster_wait_fn *done, void *arg);

/* ---- nodes ---- */

struct node *cluster_node(const struct cluster *c, const char *id);
int cluster_node_count(const struct cluster *c);
struct node *cluster_node_at(const struct cluster *c, int i);
int cluster_nodes_ready(const struct cluster *c);
/* A node says who it is, what it offers and what it has alive: recorded, made ready with a
 * new token, reconciled (docs/API.md, "Node loss, partitions and reconciliation"); then
 * pending instances are placed. */
int cluster_node_register(struct cluster *c, const struct wire_register *reg, struct node **out,
                          struct mv_error *err);
/* A live node's bridges changed while it runs (a bridge made or deleted on its host):
 * recorded, and placement sees them at once; pending instances are placed. Takes a
 * reference to bridges (checked by wire_bridges_parse). */
int cluster_node_set_bridges(struct cluster *c, struct node *n, json_t *bridges, struct mv_error *err);
/* Seconds between a node's heartbeats: three fit in the heartbeat timeout (at most 5 s),
 * and more when the nodes would send more than heartbeat_rate_max a second together
 * (nodes / rate, rounded up). */
int cluster_heartbeat_interval(const struct cluster *c);
/* The interval told to n now (its registration's or heartbeat's answer carries it): noted,
 * so that n is declared down only after three of the longest interval it may still be
 * keeping (the one told before, until its next heartbeat). */
int cluster_node_interval_tell(struct cluster *c, struct node *n);
/* How long n may stay silent before it is down: the heartbeat timeout, or three of its
 * intervals when they grew past a third of it. */
int cluster_node_silence_limit_s(const struct cluster *c, const struct node *n);
/* A node the core declared down (or has not seen since its own restart) must register
 * again (404 register_again); a live one's heartbeat is noted. */
int cluster_node_touch(struct cluster *c, struct node *n, struct mv_error *err);
/* The node asked its long-poll with after=SEQ: it has everything up to SEQ. */
void cluster_node_ack(struct cluster *c, struct node *n, uint64_t after);
bool cluster_node_has_work(const struct node *n);
/* Hands out n's queued assignments, each to fn (spec: a start's, or NULL); the starts are
 * marked sent (the dispatch phase ends as they go). They stay queued until acknowledged. */
typedef void cluster_assignment_fn(void *arg, uint64_t seq, enum node_op op, const char *id,
                                   const struct inst_spec *spec, uint32_t run);
void cluster_node_take(struct cluster *c, struct node *n, cluster_assignment_fn *fn, void *arg);
/* A node's status reports, applied in one transaction; arrived_us: when they came. A
 * report of an earlier run than the instance's is old news, and ignored. */
int cluster_node_reports(struct cluster *c, struct node *n, const struct wire_report *reps, size_t count,
                         int64_t arrived_us, struct mv_error *err);
/* Cuts a node off (its credential was revoked, core/nodeauth.h): its token of the
 * moment is forgotten, it is down, and its instances are lost as when it stops beating
 * (those with "restart": "on-lost" are placed again). Returns how many were lost. */
int cluster_node_revoke(struct cluster *c, struct node *n);
/* Does an instance placed on node_id boot the blob `digest` (what that node may fetch)? */
bool cluster_node_uses_blob(const struct cluster *c, const char *node_id, const char *digest);
/* Declares down the nodes silent longer than the heartbeat timeout (a timer calls it each second). */
void cluster_sweep(struct cluster *c, int64_t now_mono_us);

/* ---- several cores over one database (core/leader.h) ---- */

/* Whether this core acts (places, dispatches, reconciles): hooks.leading. */
bool cluster_leading(const struct cluster *c);
/* A follower (and a core taking the lead): every instance as the store has it now: new
 * rows added, statuses taken, rows gone removed; waiting clients are answered as their
 * instances reach the state they wait for. Costs a read of every row. */
int cluster_refresh(struct cluster *c);
/* The leader: pending instances other cores stored are taken in and placed. */
int cluster_pick_up(struct cluster *c);
/* This core just took the lead from another: its nodes are down in its view until they
 * register with it, which they do within their heartbeat timeout. Until then (or until
 * every node it knows, at least one, is ready) a create that no ready node could take
 * stays pending (placed as nodes register), as on a follower, rather than being refused
 * 422 no_node/no_capacity by a leader that has not heard from its nodes yet. */
void cluster_took_lead(struct cluster *c);
/* Clients waiting for states now (a follower refreshes while there are some). */
int cluster_waiting(const struct cluster *c);

#endif
