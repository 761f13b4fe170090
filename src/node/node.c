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
#include "drivers/drivers.h"
#include "drivers/proc.h"
#include "node/agent.h"
#include "node/imagecache.h"
#include "node/instance.h"
#include "node/netdev.h"
#include "node/reports.h"
#include "node/worker.h"

struct node_agent {
	struct node_options opts;
	struct event_base *base;
	char id[MV_ID_LEN + 1];
	char name[MV_NAME_MAX + 1];
	char host[256];
	int port;
	char run_dir[PATH_MAX];
	char *cluster_token;
	int cpus;
	int64_t memory_mb;
	json_t *drivers_info;
	struct drv_options drv_opts;
	struct worker_pool *workers;
	struct imagecache *cache;
	struct report_queue *reports;
	struct instances *instances;
	struct agent *agent;
};

void node_options_default(struct node_options *o)
{
	*o = (struct node_options){
		.core_url = "http://127.0.0.1:4650",
		.data_dir = "/var/lib/microvim/node",
		.stop_grace_s = 5.0,
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
	int rc;
	if (n->opts.run_dir)
		snprintf(n->run_dir, sizeof n->run_dir, "%s", n->opts.run_dir);
	else if (on_tmpfs("/run"))
		snprintf(n->run_dir, sizeof n->run_dir, "/run/microvim/%s", n->id);
	else if (on_tmpfs("/dev/shm")) /* hosts whose /run is on disk */
		snprintf(n->run_dir, sizeof n->run_dir, "/dev/shm/microvim/%s", n->id);
	else
		snprintf(n->run_dir, sizeof n->run_dir, "%.4000s/run", n->opts.data_dir);
	if ((rc = fs_mkdir_p(n->run_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create the run dir %s: %s", n->run_dir, strerror(-rc));
		return -1;
	}
	/* Said at start: which of the fallbacks was taken is not obvious from the options. */
	log_info("run dir %s (instance dirs, logs, records)", n->run_dir);
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

static int read_token_file(struct node_agent *n, char *err, size_t errlen)
{
	int rc = fs_read_token(n->opts.token_file, &n->cluster_token);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read --token-file %s: %s", n->opts.token_file, strerror(-rc));
		return -1;
	}
	return 0;
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

static int make_parts(struct node_agent *n, char *err, size_t errlen)
{
	struct imagecache_options io = {.base = n->base, .data_dir = n->opts.data_dir, .off = n->opts.image_cache_off,
	                                .core_host = n->host, .core_port = n->port, .token = n->cluster_token};
	struct instances_env env;
	struct agent_options ao;

	if (!(n->workers = worker_pool_new(n->base, 0))) {
		snprintf(err, errlen, "cannot start worker threads: %s", strerror(errno));
		return -1;
	}
	io.workers = n->workers;
	if (!(n->cache = imagecache_new(&io, err, errlen)))
		return -1;
	n->reports = reports_new(on_report_pushed, n);
	env = (struct instances_env){.base = n->base, .workers = n->workers, .drv_opts = &n->drv_opts,
	                             .drivers_info = n->drivers_info, .run_dir = n->run_dir,
	                             .stop_grace_s = n->opts.stop_grace_s, .cache = n->cache, .reports = n->reports};
	if (!(n->instances = instances_new(&env, err, errlen)))
		return -1;
	ao = (struct agent_options){.base = n->base, .core_url = n->opts.core_url, .core_host = n->host,
	                            .core_port = n->port, .cluster_token = n->cluster_token, .id = n->id,
	                            .name = n->name, .cpus = n->cpus, .memory_mb = n->memory_mb,
	                            .drivers_info = n->drivers_info, .labels = n->opts.labels,
	                            .notify_batch_ms = n->opts.notify_batch_ms,
	                            .stop_instances_on_exit = n->opts.stop_instances_on_exit,
	                            .stop_grace_s = n->opts.stop_grace_s, .instances = n->instances,
	                            .reports = n->reports};
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
	if (http_parse_url(o->core_url, n->host, sizeof n->host, &n->port) < 0) {
		snprintf(err, errlen, "--core %s is not a URL like http://HOST:PORT", o->core_url);
		goto fail;
	}
	if (o->token_file && read_token_file(n, err, errlen) < 0)
		goto fail;
	if ((rc = fs_mkdir_p(o->data_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create --data-dir %s: %s", o->data_dir, strerror(-rc));
		goto fail;
	}
	if (load_identity(n, err, errlen) < 0 || choose_run_dir(n, err, errlen) < 0 || create_bridges(n, err, errlen) < 0)
		goto fail;
	read_host(n);
	/* now, while the process holds few descriptors: each spawner thread copies the table
	 * once (a failure is not fatal: proc_spawn then spawns from the workers, and says so) */
	proc_spawner_start();
	probe_drivers(n);
	if (make_parts(n, err, errlen) < 0)
		goto fail;
	instances_recover(n->instances);
	agent_start(n->agent);
	return n;
fail:
	node_destroy(n);
	return NULL;
}

void node_shutdown(struct node_agent *n, void (*done)(void *arg), void *arg)
{
	agent_shutdown(n->agent, done, arg);
}

void node_destroy(struct node_agent *n)
{
	if (!n)
		return;
	agent_free(n->agent); /* no new work, no more callbacks from the core */
	n->agent = NULL;
	worker_pool_free(n->workers);
	proc_spawner_stop(); /* no spawn can be in flight: the workers are gone */
	instances_free(n->instances, n->opts.stop_instances_on_exit);
	imagecache_free(n->cache);
	reports_free(n->reports);
	json_decref(n->drivers_info);
	if (n->opts.remove_run_dir && n->run_dir[0] && fs_remove_tree(n->run_dir) < 0)
		log_warnx("could not remove %s", n->run_dir);
	free(n->cluster_token);
	free(n);
}
