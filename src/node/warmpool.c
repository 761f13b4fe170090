/* warmpool — see warmpool.h. A guest's life here:
 *   FETCHING  image blobs on their way to the cache
 *   BOOTING   the driver's start on a worker, then the serial log watched for the marker
 *   PAUSING   the driver's pause on a worker
 *   WARM      paused, ready to be taken
 * and its end: taken (handed over whole), or killed and reaped (its pidfd became readable),
 * its dir removed. A guest whose pool went away while a job of it was on a worker is
 * killed when the job returns (doomed). */
#include "node/warmpool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "drivers/drivers.h"
#include "drivers/proc.h"

#define POOL_RECORD "pool.json"
#define TAKEN_RECORD "record.json" /* instrec's: a guest being taken has it already */

enum wg_state { WG_FETCHING, WG_BOOTING, WG_PAUSING, WG_WARM };
static const char *const wg_state_names[] = {"fetching", "booting", "pausing", "warm"};

struct wpool;

struct wguest {
	struct wpool *pool;
	struct warm_pools *wp;
	char id[MV_ID_LEN + 1];
	enum wg_state state;
	bool started;            /* the driver's start returned a handle */
	bool doomed;             /* kill it when its job returns */
	bool in_job;             /* a worker job or fetch points at it */
	int pending_fetches;
	struct drv_handle h;
	int control_fd;          /* the pause's QMP connection, kept for the take's resume; -1 */
	struct event *exit_ev, *boot_timer;
	int watch, serial_fd, stdout_fd, stderr_fd;
	char carry[MV_READY_PATTERN_MAX];
	size_t carry_len;
	char dir[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX], serial_log[PATH_MAX];
	int rc;
	char err[256];
	struct wguest *next;
};

struct wpool {
	char name[MV_NAME_MAX + 1];
	struct inst_spec spec;   /* stored form */
	json_t *spec_json;       /* as the core sent it: compared to tell a changed pool */
	const struct driver *drv;
	int size;                /* 0: being emptied (removed, or replaced by a changed one) */
	struct wguest *guests;
	struct wpool *next;
};

struct warm_pools {
	struct warm_env env;
	struct wpool *pools;
	int booting;             /* guests FETCHING, BOOTING or PAUSING on this node */
	int inotify_fd;
	struct event *inotify_ev, *retry_timer;
	int64_t retry_after_us;  /* no new boot before (a boot failed) */
};

static void refill(struct warm_pools *wp);
static void guest_end(struct wguest *g, const char *why);

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static bool counts_as_booting(enum wg_state s) { return s != WG_WARM; }

static void stock_changed(struct warm_pools *wp)
{
	if (wp->env.stock_changed)
		wp->env.stock_changed(wp->env.arg);
}

/* ---- records ---- */

static void record_write(struct wguest *g)
{
	char path[PATH_MAX + 16];
	json_t *j = json_pack("{s:s, s:O, s:s, s:I, s:I, s:s}", "pool", g->pool->name, "spec", g->pool->spec_json,
	                      "state", wg_state_names[g->state], "pid", (json_int_t)g->h.pid, "start_time",
	                      (json_int_t)g->h.start_time, "control", g->h.control);
	char *text = json_dumps(j, JSON_COMPACT);
	int rc;
	json_decref(j);
	snprintf(path, sizeof path, "%s/" POOL_RECORD, g->dir);
	if (!text || (rc = fs_write_atomic(path, text, strlen(text), false)) < 0)
		log_warnx("pool %s: cannot write the record of guest %s", g->pool->name, g->id);
	free(text);
}

/* ---- guests: creation and end ---- */

static struct wguest *guest_new(struct warm_pools *wp, struct wpool *pl, enum wg_state state)
{
	struct wguest *g = calloc(1, sizeof *g);
	if (!g)
		fatal("calloc");
	g->wp = wp;
	g->pool = pl;
	g->state = state;
	g->h.pidfd = g->control_fd = g->watch = g->serial_fd = g->stdout_fd = g->stderr_fd = -1;
	id_generate(g->id);
	if (snprintf(g->dir, sizeof g->dir, "%.4000s/pool/%s", wp->env.run_dir, g->id) >= (int)sizeof g->dir)
		fatalx("pool guest dir path too long");
	g->next = pl->guests;
	pl->guests = g;
	if (counts_as_booting(state))
		wp->booting++;
	return g;
}

static void unlink_guest(struct wguest *g)
{
	struct wguest **pp = &g->pool->guests;
	while (*pp && *pp != g)
		pp = &(*pp)->next;
	if (*pp)
		*pp = g->next;
	if (counts_as_booting(g->state))
		g->wp->booting--;
}

static void watch_stop(struct wguest *g)
{
	if (g->watch >= 0)
		inotify_rm_watch(g->wp->inotify_fd, g->watch);
	g->watch = -1;
	close_fd(&g->serial_fd);
	if (g->boot_timer) {
		event_free(g->boot_timer);
		g->boot_timer = NULL;
	}
}

static void guest_free(struct wguest *g)
{
	watch_stop(g);
	if (g->exit_ev)
		event_free(g->exit_ev);
	close_fd(&g->stdout_fd);
	close_fd(&g->stderr_fd);
	close_fd(&g->control_fd);
	close_fd(&g->h.pidfd);
	free(g);
}

static void pool_free(struct wpool *pl)
{
	spec_free(&pl->spec);
	json_decref(pl->spec_json);
	free(pl);
}

/* Pools being emptied go once their last guest has. */
static void pools_sweep(struct warm_pools *wp)
{
	for (struct wpool **pp = &wp->pools; *pp;) {
		struct wpool *pl = *pp;
		if (pl->size == 0 && !pl->guests) {
			*pp = pl->next;
			pool_free(pl);
		} else {
			pp = &pl->next;
		}
	}
}

/* A guest that has no process (any more): out of its pool, its dir removed. */
static void guest_drop(struct wguest *g)
{
	int rc;
	unlink_guest(g);
	if ((rc = fs_remove_tree(g->dir)) < 0)
		log_warnx("cannot remove %s: %s", g->dir, strerror(-rc));
	guest_free(g);
}

/* Kills a guest that has a process: its exit event reaps and drops it. */
static void guest_kill(struct wguest *g)
{
	int rc;
	if ((rc = drv_signal(g->pool->drv, &g->h, SIGKILL)) < 0 && rc != -ESRCH)
		log_warnx("pool %s: cannot kill guest %s: %s", g->pool->name, g->id, strerror(-rc));
}

/* The guest cannot be (or stay) warm: killed when it has a process, else dropped. */
static void guest_end(struct wguest *g, const char *why)
{
	struct warm_pools *wp = g->wp;
	if (why)
		log_warnx("pool %s: guest %s dropped: %s", g->pool->name, g->id, why);
	watch_stop(g);
	if (g->in_job) {
		g->doomed = true;
		return;
	}
	if (g->started && g->h.pidfd >= 0) {
		guest_kill(g);
		return;
	}
	guest_drop(g);
	pools_sweep(wp);
	refill(wp);
	stock_changed(wp);
}

/* Its pidfd became readable: it died (kill -9), or we killed it. */
static void on_guest_exit(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct wguest *g = arg;
	struct warm_pools *wp = g->wp;
	int code = 0;
	bool known = false;
	int rc = g->pool->drv->reap(&g->h, &code, &known);
	if (rc == -EAGAIN)
		return;
	if (g->pool->size > 0 && !g->doomed)
		log_warnx("pool %s: guest %s (pid %d) ended while %s; replacing it", g->pool->name, g->id, (int)g->h.pid,
		          wg_state_names[g->state]);
	if (g->in_job) { /* its job returns and finds it ended */
		g->doomed = true;
		g->started = false;
		event_del(g->exit_ev);
		return;
	}
	guest_drop(g);
	pools_sweep(wp);
	refill(wp);
	stock_changed(wp);
}

static void watch_exit(struct wguest *g)
{
	if (g->h.pidfd < 0)
		return;
	g->exit_ev = event_new(g->wp->env.base, g->h.pidfd, EV_READ, on_guest_exit, g);
	event_add(g->exit_ev, NULL);
}

/* ---- pausing ---- */

static void pause_work(void *arg)
{
	struct wguest *g = arg;
	close_fd(&g->control_fd); /* a re-pause (recovery) opens a new one */
	g->rc = drv_pause(g->pool->drv, g->wp->env.drv_opts, &g->h, &g->control_fd, g->err, sizeof g->err);
}

static void pause_done(void *arg)
{
	struct wguest *g = arg;
	struct warm_pools *wp = g->wp;
	g->in_job = false;
	if (g->doomed || g->pool->size == 0) {
		guest_end(g, NULL);
		return;
	}
	if (g->rc < 0) {
		wp->retry_after_us = clock_mono_us() + (int64_t)(WARM_RETRY_S * 1e6);
		guest_end(g, g->err);
		return;
	}
	g->state = WG_WARM;
	wp->booting--;
	record_write(g);
	refill(wp);
	stock_changed(wp);
}

/* Booted (its marker seen, or no marker asked): paused on a worker. */
static void guest_booted(struct wguest *g)
{
	watch_stop(g);
	g->state = WG_PAUSING;
	g->in_job = true;
	worker_submit(g->wp->env.workers, pause_work, pause_done, g);
}

/* ---- booting: the serial log ---- */

static bool serial_scan(struct wguest *g)
{
	const char *marker = g->pool->spec.ready_serial;
	size_t mlen = strlen(marker);
	char buf[4096 + MV_READY_PATTERN_MAX];
	ssize_t n;
	if (g->serial_fd < 0)
		return false;
	while ((n = read(g->serial_fd, buf + g->carry_len, 4096)) > 0) {
		size_t total;
		memcpy(buf, g->carry, g->carry_len);
		total = g->carry_len + (size_t)n;
		if (memmem(buf, total, marker, mlen))
			return true;
		g->carry_len = total < mlen - 1 ? total : mlen - 1;
		memcpy(g->carry, buf + total - g->carry_len, g->carry_len);
	}
	return false;
}

static void on_inotify(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct warm_pools *wp = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(wp->inotify_fd, buf, sizeof buf)) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			for (struct wpool *pl = wp->pools; pl; pl = pl->next)
				for (struct wguest *g = pl->guests; g; g = g->next)
					if (g->watch == ev->wd && g->state == WG_BOOTING && serial_scan(g)) {
						guest_booted(g);
						goto next_event; /* the lists may have changed */
					}
		next_event:;
		}
	}
}

static void on_boot_timeout(UNUSED evutil_socket_t fd, UNUSED short what, void *arg)
{
	struct wguest *g = arg;
	g->wp->retry_after_us = clock_mono_us() + (int64_t)(WARM_RETRY_S * 1e6);
	guest_end(g, "its ready marker did not appear in time");
}

static void boot_watch(struct wguest *g)
{
	struct timeval tv = clock_timeval(WARM_BOOT_TIMEOUT_S);
	if (!g->pool->spec.ready_serial[0]) { /* no marker: warm as soon as it runs */
		guest_booted(g);
		return;
	}
	g->watch = inotify_add_watch(g->wp->inotify_fd, g->serial_log, IN_MODIFY);
	g->serial_fd = open(g->serial_log, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	g->boot_timer = evtimer_new(g->wp->env.base, on_boot_timeout, g);
	evtimer_add(g->boot_timer, &tv);
	if (serial_scan(g)) /* written before the watch existed */
		guest_booted(g);
}

/* ---- booting: the start ---- */

static int open_file(const char *dir, const char *name, int flags)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return open(path, flags | O_CLOEXEC, 0640);
}

static void start_work(void *arg)
{
	struct wguest *g = arg;
	const struct inst_spec *s = &g->pool->spec;
	int fd;
	if ((g->rc = fs_mkdir_p(g->dir, 0750)) < 0) {
		snprintf(g->err, sizeof g->err, "cannot create %.200s: %s", g->dir, strerror(-g->rc));
		return;
	}
	g->stdout_fd = open_file(g->dir, "stdout.log", O_WRONLY | O_CREAT | O_APPEND);
	g->stderr_fd = open_file(g->dir, "stderr.log", O_WRONLY | O_CREAT | O_APPEND);
	snprintf(g->serial_log, sizeof g->serial_log, "%.4000s/serial.log", g->dir);
	fd = open(g->serial_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (g->stdout_fd < 0 || g->stderr_fd < 0 || fd < 0) {
		g->rc = -EIO;
		snprintf(g->err, sizeof g->err, "cannot create its logs: %s", strerror(errno));
		close_fd(&fd);
		return;
	}
	close(fd);
	struct drv_start_request r = {
		.instance_id = g->id, .name = g->pool->name, .config = s->config, .dir = g->dir,
		.stdout_fd = g->stdout_fd, .stderr_fd = g->stderr_fd,
		.kernel = g->kernel, .initrd = g->initrd[0] ? g->initrd : NULL, .cmdline = s->boot.cmdline,
		.xen_type = s->boot.xen_type, .serial_log = g->serial_log,
		.vcpus = (double)s->vcpus_milli / 1000.0, .memory_mb = s->memory_mb,
	};
	g->rc = g->pool->drv->start(g->wp->env.drv_opts, &r, &g->h, g->err, sizeof g->err);
}

static void start_done(void *arg)
{
	struct wguest *g = arg;
	struct warm_pools *wp = g->wp;
	g->in_job = false;
	close_fd(&g->stdout_fd);
	close_fd(&g->stderr_fd);
	if (g->rc < 0) {
		wp->retry_after_us = clock_mono_us() + (int64_t)(WARM_RETRY_S * 1e6);
		guest_end(g, g->err);
		return;
	}
	g->started = true;
	record_write(g);
	watch_exit(g);
	if (g->doomed || g->pool->size == 0) {
		guest_end(g, NULL);
		return;
	}
	boot_watch(g);
}

static void blobs_ready(struct wguest *g)
{
	g->state = WG_BOOTING;
	g->in_job = true;
	worker_submit(g->wp->env.workers, start_work, start_done, g);
}

static void on_blob(void *arg, int rc, const char *why)
{
	struct wguest *g = arg;
	if (rc < 0) {
		snprintf(g->err, sizeof g->err, "%s", why ? why : "image blob fetch failed");
		g->rc = rc;
	}
	if (--g->pending_fetches > 0)
		return;
	g->in_job = false;
	if (g->rc < 0 || g->doomed || g->pool->size == 0) {
		if (g->rc < 0)
			g->wp->retry_after_us = clock_mono_us() + (int64_t)(WARM_RETRY_S * 1e6);
		guest_end(g, g->rc < 0 ? g->err : NULL);
		return;
	}
	blobs_ready(g);
}

static void need_blob(struct wguest *g, const char *digest, char *path, size_t len)
{
	if (!digest[0] || imagecache_lookup(g->wp->env.cache, g->dir, digest, path, len))
		return;
	g->pending_fetches++;
	g->in_job = true;
	imagecache_fetch(g->wp->env.cache, digest, path, on_blob, g);
}

static void guest_boot(struct warm_pools *wp, struct wpool *pl)
{
	struct wguest *g = guest_new(wp, pl, WG_FETCHING);
	need_blob(g, pl->spec.boot.kernel, g->kernel, sizeof g->kernel);
	need_blob(g, pl->spec.boot.initrd, g->initrd, sizeof g->initrd);
	if (g->pending_fetches == 0)
		blobs_ready(g);
}

/* ---- refilling ---- */

/* Its guests that stay (not being killed). */
static int pool_count(const struct wpool *pl)
{
	int n = 0;
	for (const struct wguest *g = pl->guests; g; g = g->next)
		n += !g->doomed;
	return n;
}

static void on_retry(UNUSED evutil_socket_t fd, UNUSED short what, void *arg) { refill(arg); }

/* Boots guests for pools under their size, WARM_BOOTS_MAX at a time on the node. */
static void refill(struct warm_pools *wp)
{
	int64_t now = clock_mono_us();
	if (now < wp->retry_after_us) {
		struct timeval tv = clock_timeval((double)(wp->retry_after_us - now) / 1e6);
		evtimer_add(wp->retry_timer, &tv);
		return;
	}
	for (struct wpool *pl = wp->pools; pl; pl = pl->next) {
		int have = pool_count(pl);
		/* too many (the share shrank): the warm ones beyond go */
		for (struct wguest *g = pl->guests, *next; g && have > pl->size; g = next) {
			next = g->next;
			if (g->state == WG_WARM && !g->doomed) {
				g->doomed = true;
				guest_kill(g);
				have--;
			}
		}
		for (; have < pl->size && wp->booting < WARM_BOOTS_MAX; have++)
			guest_boot(wp, pl);
	}
}

/* ---- what the core wants ---- */

static struct wpool *pool_find(struct warm_pools *wp, const char *name)
{
	for (struct wpool *pl = wp->pools; pl; pl = pl->next)
		if (pl->size > 0 || pl->guests) /* a live one, or one kept from a recovery */
			if (strcmp(pl->name, name) == 0 && pl->spec_json)
				return pl;
	return NULL;
}

/* A pool the core sent, checked: NULL (and logged) when this node cannot keep it. */
static struct wpool *pool_new(struct warm_pools *wp, const char *name, const json_t *spec)
{
	struct wpool *pl = calloc(1, sizeof *pl);
	struct mv_error err;
	if (!pl)
		fatal("calloc");
	if (!name_valid(name) || drv_spec_parse(&pl->spec, spec, SPEC_STORED, &err) < 0) {
		log_warnx("pool %.64s from the core is not kept: %s", name, name_valid(name) ? err.message : "bad name");
		free(pl);
		return NULL;
	}
	pl->drv = driver_find(pl->spec.driver);
	if (!pl->drv || !drv_can_pool(pl->drv) || !json_object_get(wp->env.drivers_info, pl->drv->name) ||
	    !pl->spec.has_boot) {
		log_warnx("pool %s is not kept: driver %s cannot keep warm guests on this node", name, pl->spec.driver);
		spec_free(&pl->spec);
		free(pl);
		return NULL;
	}
	snprintf(pl->name, sizeof pl->name, "%s", name);
	pl->spec_json = json_deep_copy(spec);
	pl->next = wp->pools;
	wp->pools = pl;
	return pl;
}

void warm_pools_set(struct warm_pools *wp, const json_t *list)
{
	const json_t *e;
	size_t i;
	/* every pool is emptied unless the list keeps it */
	for (struct wpool *pl = wp->pools; pl; pl = pl->next)
		pl->size = -pl->size - 1; /* -1 - size: not yet seen in the list */
	json_array_foreach(list, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const json_t *spec = json_object_get(e, "spec"), *size = json_object_get(e, "size");
		struct wpool *pl;
		if (!name || !json_is_integer(size) || json_integer_value(size) < 0 || json_integer_value(size) > 4096)
			continue;
		for (pl = wp->pools; pl; pl = pl->next)
			if (pl->size < 0 && strcmp(pl->name, name) == 0 && json_equal(pl->spec_json, spec))
				break;
		if (!pl && !(pl = pool_new(wp, name, spec)))
			continue;
		pl->size = (int)json_integer_value(size);
	}
	for (struct wpool *pl = wp->pools; pl; pl = pl->next) {
		if (pl->size >= 0)
			continue;
		pl->size = 0; /* gone, or changed: its guests go */
		for (struct wguest *g = pl->guests, *next; g; g = next) {
			next = g->next;
			guest_end(g, NULL);
		}
	}
	pools_sweep(wp);
	refill(wp);
	stock_changed(wp);
}

json_t *warm_pools_stock(const struct warm_pools *wp)
{
	json_t *j = json_object();
	for (const struct wpool *pl = wp->pools; pl; pl = pl->next) {
		int ready = 0, booting = 0;
		if (pl->size == 0)
			continue;
		for (const struct wguest *g = pl->guests; g; g = g->next) {
			if (g->doomed)
				continue;
			if (g->state == WG_WARM)
				ready++;
			else
				booting++;
		}
		json_object_set_new(j, pl->name, json_pack("{s:i, s:i}", "ready", ready, "booting", booting));
	}
	return j;
}

/* The guest of an instance is the pool's exactly (the core matched them; the node checks
 * again: the pool it has may be older or newer than the core's at that moment). */
static bool same_guest(const struct inst_spec *a, const struct inst_spec *b)
{
	return strcmp(a->driver, b->driver) == 0 && a->has_boot && b->has_boot &&
	       strcmp(a->boot.kernel, b->boot.kernel) == 0 && strcmp(a->boot.initrd, b->boot.initrd) == 0 &&
	       !a->boot.cmdline == !b->boot.cmdline && (!a->boot.cmdline || strcmp(a->boot.cmdline, b->boot.cmdline) == 0) &&
	       a->vcpus_milli == b->vcpus_milli && a->memory_mb == b->memory_mb &&
	       strcmp(a->ready_serial, b->ready_serial) == 0 && !a->bridge[0] && !b->bridge[0] &&
	       (a->config == b->config || (a->config && b->config && json_equal(a->config, b->config)));
}

bool warm_pools_take(struct warm_pools *wp, const char *name, const struct inst_spec *spec, struct warm_taken *out)
{
	struct wpool *pl = pool_find(wp, name);
	struct wguest *g;
	if (!pl || pl->size == 0 || !same_guest(&pl->spec, spec))
		return false;
	for (g = pl->guests; g; g = g->next)
		if (g->state == WG_WARM && !g->doomed && !g->in_job && g->h.pidfd >= 0)
			break;
	if (!g)
		return false;
	/* handed over whole: from here the guest is the instance's, never this pool's again */
	event_del(g->exit_ev);
	out->h = g->h;
	g->h.pidfd = -1;
	out->control_fd = g->control_fd;
	g->control_fd = -1;
	snprintf(out->dir, sizeof out->dir, "%s", g->dir);
	snprintf(out->serial_log, sizeof out->serial_log, "%s", g->serial_log);
	unlink_guest(g);
	guest_free(g);
	/* the refill waits for the taker's warm_pools_refill (its resume done): a boot started
	 * now would compete with it for the CPUs and the workers; the timer only in case the
	 * call never comes (the start never ran) */
	{
		struct timeval tv = clock_timeval(WARM_REFILL_FALLBACK_S);
		evtimer_add(wp->retry_timer, &tv);
	}
	stock_changed(wp);
	return true;
}

void warm_pools_refill(struct warm_pools *wp) { refill(wp); }

/* ---- start-up, recovery, exit ---- */

struct warm_pools *warm_pools_new(const struct warm_env *env, char *err, size_t errlen)
{
	struct warm_pools *wp = calloc(1, sizeof *wp);
	if (!wp)
		fatal("calloc");
	wp->env = *env;
	if ((wp->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		snprintf(err, errlen, "inotify_init1: %s", strerror(errno));
		free(wp);
		return NULL;
	}
	wp->inotify_ev = event_new(env->base, wp->inotify_fd, EV_READ | EV_PERSIST, on_inotify, wp);
	event_add(wp->inotify_ev, NULL);
	wp->retry_timer = evtimer_new(env->base, on_retry, wp);
	return wp;
}

/* Kills what a record names, when it is still that process (pid and start time). */
static void kill_recorded(struct drv_handle *h)
{
	if (h->pid > 0 && proc_recover(h) == 0) {
		proc_signal(h, SIGKILL);
		close_fd(&h->pidfd);
	}
}

/* One guest dir of a previous run: re-attached when it was warm and still runs; else its
 * process (if any) is killed and the dir removed. */
static void recover_one(struct warm_pools *wp, const char *dir, const char *id)
{
	char path[PATH_MAX + 32], *text = NULL; /* dir: at most PATH_MAX */
	size_t len;
	json_t *j = NULL;
	struct drv_handle h = {.pidfd = -1};
	const char *state = NULL, *control, *name;
	struct wpool *pl = NULL;
	bool taking;
	int rc;

	snprintf(path, sizeof path, "%.4000s/" TAKEN_RECORD, dir);
	taking = access(path, F_OK) == 0; /* a take was under way: the instance never got it */
	snprintf(path, sizeof path, "%.4000s/" POOL_RECORD, dir);
	if (fs_read_file(path, 1 << 20, &text, &len) == 0)
		j = json_loads(text, 0, NULL);
	free(text);
	if (j) {
		h.pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
		h.start_time = (unsigned long long)json_integer_value(json_object_get(j, "start_time"));
		control = json_string_value(json_object_get(j, "control"));
		snprintf(h.control, sizeof h.control, "%s", control ? control : "");
		state = json_string_value(json_object_get(j, "state"));
		name = json_string_value(json_object_get(j, "pool"));
		if (!taking && state && strcmp(state, "warm") == 0 && name && h.pid > 0 && proc_recover(&h) == 0) {
			for (pl = wp->pools; pl && !(strcmp(pl->name, name) == 0 && json_equal(pl->spec_json,
			                                                                      json_object_get(j, "spec")));)
				pl = pl->next;
			if (!pl && (pl = pool_new(wp, name, json_object_get(j, "spec"))))
				pl->size = 0;
		}
	}
	if (pl) {
		/* paused again (a no-op for QEMU's vCPUs) to re-open the kept QMP connection,
		 * which ended with the previous run: takeable once that is back */
		struct wguest *g = guest_new(wp, pl, WG_PAUSING);
		snprintf(g->id, sizeof g->id, "%s", id);
		snprintf(g->dir, sizeof g->dir, "%s", dir);
		snprintf(g->serial_log, sizeof g->serial_log, "%.4000s/serial.log", dir);
		g->h = h;
		g->started = true;
		watch_exit(g);
		g->in_job = true;
		worker_submit(wp->env.workers, pause_work, pause_done, g);
		log_info("pool %s: warm guest %s (pid %d) re-attached", pl->name, id, (int)h.pid);
	} else {
		if (h.pidfd >= 0) {
			proc_signal(&h, SIGKILL);
			close_fd(&h.pidfd);
		} else {
			kill_recorded(&h);
		}
		if ((rc = fs_remove_tree(dir)) < 0)
			log_warnx("cannot remove %s: %s", dir, strerror(-rc));
		log_info("pool guest %s of a previous run was %s: killed, booted again", id,
		         taking ? "being taken" : state ? state : "without a record");
	}
	json_decref(j);
}

void warm_pools_recover(struct warm_pools *wp)
{
	char dirpath[PATH_MAX];
	DIR *d;
	struct dirent *e;
	snprintf(dirpath, sizeof dirpath, "%.4000s/pool", wp->env.run_dir);
	if (!(d = opendir(dirpath)))
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		if (strlen(e->d_name) != MV_ID_LEN)
			continue;
		snprintf(path, sizeof path, "%.4000s/%s", dirpath, e->d_name);
		recover_one(wp, path, e->d_name);
	}
	closedir(d);
	/* kept until the core says which pools this node keeps (size 0 empties them then) */
	for (struct wpool *pl = wp->pools; pl; pl = pl->next)
		pl->size = pool_count(pl);
}

/* Kills g and waits for it when it is our child (the loop has ended: blocking is fine). */
static void kill_now(struct wguest *g)
{
	if (!g->started || g->h.pidfd < 0)
		return;
	proc_signal(&g->h, SIGKILL);
	if (g->h.is_child)
		while (waitpid(g->h.pid, NULL, 0) < 0 && errno == EINTR)
			;
}

void warm_pools_free(struct warm_pools *wp, bool stop)
{
	if (!wp)
		return;
	while (wp->pools) {
		struct wpool *pl = wp->pools;
		while (pl->guests) {
			struct wguest *g = pl->guests;
			int rc;
			pl->guests = g->next;
			if (stop || g->state != WG_WARM) {
				kill_now(g);
				if ((rc = fs_remove_tree(g->dir)) < 0)
					log_warnx("cannot remove %s: %s", g->dir, strerror(-rc));
			}
			guest_free(g);
		}
		wp->pools = pl->next;
		pool_free(pl);
	}
	if (wp->inotify_ev)
		event_free(wp->inotify_ev);
	if (wp->retry_timer)
		event_free(wp->retry_timer);
	close_fd(&wp->inotify_fd);
	free(wp);
}
