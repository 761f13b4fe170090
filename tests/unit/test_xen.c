/* test_xen — the xen driver against the xl STAND-IN toolstack (tests/xl-standin: xl,
 * xlcheck, xenstore-standin; this machine has no Xen). The stand-in checks each call's
 * arguments, parses every config with Xen's own parser, libxlutil, reads the kernel's Xen
 * ELF notes to refuse what Xen's domain builder refuses, keeps a fake xenstore (a directory
 * tree) with watches, and logs each "guest's" console as xenconsoled would. This test
 * parses the configs with libxlutil too and checks the values, the console link, the Click
 * configuration as the stand-in ClickOS guest read it, and the @releaseDomain events. Run
 * from the repo root (tests/run does), after `make`, which builds the stand-in's programs
 * into BUILD/tests next to this binary. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libxlutil.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "drivers/driver.h"
#include "unit.h"

extern const struct driver driver_xen;

#define CYCLES 10
#define CLICK_CHUNK 512 /* the driver's chunk size, as clickos-ctl's */

static struct drv_options opts;
static char tmpdir[64], standin_dir[128], console_dir[128], xl[PATH_MAX], bindir[PATH_MAX - 32],
	xlcheck[PATH_MAX], xenstore[PATH_MAX], kernel_pv[256], kernel_pvh[256], kernel_legacy[256], kernel_plain[256],
	initrd[256];
static int instances;

static pid_t watch_child(const char *needle);

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

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* The whole file (malloc'ed, NUL-terminated) or NULL. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	if (!f)
		return NULL;
	buf = calloc(1, 1 << 20);
	n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* Waits (bounded, 10 s) until path holds text; true when it does. */
static bool file_gets(const char *path, const char *text)
{
	for (int i = 0; i < 1000; i++) {
		char *s = read_file(path);
		bool found = s && strstr(s, text);
		free(s);
		if (found)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* Runs a shell command line made here (fixed words and our own paths); its exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[3 * PATH_MAX];
	va_list ap;
	int st;
	va_start(ap, fmt);
	st = vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	if (st < 0 || st >= (int)sizeof cmd)
		return -1;
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A request with a fresh instance dir, id "e0e0e0e0e000NNNN" and a serial log. */
struct inst {
	char id[17], dir[256], serial[300];
	struct drv_start_request r;
	struct drv_handle h;
	json_t *spec;
};

static void inst_init(struct inst *in, const char *spec_json, const char *kernel)
{
	memset(in, 0, sizeof *in);
	instances++;
	snprintf(in->id, sizeof in->id, "e0e0e0e0e000%04u", (unsigned)instances % 10000u);
	snprintf(in->dir, sizeof in->dir, "%s/instances/%s", tmpdir, in->id);
	snprintf(in->serial, sizeof in->serial, "%s/serial.log", in->dir);
	fs_mkdir_p(in->dir, 0750);
	write_file(in->serial, ""); /* the node creates it before the start */
	in->spec = json_loads(spec_json ? spec_json : "{\"driver\": \"xen\", \"image\": \"hello\", \"boot\": {}}", 0, NULL);
	/* what the node hands the driver from the spec: its config and the image's guest type */
	in->r = (struct drv_start_request){.instance_id = in->id, .name = "vnf", .config = json_object_get(in->spec, "config"),
	                                   .xen_type = json_string_value(json_object_get(json_object_get(in->spec, "boot"),
	                                                                                 "xen_type")),
	                                   .dir = in->dir, .stdout_fd = -1, .stderr_fd = -1,
	                                   .kernel = kernel ? kernel : kernel_pvh, .serial_log = in->serial, .vcpus = 1,
	                                   .memory_mb = 32};
	in->h.pidfd = -1;
}

static void inst_done(struct inst *in)
{
	json_decref(in->spec);
}

static const char *pv_spec = "{\"driver\": \"xen\", \"image\": \"clickos\", \"boot\": {\"xen_type\": \"pv\"}}";

/* Lines in the stand-in's state file: its "running" domains. */
static int standin_domains(void)
{
	char path[256], line[512];
	int n = 0;
	FILE *f;
	snprintf(path, sizeof path, "%s/domains", standin_dir);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof line, f))
		if (line[0] != '\n')
			n++;
	fclose(f);
	return n;
}

/* How many calls in the stand-in's log start with prefix. */
static int standin_calls(const char *prefix)
{
	char path[256], line[4096];
	int n = 0;
	FILE *f;
	snprintf(path, sizeof path, "%s/calls.log", standin_dir);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, prefix, strlen(prefix)) == 0)
			n++;
	fclose(f);
	return n;
}

/* The stand-in's domain id of a domain, or -1. */
static long standin_domid(const char *domain)
{
	char path[256], line[512], name[128];
	long id = -1, v;
	FILE *f;
	snprintf(path, sizeof path, "%s/domains", standin_dir);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%127s %ld", name, &v) == 2 && strcmp(name, domain) == 0)
			id = v;
	fclose(f);
	return id;
}

static void console_link_of(const char *domain, char *out, size_t len)
{
	snprintf(out, len, "%s/guest-%s.log", console_dir, domain);
}

static XLU_Config *parse_config(const char *dir)
{
	char path[512];
	XLU_Config *cfg;
	snprintf(path, sizeof path, "%s/xen.cfg", dir);
	if (!(cfg = xlu_cfg_init(stderr, path)))
		return NULL;
	if (xlu_cfg_readfile(cfg, path) != 0) {
		xlu_cfg_destroy(cfg);
		return NULL;
	}
	return cfg;
}

static bool cfg_string_is(XLU_Config *cfg, const char *key, const char *want)
{
	const char *v = NULL;
	if (xlu_cfg_get_string(cfg, key, &v, 0) != 0) {
		fprintf(stderr, "  %s: missing\n", key);
		return false;
	}
	if (strcmp(v, want) != 0) {
		fprintf(stderr, "  %s: [%s], wanted [%s]\n", key, v, want);
		return false;
	}
	return true;
}

static long cfg_long(XLU_Config *cfg, const char *key)
{
	long v = -1;
	return xlu_cfg_get_long(cfg, key, &v, 0) == 0 ? v : -1;
}

/* ---- tests ---- */

static void test_probe(void)
{
	struct drv_options bad = {.xl_binary = "/nonexistent/xl"}, fails = {.xl_binary = "/bin/false"};
	json_t *info = NULL;
	char err[256] = "";
	CHECK_EQ_INT(driver_xen.probe(&opts, &info, err, sizeof err), 0);
	CHECK(info && strstr(json_string_value(json_object_get(info, "version")) ?: "", "standin"));
	CHECK_STR(json_string_value(json_object_get(info, "toolstack")) ?: "", "xl");
	CHECK_STR(json_string_value(json_object_get(info, "xenstore")) ?: "", xenstore);
	CHECK_STR(json_string_value(json_object_get(info, "console_dir")) ?: "", console_dir);
	printf("  probe: %s\n", json_string_value(json_object_get(info, "version")) ?: "(none)");
	json_decref(info);

	info = NULL;
	CHECK(driver_xen.probe(&bad, &info, err, sizeof err) < 0);
	CHECK(info == NULL && strstr(err, "/nonexistent/xl"));
	CHECK(driver_xen.probe(&fails, &info, err, sizeof err) < 0);
	CHECK(info == NULL && strstr(err, "failed"));
}

/* xl must not inherit the node's descriptors: a toolstack process outliving a request
 * would hold the node's sockets open. A descriptor without O_CLOEXEC, as libevent's
 * client sockets are, is opened here; a fake xl fails when it sees it. */
static void test_xl_gets_stdio_only(void)
{
	char fake[PATH_MAX], err[512] = "";
	struct drv_options o = {0};
	json_t *info = NULL;
	int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */

	CHECK(fd >= 0 && dup2(fd, 47) == 47);
	snprintf(fake, sizeof fake, "%s/xl-fdcheck", tmpdir);
	write_file(fake, "#!/bin/sh\nif [ -e /proc/$$/fd/47 ]; then echo 'inherited fd 47' >&2; exit 1; fi\n"
	                 "echo 'xen_version            : 4.17-fdcheck'\n");
	CHECK(chmod(fake, 0755) == 0);
	o.xl_binary = fake;
	CHECK_EQ_INT(driver_xen.probe(&o, &info, err, sizeof err), 0);
	if (err[0])
		printf("  probe error: %s\n", err);
	json_decref(info);
	close(47);
	close(fd);
}

/* A PVH guest (the default type): the config as Xen's parser reads it, the console link,
 * the console's first line in the node's serial log, status, a gentle stop. */
static void test_start_status_stop(void)
{
	struct inst in;
	const char *cmdline = "console=hvc0 msg='it\\'s' path=a\\b \"quoted\" & <x>";
	char err[256] = "", want[512], link[512], target[512] = "";
	XLU_Config *cfg;
	XLU_ConfigList *vifs = NULL;
	struct stat st;
	int nvifs = 0;
	bool alive = false;

	inst_init(&in, NULL, NULL);
	in.r.initrd = initrd;
	in.r.cmdline = cmdline;
	in.r.vcpus = 1.5;
	in.r.memory_mb = 64;
	in.r.bridge = "br-vnf0";
	CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), 0);
	if (err[0])
		fprintf(stderr, "  start: %s\n", err);
	snprintf(want, sizeof want, "mv-%s", in.id);
	CHECK_STR(in.h.domain, want);
	CHECK_EQ_INT(in.h.pid, 0);
	CHECK_EQ_INT(in.h.pidfd, -1);
	CHECK_EQ_INT(standin_domains(), 1);
	snprintf(want, sizeof want, "create -q %s/xen.cfg", in.dir);
	CHECK_EQ_INT(standin_calls(want), 1);

	/* the config as Xen's parser reads it */
	CHECK((cfg = parse_config(in.dir)) != NULL);
	if (cfg) {
		snprintf(want, sizeof want, "mv-%s", in.id);
		CHECK(cfg_string_is(cfg, "name", want));
		CHECK(cfg_string_is(cfg, "type", "pvh")); /* the image has no xen_type: PVH */
		CHECK(cfg_string_is(cfg, "kernel", kernel_pvh));
		CHECK(cfg_string_is(cfg, "ramdisk", initrd));
		CHECK(cfg_string_is(cfg, "extra", cmdline)); /* quotes and backslashes survive */
		CHECK_EQ_INT(cfg_long(cfg, "memory"), 64);
		CHECK_EQ_INT(cfg_long(cfg, "vcpus"), 2); /* 1.5 rounded up */
		CHECK_EQ_INT(xlu_cfg_get_list(cfg, "vif", &vifs, &nvifs, 0), 0);
		CHECK_EQ_INT(nvifs, 1);
		if (vifs && nvifs == 1)
			CHECK_STR(xlu_cfg_get_listitem(vifs, 0) ?: "", "bridge=br-vnf0");
		CHECK(cfg_string_is(cfg, "on_crash", "destroy"));
		CHECK(cfg_string_is(cfg, "on_poweroff", "destroy"));
		CHECK_EQ_INT(xlu_cfg_get_list(cfg, "disk", NULL, NULL, 1), ESRCH); /* diskless */
		xlu_cfg_destroy(cfg);
	}

	/* xenconsoled's log of the domain is the node's serial log */
	console_link_of(in.h.domain, link, sizeof link);
	CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(readlink(link, target, sizeof target - 1) > 0);
	CHECK_STR(target, in.serial);
	CHECK(file_gets(in.serial, "booted as pvh"));
	snprintf(want, sizeof want, "cmd_line: %s", cmdline);
	CHECK(file_gets(in.serial, want));

	CHECK_EQ_INT(driver_xen.status(&opts, &in.h, &alive), 0);
	CHECK(alive);
	/* the same instance again: the toolstack refuses a second domain of that name */
	{
		struct drv_handle h2 = {.pidfd = -1};
		CHECK(driver_xen.start(&opts, &in.r, &h2, err, sizeof err) < 0);
		CHECK(strstr(err, "already exists") != NULL);
	}
	CHECK_EQ_INT(driver_xen.stop(&opts, &in.h, false), 0); /* xl shutdown */
	snprintf(want, sizeof want, "shutdown mv-%s", in.id);
	CHECK_EQ_INT(standin_calls(want), 1);
	CHECK_EQ_INT(driver_xen.status(&opts, &in.h, &alive), 0);
	CHECK(!alive);
	CHECK(lstat(link, &st) < 0 && errno == ENOENT); /* gone with the domain */
	CHECK_EQ_INT(driver_xen.stop(&opts, &in.h, true), -ESRCH); /* already gone */
	CHECK_EQ_INT(standin_domains(), 0);
	inst_done(&in);
}

/* The image says PV: type = 'pv', and the stand-in's PV loader takes the Mini-OS notes,
 * both as ELF notes and as the older __xen_guest section. */
static void test_pv_destroy(void)
{
	const char *kernels[] = {kernel_pv, kernel_legacy};
	for (int k = 0; k < 2; k++) {
		struct inst in;
		char err[256] = "", want[128], link[512];
		XLU_Config *cfg;
		struct stat st;
		bool alive = false;

		inst_init(&in, pv_spec, kernels[k]);
		CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), 0);
		if (err[0])
			fprintf(stderr, "  start: %s\n", err);
		CHECK((cfg = parse_config(in.dir)) != NULL);
		if (cfg) {
			CHECK(cfg_string_is(cfg, "type", "pv"));
			CHECK(cfg_string_is(cfg, "kernel", kernels[k]));
			CHECK_EQ_INT(xlu_cfg_get_list(cfg, "vif", NULL, NULL, 1), ESRCH); /* no network asked */
			CHECK_EQ_INT(xlu_cfg_get_string(cfg, "ramdisk", &(const char *){NULL}, 1), ESRCH);
			CHECK_EQ_INT(cfg_long(cfg, "memory"), 32);
			CHECK_EQ_INT(cfg_long(cfg, "vcpus"), 1);
			xlu_cfg_destroy(cfg);
		}
		CHECK(file_gets(in.serial, "booted as pv, GUEST_OS Mini-OS"));
		CHECK_EQ_INT(driver_xen.stop(&opts, &in.h, true), 0); /* xl destroy */
		snprintf(want, sizeof want, "destroy mv-%s", in.id);
		CHECK_EQ_INT(standin_calls(want), 1);
		console_link_of(in.h.domain, link, sizeof link);
		CHECK(lstat(link, &st) < 0 && errno == ENOENT);
		CHECK_EQ_INT(driver_xen.status(&opts, &in.h, &alive), 0);
		CHECK(!alive);
		inst_done(&in);
	}
}

static void test_cycles(void)
{
	int64_t t0, spawn_total = 0;
	int before = standin_calls("create");
	for (int i = 0; i < CYCLES; i++) {
		struct inst in;
		char err[256] = "";
		bool alive = false;
		inst_init(&in, i % 2 ? pv_spec : NULL, i % 2 ? kernel_pv : kernel_pvh);
		in.r.bridge = i % 2 ? "xenbr0" : NULL;
		t0 = now_us();
		CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), 0);
		spawn_total += now_us() - t0;
		CHECK_EQ_INT(driver_xen.status(&opts, &in.h, &alive), 0);
		CHECK(alive);
		CHECK_EQ_INT(driver_xen.stop(&opts, &in.h, i % 2 == 0), 0);
		CHECK_EQ_INT(driver_xen.status(&opts, &in.h, &alive), 0);
		CHECK(!alive);
		inst_done(&in);
	}
	CHECK_EQ_INT(standin_calls("create") - before, CYCLES);
	CHECK_EQ_INT(standin_domains(), 0);
	printf("  %d cycles: start (xl create -q through the stand-in) %.1f ms mean; no domain left\n", CYCLES,
	       (double)spawn_total / CYCLES / 1000.0);
}

/* Refused before xl runs: nothing reaches the toolstack. */
static void refused(const char *what, struct inst *in, const char *err_has)
{
	char err[512] = "";
	int creates = standin_calls("create");
	int rc = driver_xen.start(&opts, &in->r, &in->h, err, sizeof err);
	if (rc >= 0 || !strstr(err, err_has))
		fprintf(stderr, "  %s: rc %d, err \"%s\"\n", what, rc, err);
	CHECK(rc == -EINVAL);
	CHECK(strstr(err, err_has) != NULL);
	CHECK_EQ_INT(standin_calls("create"), creates);
	CHECK(in->h.domain[0] == '\0');
}

/* Refused by the toolstack (the stand-in, as Xen would): xl create fails, nothing is left. */
static void refused_by_xen(const char *what, struct inst *in, const char *err_has)
{
	char err[512] = "", link[512];
	struct stat st;
	int rc = driver_xen.start(&opts, &in->r, &in->h, err, sizeof err);
	if (rc != -EIO || !strstr(err, err_has))
		fprintf(stderr, "  %s: rc %d, err \"%s\"\n", what, rc, err);
	CHECK_EQ_INT(rc, -EIO);
	CHECK(strstr(err, "xl create failed") != NULL);
	CHECK(strstr(err, err_has) != NULL);
	CHECK_EQ_INT(standin_domains(), 0);
	snprintf(link, sizeof link, "%s/guest-mv-%s.log", console_dir, in->id);
	CHECK(lstat(link, &st) < 0 && errno == ENOENT); /* no console link left behind */
	printf("  %s: %s\n", what, err);
}

/* The core checks every xen spec's config with the driver's config_check: only
 * config.click, printable text of 1 byte to MV_CLICK_MAX; config.type is refused with the
 * way to the image's type. Each refusal is a 400 naming the field. */
static void config_refused(const char *what, const char *config_json, const char *code, const char *msg_has)
{
	json_t *config = json_loads(config_json, JSON_ALLOW_NUL, NULL);
	const char *exe = "x";
	struct mv_error err = {0};
	int rc = driver_xen.config_check(config, &exe, &err);
	if (rc >= 0 || !strstr(err.message, msg_has))
		fprintf(stderr, "  %s: rc %d, %d %s \"%s\"\n", what, rc, err.status, err.code, err.message);
	CHECK(rc < 0);
	CHECK_EQ_INT(err.status, 400);
	CHECK_STR(err.code, code);
	CHECK(strstr(err.message, msg_has) != NULL);
	json_decref(config);
}

static void test_config_check(void)
{
	static char big[70 * 1024 + 64];
	const char *exe = "x";
	struct mv_error err = {0};
	json_t *ok = json_pack("{s:s}", "click", "Idle -> Discard;\n\tFromDevice(0) -> ToDevice(0);");
	size_t n;

	CHECK_EQ_INT(driver_xen.config_check(NULL, &exe, &err), 0);
	CHECK(exe == NULL);
	CHECK_EQ_INT(driver_xen.config_check(ok, &exe, &err), 0);
	json_decref(ok);

	config_refused("config.type (the type is the image's)", "{\"type\": \"pv\"}", "unknown_field", "--xen-type");
	config_refused("an unknown field", "{\"clik\": \"x\"}", "unknown_field", "config.clik");
	config_refused("not an object", "[1]", "invalid_type", "config");
	config_refused("click not a string", "{\"click\": 3}", "invalid_type", "config.click");
	config_refused("empty click", "{\"click\": \"\"}", "invalid_value", "empty");
	config_refused("control byte in click", "{\"click\": \"a\\u0001b\"}", "invalid_value", "0x01");
	config_refused("NUL in click", "{\"click\": \"a\\u0000b\"}", "invalid_value", "NUL");
	config_refused("non-ASCII click", "{\"click\": \"caf\\u00e9\"}", "invalid_value", "0xc3");
	n = (size_t)snprintf(big, sizeof big, "{\"click\": \"");
	memset(big + n, 'x', MV_CLICK_MAX + 1);
	snprintf(big + n + MV_CLICK_MAX + 1, sizeof big - n - MV_CLICK_MAX - 1, "\"}");
	config_refused("click over 64 KiB", big, "invalid_value", "config.click");
}

static void test_bad_config(void)
{
	struct inst in;

	inst_init(&in, NULL, NULL);
	in.r.memory_mb = 0;
	refused("memory 0", &in, "memory");
	inst_done(&in);

	inst_init(&in, NULL, NULL);
	in.r.vcpus = 0;
	refused("vcpus 0", &in, "vcpus");
	inst_done(&in);

	inst_init(&in, NULL, NULL);
	in.r.cmdline = "console=hvc0\nname = 'evil'";
	refused("newline in cmdline", &in, "control character");
	inst_done(&in);

	inst_init(&in, NULL, NULL);
	in.r.bridge = "br0' ], disk = [ 'x";
	refused("bridge injection", &in, "bridge");
	inst_done(&in);

	inst_init(&in, NULL, NULL);
	in.r.kernel = "relative/kernel";
	refused("relative kernel", &in, "absolute");
	inst_done(&in);

	inst_init(&in, "{\"driver\": \"xen\", \"image\": \"x\", \"boot\": {}, \"config\": {\"click\": \"Idle -> Discard;\"}}",
	          NULL);
	refused("click for a PVH image", &in, "PV guest");
	inst_done(&in);

	/* Reach the toolstack, which refuses them as Xen would. */
	inst_init(&in, NULL, "/nonexistent/kernel");
	refused_by_xen("missing kernel", &in, "No such file");
	inst_done(&in);

	inst_init(&in, pv_spec, kernel_pvh);
	refused_by_xen("a PVH-only kernel as PV", &in, "generic loader");
	inst_done(&in);

	inst_init(&in, NULL, kernel_pv);
	refused_by_xen("a PV kernel as PVH", &in, "HVM container");
	inst_done(&in);

	inst_init(&in, pv_spec, kernel_plain);
	refused_by_xen("an ELF without Xen notes as PV", &in, "Not a Xen-ELF image");
	inst_done(&in);

	inst_init(&in, pv_spec, initrd);
	refused_by_xen("not an ELF file", &in, "not an ELF image");
	inst_done(&in);
}

/* The stand-in's checker on hand-written bad configs: libxlutil parses them, the xl.cfg
 * rules refuse them, one line per problem. */
static void test_xlcheck(void)
{
	char path[512], cmd[PATH_MAX + 600], out[4096] = "";
	FILE *p;
	size_t n;

	snprintf(path, sizeof path, "%s/bad.cfg", tmpdir);
	write_file(path, "name = 'mv-bad'\ntype = 'hvm'\nkernel = 'relative'\nmemory = 'lots'\nvcpus = 0\n"
	                 "disk = [ 'phy:/dev/sda,xvda,w' ]\nvif = [ 'bridge=br0,colour=blue' ]\n"
	                 "on_crash = 'explode'\nmemroy = 64\n");
	snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", xlcheck, path);
	if ((p = popen(cmd, "r"))) {
		n = fread(out, 1, sizeof out - 1, p);
		out[n] = '\0';
		CHECK(pclose(p) != 0);
	}
	CHECK(strstr(out, "type \"hvm\"") != NULL);
	CHECK(strstr(out, "kernel must be an absolute path") != NULL);
	CHECK(strstr(out, "memory must be an integer") != NULL);
	CHECK(strstr(out, "vcpus = 0 is out of range") != NULL);
	CHECK(strstr(out, "disk is set") != NULL);
	CHECK(strstr(out, "unknown key \"colour\"") != NULL);
	CHECK(strstr(out, "on_crash = \"explode\"") != NULL);
	CHECK(strstr(out, "unexpected key \"memroy\"") != NULL);

	/* and one libxlutil itself cannot parse */
	write_file(path, "name = 'unterminated\nmemory = 64\n");
	if ((p = popen(cmd, "r"))) {
		n = fread(out, 1, sizeof out - 1, p);
		out[n] = '\0';
		CHECK(pclose(p) != 0);
	}
	CHECK(strstr(out, "libxlutil cannot parse it") != NULL);
}

/* The Click configuration of a ClickOS instance: the stand-in guest (playing
 * minios/click.cc) reads exactly the bytes given, in chunks, after its own watch on
 * data/clickos exists, and then logs "Starting driver". The configuration has a chunk that
 * starts with '-' (the client takes it for options unless "--" ends them) and backslashes
 * (the client unescapes them). */
static void test_click(void)
{
	struct inst in;
	char click[1400], *spec_text, err[512] = "", path[512], node[PATH_MAX + 128], want[128], *got;
	json_t *spec;
	long domid;
	size_t len = 0;

	len += (size_t)snprintf(click + len, sizeof click - len, "// a Click configuration with \\ and \\n in it\n");
	while (len < CLICK_CHUNK)
		click[len++] = ' ';
	len += (size_t)snprintf(click + len, sizeof click - len, "-> Discard; /* chunk 1 starts with '-' */\n");
	while (len < 1100)
		len += (size_t)snprintf(click + len, sizeof click - len, "Idle -> Discard;\n");
	click[len] = '\0';
	CHECK(click[CLICK_CHUNK] == '-');
	snprintf(want, sizeof want, "read %zu bytes of Click configuration from 3 chunks", len);
	spec = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "driver", "xen", "image", "clickos", "boot", "xen_type", "pv",
	                 "config", "click", click);
	spec_text = json_dumps(spec, 0);
	inst_init(&in, spec_text, kernel_pv);
	in.r.name = "firewall";
	/* a guest slower than the driver's xenstore calls: written before its watch exists, the
	 * configuration would never be read */
	setenv("XL_STANDIN_BOOT_MS", "1500", 1);
	CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), 0);
	setenv("XL_STANDIN_BOOT_MS", "20", 1);
	if (err[0])
		fprintf(stderr, "  start: %s\n", err);
	CHECK((domid = standin_domid(in.h.domain)) > 0);
	/* what the guest read, and what it said on its console (the node's serial log) */
	snprintf(path, sizeof path, "%s/guests/%ld/click-0.conf", standin_dir, domid);
	got = read_file(path);
	CHECK(got && strcmp(got, click) == 0);
	free(got);
	CHECK(file_gets(in.serial, want));
	CHECK(file_gets(in.serial, "Starting driver"));
	/* the nodes, as clickos-ctl and cosmos write them */
	snprintf(node, sizeof node, "'%s' read /local/domain/%ld/data/clickos/0/config_name | grep -qx firewall", xenstore,
	         domid);
	CHECK_EQ_INT(run("%s", node), 0);
	snprintf(node, sizeof node, "'%s' read /local/domain/%ld/data/clickos/0/status | grep -qx Running", xenstore,
	         domid);
	CHECK_EQ_INT(run("%s", node), 0);
	snprintf(node, sizeof node, "'%s' exists /local/domain/%ld/data/clickos/0/config/3", xenstore, domid);
	CHECK(run("%s", node) != 0); /* 1100-odd bytes: chunks 0, 1, 2 */
	CHECK_EQ_INT(driver_xen.stop(&opts, &in.h, true), 0);
	inst_done(&in);
	free(spec_text);
	json_decref(spec);
}


/* Destroys a domain from another thread once the driver waits for its guest. */
static void *destroy_when_waited_for(void *arg)
{
	const char *domain = arg;
	for (int i = 0; i < 2000 && !watch_child("/data/clickos"); i++)
		sleep_ms(5);
	run("'%s' destroy '%s' >/dev/null 2>&1", xl, domain);
	return NULL;
}

/* The guest never says it is up: a kernel that is not ClickOS (or a slow one) within the
 * bound, and a domain that ends while the driver waits for it. Nothing is left behind. */
static void test_click_guest_not_up(void)
{
	const char *spec = "{\"driver\": \"xen\", \"image\": \"c\", \"boot\": {\"xen_type\": \"pv\"}, "
	                   "\"config\": {\"click\": \"Idle -> Discard;\"}}";
	struct inst in;
	char err[512] = "", domain[64];
	pthread_t t;
	int64_t t0;

	setenv("XL_STANDIN_BOOT_MS", "60000", 1); /* the guest would boot after the bound */
	inst_init(&in, spec, kernel_pv);
	snprintf(domain, sizeof domain, "mv-%s", in.id);
	CHECK(pthread_create(&t, NULL, destroy_when_waited_for, domain) == 0);
	CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), -ESRCH);
	CHECK(strstr(err, "the domain ended before its ClickOS guest was up") != NULL);
	pthread_join(t, NULL);
	printf("  destroyed while waiting: %s\n", err);
	inst_done(&in);

	inst_init(&in, spec, kernel_pv);
	t0 = now_us();
	CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), -ETIMEDOUT);
	CHECK(strstr(err, "needs a ClickOS kernel") != NULL);
	CHECK(now_us() - t0 >= 9000000); /* it waited its bound, not less */
	CHECK_EQ_INT(standin_domains(), 0); /* destroyed */
	printf("  not up: %s\n", err);
	inst_done(&in);
	setenv("XL_STANDIN_BOOT_MS", "20", 1);
}

/* Waits (bounded) for the watch's descriptor and pops one name; "" is a sweep. */
static bool next_event(int fd, char *domain, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	for (int i = 0; i < 100; i++) {
		if (driver_xen.watch_next(domain, len))
			return true;
		poll(&p, 1, 100);
	}
	return false;
}

/* The pid of a child of ours running `xenstore-standin watch ...needle...`, or 0. */
static pid_t watch_child(const char *needle)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	while (d && (e = readdir(d))) {
		char path[300], cmd[512] = "", stat[512] = "";
		int ppid = 0;
		FILE *f;
		size_t n;
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		n = fread(cmd, 1, sizeof cmd - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i++)
			cmd[i] = cmd[i] ? cmd[i] : ' ';
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fgets(stat, sizeof stat, f) && strrchr(stat, ')'))
				sscanf(strrchr(stat, ')') + 2, "%*c %d", &ppid);
			fclose(f);
		}
		if (ppid == getpid() && strstr(cmd, "xenstore-standin watch") && strstr(cmd, needle))
			found = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/* Exits are events: a domain destroyed behind the driver's back is reported by name from
 * the @releaseDomain watch (the other one is not); the watch going away turns events off
 * (the node polls) until it is back, with a sweep for what ended meanwhile. */
static void test_watch(void)
{
	struct inst a, b;
	struct drv_handle h = {.pidfd = -1};
	char err[256] = "", domain[64], link[512];
	struct stat st;
	pid_t child;
	int fd = -1, fd2;

	CHECK(!driver_xen.watching());
	CHECK_EQ_INT(driver_xen.watch(&opts, &fd, err, sizeof err), 0);
	CHECK_EQ_INT(driver_xen.watch(&opts, &fd2, err, sizeof err), -EBUSY);
	CHECK(next_event(fd, domain, sizeof domain) && domain[0] == '\0'); /* the watch is set: a sweep */
	CHECK(driver_xen.watching());

	inst_init(&a, pv_spec, kernel_pv);
	inst_init(&b, NULL, kernel_pvh);
	CHECK_EQ_INT(driver_xen.start(&opts, &a.r, &a.h, err, sizeof err), 0);
	CHECK_EQ_INT(driver_xen.start(&opts, &b.r, &b.h, err, sizeof err), 0);
	CHECK_EQ_INT(run("'%s' destroy '%s' >/dev/null", xl, a.h.domain), 0); /* behind the driver's back */
	CHECK(next_event(fd, domain, sizeof domain));
	CHECK_STR(domain, a.h.domain);
	console_link_of(a.h.domain, link, sizeof link);
	CHECK(lstat(link, &st) < 0 && errno == ENOENT);
	CHECK(!driver_xen.watch_next(domain, sizeof domain)); /* b lives */

	/* a domain re-attached after a restart is watched too */
	snprintf(h.domain, sizeof h.domain, "%s", b.h.domain);
	CHECK_EQ_INT(driver_xen.recover(&h), 0);
	CHECK_EQ_INT(run("'%s' shutdown '%s' >/dev/null", xl, b.h.domain), 0);
	CHECK(next_event(fd, domain, sizeof domain));
	CHECK_STR(domain, b.h.domain);

	/* the watch process dies: events are off, then back (retried after 1 s) with a sweep */
	CHECK((child = watch_child("@releaseDomain")) > 0);
	if (child > 0)
		kill(child, SIGKILL);
	for (int i = 0; i < 500 && driver_xen.watching(); i++)
		sleep_ms(10);
	CHECK(!driver_xen.watching());
	CHECK(next_event(fd, domain, sizeof domain) && domain[0] == '\0');
	CHECK(driver_xen.watching());

	driver_xen.unwatch();
	CHECK(!driver_xen.watching());
	CHECK_EQ_INT(watch_child("@releaseDomain"), 0); /* stopped and reaped */
	inst_done(&a);
	inst_done(&b);
}

static void test_recover(void)
{
	struct drv_handle h = {.pidfd = -1};
	CHECK_EQ_INT(driver_xen.recover(&h), -ESRCH);
	snprintf(h.domain, sizeof h.domain, "mv-0000000000000001");
	CHECK_EQ_INT(driver_xen.recover(&h), 0);
	CHECK_EQ_INT(h.pidfd, -1);
	/* adopt finds a domain only if it is there */
	CHECK_EQ_INT(driver_xen.adopt(&opts, "0000000000000002", &h), -ESRCH);
}

int main(int argc, char **argv)
{
	char *slash, mk[PATH_MAX];
	(void)argc;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-xen.XXXXXX");
	if (!mkdtemp(tmpdir) || !realpath("tests/xl-standin/xl", xl)) {
		fprintf(stderr, "test_xen: run from the repo root (needs tests/xl-standin/xl)\n");
		return 1;
	}
	if (!realpath(argv[0], bindir))
		snprintf(bindir, sizeof bindir, "%s", argv[0]);
	if ((slash = strrchr(bindir, '/')))
		*slash = '\0';
	snprintf(xlcheck, sizeof xlcheck, "%s/xlcheck", bindir);
	snprintf(xenstore, sizeof xenstore, "%s/xenstore-standin", bindir);
	snprintf(mk, sizeof mk, "%s/xl-mkkernel", bindir);
	if (access(xlcheck, X_OK) != 0 || access(xenstore, X_OK) != 0 || access(mk, X_OK) != 0) {
		fprintf(stderr, "test_xen: the stand-in's programs are missing in %s (make builds them)\n", bindir);
		return 1;
	}
	snprintf(standin_dir, sizeof standin_dir, "%s/standin", tmpdir);
	snprintf(console_dir, sizeof console_dir, "%s/console", tmpdir);
	setenv("XL_STANDIN_DIR", standin_dir, 1);
	setenv("XL_STANDIN_CHECK", xlcheck, 1);
	setenv("XL_STANDIN_XENSTORE", xenstore, 1);
	setenv("XL_STANDIN_CONSOLE_DIR", console_dir, 1);
	setenv("XL_STANDIN_BOOT_MS", "20", 1);
	snprintf(kernel_pv, sizeof kernel_pv, "%s/kernel-pv", tmpdir);
	snprintf(kernel_legacy, sizeof kernel_legacy, "%s/kernel-pv-legacy", tmpdir);
	snprintf(kernel_pvh, sizeof kernel_pvh, "%s/kernel-pvh", tmpdir);
	snprintf(kernel_plain, sizeof kernel_plain, "%s/kernel-plain", tmpdir);
	snprintf(initrd, sizeof initrd, "%s/initrd", tmpdir);
	if (run("'%s' pv '%s'", mk, kernel_pv) || run("'%s' pv-legacy '%s'", mk, kernel_legacy) ||
	    run("'%s' pvh '%s'", mk, kernel_pvh) || run("'%s' plain '%s'", mk, kernel_plain)) {
		fprintf(stderr, "test_xen: xl-mkkernel failed\n");
		return 1;
	}
	write_file(initrd, "initrd\n");
	opts.xl_binary = xl;
	opts.xenstore_binary = xenstore;
	opts.xen_console_dir = console_dir;
	printf("  xl STAND-IN toolstack %s (no Xen on this machine), checker %s, xenstore %s\n", xl, xlcheck, xenstore);

	RUN(test_probe);
	RUN(test_xl_gets_stdio_only);
	RUN(test_start_status_stop);
	RUN(test_pv_destroy);
	RUN(test_cycles);
	RUN(test_config_check);
	RUN(test_bad_config);
	RUN(test_xlcheck);
	RUN(test_click);
	RUN(test_click_guest_not_up);
	RUN(test_watch);
	RUN(test_recover);

	if (unit_failed == 0)
		fs_remove_tree(tmpdir);
	else
		printf("  left %s for inspection\n", tmpdir);
	UNIT_END();
}
