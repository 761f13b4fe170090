/* test_libvirt — the libvirt driver for real: this test starts its own virtlogd and libvirtd,
 * boots the sample Micro-VNF (build/vnf/hello, run from the repo root) as a transient domain
 * under QEMU/TCG through the driver, sees MICROVIM-VNF READY in the serial file, checks the
 * domain XML (direct kernel boot, no <disk>), stops it, and runs start/stop cycles that must
 * leave no domain and no QEMU process behind. Both daemons are stopped by PID at the end.
 *
 * Why the daemons run as "nobody" in session mode: a privileged (root) libvirtd keeps its
 * state in the machine's /run/libvirt and /var/lib/libvirt and reads /etc/libvirt/qemu.conf,
 * shared with any system libvirtd (tests/integration/test_libvirt_system.py runs one in a
 * mount namespace of its own for that). A session daemon of an unprivileged user keeps
 * everything under $HOME and $XDG_RUNTIME_DIR, here a temp dir.
 * The node (root) reaches it through "qemu:///session?socket=PATH"; the driver's code is the
 * same as for qemu:///system. Consequence: the guest's files must be readable (kernel) and
 * writable (the instance dir, for the serial file) by nobody, which the test arranges.
 *
 * Skipped (a line saying so, counting nothing) only when libvirtd or qemu-system-x86_64 is
 * not installed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/fs.h"
#include "common/log.h"
#include "drivers/driver.h"
#include "unit.h"

extern const struct driver driver_libvirt;

#define VNF_KERNEL "build/vnf/hello"
#define READY "MICROVIM-VNF READY"
#define READY_TIMEOUT_MS 20000
#define KERNEL_WAIT_S 120 /* build/vnf/hello may still be being written by its owner */
#define SOCKET_TIMEOUT_MS 30000
#define CYCLES 6

static struct drv_options opts;
static char tmpdir[64], uri[320], kernel[256], sockpath[256];
static uid_t nobody_uid;
static gid_t nobody_gid;
static pid_t virtlogd_pid = -1, libvirtd_pid = -1;
static int instances;
static char id_prefix[32]; /* "guest=mv-b0PPPPPP": this process's domains, not a concurrent run's */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void quiet(UNUSED void *a, UNUSED virErrorPtr e) {}

/* ---- the private daemons ---- */

static pid_t spawn_daemon(const char *prog, const char *name)
{
	char logpath[256], pidfile[256], home[128], run[128], config[128], cache[128], search[192];
	char *env[8], *argv[4];
	pid_t pid;

	snprintf(logpath, sizeof logpath, "%s/%s.log", tmpdir, name);
	snprintf(pidfile, sizeof pidfile, "--pid-file=%s/run/%s.pid", tmpdir, name);
	snprintf(home, sizeof home, "HOME=%s/home", tmpdir);
	snprintf(run, sizeof run, "XDG_RUNTIME_DIR=%s/run", tmpdir);
	snprintf(config, sizeof config, "XDG_CONFIG_HOME=%s/home/.config", tmpdir);
	snprintf(cache, sizeof cache, "XDG_CACHE_HOME=%s/home/.cache", tmpdir);
	env[0] = home;
	env[1] = run;
	env[2] = config;
	env[3] = cache;
	/* the one emulator the test uses and no other: libvirtd probes every qemu-system-* in
	 * its PATH at the first capabilities query (a second or more each, over a minute with
	 * every architecture installed); nothing the test needs of it is in /usr/bin (or /bin) */
	snprintf(search, sizeof search, "PATH=%s/bin:/usr/sbin:/sbin", tmpdir);
	env[4] = search;
	env[5] = NULL;
	argv[0] = (char *)prog;
	argv[1] = pidfile;
	argv[2] = NULL;

	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644), null = open("/dev/null", O_RDONLY);
		if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		setsid();
		if (setgroups(0, NULL) < 0 || setgid(nobody_gid) < 0 || setuid(nobody_uid) < 0)
			_exit(126);
		execve(prog, argv, env);
		_exit(127);
	}
	return pid;
}

static void stop_daemon(pid_t *pid, const char *name)
{
	int status;
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = -1;
			return;
		}
		sleep_ms(50);
	}
	fprintf(stderr, "  %s (pid %d) did not stop within 5 s: SIGKILL\n", name, (int)*pid);
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = -1;
}

static int chown_nobody(const char *path)
{
	return chown(path, nobody_uid, nobody_gid);
}

static bool installed(const char *path)
{
	return access(path, X_OK) == 0;
}

static bool start_daemons(void)
{
	char path[256];
	int64_t deadline;
	struct passwd *pw = getpwnam("nobody");
	virConnectPtr c = NULL;

	if (!pw) {
		fprintf(stderr, "  no user \"nobody\" to run the session libvirtd as\n");
		return false;
	}
	nobody_uid = pw->pw_uid;
	nobody_gid = pw->pw_gid;
	snprintf(path, sizeof path, "%s/home", tmpdir);
	mkdir(path, 0700);
	chown_nobody(path);
	snprintf(path, sizeof path, "%s/run", tmpdir);
	mkdir(path, 0700);
	chown_nobody(path);
	snprintf(path, sizeof path, "%s/instances", tmpdir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/bin", tmpdir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/bin/qemu-system-x86_64", tmpdir);
	if (symlink("/usr/bin/qemu-system-x86_64", path) < 0) {
		fprintf(stderr, "  cannot link %s: %s\n", path, strerror(errno));
		return false;
	}

	virtlogd_pid = spawn_daemon("/usr/sbin/virtlogd", "virtlogd");
	/* libvirtd would start a virtlogd of its own if ours is not listening yet */
	snprintf(path, sizeof path, "%s/run/libvirt/virtlogd-sock", tmpdir);
	for (deadline = now_us() + SOCKET_TIMEOUT_MS * 1000LL; access(path, F_OK) != 0 && now_us() < deadline;)
		sleep_ms(20);
	libvirtd_pid = spawn_daemon("/usr/sbin/libvirtd", "libvirtd");
	if (virtlogd_pid < 0 || libvirtd_pid < 0)
		return false;

	snprintf(sockpath, sizeof sockpath, "%s/run/libvirt/libvirt-sock", tmpdir);
	snprintf(uri, sizeof uri, "qemu:///session?socket=%s", sockpath);
	deadline = now_us() + SOCKET_TIMEOUT_MS * 1000LL;
	while (now_us() < deadline) {
		if (access(sockpath, F_OK) == 0 && (c = virConnectOpen(uri)))
			break;
		if (waitpid(libvirtd_pid, NULL, WNOHANG) == libvirtd_pid) {
			libvirtd_pid = -1;
			fprintf(stderr, "  libvirtd exited at start-up: see %s/libvirtd.log\n", tmpdir);
			return false;
		}
		sleep_ms(50);
	}
	if (!c) {
		fprintf(stderr, "  libvirtd did not answer on %s within %d s\n", sockpath, SOCKET_TIMEOUT_MS / 1000);
		return false;
	}
	virConnectClose(c);
	opts.libvirt_uri = uri;
	return true;
}

/* Destroys whatever a failed test left running, so the daemons can stop cleanly. */
static int destroy_all(void)
{
	virConnectPtr c = virConnectOpen(uri);
	virDomainPtr *doms = NULL;
	int n;
	if (!c)
		return -1;
	n = virConnectListAllDomains(c, &doms, 0);
	for (int i = 0; i < n; i++) {
		virDomainDestroy(doms[i]);
		virDomainFree(doms[i]);
	}
	free(doms);
	virConnectClose(c);
	return n;
}

static int count_domains(void)
{
	virConnectPtr c = virConnectOpen(uri);
	int n;
	if (!c)
		return -1;
	n = virConnectNumOfDomains(c);
	virConnectClose(c);
	return n;
}

/* QEMU processes whose command line names one of this run's domains. */
static int count_qemu(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], buf[8192];
		size_t len;
		FILE *f;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		len = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		for (size_t i = 0; i < len; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[len] = '\0';
		if (strstr(buf, "qemu-system") && strstr(buf, id_prefix))
			n++;
	}
	closedir(d);
	return n;
}

/* ---- one instance ---- */

struct inst {
	char id[17], dir[256], serial[300];
	struct drv_start_request r;
	struct drv_handle h;
	json_t *spec;
};

static void inst_init(struct inst *in)
{
	memset(in, 0, sizeof *in);
	instances++;
	snprintf(in->id, sizeof in->id, "%.8s%08x", id_prefix + strlen("guest=mv-"), (unsigned)instances);
	snprintf(in->dir, sizeof in->dir, "%s/instances/%s", tmpdir, in->id);
	mkdir(in->dir, 0750);
	chown_nobody(in->dir); /* the session libvirtd creates the serial file in it */
	snprintf(in->serial, sizeof in->serial, "%s/serial.log", in->dir);
	in->spec = json_pack("{s:s, s:s}", "driver", "libvirt", "image", "hello");
	in->r = (struct drv_start_request){.instance_id = in->id, .name = "vnf", .config = json_object_get(in->spec, "config"), .dir = in->dir,
	                                   .stdout_fd = -1, .stderr_fd = -1, .kernel = kernel, .vcpus = 1,
	                                   .memory_mb = 32, .serial_log = in->serial};
	in->h.pidfd = -1;
}

static void inst_done(struct inst *in)
{
	json_decref(in->spec);
}

/* Waits for READY in the serial file; returns ms from now, or -1. */
static int wait_ready(const char *serial, char *out, size_t outlen)
{
	int64_t t0 = now_us(), deadline = t0 + READY_TIMEOUT_MS * 1000LL;
	while (now_us() < deadline) {
		char *text = NULL;
		if (fs_read_file(serial, 1 << 20, &text, NULL) == 0) {
			bool seen = strstr(text, READY) != NULL;
			if (out)
				snprintf(out, outlen, "%s", text);
			free(text);
			if (seen)
				return (int)((now_us() - t0) / 1000);
		}
		sleep_ms(20);
	}
	return -1;
}

static char *domain_xml(const char *name)
{
	virConnectPtr c = virConnectOpen(uri);
	virDomainPtr d = c ? virDomainLookupByName(c, name) : NULL;
	char *xml = d ? virDomainGetXMLDesc(d, 0) : NULL;
	if (d)
		virDomainFree(d);
	if (c)
		virConnectClose(c);
	return xml;
}

static bool gone_within(struct inst *in, int ms)
{
	int64_t deadline = now_us() + ms * 1000LL;
	bool alive = true;
	while (now_us() < deadline) {
		if (driver_libvirt.status(&opts, &in->h, &alive) == 0 && !alive)
			return true;
		sleep_ms(20);
	}
	return false;
}

/* ---- tests ---- */

static void test_probe(void)
{
	struct drv_options bad = {.libvirt_uri = "qemu:///session?socket=/nonexistent/libvirt-sock"};
	json_t *info = NULL;
	char err[256] = "";
	int64_t t0;
	CHECK_EQ_INT(driver_libvirt.probe(&opts, &info, err, sizeof err), 0);
	if (err[0])
		fprintf(stderr, "  probe: %s\n", err);
	CHECK(info != NULL);
	CHECK(strncmp(json_string_value(json_object_get(info, "hypervisor")) ?: "", "QEMU ", 5) == 0);
	CHECK(json_string_value(json_object_get(info, "version")) != NULL);
	CHECK(json_string_value(json_object_get(info, "uri")) != NULL);
	/* nobody cannot open /dev/kvm: TCG */
	CHECK_STR(json_string_value(json_object_get(info, "domain_type")) ?: "", "qemu");
	{
		char *s = json_dumps(info, JSON_COMPACT);
		printf("  probe: %s\n", s);
		free(s);
	}
	json_decref(info);
	info = NULL;
	CHECK(driver_libvirt.probe(&bad, &info, err, sizeof err) < 0);
	CHECK(info == NULL && strstr(err, "/nonexistent/libvirt-sock") != NULL);

	t0 = now_us();
	for (int i = 0; i < 20; i++) {
		virConnectPtr c = virConnectOpen(uri);
		CHECK(c != NULL);
		if (c)
			virConnectClose(c);
	}
	printf("  measured: virConnectOpen + virConnectClose (the driver's per-call connection) %.2f ms mean\n",
	       (double)(now_us() - t0) / 20 / 1000.0);
}

static void test_boot(void)
{
	struct inst in;
	const char *cmdline = "microvim test & <escaped> 'quoted' \"double\"";
	char err[256] = "", serial[4096] = "", want[512], *xml;
	bool alive = false;
	int64_t t0, create_us;
	int ready_ms;

	inst_init(&in);
	in.r.cmdline = cmdline;
	in.r.vcpus = 0.5; /* rounded up to 1 */
	t0 = now_us();
	CHECK_EQ_INT(driver_libvirt.start(&opts, &in.r, &in.h, err, sizeof err), 0);
	create_us = now_us() - t0;
	if (err[0])
		fprintf(stderr, "  start: %s\n", err);
	snprintf(want, sizeof want, "mv-%s", in.id);
	CHECK_STR(in.h.domain, want);
	CHECK_EQ_INT(in.h.pid, 0);
	CHECK_EQ_INT(in.h.pidfd, -1);
	ready_ms = wait_ready(in.serial, serial, sizeof serial);
	CHECK(ready_ms >= 0);
	printf("  measured: start (virDomainCreateXML, with its connection) %.1f ms; READY in the serial file "
	       "%d ms after start returned\n",
	       (double)create_us / 1000.0, ready_ms);
	/* the command line went through the XML escaping and came back out of the guest */
	snprintf(want, sizeof want, "cmdline: %s", cmdline);
	CHECK(strstr(serial, want) != NULL);
	if (!strstr(serial, want))
		fprintf(stderr, "  serial was:\n%s\n", serial);

	xml = domain_xml(in.h.domain);
	CHECK(xml != NULL);
	if (xml) {
		CHECK(strstr(xml, "<disk") == NULL);
		CHECK(strstr(xml, "<kernel>") != NULL);
		CHECK(strstr(xml, "<serial type='file'>") != NULL);
		CHECK(strstr(xml, "<domain type='qemu'") != NULL);
		CHECK(strstr(xml, "<memory unit='KiB'>32768</memory>") != NULL);
		CHECK(strstr(xml, "<vcpu placement='static'>1</vcpu>") != NULL);
		CHECK(strstr(xml, "&amp; &lt;escaped&gt;") != NULL);
		free(xml);
	}
	CHECK_EQ_INT(count_qemu(), 1);
	CHECK_EQ_INT(driver_libvirt.status(&opts, &in.h, &alive), 0);
	CHECK(alive);

	/* a gentle stop ends the domain by itself (QEMU asked to quit), without the force the
	 * node's grace timer would otherwise need: an ACPI power-off the sample VNF ignores */
	CHECK_EQ_INT(driver_libvirt.stop(&opts, &in.h, false), 0);
	CHECK(gone_within(&in, 5000));
	CHECK_EQ_INT(driver_libvirt.stop(&opts, &in.h, true), -ESRCH);
	CHECK_EQ_INT(count_domains(), 0);
	CHECK_EQ_INT(count_qemu(), 0);
	inst_done(&in);
}

static void test_cycles(void)
{
	int64_t total = 0, worst = 0;
	for (int i = 0; i < CYCLES; i++) {
		struct inst in;
		char err[256] = "";
		bool alive = false;
		int64_t t0;
		inst_init(&in);
		t0 = now_us();
		CHECK_EQ_INT(driver_libvirt.start(&opts, &in.r, &in.h, err, sizeof err), 0);
		t0 = now_us() - t0;
		total += t0;
		worst = t0 > worst ? t0 : worst;
		if (err[0])
			fprintf(stderr, "  start: %s\n", err);
		CHECK(wait_ready(in.serial, NULL, 0) >= 0);
		CHECK_EQ_INT(driver_libvirt.status(&opts, &in.h, &alive), 0);
		CHECK(alive);
		CHECK_EQ_INT(driver_libvirt.stop(&opts, &in.h, true), 0);
		CHECK(gone_within(&in, 5000));
		inst_done(&in);
	}
	CHECK_EQ_INT(count_domains(), 0);
	CHECK_EQ_INT(count_qemu(), 0);
	printf("  measured: %d cycles, start %.1f ms mean, %.1f ms max (each booted to READY); no domain or qemu "
	       "left\n",
	       CYCLES, (double)total / CYCLES / 1000.0, (double)worst / 1000.0);
}

/* Waits until fd is readable; false after ms. */
static bool readable_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Exit events: the watcher connects, says "sweep" once, then names a destroyed domain at once. */
static void test_events(void)
{
	struct inst in;
	char err[256] = "", name[64] = "x";
	int fd = -1, fd2 = -1;
	int64_t t0;
	bool seen = false;

	CHECK(!driver_libvirt.watching());
	CHECK_EQ_INT(driver_libvirt.watch(&opts, &fd, err, sizeof err), 0);
	if (err[0])
		fprintf(stderr, "  watch: %s\n", err);
	CHECK(fd >= 0);
	CHECK_EQ_INT(driver_libvirt.watch(&opts, &fd2, err, sizeof err), -EBUSY);
	for (int i = 0; i < 500 && !driver_libvirt.watching(); i++)
		sleep_ms(20);
	CHECK(driver_libvirt.watching());
	CHECK(readable_within(fd, 5000));
	CHECK(driver_libvirt.watch_next(name, sizeof name));
	CHECK_STR(name, ""); /* the sweep after connecting */
	CHECK(!driver_libvirt.watch_next(name, sizeof name));

	inst_init(&in);
	CHECK_EQ_INT(driver_libvirt.start(&opts, &in.r, &in.h, err, sizeof err), 0);
	t0 = now_us();
	CHECK_EQ_INT(driver_libvirt.stop(&opts, &in.h, true), 0);
	/* other lifecycle events (started, resumed) are not queued: only the end */
	while (!seen && readable_within(fd, 5000))
		while (!seen && driver_libvirt.watch_next(name, sizeof name))
			seen = strcmp(name, in.h.domain) == 0;
	CHECK(seen);
	printf("  measured: destroy called -> its event queued %.1f ms later (the destroy is most of it)\n", (double)(now_us() - t0) / 1000.0);
	CHECK(!readable_within(fd, 0));
	inst_done(&in);

	driver_libvirt.unwatch();
	CHECK(!driver_libvirt.watching());
	CHECK(!driver_libvirt.watch_next(name, sizeof name));
	driver_libvirt.unwatch(); /* twice is harmless */
}

static void test_refused(void)
{
	struct inst in;
	char err[256] = "";
	struct drv_handle h = {.pidfd = -1};
	bool alive = true;

	inst_init(&in);
	in.r.memory_mb = 0;
	CHECK_EQ_INT(driver_libvirt.start(&opts, &in.r, &in.h, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "memory") != NULL);
	inst_done(&in);

	inst_init(&in);
	in.r.cmdline = "console=ttyS0\x01";
	CHECK_EQ_INT(driver_libvirt.start(&opts, &in.r, &in.h, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "control character") != NULL);
	inst_done(&in);

	inst_init(&in);
	in.r.kernel = "/nonexistent/kernel";
	CHECK(driver_libvirt.start(&opts, &in.r, &in.h, err, sizeof err) < 0);
	CHECK(strstr(err, "cannot create domain") != NULL);
	printf("  missing kernel: %s\n", err);
	CHECK(in.h.domain[0] == '\0');
	inst_done(&in);

	/* A bridge: the XML carries <interface type='bridge'>; a session daemon cannot attach
	 * to a bridge that does not exist (nor, unprivileged, to one that does without
	 * qemu-bridge-helper being allowed to): refused by libvirt, nothing left behind. */
	inst_init(&in);
	in.r.bridge = "mvnobr0";
	CHECK(driver_libvirt.start(&opts, &in.r, &in.h, err, sizeof err) < 0);
	printf("  bridge (unprivileged daemon, no such bridge): %s\n", err);
	inst_done(&in);

	CHECK_EQ_INT(count_domains(), 0);
	CHECK_EQ_INT(count_qemu(), 0);

	snprintf(h.domain, sizeof h.domain, "mv-doesnotexist");
	CHECK_EQ_INT(driver_libvirt.status(&opts, &h, &alive), 0);
	CHECK(!alive);
	CHECK_EQ_INT(driver_libvirt.stop(&opts, &h, true), -ESRCH);
	CHECK_EQ_INT(driver_libvirt.recover(&h), 0);
	h.domain[0] = '\0';
	CHECK_EQ_INT(driver_libvirt.recover(&h), -ESRCH);
}

int main(void)
{
	char src[PATH_MAX];
	int waited = 0;

	if (!installed("/usr/sbin/libvirtd") || !installed("/usr/sbin/virtlogd") ||
	    !installed("/usr/bin/qemu-system-x86_64")) {
		printf("  SKIP: libvirtd, virtlogd or qemu-system-x86_64 is not installed (scripts/install-deps)\n");
		UNIT_END();
	}
	while (access(VNF_KERNEL, R_OK) != 0 && waited < KERNEL_WAIT_S) {
		if (waited == 0)
			printf("  waiting up to %d s for %s\n", KERNEL_WAIT_S, VNF_KERNEL);
		sleep_ms(1000);
		waited++;
	}
	virSetErrorFunc(NULL, quiet);
	snprintf(id_prefix, sizeof id_prefix, "guest=mv-b0%06x", (unsigned)getpid() & 0xffffffu);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-libvirt.XXXXXX");
	if (!mkdtemp(tmpdir) || chmod(tmpdir, 0755) < 0 || !realpath(VNF_KERNEL, src)) {
		fprintf(stderr, "test_libvirt: no temp dir, or no %s (run from the repo root after make)\n", VNF_KERNEL);
		return 1;
	}
	/* a copy nobody can read, wherever the repo lives */
	snprintf(kernel, sizeof kernel, "%s/hello", tmpdir);
	{
		char *data = NULL;
		size_t len = 0;
		if (fs_read_file(src, 16 << 20, &data, &len) < 0 || fs_write_atomic(kernel, data, len, false) < 0 ||
		    chmod(kernel, 0644) < 0) {
			fprintf(stderr, "test_libvirt: cannot copy %s to %s\n", src, kernel);
			free(data);
			return 1;
		}
		free(data);
	}

	if (!start_daemons()) {
		unit_current = "start_daemons";
		unit_failed++;
		printf("FAIL start_daemons (logs in %s)\n", tmpdir);
	} else {
		printf("  own libvirtd pid %d, virtlogd pid %d, %s\n", (int)libvirtd_pid, (int)virtlogd_pid, uri);
		RUN(test_probe);
		RUN(test_boot);
		RUN(test_cycles);
		RUN(test_events);
		RUN(test_refused);
		if (destroy_all() > 0)
			fprintf(stderr, "  destroyed domains a failed test left\n");
	}
	stop_daemon(&libvirtd_pid, "libvirtd");
	stop_daemon(&virtlogd_pid, "virtlogd");
	if (unit_failed == 0)
		fs_remove_tree(tmpdir);
	else
		printf("  left %s for inspection\n", tmpdir);
	UNIT_END();
}
