/* internal — the node agent's state, shared by its modules: agent.c (the conversation
 * with the core), instance.c (the life of each instance), imagecache.c. Not an interface
 * for anything outside src/node. */
#ifndef MICROVIM_NODE_INTERNAL_H
#define MICROVIM_NODE_INTERNAL_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/hmap.h"
#include "common/model.h"
#include "common/trace.h"
#include "drivers/driver.h"
#include "node/netdev.h"
#include "node/node.h"
#include "node/worker.h"

enum ninst_phase { NI_PREPARING, NI_SPAWNING, NI_RUNNING, NI_ENDED };

#define NODE_WATCH_MAX 8 /* entries of drivers[] whose exit events the node can follow */

/* One instance on this node. */
struct ninst {
	struct node_agent *agent;
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	json_t *spec;
	const struct driver *drv;
	enum ninst_phase phase;
	enum inst_state final_state; /* when ended */
	bool stop_requested;
	bool stop_in_progress;       /* a stop call is on a worker */
	bool exit_pending;           /* it ended while a stop call was on a worker: reaped after */
	int jobs;                    /* worker jobs in flight that point at this instance */
	bool purged;                 /* removed; freed when the last job is done */
	bool ready;                  /* the guest printed its ready marker */
	struct drv_handle h;
	struct event *exit_ev, *kill_timer;
	int stdout_fd, stderr_fd;
	char dir[PATH_MAX];
	char kernel[PATH_MAX], initrd[PATH_MAX], serial_log[PATH_MAX];
	int pending_fetches;         /* image blobs still on their way */
	bool prepare_failed;

	/* network phase: what was made, so that it is unmade */
	char tap[NETDEV_NAME_MAX + 1];
	char netns[NETDEV_NAME_MAX + 1];

	/* boot phase: watching the serial log for the ready marker */
	int serial_fd, watch;
	char carry[MV_READY_PATTERN_MAX];
	size_t carry_len;

	int64_t received_us, spawned_us;
	struct node_timing timing;
	int start_rc;
	char start_err[256];
	bool has_exit_code;
	int exit_code;
	char error[256];
};

struct report {
	char id[MV_ID_LEN + 1];
	enum inst_state state;
	bool ready;
	bool has_exit_code;
	int exit_code;
	char error[256];
	bool has_timing;
	struct node_timing timing;
	int64_t received_us; /* for work_us, computed when the report is sent */
	struct report *next;
};

struct node_agent {
	struct node_options opts;
	struct event_base *base;
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char host[256];
	int port;
	char run_dir[PATH_MAX];
	char *cluster_token;
	char node_token[80];
	struct evhttp_connection *poll_conn, *ctl_conn, *report_conn, *blob_conn;
	json_t *drivers_info;
	struct drv_options drv_opts;
	struct worker_pool *workers;
	struct hmap instances;
	int cpus;
	int64_t memory_mb;
	bool registered, registering, shutting_down;
	uint64_t acked;
	double backoff_s;
	int hb_interval_s;
	struct event *hb_timer, *register_timer, *poll_timer, *report_timer, *shutdown_timer;
	struct event *status_timer; /* handles without a pidfd (libvirt, xen) */
	struct event *watch_evs[NODE_WATCH_MAX]; /* by index in drivers[]: exit events (libvirt) */
	int inotify_fd;
	struct event *inotify_ev;
	struct report *reports, **reports_tail; /* queued, not yet sent */
	struct report *in_flight;               /* sent, answer pending */
	void (*on_shutdown)(void *arg);
	void *on_shutdown_arg;
};

/* ---- agent.c: the conversation with the core ---- */
void agent_report(struct node_agent *a, const struct ninst *ni, enum inst_state st);
void agent_report_unknown_stopped(struct node_agent *a, const char *id);
typedef void blob_fetched_fn(struct node_agent *a, struct ninst *ni, const char *digest,
                             struct evbuffer *body /* NULL on failure */, const char *why);
void agent_fetch_blob(struct node_agent *a, struct ninst *ni, const char *digest, blob_fetched_fn *done);
void agent_shutdown_check(struct node_agent *a);

/* ---- instance.c: each instance's life ---- */
int instances_init(struct node_agent *a, char *err, size_t errlen);
void instance_start(struct node_agent *a, const char *id, const json_t *spec);
void instance_stop(struct node_agent *a, const char *id);
void instance_purge(struct node_agent *a, const char *id);
void instances_recover(struct node_agent *a);
bool instances_alive(struct node_agent *a);
/* ["id", ...] of the instances not ended (preparing, spawning, running). */
json_t *instances_alive_ids(struct node_agent *a);
void instances_stop_all(struct node_agent *a);
void instances_kill_all(struct node_agent *a);
void instances_free(struct node_agent *a);

/* ---- imagecache.c: blobs on this node ---- */
/* Where digest lives for this instance (the shared cache, or the instance dir with
 * --image-cache off); true when it is already there. */
bool imagecache_lookup(struct node_agent *a, const struct ninst *ni, const char *digest, char *path, size_t len);
/* On a worker: checks the digest of data and writes it to path atomically. 0 or -errno. */
int imagecache_store(const char *digest, const void *data, size_t len, const char *path);

#endif
