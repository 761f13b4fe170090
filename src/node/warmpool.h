/* warmpool — the node's warm pools (the core's part is core/pools.h): for each pool the
 * core asks it to keep, its share of guests started, booted to their ready marker and
 * paused (the driver's pause: QMP stop), each in RUN_DIR/pool/GUEST-ID. A start assignment
 * that names the pool takes one (node/instance.h moves its dir to the instance's and
 * resumes it); the pool refills in the background, at most WARM_BOOTS_MAX guests booting
 * at once on the node, and after a failed boot not before WARM_RETRY_S.
 *
 * A guest here serves no instance until taken, and once taken it is no longer here: it
 * serves one instance at most. A guest that dies (kill -9 of its QEMU) is reaped and
 * replaced. Each guest's record (RUN_DIR/pool/ID/pool.json: its pool, spec, pid and start
 * time, QMP socket, state) lets a restarted node re-attach the paused ones (paused again on
 * a worker, which re-opens the QMP connection a take resumes through); those that
 * were still booting, or were being taken, are killed and booted again. */
#ifndef MICROVIM_WARMPOOL_H
#define MICROVIM_WARMPOOL_H

#include <event2/event.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>

#include "common/model.h"
#include "drivers/driver.h"
#include "node/imagecache.h"
#include "node/worker.h"

#define WARM_BOOTS_MAX 2   /* guests booting at once on a node, over all pools */
#define WARM_RETRY_S 1.0   /* after a failed boot, the next no sooner */
#define WARM_BOOT_TIMEOUT_S 30.0 /* a guest that has not printed its marker by then is killed */
#define WARM_REFILL_FALLBACK_S 0.5 /* after a take, the refill no later than this */

struct warm_env {
	struct event_base *base;
	struct worker_pool *workers;
	const struct drv_options *drv_opts;
	const json_t *drivers_info; /* the drivers available on this node, by name */
	const char *run_dir;
	struct imagecache *cache;
	/* What the node has warm changed (warm_pools_stock): tell the core. */
	void (*stock_changed)(void *arg);
	void *arg;
};

struct warm_pools;

struct warm_pools *warm_pools_new(const struct warm_env *env, char *err, size_t errlen);
/* Re-attaches the paused guests a previous run of this node left (kept until the core
 * says which pools the node keeps); kills the others. */
void warm_pools_recover(struct warm_pools *wp);
/* What the core wants kept here: [{"name", "size", "spec": SPEC (stored form)}]. Pools not
 * in it, or whose spec changed, are emptied; the others filled to size. */
void warm_pools_set(struct warm_pools *wp, const json_t *list);
/* {"NAME": {"ready": N, "booting": N}, ...}: new reference. */
json_t *warm_pools_stock(const struct warm_pools *wp);

/* A guest taken for an instance: its process (handle, pidfd open: the taker's now), the
 * control connection its pause kept (the taker's too: drv_resume consumes it; -1 when
 * none) and its dir. */
struct warm_taken {
	struct drv_handle h;
	int control_fd;
	char dir[PATH_MAX];
	char serial_log[PATH_MAX];
};
/* A paused guest of pool `name` whose guest is spec's exactly (driver, boot, resources,
 * config, ready), or false (none warm: the caller boots cold). */
bool warm_pools_take(struct warm_pools *wp, const char *name, const struct inst_spec *spec, struct warm_taken *out);
/* The taker's resume is done (or failed): the pool refills now. A take that is never
 * followed by this refills after WARM_REFILL_FALLBACK_S. */
void warm_pools_refill(struct warm_pools *wp);

/* Frees everything. stop: kill every guest (--stop-instances-on-exit), else the paused
 * ones are left for the next run (those still booting are killed either way). Blocking:
 * the loop has ended. */
void warm_pools_free(struct warm_pools *wp, bool stop);

#endif
