/* cgroup — resource limits for instances that are host processes (exec), in a control
 * group of their own, on cgroup v2 or v1 (as Nomad's exec driver does):
 *
 *   what            v2 (unified)                  v1 (cpu and memory hierarchies)
 *   vCPUs           cpu.max "QUOTA PERIOD"         cpu.cfs_period_us, cpu.cfs_quota_us
 *   memory_mb       memory.max (memory.swap.max 0) memory.limit_in_bytes (memory.memsw.limit_in_bytes
 *                                                  the same: no swap, where swap accounting is on)
 *   killed for it   memory.events oom_kill         memory.oom_control oom_kill
 *
 * An instance's group is MOUNT/PARENT/NODE-ID/INSTANCE-ID (PARENT: node --cgroup-parent,
 * default "microvim"); the process joins it before it executes anything (confine.h), so
 * nothing it allocates escapes the limit. The node finds what the host offers once at
 * start (cgroup_host_init), then the exec driver creates, reads and removes groups.
 *
 * Everything here is files in cgroupfs (in kernel memory, no disk): fast enough to do on
 * the node's loop at an instance's end. Functions return 0 or -errno and put a sentence
 * in err where one is asked for. */
#ifndef MICROVIM_CGROUP_H
#define MICROVIM_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

enum cgroup_mode {
	CGROUP_AUTO, /* v2 where its cpu and memory controllers are writable, else v1, else none */
	CGROUP_V1,
	CGROUP_V2,
	CGROUP_OFF,  /* no limits: asked for, or (after cgroup_host_init) nothing usable */
};

/* "auto", "v1", "v2", "off"; 0 or -EINVAL. */
int cgroup_mode_parse(const char *s, enum cgroup_mode *m);
const char *cgroup_mode_name(enum cgroup_mode m);
/* --cgroup-parent: 1-4 path components of [A-Za-z0-9._-], none "." or "..", joined by '/'
 * (a leading '/' is allowed and ignored). */
bool cgroup_parent_valid(const char *parent);

#define CGROUP_CPU_PERIOD_US 100000LL /* the kernel's default CFS period */
#define CGROUP_CPU_QUOTA_MIN_US 1000LL /* the kernel refuses less than 1 ms */

struct cgroup_limits {
	long long cpu_quota_us, cpu_period_us; /* per period; quota <= 0: no limit */
	long long memory_bytes;                /* <= 0: no limit */
};

/* The limits of an instance of vcpus (fractional: 0.5 is half a CPU's time) and memory_mb. */
void cgroup_limits_from(double vcpus, long long memory_mb, struct cgroup_limits *l);
/* v2's cpu.max: "QUOTA PERIOD", or "max PERIOD". 0 or -ENOSPC. */
int cgroup_cpu_max_format(const struct cgroup_limits *l, char *buf, size_t len);
/* Reads "QUOTA PERIOD" or "max PERIOD" (quota -1). 0 or -EINVAL. */
int cgroup_cpu_max_parse(const char *text, long long *quota, long long *period);
/* The value of key in a flat keyed file ("oom_kill 3\n..." of memory.events or
 * memory.oom_control), or -1 when the key is not there. */
long long cgroup_keyed_value(const char *text, const char *key);

/* Where cgroups are mounted, from /proc/self/mountinfo's text. Empty strings: not mounted. */
struct cgroup_mounts {
	char v2[PATH_MAX];     /* the cgroup2 mount */
	char cpu[PATH_MAX];    /* the v1 hierarchy with the cpu controller */
	char memory[PATH_MAX]; /* the v1 hierarchy with the memory controller (may be cpu's) */
};
void cgroup_mounts_parse(const char *mountinfo, struct cgroup_mounts *m);

/* What the node found at start, and where its instances' groups go. */
struct cgroup_host {
	enum cgroup_mode mode;  /* CGROUP_V1, CGROUP_V2, or CGROUP_OFF */
	char why[256];          /* CGROUP_OFF: why there are no limits */
	/* the node's own groups: v2 uses dirs[0]; v1 dirs[0] (cpu) and dirs[1] (memory),
	 * dirs[1] "" when both controllers share a hierarchy */
	char dirs[2][PATH_MAX];
};

/* Finds what the host offers for want (auto, v1, v2, off) and makes PARENT/NODE-ID in it
 * (on v2 with the cpu and memory controllers enabled down to it). With auto, nothing
 * usable is CGROUP_OFF with a why; with v1 or v2 asked for and not usable, -ENOTSUP with
 * the reason in err. mountinfo: the text to read mounts from, NULL: /proc/self/mountinfo. */
int cgroup_host_init(struct cgroup_host *c, enum cgroup_mode want, const char *parent, const char *node_id,
                     const char *mountinfo, char *err, size_t errlen);
/* A group named name with limits l, read back to check the kernel took them. A group
 * left by an earlier try of the same name is reused. */
int cgroup_create(const struct cgroup_host *c, const char *name, const struct cgroup_limits *l, char *err,
                  size_t errlen);
/* What the kernel has for group name now. */
int cgroup_limits_read(const struct cgroup_host *c, const char *name, struct cgroup_limits *l);
/* The cgroup.procs files a process writes "0" to, to join group name (confine.h):
 * paths[1] "" when one is enough. 0 or -ENAMETOOLONG. */
int cgroup_procs_paths(const struct cgroup_host *c, const char *name, char paths[2][PATH_MAX]);
/* Kills every process of group name and lifts its CPU quota, so that they reach their
 * end at once rather than at the quota's pace (a killed process still runs its way out,
 * and the kernel throttles it there). The killed run no code of their own: the quota
 * holds nothing back any more. 0 or -errno. */
int cgroup_kill(const struct cgroup_host *c, const char *name);
/* Did the kernel kill a process of group name for its memory limit? 1, 0, or -errno. */
int cgroup_oom_killed(const struct cgroup_host *c, const char *name);
/* Kills what is left in group name and removes it. Missing is not an error; -EBUSY when
 * a process is still dying in it (cgroup_sweep removes it later). */
int cgroup_remove(const struct cgroup_host *c, const char *name);
/* Removes the node's groups that no process is in (left by instances that ended while
 * the node was down, or a kill that took long), and those of other nodes under the same
 * parent that are empty and older than a minute (nodes that are gone), with their node
 * dirs once empty. The number of dirs removed (v1: a group has one per hierarchy). */
int cgroup_sweep(const struct cgroup_host *c);
/* At the node's exit: removes its own group when no instance's group is left in it. */
void cgroup_host_close(const struct cgroup_host *c);

#endif
