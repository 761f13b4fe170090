/* node — the VIM local agent, one per compute host: registers with the core, keeps a
 * long-poll waiting there for assignments, runs them through the drivers, and reports
 * every state change at once. One event loop; blocking driver calls go to workers. */
#ifndef MICROVIM_NODE_H
#define MICROVIM_NODE_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>

#include "common/model.h"
#include "drivers/cgroup.h"

struct node_options {
	const char *core_url;   /* "http://127.0.0.1:4650", or a list of the cores of one control plane
	                         * (node/corelink.h) */
	const char *data_dir;   /* node id and image cache: kept across reboots */
	const char *run_dir;    /* instance dirs, logs and records: NULL = /run/microvim/NODE-ID
	                         * when /run is writable, else DATA/run. Instances do not outlive
	                         * a reboot, so their records need not either; tmpfs keeps the
	                         * instantiation path off the disk. */
	bool remove_run_dir;    /* remove it at exit (dev mode's throw-away state) */
	const char *name;       /* default: the host name */
	const char *token_file; /* a join token, or the cluster token; not needed once DATA_DIR/node.credential exists */
	const char *tls_ca;     /* an https:// core: CAs that sign its certificate (NULL: system store) */
	const char *tls_cert, *tls_key; /* the client certificate shown to the core (--tls-client-ca) */
	json_t *labels;         /* {"k": "v"}; borrowed */
	const struct exec_allow *exec_allow; /* executables instances may run; NULL or empty: none */
	double stop_grace_s;    /* SIGTERM, then SIGKILL after this long */
	bool stop_instances_on_exit;
	const char *const *bridges; /* bridges to create at start (--bridge); NULL-terminated */
	bool image_cache_off;   /* fetch the image for every instance (the paper's stock drivers) */
	int notify_batch_ms;    /* 0: report at once; N: send reports on a free-running N ms tick (stock Nomad) */
	const char *qemu_binary, *libvirt_uri, *xl_binary; /* driver settings; NULL = default */
	const char *xenstore_binary, *xen_console_dir;    /* xen: the xenstore client, xenconsoled's log dir */
	/* --simulate N: N simulated nodes (node/simulate.h) instead of this host */
	int simulate;
	double sim_spawn_ms, sim_fail_rate;
	int sim_cpus;
	int64_t sim_memory_mb;
	const char *logs_listen; /* where the core reads instance logs (node/logapi.h): "HOST:PORT" */
	int64_t log_max_bytes;   /* kept per log stream of an instance, the oldest dropped */
	enum cgroup_mode cgroups;  /* exec instances' limits: auto (default), v1, v2, off */
	const char *cgroup_parent; /* their groups go under PARENT/NODE-ID; default "microvim" */
	const char *exec_user;     /* exec instances run as this user; NULL: as the node */
};

void node_options_default(struct node_options *o);

struct node_agent;

struct node_agent *node_create(struct event_base *base, const struct node_options *o, char *err,
                               size_t errlen);
/* Begins an orderly exit: stops taking work; with stop_instances_on_exit, stops every
 * instance (grace, then kill). Calls done(arg) on the loop when finished. */
void node_shutdown(struct node_agent *n, void (*done)(void *arg), void *arg);
void node_destroy(struct node_agent *n);

#endif
