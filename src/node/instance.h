/* instance — the instances of this node, each through its life (node/lifecycle.h):
 *   pool     a start naming a warm pool takes a paused guest from it (node/warmpool.h):
 *            prepare moves the guest's dir to the instance's, spawn resumes it; none
 *            warm: started cold as any other
 *   prepare  instance dir, logs, image blobs (cache hit, or fetched and verified)
 *   network  what the driver's network slot asks for, on the bridge   (on a worker)
 *   spawn    the driver's start call                                  (on a worker)
 *   boot     the guest's ready marker seen on its serial log          (inotify)
 *   logs     stdout, stderr and serial, each bounded to --log-max-bytes while it runs
 *            (node/logbuf.h) and kept until the instance is removed
 *   exit     pidfd readable, or the toolstack says the domain is gone (libvirt, xen)
 *   stop     gentle stop, then forced after the grace period
 * Every change is pushed to the report queue at once; the agent sends it. This module
 * does not talk to the core. */
#ifndef MICROVIM_INSTANCE_H
#define MICROVIM_INSTANCE_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/model.h"
#include "drivers/driver.h"
#include "node/imagecache.h"
#include "node/reports.h"
#include "node/warmpool.h"
#include "node/worker.h"

/* What instances need from their node. Borrowed: it outlives them. */
struct instances_env {
	struct event_base *base;
	struct worker_pool *workers;
	const struct drv_options *drv_opts;
	const json_t *drivers_info; /* the drivers available on this node, by name */
	const char *run_dir;        /* instance dirs are RUN_DIR/instances/ID */
	double stop_grace_s;
	struct imagecache *cache;
	struct warm_pools *pools;   /* a start naming a pool takes a warm guest from it; or NULL */
	struct report_queue *reports;
	uint64_t log_max_bytes;     /* per log stream */
	/* An instance's logs grew, or it ended or was removed: wake its readers. May be NULL. */
	void (*log_written)(void *arg, const char *id);
	void *log_arg;
};

struct instances;

/* Sets up the serial-log watch and the domain exit events. NULL with words in err. */
struct instances *instances_new(const struct instances_env *env, char *err, size_t errlen);
/* Re-attaches to the instances a previous run of this node started (their records). */
void instances_recover(struct instances *set);
/* The core's operations. start takes a copy of spec; run is the run it begins (common/wire.h):
 * a start of a run the instance is in (or past) is a start sent again, and answered with
 * where it stands; of a newer run, the instance ends the one it is in (stopped, as by a
 * stop) and runs anew in the same dir. */
void instances_start(struct instances *set, const char *id, const struct inst_spec *spec, uint32_t run);
void instances_stop(struct instances *set, const char *id);
void instances_purge(struct instances *set, const char *id);
/* One of an instance's logs, for reading (node/logbuf.h): *fd open read-only, or -1 when
 * nothing was written yet; *ended once the instance has ended (no more will come).
 * -ENOENT: no such instance here (or removed); -ENODATA: the stream is not kept for it
 * (serial of a process). */
int instances_log_open(struct instances *set, const char *id, enum log_stream s, int *fd, bool *ended);
/* Instances not ended (for the registration's reconciliation list, and shutdown). */
bool instances_alive(const struct instances *set);
/* *ids: malloc'd array of *n ids. */
void instances_alive_ids(const struct instances *set, char (**ids)[MV_ID_LEN + 1], size_t *n);
/* Node exit with --stop-instances-on-exit: stop every one (grace, then force) ... */
void instances_stop_all(struct instances *set);
/* ... and at the deadline, force those left (blocking: the loop is ending). */
void instances_kill_all(struct instances *set);
/* Frees everything; with teardown, the network of instances still running is removed and
 * the node's own children reaped (they were stopped: --stop-instances-on-exit). */
void instances_free(struct instances *set, bool teardown);

#endif
