/* xen — diskless PV/PVH unikernels (ClickOS, Unikraft, Mini-OS) through Xen's own tools,
 * as the paper's Nomad XenDriver did: an xl config file in the instance dir, `xl create -q`,
 * `xl shutdown` / `xl destroy`; xenstore for what xl does not do.
 *
 *   guest type  the image's (boot.xen_type, resolved by the core): type = 'pv' (ClickOS and
 *               Mini-OS: the kernel is loaded by Xen's PV ELF loader) or 'pvh' (the default)
 *   console     the guest's console is logged by xenconsoled (--log=guest, i.e.
 *               XENCONSOLED_TRACE=guest) to CONSOLE_DIR/guest-NAME.log, opened with O_APPEND
 *               when the domain appears. Before `xl create` that name is made a symlink to
 *               the node's serial log (the request's serial_log), so the guest's console lands
 *               where the node watches for the ready marker, exactly as QEMU's serial file.
 *   Click       "config": {"click": "..."} is delivered through xenstore the way ClickOS's
 *               control tools do (cosmos, clickos-ctl): under the domain's data/clickos/0, the
 *               configuration in 512-byte chunks config/0, config/1, ... and config_name in one
 *               transaction, then status = "Running". ClickOS (minios/click.cc) creates
 *               data/clickos when it boots and watches it; it starts a router only on a status
 *               change it sees, so the status must be written after that watch exists: the
 *               driver waits (a xenstore watch, bounded) for the guest's data/clickos first.
 *               So for a ClickOS instance with a Click configuration, spawn ends when the
 *               configuration is in xenstore (Mini-OS's first milliseconds included), and
 *               boot is from there to the marker (e.g. ClickOS's "Starting driver").
 *   exits       one long-lived `xenstore watch @releaseDomain` (xenstored fires it whenever a
 *               domain shuts down or is released), on a thread of this file: each event costs
 *               one `xl list`, compared with the domains this driver runs, and the ones gone
 *               are queued for the node (domevents.h): no `xl domid` per domain per second.
 *               While the watch is down the node polls status() as before.
 *
 * Tools are run with posix_spawn (never a shell), stdin from /dev/null, stdout and stderr
 * captured through one pipe, and waited for with a deadline: a hung toolstack costs a worker
 * thread its timeout, then SIGKILL. Every call here but the watcher's blocks, so the node
 * calls them off its loop.
 *
 * The handle is the domain name ("mv-" + instance id); there is no process of ours: pid 0,
 * pidfd -1. signal and reap are NULL: stopping goes through stop(), which needs the paths.
 *
 * xl config strings are single-quoted; libxlutil's lexer takes \' and \\ inside them. Its
 * \x and octal escapes are broken in Xen 4.17, so control characters are refused rather
 * than escaped: a kernel command line has no use for them. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/model.h"
#include "drivers/domevents.h"
#include "drivers/driver.h"

extern char **environ;

#define XL_QUICK_TIMEOUT_S 15.0  /* info, domid, list, shutdown, xenstore calls */
#define XL_CREATE_TIMEOUT_S 60.0 /* create builds the domain's memory: large guests take a while */
#define XL_DESTROY_TIMEOUT_S 60.0
#define CLICK_GUEST_WAIT_S 10.0  /* xl create returned -> the ClickOS guest watches data/clickos */
#define CLICK_CHUNK 512          /* clickos-ctl's chunk size: "ClickOS is not accepting big chunk sizes";
                                  * MV_CLICK_MAX (64 KiB) makes 128 nodes, far below xenstored's quota */
#define OUTPUT_MAX 4096          /* a tool's output kept for messages */
#define LIST_OUTPUT_MAX (1 << 20) /* `xl list` of thousands of domains */
#define XEN_CONFIG_NAME "xen.cfg"
#define XEN_CONSOLE_DIR "/var/log/xen/console" /* xenconsoled's default --log-dir */
#define WATCH_QUEUE_MAX 4096     /* names queued for the node; beyond, one sweep */
#define WATCH_RETRY_MIN_MS 1000  /* the watch died: first try after 1 s, doubling... */
#define WATCH_RETRY_MAX_MS 30000 /* ...up to 30 s (the node polls meanwhile) */

static const char *xl_path(const struct drv_options *o)
{
	return o->xl_binary && o->xl_binary[0] ? o->xl_binary : "xl";
}

static const char *xs_path(const struct drv_options *o)
{
	return o->xenstore_binary && o->xenstore_binary[0] ? o->xenstore_binary : "xenstore";
}

static const char *console_dir(const struct drv_options *o)
{
	return o->xen_console_dir && o->xen_console_dir[0] ? o->xen_console_dir : XEN_CONSOLE_DIR;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- running the tools ---- */

struct tool_result {
	int exit_code;   /* 0-255, or 128 + signal */
	char *output;    /* stdout and stderr, NUL-terminated; malloc'ed */
	size_t len, max; /* kept, and at most kept */
	bool truncated;  /* there was more than max */
};

static void result_free(struct tool_result *res)
{
	free(res->output);
	res->output = NULL;
	res->len = 0;
}

static void output_add(struct tool_result *res, const char *buf, size_t n)
{
	size_t room = res->max - res->len;
	if (n > room) {
		n = room;
		res->truncated = true;
	}
	if (!n)
		return;
	if (!(res->output = realloc(res->output, res->len + n + 1)))
		fatal("realloc");
	memcpy(res->output + res->len, buf, n);
	res->len += n;
	res->output[res->len] = '\0';
}

/* Reads what the pipe holds now; returns false at end of file or on error. */
static bool drain(int fd, struct tool_result *res)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n > 0) {
			output_add(res, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
}

/* Starts path with argv (argv[0] is replaced by path), stdin /dev/null, stdout and stderr
 * into a pipe whose non-blocking read end is *out. 0 or -errno. */
static int tool_spawn(const char *path, const char *const *argv, pid_t *pid, int *out)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int pipefd[2], rc, n = 0;
	char **args;

	while (argv[n])
		n++;
	if (!(args = calloc((size_t)n + 1, sizeof *args)))
		return -ENOMEM;
	args[0] = (char *)path;
	for (int i = 1; i < n; i++)
		args[i] = (char *)argv[i];
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		free(args);
		return rc;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	/* 0-2 only: the node's own sockets (libevent opens its client sockets without
	 * O_CLOEXEC) must not live on in a toolstack process. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(pid, path, &fa, &attr, args, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	free(args);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		return -rc;
	}
	/* The read end is non-blocking (the dup2'd write end in the child is a separate
	 * descriptor, so the flag does not reach the tool's output, which is blocking there). */
	*out = pipefd[0];
	return 0;
}

/* Waits at most until deadline for pid to exit, collecting its output from fd (closed
 * here). 0 when it exited (see res->exit_code), -ETIMEDOUT when it was killed at the
 * deadline, or -errno. */
static int tool_wait(pid_t pid, int fd, double deadline, struct tool_result *res)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0, rc;
	bool exited = false, open_pipe = true;

	/* Wait for the process, not for end of file: `xl create` leaves a daemon behind that
	 * may hold the pipe for a moment before it reopens its output on its own log. */
	while (!exited) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
		double left = deadline - now_s();
		int ms;
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			if (pidfd >= 0)
				close(pidfd);
			close(fd);
			return -ETIMEDOUT;
		}
		ms = pidfd >= 0 ? (int)(left * 1000) + 1 : 20; /* no pidfd: poll waitpid */
		if (!open_pipe)
			p[0].fd = -1;
		if (poll(p, 2, ms) < 0 && errno != EINTR)
			break;
		if (open_pipe && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			open_pipe = drain(fd, res);
		if (pidfd < 0 || (p[1].revents & POLLIN)) {
			rc = (int)waitpid(pid, &status, pidfd < 0 ? WNOHANG : 0);
			if (rc < 0 && errno != EINTR) { /* reaped by someone else: status unknown */
				if (pidfd >= 0)
					close(pidfd);
				close(fd);
				return -ECHILD;
			}
			if (rc == pid)
				exited = true;
		}
	}
	if (!exited) { /* poll failed: do not wait without a deadline */
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (open_pipe)
		drain(fd, res);
	if (pidfd >= 0)
		close(pidfd);
	close(fd);
	res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return 0;
}

/* Runs a tool to its end (at most timeout_s). 0 when it ran (look at res->exit_code), or
 * -errno when it could not be run or was killed at the deadline (-ETIMEDOUT). res->output
 * is kept up to max bytes; the caller frees it (result_free) in every case. */
static int tool_run(const char *path, const char *const *argv, double timeout_s, size_t max, struct tool_result *res)
{
	pid_t pid;
	int fd, rc;

	memset(res, 0, sizeof *res);
	res->max = max;
	if ((rc = tool_spawn(path, argv, &pid, &fd)) < 0)
		return rc;
	if ((rc = tool_wait(pid, fd, now_s() + timeout_s, res)) < 0)
		return rc;
	/* messages: trailing blanks off, only printable ASCII (they end up in JSON) */
	while (res->len && (res->output[res->len - 1] == '\n' || res->output[res->len - 1] == ' '))
		res->output[--res->len] = '\0';
	for (size_t i = 0; i < res->len; i++)
		if (res->output[i] != '\n' && ((unsigned char)res->output[i] < 0x20 || (unsigned char)res->output[i] >= 0x7f))
			res->output[i] = '?';
	return 0;
}

static int xl_run(const struct drv_options *o, const char *const *argv, double timeout_s, struct tool_result *res)
{
	return tool_run(xl_path(o), argv, timeout_s, OUTPUT_MAX, res);
}

static int xs_run(const struct drv_options *o, const char *const *argv, struct tool_result *res)
{
	return tool_run(xs_path(o), argv, XL_QUICK_TIMEOUT_S, OUTPUT_MAX, res);
}

/* The last line of a tool's output, for error messages. */
static const char *last_line(const struct tool_result *res)
{
	const char *nl;
	if (!res->output || res->len == 0)
		return "(no output)";
	nl = strrchr(res->output, '\n');
	return nl ? nl + 1 : res->output;
}

/* ---- the domains this driver runs (for the exit events) ---- */

static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hmap known; /* domain name -> the same name, malloc'ed */

static void known_add(const char *name)
{
	char *copy;
	pthread_mutex_lock(&known_lock);
	if (!hmap_get(&known, name)) {
		if (!(copy = strdup(name)))
			fatal("strdup");
		hmap_put(&known, copy, copy);
	}
	pthread_mutex_unlock(&known_lock);
}

static void known_remove(const char *name)
{
	pthread_mutex_lock(&known_lock);
	free(hmap_remove(&known, name));
	pthread_mutex_unlock(&known_lock);
}

/* Is name the first column of a line of `xl list`? */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *line = list; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, name, n) == 0 && (line[n] == ' ' || line[n] == '\t'))
			return true;
	return false;
}

/* ---- the console: xenconsoled's log of the domain, made the node's serial log ---- */

static int console_link_path(const struct drv_options *o, const char *name, char *out, size_t len)
{
	return snprintf(out, len, "%s/guest-%s.log", console_dir(o), name) >= (int)len ? -ENAMETOOLONG : 0;
}

/* CONSOLE_DIR/guest-NAME.log -> target, replacing what is there (atomically). */
static int console_link(const struct drv_options *o, const char *name, const char *target, char *err, size_t errlen)
{
	char link[PATH_MAX], tmp[PATH_MAX + 8];
	int rc;

	if (console_link_path(o, name, link, sizeof link) < 0 || snprintf(tmp, sizeof tmp, "%s.new", link) >= (int)sizeof tmp) {
		snprintf(err, errlen, "xen: console dir path too long");
		return -ENAMETOOLONG;
	}
	if ((rc = fs_mkdir_p(console_dir(o), 0755)) < 0) {
		snprintf(err, errlen, "xen: cannot create the console log dir %.200s (--xen-console-dir): %s",
		         console_dir(o), strerror(-rc));
		return rc;
	}
	unlink(tmp);
	if (symlink(target, tmp) < 0 || rename(tmp, link) < 0) {
		rc = -errno;
		unlink(tmp);
		snprintf(err, errlen, "xen: cannot point %.200s at the serial log: %s", link, strerror(-rc));
		return rc;
	}
	return 0;
}

/* Removes the link once the domain is gone (never a file xenconsoled wrote itself). */
static void console_unlink(const struct drv_options *o, const char *name)
{
	char link[PATH_MAX];
	struct stat st;
	if (console_link_path(o, name, link, sizeof link) == 0 && lstat(link, &st) == 0 && S_ISLNK(st.st_mode) &&
	    unlink(link) < 0)
		log_warn("xen: cannot remove %s", link);
}

/* The domain is known to be gone: forget it and its console link. */
static void domain_gone(const struct drv_options *o, const char *name)
{
	known_remove(name);
	console_unlink(o, name);
}

/* ---- the config file ---- */

/* Appends KEY = 'VALUE' to the config, quoted for libxlutil's lexer. */
static int put_string(FILE *f, const char *key, const char *value, char *err, size_t errlen)
{
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "%s holds a control character (0x%02x): an xl config cannot carry it", key,
			         *p);
			return -EINVAL;
		}
	}
	fprintf(f, "%s = '", key);
	for (const char *p = value; *p; p++) {
		if (*p == '\'' || *p == '\\')
			fputc('\\', f);
		fputc(*p, f);
	}
	fputs("'\n", f);
	return 0;
}

static bool ifname_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 15)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
		      *s == '_' || *s == '-'))
			return false;
	return true;
}

/* The guest type is the image's: boot.xen_type, which the core copies from the image when
 * it accepts the instance. An image registered without one boots PVH: PVH is what every
 * image booted as before images carried a type, so they keep booting the same way, and it
 * is what current unikernels (Unikraft, the sample VNF, Linux) are built for; a PV kernel
 * (ClickOS, Mini-OS) is written for the PV ABI and says so when it is registered. */
static const char *guest_type(const struct drv_start_request *r)
{
	return r->xen_type && r->xen_type[0] ? r->xen_type : "pvh";
}

/* config: {"click": "..."} or nothing (xen_config_check accepted it at the core). */
static const char *click_of(const struct drv_start_request *r)
{
	return json_string_value(json_object_get(r->config, "click"));
}

/* Writes the xl config for r into path (atomically). */
static int write_config(const struct drv_start_request *r, const char *type, const char *name, const char *path,
                        char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	long vcpus;
	FILE *f;
	int rc;

	if (drv_vm_request_check("xen", r, &vcpus, err, errlen) < 0)
		return -EINVAL;
	if (r->bridge && !ifname_valid(r->bridge)) {
		snprintf(err, errlen, "xen: bridge \"%.32s\" is not an interface name", r->bridge);
		return -EINVAL;
	}
	if (!(f = open_memstream(&text, &len)))
		return -errno;
	fprintf(f, "# written by microvim for instance %s: a diskless %s guest\n", r->instance_id, type);
	rc = put_string(f, "name", name, err, errlen);
	if (rc == 0)
		rc = put_string(f, "type", type, err, errlen);
	if (rc == 0)
		rc = put_string(f, "kernel", r->kernel, err, errlen);
	if (rc == 0 && r->initrd) {
		if (r->initrd[0] != '/') {
			snprintf(err, errlen, "xen: the initrd must be an absolute path");
			rc = -EINVAL;
		} else {
			rc = put_string(f, "ramdisk", r->initrd, err, errlen);
		}
	}
	if (rc == 0 && r->cmdline && r->cmdline[0])
		rc = put_string(f, "extra", r->cmdline, err, errlen);
	if (rc == 0) {
		fprintf(f, "memory = %lld\n", r->memory_mb);
		fprintf(f, "vcpus = %ld\n", vcpus);
		if (r->bridge)
			fprintf(f, "vif = [ 'bridge=%s' ]\n", r->bridge); /* checked: [A-Za-z0-9._-] */
		fputs("on_poweroff = 'destroy'\non_reboot = 'destroy'\non_crash = 'destroy'\n", f);
	}
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && (rc = fs_write_atomic(path, text, len, false)) < 0)
		snprintf(err, errlen, "xen: cannot write %.200s: %s", path, strerror(-rc));
	free(text);
	return rc;
}

/* ---- the Click configuration, through xenstore ---- */

static int xl_domid(const struct drv_options *o, const char *name, long *domid, char *err, size_t errlen)
{
	const char *argv[] = {"xl", "domid", name, NULL};
	struct tool_result res;
	char *end;
	int rc = xl_run(o, argv, XL_QUICK_TIMEOUT_S, &res);

	if (rc == 0 && res.exit_code == 0 && res.output) {
		*domid = strtol(res.output, &end, 10);
		if (end != res.output && (*end == '\0' || *end == '\n') && *domid > 0 && *domid < 0x7ff0) {
			result_free(&res);
			return 0;
		}
	}
	snprintf(err, errlen, "xen: %s domid %s: %s", xl_path(o), name,
	         rc < 0 ? strerror(-rc) : res.exit_code ? last_line(&res) : "no domain id in its output");
	result_free(&res);
	return rc < 0 ? rc : -EIO;
}

/* `xenstore exists PATH`: 1 yes, 0 no, -errno when the client could not run. */
static int xs_exists(const struct drv_options *o, const char *path)
{
	const char *argv[] = {"xenstore", "exists", path, NULL};
	struct tool_result res;
	int rc = xs_run(o, argv, &res);
	result_free(&res);
	return rc < 0 ? rc : res.exit_code == 0;
}

/* Waits (a xenstore watch, bounded) until the guest has created path under home. */
static int click_wait_guest(const struct drv_options *o, const char *path, const char *home, char *err,
                            size_t errlen)
{
	const char *argv[] = {"xenstore", "watch", path, NULL};
	double deadline = now_s() + CLICK_GUEST_WAIT_S;
	char buf[1024];
	size_t have = 0;
	pid_t pid;
	int fd, rc, status;

	if ((rc = tool_spawn(xs_path(o), argv, &pid, &fd)) < 0) {
		snprintf(err, errlen, "xen: cannot run %.200s watch: %s", xs_path(o), strerror(-rc));
		return rc;
	}
	rc = -ETIMEDOUT;
	while (rc == -ETIMEDOUT) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		double left = deadline - now_s();
		ssize_t n;
		bool event = false;
		if (left <= 0)
			break;
		if (poll(&p, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		while ((n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
			have += (size_t)n;
			for (char *nl; (nl = memchr(buf, '\n', have));) { /* one event per line */
				event = true;
				have -= (size_t)(nl + 1 - buf);
				memmove(buf, nl + 1, have);
			}
			if (have == sizeof buf - 1)
				have = 0; /* a line this long is no path: drop it */
		}
		if (n == 0) { /* the watch ended: xenstored is not there, or the client failed */
			buf[have] = '\0';
			snprintf(err, errlen, "xen: %.200s watch %.200s ended: %.200s", xs_path(o), path,
			         have ? buf : "(no output)");
			rc = -EIO;
			break;
		}
		if (!event)
			continue;
		/* the first event is the watch being set; the others, changes at or below path */
		if ((rc = xs_exists(o, path)) == 1) {
			rc = 0;
		} else if (rc == 0) {
			rc = xs_exists(o, home) == 0 ? -ESRCH : -ETIMEDOUT;
			if (rc == -ESRCH)
				snprintf(err, errlen, "xen: the domain ended before its ClickOS guest was up (%s is gone)", home);
		} else {
			snprintf(err, errlen, "xen: cannot run %.200s exists: %s", xs_path(o), strerror(-rc));
		}
	}
	if (rc == -ETIMEDOUT)
		snprintf(err, errlen, "xen: the guest did not create %s within %.0f s of xl create: a Click configuration "
		         "needs a ClickOS kernel (its Mini-OS writes data/clickos when it boots)", path, CLICK_GUEST_WAIT_S);
	kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	close(fd);
	return rc;
}

/* A chunk as the xenstore client's argument: without -R it unescapes backslashes (\\ \n
 * \xNN ...), so each backslash is doubled; every other byte passes as it is. */
static char *xs_escape(const char *s, size_t n)
{
	char *out = malloc(2 * n + 1), *o = out;
	if (!out)
		fatal("malloc");
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\')
			*o++ = '\\';
		*o++ = s[i];
	}
	*o = '\0';
	return out;
}

/* ClickOS's control protocol, as cosmos and clickos-ctl write it: router 0's configuration
 * in chunks plus its name in one transaction (one `xenstore write` of all the pairs), then
 * its status "Running" in another, which is what the guest's watch acts on. "--" ends the
 * client's options: a chunk may begin with '-' ("-> out;"). */
static int click_write(const struct drv_options *o, const char *router, const char *config_name, const char *click,
                       char *err, size_t errlen)
{
	size_t len = strlen(click), chunks = (len + CLICK_CHUNK - 1) / CLICK_CHUNK, n = 0;
	const char **argv = calloc(6 + 2 * chunks, sizeof *argv);
	char **owned = calloc(2 * chunks + 2, sizeof *owned), status[256];
	struct tool_result res = {0};
	int rc = 0;

	if (!argv || !owned)
		fatal("calloc");
	argv[n++] = "xenstore";
	argv[n++] = "write";
	argv[n++] = "--";
	if (asprintf(&owned[0], "%s/config_name", router) < 0)
		fatal("asprintf");
	argv[n++] = owned[0];
	argv[n++] = config_name;
	for (size_t i = 0; i < chunks; i++) {
		size_t at = i * CLICK_CHUNK, size = len - at < CLICK_CHUNK ? len - at : CLICK_CHUNK;
		if (asprintf(&owned[1 + 2 * i], "%s/config/%zu", router, i) < 0)
			fatal("asprintf");
		owned[2 + 2 * i] = xs_escape(click + at, size);
		argv[n++] = owned[1 + 2 * i];
		argv[n++] = owned[2 + 2 * i];
	}
	argv[n] = NULL;
	if ((rc = xs_run(o, argv, &res)) == 0 && res.exit_code != 0)
		rc = -EIO;
	if (rc == 0) {
		const char *run[] = {"xenstore", "write", "--", status, "Running", NULL};
		snprintf(status, sizeof status, "%s/status", router);
		result_free(&res);
		if ((rc = xs_run(o, run, &res)) == 0 && res.exit_code != 0)
			rc = -EIO;
	}
	if (rc < 0)
		snprintf(err, errlen, "xen: cannot write the Click configuration to xenstore (%.200s write): %.200s",
		         xs_path(o), rc == -EIO ? last_line(&res) : strerror(-rc));
	result_free(&res);
	for (size_t i = 0; i < 2 * chunks + 2; i++)
		free(owned[i]);
	free(owned);
	free(argv);
	return rc;
}

static int click_deliver(const struct drv_options *o, const char *domain, const char *config_name, const char *click,
                         char *err, size_t errlen)
{
	char home[64], base[96], router[112];
	long domid;
	int rc;

	if ((rc = xl_domid(o, domain, &domid, err, errlen)) < 0)
		return rc;
	snprintf(home, sizeof home, "/local/domain/%ld", domid);
	snprintf(base, sizeof base, "%s/data/clickos", home);
	snprintf(router, sizeof router, "%s/0", base);
	if ((rc = click_wait_guest(o, base, home, err, errlen)) < 0)
		return rc;
	return click_write(o, router, config_name, click, err, errlen);
}

/* ---- the driver ---- */

static int xen_probe(const struct drv_options *o, json_t **info, char *err, size_t errlen)
{
	const char *argv[] = {"xl", "info", NULL};
	struct tool_result res;
	char version[128] = "";
	char *line;
	int rc;

	if ((rc = xl_run(o, argv, XL_QUICK_TIMEOUT_S, &res)) < 0) {
		snprintf(err, errlen, "cannot run %s info: %s", xl_path(o), strerror(-rc));
		result_free(&res);
		return rc;
	}
	if (res.exit_code != 0) {
		snprintf(err, errlen, "%s info failed (exit %d): %s", xl_path(o), res.exit_code, last_line(&res));
		result_free(&res);
		return -ENOTSUP;
	}
	/* "xen_version            : 4.17.3-pre" */
	for (line = res.output; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, "xen_version", 11) == 0 && strchr(line, ':')) {
			const char *v = strchr(line, ':') + 1;
			size_t n = strcspn(v, "\n");
			while (*v == ' ' && n) {
				v++;
				n--;
			}
			snprintf(version, sizeof version, "%.*s", (int)n, v);
			break;
		}
	}
	result_free(&res);
	if (!version[0]) {
		snprintf(err, errlen, "%s info printed no xen_version line", xl_path(o));
		return -ENOTSUP;
	}
	*info = json_pack("{s:s, s:s, s:s, s:s, s:s}", "version", version, "toolstack", "xl", "xl", xl_path(o),
	                  "xenstore", xs_path(o), "console_dir", console_dir(o));
	return 0;
}

static int xen_destroy(const struct drv_options *o, const char *name)
{
	const char *argv[] = {"xl", "destroy", name, NULL};
	struct tool_result res;
	int rc = xl_run(o, argv, XL_DESTROY_TIMEOUT_S, &res);
	result_free(&res);
	if (rc < 0)
		return rc;
	return res.exit_code == 0 ? 0 : -EIO;
}

static int xen_start(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h, char *err,
                     size_t errlen)
{
	char name[sizeof h->domain], path[4096];
	const char *type, *click;
	struct tool_result res;
	int rc;

	h->pid = 0;
	h->start_time = 0;
	h->pidfd = -1;
	h->is_child = false;
	h->domain[0] = h->control[0] = '\0';
	if (snprintf(name, sizeof name, "mv-%s", r->instance_id) >= (int)sizeof name) {
		snprintf(err, errlen, "xen: instance id too long for a domain name");
		return -ENAMETOOLONG;
	}
	if (snprintf(path, sizeof path, "%s/%s", r->dir, XEN_CONFIG_NAME) >= (int)sizeof path) {
		snprintf(err, errlen, "xen: instance dir path too long");
		return -ENAMETOOLONG;
	}
	type = guest_type(r);
	click = click_of(r);
	if (click && strcmp(type, "pv") != 0) {
		snprintf(err, errlen, "xen: config.click is for ClickOS, a PV guest, but this image boots %s "
		         "(microvim image add --xen-type pv)", type);
		return -EINVAL;
	}
	if ((rc = write_config(r, type, name, path, err, errlen)) < 0)
		return rc;
	/* before the domain exists: xenconsoled opens the log when it sees the domain */
	if (r->serial_log && (rc = console_link(o, name, r->serial_log, err, errlen)) < 0)
		return rc;

	const char *argv[] = {"xl", "create", "-q", path, NULL};
	drv_config_done(r);
	rc = xl_run(o, argv, XL_CREATE_TIMEOUT_S, &res);
	if (rc == -ETIMEDOUT) {
		/* xl may have got as far as creating the domain: do not leave it behind */
		xen_destroy(o, name);
		snprintf(err, errlen, "%s create did not finish within %.0f s", xl_path(o), XL_CREATE_TIMEOUT_S);
	} else if (rc < 0) {
		snprintf(err, errlen, "cannot run %s: %s", xl_path(o), strerror(-rc));
	} else if (res.exit_code != 0) {
		snprintf(err, errlen, "xl create failed (exit %d): %.200s", res.exit_code, last_line(&res));
		rc = -EIO;
	} else if (click && (rc = click_deliver(o, name, r->name, click, err, errlen)) < 0) {
		xen_destroy(o, name); /* a ClickOS guest without its configuration is no instance */
	}
	result_free(&res);
	if (rc < 0) {
		console_unlink(o, name);
		return rc;
	}
	snprintf(h->domain, sizeof h->domain, "%s", name);
	known_add(name);
	return 0;
}

/* Is the domain there? `xl domid NAME` answers; when it fails, `xl list` tells a domain
 * that is gone from a toolstack that does not work. */
static int xen_status(const struct drv_options *o, struct drv_handle *h, bool *alive)
{
	const char *domid[] = {"xl", "domid", h->domain, NULL}, *list[] = {"xl", "list", NULL};
	struct tool_result res;
	int rc;

	*alive = false;
	if (!h->domain[0])
		return -EINVAL;
	rc = xl_run(o, domid, XL_QUICK_TIMEOUT_S, &res);
	result_free(&res);
	if (rc < 0)
		return rc;
	if (res.exit_code == 0) {
		*alive = true;
		return 0;
	}
	rc = tool_run(xl_path(o), list, XL_QUICK_TIMEOUT_S, LIST_OUTPUT_MAX, &res);
	if (rc == 0 && (res.exit_code != 0 || res.truncated))
		rc = -EIO;
	/* lines: "NAME   ID   Mem VCPUs State Time(s)"; listed although domid failed: say
	 * alive, ask again later */
	if (rc == 0 && !(*alive = listed(res.output ? res.output : "", h->domain)))
		domain_gone(o, h->domain);
	result_free(&res);
	return rc;
}

static int xen_stop(const struct drv_options *o, struct drv_handle *h, bool force)
{
	const char *shutdown[] = {"xl", "shutdown", h->domain, NULL};
	struct tool_result res;
	bool alive;
	int rc;

	if (!h->domain[0])
		return -EINVAL;
	if (force) {
		if ((rc = xen_destroy(o, h->domain)) == 0)
			domain_gone(o, h->domain);
	} else {
		/* without -w: the request is delivered and the guest shuts down when it will */
		rc = xl_run(o, shutdown, XL_QUICK_TIMEOUT_S, &res);
		result_free(&res);
		if (rc == 0 && res.exit_code != 0)
			rc = -EIO;
	}
	if (rc == -EIO && xen_status(o, h, &alive) == 0 && !alive)
		return -ESRCH; /* it was already gone */
	return rc;
}

static int xen_recover(struct drv_handle *h)
{
	int rc = drv_domain_recover(h);
	if (rc == 0)
		known_add(h->domain); /* its end is reported by the watch from now on */
	return rc;
}

/* The node died between asking for a start and recording it: is mv-ID there? */
static int xen_adopt(const struct drv_options *o, const char *instance_id, struct drv_handle *h)
{
	bool alive = false;
	snprintf(h->domain, sizeof h->domain, "mv-%s", instance_id);
	drv_domain_recover(h);
	if (xen_status(o, h, &alive) < 0 || !alive)
		return -ESRCH;
	known_add(h->domain);
	return 0;
}

/* ---- exit events: `xenstore watch @releaseDomain` on a thread of its own ---- */

static struct {
	bool started;            /* the node's thread: between watch and unwatch */
	pthread_t thread;
	char xl[PATH_MAX], xs[PATH_MAX], console[PATH_MAX];
	struct drv_options o;    /* points at the three above */
	struct domevents q;
	int wake;                /* eventfd: unwatch wakes the thread */
	atomic_bool live;        /* the watch is set and its events flow */
	atomic_bool stopping;
} w = {.wake = -1};

/* Some domain shut down or was released: one `xl list`, and every domain of ours that is
 * no longer in it has ended. Without a listing, a sweep: the node asks status() of each. */
static void on_release(void)
{
	const char *argv[] = {"xl", "list", NULL};
	struct tool_result res;
	char **gone = NULL;
	size_t n = 0;
	int rc = tool_run(w.xl, argv, XL_QUICK_TIMEOUT_S, LIST_OUTPUT_MAX, &res);

	if (rc < 0 || res.exit_code != 0 || res.truncated || !res.output) {
		log_warnx("xen: a domain ended but %s list %s: asking each domain", w.xl,
		          rc < 0 ? strerror(-rc) : res.truncated ? "printed too much" : last_line(&res));
		result_free(&res);
		domevents_push_sweep(&w.q);
		return;
	}
	pthread_mutex_lock(&known_lock);
	if (!(gone = calloc(hmap_size(&known) + 1, sizeof *gone)))
		fatal("calloc");
	{
		const char *k;
		void *v;
		for (size_t i = 0; hmap_next(&known, &i, &k, &v);)
			if (!listed(res.output, k))
				gone[n++] = v;
	}
	for (size_t i = 0; i < n; i++)
		hmap_remove(&known, gone[i]);
	pthread_mutex_unlock(&known_lock);
	result_free(&res);
	for (size_t i = 0; i < n; i++) {
		console_unlink(&w.o, gone[i]);
		domevents_push(&w.q, gone[i]);
		free(gone[i]);
	}
	free(gone);
}

/* Waits ms for unwatch; true when it came. */
static bool wait_wake(int ms)
{
	struct pollfd p = {.fd = w.wake, .events = POLLIN};
	return poll(&p, 1, ms) > 0 || atomic_load(&w.stopping);
}

/* Follows one watch process until it ends or unwatch. Its lines: "@releaseDomain" for each
 * event, the first when the watch is set; anything else is the client's complaint. */
static void follow(int fd)
{
	char buf[4096];
	size_t have = 0;

	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = w.wake, .events = POLLIN}};
		bool released = false, ended;
		ssize_t n;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return;
		if (atomic_load(&w.stopping))
			return;
		while ((n = read(fd, buf + have, sizeof buf - 1 - have)) > 0) {
			have += (size_t)n;
			for (char *nl; (nl = memchr(buf, '\n', have));) {
				*nl = '\0';
				if (strcmp(buf, "@releaseDomain") != 0) {
					log_warnx("xen: %s watch: %s", w.xs, buf);
				} else if (!atomic_load(&w.live)) {
					/* the watch is set: what ended before it was not seen */
					atomic_store(&w.live, true);
					domevents_push_sweep(&w.q);
					log_info("xen: domain exits are events now (%s watch @releaseDomain)", w.xs);
				} else {
					released = true; /* a burst of events: one listing */
				}
				have -= (size_t)(nl + 1 - buf);
				memmove(buf, nl + 1, have);
			}
			if (have == sizeof buf - 1)
				have = 0;
		}
		ended = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR); /* before on_release's calls */
		if (released)
			on_release();
		if (ended)
			return; /* the watch process ended */
	}
}

static void *watch_main(UNUSED void *arg)
{
	const char *argv[] = {"xenstore", "watch", "@releaseDomain", NULL};
	int retry_ms = WATCH_RETRY_MIN_MS, fd, rc, status;
	bool down_logged = false;
	pid_t pid;

	log_set_tag("node"); /* its lines are the node's */
	while (!atomic_load(&w.stopping)) {
		if ((rc = tool_spawn(w.xs, argv, &pid, &fd)) < 0) {
			if (!down_logged)
				log_warnx("xen: cannot run %s watch (%s): domains are polled, retrying", w.xs, strerror(-rc));
			down_logged = true;
		} else {
			follow(fd);
			kill(pid, SIGTERM); /* ours: still unreaped, so the pid is its own */
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			close(fd);
			if (atomic_load(&w.live) && !atomic_load(&w.stopping))
				log_warnx("xen: %s watch @releaseDomain ended: domains are polled until it is back", w.xs);
			if (atomic_load(&w.live))
				retry_ms = WATCH_RETRY_MIN_MS;
			atomic_store(&w.live, false);
		}
		if (wait_wake(retry_ms))
			break;
		retry_ms = retry_ms * 2 > WATCH_RETRY_MAX_MS ? WATCH_RETRY_MAX_MS : retry_ms * 2;
	}
	return NULL;
}

/* Is the tool there to be run (a path, or a name in PATH)? */
static bool runnable(const char *tool)
{
	const char *path = getenv("PATH");
	char file[PATH_MAX];
	if (strchr(tool, '/'))
		return access(tool, X_OK) == 0;
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");
		if (snprintf(file, sizeof file, "%.*s/%s", (int)n, p, tool) < (int)sizeof file && access(file, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

static int xen_watch(const struct drv_options *o, int *fd, char *err, size_t errlen)
{
	sigset_t all, old;
	int rc;

	if (w.started) {
		snprintf(err, errlen, "xen: domain exits are already watched in this process");
		return -EBUSY;
	}
	if (!runnable(xs_path(o))) {
		snprintf(err, errlen, "the xenstore client %s is not there (xenstore-utils; --xenstore PATH)", xs_path(o));
		return -ENOENT;
	}
	if (snprintf(w.xl, sizeof w.xl, "%s", xl_path(o)) >= (int)sizeof w.xl ||
	    snprintf(w.xs, sizeof w.xs, "%s", xs_path(o)) >= (int)sizeof w.xs ||
	    snprintf(w.console, sizeof w.console, "%s", console_dir(o)) >= (int)sizeof w.console) {
		snprintf(err, errlen, "xen: a tool path is too long");
		return -ENAMETOOLONG;
	}
	w.o = (struct drv_options){.xl_binary = w.xl, .xenstore_binary = w.xs, .xen_console_dir = w.console};
	if ((rc = domevents_init(&w.q, WATCH_QUEUE_MAX)) < 0) {
		snprintf(err, errlen, "xen: domain events queue: %s", strerror(-rc));
		return rc;
	}
	if ((w.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "xen: eventfd: %s", strerror(-rc));
		domevents_free(&w.q);
		return rc;
	}
	atomic_store(&w.live, false);
	atomic_store(&w.stopping, false);
	/* the thread takes no signals: they belong to the node's loop */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&w.thread, NULL, watch_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "xen: cannot start the events thread: %s", strerror(rc));
		close(w.wake);
		w.wake = -1;
		domevents_free(&w.q);
		return -rc;
	}
	w.started = true;
	*fd = w.q.efd;
	return 0;
}

static bool xen_watch_next(char *domain, size_t len)
{
	return w.started && domevents_pop(&w.q, domain, len);
}

static bool xen_watching(void)
{
	return w.started && atomic_load(&w.live);
}

static void xen_unwatch(void)
{
	uint64_t one = 1;
	if (!w.started)
		return;
	atomic_store(&w.stopping, true);
	if (write(w.wake, &one, sizeof one) != sizeof one)
		log_warn("xen: cannot wake the events thread");
	pthread_join(w.thread, NULL);
	close(w.wake);
	w.wake = -1;
	domevents_free(&w.q);
	atomic_store(&w.live, false);
	w.started = false;
}

/* config: {"click": "..."}, a ClickOS router's Click configuration: 1 byte to MV_CLICK_MAX
 * of printable ASCII, tabs and line ends (a text language, and xenstore values are
 * strings). The guest type is the image's, not the instance's: config.type is refused
 * with the way to it. */
static int xen_config_check(const json_t *config, const char **executable, struct mv_error *err)
{
	static const char *const fields[] = {"click", NULL};
	const json_t *click;

	*executable = NULL;
	if (!config)
		return 0;
	if (!json_is_object(config))
		return mv_fail(err, 400, "invalid_type", "config must be an object {\"click\": \"...\"}");
	if (json_object_get(config, "type"))
		return mv_fail(err, 400, "unknown_field",
		               "unknown field config.type: the Xen guest type is the image's "
		               "(microvim image add NAME --kernel FILE --xen-type pv|pvh)");
	if (mv_check_fields(config, "config.", fields, err) < 0)
		return -1;
	if (!(click = json_object_get(config, "click")))
		return 0;
	if (mv_check_string(click, "config.click", MV_CLICK_MAX, err) < 0)
		return -1;
	if (json_string_length(click) == 0)
		return mv_fail(err, 400, "invalid_value", "config.click must not be empty");
	for (const unsigned char *p = (const unsigned char *)json_string_value(click); *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r') || *p >= 0x7f)
			return mv_fail(err, 400, "invalid_value",
			               "config.click holds the byte 0x%02x: a Click configuration is printable ASCII text", *p);
	return 0;
}

const struct driver driver_xen = {
	.name = "xen",
	.boots_image = true,
	.network = DRV_NET_BRIDGE,
	.config_check = xen_config_check,
	.probe = xen_probe,
	.start = xen_start,
	.recover = xen_recover,
	.adopt = xen_adopt,
	.status = xen_status,
	.stop = xen_stop,
	.watch = xen_watch,
	.watch_next = xen_watch_next,
	.watching = xen_watching,
	.unwatch = xen_unwatch,
};
