/* instance — see instance.h. Every event of an instance goes through ni_event(), which
 * looks it up in node/lifecycle.h's table and carries out the actions in one order. The
 * sections below are the event sources (blobs, the start job, exits, domain status and
 * events, the serial log, stops) and the actions. */
#include "node/instance.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/trace.h"
#include "common/wire.h"
#include "drivers/drivers.h"
#include "node/instrec.h"
#include "node/lifecycle.h"
#include "node/logbuf.h"
#include "node/netdev.h"

#define STATUS_INTERVAL_S 1.0
#define WATCH_MAX 8 /* entries of drivers[] whose exit events the node can follow */
#define SPAWN_HOLD_WAIT_MS 10000 /* bounds the wait for a child of a killed node to reach its exec */

struct instances {
	struct instances_env env;
	struct hmap map; /* id -> struct ninst */
	struct hmap by_watch; /* inotify watch descriptor (decimal) -> struct ninst */
	int inotify_fd;
	struct event *inotify_ev;
	struct event *status_timer;       /* handles without a pidfd (libvirt, xen) */
	struct event *watch_evs[WATCH_MAX]; /* by index in drivers[]: exit events (libvirt) */
	/* Record writes, from the loop and from workers, one at a time; with each instance's
	 * record_gen, a write made later is never overwritten by an older one (record_later_running). */
	pthread_mutex_t records_lock;
};

/* One instance on this node. */
struct ninst {
	struct instances *set;
	char id[MV_ID_LEN + 1];
	struct inst_spec spec;
	const struct driver *drv;
	enum ni_state state;
	uint32_t run;                /* the run it is in (common/wire.h) */
	uint32_t next_run;           /* a newer run asked: it begins at this one's end (0: none) */
	int64_t next_received_us;    /* when that start arrived (its trace's prepare includes the stop) */
	bool stop_requested;         /* a stop was asked: the end is "stopped" */
	bool ready;                  /* the guest printed its ready marker */
	enum inst_state final_state; /* once ended */
	int jobs;                    /* worker jobs and fetches in flight that point at it */
	unsigned record_gen;         /* record writes begun (under set->records_lock) */
	struct drv_handle h;
	struct event *exit_ev, *kill_timer;
	int stdout_fd, stderr_fd;
	char dir[PATH_MAX];
	char kernel[PATH_MAX], initrd[PATH_MAX], serial_log[PATH_MAX];
	int pending_fetches;         /* image blobs still on their way (+1 while they are asked for) */

	/* network phase: what was made, so that it is unmade */
	char tap[NETDEV_NAME_MAX + 1];
	char netns[NETDEV_NAME_MAX + 1];

	/* its dir watched (inotify) while it runs: the logs grow (bounded, node/logbuf.h; readers
	 * woken), and in the boot phase the serial log is scanned for the ready marker */
	int watch;
	char watch_key[16];
	int log_fds[LOG_STREAM_COUNT]; /* each log, open for writing: holes are punched through it */
	int serial_fd;
	char carry[MV_READY_PATTERN_MAX];
	size_t carry_len;

	bool warm;                   /* taken from a warm pool: started by resuming it */
	struct warm_taken taken;     /* ... the guest as the pool handed it over */

	int64_t received_us, spawned_us;
	int64_t stop_asked_us;  /* when the core's stop arrived (0: none) */
	bool has_stop_timing;   /* that stop, measured once the instance ended */
	struct stop_timing stop_timing;
	int64_t blobs_done_us;  /* the image blobs were all in the cache (the artifact step) */
	struct node_timing timing;
	int start_rc;                /* the start job's result, and its words */
	char start_err[256];
	bool has_exit_code;
	int exit_code;
	char error[256];
};

/* What an event carries. */
struct ni_args {
	int rc;          /* NE_STOP_DONE: the call's result */
	const char *why; /* the error (NE_*_FAILED), or why there is no exit code (NE_GONE, NE_ENDED_AWAY) */
};

static void ni_event(struct ninst *ni, enum ni_event ev, const struct ni_args *x);

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The states in which the instance has a process or domain to follow. */
static bool has_handle(enum ni_state s)
{
	return s == NI_RUNNING || s == NI_STOPPING || s == NI_STOPPING_FORCE || s == NI_STOPPING_EXITED ||
	       s == NI_STOP_SENT;
}

/* ---- creation and freeing ---- */

static struct ninst *ninst_new(struct instances *set, const char *id, enum ni_state state)
{
	struct ninst *ni = calloc(1, sizeof *ni);
	if (!ni)
		fatal("calloc");
	ni->set = set;
	ni->state = state;
	ni->stdout_fd = ni->stderr_fd = ni->serial_fd = ni->watch = -1;
	for (int s = 0; s < LOG_STREAM_COUNT; s++)
		ni->log_fds[s] = -1;
	ni->h.pidfd = ni->taken.h.pidfd = ni->taken.control_fd = -1;
	snprintf(ni->id, sizeof ni->id, "%s", id);
	if (snprintf(ni->dir, sizeof ni->dir, "%.4000s/instances/%s", set->env.run_dir, id) >= (int)sizeof ni->dir)
		fatalx("instance dir path too long");
	hmap_put(&set->map, ni->id, ni);
	return ni;
}

static void boot_scan_stop(struct ninst *ni);
static void dir_watch_stop(struct ninst *ni);

static void ninst_free(struct ninst *ni)
{
	boot_scan_stop(ni);
	dir_watch_stop(ni);
	if (ni->exit_ev)
		event_free(ni->exit_ev);
	if (ni->kill_timer)
		event_free(ni->kill_timer);
	close_fd(&ni->stdout_fd);
	close_fd(&ni->stderr_fd);
	close_fd(&ni->h.pidfd);
	close_fd(&ni->taken.h.pidfd);
	close_fd(&ni->taken.control_fd);
	spec_free(&ni->spec);
	free(ni);
}

/* Every worker job and fetch that points at an instance holds it, so that it outlives
 * them even when it is purged meanwhile. */
static void ninst_hold(struct ninst *ni) { ni->jobs++; }

/* Called first by each job's completion. True when the instance is gone (then the caller
 * must not touch it). */
static bool ninst_release(struct ninst *ni)
{
	if (--ni->jobs > 0 || ni->state != NI_PURGED)
		return ni->state == NI_PURGED;
	ninst_free(ni);
	return true;
}

static void ninst_submit(struct ninst *ni, worker_fn *work, worker_fn *done, void *arg)
{
	ninst_hold(ni);
	worker_submit(ni->set->env.workers, work, done, arg);
}

/* ---- records and reports ---- */

static void record_of(const struct ninst *ni, enum instrec_state state, struct instrec *r)
{
	*r = (struct instrec){.spec = ni->spec, .run = ni->run, .state = state, .ended_as = ni->final_state, .h = ni->h,
	                      .ready = ni->ready, .has_exit_code = ni->has_exit_code, .exit_code = ni->exit_code};
	memcpy(r->id, ni->id, sizeof r->id);
	memcpy(r->tap, ni->tap, sizeof r->tap);
	memcpy(r->netns, ni->netns, sizeof r->netns);
	snprintf(r->error, sizeof r->error, "%s", ni->error);
}

static void record_put(const struct ninst *ni, const struct instrec *r)
{
	int rc;
	if ((rc = instrec_write(ni->dir, r)) < 0)
		log_warnx("instance %s: cannot write its record in %s: %s", ni->id, ni->dir, strerror(-rc));
}

/* On the loop, or on the worker that owns the start. */
static void record_write(struct ninst *ni, enum instrec_state state)
{
	struct instrec r;
	record_of(ni, state, &r);
	pthread_mutex_lock(&ni->set->records_lock);
	ni->record_gen++;
	record_put(ni, &r);
	pthread_mutex_unlock(&ni->set->records_lock);
}

/* The record of a start that succeeded, written on a worker after the "running" report
 * has gone: it held that report up by ~75 µs (a JSON text and four system calls, on
 * tmpfs; BENCHMARKS.md, "The running record after the report"). A node killed before it
 * is written finds the start's "spawning" record, and adopts what it started, as after a
 * kill during the start. Any record written meanwhile (the guest's ready, its end) is
 * newer: then this one is not written. */
struct record_job {
	struct ninst *ni;
	unsigned gen; /* record_gen when the job was made */
	struct instrec r;
};

static void record_later_work(void *arg)
{
	struct record_job *j = arg;
	struct ninst *ni = j->ni;
	pthread_mutex_lock(&ni->set->records_lock);
	if (ni->record_gen == j->gen) {
		ni->record_gen++;
		record_put(ni, &j->r);
	}
	pthread_mutex_unlock(&ni->set->records_lock);
}

static void record_later_done(void *arg)
{
	struct record_job *j = arg;
	ninst_release(j->ni);
	free(j);
}

static void record_later_running(struct ninst *ni)
{
	struct record_job *j = malloc(sizeof *j);
	if (!j)
		fatal("malloc");
	j->ni = ni;
	record_of(ni, INSTREC_RUNNING, &j->r);
	pthread_mutex_lock(&ni->set->records_lock);
	j->gen = ni->record_gen;
	pthread_mutex_unlock(&ni->set->records_lock);
	ninst_submit(ni, record_later_work, record_later_done, j);
}

/* Where it stands: running (with its timing, when this node started it) or its end. */
static void report(struct ninst *ni)
{
	bool ended = ni->state == NI_ENDED || ni->state == NI_PURGED;
	struct wire_report r = {.state = ended ? ni->final_state : INST_RUNNING, .has_exit_code = ni->has_exit_code,
	                        .exit_code = ni->exit_code, .run = ni->run};
	memcpy(r.id, ni->id, sizeof r.id);
	r.ready = !ended && ni->ready;
	snprintf(r.error, sizeof r.error, "%s", ni->error);
	if (!ended && ni->received_us) { /* none for an instance re-attached after a restart */
		r.has_timing = true;
		r.timing = ni->timing;
	}
	r.has_stop_timing = ended && ni->has_stop_timing;
	r.stop_timing = ni->stop_timing;
	reports_push(ni->set->env.reports, &r, ni->received_us);
}

/* A report for an id this node has no instance of. */
static void report_unknown_stopped(struct instances *set, const char *id)
{
	struct wire_report r = {.state = INST_STOPPED};
	snprintf(r.id, sizeof r.id, "%s", id);
	reports_push(set->env.reports, &r, 0);
}

/* ---- network ---- */

/* Removes what the network phase made. */
static void network_teardown(struct ninst *ni)
{
	int rc;
	if (ni->tap[0] && (rc = netdev_delete(ni->tap)) < 0)
		log_warnx("instance %s: cannot delete %s: %s", ni->id, ni->tap, strerror(-rc));
	if (ni->netns[0] && (rc = netdev_netns_delete(ni->netns)) < 0)
		log_warnx("instance %s: cannot delete netns %s: %s", ni->id, ni->netns, strerror(-rc));
	ni->tap[0] = ni->netns[0] = '\0';
}

/* What the driver's network slot asks for, on the spec's bridge (on a worker). */
static int network_setup(struct ninst *ni, struct drv_start_request *r, char *nspath, size_t nslen)
{
	const char *bridge = ni->spec.bridge[0] ? ni->spec.bridge : NULL;
	int rc = 0;
	if (!bridge)
		return 0;
	switch (ni->drv->network) {
	case DRV_NET_TAP:
		snprintf(ni->tap, sizeof ni->tap, "mv%.12s", ni->id);
		rc = netdev_tap_create(ni->tap, bridge);
		r->tap = ni->tap;
		break;
	case DRV_NET_NETNS:
		snprintf(ni->netns, sizeof ni->netns, "mv-%.12s", ni->id);
		snprintf(ni->tap, sizeof ni->tap, "mv%.12s", ni->id);
		if ((rc = netdev_netns_create(ni->netns)) == 0)
			rc = netdev_veth_create(ni->tap, bridge, ni->netns, "eth0");
		netdev_netns_path(ni->netns, nspath, (int)nslen);
		r->netns = nspath;
		break;
	case DRV_NET_BRIDGE:
		r->bridge = bridge; /* the toolstack attaches the guest itself */
		break;
	}
	if (rc < 0)
		snprintf(ni->start_err, sizeof ni->start_err, "network: cannot attach to bridge %s: %s", bridge,
		         strerror(-rc));
	return rc;
}

/* ---- the start job: prepare, network, spawn (on a worker) ---- */

static int open_log(const char *dir, const char *name, int flags)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return open(path, flags | O_CLOEXEC, 0640);
}

/* Instance dir, stdout/stderr logs, and for VMs the serial log (created here so that the
 * boot watch can follow it from its first byte). */
static int prepare_dir(struct ninst *ni)
{
	int rc;
	if ((rc = fs_mkdir_p(ni->dir, 0750)) < 0) {
		snprintf(ni->start_err, sizeof ni->start_err, "cannot create the instance dir: %s", strerror(-rc));
		return rc;
	}
	ni->stdout_fd = open_log(ni->dir, "stdout.log", O_WRONLY | O_CREAT | O_APPEND);
	ni->stderr_fd = open_log(ni->dir, "stderr.log", O_WRONLY | O_CREAT | O_APPEND);
	if (ni->stdout_fd < 0 || ni->stderr_fd < 0) {
		snprintf(ni->start_err, sizeof ni->start_err, "cannot open the logs: %s", strerror(errno));
		return -EIO;
	}
	if (ni->spec.has_boot) {
		int fd;
		snprintf(ni->serial_log, sizeof ni->serial_log, "%.4000s/serial.log", ni->dir);
		if ((fd = open(ni->serial_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0 ||
		    (ni->serial_fd = open(ni->serial_log, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
			snprintf(ni->start_err, sizeof ni->start_err, "cannot create the serial log: %s", strerror(errno));
			close_fd(&fd);
			return -EIO;
		}
		close(fd);
	}
	return 0;
}

/* The steps of prepare and spawn (common/trace.h): artifact until the blobs were in the
 * cache, environment the rest of prepare; config until the driver said its configuration
 * was ready (with the node's record of the start), call the rest of spawn. */
static void steps_split(struct ninst *ni, int64_t spawn_from, int64_t config_done)
{
	int64_t *s = ni->timing.step_us;
	int64_t artifact = ni->blobs_done_us - ni->received_us;
	int64_t config = config_done - spawn_from;
	s[STEP_ARTIFACT] = artifact > 0 && artifact <= ni->timing.prepare_us ? artifact : 0;
	s[STEP_ENVIRONMENT] = ni->timing.prepare_us - s[STEP_ARTIFACT];
	s[STEP_CONFIG] = config_done && config > 0 && config <= ni->timing.spawn_us ? config : 0;
	s[STEP_CALL] = ni->timing.spawn_us - s[STEP_CONFIG];
	ni->timing.has_steps = true;
}

/* path is under the guest's dir `from`: the same path under `to` (the dir moved). */
static void path_moved(char *path, size_t len, const char *from, const char *to)
{
	size_t n = strlen(from);
	char rest[PATH_MAX];
	if (strncmp(path, from, n) != 0 || path[n] != '/')
		return;
	snprintf(rest, sizeof rest, "%s", path + n);
	if ((size_t)snprintf(path, len, "%s%s", to, rest) >= len)
		path[0] = '\0';
}

/* A warm guest's start: prepare moves its dir to the instance's (the process keeps its
 * open files: logs, serial, QMP socket), spawn resumes it. The instance's record is
 * written into the guest's dir before the move, so that whatever a crash leaves is either
 * the pool's (its recovery kills a guest with a record: it was being taken) or the
 * instance's (its recovery re-attaches it). */
static void start_warm(struct ninst *ni)
{
	char parent[PATH_MAX];
	int64_t t0;
	int rc, keep = ni->taken.control_fd; /* drv_resume's to close from here */

	ni->h = ni->taken.h;
	ni->taken.h.pidfd = -1;
	ni->taken.control_fd = -1;
	path_moved(ni->h.control, sizeof ni->h.control, ni->taken.dir, ni->dir);
	snprintf(ni->serial_log, sizeof ni->serial_log, "%s", ni->taken.serial_log);
	path_moved(ni->serial_log, sizeof ni->serial_log, ni->taken.dir, ni->dir);
	snprintf(parent, sizeof parent, "%.4000s/instances", ni->set->env.run_dir);
	{
		struct instrec r;
		record_of(ni, INSTREC_RUNNING, &r);
		if ((rc = fs_mkdir_p(parent, 0750)) < 0 || (rc = instrec_write(ni->taken.dir, &r)) < 0 ||
		    (rename(ni->taken.dir, ni->dir) < 0 && (rc = -errno) < 0)) {
			snprintf(ni->start_err, sizeof ni->start_err, "warm guest: cannot move %.100s to %.100s: %s", ni->taken.dir,
			         ni->dir, strerror(-rc));
			goto fail;
		}
	}
	t0 = clock_mono_us();
	ni->timing.prepare_us = t0 - ni->received_us;
	ni->start_rc = drv_resume(ni->drv, ni->set->env.drv_opts, &ni->h, keep, ni->start_err, sizeof ni->start_err);
	keep = -1;
	ni->spawned_us = clock_mono_us();
	ni->timing.spawn_us = ni->spawned_us - t0;
	steps_split(ni, t0, 0);
	if (ni->start_rc == 0)
		return;
fail:
	/* it cannot serve this instance, nor go back to its pool: it ends here */
	close_fd(&keep);
	drv_signal(ni->drv, &ni->h, SIGKILL);
	if (ni->h.is_child)
		while (waitpid(ni->h.pid, NULL, 0) < 0 && errno == EINTR)
			;
	close_fd(&ni->h.pidfd);
	ni->start_rc = ni->start_rc < 0 ? ni->start_rc : -EIO;
}

static void start_work(void *arg)
{
	struct ninst *ni = arg;
	char nspath[64] = "";
	int64_t t0, t1, config_done = 0;

	if (ni->warm) {
		start_warm(ni);
		return;
	}

	/* prepare: the instance's files, here on the worker since file creation can take
	 * milliseconds on a loaded disk; the wait for a free worker counts as prepare too */
	if ((ni->start_rc = prepare_dir(ni)) < 0)
		return;
	struct drv_start_request r = {
		.instance_id = ni->id, .name = ni->spec.name, .config = ni->spec.config, .dir = ni->dir,
		.stdout_fd = ni->stdout_fd, .stderr_fd = ni->stderr_fd,
		.kernel = ni->kernel[0] ? ni->kernel : NULL, .initrd = ni->initrd[0] ? ni->initrd : NULL,
		.cmdline = ni->spec.has_boot ? ni->spec.boot.cmdline : NULL,
		.xen_type = ni->spec.has_boot ? ni->spec.boot.xen_type : NULL,
		.serial_log = ni->serial_log[0] ? ni->serial_log : NULL,
		.vcpus = (double)ni->spec.vcpus_milli / 1000.0,
		.memory_mb = ni->spec.memory_mb,
		.config_done_us = &config_done,
	};
	t0 = clock_mono_us();
	ni->timing.prepare_us = t0 - ni->received_us;
	ni->start_rc = network_setup(ni, &r, nspath, sizeof nspath);
	t1 = clock_mono_us();
	ni->timing.network_us = t1 - t0;
	if (ni->start_rc < 0)
		return;
	/* Said before the start, so that a node killed right after it can find what it
	 * started (the driver's adopt) instead of starting a second copy. */
	record_write(ni, INSTREC_SPAWNING);
	if ((r.hold_fd = instrec_hold_take(ni->dir)) < 0)
		log_warnx("instance %s: no spawn hold in %s (%s): a node killed during this start could miss "
		          "what it started", ni->id, ni->dir, strerror(-r.hold_fd));
	ni->start_rc = ni->drv->start(ni->set->env.drv_opts, &r, &ni->h, ni->start_err, sizeof ni->start_err);
	if (r.hold_fd > 0)
		close(r.hold_fd);
	ni->spawned_us = clock_mono_us();
	ni->timing.spawn_us = ni->spawned_us - t1;
	steps_split(ni, t1, config_done);
	/* its "running" record follows the report (record_later_running) */
}

static void start_done(void *arg)
{
	struct ninst *ni = arg;
	struct warm_pools *refill = NULL; /* read before ni_event, which may end ni */
	if (ninst_release(ni))
		return; /* cannot happen: only ended instances are purged */
	close_fd(&ni->stdout_fd);
	close_fd(&ni->stderr_fd);
	if (ni->warm)
		refill = ni->set->env.pools;
	if (ni->start_rc < 0) {
		ni_event(ni, NE_SPAWN_FAILED, &(struct ni_args){.why = ni->start_err});
	} else {
		ni_event(ni, NE_SPAWNED, &(struct ni_args){0});
		if (!ni->warm) /* a warm start's record was written before it (start_warm) */
			record_later_running(ni);
	}
	/* a warm start's ready report has gone out (the marker was in the serial log): the
	 * pool's refill boot no longer competes with it */
	if (refill)
		warm_pools_refill(refill);
}

/* ---- prepare: image blobs ---- */

static void blob_resolved(struct ninst *ni)
{
	if (--ni->pending_fetches == 0) {
		ni->blobs_done_us = clock_mono_us(); /* the artifact step ends */
		ni_event(ni, NE_BLOBS_DONE, &(struct ni_args){0});
	}
}

static void on_blob(void *arg, int rc, const char *why)
{
	struct ninst *ni = arg;
	if (ninst_release(ni))
		return;
	if (rc < 0)
		ni_event(ni, NE_BLOB_FAILED, &(struct ni_args){.why = why});
	blob_resolved(ni);
}

/* Resolves one blob of the image: a cache hit fills path now, a miss starts a fetch. */
static void need_blob(struct ninst *ni, const char *digest, char *path, size_t len)
{
	if (!digest[0])
		return;
	if (imagecache_lookup(ni->set->env.cache, ni->dir, digest, path, len))
		return;
	ni->timing.image_cache = IMAGE_MISS;
	ni->pending_fetches++;
	ninst_hold(ni);
	imagecache_fetch(ni->set->env.cache, digest, path, on_blob, ni);
}

/* ---- exit ---- */

static void on_process_exit(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	ni_event(arg, NE_EXITED, &(struct ni_args){0});
}

/* Domains (no pidfd): ask the toolstack, on a worker; each second for toolstacks without
 * exit events (xen) or while a driver's events are down (libvirt). */
struct status_job {
	struct ninst *ni;
	int rc;
	bool alive;
};

static void status_work(void *arg)
{
	struct status_job *j = arg;
	j->rc = j->ni->drv->status(j->ni->set->env.drv_opts, &j->ni->h, &j->alive);
}

static void status_done(void *arg)
{
	struct status_job *j = arg;
	struct ninst *ni = j->ni;
	if (!ninst_release(ni) && has_handle(ni->state) && j->rc == 0 && !j->alive)
		ni_event(ni, NE_GONE, &(struct ni_args){.why = "the domain is gone (the toolstack keeps no exit code)"});
	free(j);
}

/* Asks the toolstack whether a domain (no pidfd to wait on) still exists. */
static void status_check(struct ninst *ni)
{
	struct status_job *j;
	if (!has_handle(ni->state) || ni->h.pidfd >= 0 || !ni->drv->status)
		return;
	if (!(j = calloc(1, sizeof *j)))
		fatal("calloc");
	j->ni = ni;
	ninst_submit(ni, status_work, status_done, j);
}

static void on_status_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct instances *set = arg;
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&set->map, &i, &k, &v);)
		if (!drv_watching(((struct ninst *)v)->drv))
			status_check(v);
}

/* One of a domain driver's exit events: a domain that ended, or "" for "some may have
 * ended unseen", which asks the toolstack about each of the driver's domains. */
static void domain_event(struct instances *set, const struct driver *d, const char *domain)
{
	const char *k;
	void *v;
	struct ninst *ni;
	if (!domain[0]) {
		for (size_t i = 0; hmap_next(&set->map, &i, &k, &v);)
			if (((struct ninst *)v)->drv == d)
				status_check(v);
		return;
	}
	/* domains are named "mv-" + instance id (drv_domain_adopt) */
	if (strncmp(domain, "mv-", 3) != 0 || !(ni = hmap_get(&set->map, domain + 3)) || ni->drv != d ||
	    !has_handle(ni->state) || strcmp(ni->h.domain, domain) != 0)
		return; /* not ours, or not running yet: the watch asks once it is */
	log_info("instance %s: domain %s ended (%s event)", ni->id, domain, d->name);
	ni_event(ni, NE_GONE, &(struct ni_args){.why = "the domain ended (the toolstack keeps no exit code)"});
}

static void on_domain_events(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct instances *set = arg;
	char domain[sizeof ((struct drv_handle *)0)->domain];
	for (int i = 0; drivers[i] && i < WATCH_MAX; i++)
		while (set->watch_evs[i] && drivers[i]->watch_next(domain, sizeof domain))
			domain_event(set, drivers[i], domain);
}

/* Exit events from the domain drivers that have them (libvirt); the others are polled. */
static void domain_watch_start(struct instances *set, int i)
{
	const struct driver *d = drivers[i];
	char why[256] = "";
	int fd;
	if (!d->watch || !json_object_get(set->env.drivers_info, d->name))
		return;
	if (d->watch(set->env.drv_opts, &fd, why, sizeof why) < 0) {
		log_info("driver %s: no exit events (%s): domains are polled every %.0f s", d->name, why,
		         STATUS_INTERVAL_S);
		return;
	}
	set->watch_evs[i] = event_new(set->env.base, fd, EV_READ | EV_PERSIST, on_domain_events, set);
	event_add(set->watch_evs[i], NULL);
}

/* ---- stop ---- */

struct stop_job {
	struct ninst *ni;
	bool force;
	int rc;
};

static void stop_work(void *arg)
{
	struct stop_job *j = arg;
	j->rc = drv_stop(j->ni->drv, j->ni->set->env.drv_opts, &j->ni->h, j->force);
	if (j->force)
		drv_force_end(j->ni->drv, j->ni->set->env.drv_opts, j->ni->id);
}

static void stop_done(void *arg)
{
	struct stop_job *j = arg;
	struct ninst *ni = j->ni;
	if (!ninst_release(ni)) {
		if (j->rc < 0 && j->rc != -ESRCH)
			log_warnx("instance %s: %s stop: %s", ni->id, j->force ? "forced" : "gentle", strerror(-j->rc));
		ni_event(ni, NE_STOP_DONE, &(struct ni_args){.rc = j->rc});
	}
	free(j);
}

/* Stops can block (QMP, xl shutdown): a worker does them. */
static void stop_call(struct ninst *ni, bool force)
{
	struct stop_job *j = calloc(1, sizeof *j);
	if (!j)
		fatal("calloc");
	*j = (struct stop_job){.ni = ni, .force = force};
	/* ahead of queued starts: under load a stop's signal waited ~0.3 s behind them (the
	 * "stop" step at 64 clients), the instance running on meanwhile */
	ninst_hold(ni);
	worker_submit_first(ni->set->env.workers, stop_work, stop_done, j);
}

static void on_kill_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct ninst *ni = arg;
	if (has_handle(ni->state))
		log_info("instance %s did not stop within %.1f s: forcing", ni->id, ni->set->env.stop_grace_s);
	ni_event(ni, NE_GRACE, &(struct ni_args){0});
}

/* ---- boot: the ready marker on the serial log ---- */

/* Reads what the guest wrote since last time and looks for the marker, keeping the tail
 * so a marker split across two reads is still found. */
static bool serial_scan(struct ninst *ni)
{
	const char *marker = ni->spec.ready_serial;
	size_t mlen = strlen(marker);
	char buf[4096 + MV_READY_PATTERN_MAX];
	ssize_t n;

	while ((n = read(ni->serial_fd, buf + ni->carry_len, 4096)) > 0) {
		size_t total;
		memcpy(buf, ni->carry, ni->carry_len);
		total = ni->carry_len + (size_t)n;
		if (memmem(buf, total, marker, mlen))
			return true;
		ni->carry_len = total < mlen - 1 ? total : mlen - 1;
		memcpy(ni->carry, buf + total - ni->carry_len, ni->carry_len);
	}
	return false;
}

/* The serial log was created anew (libvirt's virtlogd replaces the file when the domain
 * starts): read the new one from its start. */
static void serial_reopen(struct ninst *ni)
{
	int fd = open(ni->serial_log, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	close_fd(&ni->serial_fd);
	ni->serial_fd = fd;
	ni->carry_len = 0;
}

/* ---- the instance dir watched: logs and the ready marker ---- */

static const char *const log_files[LOG_STREAM_COUNT] = {"stdout.log", "stderr.log", "serial.log"};

static int log_file_stream(const char *name)
{
	for (int s = 0; s < LOG_STREAM_COUNT; s++)
		if (strcmp(name, log_files[s]) == 0)
			return s;
	return -1;
}

static void log_fd_open(struct ninst *ni, int s)
{
	char path[PATH_MAX + 16];
	close_fd(&ni->log_fds[s]);
	if (!log_stream_kept((enum log_stream)s, ni->spec.has_boot))
		return;
	snprintf(path, sizeof path, "%s/%s", ni->dir, log_files[s]);
	/* may fail for a file the toolstack owns: that log is then kept whole, as before */
	ni->log_fds[s] = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
}

/* Keeps the log within --log-max-bytes: what is older is freed (node/logbuf.h). */
static void log_trim(struct ninst *ni, int s)
{
	int rc;
	if (ni->log_fds[s] < 0 || (rc = logbuf_trim(ni->log_fds[s], ni->set->env.log_max_bytes)) == 0)
		return;
	log_warnx("instance %s: cannot bound its %s log (%s): it is kept whole", ni->id, log_stream_names[s],
	          strerror(-rc));
	close_fd(&ni->log_fds[s]); /* said once */
}

/* Readers waiting for more of an instance's logs (or for its end) are woken. */
static void logs_written(struct ninst *ni)
{
	if (ni->set->env.log_written)
		ni->set->env.log_written(ni->set->env.log_arg, ni->id);
}

/* Watches the instance dir rather than the files: a toolstack may replace a file. */
static void dir_watch_start(struct ninst *ni)
{
	struct instances *set = ni->set;
	if (ni->watch >= 0)
		return;
	ni->watch = inotify_add_watch(set->inotify_fd, ni->dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO);
	if (ni->watch < 0) {
		log_warn("instance %s: cannot watch %s (logs unbounded, no ready marker)", ni->id, ni->dir);
		return;
	}
	snprintf(ni->watch_key, sizeof ni->watch_key, "%d", ni->watch);
	hmap_put(&set->by_watch, ni->watch_key, ni);
	for (int s = 0; s < LOG_STREAM_COUNT; s++)
		log_fd_open(ni, s);
}

/* At the end: the logs are bounded one last time and left as they are. */
static void dir_watch_stop(struct ninst *ni)
{
	struct instances *set = ni->set;
	if (ni->watch >= 0) {
		if (hmap_get(&set->by_watch, ni->watch_key) == ni)
			hmap_remove(&set->by_watch, ni->watch_key);
		if (set->inotify_fd >= 0)
			inotify_rm_watch(set->inotify_fd, ni->watch);
	}
	ni->watch = -1;
	for (int s = 0; s < LOG_STREAM_COUNT; s++) {
		log_trim(ni, s);
		close_fd(&ni->log_fds[s]);
	}
}

/* One change in an instance dir: a log grew or was replaced. */
static void dir_changed(struct ninst *ni, const struct inotify_event *ev)
{
	int s = log_file_stream(ev->name);
	if (s < 0)
		return;
	if (ev->mask & (IN_CREATE | IN_MOVED_TO))
		log_fd_open(ni, s);
	if (s == LOG_SERIAL && ni->serial_fd >= 0 && has_handle(ni->state) && !ni->ready) {
		if (ev->mask & (IN_CREATE | IN_MOVED_TO))
			serial_reopen(ni);
		if (serial_scan(ni))
			ni_event(ni, NE_READY, &(struct ni_args){0});
	}
	log_trim(ni, s);
	logs_written(ni);
}

static void on_inotify(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct instances *set = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(set->inotify_fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			char key[16];
			struct ninst *ni;
			p += sizeof *ev + ev->len;
			if (ev->len == 0)
				continue;
			snprintf(key, sizeof key, "%d", ev->wd);
			if ((ni = hmap_get(&set->by_watch, key)))
				dir_changed(ni, ev);
		}
	}
}

/* The boot phase: the serial log scanned for the marker as it grows. */
static void boot_watch_start(struct ninst *ni)
{
	if (!ni->spec.ready_serial[0])
		return;
	dir_watch_start(ni);
	serial_reopen(ni); /* it may have been replaced while the guest started */
	if (serial_scan(ni)) /* it may have been written before the watch existed */
		ni_event(ni, NE_READY, &(struct ni_args){0});
}

static void boot_scan_stop(struct ninst *ni) { close_fd(&ni->serial_fd); }

int instances_log_open(struct instances *set, const char *id, enum log_stream s, int *fd, bool *ended)
{
	struct ninst *ni = hmap_get(&set->map, id);
	char path[PATH_MAX + 16];
	*fd = -1;
	if (!ni || ni->state == NI_PURGED)
		return -ENOENT;
	if (!log_stream_kept(s, ni->spec.has_boot))
		return -ENODATA;
	*ended = ni->state == NI_ENDED;
	snprintf(path, sizeof path, "%s/%s", ni->dir, log_files[s]);
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno != ENOENT)
		return -errno;
	return 0; /* not created yet (still preparing): nothing written */
}

/* ---- the actions ---- */

/* The process or domain is gone: its final state, from what is known of its end. */
static enum inst_state end_state(struct ninst *ni, enum ni_event ev, const char *unknown_why, const char *driver_why)
{
	if (ev == NE_SPAWN_FAILED || ev == NE_BLOBS_DONE)
		return INST_FAILED;
	if (ni->stop_requested)
		return INST_STOPPED;
	if (ni->has_exit_code && ni->exit_code == 0)
		return INST_EXITED;
	if (driver_why[0]) { /* the driver knows better than the exit code (killed for its memory) */
		snprintf(ni->error, sizeof ni->error, "%s", driver_why);
		return INST_FAILED;
	}
	if (ni->has_exit_code) {
		int code = ni->exit_code;
		snprintf(ni->error, sizeof ni->error, code > 128 ? "killed by signal %d" : "exited with code %d",
		         code > 128 ? code - 128 : code);
		return INST_FAILED;
	}
	snprintf(ni->error, sizeof ni->error, "%s", unknown_why);
	return INST_EXITED;
}

/* The stop's two steps, when a stop was asked: until the end was seen, and the clean-up. */
static void stop_measured(struct ninst *ni, int64_t ended_us)
{
	if (!ni->stop_asked_us || ni->stop_asked_us > ended_us)
		return;
	ni->stop_timing.step_us[STOP_STEP_STOP] = ended_us - ni->stop_asked_us;
	ni->stop_timing.step_us[STOP_STEP_CLEANUP] = clock_mono_us() - ended_us;
	ni->has_stop_timing = true;
}

static void end(struct ninst *ni, enum ni_event ev, const struct ni_args *x)
{
	int64_t ended_us = clock_mono_us();
	const char *why = x->why ? x->why
	                         : "ended; exit code unknown: its process was re-attached by a restarted node, not started by it";
	char driver_why[WIRE_ERROR_MAX + 1] = "";
	if (ni->drv)
		drv_release(ni->drv, ni->set->env.drv_opts, ni->id, driver_why, sizeof driver_why);
	ni->final_state = end_state(ni, ev, why, driver_why);
	if (ni->final_state == INST_FAILED && !ni->has_exit_code)
		log_warnx("instance %s failed: %s", ni->id, ni->error);
	if (ni->kill_timer)
		evtimer_del(ni->kill_timer);
	if (ni->exit_ev)
		event_del(ni->exit_ev);
	boot_scan_stop(ni);
	dir_watch_stop(ni);
	network_teardown(ni);
	logs_written(ni); /* followers learn of the end */
	stop_measured(ni, ended_us);
}

/* Follows its end: a pidfd, or the toolstack (events or the status poll). */
static void watch_exit(struct ninst *ni)
{
	struct event_base *base = ni->set->env.base;
	dir_watch_start(ni);
	if (ni->h.pidfd >= 0) {
		ni->exit_ev = event_new(base, ni->h.pidfd, EV_READ, on_process_exit, ni);
		event_add(ni->exit_ev, NULL);
	}
	ni->kill_timer = evtimer_new(base, on_kill_timer, ni);
	/* an exit event that came before this point was not for a running instance: ask once */
	if (drv_watching(ni->drv))
		status_check(ni);
}

static void spawn(struct ninst *ni) { ninst_submit(ni, start_work, start_done, ni); }

static void got_ready(struct ninst *ni)
{
	ni->timing.boot_us = clock_mono_us() - ni->spawned_us;
	ni->ready = true;
	boot_scan_stop(ni);
}

/* A removed instance's dir, deleted on a worker when no start waits for one: a dozen
 * system calls (open, list, stat and unlink each file, rmdir) that would otherwise hold up
 * the loop, and with it the long-poll that brings the next start. Nothing refers to the
 * dir any more: the instance is out of the map, its ids are never reused, and a node
 * killed before the job ran finds the dir at its next start as it would after a kill in
 * the middle of a removal. */
struct dir_removal {
	char dir[PATH_MAX];
};

static void dir_removal_work(void *arg)
{
	struct dir_removal *d = arg;
	int rc;
	if ((rc = fs_remove_tree(d->dir)) < 0)
		log_warnx("cannot remove %s: %s", d->dir, strerror(-rc));
	free(d);
}

static void remove_dir_later(struct instances *set, const char *dir)
{
	struct dir_removal *d = malloc(sizeof *d);
	if (!d)
		fatal("malloc");
	snprintf(d->dir, sizeof d->dir, "%s", dir);
	worker_submit_background(set->env.workers, dir_removal_work, d);
}

static void blobs_resolve(struct ninst *ni);

/* A newer run begins where the last one ended: the same dir, spec and resources; what the
 * last run knew of its end, readiness and timing is forgotten (its logs stay, appended to;
 * the serial log starts afresh, for the ready marker). */
static void new_run(struct ninst *ni)
{
	log_info("instance %s: run %u ended; run %u begins", ni->id, (unsigned)ni->run, (unsigned)ni->next_run);
	ni->run = ni->next_run;
	ni->next_run = 0;
	ni->received_us = ni->next_received_us;
	ni->stop_requested = ni->ready = ni->has_exit_code = ni->has_stop_timing = false;
	ni->exit_code = ni->start_rc = 0;
	ni->final_state = INST_PENDING;
	ni->error[0] = ni->start_err[0] = ni->serial_log[0] = ni->kernel[0] = ni->initrd[0] = '\0';
	ni->stop_asked_us = ni->spawned_us = ni->blobs_done_us = 0;
	ni->timing = (struct node_timing){0};
	ni->carry_len = 0;
	ni->h = (struct drv_handle){.pidfd = -1};
	ni->warm = false; /* a pooled guest served its run: the next one starts cold */
	if (ni->spec.pool[0])
		ni->timing.pool = POOL_MISS; /* and says so: its trace reads pool miss */
	if (ni->exit_ev) { /* watch_exit makes them again for the new process */
		event_free(ni->exit_ev);
		ni->exit_ev = NULL;
	}
	if (ni->kill_timer) {
		event_free(ni->kill_timer);
		ni->kill_timer = NULL;
	}
	blobs_resolve(ni);
}

/* The instance was removed: its dir goes; it is freed once no job points at it. */
static void forget(struct ninst *ni)
{
	hmap_remove(&ni->set->map, ni->id);
	logs_written(ni); /* its readers are told it is gone */
	remove_dir_later(ni->set, ni->dir);
	if (ni->jobs == 0)
		ninst_free(ni);
}

/* Looks the event up and carries out its actions, in this order. The instance is in its
 * new state while they run (an action may raise the next event: the ready marker already
 * on the serial log, a stop asked while it started). A refusal is logged here and
 * nowhere else. */
static void ni_event(struct ninst *ni, enum ni_event ev, const struct ni_args *x)
{
	unsigned flags = (ni->ready ? NF_READY : 0) | (ni->stop_requested ? NF_STOP_REQUESTED : 0);
	struct ni_transition t = ni_lifecycle_step(ni->state, ev, flags);
	uint32_t a = t.actions;

	if (t.kind == NT_REFUSE) {
		log_warnx("instance %s: event \"%s\" refused in state %s", ni->id, ni_event_names[ev],
		          ni_state_names[ni->state]);
		return;
	}
	if (t.kind == NT_REPEAT)
		return;
	if (a & NA_REAP) {
		int code = 0;
		bool known = false;
		int rc = ni->drv->reap(&ni->h, &code, &known);
		if (rc == -EAGAIN)
			return; /* not ended after all */
		if (rc < 0)
			log_warnx("instance %s: reap: %s", ni->id, strerror(-rc));
		ni->has_exit_code = known;
		ni->exit_code = code;
	}
	ni->state = (enum ni_state)t.next;
	if (a & NA_DESIRE_STOP)
		ni->stop_requested = true;
	if (a & NA_NOTE_ERROR && !ni->error[0])
		snprintf(ni->error, sizeof ni->error, "%s", x->why ? x->why : "");
	if (a & NA_END)
		end(ni, ev, x);
	if (a & NA_READY)
		got_ready(ni);
	if (a & NA_RECORD)
		record_write(ni, ni->state == NI_ENDED ? INSTREC_ENDED : INSTREC_RUNNING);
	if (a & NA_REPORT)
		report(ni);
	if (a & NA_WATCH)
		watch_exit(ni);
	if (a & NA_SPAWN)
		spawn(ni);
	if (a & NA_STOP_GENTLE)
		stop_call(ni, false);
	if (a & NA_STOP_FORCE)
		stop_call(ni, true);
	if (a & NA_ARM_GRACE) {
		struct timeval tv = clock_timeval(ni->set->env.stop_grace_s);
		evtimer_add(ni->kill_timer, &tv);
	}
	if (a & NA_STATUS_CHECK && x->rc == 0)
		status_check(ni); /* a domain just stopped: say so now, not at the next tick */
	if (a & NA_BOOT_WATCH)
		boot_watch_start(ni);
	if (a & NA_STOP_IF_ASKED && ni->stop_requested && ni->state == NI_RUNNING)
		ni_event(ni, NE_STOP, &(struct ni_args){0});
	if (a & NA_NEW_RUN)
		new_run(ni);
	if (a & NA_RESTART_IF_ASKED && ni->next_run > ni->run && ni->state == NI_ENDED)
		ni_event(ni, NE_RESTART, &(struct ni_args){0});
	if (a & (NA_FORGET | NA_REMOVE))
		forget(ni); /* last: it may be freed */
}

/* ---- the core's operations ---- */

/* Prepare's first step: the image blobs, from the cache or fetched; then the spawn. */
static void blobs_resolve(struct ninst *ni)
{
	ni->pending_fetches = 1; /* held until every blob is resolved */
	if (ni->spec.has_boot) {
		ni->timing.image_cache = IMAGE_HIT;
		need_blob(ni, ni->spec.boot.kernel, ni->kernel, sizeof ni->kernel);
		need_blob(ni, ni->spec.boot.initrd, ni->initrd, sizeof ni->initrd);
	}
	blob_resolved(ni);
}

void instances_start(struct instances *set, const char *id, const struct inst_spec *spec, uint32_t run)
{
	struct ninst *ni = hmap_get(&set->map, id);
	struct mv_error err;

	if (ni && run > ni->run && run > ni->next_run) { /* a newer run: the old one ends first */
		ni->next_run = run;
		ni->next_received_us = clock_mono_us();
		ni_event(ni, NE_RESTART, &(struct ni_args){0});
		return;
	}
	if (ni) { /* sent again after a reconnect: say where it stands */
		ni_event(ni, NE_START_AGAIN, &(struct ni_args){0});
		return;
	}
	ni = ninst_new(set, id, NI_FETCHING);
	ni->run = run;
	ni->received_us = clock_mono_us();
	spec_copy(&ni->spec, spec);
	ni->drv = driver_find(spec->driver);
	if (!ni->drv || !json_object_get(set->env.drivers_info, ni->drv->name)) {
		char why[128];
		snprintf(why, sizeof why, "driver %s is not available on this node", spec->driver);
		ni->state = NI_SPAWNING;
		ni_event(ni, NE_SPAWN_FAILED, &(struct ni_args){.why = why});
		return;
	}
	if (drv_spec_check(&ni->spec, SPEC_STORED, &err) < 0) {
		ni->state = NI_SPAWNING;
		ni_event(ni, NE_SPAWN_FAILED, &(struct ni_args){.why = err.message});
		return;
	}
	if (ni->spec.pool[0]) {
		ni->warm = set->env.pools && warm_pools_take(set->env.pools, ni->spec.pool, &ni->spec, &ni->taken);
		ni->timing.pool = ni->warm ? POOL_HIT : POOL_MISS;
	}
	if (ni->warm) { /* its image is in the guest already */
		ni->pending_fetches = 1;
		blob_resolved(ni);
		return;
	}
	blobs_resolve(ni);
}

void instances_stop(struct instances *set, const char *id)
{
	struct ninst *ni = hmap_get(&set->map, id);
	if (!ni) {
		report_unknown_stopped(set, id);
		return;
	}
	if (!ni->stop_asked_us) /* the first ask: a stop sent again after a reconnect is the same */
		ni->stop_asked_us = clock_mono_us();
	ni_event(ni, NE_STOP, &(struct ni_args){0});
}

void instances_purge(struct instances *set, const char *id)
{
	struct ninst *ni = hmap_get(&set->map, id);
	char dir[PATH_MAX];
	if (ni) {
		ni_event(ni, NE_PURGE, &(struct ni_args){0}); /* never the files of something alive */
		return;
	}
	snprintf(dir, sizeof dir, "%.4000s/instances/%s", set->env.run_dir, id);
	remove_dir_later(set, dir);
}

/* ---- start-up, recovery, shutdown ---- */

struct instances *instances_new(const struct instances_env *env, char *err, size_t errlen)
{
	struct instances *set = calloc(1, sizeof *set);
	struct timeval tv = clock_timeval(STATUS_INTERVAL_S);
	if (!set)
		fatal("calloc");
	set->env = *env;
	pthread_mutex_init(&set->records_lock, NULL);
	hmap_init(&set->map);
	hmap_init(&set->by_watch);
	set->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (set->inotify_fd < 0) {
		snprintf(err, errlen, "inotify_init1: %s", strerror(errno));
		instances_free(set, false);
		return NULL;
	}
	set->inotify_ev = event_new(env->base, set->inotify_fd, EV_READ | EV_PERSIST, on_inotify, set);
	event_add(set->inotify_ev, NULL);
	set->status_timer = event_new(env->base, -1, EV_PERSIST, on_status_timer, set);
	event_add(set->status_timer, &tv);
	for (int i = 0; drivers[i] && i < WATCH_MAX; i++)
		domain_watch_start(set, i);
	return set;
}

/* Re-attaches to one instance a previous run of this node started; true when it is alive. */
/* A guest taken from a pool is recorded RUNNING before its resume (start_warm): a node
 * killed between the two leaves it paused. Resumed here (QMP cont: nothing for a guest
 * that runs; bounded, once per pooled instance at start-up). */
static void resume_left_paused(struct instances *set, struct ninst *ni)
{
	char err[256];
	if (!ni->spec.pool[0] || !drv_can_pool(ni->drv))
		return;
	if (drv_resume(ni->drv, set->env.drv_opts, &ni->h, -1, err, sizeof err) < 0)
		log_warnx("instance %s: taken from pool %s, cannot make sure it runs: %s", ni->id, ni->spec.pool, err);
}

static bool recover_one(struct instances *set, struct instrec *r)
{
	bool alive = false;
	struct ninst *ni = ninst_new(set, r->id, NI_RECOVERING);
	struct mv_error err;
	ni->spec = r->spec;
	memset(&r->spec, 0, sizeof r->spec); /* taken */
	ni->drv = driver_find(ni->spec.driver);
	if (ni->drv && drv_spec_check(&ni->spec, SPEC_STORED, &err) < 0)
		log_warnx("instance %s: its recorded spec does not pass the driver's check now (%s)", ni->id, err.message);
	ni->h = r->h;
	ni->run = r->run;
	memcpy(ni->tap, r->tap, sizeof ni->tap);
	memcpy(ni->netns, r->netns, sizeof ni->netns);
	ni->ready = r->ready;
	ni->has_exit_code = r->has_exit_code;
	ni->exit_code = r->exit_code;
	memcpy(ni->error, r->error, sizeof ni->error);
	switch (r->state) {
	case INSTREC_SPAWNING:
		/* the node died while starting it: adopt what was started, or forget it all and
		 * let the core's repeated start begin afresh; a child still on its way to its
		 * exec first gets there (the spawn hold) */
		if (instrec_hold_wait(ni->dir, SPAWN_HOLD_WAIT_MS) < 0)
			log_warnx("instance %s: a process of the previous start still holds %s/spawning.lock after "
			          "%d ms; looking for it anyway", ni->id, ni->dir, SPAWN_HOLD_WAIT_MS);
		if (ni->drv && drv_adopt(ni->drv, set->env.drv_opts, ni->id, &ni->h) == 0) {
			log_info("instance %s was started just before the node stopped: adopted", ni->id);
			ni_event(ni, NE_ADOPTED, &(struct ni_args){0});
			alive = true;
		} else {
			ni_event(ni, NE_NOT_STARTED, &(struct ni_args){0});
		}
		break;
	case INSTREC_RUNNING:
		if (ni->drv && drv_recover(ni->drv, &ni->h) == 0) {
			log_info("instance %s is still running: re-attached", ni->id);
			resume_left_paused(set, ni);
			ni_event(ni, NE_REATTACHED, &(struct ni_args){0});
			alive = true;
		} else {
			ni_event(ni, NE_ENDED_AWAY,
			         &(struct ni_args){.why = "ended while the node was not running (exit code unknown)"});
		}
		break;
	case INSTREC_ENDED:
		ni->final_state = r->ended_as;
		ni_event(ni, NE_RECORD_ENDED, &(struct ni_args){0});
		break;
	}
	return alive;
}

void instances_recover(struct instances *set)
{
	char dirpath[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int records = 0, alive = 0;
	snprintf(dirpath, sizeof dirpath, "%.4000s/instances", set->env.run_dir);
	if (!(d = opendir(dirpath)))
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 300];
		struct instrec r;
		if (strlen(e->d_name) != MV_ID_LEN || hmap_get(&set->map, e->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s", dirpath, e->d_name);
		if (instrec_read(path, &r) < 0 || strcmp(r.id, e->d_name) != 0) {
			if (r.spec.name[0])
				spec_free(&r.spec);
			log_warnx("instance record %s/record.json is unreadable; left alone", path);
			continue;
		}
		records++;
		alive += recover_one(set, &r);
	}
	closedir(d);
	if (records)
		log_info("%d instance%s from the run dir %s alive again under this node; %d other record%s (ended, or not started)", alive,
		         alive == 1 ? "" : "s", set->env.run_dir, records - alive, records - alive == 1 ? "" : "s");
}

bool instances_alive(const struct instances *set)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&set->map, &i, &k, &v);)
		if (ni_state_alive(((struct ninst *)v)->state))
			return true;
	return false;
}

void instances_alive_ids(const struct instances *set, char (**ids)[MV_ID_LEN + 1], size_t *n)
{
	const char *k;
	void *v;
	*n = 0;
	if (!(*ids = calloc(hmap_size(&set->map) + 1, sizeof **ids)))
		fatal("calloc");
	for (size_t i = 0; hmap_next(&set->map, &i, &k, &v);)
		if (ni_state_alive(((struct ninst *)v)->state))
			memcpy((*ids)[(*n)++], k, MV_ID_LEN + 1);
}

void instances_stop_all(struct instances *set)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&set->map, &i, &k, &v);)
		if (ni_state_alive(((struct ninst *)v)->state))
			ni_event(v, NE_STOP, &(struct ni_args){0});
}

void instances_kill_all(struct instances *set)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&set->map, &i, &k, &v);) {
		struct ninst *ni = v;
		if (!has_handle(ni->state))
			continue;
		log_warnx("instance %s still alive at shutdown: forcing it", ni->id);
		drv_stop(ni->drv, set->env.drv_opts, &ni->h, true); /* the loop is ending: blocking is fine */
		drv_force_end(ni->drv, set->env.drv_opts, ni->id);
	}
}

/* Reaps our own children that were killed (bounded), so nothing is left to a slow init. */
static void reap_killed(struct ninst *ni)
{
	for (int tries = 0; tries < 100 && ni->h.pidfd >= 0 && ni->h.is_child; tries++) {
		int code;
		bool known;
		if (ni->drv->reap(&ni->h, &code, &known) != -EAGAIN)
			break;
		usleep(10000); /* shutdown only: the loop has stopped */
	}
}

void instances_free(struct instances *set, bool teardown)
{
	const char *k;
	void *v;
	if (!set)
		return;
	for (size_t i = 0; hmap_next(&set->map, &i, &k, &v);) {
		struct ninst *ni = v;
		if (has_handle(ni->state) && teardown) {
			char why[WIRE_ERROR_MAX + 1];
			reap_killed(ni);
			network_teardown(ni);
			drv_release(ni->drv, set->env.drv_opts, ni->id, why, sizeof why); /* its cgroup */
		}
		ninst_free(ni);
	}
	hmap_free(&set->map);
	hmap_free(&set->by_watch);
	if (set->status_timer)
		event_free(set->status_timer);
	for (int i = 0; drivers[i] && i < WATCH_MAX; i++) {
		if (set->watch_evs[i]) {
			event_free(set->watch_evs[i]);
			drivers[i]->unwatch();
		}
	}
	if (set->inotify_ev)
		event_free(set->inotify_ev);
	close_fd(&set->inotify_fd);
	pthread_mutex_destroy(&set->records_lock);
	free(set);
}
