/* internal — the core's in-memory state, shared by its modules (api, nodeapi, store,
 * events, metrics). Not an interface for anything outside src/core. */
#ifndef MICROVIM_CORE_INTERNAL_H
#define MICROVIM_CORE_INTERNAL_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "common/hmap.h"
#include "common/httpguard.h"
#include "common/model.h"
#include "common/trace.h"
#include "core/core.h"
#include "core/sched.h"

#include "common/digest.h"

#define MV_BLOB_MAX (64 << 20) /* bytes per image blob (kernel or initrd) */

struct store;
struct metrics;
struct waiter;

struct instance {
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char driver[16];
	/* The spec as accepted (spec_to_json), kept as compact JSON text and parsed when needed
	 * (instance_spec): a parsed tree costs ~1.5 KiB, the text ~200 bytes, and the core
	 * holds every stored instance in memory. What the hot paths need is cached beside it. */
	char *spec_text;
	bool has_ready;       /* the spec has a ready marker */
	bool restart_on_lost; /* "restart": "on-lost" */
	int64_t vcpus_milli, memory_mb;
	enum inst_state state;
	bool stop_requested;         /* DELETE asked for it to stop */
	bool ready;                  /* the guest printed its ready marker (spec "ready") */
	char node_id[MV_ID_LEN + 1]; /* "" while unplaced */
	char lost_node[MV_ID_LEN + 1]; /* waiting to be placed again after this node was lost */
	bool has_exit_code;
	int exit_code;
	char *error; /* malloc'd or NULL */
	bool has_trace;
	struct trace trace;
	struct core_marks marks; /* this run of the core only */
	int64_t created_wall_us, updated_wall_us;
	struct waiter **waiters; /* clients blocked on this instance */
	int n_waiters;
};

/* A registered diskless image: blobs by content address, and a command line. */
struct image {
	char name[MV_NAME_MAX + 1];
	char kernel[DIGEST_LEN + 1];
	char initrd[DIGEST_LEN + 1]; /* "" when none */
	char *cmdline;               /* NULL when none */
	int64_t kernel_size, initrd_size;
	int64_t created_wall_us;
};

/* One queued operation for a node, handed out on its long-poll. */
struct assignment {
	uint64_t seq;
	char op[8]; /* "start" | "stop" */
	char instance_id[MV_ID_LEN + 1];
	TAILQ_ENTRY(assignment) link;
};
TAILQ_HEAD(assignment_list, assignment);

struct node {
	struct core *core;
	int view_idx; /* its entry in core->sched_view, kept up to date by node_view_sync */
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char token[65];
	char address[64];
	bool ready;
	json_t *drivers; /* {"exec": {"version": ..., "allow": [...]}, ...} */
	json_t *labels;
	json_t *bridges; /* ["br0", ...] */
	unsigned driver_mask;
	const json_t *exec_allow; /* drivers.exec.allow (borrowed from drivers) */
	uint64_t exec_bloom;
	uint64_t exec_mask; /* bits of the core's executable ids (exec_ids) */
	bool exec_exact;    /* all of its allowed paths have ids */
	int cpus;
	int64_t memory_mb;
	int64_t vcpus_milli_total, memory_mb_total;
	int64_t vcpus_milli_used, memory_mb_used;
	int n_instances;
	int64_t last_heartbeat_mono_us, last_heartbeat_wall_us;
	uint64_t next_seq;
	struct assignment_list queue;
	struct evhttp_request *poll;   /* the waiting long-poll, or NULL */
	struct event *poll_timer;
	uint64_t acked_seq;
};

struct core {
	struct core_options opts;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct http_guard *guard; /* connections per address, request deadline, body caps */
	char url[128];
	char *token; /* cluster token, NULL when none */
	struct store *store;
	struct hmap instances;  /* id -> struct instance */
	struct hmap names;      /* name -> struct instance */
	struct hmap images;     /* name -> struct image */
	struct hmap rate;       /* client address -> request token bucket */
	struct hmap exec_ids;   /* executable path -> id + 1 (at most 64): one bit in a node's mask */
	int n_exec_ids;
	struct node **nodes;    /* array: the scheduler scans it */
	int n_nodes, cap_nodes;
	struct sched_node *sched_view; /* the scheduler's view of every node, kept current */
	struct event *sweep_timer; /* heartbeat timeouts */
	struct metrics *metrics;
	struct traces *traces; /* recent instantiation traces per driver (GET /v1/traces) */
	/* Instances in flight (pending, scheduled, starting) in `instances`: kept current by
	 * core_instance_insert/remove and instance_state_assign, read by admission control. */
	int64_t n_in_flight;
	uint64_t n_refused_saturated; /* creates refused with 503 saturated */
	uint64_t event_seq;
	struct subscriber *subscribers;
	int64_t started_wall_us;
};

/* ---- instances (api.c) ---- */
struct instance *core_instance(struct core *c, const char *id);
/* Adds an instance to the core's maps (by id and name) and counts it if in flight. */
void core_instance_insert(struct core *c, struct instance *in);
/* Sets the state in memory only. Every change of in->state of an instance in the core's
 * maps goes through here, so that the in-flight count stays exact without a scan. */
void instance_state_assign(struct core *c, struct instance *in, enum inst_state st);
json_t *instance_to_json(const struct instance *in);
/* Records a state change: store, events, metrics, waiting clients. 0 or -1 (store failed). */
int instance_set_state(struct core *c, struct instance *in, enum inst_state st);
void instance_free(struct instance *in);
/* The instance's spec, parsed (a new reference). */
json_t *instance_spec(const struct instance *in);
/* Sets spec_text and the cached fields from a spec. 0 or -1 (not serialisable). */
int instance_set_spec(struct instance *in, const json_t *spec);
/* Answers clients waiting for a state this instance has now reached. */
void instance_wake(struct instance *in);
/* Answers every waiting client (shutdown). */
void api_finish_waiters(struct core *c);
void api_register_routes(struct core *c);
void core_schedule_pending(struct core *c);

/* ---- nodes (nodeapi.c) ---- */
struct node *core_node(struct core *c, const char *id);
json_t *node_to_json(const struct node *n);
void nodeapi_register_routes(struct core *c);
/* Queues an operation for a node and answers its waiting long-poll. */
void node_enqueue(struct core *c, struct node *n, const char *op, const struct instance *in);
void node_enqueue_id(struct core *c, struct node *n, const char *op, const char *id);
void node_release(struct node *n, const struct instance *in);
void node_reserve(struct node *n, const struct instance *in);
void nodes_sweep(struct core *c);

void node_free(struct node *n);
/* Answers the node's waiting long-poll with 503 (the core is going away). */
void node_release_poll(struct node *n);
void core_add_node(struct core *c, struct node *n);
/* Writes the node's current state into the scheduler's view (after any change to it). */
void node_view_sync(struct node *n);
/* The id bit of an executable path (0 when it has none); with add, gives it one if there is
 * room. *known is false once some path had to go without (then the masks are not exact). */
uint64_t core_exec_bit(struct core *c, const char *path, bool add, bool *exact);

/* ---- images (images.c) ---- */
int images_load(struct core *c, char *err, size_t errlen);
void images_free(struct core *c);
/* {"kernel": digest, "initrd": digest, "cmdline": str} for a spec, or NULL when unknown. */
json_t *images_boot_of(struct core *c, const char *name);

/* ---- events (events.c) ---- */
void events_publish_instance(struct core *c, const struct instance *in);
void events_publish_node(struct core *c, const struct node *n, const char *what);
void events_handle(struct core *c, struct evhttp_request *req);
void events_close_all(struct core *c);

/* ---- auth and routing (core.c) ---- */
bool core_authorized(struct core *c, struct evhttp_request *req);
void rate_forget(struct core *c);

#endif
