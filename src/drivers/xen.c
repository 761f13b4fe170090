/* xen — diskless PV/PVH unikernels (ClickOS, Unikraft, MiniOS) through the xl toolstack,
 * as the paper's Nomad XenDriver did: an xl config file in the instance dir, `xl create -q`
 * (spawn = xl returned), `xl shutdown` / `xl destroy`, liveness from `xl domid`.
 *
 * xl is run with posix_spawn (never a shell), stdin from /dev/null, stdout and stderr
 * captured through one pipe, and waited for with a deadline: a hung toolstack costs a
 * worker thread its timeout, then SIGKILL. Every call here blocks (that is what xl does),
 * so the node calls them off its loop.
 *
 * The handle is the domain name ("mv-" + instance id); there is no process of ours: pid 0,
 * pidfd -1. The node asks status() once a second, since xl offers no exit notification.
 * signal and reap are NULL: stopping goes through stop(), which needs the toolstack path.
 *
 * xl config strings are single-quoted; libxlutil's lexer takes \' and \\ inside them. Its
 * \x and octal escapes are broken in Xen 4.17, so control characters are refused rather
 * than escaped: a kernel command line has no use for them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "drivers/driver.h"

extern char **environ;

#define XL_QUICK_TIMEOUT_S 15.0  /* info, domid, list, shutdown */
#define XL_CREATE_TIMEOUT_S 60.0 /* create builds the domain's memory: large guests take a while */
#define XL_DESTROY_TIMEOUT_S 60.0
#define XEN_CONFIG_NAME "xen.cfg"

struct xl_result {
	int exit_code;     /* 0-255, or 128 + signal */
	char output[4096]; /* stdout and stderr, truncated, NUL-terminated */
	size_t len;
};

static const char *xl_path(const struct drv_options *o)
{
	return o->xl_binary && o->xl_binary[0] ? o->xl_binary : "xl";
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void output_add(struct xl_result *res, const char *buf, size_t n)
{
	size_t room = sizeof res->output - 1 - res->len;
	if (n > room)
		n = room;
	memcpy(res->output + res->len, buf, n);
	res->len += n;
	res->output[res->len] = '\0';
}

/* Reads what the pipe holds now; returns false at end of file or on error. */
static bool drain(int fd, struct xl_result *res)
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

/* Runs the toolstack with argv (argv[0] is replaced by the xl path) and waits at most
 * timeout_s for it to exit. 0 when it ran (look at res->exit_code), or -errno when it
 * could not be run or was killed at the deadline (-ETIMEDOUT). */
static int xl_run(const struct drv_options *o, const char *const *argv, double timeout_s, struct xl_result *res)
{
	const char *path = xl_path(o);
	char *args[16];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int pipefd[2], pidfd, status, rc, n = 0;
	pid_t pid;
	double deadline = now_s() + timeout_s;
	bool exited = false, open_pipe = true;

	memset(res, 0, sizeof *res);
	args[n++] = (char *)path;
	for (int i = 1; argv[i] && n < (int)(sizeof args / sizeof args[0]) - 1; i++)
		args[n++] = (char *)argv[i];
	args[n] = NULL;

	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	/* xl gets 0-2 only: the node's own sockets (libevent opens its client sockets
	 * without O_CLOEXEC) must not live on in a toolstack process. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, path, &fa, &attr, args, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		close(pipefd[0]);
		return -rc;
	}
	/* The read end is non-blocking (the dup2'd write end in the child is a separate
	 * descriptor, so the flag does not reach xl's output, which is blocking there). */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	/* Wait for the process, not for end of file: `xl create` leaves a daemon behind that
	 * may hold the pipe for a moment before it reopens its output on its own log. */
	while (!exited) {
		struct pollfd p[2] = {{.fd = pipefd[0], .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
		double left = deadline - now_s();
		int ms;
		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			if (pidfd >= 0)
				close(pidfd);
			close(pipefd[0]);
			return -ETIMEDOUT;
		}
		ms = pidfd >= 0 ? (int)(left * 1000) + 1 : 20; /* no pidfd: poll waitpid */
		if (!open_pipe)
			p[0].fd = -1;
		if (poll(p, 2, ms) < 0 && errno != EINTR)
			break;
		if (open_pipe && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			open_pipe = drain(pipefd[0], res);
		if (pidfd < 0 || (p[1].revents & POLLIN)) {
			rc = (int)waitpid(pid, &status, pidfd < 0 ? WNOHANG : 0);
			if (rc < 0 && errno != EINTR) { /* reaped by someone else: status unknown */
				if (pidfd >= 0)
					close(pidfd);
				close(pipefd[0]);
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
		drain(pipefd[0], res);
	if (pidfd >= 0)
		close(pidfd);
	close(pipefd[0]);
	res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	/* keep one line for messages: the last non-empty one says most; and only printable
	 * ASCII, since error messages end up in JSON */
	while (res->len && (res->output[res->len - 1] == '\n' || res->output[res->len - 1] == ' '))
		res->output[--res->len] = '\0';
	for (size_t i = 0; i < res->len; i++)
		if (res->output[i] != '\n' && ((unsigned char)res->output[i] < 0x20 || (unsigned char)res->output[i] >= 0x7f))
			res->output[i] = '?';
	return 0;
}

/* The last line of xl's output, for error messages. */
static const char *last_line(const struct xl_result *res)
{
	const char *nl = strrchr(res->output, '\n');
	return res->len == 0 ? "(no output)" : nl ? nl + 1 : res->output;
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

/* "pvh" unless the spec says config.type = "pv" (ClickOS and MiniOS are PV guests). */
static int guest_type(const struct drv_start_request *r, const char **type, char *err, size_t errlen)
{
	const json_t *t = json_object_get(r->config, "type");
	*type = "pvh";
	if (!t)
		return 0;
	if (!json_is_string(t) || (strcmp(json_string_value(t), "pv") != 0 && strcmp(json_string_value(t), "pvh") != 0)) {
		snprintf(err, errlen, "xen: config.type must be \"pvh\" or \"pv\" (a diskless unikernel)");
		return -EINVAL;
	}
	*type = json_string_value(t);
	return 0;
}

/* Writes the xl config for r into path (atomically). */
static int write_config(const struct drv_start_request *r, const char *name, const char *path, char *err,
                        size_t errlen)
{
	const char *type;
	char *text = NULL;
	size_t len = 0;
	long vcpus;
	FILE *f;
	int rc;

	if ((rc = guest_type(r, &type, err, errlen)) < 0)
		return rc;
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

/* ---- the driver ---- */

static int xen_probe(const struct drv_options *o, json_t **info, char *err, size_t errlen)
{
	const char *argv[] = {"xl", "info", NULL};
	struct xl_result res;
	char version[128] = "";
	char *line;
	int rc;

	if ((rc = xl_run(o, argv, XL_QUICK_TIMEOUT_S, &res)) < 0) {
		snprintf(err, errlen, "cannot run %s info: %s", xl_path(o), strerror(-rc));
		return rc;
	}
	if (res.exit_code != 0) {
		snprintf(err, errlen, "%s info failed (exit %d): %s", xl_path(o), res.exit_code, last_line(&res));
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
	if (!version[0]) {
		snprintf(err, errlen, "%s info printed no xen_version line", xl_path(o));
		return -ENOTSUP;
	}
	*info = json_pack("{s:s, s:s, s:s}", "version", version, "toolstack", "xl", "xl", xl_path(o));
	return 0;
}

static int xen_destroy(const struct drv_options *o, const char *name)
{
	const char *argv[] = {"xl", "destroy", name, NULL};
	struct xl_result res;
	int rc = xl_run(o, argv, XL_DESTROY_TIMEOUT_S, &res);
	if (rc < 0)
		return rc;
	return res.exit_code == 0 ? 0 : -EIO;
}

static int xen_start(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h, char *err,
                     size_t errlen)
{
	char name[sizeof h->domain], path[4096];
	struct xl_result res;
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
	if ((rc = write_config(r, name, path, err, errlen)) < 0)
		return rc;

	const char *argv[] = {"xl", "create", "-q", path, NULL};
	rc = xl_run(o, argv, XL_CREATE_TIMEOUT_S, &res);
	if (rc == -ETIMEDOUT) {
		/* xl may have got as far as creating the domain: do not leave it behind */
		xen_destroy(o, name);
		snprintf(err, errlen, "%s create did not finish within %.0f s", xl_path(o), XL_CREATE_TIMEOUT_S);
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot run %s: %s", xl_path(o), strerror(-rc));
		return rc;
	}
	if (res.exit_code != 0) {
		snprintf(err, errlen, "xl create failed (exit %d): %.200s", res.exit_code, last_line(&res));
		return -EIO;
	}
	snprintf(h->domain, sizeof h->domain, "%s", name);
	return 0;
}

/* Is the domain there? `xl domid NAME` answers; when it fails, `xl list` tells a domain
 * that is gone from a toolstack that does not work. */
static int xen_status(const struct drv_options *o, struct drv_handle *h, bool *alive)
{
	const char *domid[] = {"xl", "domid", h->domain, NULL}, *list[] = {"xl", "list", NULL};
	struct xl_result res;
	size_t n = strlen(h->domain);
	int rc;

	*alive = false;
	if (!h->domain[0])
		return -EINVAL;
	if ((rc = xl_run(o, domid, XL_QUICK_TIMEOUT_S, &res)) < 0)
		return rc;
	if (res.exit_code == 0) {
		*alive = true;
		return 0;
	}
	if ((rc = xl_run(o, list, XL_QUICK_TIMEOUT_S, &res)) < 0)
		return rc;
	if (res.exit_code != 0)
		return -EIO;
	/* lines: "NAME   ID   Mem VCPUs State Time(s)"; the name is the first column */
	for (const char *line = res.output; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, h->domain, n) == 0 && (line[n] == ' ' || line[n] == '\t')) {
			*alive = true; /* listed although domid failed: say alive, ask again later */
			break;
		}
	}
	return 0;
}

static int xen_stop(const struct drv_options *o, struct drv_handle *h, bool force)
{
	const char *shutdown[] = {"xl", "shutdown", h->domain, NULL};
	struct xl_result res;
	bool alive;
	int rc;

	if (!h->domain[0])
		return -EINVAL;
	if (force) {
		rc = xen_destroy(o, h->domain);
	} else {
		/* without -w: the request is delivered and the guest shuts down when it will */
		rc = xl_run(o, shutdown, XL_QUICK_TIMEOUT_S, &res);
		if (rc == 0 && res.exit_code != 0)
			rc = -EIO;
	}
	if (rc == -EIO && xen_status(o, h, &alive) == 0 && !alive)
		return -ESRCH; /* it was already gone */
	return rc;
}

/* {"type": "pvh"|"pv"} */
static const char *const config_fields[] = {"type", NULL};
static const char *const guest_types[] = {"pvh", "pv", NULL};
static const char *const *const config_choices[] = {guest_types};

static int xen_config_check(const json_t *config, const char **executable, struct mv_error *err)
{
	*executable = NULL;
	return drv_config_choices(config, config_fields, config_choices, err);
}

const struct driver driver_xen = {
	.name = "xen",
	.boots_image = true,
	.network = DRV_NET_BRIDGE,
	.config_check = xen_config_check,
	.probe = xen_probe,
	.start = xen_start,
	.recover = drv_domain_recover,
	.adopt = drv_domain_adopt,
	.status = xen_status,
	.stop = xen_stop,
};
