/* driver — the table every hypervisor or process driver fills in (Nomad's driver
 * lifecycle as a C table), and the one list of drivers:
 *   what it accepts   boots_image, config_check (the core checks every spec with it),
 *                     network (how an instance attaches to a bridge)
 *   probe             fingerprint the host: does the driver work here, what it offers
 *   start             may block: the node calls it on a worker thread
 *   stop              gently or by force; signal: a signal to an instance that is a process
 *   pause, resume     freeze a booted guest's vCPUs and let them run on (warm pools)
 *   reap, status      the end: collect a process's exit, ask the toolstack for a domain
 *   recover, adopt    re-attach after a node restart, to a recorded handle or to what was
 *                     started just before the node died
 *   release           after the end: what the driver holds beyond the process (exec: its
 *                     cgroup), and why it ended when the exit code does not say (oom)
 *   watch             exit events for domains, where the toolstack has them
 * An operation a driver lacks is NULL; the drv_* wrappers turn that into -ENOTSUP in one
 * place. The drivers there are, and a lookup by name, are drivers/drivers.h: no code
 * outside src/drivers/ names a driver.
 *
 * Drivers know nothing of HTTP or the store. All functions return 0 or -errno and put a
 * sentence in err where the caller needs words (config_check: an mv_error naming the field). */
#ifndef MICROVIM_DRIVER_H
#define MICROVIM_DRIVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/model.h"

struct cgroup_host;  /* drivers/cgroup.h */
struct confine_user; /* drivers/confine.h */

/* Host-level settings a node passes to its drivers. */
struct drv_options {
	const struct exec_allow *exec_allow; /* executables instances may run; NULL or empty: none */
	const char *qemu_binary;       /* default "qemu-system-x86_64" (looked up in PATH) */
	const char *libvirt_uri;       /* default "qemu:///system"; "xen:///system" on a Xen host */
	const char *xl_binary;         /* default "xl"; tests point it at the stand-in toolstack */
	const char *xenstore_binary;   /* default "xenstore" (xenstore-utils: `xenstore write|watch|...`) */
	const char *xen_console_dir;   /* default "/var/log/xen/console": xenconsoled's --log-dir */
	const struct cgroup_host *cgroups;    /* exec: where instances' limits go; NULL or mode off: none */
	const struct confine_user *exec_user; /* exec: instances run as this user; NULL: as the node */
};

/* What the node hands a driver to start one instance. */
struct drv_start_request {
	const char *instance_id;
	const char *name;
	const json_t *config;  /* the spec's config, as the driver's config_check accepted it; or NULL */
	const char *dir;       /* the instance's own directory */
	int stdout_fd, stderr_fd; /* log files opened by the node */
	int hold_fd;           /* > 0: the node's spawn hold (node/instrec.h), close-on-exec; a
	                        * driver that spawns a process hands it to the child (proc.h) */

	/* VM drivers: the image, already in the node's cache (prepare phase). */
	const char *kernel;    /* absolute path */
	const char *initrd;    /* absolute path or NULL */
	const char *cmdline;   /* kernel command line or NULL */
	const char *xen_type;  /* xen: the image's guest type, "pv" or "pvh"; NULL or "": PVH */
	const char *serial_log; /* the guest's first serial port (xen: its console) goes to this
	                          * file (the node watches it for the "ready" pattern: the boot phase) */
	double vcpus;          /* as requested (fractional); VM drivers round up to whole vCPUs */
	long long memory_mb;

	/* Network phase, done by the node before the driver is called (driver.network). */
	const char *tap;       /* DRV_NET_TAP: a tap already on the bridge, or NULL */
	const char *bridge;    /* DRV_NET_BRIDGE: the bridge to attach the guest's interface to, or NULL */
	const char *netns;     /* DRV_NET_NETNS: the network namespace to run in (path under /run/netns), or NULL */

	/* Out: the driver calls drv_config_done(r) when its configuration (argv, domain XML,
	 * xl config) is generated, just before the toolstack or hypervisor call, so that the
	 * node can split the spawn phase into config and call (the trace's steps). */
	int64_t *config_done_us;
};

/* Marks the end of the driver's configuration step (clock_mono_us); NULL slot: no-op. */
void drv_config_done(const struct drv_start_request *r);

/* How an instance of a driver attaches to a bridge (spec "network": {"bridge"}). The node's
 * network phase makes what the driver asks for, and removes it when the instance ends. */
enum drv_network {
	DRV_NET_TAP,    /* a tap device on the bridge, handed to the hypervisor (qemu) */
	DRV_NET_NETNS,  /* a network namespace of its own whose eth0 is a veth on the bridge (a process) */
	DRV_NET_BRIDGE, /* nothing: the toolstack attaches the guest to the named bridge itself */
};

/* What identifies a running instance across node restarts (persisted by the node). */
struct drv_handle {
	pid_t pid;                     /* 0 when the driver has no process */
	unsigned long long start_time; /* /proc/PID/stat start time: a reused pid never matches */
	int pidfd;                     /* readable when the process ends; -1 when not open */
	bool is_child;                 /* ours to reap (false after a node restart) */
	char domain[64];               /* libvirt/xen: the domain name; "" otherwise */
	char control[256];             /* qemu: the QMP socket path; "" otherwise */
};

struct driver {
	const char *name;

	/* ---- what it accepts (the core checks every spec with these) ---- */
	bool boots_image;          /* a guest booted from a registered image; else a config says what runs */
	enum drv_network network;
	/* The spec's config (NULL when absent): every field known and valid, or 400 naming the
	 * field. *executable: the host executable an instance runs, that a node must allow
	 * (exec_allow), or NULL. */
	int (*config_check)(const json_t *config, const char **executable, struct mv_error *err);

	/* ---- the lifecycle (on the node) ---- */
	/* Does this driver work on this host? info: {"version": ..., ...} advertised to the core;
	 * a driver whose instances run host executables lists them under "allow". */
	int (*probe)(const struct drv_options *o, json_t **info, char *err, size_t errlen);
	int (*start)(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h,
	             char *err, size_t errlen);
	/* Gently (the guest or process may clean up) or by force. May block (QMP, a toolstack):
	 * the node calls it on a worker. NULL: drv_stop sends SIGTERM or SIGKILL through signal. */
	int (*stop)(const struct drv_options *o, struct drv_handle *h, bool force);
	/* After a forced stop of instance_id: kills what is left of it outside the process
	 * group the stop reached, and lifts what holds the killed back from ending: the kernel
	 * throttles a killed process on its way out like any other, and at a small CPU quota
	 * on a busy host its end took seconds (a node's shutdown outlasted its grace). Called
	 * on a worker, or at shutdown. NULL: nothing to do. */
	void (*force_end)(const struct drv_options *o, const char *instance_id);
	/* Warm pools: freezes a guest that booted (its vCPUs stop where they are, memory and
	 * devices stay) and lets it run on; the handle does not change. May block (QMP, a
	 * toolstack): on a worker. NULL: the driver cannot keep warm guests. keep (pause, may
	 * be NULL): a control connection the driver leaves open and ready for the resume, or
	 * -1; the caller holds it (a plain fd: close() drops it) and hands it to resume, which
	 * closes it in any case (-1: resume opens its own). */
	int (*pause)(const struct drv_options *o, struct drv_handle *h, int *keep, char *err, size_t errlen);
	int (*resume)(const struct drv_options *o, struct drv_handle *h, int keep, char *err, size_t errlen);
	/* A signal to an instance that is a host process (its whole process group). */
	int (*signal)(struct drv_handle *h, int signo);
	/* After h->pidfd became readable: exit_code is set when known (our own child). */
	int (*reap)(struct drv_handle *h, int *exit_code, bool *code_known);
	int (*recover)(struct drv_handle *h);
	/* For handles without a pidfd (libvirt, xen): is the domain still there? The node asks
	 * once a second while the driver's exit events (watch) are down. */
	int (*status)(const struct drv_options *o, struct drv_handle *h, bool *alive);
	/* The node died between asking for a start and recording the handle: find what was
	 * started for instance_id and fill h, or -ESRCH when nothing was. */
	int (*adopt)(const struct drv_options *o, const char *instance_id, struct drv_handle *h);
	/* The instance ended (reaped, or found ended after a node restart): release what the
	 * driver holds for it beyond its process or domain. why: the cause of the end when
	 * the driver knows one its exit code does not tell ("oom: ..."), else left "". On the
	 * node's loop: it must not block. */
	void (*release)(const struct drv_options *o, const char *instance_id, char *why, size_t whylen);

	/* Exit events for handles without a pidfd, where the toolstack has them (libvirt's
	 * lifecycle events, xenstore's @releaseDomain).
	 * watch starts following every domain of o's hypervisor, on a thread of the driver's
	 * own, and gives a descriptor for the node's loop: readable while watch_next has
	 * something, the name of a domain that ended or "" for "domains may have ended unseen
	 * (events were down): ask status() of each". watching() is true while events flow;
	 * while it is false (not connected yet, connection lost) the node polls status().
	 * unwatch stops the thread and closes the descriptor. One watch per process. */
	int (*watch)(const struct drv_options *o, int *fd, char *err, size_t errlen);
	bool (*watch_next)(char *domain, size_t len);
	bool (*watching)(void);
	void (*unwatch)(void);
};

/* Stops the instance: d->stop, else SIGTERM (SIGKILL when force) through d->signal. */
int drv_stop(const struct driver *d, const struct drv_options *o, struct drv_handle *h, bool force);
int drv_signal(const struct driver *d, struct drv_handle *h, int signo);
/* d->force_end, when d has one. */
void drv_force_end(const struct driver *d, const struct drv_options *o, const char *instance_id);
/* Can d keep warm guests (a pool): it boots images and can pause and resume them? */
bool drv_can_pool(const struct driver *d);
/* d->pause, d->resume; -ENOTSUP with words when d lacks them. */
int drv_pause(const struct driver *d, const struct drv_options *o, struct drv_handle *h, int *keep, char *err,
              size_t errlen);
int drv_resume(const struct driver *d, const struct drv_options *o, struct drv_handle *h, int keep, char *err,
               size_t errlen);
int drv_recover(const struct driver *d, struct drv_handle *h);
/* d->adopt; for a handle without a process (a domain), d->status must also find it alive. */
int drv_adopt(const struct driver *d, const struct drv_options *o, const char *instance_id, struct drv_handle *h);
/* d->release, when d has one; why is "" otherwise. */
void drv_release(const struct driver *d, const struct drv_options *o, const char *instance_id, char *why,
                 size_t whylen);
/* Does d report its domains' ends by events right now (no need to poll status())? */
bool drv_watching(const struct driver *d);
/* recover for drivers whose handle is a domain name (libvirt, xen): re-attaching needs
 * nothing more; status() says whether the domain outlived the node. */
int drv_domain_recover(struct drv_handle *h);
/* adopt for domain drivers: the domain is named "mv-" + instance id (drv_adopt then asks the
 * driver's status() whether it exists). */
int drv_domain_adopt(const struct drv_options *o, const char *instance_id, struct drv_handle *h);
/* The checks every VM driver makes of a start request: absolute kernel (and initrd) paths,
 * memory and vCPUs within the model's limits (MV_MEMORY_MB_MAX, MV_VCPUS_MAX). Gives the
 * whole vCPUs (rounded up). 0 or -EINVAL with a sentence naming the driver. */
int drv_vm_request_check(const char *driver, const struct drv_start_request *r, long *vcpus, char *err,
                         size_t errlen);
/* config_check of a VM driver whose config has only choice fields: fields[i] must be one
 * of choices[i] (NULL-terminated lists). */
int drv_config_choices(const json_t *config, const char *const *fields, const char *const *const *choices,
                       struct mv_error *err);

#endif
