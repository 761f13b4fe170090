/* qemu — a diskless Micro-VNF under QEMU: direct kernel boot (-kernel, -initrd, -append),
 * no disk of any kind, the microvm machine for kernels that boot there (a PVH ELF note or
 * a multiboot header: no firmware, no PCI, no legacy timers), a minimal pc otherwise;
 * KVM when /dev/kvm can be opened, TCG otherwise. The first serial port goes to the
 * instance's serial log, a QMP socket per instance serves the clean stop.
 *
 * QEMU is a process of ours like exec's (posix_spawn through proc_spawn, never a shell, its
 * own session, clean signal state), so pidfds, reaping and recovery are proc.c's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "drivers/driver.h"
#include "drivers/proc.h"

#define QEMU_DEFAULT_BINARY "qemu-system-x86_64"
#define QEMU_MAX_ARGS 64
#define QEMU_VERSION_TIMEOUT_MS 5000
#define QMP_QUIT_TIMEOUT_MS 200 /* the node's loop waits this long at most for a stop */
#define QMP_VCPUS_TIMEOUT_MS 1000 /* stop, cont: on a worker */
#define MULTIBOOT_SEARCH 8192   /* the multiboot v1 header is in the first 8 KiB */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define KVM_GET_API_VERSION 0xAE00 /* _IO(KVMIO, 0x00) from <linux/kvm.h> */
#define KVM_API_VERSION 12

/* ---- the binary and the host ---- */

/* The qemu binary as an absolute path: drv_options.qemu_binary (a path, or a name looked up
 * in PATH like the default). 0 or -errno. */
static int qemu_find_binary(const struct drv_options *o, char *out, size_t outlen)
{
	const char *name = o->qemu_binary && *o->qemu_binary ? o->qemu_binary : QEMU_DEFAULT_BINARY;
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	int rc = -ENOENT;

	if (strchr(name, '/')) {
		if ((size_t)snprintf(out, outlen, "%s", name) >= outlen)
			return -ENAMETOOLONG;
		return access(out, X_OK) == 0 ? 0 : -errno;
	}
	if (!(copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin")))
		return -ENOMEM;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if ((size_t)snprintf(out, outlen, "%s/%s", *dir ? dir : ".", name) >= outlen)
			continue;
		if (access(out, X_OK) == 0) {
			rc = 0;
			break;
		}
	}
	free(copy);
	return rc;
}

/* /dev/kvm opens read-write and speaks the one KVM API there is. */
static bool kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	bool ok;
	if (fd < 0)
		return false;
	ok = ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
	close(fd);
	return ok;
}

static int64_t now_ms(void) { return clock_mono_us() / 1000; }

/* Runs `qemu --version` (bounded) and extracts "X.Y.Z" from its first line. */
static int qemu_version(const char *binary, char *version, size_t vlen, char *err, size_t errlen)
{
	char *argv[] = {(char *)binary, "--version", NULL};
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
	struct drv_handle h = {.pidfd = -1};
	char out[512];
	size_t n = 0;
	int pipefd[2], rc, status = 0;
	int64_t deadline = now_ms() + QEMU_VERSION_TIMEOUT_MS;
	const char *p;

	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	struct proc_spawn_request sr = {.path = binary, .argv = argv, .envp = envp, .fds = {-1, pipefd[1], pipefd[1]}};
	rc = proc_spawn(&sr, &h, err, errlen);
	close(pipefd[1]);
	if (rc < 0) {
		close(pipefd[0]);
		return rc;
	}
	for (;;) {
		struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
		int64_t left = deadline - now_ms();
		int ready = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		ssize_t got;
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0) {
			snprintf(err, errlen, "%s --version did not answer within %d ms", binary, QEMU_VERSION_TIMEOUT_MS);
			rc = -ETIMEDOUT;
			proc_signal(&h, SIGKILL);
			break;
		}
		got = read(pipefd[0], out + n, sizeof out - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
		if (n == sizeof out - 1)
			break;
	}
	close(pipefd[0]);
	out[n] = '\0';
	if (rc == 0 && n == sizeof out - 1)
		proc_signal(&h, SIGKILL); /* talks too much to be qemu --version */
	while (waitpid(h.pid, &status, 0) < 0 && errno == EINTR)
		;
	proc_handle_close(&h);
	if (rc < 0)
		return rc;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "%s --version failed: %.120s", binary, out);
		return -ENOEXEC;
	}
	if (!(p = strstr(out, "version "))) {
		snprintf(err, errlen, "%s --version printed no version: %.120s", binary, out);
		return -ENOEXEC;
	}
	p += strlen("version ");
	n = strspn(p, "0123456789.");
	if (n == 0 || n >= vlen) {
		snprintf(err, errlen, "%s --version printed no version: %.120s", binary, out);
		return -ENOEXEC;
	}
	memcpy(version, p, n);
	version[n] = '\0';
	return 0;
}

static int qemu_probe(const struct drv_options *o, json_t **info, char *err, size_t errlen)
{
	char binary[PATH_MAX], version[64];
	int rc;

	if ((rc = qemu_find_binary(o, binary, sizeof binary)) < 0) {
		snprintf(err, errlen, "%s not found%s: %s", o->qemu_binary ? o->qemu_binary : QEMU_DEFAULT_BINARY,
		         o->qemu_binary && strchr(o->qemu_binary, '/') ? "" : " in PATH", strerror(-rc));
		return rc;
	}
	if ((rc = qemu_version(binary, version, sizeof version, err, errlen)) < 0)
		return rc;
	*info = json_pack("{s:s, s:s, s:s, s:s}", "version", version, "accel", kvm_usable() ? "kvm" : "tcg",
	                  "machine", "microvm", "binary", binary);
	return 0;
}

/* ---- which machine the kernel boots on ---- */

static bool read_full(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);
	return n == (ssize_t)len;
}

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Does this ELF note segment hold Xen's PHYS32_ENTRY note (the PVH entry point)? */
static bool notes_have_pvh(const unsigned char *notes, size_t len)
{
	size_t off = 0;
	while (off + 12 <= len) {
		uint32_t namesz = le32(notes + off), descsz = le32(notes + off + 4), type = le32(notes + off + 8);
		size_t name_off = off + 12;
		size_t desc_off = name_off + (((size_t)namesz + 3) & ~(size_t)3);
		if (namesz > len || descsz > len || desc_off > len)
			return false;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && memcmp(notes + name_off, "Xen", 4) == 0)
			return true;
		off = desc_off + (((size_t)descsz + 3) & ~(size_t)3);
	}
	return false;
}

/* An ELF kernel (32 or 64-bit, little-endian) with a PVH entry note? */
static bool elf_has_pvh_note(int fd, const unsigned char *hdr, size_t hlen)
{
	bool is64;
	uint64_t phoff;
	unsigned phentsize, phnum;

	if (hlen < 64 || memcmp(hdr, "\177ELF", 4) != 0 || hdr[5] != 1 /* ELFDATA2LSB */)
		return false;
	is64 = hdr[4] == 2;
	phoff = is64 ? le64(hdr + 32) : le32(hdr + 28);
	phentsize = le16(hdr + (is64 ? 54 : 42));
	phnum = le16(hdr + (is64 ? 56 : 44));
	if (phentsize < (is64 ? 56u : 32u) || phentsize > 128 || phnum > 64)
		return false;
	for (unsigned i = 0; i < phnum; i++) {
		unsigned char ph[128], notes[4096];
		uint64_t off, size;
		if (!read_full(fd, ph, phentsize, (off_t)(phoff + (uint64_t)i * phentsize)))
			return false;
		if (le32(ph) != 4 /* PT_NOTE */)
			continue;
		off = is64 ? le64(ph + 8) : le32(ph + 4);
		size = is64 ? le64(ph + 32) : le32(ph + 16);
		if (size > sizeof notes)
			size = sizeof notes;
		if (off > (uint64_t)INT64_MAX - size || !read_full(fd, notes, (size_t)size, (off_t)off))
			continue;
		if (notes_have_pvh(notes, (size_t)size))
			return true;
	}
	return false;
}

static bool has_multiboot_header(const unsigned char *buf, size_t len)
{
	for (size_t off = 0; off + 12 <= len; off += 4) {
		uint32_t magic = le32(buf + off), flags = le32(buf + off + 4), sum = le32(buf + off + 8);
		if (magic == 0x1BADB002u && (uint32_t)(magic + flags + sum) == 0)
			return true;
	}
	return false;
}

/* The spec's optional config, as qemu_config_check accepted it at the core:
 * {"machine": "microvm"|"pc", "accel": "kvm"|"tcg"}; NULL where it says nothing. */
struct qemu_config {
	const char *machine;
	const char *accel;
};

static const char *const config_fields[] = {"machine", "accel", NULL};
static const char *const machines[] = {"microvm", "pc", NULL};
static const char *const accels[] = {"kvm", "tcg", NULL};
static const char *const *const config_choices[] = {machines, accels};

static int qemu_config_check(const json_t *config, const char **executable, struct mv_error *err)
{
	*executable = NULL;
	return drv_config_choices(config, config_fields, config_choices, err);
}

static int parse_config(const json_t *cfg, struct qemu_config *c, char *err, size_t errlen)
{
	struct mv_error e;
	const char *none;
	/* checked at the core already; again here, as it goes on QEMU's command line */
	if (qemu_config_check(cfg, &none, &e) < 0) {
		snprintf(err, errlen, "qemu: %s", e.message);
		return -EINVAL;
	}
	c->machine = json_string_value(json_object_get(cfg, "machine"));
	c->accel = json_string_value(json_object_get(cfg, "accel"));
	if (!c->accel)
		c->accel = kvm_usable() ? "kvm" : "tcg";
	else if (strcmp(c->accel, "kvm") == 0 && !kvm_usable()) {
		snprintf(err, errlen, "qemu: config.accel is kvm but /dev/kvm is not usable on this node");
		return -ENODEV;
	}
	return 0;
}

/* The machine for this kernel unless the config chose: microvm for a PVH or multiboot
 * kernel, pc for anything else (a Linux bzImage boots on pc without the kernel options
 * microvm needs). Checks the kernel is there and readable. 0 or -errno with words. */
static int choose_machine(const char *kernel, struct qemu_config *c, char *err, size_t errlen)
{
	unsigned char buf[MULTIBOOT_SEARCH];
	ssize_t n;
	int fd, rc;

	if ((fd = open(kernel, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "qemu: cannot open kernel %.200s: %s", kernel, strerror(-rc));
		return rc;
	}
	n = pread(fd, buf, sizeof buf, 0);
	if (!c->machine)
		c->machine = n > 0 && (has_multiboot_header(buf, (size_t)n) || elf_has_pvh_note(fd, buf, (size_t)n))
		                     ? "microvm"
		                     : "pc";
	close(fd);
	if (n <= 0) {
		snprintf(err, errlen, "qemu: kernel %.200s is empty or unreadable", kernel);
		return -ENOEXEC;
	}
	return 0;
}

/* ---- the command line ---- */

struct argv_buf {
	char *v[QEMU_MAX_ARGS + 1];
	int n;
};

static void arg_add(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg_add(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;
	if (a->n >= QEMU_MAX_ARGS)
		fatal("qemu: more than %d arguments", QEMU_MAX_ARGS);
	va_start(ap, fmt);
	if (vasprintf(&a->v[a->n++], fmt, ap) < 0)
		fatal("vasprintf");
	va_end(ap);
	a->v[a->n] = NULL;
}

static void argv_free(struct argv_buf *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/* QEMU splits option values at commas: a path or name that goes inside one must not have
 * any (nor control characters). */
static bool option_safe(const char *s)
{
	for (; *s; s++)
		if (*s == ',' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

static bool word_valid(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n > 0 && n <= max &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int build_argv(const char *binary, const struct drv_start_request *r, const struct qemu_config *c,
                      const char *serial_log, const char *qmp, struct argv_buf *a, char *err, size_t errlen)
{
	bool microvm = strcmp(c->machine, "microvm") == 0;
	long vcpus;
	int rc;

	if ((rc = drv_vm_request_check("qemu", r, &vcpus, err, errlen)) < 0)
		return rc;

	if (!option_safe(serial_log) || !option_safe(qmp) || (r->initrd && !option_safe(r->initrd))) {
		snprintf(err, errlen, "qemu: paths with commas or control characters are not supported "
		                      "(serial log, QMP socket, initrd)");
		return -EINVAL;
	}
	if (r->tap && !word_valid(r->tap, 15)) {
		snprintf(err, errlen, "qemu: invalid tap name %.32s", r->tap);
		return -EINVAL;
	}
	arg_add(a, "%s", binary);
	if (r->instance_id && word_valid(r->instance_id, 64))
		arg_add(a, "-name"), arg_add(a, "microvim-%s", r->instance_id);
	arg_add(a, "-M");
	arg_add(a, microvm ? "microvm,pit=off,pic=off,rtc=off" : "pc");
	arg_add(a, "-accel");
	arg_add(a, "%s", c->accel);
	arg_add(a, "-nodefaults");
	arg_add(a, "-no-user-config");
	arg_add(a, "-display");
	arg_add(a, "none");
	arg_add(a, "-no-reboot"); /* a guest that crashes or reboots ends the instance */
	arg_add(a, "-m");
	arg_add(a, "%lldM", r->memory_mb); /* 1 MiB .. MV_MEMORY_MB_MAX: drv_vm_request_check */
	arg_add(a, "-smp");
	arg_add(a, "%ld", vcpus);
	arg_add(a, "-kernel");
	arg_add(a, "%s", r->kernel);
	if (r->initrd)
		arg_add(a, "-initrd"), arg_add(a, "%s", r->initrd);
	if (r->cmdline && *r->cmdline)
		arg_add(a, "-append"), arg_add(a, "%s", r->cmdline);
	arg_add(a, "-serial");
	arg_add(a, "file:%s", serial_log);
	arg_add(a, "-qmp");
	arg_add(a, "unix:%s,server=on,wait=off", qmp);
	if (r->tap) {
		arg_add(a, "-netdev");
		arg_add(a, "tap,id=n0,ifname=%s,script=no,downscript=no", r->tap);
		arg_add(a, "-device");
		arg_add(a, microvm ? "virtio-net-device,netdev=n0" : "virtio-net-pci,netdev=n0");
	}
	return 0;
}

static int qemu_start(const struct drv_options *o, const struct drv_start_request *r, struct drv_handle *h,
                      char *err, size_t errlen)
{
	char binary[PATH_MAX], serial_log[PATH_MAX], qmp[sizeof h->control];
	char id_env[64];
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", id_env, NULL};
	struct qemu_config c = {NULL, NULL};
	struct argv_buf a = {.n = 0};
	int rc;

	/* lets a node that died before recording this process find it again (proc_adopt) */
	snprintf(id_env, sizeof id_env, "MICROVIM_INSTANCE_ID=%s", r->instance_id);

	if (!r->kernel || !*r->kernel) {
		snprintf(err, errlen, "qemu: no kernel (the instance needs an image)");
		return -EINVAL;
	}
	if ((rc = qemu_find_binary(o, binary, sizeof binary)) < 0) {
		snprintf(err, errlen, "qemu binary not found: %s", strerror(-rc));
		return rc;
	}
	if ((rc = parse_config(r->config, &c, err, errlen)) < 0 || (rc = choose_machine(r->kernel, &c, err, errlen)) < 0)
		return rc;
	if ((size_t)snprintf(serial_log, sizeof serial_log, "%s%s", r->serial_log ? "" : r->dir,
	                     r->serial_log ? r->serial_log : "/serial.log") >= sizeof serial_log) {
		snprintf(err, errlen, "qemu: serial log path too long");
		return -ENAMETOOLONG;
	}
	/* a unix socket path has to fit in sun_path */
	if ((size_t)snprintf(qmp, sizeof qmp, "%s/qmp.sock", r->dir) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
		snprintf(err, errlen, "qemu: QMP socket path %.200s/qmp.sock is longer than a unix socket allows",
		         r->dir);
		return -ENAMETOOLONG;
	}
	if ((rc = build_argv(binary, r, &c, serial_log, qmp, &a, err, errlen)) < 0) {
		argv_free(&a);
		return rc;
	}
	unlink(qmp); /* a stale socket from a previous run of this dir */
	struct proc_spawn_request sr = {
		.path = binary, .argv = a.v, .envp = envp, .fds = {-1, r->stdout_fd, r->stderr_fd}, .dir = r->dir,
		.hold_fd = r->hold_fd,
	};
	drv_config_done(r);
	rc = proc_spawn(&sr, h, err, errlen);
	argv_free(&a);
	if (rc < 0)
		return rc;
	snprintf(h->control, sizeof h->control, "%s", qmp);
	return 0;
}

/* ---- stop and reap ---- */

/* QMP (QEMU Machine Protocol): a unix socket, one JSON object a line. A connection starts
 * with QEMU's greeting ({"QMP": ...}) and must negotiate (qmp_capabilities) before any
 * command; each command is answered {"return": ...} or {"error": ...}, and events
 * ({"event": ...}) come in between, skipped here. QEMU serves one connection at a time. */

static int qmp_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS && errno != EAGAIN) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Sends cmds (pipelined) on fd and waits, until deadline, for `want` answers. quit: QEMU
 * may close the socket instead of answering, which counts as done once all went out. 0
 * when QEMU said yes to each, -EPROTO when it refused one, -ETIMEDOUT, or -errno of the
 * socket. */
static int qmp_talk(int fd, const char *cmds, int want, int64_t deadline, bool is_quit)
{
	char buf[4096];
	size_t n = 0, sent = 0, len = strlen(cmds);
	int rc = -ETIMEDOUT, returns = 0;

	while (returns < want) {
		struct pollfd pfd = {.fd = fd, .events = (short)(POLLIN | (sent < len ? POLLOUT : 0))};
		int64_t left = deadline - now_ms();
		ssize_t got;
		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if ((pfd.revents & POLLOUT) && sent < len) {
			ssize_t w = send(fd, cmds + sent, len - sent, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN && errno != EINTR) {
				rc = -errno;
				break;
			}
			if (w > 0)
				sent += (size_t)w;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		got = recv(fd, buf + n, sizeof buf - 1 - n, 0);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got <= 0) {
			/* EOF after every command went out: QEMU is quitting */
			rc = is_quit && sent == len ? 0 : -ECONNRESET;
			break;
		}
		n += (size_t)got;
		buf[n] = '\0';
		for (char *line; (line = strchr(buf, '\n'));) {
			*line = '\0';
			if (strstr(buf, "\"return\""))
				returns++;
			else if (strstr(buf, "\"error\""))
				returns = want + 1; /* refused */
			n -= (size_t)(line + 1 - buf);
			memmove(buf, line + 1, n + 1);
		}
		if (n == sizeof buf - 1)
			n = 0; /* an event line longer than any we expect: drop it */
	}
	if (returns == want)
		rc = 0;
	else if (returns > want)
		rc = -EPROTO;
	return rc;
}

/* A fresh connection: negotiation and cmd pipelined in one write. With keep, the connection
 * stays open (negotiated) in *keep on success, for qmp_on_kept; else it is closed. */
static int qmp_command_keep(const char *path, const char *cmd, int timeout_ms, int *keep)
{
	char cmds[128];
	int fd, rc;
	if ((size_t)snprintf(cmds, sizeof cmds, "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"%s\"}\n", cmd) >=
	    sizeof cmds)
		return -EINVAL;
	if ((fd = qmp_connect(path)) < 0)
		return fd;
	rc = qmp_talk(fd, cmds, 2, now_ms() + timeout_ms, strcmp(cmd, "quit") == 0);
	if (rc == 0 && keep)
		*keep = fd;
	else
		close(fd);
	return rc;
}

static int qmp_command(const char *path, const char *cmd, int timeout_ms)
{
	return qmp_command_keep(path, cmd, timeout_ms, NULL);
}

/* cmd on a connection kept negotiated (one write, one answer: no connect, no greeting, no
 * negotiation); the connection is closed after, as QEMU serves one at a time and the next
 * command (a stop's quit) opens its own. */
static int qmp_on_kept(int fd, const char *cmd, int timeout_ms)
{
	char line[96];
	int rc;
	if ((size_t)snprintf(line, sizeof line, "{\"execute\":\"%s\"}\n", cmd) >= sizeof line)
		rc = -EINVAL;
	else
		rc = qmp_talk(fd, line, 1, now_ms() + timeout_ms, false);
	close(fd);
	return rc;
}

/* Gently: QMP quit (QEMU ends as on a power-off, and exits 0), SIGTERM when QMP does not
 * answer; by force: SIGKILL. */
static int qemu_stop(UNUSED const struct drv_options *o, struct drv_handle *h, bool force)
{
	if (h->pidfd < 0)
		return -ESRCH;
	if (!force && h->control[0] && qmp_command(h->control, "quit", QMP_QUIT_TIMEOUT_MS) == 0)
		return 0;
	return proc_signal(h, force ? SIGKILL : SIGTERM);
}

/* Warm pools (drivers/driver.h): QMP stop freezes the vCPUs where they are (the guest's
 * memory and devices stay as they were); cont lets them run on. Both leave the process as
 * it is: its pid, start time and QMP socket do not change. The pause keeps its QMP
 * connection, negotiated, for the resume: a take is then one write and one answer. */
static int qemu_no_qmp(struct drv_handle *h, const char *cmd, char *err, size_t errlen)
{
	if (h->pidfd >= 0 && h->control[0])
		return 0;
	snprintf(err, errlen, "qemu: no process or QMP socket to send %s to", cmd);
	return -ESRCH;
}

static int qemu_pause(UNUSED const struct drv_options *o, struct drv_handle *h, int *keep, char *err, size_t errlen)
{
	int rc;
	if (keep)
		*keep = -1;
	if ((rc = qemu_no_qmp(h, "stop", err, errlen)) < 0)
		return rc;
	if ((rc = qmp_command_keep(h->control, "stop", QMP_VCPUS_TIMEOUT_MS, keep)) < 0)
		snprintf(err, errlen, "qemu: QMP stop on %.200s: %s", h->control, strerror(-rc));
	return rc;
}

static int qemu_resume(UNUSED const struct drv_options *o, struct drv_handle *h, int keep, char *err, size_t errlen)
{
	int rc;
	if ((rc = qemu_no_qmp(h, "cont", err, errlen)) < 0) {
		if (keep >= 0)
			close(keep);
		return rc;
	}
	/* a kept connection QEMU dropped (it may have restarted its monitor): a fresh one */
	if (keep < 0 || (rc = qmp_on_kept(keep, "cont", QMP_VCPUS_TIMEOUT_MS)) == -ECONNRESET || rc == -EPIPE)
		rc = qmp_command(h->control, "cont", QMP_VCPUS_TIMEOUT_MS);
	if (rc < 0)
		snprintf(err, errlen, "qemu: QMP cont on %.200s: %s", h->control, strerror(-rc));
	return rc;
}

static int qemu_reap(struct drv_handle *h, int *exit_code, bool *code_known)
{
	int rc = proc_reap(h, exit_code, code_known);
	if (rc == 0 && h->control[0]) {
		/* QEMU leaves its listening socket behind; ours to clean */
		if (unlink(h->control) < 0 && errno != ENOENT)
			log_warn("qemu: unlink %s", h->control);
		h->control[0] = '\0';
	}
	return rc;
}

const struct driver driver_qemu = {
	.name = "qemu",
	.boots_image = true,
	.network = DRV_NET_TAP,
	.config_check = qemu_config_check,
	.probe = qemu_probe,
	.start = qemu_start,
	.stop = qemu_stop,
	.pause = qemu_pause,
	.resume = qemu_resume,
	.signal = proc_signal,
	.reap = qemu_reap,
	.recover = proc_recover,
	.adopt = proc_adopt,
};
