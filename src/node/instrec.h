/* instrec — an instance's record on its node (RUN_DIR/instances/ID/record.json): what a
 * restarted node needs to find and re-attach to it. Written atomically (temp + rename:
 * it survives the node's crash; no fsync, as instances do not outlive a reboot), and
 * "spawning" before the driver's start, so that a node killed in between finds what was
 * started instead of starting a second copy.
 *   {"id", "name", "spec": SPEC (stored form), "state": "spawning"|"running"|ENDED-STATE,
 *    "pid", "start_time", "domain", "control", "tap", "netns", "ready", "exit_code", "error",
 *    "run" (common/wire.h; absent: 0)} */
#ifndef MICROVIM_INSTREC_H
#define MICROVIM_INSTREC_H

#include <stdbool.h>

#include "common/model.h"
#include "drivers/driver.h"
#include "node/netdev.h"

enum instrec_state { INSTREC_SPAWNING, INSTREC_RUNNING, INSTREC_ENDED };

struct instrec {
	char id[MV_ID_LEN + 1];
	struct inst_spec spec;
	uint32_t run;             /* the run it records */
	enum instrec_state state;
	enum inst_state ended_as; /* with INSTREC_ENDED */
	struct drv_handle h;      /* pid, start_time, domain, control (pidfd: -1) */
	char tap[NETDEV_NAME_MAX + 1], netns[NETDEV_NAME_MAX + 1];
	bool ready;
	bool has_exit_code;
	int exit_code;
	char error[256];
};

/* Writes dir/record.json. 0 or -errno. */
int instrec_write(const char *dir, const struct instrec *r);
/* The spawn hold: a lock the node takes (dir/spawning.lock, flock) before the driver's
 * start and hands to the child, which holds it, close-on-exec, until it executes or dies.
 * A node killed while a child is between its clone and its exec (joining cgroups can take
 * a while) leaves that child invisible to the adopt's search (its environment is still the
 * node's); a restarted node first waits for the hold's release, then searches.
 * instrec_hold_take: the locked descriptor (close-on-exec; the caller closes it after the
 * start), or -errno. instrec_hold_wait: 0 once no one holds it (or there is none),
 * -ETIMEDOUT after timeout_ms. */
int instrec_hold_take(const char *dir);
int instrec_hold_wait(const char *dir, int timeout_ms);

/* Reads dir/record.json into r (r->spec generic-checked; the caller's driver table checks
 * the rest). 0, -ENOENT, or -EINVAL when it does not read back. */
int instrec_read(const char *dir, struct instrec *r);

#endif
