/* driver — the table every hypervisor or process driver fills in (Nomad's driver
 * lifecycle as a C table): probe (fingerprint the host), start (may block: the node calls
 * it on a worker thread), signal (stop gently or by force), reap (collect the exit),
 * recover (re-attach to a handle persisted before a node restart). An operation a driver
 * lacks is NULL; drv_* wrappers turn that into -ENOTSUP in one place.
 *
 * Drivers know nothing of HTTP or the store. All functions return 0 or -errno and put a
 * sentence in err where the caller needs words. */
#ifndef MICROVIM_DRIVER_H
#define MICROVIM_DRIVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Host-level settings a node passes to its drivers. */
struct drv_options {
	const char *const *exec_allow; /* absolute paths exec may run; NULL-terminated; NULL = exec off */
	const char *qemu_binary;       /* default "qemu-system-x86_64" (looked up in PATH) */
	const char *libvirt_uri;       /* default "qemu:///system"; "xen:///system" on a Xen host */
	const char *xl_binary;         /* default "xl"; tests point it at the stand-in toolstack */
	const char *xenstore_binary;   /* default "xenstore" (xenstore-utils: `xenstore write|watch|...`) */
	const char *xen_console_dir;   /* default "/var/log/xen/console": xenconsoled's --log-dir */
};

/* What the node hands a driver to start one instance. */
struct drv_start_request {
	const char *instance_id;
	const char *name;
	const json_t *spec;    /* the instance spec as accepted by the core */
	const char *dir;       /* the instance's own directory */
	int stdout_fd, stderr_fd; /* log files opened by the node */

	/* VM drivers: the image, already in the node's cache (prepare phase). */
	const char *kernel;    /* absolute path */
	const char *initrd;    /* absolute path or NULL */
	const char *cmdline;   /* kernel command line or NULL */
	const char *serial_log; /* the guest's first serial port (xen: its console) goes to this
	                          * file (the node watches it for the "ready" pattern: the boot phase) */
	double vcpus;          /* as requested (fractional); VM drivers round up to whole vCPUs */
	long long memory_mb;

	/* Network phase, done by the node before the driver is called. */
	const char *tap;       /* qemu/exec: a tap (or veth end) already on the bridge, or NULL */
	const char *bridge;    /* libvirt/xen: the bridge to attach the guest's interface to, or NULL */
	const char *netns;     /* exec: the network namespace to run in (path under /run/netns), or NULL */
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
	/* Does this driver work on this host? info: {"version": ..., ...} advertised to the core. */
	int (*probe)(const struct drv_options *o, json_t **info, char *err, size_t errlen);
	int (*start)(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h,
	             char *err, size_t errlen);
	int (*signal)(struct drv_handle *h, bool force);
	/* After h->pidfd became readable: exit_code is set when known (our own child). */
	int (*reap)(struct drv_handle *h, int *exit_code, bool *code_known);
	int (*recover)(struct drv_handle *h);
	/* For handles without a pidfd (libvirt, xen): is the domain still there? The node asks
	 * once a second while the driver's exit events (watch) are down. */
	int (*status)(const struct drv_options *o, struct drv_handle *h, bool *alive);
	/* Stop for handles without a process of ours (libvirt, xen): shutdown or destroy. */
	int (*stop)(const struct drv_options *o, struct drv_handle *h, bool force);
	/* The node died between asking for a start and recording the handle: find what was
	 * started for instance_id and fill h, or -ESRCH when nothing was. */
	int (*adopt)(const struct drv_options *o, const char *instance_id, struct drv_handle *h);

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

/* Every driver microvim has, in one list; NULL-terminated. */
extern const struct driver *const drivers[];
const struct driver *driver_find(const char *name);

int drv_signal(const struct driver *d, struct drv_handle *h, bool force);
int drv_recover(const struct driver *d, struct drv_handle *h);
/* Does d report its domains' ends by events right now (no need to poll status())? */
bool drv_watching(const struct driver *d);
/* recover for drivers whose handle is a domain name (libvirt, xen): re-attaching needs
 * nothing more; status() says whether the domain outlived the node. */
int drv_domain_recover(struct drv_handle *h);
/* adopt for domain drivers: the domain is named "mv-" + instance id. */
int drv_domain_adopt(const struct drv_options *o, const char *instance_id, struct drv_handle *h);
/* The checks every VM driver makes of a start request: absolute kernel (and initrd) paths,
 * memory 1 MiB to 16 TiB, 0 < vcpus <= 512. Gives the whole vCPUs (rounded up). 0 or -EINVAL
 * with a sentence naming the driver. */
int drv_vm_request_check(const char *driver, const struct drv_start_request *r, long *vcpus, char *err,
                         size_t errlen);

#endif
