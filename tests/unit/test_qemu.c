/* test_qemu — the qemu driver for real: probe, boot the sample Micro-VNF (build/vnf/hello,
 * run from the repo root) under QEMU, see MICROVIM-VNF READY in its serial log, check the
 * command line has no disk, pause and resume it (warm pools: over a kept QMP connection),
 * stop it over QMP, by SIGTERM and by SIGKILL, then 20
 * start/stop cycles that must leave no QEMU process and no socket behind. Skipped (with a
 * line saying so, counting nothing) only when qemu-system-x86_64 is not installed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drivers/driver.h"
#include "unit.h"

extern const struct driver driver_qemu;

#define VNF_KERNEL "build/vnf/hello"
#define READY "MICROVIM-VNF READY"
#define READY_TIMEOUT_MS 10000
#define EXIT_TIMEOUT_MS 5000
#define CYCLES 20

static const struct drv_options opts = {.qemu_binary = NULL};
static char tmpdir[64];
static char kernel[PATH_MAX];
static int instances; /* numbers the instance dirs */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool qemu_installed(void)
{
	const char *path = getenv("PATH");
	char copy[4096], file[PATH_MAX], *save = NULL;
	snprintf(copy, sizeof copy, "%s", path ? path : "/usr/bin:/bin");
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(file, sizeof file, "%s/qemu-system-x86_64", d);
		if (access(file, X_OK) == 0)
			return true;
	}
	return false;
}

/* One instance: its dir, logs and the driver's handle. */
struct vm {
	char dir[128];
	char serial[160];
	struct drv_handle h;
	int64_t spawn_us; /* when start was called */
	int64_t ready_us; /* spawn → READY, or -1 */
	bool running;
};

static int vm_start(struct vm *vm, const char *spec_text, const char *cmdline, const char *tap, char *err,
                    size_t errlen)
{
	char path[PATH_MAX];
	json_t *spec = json_loads(spec_text, 0, NULL);
	int out, errfd, rc;

	memset(vm, 0, sizeof *vm);
	vm->h.pidfd = -1;
	vm->ready_us = -1;
	snprintf(vm->dir, sizeof vm->dir, "%s/i%d", tmpdir, instances++);
	mkdir(vm->dir, 0700);
	snprintf(vm->serial, sizeof vm->serial, "%s/serial.log", vm->dir);
	snprintf(path, sizeof path, "%s/stdout.log", vm->dir);
	out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	snprintf(path, sizeof path, "%s/stderr.log", vm->dir);
	errfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	struct drv_start_request r = {
		.instance_id = "0123456789abcdef",
		.name = "hello",
		.config = json_object_get(spec, "config"),
		.dir = vm->dir,
		.stdout_fd = out,
		.stderr_fd = errfd,
		.kernel = kernel,
		.cmdline = cmdline,
		.serial_log = vm->serial,
		.vcpus = 0.5,
		.memory_mb = 32,
		.tap = tap,
	};
	err[0] = '\0';
	vm->spawn_us = now_us();
	rc = driver_qemu.start(&opts, &r, &vm->h, err, errlen);
	vm->running = rc == 0;
	close(out);
	close(errfd);
	json_decref(spec);
	return rc;
}

/* Waits (bounded) for the pattern in the serial log; polling is fine in a test. */
static bool vm_wait_serial(struct vm *vm, const char *pattern, int timeout_ms)
{
	char buf[4096];
	int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
	do {
		int fd = open(vm->serial, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof buf - 1);
			close(fd);
			if (n > 0) {
				buf[n] = '\0';
				if (strstr(buf, pattern)) {
					if (vm->ready_us < 0)
						vm->ready_us = now_us() - vm->spawn_us;
					return true;
				}
			}
		}
		usleep(10000);
	} while (now_us() < deadline);
	return false;
}

/* Waits (bounded) for the pidfd to say the process ended, then reaps. Kills it for good
 * when it does not end in time, so that a failing test leaves nothing running. */
static int vm_wait_exit(struct vm *vm, int *code, bool *known)
{
	struct pollfd p = {.fd = vm->h.pidfd, .events = POLLIN};
	int rc, ready = poll(&p, 1, EXIT_TIMEOUT_MS);
	if (ready != 1) {
		driver_qemu.stop(&opts, &vm->h, true);
		poll(&p, 1, EXIT_TIMEOUT_MS);
	}
	rc = driver_qemu.reap(&vm->h, code, known);
	vm->running = false;
	return ready == 1 ? rc : -ETIMEDOUT;
}

/* Last resort for a failed check: nothing of ours stays alive. */
static void vm_cleanup(struct vm *vm)
{
	int code;
	bool known;
	if (vm->running) {
		driver_qemu.stop(&opts, &vm->h, true);
		vm_wait_exit(vm, &code, &known);
	}
}

static int proc_cmdline(pid_t pid, char *buf, size_t len, char **args, int max);

static bool file_contains(const char *path, const char *needle)
{
	char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* Is "-opt value" on the command line of pid? */
static bool has_option(pid_t pid, const char *opt, const char *value)
{
	char buf[8192], *args[128];
	int n = proc_cmdline(pid, buf, sizeof buf, args, 128);
	for (int i = 0; i + 1 < n; i++)
		if (strcmp(args[i], opt) == 0 && strcmp(args[i + 1], value) == 0)
			return true;
	return false;
}

/* Reads /proc/PID/cmdline into argv-like pieces; returns the count. */
static int proc_cmdline(pid_t pid, char *buf, size_t len, char **args, int max)
{
	char path[64];
	ssize_t n;
	int fd, count = 0;
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *p = buf; p < buf + n && count < max; p += strlen(p) + 1)
		args[count++] = p;
	return count;
}

static bool socket_live(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;
	bool live;
	if (strlen(path) >= sizeof sa.sun_path)
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return live;
}

/* QEMU processes whose command line mentions our temp dir (ours, from this run). */
static int count_our_qemus(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int count = 0;
	while (d && (e = readdir(d))) {
		char buf[8192], *args[128];
		int n;
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		n = proc_cmdline((pid_t)atoi(e->d_name), buf, sizeof buf, args, 128);
		if (n > 0 && strstr(args[0], "qemu-system")) {
			for (int i = 1; i < n; i++)
				if (strstr(args[i], tmpdir)) {
					count++;
					break;
				}
		}
	}
	if (d)
		closedir(d);
	return count;
}

static void test_probe(void)
{
	json_t *info = NULL;
	char err[256] = "";
	int rc = driver_qemu.probe(&opts, &info, err, sizeof err);
	CHECK_EQ_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "  probe: %s\n", err);
		return;
	}
	const char *version = json_string_value(json_object_get(info, "version"));
	const char *accel = json_string_value(json_object_get(info, "accel"));
	CHECK(version && version[0] >= '1' && version[0] <= '9');
	CHECK(accel && (strcmp(accel, "kvm") == 0 || strcmp(accel, "tcg") == 0));
	CHECK_STR(json_string_value(json_object_get(info, "machine")) ?: "", "microvm");
	printf("  qemu %s, accel %s\n", version ? version : "?", accel ? accel : "?");
	json_decref(info);
}

static const char *const disk_options[] = {"-drive", "-hda", "-hdb", "-hdc", "-hdd", "-cdrom", "-fda", "-fdb",
                                           "-blockdev", "-sd", "-mtdblock", "-pflash", "-snapshot", NULL};

/* Boot, READY, the command line, a QMP stop: the path a node takes. */
static void test_boot_ready_and_qmp_stop(void)
{
	struct vm vm;
	char err[256], buf[8192], *args[128];
	int n, code = -1, rc;
	bool known = false, has_kernel = false, microvm = false;
	struct stat st;

	rc = vm_start(&vm, "{\"driver\": \"qemu\"}", "microvim.test=1 console=ttyS0", NULL, err, sizeof err);
	CHECK_EQ_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "  start: %s\n", err);
		return;
	}
	CHECK(vm.h.pid > 0 && vm.h.pidfd >= 0 && vm.h.start_time > 0 && vm.h.is_child);
	CHECK(vm.h.control[0] != '\0' && strstr(vm.h.control, vm.dir) == vm.h.control);
	CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
	CHECK(vm_wait_serial(&vm, "cmdline: microvim.test=1 console=ttyS0", 1000));
	printf("  spawn -> READY: %.1f ms\n", (double)vm.ready_us / 1000);

	n = proc_cmdline(vm.h.pid, buf, sizeof buf, args, 128);
	CHECK(n > 4);
	for (int i = 0; i < n; i++) {
		for (int k = 0; disk_options[k]; k++)
			if (strcmp(args[i], disk_options[k]) == 0) {
				fprintf(stderr, "  disk option on the command line: %s\n", args[i]);
				CHECK(!"no disk option");
			}
		CHECK(!strstr(args[i], "virtio-blk") && !strstr(args[i], "scsi") && !strstr(args[i], "ide-"));
		if (strcmp(args[i], "-kernel") == 0 && i + 1 < n && strcmp(args[i + 1], kernel) == 0)
			has_kernel = true;
		if (strcmp(args[i], "-M") == 0 && i + 1 < n && strncmp(args[i + 1], "microvm,", 8) == 0)
			microvm = true;
		CHECK(strcmp(args[i], "-nographic") != 0 && strcmp(args[i], "stdio") != 0);
	}
	CHECK(has_kernel);
	CHECK(microvm);
	CHECK(stat(vm.h.control, &st) == 0 && S_ISSOCK(st.st_mode));

	char control[sizeof vm.h.control];
	pid_t pid = vm.h.pid;
	snprintf(control, sizeof control, "%s", vm.h.control);
	CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, false), 0);
	rc = vm_wait_exit(&vm, &code, &known);
	CHECK_EQ_INT(rc, 0);
	CHECK(known);
	CHECK_EQ_INT(code, 0); /* QMP quit: QEMU exits cleanly */
	CHECK(kill(pid, 0) < 0 && errno == ESRCH);
	CHECK(vm.h.pidfd < 0);
	CHECK(!socket_live(control));
	CHECK(stat(control, &st) < 0); /* removed by reap */
	snprintf(buf, sizeof buf, "%s/stderr.log", vm.dir);
	CHECK(!file_contains(buf, "terminating on signal")); /* QMP did it, not the SIGTERM fallback */
	vm_cleanup(&vm);
}

/* QEMU's run state ("running", "paused") asked on a fresh QMP connection, bounded; "" when
 * QMP did not answer (a kept connection still holds the monitor). */
static void qmp_status(const char *control, char *status, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *cmds = "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-status\"}\n";
	char buf[8192];
	size_t n = 0;
	int64_t deadline = now_us() + 2000000;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	status[0] = '\0';
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", control);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    send(fd, cmds, strlen(cmds), MSG_NOSIGNAL) != (ssize_t)strlen(cmds))
		goto out;
	while (n < sizeof buf - 1 && now_us() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		const char *st;
		ssize_t got;
		if (poll(&p, 1, 100) <= 0)
			continue;
		if ((got = recv(fd, buf + n, sizeof buf - 1 - n, 0)) <= 0)
			break;
		n += (size_t)got;
		buf[n] = '\0';
		if ((st = strstr(buf, "\"status\": \"")) && strchr(st + 11, '"')) {
			snprintf(status, len, "%.*s", (int)(strchr(st + 11, '"') - (st + 11)), st + 11);
			break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
}

/* Warm pools: pause keeps its QMP connection negotiated; resume through it is one command
 * and closes it (the monitor is free again after); a kept connection that was lost, or
 * none, makes resume open its own. */
static void test_pause_resume_kept_qmp(void)
{
	struct vm vm;
	char err[256], status[32];
	int keep = -2, rc;

	rc = vm_start(&vm, "{\"driver\": \"qemu\"}", "console=ttyS0", NULL, err, sizeof err);
	CHECK_EQ_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "  start: %s\n", err);
		return;
	}
	CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
	CHECK_EQ_INT(driver_qemu.pause(&opts, &vm.h, &keep, err, sizeof err), 0);
	CHECK(keep >= 0);
	int64_t t0 = now_us();
	CHECK_EQ_INT(driver_qemu.resume(&opts, &vm.h, keep, err, sizeof err), 0);
	printf("  resume on the kept connection: %.2f ms\n", (double)(now_us() - t0) / 1000);
	CHECK(fcntl(keep, F_GETFD) < 0 && errno == EBADF); /* resume closed it */
	qmp_status(vm.h.control, status, sizeof status);
	CHECK_STR(status, "running");

	/* no kept connection: pause and resume each open their own */
	CHECK_EQ_INT(driver_qemu.pause(&opts, &vm.h, NULL, err, sizeof err), 0);
	qmp_status(vm.h.control, status, sizeof status);
	CHECK_STR(status, "paused");
	t0 = now_us();
	CHECK_EQ_INT(driver_qemu.resume(&opts, &vm.h, -1, err, sizeof err), 0);
	printf("  resume on a fresh connection: %.2f ms\n", (double)(now_us() - t0) / 1000);
	qmp_status(vm.h.control, status, sizeof status);
	CHECK_STR(status, "running");

	/* a kept connection that broke (shut down under the driver): resume still works */
	CHECK_EQ_INT(driver_qemu.pause(&opts, &vm.h, &keep, err, sizeof err), 0);
	CHECK(keep >= 0);
	if (keep >= 0)
		shutdown(keep, SHUT_RDWR);
	rc = driver_qemu.resume(&opts, &vm.h, keep, err, sizeof err);
	CHECK_EQ_INT(rc, 0);
	if (rc < 0)
		fprintf(stderr, "  resume after a broken kept connection: %s\n", err);
	qmp_status(vm.h.control, status, sizeof status);
	CHECK_STR(status, "running");
	vm_cleanup(&vm);
}

/* Without a QMP socket the gentle stop falls back to SIGTERM; force is SIGKILL. */
static void test_sigterm_fallback_and_force(void)
{
	struct vm vm;
	char err[256], path[PATH_MAX];
	int code = -1;
	bool known = false;

	CHECK_EQ_INT(vm_start(&vm, "{\"driver\": \"qemu\"}", NULL, NULL, err, sizeof err), 0);
	CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
	vm.h.control[0] = '\0'; /* as after a node restart that kept no socket path */
	CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, false), 0);
	CHECK_EQ_INT(vm_wait_exit(&vm, &code, &known), 0);
	CHECK(known && code == 0); /* QEMU exits 0 on SIGTERM */
	snprintf(path, sizeof path, "%s/stderr.log", vm.dir);
	CHECK(file_contains(path, "terminating on signal 15"));
	vm_cleanup(&vm);

	CHECK_EQ_INT(vm_start(&vm, "{\"driver\": \"qemu\"}", NULL, NULL, err, sizeof err), 0);
	CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
	CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, true), 0);
	CHECK_EQ_INT(vm_wait_exit(&vm, &code, &known), 0);
	CHECK(known && code == 128 + SIGKILL);
	CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, false), -ESRCH); /* gone: nothing to signal */
	vm_cleanup(&vm);
}

/* {"config": {"machine": "pc"}} overrides the microvm choice; the kernel boots there too. */
static void test_machine_pc(void)
{
	struct vm vm;
	char err[256], buf[8192], *args[128];
	int n, code;
	bool known, pc = false;

	CHECK_EQ_INT(vm_start(&vm, "{\"driver\": \"qemu\", \"config\": {\"machine\": \"pc\"}}", NULL, NULL, err,
	                      sizeof err),
	             0);
	CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
	n = proc_cmdline(vm.h.pid, buf, sizeof buf, args, 128); /* complete once exec is done */
	for (int i = 0; i + 1 < n; i++)
		pc = pc || (strcmp(args[i], "-M") == 0 && strcmp(args[i + 1], "pc") == 0);
	CHECK(pc);
	printf("  machine pc: spawn -> READY: %.1f ms\n", (double)vm.ready_us / 1000);
	CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, false), 0);
	CHECK_EQ_INT(vm_wait_exit(&vm, &code, &known), 0);
	vm_cleanup(&vm);
}

/* {"config": {"accel": "tcg"}}: TCG even where KVM works (what CI runners without KVM do). */
static void test_accel_tcg(void)
{
	struct vm vm;
	char err[256];
	int code;
	bool known;

	CHECK_EQ_INT(vm_start(&vm, "{\"config\": {\"accel\": \"tcg\"}}", NULL, NULL, err, sizeof err), 0);
	CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
	CHECK(has_option(vm.h.pid, "-accel", "tcg"));
	printf("  accel tcg: spawn -> READY: %.1f ms\n", (double)vm.ready_us / 1000);
	CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, false), 0);
	CHECK_EQ_INT(vm_wait_exit(&vm, &code, &known), 0);
	vm_cleanup(&vm);
}

/* A tap on the command line (the node creates it in its network phase; here the test
 * does, through /dev/net/tun, as root). The guest has no driver for it: QEMU opening the
 * tap and booting is what is checked. */
static void test_tap(void)
{
	struct ifreq ifr;
	struct vm vm;
	char err[256];
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), code;
	bool known;

	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "mvq%d", (int)getpid() % 100000);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	CHECK(fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0 && ioctl(fd, TUNSETPERSIST, 1) == 0);
	if (fd >= 0)
		close(fd);
	CHECK_EQ_INT(vm_start(&vm, "{}", NULL, ifr.ifr_name, err, sizeof err), 0);
	CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
	snprintf(err, sizeof err, "tap,id=n0,ifname=%s,script=no,downscript=no", ifr.ifr_name);
	CHECK(has_option(vm.h.pid, "-netdev", err));
	CHECK(has_option(vm.h.pid, "-device", "virtio-net-device,netdev=n0"));
	CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, false), 0);
	CHECK_EQ_INT(vm_wait_exit(&vm, &code, &known), 0);
	CHECK(known && code == 0);
	vm_cleanup(&vm);
	/* a persistent tap goes away when its persist flag is cleared */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	CHECK(fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0 && ioctl(fd, TUNSETPERSIST, 0) == 0);
	if (fd >= 0)
		close(fd);
}

/* Bad requests fail before anything is spawned, with words. */
static void test_bad_requests(void)
{
	struct vm vm;
	char err[256], saved[PATH_MAX];

	CHECK_EQ_INT(vm_start(&vm, "{\"config\": {\"machine\": \"q35,accel=kvm\"}}", NULL, NULL, err, sizeof err),
	             -EINVAL);
	CHECK(strstr(err, "machine") != NULL);
	CHECK_EQ_INT(vm_start(&vm, "{\"config\": {\"accel\": \"hvf\"}}", NULL, NULL, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "accel") != NULL);
	CHECK_EQ_INT(vm_start(&vm, "{}", NULL, "tap0,script=/bin/evil", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "tap") != NULL);
	snprintf(saved, sizeof saved, "%s", kernel);
	snprintf(kernel, sizeof kernel, "%s/no-such-kernel", tmpdir);
	CHECK_EQ_INT(vm_start(&vm, "{}", NULL, NULL, err, sizeof err), -ENOENT);
	CHECK(strstr(err, "no-such-kernel") != NULL);
	snprintf(kernel, sizeof kernel, "%s", saved);
	CHECK(!vm.running);
}

/* 20 start/stop cycles: no QEMU process, no QMP socket left. */
static void test_cycles(void)
{
	int64_t ready[CYCLES], sum = 0, max = 0;
	int ok = 0;
	for (int i = 0; i < CYCLES; i++) {
		struct vm vm;
		char err[256], control[256];
		int code;
		bool known;
		if (vm_start(&vm, "{\"driver\": \"qemu\"}", NULL, NULL, err, sizeof err) < 0) {
			fprintf(stderr, "  cycle %d: start: %s\n", i, err);
			CHECK(!"start");
			continue;
		}
		snprintf(control, sizeof control, "%s", vm.h.control);
		CHECK(vm_wait_serial(&vm, READY, READY_TIMEOUT_MS));
		CHECK_EQ_INT(driver_qemu.stop(&opts, &vm.h, false), 0);
		CHECK_EQ_INT(vm_wait_exit(&vm, &code, &known), 0);
		CHECK(known && code == 0);
		CHECK(access(control, F_OK) < 0);
		vm_cleanup(&vm);
		if (vm.ready_us >= 0) {
			ready[ok++] = vm.ready_us;
			sum += vm.ready_us;
			max = vm.ready_us > max ? vm.ready_us : max;
		}
	}
	CHECK_EQ_INT(count_our_qemus(), 0);
	if (ok > 0) {
		/* insertion sort for the median: 20 values */
		for (int i = 1; i < ok; i++)
			for (int j = i; j > 0 && ready[j - 1] > ready[j]; j--) {
				int64_t t = ready[j];
				ready[j] = ready[j - 1];
				ready[j - 1] = t;
			}
		printf("  %d cycles: spawn -> READY p50 %.1f ms, mean %.1f ms, max %.1f ms\n", ok,
		       (double)ready[ok / 2] / 1000, (double)sum / ok / 1000, (double)max / 1000);
	}
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	while (d && (e = readdir(d))) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(path);
		else
			unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	if (!qemu_installed()) {
		printf("skipped: no qemu-system-x86_64 (scripts/install-deps installs qemu-system-x86)\n");
		printf("0 passed, 0 failed\n");
		return 0;
	}
	if (!realpath(VNF_KERNEL, kernel)) {
		fprintf(stderr, "%s: %s (run `make` first, from the repo root)\n", VNF_KERNEL, strerror(errno));
		printf("0 passed, 1 failed\n");
		return 1;
	}
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-qemu-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_probe);
	RUN(test_boot_ready_and_qmp_stop);
	RUN(test_pause_resume_kept_qmp);
	RUN(test_sigterm_fallback_and_force);
	RUN(test_machine_pc);
	RUN(test_accel_tcg);
	if (geteuid() == 0 && access("/dev/net/tun", R_OK | W_OK) == 0)
		RUN(test_tap);
	else
		printf("skip test_tap: needs root and /dev/net/tun\n");
	RUN(test_bad_requests);
	RUN(test_cycles);
	if (count_our_qemus() != 0) {
		fprintf(stderr, "  qemu processes left behind\n");
		unit_failed++;
	}
	remove_tree(tmpdir);
	UNIT_END();
}
