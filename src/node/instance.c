/* instance — the life of each instance on this node:
 *   prepare  instance dir, logs, image blobs (cache hit, or fetched and verified)
 *   network  tap / veth + netns attached to the bridge          (on a worker)
 *   spawn    the driver's start call                            (on a worker)
 *   boot     the guest's ready marker seen on its serial log    (inotify)
 *   exit     pidfd readable, or the toolstack says the domain is gone (libvirt, xen)
 *   stop     gentle stop, then forced after the grace period
 * Every change is reported to the core at once (agent_report). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "node/internal.h"

#define STATUS_INTERVAL_S 1.0

static void watch_exit(struct ninst *ni);
static void boot_watch_start(struct ninst *ni);
static void boot_watch_stop(struct ninst *ni);

/* ---- records on disk ---- */

static void record_write(struct ninst *ni, const char *state)
{
	char path[PATH_MAX + 16];
	json_t *j = json_pack("{s:s, s:s, s:O, s:i, s:I, s:s, s:s, s:s, s:s, s:b}", "id", ni->id, "name", ni->name,
	                      "spec", ni->spec, "pid", (int)ni->h.pid, "start_time", (json_int_t)ni->h.start_time,
	                      "domain", ni->h.domain, "control", ni->h.control, "tap", ni->tap, "netns", ni->netns,
	                      "ready", ni->ready);
	char *text;
	int rc;
	json_object_set_new(j, "state", json_string(state));
	if (ni->has_exit_code)
		json_object_set_new(j, "exit_code", json_integer(ni->exit_code));
	if (ni->error[0])
		json_object_set_new(j, "error", json_string(ni->error));
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	snprintf(path, sizeof path, "%s/record.json", ni->dir);
	/* No fsync: the record must survive the node's crash, which the rename alone ensures. */
	if ((rc = fs_write_atomic(path, text, strlen(text), false)) < 0)
		log_warnx("instance %s: cannot write %s: %s", ni->id, path, strerror(-rc));
	free(text);
}

/* ---- creation and end ---- */

static struct ninst *ninst_new(struct node_agent *a, const char *id, const json_t *spec)
{
	struct ninst *ni = calloc(1, sizeof *ni);
	if (!ni)
		fatal("calloc");
	ni->agent = a;
	ni->stdout_fd = ni->stderr_fd = ni->serial_fd = ni->watch = -1;
	ni->h.pidfd = -1;
	snprintf(ni->id, sizeof ni->id, "%s", id);
	snprintf(ni->name, sizeof ni->name, "%s", json_string_value(json_object_get(spec, "name")) ?: id);
	ni->spec = json_incref((json_t *)spec);
	ni->drv = driver_find(json_string_value(json_object_get(spec, "driver")) ?: "");
	if (snprintf(ni->dir, sizeof ni->dir, "%.4000s/instances/%s", a->run_dir, id) >= (int)sizeof ni->dir)
		fatalx("instance dir path too long");
	hmap_put(&a->instances, ni->id, ni);
	return ni;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void ninst_free(struct ninst *ni)
{
	boot_watch_stop(ni);
	if (ni->exit_ev)
		event_free(ni->exit_ev);
	if (ni->kill_timer)
		event_free(ni->kill_timer);
	close_fd(&ni->stdout_fd);
	close_fd(&ni->stderr_fd);
	close_fd(&ni->h.pidfd);
	json_decref(ni->spec);
	free(ni);
}

/* Every worker job that points at an instance goes through here, so that the instance
 * outlives its jobs even when it is purged meanwhile. */
static void ninst_submit(struct ninst *ni, worker_fn *work, worker_fn *done, void *arg)
{
	ni->jobs++;
	worker_submit(ni->agent->workers, work, done, arg);
}

/* Called last by each job's done callback. Returns true when the instance is gone. */
static bool ninst_job_finished(struct ninst *ni)
{
	if (--ni->jobs > 0 || !ni->purged)
		return ni->purged;
	ninst_free(ni);
	return true;
}

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

static void ninst_end(struct ninst *ni, enum inst_state st)
{
	struct node_agent *a = ni->agent;
	ni->phase = NI_ENDED;
	ni->final_state = st;
	if (ni->kill_timer)
		evtimer_del(ni->kill_timer);
	if (ni->exit_ev)
		event_del(ni->exit_ev);
	boot_watch_stop(ni);
	network_teardown(ni);
	record_write(ni, inst_state_names[st]);
	agent_report(a, ni, st);
	agent_shutdown_check(a);
}

static void fail(struct ninst *ni, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void fail(struct ninst *ni, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ni->error, sizeof ni->error, fmt, ap);
	va_end(ap);
	log_warnx("instance %s failed: %s", ni->id, ni->error);
	ninst_end(ni, INST_FAILED);
}

/* ---- exit ---- */

/* The instance's process or domain is gone. Without a known code, `unknown_why` says why
 * there is none (the error the instance keeps). */
static void ended(struct ninst *ni, bool known, int code, const char *unknown_why)
{
	ni->has_exit_code = known;
	ni->exit_code = code;
	if (ni->stop_requested) {
		ninst_end(ni, INST_STOPPED);
	} else if (known && code == 0) {
		ninst_end(ni, INST_EXITED);
	} else if (known) {
		snprintf(ni->error, sizeof ni->error, code > 128 ? "killed by signal %d" : "exited with code %d",
		         code > 128 ? code - 128 : code);
		ninst_end(ni, INST_FAILED);
	} else {
		snprintf(ni->error, sizeof ni->error, "%s", unknown_why);
		ninst_end(ni, INST_EXITED);
	}
}

static void on_process_exit(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct ninst *ni = arg;
	int code = 0;
	bool known = false;
	int rc;
	if (ni->stop_in_progress) {
		/* a worker may be signalling it: reaping now could free the pid for reuse
		 * under that signal. stop_done reaps. */
		ni->exit_pending = true;
		return;
	}
	rc = ni->drv->reap(&ni->h, &code, &known);
	if (rc == -EAGAIN)
		return;
	if (rc < 0)
		log_warnx("instance %s: reap: %s", ni->id, strerror(-rc));
	ended(ni, known, code,
	      "ended; exit code unknown: its process was re-attached by a restarted node, not started by it");
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
	j->rc = j->ni->drv->status(&j->ni->agent->drv_opts, &j->ni->h, &j->alive);
}

static void status_done(void *arg)
{
	struct status_job *j = arg;
	if (!j->ni->purged && j->ni->phase == NI_RUNNING && j->rc == 0 && !j->alive)
		ended(j->ni, false, 0, "the domain is gone (the toolstack keeps no exit code)");
	ninst_job_finished(j->ni);
	free(j);
}

/* Asks the toolstack whether a domain (no pidfd to wait on) still exists. */
static void status_check(struct ninst *ni)
{
	struct status_job *j;
	if (ni->phase != NI_RUNNING || ni->h.pidfd >= 0 || !ni->drv->status)
		return;
	if (!(j = calloc(1, sizeof *j)))
		fatal("calloc");
	j->ni = ni;
	ninst_submit(ni, status_work, status_done, j);
}

static void on_status_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct node_agent *a = arg;
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);)
		if (!drv_watching(((struct ninst *)v)->drv))
			status_check(v);
}

/* One of a domain driver's exit events: a domain that ended, or "" for "some may have
 * ended unseen", which asks the toolstack about each of the driver's domains. */
static void domain_event(struct node_agent *a, const struct driver *d, const char *domain)
{
	const char *k;
	void *v;
	struct ninst *ni;
	if (!domain[0]) {
		for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);)
			if (((struct ninst *)v)->drv == d)
				status_check(v);
		return;
	}
	/* domains are named "mv-" + instance id (drv_domain_adopt) */
	if (strncmp(domain, "mv-", 3) != 0 || !(ni = hmap_get(&a->instances, domain + 3)) || ni->drv != d ||
	    ni->phase != NI_RUNNING || strcmp(ni->h.domain, domain) != 0)
		return; /* not ours, or not running yet: watch_exit asks once it is */
	log_info("instance %s: domain %s ended (%s event)", ni->id, domain, d->name);
	ended(ni, false, 0, "the domain ended (the toolstack keeps no exit code)");
}

static void on_domain_events(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct node_agent *a = arg;
	char domain[sizeof ((struct drv_handle *)0)->domain];
	for (int i = 0; drivers[i] && i < NODE_WATCH_MAX; i++)
		while (a->watch_evs[i] && drivers[i]->watch_next(domain, sizeof domain))
			domain_event(a, drivers[i], domain);
}

/* Exit events from the domain drivers that have them (libvirt); the others are polled. */
static void domain_watch_start(struct node_agent *a, int i)
{
	const struct driver *d = drivers[i];
	char why[256] = "";
	int fd;
	if (!d->watch || !json_object_get(a->drivers_info, d->name))
		return;
	if (d->watch(&a->drv_opts, &fd, why, sizeof why) < 0) {
		log_info("driver %s: no exit events (%s): domains are polled every %.0f s", d->name, why,
		         STATUS_INTERVAL_S);
		return;
	}
	a->watch_evs[i] = event_new(a->base, fd, EV_READ | EV_PERSIST, on_domain_events, a);
	event_add(a->watch_evs[i], NULL);
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
	struct ninst *ni = j->ni;
	j->rc = ni->drv->stop ? ni->drv->stop(&ni->agent->drv_opts, &ni->h, j->force) : drv_signal(ni->drv, &ni->h, j->force);
}

static void stop_done(void *arg)
{
	struct stop_job *j = arg;
	struct ninst *ni = j->ni;
	ni->stop_in_progress = false;
	if (j->rc < 0 && j->rc != -ESRCH)
		log_warnx("instance %s: %s stop: %s", ni->id, j->force ? "forced" : "gentle", strerror(-j->rc));
	if (ni->exit_pending && !ni->purged) {
		ni->exit_pending = false;
		on_process_exit(-1, 0, ni);
	}
	if (!ni->purged && j->rc == 0)
		status_check(ni); /* a domain just stopped: say so now, not at the next tick */
	ninst_job_finished(ni);
	free(j);
}

/* Gentle stops can block (QMP, xl shutdown): a worker does them. */
static void stop_call(struct ninst *ni, bool force)
{
	struct stop_job *j = calloc(1, sizeof *j);
	if (!j)
		fatal("calloc");
	*j = (struct stop_job){.ni = ni, .force = force};
	ni->stop_in_progress = true;
	ninst_submit(ni, stop_work, stop_done, j);
}

static void on_kill_timer(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct ninst *ni = arg;
	if (ni->phase != NI_RUNNING)
		return;
	log_info("instance %s did not stop within %.1f s: forcing", ni->id, ni->agent->opts.stop_grace_s);
	if (ni->drv->stop)
		stop_call(ni, true);
	else
		drv_signal(ni->drv, &ni->h, true); /* SIGKILL: instant */
}

static void ninst_stop(struct ninst *ni)
{
	struct timeval tv = clock_timeval(ni->agent->opts.stop_grace_s);
	bool again = ni->stop_requested;
	ni->stop_requested = true;
	if (ni->phase != NI_RUNNING || again)
		return; /* preparing or spawning: stopped when the spawn returns; ended: nothing to do */
	stop_call(ni, false);
	evtimer_add(ni->kill_timer, &tv);
}

static void watch_exit(struct ninst *ni)
{
	struct node_agent *a = ni->agent;
	if (ni->h.pidfd >= 0) {
		ni->exit_ev = event_new(a->base, ni->h.pidfd, EV_READ, on_process_exit, ni);
		event_add(ni->exit_ev, NULL);
	}
	ni->kill_timer = evtimer_new(a->base, on_kill_timer, ni);
	ni->phase = NI_RUNNING;
	/* an exit event that came before this point was not for a running instance: ask once */
	if (drv_watching(ni->drv))
		status_check(ni);
}

/* ---- boot: the ready marker on the serial log ---- */

static const char *ready_marker(const struct ninst *ni)
{
	return json_string_value(json_object_get(json_object_get(ni->spec, "ready"), "serial"));
}

/* Reads what the guest wrote since last time and looks for the marker, keeping the tail
 * so a marker split across two reads is still found. */
static bool serial_scan(struct ninst *ni)
{
	const char *marker = ready_marker(ni);
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

static void boot_seen(struct ninst *ni)
{
	ni->timing.boot_us = clock_mono_us() - ni->spawned_us;
	ni->ready = true;
	boot_watch_stop(ni);
	record_write(ni, "running");
	agent_report(ni->agent, ni, INST_RUNNING);
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

static void on_inotify(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct node_agent *a = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(a->inotify_fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			const char *k;
			void *v;
			p += sizeof *ev + ev->len;
			if (ev->len == 0 || strcmp(ev->name, "serial.log") != 0)
				continue;
			for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);) {
				struct ninst *ni = v;
				if (ni->watch != ev->wd || ni->phase != NI_RUNNING || ni->ready)
					continue;
				if (ev->mask & (IN_CREATE | IN_MOVED_TO))
					serial_reopen(ni);
				if (serial_scan(ni))
					boot_seen(ni);
				break;
			}
		}
	}
}

/* Watches the instance dir rather than the file: a toolstack may replace the file. */
static void boot_watch_start(struct ninst *ni)
{
	struct node_agent *a = ni->agent;
	if (!ready_marker(ni))
		return;
	ni->watch = inotify_add_watch(a->inotify_fd, ni->dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO);
	if (ni->watch < 0) {
		log_warn("instance %s: cannot watch %s for the ready marker", ni->id, ni->dir);
		return;
	}
	serial_reopen(ni); /* it may have been replaced while the guest started */
	if (serial_scan(ni)) /* it may have been written before the watch existed */
		boot_seen(ni);
}

static void boot_watch_stop(struct ninst *ni)
{
	if (ni->watch >= 0 && ni->agent->inotify_fd >= 0)
		inotify_rm_watch(ni->agent->inotify_fd, ni->watch);
	ni->watch = -1;
	close_fd(&ni->serial_fd);
}

/* ---- network + spawn, on a worker ---- */

static int network_setup(struct ninst *ni, struct drv_start_request *r, char *nspath, size_t nslen)
{
	const char *bridge = json_string_value(json_object_get(json_object_get(ni->spec, "network"), "bridge"));
	const char *driver = ni->drv->name;
	int rc = 0;
	if (!bridge)
		return 0;
	if (strcmp(driver, "qemu") == 0) {
		snprintf(ni->tap, sizeof ni->tap, "mv%.12s", ni->id);
		rc = netdev_tap_create(ni->tap, bridge);
		r->tap = ni->tap;
	} else if (strcmp(driver, "exec") == 0) {
		snprintf(ni->netns, sizeof ni->netns, "mv-%.12s", ni->id);
		snprintf(ni->tap, sizeof ni->tap, "mv%.12s", ni->id);
		if ((rc = netdev_netns_create(ni->netns)) == 0)
			rc = netdev_veth_create(ni->tap, bridge, ni->netns, "eth0");
		netdev_netns_path(ni->netns, nspath, (int)nslen);
		r->netns = nspath;
	} else {
		r->bridge = bridge; /* libvirt and xl attach the guest themselves */
	}
	if (rc < 0)
		snprintf(ni->start_err, sizeof ni->start_err, "network: cannot attach to bridge %s: %s", bridge,
		         strerror(-rc));
	return rc;
}

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
	if (json_object_get(ni->spec, "boot")) {
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

static void start_work(void *arg)
{
	struct ninst *ni = arg;
	const json_t *boot = json_object_get(ni->spec, "boot"), *res = json_object_get(ni->spec, "resources");
	char nspath[64] = "";
	int64_t t0, t1;

	/* prepare: the instance's files, here on the worker since file creation can take
	 * milliseconds on a loaded disk; the wait for a free worker counts as prepare too */
	if ((ni->start_rc = prepare_dir(ni)) < 0)
		return;
	struct drv_start_request r = {
		.instance_id = ni->id, .name = ni->name, .spec = ni->spec, .dir = ni->dir,
		.stdout_fd = ni->stdout_fd, .stderr_fd = ni->stderr_fd,
		.kernel = ni->kernel[0] ? ni->kernel : NULL, .initrd = ni->initrd[0] ? ni->initrd : NULL,
		.cmdline = json_string_value(json_object_get(boot, "cmdline")),
		.serial_log = ni->serial_log[0] ? ni->serial_log : NULL,
		.vcpus = json_number_value(json_object_get(res, "vcpus")),
		.memory_mb = json_integer_value(json_object_get(res, "memory_mb")),
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
	record_write(ni, "spawning");
	ni->start_rc = ni->drv->start(&ni->agent->drv_opts, &r, &ni->h, ni->start_err, sizeof ni->start_err);
	ni->spawned_us = clock_mono_us();
	ni->timing.spawn_us = ni->spawned_us - t1;
	if (ni->start_rc == 0)
		record_write(ni, "running");
}

static void start_done(void *arg)
{
	struct ninst *ni = arg;
	struct node_agent *a = ni->agent;
	if (ninst_job_finished(ni))
		return; /* cannot happen: only ended instances are purged */
	close_fd(&ni->stdout_fd);
	close_fd(&ni->stderr_fd);
	if (ni->start_rc < 0) {
		fail(ni, "%s", ni->start_err);
		return;
	}
	watch_exit(ni);
	agent_report(a, ni, INST_RUNNING);
	boot_watch_start(ni);
	if (ni->stop_requested || (a->on_shutdown && a->opts.stop_instances_on_exit)) {
		ni->stop_requested = false;
		ninst_stop(ni);
	}
}

static void spawn(struct ninst *ni)
{
	ni->phase = NI_SPAWNING;
	ninst_submit(ni, start_work, start_done, ni);
}

/* ---- prepare ---- */

struct blob_store_job {
	struct ninst *ni;
	char digest[DIGEST_LEN + 1];
	char path[PATH_MAX];
	struct evbuffer *data;
	int rc;
};

static void blob_store_work(void *arg)
{
	struct blob_store_job *j = arg;
	size_t len = evbuffer_get_length(j->data);
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", j->path);
	*strrchr(dir, '/') = '\0';
	if ((j->rc = fs_mkdir_p(dir, 0750)) == 0)
		j->rc = imagecache_store(j->digest, evbuffer_pullup(j->data, (ev_ssize_t)len), len, j->path);
}

static void blob_ready(struct ninst *ni)
{
	if (--ni->pending_fetches > 0 || ni->phase != NI_PREPARING)
		return;
	if (ni->prepare_failed) {
		ninst_end(ni, INST_FAILED);
		return;
	}
	spawn(ni);
}

static void blob_store_done(void *arg)
{
	struct blob_store_job *j = arg;
	if (j->rc < 0 && !j->ni->prepare_failed) {
		j->ni->prepare_failed = true;
		snprintf(j->ni->error, sizeof j->ni->error, "image blob %.80s: %s", j->digest,
		         j->rc == -EBADMSG ? "digest mismatch, the fetched bytes are not the image" : strerror(-j->rc));
	}
	evbuffer_free(j->data);
	if (!ninst_job_finished(j->ni))
		blob_ready(j->ni);
	free(j);
}

static void on_blob_fetched(struct node_agent *a, struct ninst *ni, const char *digest, struct evbuffer *body,
                            const char *why)
{
	struct blob_store_job *j;
	if (!body) {
		if (!ni->prepare_failed)
			snprintf(ni->error, sizeof ni->error, "cannot fetch image blob %.80s: %s", digest, why);
		ni->prepare_failed = true;
		blob_ready(ni);
		return;
	}
	if (!(j = calloc(1, sizeof *j)) || !(j->data = evbuffer_new()))
		fatal("alloc");
	j->ni = ni;
	snprintf(j->digest, sizeof j->digest, "%s", digest);
	imagecache_lookup(a, ni, digest, j->path, sizeof j->path);
	evbuffer_add_buffer(j->data, body); /* take the bytes: the request is freed after this */
	ninst_submit(ni, blob_store_work, blob_store_done, j);
}

/* Resolves one blob of the image: a cache hit fills path now, a miss starts a fetch. */
static int need_blob(struct ninst *ni, const json_t *digest, char *path, size_t len)
{
	const char *d = json_string_value(digest);
	if (!d)
		return 0;
	if (!digest_valid(d)) {
		snprintf(ni->error, sizeof ni->error, "the image digest %.80s is not valid", d);
		return -EINVAL;
	}
	if (imagecache_lookup(ni->agent, ni, d, path, len))
		return 0;
	ni->timing.image_cache = IMAGE_MISS;
	ni->pending_fetches++;
	agent_fetch_blob(ni->agent, ni, d, on_blob_fetched);
	return 0;
}

void instance_start(struct node_agent *a, const char *id, const json_t *spec)
{
	struct ninst *ni = hmap_get(&a->instances, id);
	const json_t *boot;

	if (ni) { /* sent again after a reconnect: say where it stands */
		if (ni->phase == NI_RUNNING)
			agent_report(a, ni, INST_RUNNING);
		else if (ni->phase == NI_ENDED)
			agent_report(a, ni, ni->final_state);
		return;
	}
	if (!json_is_object(spec) || !json_string_value(json_object_get(spec, "driver"))) {
		log_warnx("assignment for %s has no usable spec; ignored", id);
		return;
	}
	ni = ninst_new(a, id, spec);
	ni->received_us = clock_mono_us();
	ni->phase = NI_PREPARING;
	if (!ni->drv || !json_object_get(a->drivers_info, ni->drv->name)) {
		fail(ni, "driver %s is not available on this node", json_string_value(json_object_get(spec, "driver")));
		return;
	}
	boot = json_object_get(spec, "boot");
	if (boot) {
		ni->timing.image_cache = IMAGE_HIT;
		ni->pending_fetches = 1; /* held until both blobs are resolved */
		if (need_blob(ni, json_object_get(boot, "kernel"), ni->kernel, sizeof ni->kernel) < 0 ||
		    need_blob(ni, json_object_get(boot, "initrd"), ni->initrd, sizeof ni->initrd) < 0)
			ni->prepare_failed = true;
		blob_ready(ni);
		return;
	}
	spawn(ni);
}

void instance_stop(struct node_agent *a, const char *id)
{
	struct ninst *ni = hmap_get(&a->instances, id);
	if (!ni) {
		agent_report_unknown_stopped(a, id);
		return;
	}
	if (ni->phase == NI_ENDED)
		agent_report(a, ni, ni->final_state);
	else
		ninst_stop(ni);
}

void instance_purge(struct node_agent *a, const char *id)
{
	struct ninst *ni = hmap_get(&a->instances, id);
	char dir[PATH_MAX];
	int rc;
	if (ni && ni->phase != NI_ENDED)
		return; /* never remove the files of something alive */
	snprintf(dir, sizeof dir, "%.4000s/instances/%s", a->run_dir, id);
	if ((rc = fs_remove_tree(dir)) < 0)
		log_warnx("cannot remove %s: %s", dir, strerror(-rc));
	if (ni) {
		hmap_remove(&a->instances, id);
		ni->purged = true;
		if (ni->jobs == 0)
			ninst_free(ni);
	}
}

/* ---- start-up, recovery, shutdown ---- */

int instances_init(struct node_agent *a, char *err, size_t errlen)
{
	struct timeval tv = clock_timeval(STATUS_INTERVAL_S);
	char dir[PATH_MAX];
	int rc;
	snprintf(dir, sizeof dir, "%.4000s/images", a->opts.data_dir);
	if ((rc = fs_mkdir_p(dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create the image cache %s: %s", dir, strerror(-rc));
		return -1;
	}
	a->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (a->inotify_fd < 0) {
		snprintf(err, errlen, "inotify_init1: %s", strerror(errno));
		return -1;
	}
	a->inotify_ev = event_new(a->base, a->inotify_fd, EV_READ | EV_PERSIST, on_inotify, a);
	event_add(a->inotify_ev, NULL);
	a->status_timer = event_new(a->base, -1, EV_PERSIST, on_status_timer, a);
	event_add(a->status_timer, &tv);
	for (int i = 0; drivers[i] && i < NODE_WATCH_MAX; i++)
		domain_watch_start(a, i);
	return 0;
}

/* Re-attaches to the instances a previous run of this node started. */
static void recover_one(struct node_agent *a, const char *id, json_t *rec)
{
	const char *state = json_string_value(json_object_get(rec, "state"));
	struct ninst *ni = ninst_new(a, id, json_object_get(rec, "spec"));
	ni->h.pid = (pid_t)json_integer_value(json_object_get(rec, "pid"));
	ni->h.start_time = (unsigned long long)json_integer_value(json_object_get(rec, "start_time"));
	snprintf(ni->h.domain, sizeof ni->h.domain, "%s", json_string_value(json_object_get(rec, "domain")) ?: "");
	snprintf(ni->h.control, sizeof ni->h.control, "%s", json_string_value(json_object_get(rec, "control")) ?: "");
	snprintf(ni->tap, sizeof ni->tap, "%s", json_string_value(json_object_get(rec, "tap")) ?: "");
	snprintf(ni->netns, sizeof ni->netns, "%s", json_string_value(json_object_get(rec, "netns")) ?: "");
	ni->ready = json_is_true(json_object_get(rec, "ready"));
	if (json_is_integer(json_object_get(rec, "exit_code"))) {
		ni->has_exit_code = true;
		ni->exit_code = (int)json_integer_value(json_object_get(rec, "exit_code"));
	}
	snprintf(ni->error, sizeof ni->error, "%s", json_string_value(json_object_get(rec, "error")) ?: "");
	if (strcmp(state, "spawning") == 0) {
		/* the node died while starting it: adopt what was started, or forget it all and
		 * let the core's repeated start begin afresh */
		if (ni->drv && ni->drv->adopt && ni->drv->adopt(&a->drv_opts, id, &ni->h) == 0) {
			watch_exit(ni);
			record_write(ni, "running");
			agent_report(a, ni, INST_RUNNING);
			log_info("instance %s was started just before the node stopped: adopted", ni->id);
		} else {
			hmap_remove(&a->instances, ni->id);
			if (fs_remove_tree(ni->dir) < 0)
				log_warnx("cannot remove %s", ni->dir);
			ninst_free(ni);
		}
		return;
	}
	if (strcmp(state, "running") != 0) {
		int st = inst_state_parse(state);
		ni->phase = NI_ENDED;
		ni->final_state = st >= 0 ? (enum inst_state)st : INST_EXITED;
		/* the core may not have heard it before we went away; a repeat is harmless */
		agent_report(a, ni, ni->final_state);
	} else if (ni->drv && drv_recover(ni->drv, &ni->h) == 0) {
		watch_exit(ni);
		log_info("instance %s is still running: re-attached", ni->id);
	} else {
		ended(ni, false, 0, "ended while the node was not running (exit code unknown)");
	}
}

void instances_recover(struct node_agent *a)
{
	char dirpath[PATH_MAX];
	DIR *d;
	struct dirent *e;
	snprintf(dirpath, sizeof dirpath, "%.4000s/instances", a->run_dir);
	if (!(d = opendir(dirpath)))
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX + 300], *text;
		json_t *rec;
		if (strlen(e->d_name) != MV_ID_LEN || hmap_get(&a->instances, e->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s/record.json", dirpath, e->d_name);
		if (fs_read_file(path, 1 << 20, &text, NULL) < 0)
			continue;
		rec = json_loads(text, 0, NULL);
		free(text);
		if (json_string_value(json_object_get(rec, "state")) && json_is_object(json_object_get(rec, "spec")))
			recover_one(a, e->d_name, rec);
		else
			log_warnx("instance record %s is unreadable; left alone", path);
		json_decref(rec);
	}
	closedir(d);
}

bool instances_alive(struct node_agent *a)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);)
		if (((struct ninst *)v)->phase != NI_ENDED)
			return true;
	return false;
}

json_t *instances_alive_ids(struct node_agent *a)
{
	json_t *ids = json_array();
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);)
		if (((struct ninst *)v)->phase != NI_ENDED)
			json_array_append_new(ids, json_string(k));
	return ids;
}

void instances_stop_all(struct node_agent *a)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);)
		if (((struct ninst *)v)->phase == NI_RUNNING)
			ninst_stop(v);
}

void instances_kill_all(struct node_agent *a)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);) {
		struct ninst *ni = v;
		if (ni->phase != NI_RUNNING)
			continue;
		log_warnx("instance %s still alive at shutdown: forcing it", ni->id);
		if (ni->drv->stop)
			ni->drv->stop(&a->drv_opts, &ni->h, true); /* the loop is ending: blocking is fine */
		else
			drv_signal(ni->drv, &ni->h, true);
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

void instances_free(struct node_agent *a)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&a->instances, &i, &k, &v);) {
		struct ninst *ni = v;
		if (ni->phase == NI_RUNNING && a->opts.stop_instances_on_exit) {
			reap_killed(ni);
			network_teardown(ni);
		}
		ninst_free(ni);
	}
	hmap_free(&a->instances);
	if (a->status_timer)
		event_free(a->status_timer);
	for (int i = 0; drivers[i] && i < NODE_WATCH_MAX; i++) {
		if (a->watch_evs[i]) {
			event_free(a->watch_evs[i]);
			drivers[i]->unwatch();
		}
	}
	if (a->inotify_ev)
		event_free(a->inotify_ev);
	close_fd(&a->inotify_fd);
}
