/* node — the node daemon put together: identity, host resources, run dir, bridges, the
 * drivers that work here, then the parts (worker threads, image cache, report queue,
 * instances, the agent) wired to each other; and its orderly exit. */
#include "node/node.h"

#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "common/model.h"
#include "drivers/cgroup.h"
#include "drivers/confine.h"
#include "common/tls.h"
#include "drivers/drivers.h"
#include "drivers/proc.h"
#include "node/agent.h"
#include "node/bridgewatch.h"
#include "node/corelink.h"
#include "node/warmpool.h"
#include "node/imagecache.h"
#include "node/instance.h"
#include "node/logapi.h"
#include "node/logbuf.h"
#include "node/netdev.h"
#include "node/reports.h"
#include "node/worker.h"

struct node_agent {
	struct node_options opts;
	struct event_base *base;
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	struct corelink link; /* the core in use, of --core's list */
	char run_dir[PATH_MAX];
	char core_token[AGENT_TOKEN_MAX + 1];    /* the credential, or --token-file's; "" when none */
	char credential_path[PATH_MAX];          /* DATA_DIR/node.credential */
	struct tls_ctx *tls; /* an https:// core */
	int cpus;
	int64_t memory_mb;
	json_t *drivers_info;
	struct cgroup_host cgroups;
	struct confine_user exec_user;
	struct drv_options drv_opts;
	struct worker_pool *workers;
	struct imagecache *cache;
	struct report_queue *reports;
	struct instances *instances;
	struct warm_pools *pools;
	struct logapi *logapi;
	struct agent *agent;
	struct bridgewatch *bridges; /* NULL when the host's link changes cannot be followed */
};

void node_options_default(struct node_options *o)
{
	*o = (struct node_options){
		.core_url = "http://127.0.0.1:4650",
		.data_dir = "/var/lib/microvim/node",
		.stop_grace_s = 5.0,
		.sim_spawn_ms = 1,
		.sim_cpus = 64,
		.sim_memory_mb = 262144,
		.logs_listen = "127.0.0.1:0",
		.log_max_bytes = LOGBUF_MAX_DEFAULT,
		.cgroups = CGROUP_AUTO,
		.cgroup_parent = "microvim",
	};
}

/* ---- identity, host, drivers ---- */

static int load_identity(struct node_agent *n, char *err, size_t errlen)
{
	char path[PATH_MAX], *text = NULL;
	int rc;
	snprintf(path, sizeof path, "%s/node-id", n->opts.data_dir);
	rc = fs_read_file(path, 64, &text, NULL);
	if (rc == 0 && strlen(text) >= MV_ID_LEN && strspn(text, "0123456789abcdef") >= MV_ID_LEN) {
		memcpy(n->id, text, MV_ID_LEN);
		n->id[MV_ID_LEN] = '\0';
		free(text);
		return 0;
	}
	free(text);
	id_generate(n->id);
	if ((rc = fs_write_atomic(path, n->id, MV_ID_LEN, true)) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		return -1;
	}
	return 0;
}

static void read_host(struct node_agent *n)
{
	struct sysinfo si;
	char hostname[256] = "node";
	n->cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n->cpus < 1)
		n->cpus = 1;
	if (sysinfo(&si) == 0)
		n->memory_mb = (int64_t)((unsigned long long)si.totalram * si.mem_unit / (1024 * 1024));
	if (n->memory_mb < 1)
		n->memory_mb = 1;
	gethostname(hostname, sizeof hostname - 1);
	hostname[strcspn(hostname, ".")] = '\0';
	snprintf(n->name, sizeof n->name, "%.63s", n->opts.name ? n->opts.name : hostname);
	if (!name_valid(n->name))
		snprintf(n->name, sizeof n->name, "node-%.8s", n->id);
}

static void probe_drivers(struct node_agent *n)
{
	n->drivers_info = json_object();
	for (int i = 0; drivers[i]; i++) {
		json_t *info = NULL;
		char why[256] = "";
		if (drivers[i]->probe(&n->drv_opts, &info, why, sizeof why) == 0) {
			json_object_set_new(n->drivers_info, drivers[i]->name, info);
			log_info("driver %s: available", drivers[i]->name);
		} else {
			log_info("driver %s: not available: %s", drivers[i]->name, why);
		}
	}
}

static bool on_tmpfs(const char *path)
{
	struct statfs st;
	return statfs(path, &st) == 0 && st.f_type == TMPFS_MAGIC && access(path, W_OK) == 0;
}

static int choose_run_dir(struct node_agent *n, char *err, size_t errlen)
{
	const char *why;
	int rc;
	if (n->opts.run_dir) {
		snprintf(n->run_dir, sizeof n->run_dir, "%s", n->opts.run_dir);
		why = "--run-dir";
	} else if (on_tmpfs("/run")) {
		snprintf(n->run_dir, sizeof n->run_dir, "/run/microvim/%s", n->id);
		why = "/run is tmpfs";
	} else if (on_tmpfs("/dev/shm")) { /* hosts whose /run is on disk */
		snprintf(n->run_dir, sizeof n->run_dir, "/dev/shm/microvim/%s", n->id);
		why = "/run is not a writable tmpfs, /dev/shm is";
	} else {
		snprintf(n->run_dir, sizeof n->run_dir, "%.4000s/run", n->opts.data_dir);
		why = "neither /run nor /dev/shm is a writable tmpfs: under --data-dir, on disk";
	}
	if ((rc = fs_mkdir_p(n->run_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create the run dir %s: %s", n->run_dir, strerror(-rc));
		return -1;
	}
	/* Said at start (and shown by `microvim nodes`): which of the fallbacks was taken is not
	 * obvious from the options, and a node restarted with another run dir does not find,
	 * so does not re-attach, the instances it left running. */
	log_info("run dir %s (%s): instance dirs, logs, records", n->run_dir, why);
	return 0;
}

static int create_bridges(struct node_agent *n, char *err, size_t errlen)
{
	for (int i = 0; n->opts.bridges && n->opts.bridges[i]; i++) {
		int rc = netdev_bridge_create(n->opts.bridges[i]);
		if (rc < 0) {
			snprintf(err, errlen, "cannot create bridge %s: %s", n->opts.bridges[i], strerror(-rc));
			return -1;
		}
	}
	return 0;
}

static int read_token(const char *path, const char *what, char out[AGENT_TOKEN_MAX + 1], char *err, size_t errlen)
{
	char *token = NULL;
	int rc = fs_read_token(path, &token);
	if (rc == 0 && strlen(token) > AGENT_TOKEN_MAX)
		rc = -EMSGSIZE;
	if (rc < 0) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(-rc));
		free(token);
		return -1;
	}
	snprintf(out, AGENT_TOKEN_MAX + 1, "%s", token);
	memset(token, 0, strlen(token));
	free(token);
	return 0;
}

/* Who the node is to the core: the credential a join gave it (DATA_DIR/node.credential),
 * once it has one; until then the --token-file's token (a join token, or the cluster's). */
static int load_credential(struct node_agent *n, char *err, size_t errlen)
{
	if (snprintf(n->credential_path, sizeof n->credential_path, "%s/%s", n->opts.data_dir, AGENT_CREDENTIAL_FILE) >=
	    (int)sizeof n->credential_path) {
		snprintf(err, errlen, "--data-dir path too long");
		return -1;
	}
	if (access(n->credential_path, F_OK) == 0) {
		if (read_token(n->credential_path, "the node's credential", n->core_token, err, errlen) < 0)
			return -1;
		log_info("registering with this node's credential (%s)%s", n->credential_path,
		         n->opts.token_file ? "; --token-file is not needed any more" : "");
		return 0;
	}
	return n->opts.token_file ? read_token(n->opts.token_file, "--token-file", n->core_token, err, errlen) : 0;
}

/* Resource limits for exec instances: the cgroups the host offers (said in the log and,
 * through the exec driver's description, in `microvim nodes`), and the user they run as. */
static int setup_limits(struct node_agent *n, char *err, size_t errlen)
{
	struct cgroup_host *c = &n->cgroups;
	if (n->opts.exec_user) {
		if (confine_user_lookup(n->opts.exec_user, &n->exec_user, err, errlen) < 0)
			return -1;
		n->drv_opts.exec_user = &n->exec_user;
		log_info("exec instances run as user %s (uid %d, gid %d)", n->exec_user.name, (int)n->exec_user.uid,
		         (int)n->exec_user.gid);
	}
	if (cgroup_host_init(c, n->opts.cgroups, n->opts.cgroup_parent, n->id, NULL, err, errlen) < 0)
		return -1;
	n->drv_opts.cgroups = c;
	if (c->mode == CGROUP_OFF) {
		log_info("cgroups: none: exec instances run without cpu and memory limits (%s)", c->why);
		return 0;
	}
	log_info("cgroups: %s: exec instances are limited to their vCPUs and memory in %s%s%s", cgroup_mode_name(c->mode),
	         c->dirs[0], c->dirs[1][0] ? " and " : "", c->dirs[1]);
	return 0;
}

/* After the recovery: the groups of instances that ended while the node was down (the
 * recovery read their oom counts) and of those a kill left busy. */
static void sweep_cgroups(struct node_agent *n)
{
	int removed;
	if (n->cgroups.mode != CGROUP_OFF && (removed = cgroup_sweep(&n->cgroups)) > 0)
		log_info("cgroups: removed %d empty group dirs left by instances that are gone", removed);
}

/* An https:// core gets a TLS client (checked now, so that a bad file stops the start);
 * TLS files for a plain http:// core are a mistake worth saying. */
static int make_tls(struct node_agent *n, char *err, size_t errlen)
{
	const struct node_options *o = &n->opts;
	bool mixed, tls = corelink_tls(&n->link, &mixed);
	if (mixed) {
		snprintf(err, errlen, "--core %s mixes http:// and https:// cores; one control plane speaks one", o->core_url);
		return -1;
	}
	if (!tls) {
		if (o->tls_ca || o->tls_cert || o->tls_key) {
			snprintf(err, errlen, "--tls-ca, --tls-cert and --tls-key are for an https:// core; --core %s is plain HTTP",
			         o->core_url);
			return -1;
		}
		return 0;
	}
	n->tls = tls_client_new(&(struct tls_files){.ca = o->tls_ca, .cert = o->tls_cert, .key = o->tls_key}, err,
	                        errlen);
	return n->tls ? 0 : -1;
}

/* ---- the parts ---- */

/* The report queue's callback: the agent sends (it exists once the node is put together;
 * reports of a recovery before that wait in the queue). */
static void on_report_pushed(void *arg)
{
	struct node_agent *n = arg;
	if (n->agent)
		agent_reports_pushed(n->agent);
}

static void on_pools_changed(void *arg)
{
	struct node_agent *n = arg;
	if (n->agent)
		agent_pools_changed(n->agent);
}

static void on_bridges_changed(void *arg)
{
	struct node_agent *n = arg;
	agent_bridges_changed(n->agent);
}

/* A bridge made after the node started must reach the core without a restart of the node. */
static void watch_bridges(struct node_agent *n)
{
	int rc;
	if (!(n->bridges = bridgewatch_new(n->base, on_bridges_changed, n, &rc)))
		log_warnx("cannot follow bridge changes (%s): bridges made or deleted from now on reach the core only "
		          "when the node registers again", strerror(-rc));
}

/* The instances' hook: their logs grew, or one ended or went. */
static void on_log_written(void *arg, const char *id)
{
	struct node_agent *n = arg;
	logapi_written(n->logapi, id);
}

/* The log route accepts the core's token of the moment. */
static const char *node_token(void *arg)
{
	struct node_agent *n = arg;
	return n->agent ? agent_node_token(n->agent) : NULL;
}

static int make_parts(struct node_agent *n, char *err, size_t errlen)
{
	struct imagecache_options io = {.base = n->base, .data_dir = n->opts.data_dir, .off = n->opts.image_cache_off,
	                                .link = &n->link, .tls = n->tls,
	                                .token = n->core_token};
	struct instances_env env;
	struct warm_env we;
	struct logapi_options lo;
	struct agent_options ao;

	if (!(n->workers = worker_pool_new(n->base, 0))) {
		snprintf(err, errlen, "cannot start worker threads: %s", strerror(errno));
		return -1;
	}
	io.workers = n->workers;
	if (!(n->cache = imagecache_new(&io, err, errlen)))
		return -1;
	n->reports = reports_new(on_report_pushed, n);
	we = (struct warm_env){.base = n->base, .workers = n->workers, .drv_opts = &n->drv_opts,
	                       .drivers_info = n->drivers_info, .run_dir = n->run_dir, .cache = n->cache,
	                       .stock_changed = on_pools_changed, .arg = n};
	if (!(n->pools = warm_pools_new(&we, err, errlen)))
		return -1;
	env = (struct instances_env){.pools = n->pools, .base = n->base, .workers = n->workers, .drv_opts = &n->drv_opts,
	                             .drivers_info = n->drivers_info, .run_dir = n->run_dir,
	                             .stop_grace_s = n->opts.stop_grace_s, .cache = n->cache, .reports = n->reports,
	                             .log_max_bytes = (uint64_t)n->opts.log_max_bytes, .log_written = on_log_written,
	                             .log_arg = n};
	if (!(n->instances = instances_new(&env, err, errlen)))
		return -1;
	lo = (struct logapi_options){.base = n->base, .listen = n->opts.logs_listen, .instances = n->instances,
	                             .max_bytes = (uint64_t)n->opts.log_max_bytes, .token = node_token,
	                             .token_arg = n};
	if (!(n->logapi = logapi_new(&lo, err, errlen)))
		return -1;
	log_info("logs served to the core at %s", logapi_address(n->logapi));
	ao = (struct agent_options){.base = n->base, .link = &n->link, .address = logapi_address(n->logapi),
	                            .tls = n->tls, .core_token = n->core_token,
	                            .credential_path = n->credential_path, .id = n->id,
	                            .name = n->name, .cpus = n->cpus, .memory_mb = n->memory_mb,
	                            .drivers_info = n->drivers_info, .labels = n->opts.labels, .run_dir = n->run_dir,
	                            .notify_batch_ms = n->opts.notify_batch_ms,
	                            .stop_instances_on_exit = n->opts.stop_instances_on_exit,
	                            .stop_grace_s = n->opts.stop_grace_s, .instances = n->instances,
	                            .reports = n->reports, .pools = n->pools};
	n->agent = agent_new(&ao);
	return 0;
}

struct node_agent *node_create(struct event_base *base, const struct node_options *o, char *err, size_t errlen)
{
	struct node_agent *n = calloc(1, sizeof *n);
	int rc;
	if (!n)
		fatal("calloc");
	n->opts = *o;
	n->base = base;
	n->drv_opts = (struct drv_options){.exec_allow = o->exec_allow, .qemu_binary = o->qemu_binary,
	                                   .libvirt_uri = o->libvirt_uri, .xl_binary = o->xl_binary,
	                                   .xenstore_binary = o->xenstore_binary,
	                                   .xen_console_dir = o->xen_console_dir};
	if (corelink_init(&n->link, o->core_url, err, errlen) < 0)
		goto fail;
	if (make_tls(n, err, errlen) < 0)
		goto fail;
	if ((rc = fs_mkdir_p(o->data_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create --data-dir %s: %s", o->data_dir, strerror(-rc));
		goto fail;
	}
	if (load_identity(n, err, errlen) < 0 || load_credential(n, err, errlen) < 0 || choose_run_dir(n, err, errlen) < 0 || create_bridges(n, err, errlen) < 0)
		goto fail;
	read_host(n);
	/* now, while the process holds few descriptors: each spawner thread copies the table
	 * once (a failure is not fatal: proc_spawn then spawns from the workers, and says so) */
	proc_spawner_start();
	if (setup_limits(n, err, errlen) < 0)
		goto fail;
	probe_drivers(n);
	if (make_parts(n, err, errlen) < 0)
		goto fail;
	instances_recover(n->instances);
	warm_pools_recover(n->pools);
	watch_bridges(n);
	sweep_cgroups(n);
	agent_start(n->agent);
	return n;
fail:
	node_destroy(n);
	return NULL;
}

#define LEFT_IDS_LOGGED 20

/* Without --stop-instances-on-exit the instances outlive the node: say which, and how
 * they come back. */
static void log_left_running(struct node_agent *n)
{
	char (*ids)[MV_ID_LEN + 1] = NULL;
	char list[LEFT_IDS_LOGGED * (MV_ID_LEN + 1) + 8] = "";
	size_t count, used = 0;
	instances_alive_ids(n->instances, &ids, &count);
	for (size_t i = 0; i < count && i < LEFT_IDS_LOGGED; i++) {
		int w = snprintf(list + used, sizeof list - used, "%s%s", i ? " " : "", ids[i]);
		if (w > 0 && (size_t)w < sizeof list - used)
			used += (size_t)w;
	}
	if (count > LEFT_IDS_LOGGED && used + 5 <= sizeof list)
		memcpy(list + used, " ...", 5);
	if (count)
		log_info("leaving %zu instance%s running: %s; a node started again with the same --data-dir and run dir "
		         "(%s) re-attaches them (--stop-instances-on-exit stops them instead)",
		         count, count == 1 ? "" : "s", list, n->run_dir);
	else
		log_info("no instance left running");
	free(ids);
}

void node_shutdown(struct node_agent *n, void (*done)(void *arg), void *arg)
{
	if (!n->opts.stop_instances_on_exit)
		log_left_running(n);
	agent_shutdown(n->agent, done, arg);
}

void node_destroy(struct node_agent *n)
{
	if (!n)
		return;
	bridgewatch_free(n->bridges);
	agent_free(n->agent); /* no new work, no more callbacks from the core */
	n->agent = NULL;
	worker_pool_free(n->workers);
	proc_spawner_stop(); /* no spawn can be in flight: the workers are gone */
	logapi_free(n->logapi); /* its waiting readers are answered */
	n->logapi = NULL;
	instances_free(n->instances, n->opts.stop_instances_on_exit);
	warm_pools_free(n->pools, n->opts.stop_instances_on_exit);
	cgroup_host_close(&n->cgroups);
	imagecache_free(n->cache);
	reports_free(n->reports);
	json_decref(n->drivers_info);
	if (n->opts.remove_run_dir && n->run_dir[0] && fs_remove_tree(n->run_dir) < 0)
		log_warnx("could not remove %s", n->run_dir);
	memset(n->core_token, 0, sizeof n->core_token);
	tls_ctx_free(n->tls); /* after the connections that used it */
	free(n);
}
