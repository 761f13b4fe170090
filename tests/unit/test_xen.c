/* test_xen — the xen driver against the xl STAND-IN toolstack (tests/xl-standin/xl; this
 * machine has no Xen). The stand-in checks each call's arguments and parses every config
 * with Xen's own parser, libxlutil; this test parses the same configs with libxlutil too
 * and checks the values. Run from the repo root (tests/run does), after `make`, which
 * builds the stand-in's checker into BUILD/tests/xlcheck next to this binary. */
#include <errno.h>
#include <fcntl.h>
#include <libxlutil.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "drivers/driver.h"
#include "unit.h"

extern const struct driver driver_xen;

#define CYCLES 20

static struct drv_options opts;
static char tmpdir[64], standin_dir[128], xl[PATH_MAX], xlcheck[PATH_MAX], kernel[256], initrd[256];
static int instances;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* A request with a fresh instance dir and id "xen0000000000NN". */
struct inst {
	char id[17], dir[256];
	struct drv_start_request r;
	struct drv_handle h;
	json_t *spec;
};

static void inst_init(struct inst *in, const char *config_json)
{
	memset(in, 0, sizeof *in);
	instances++;
	snprintf(in->id, sizeof in->id, "e0e0e0e0e000%04u", (unsigned)instances % 10000u);
	snprintf(in->dir, sizeof in->dir, "%s/instances/%s", tmpdir, in->id);
	fs_mkdir_p(in->dir, 0750);
	in->spec = json_loads(config_json ? config_json : "{\"driver\": \"xen\", \"image\": \"hello\"}", 0, NULL);
	in->r = (struct drv_start_request){.instance_id = in->id, .name = "vnf", .config = json_object_get(in->spec, "config"), .dir = in->dir,
	                                   .stdout_fd = -1, .stderr_fd = -1, .kernel = kernel, .vcpus = 1,
	                                   .memory_mb = 32};
	in->h.pidfd = -1;
}

static void inst_done(struct inst *in)
{
	json_decref(in->spec);
}

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

static void test_start_status_stop(void)
{
	struct inst in;
	const char *cmdline = "console=hvc0 msg='it\\'s' path=a\\b \"quoted\" & <x>";
	char err[256] = "", want[512];
	XLU_Config *cfg;
	XLU_ConfigList *vifs = NULL;
	int nvifs = 0;
	bool alive = false;

	inst_init(&in, NULL);
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
		CHECK(cfg_string_is(cfg, "type", "pvh"));
		CHECK(cfg_string_is(cfg, "kernel", kernel));
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
	CHECK_EQ_INT(driver_xen.stop(&opts, &in.h, true), -ESRCH); /* already gone */
	CHECK_EQ_INT(standin_domains(), 0);
	inst_done(&in);
}

static void test_pv_destroy(void)
{
	struct inst in;
	char err[256] = "", want[128];
	XLU_Config *cfg;
	bool alive = false;

	inst_init(&in, "{\"driver\": \"xen\", \"image\": \"clickos\", \"config\": {\"type\": \"pv\"}}");
	CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), 0);
	CHECK((cfg = parse_config(in.dir)) != NULL);
	if (cfg) {
		CHECK(cfg_string_is(cfg, "type", "pv"));
		CHECK_EQ_INT(xlu_cfg_get_list(cfg, "vif", NULL, NULL, 1), ESRCH); /* no network asked */
		CHECK_EQ_INT(xlu_cfg_get_string(cfg, "ramdisk", &(const char *){NULL}, 1), ESRCH);
		CHECK_EQ_INT(cfg_long(cfg, "memory"), 32);
		CHECK_EQ_INT(cfg_long(cfg, "vcpus"), 1);
		xlu_cfg_destroy(cfg);
	}
	CHECK_EQ_INT(driver_xen.stop(&opts, &in.h, true), 0); /* xl destroy */
	snprintf(want, sizeof want, "destroy mv-%s", in.id);
	CHECK_EQ_INT(standin_calls(want), 1);
	CHECK_EQ_INT(driver_xen.status(&opts, &in.h, &alive), 0);
	CHECK(!alive);
	inst_done(&in);
}

static void test_cycles(void)
{
	int64_t t0, spawn_total = 0;
	int before = standin_calls("create");
	for (int i = 0; i < CYCLES; i++) {
		struct inst in;
		char err[256] = "";
		bool alive = false;
		inst_init(&in, NULL);
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
	char err[256] = "";
	int creates = standin_calls("create");
	int rc = driver_xen.start(&opts, &in->r, &in->h, err, sizeof err);
	if (rc >= 0 || !strstr(err, err_has))
		fprintf(stderr, "  %s: rc %d, err \"%s\"\n", what, rc, err);
	CHECK(rc == -EINVAL);
	CHECK(strstr(err, err_has) != NULL);
	CHECK_EQ_INT(standin_calls("create"), creates);
	CHECK(in->h.domain[0] == '\0');
}

static void test_bad_config(void)
{
	struct inst in;
	char err[256] = "", path[512], cmd[PATH_MAX + 600], out[2048] = "";
	FILE *p;
	size_t n;

	inst_init(&in, NULL);
	in.r.memory_mb = 0;
	refused("memory 0", &in, "memory");
	inst_done(&in);

	inst_init(&in, NULL);
	in.r.vcpus = 0;
	refused("vcpus 0", &in, "vcpus");
	inst_done(&in);

	inst_init(&in, NULL);
	in.r.cmdline = "console=hvc0\nname = 'evil'";
	refused("newline in cmdline", &in, "control character");
	inst_done(&in);

	inst_init(&in, NULL);
	in.r.bridge = "br0' ], disk = [ 'x";
	refused("bridge injection", &in, "bridge");
	inst_done(&in);

	inst_init(&in, NULL);
	in.r.kernel = "relative/kernel";
	refused("relative kernel", &in, "absolute");
	inst_done(&in);

	inst_init(&in, "{\"driver\": \"xen\", \"image\": \"x\", \"config\": {\"type\": \"hvm\"}}");
	refused("type hvm", &in, "config.type");
	inst_done(&in);

	/* Reaches the toolstack, which refuses it: the kernel file does not exist. */
	inst_init(&in, NULL);
	in.r.kernel = "/nonexistent/kernel";
	CHECK_EQ_INT(driver_xen.start(&opts, &in.r, &in.h, err, sizeof err), -EIO);
	CHECK(strstr(err, "xl create failed") != NULL);
	printf("  missing kernel: %s\n", err);
	CHECK_EQ_INT(standin_domains(), 0);
	inst_done(&in);

	/* The stand-in's checker on a hand-written bad config: libxlutil parses it, the
	 * xl.cfg rules refuse it, one line per problem. */
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
	snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", xlcheck, path);
	if ((p = popen(cmd, "r"))) {
		n = fread(out, 1, sizeof out - 1, p);
		out[n] = '\0';
		CHECK(pclose(p) != 0);
	}
	CHECK(strstr(out, "libxlutil cannot parse it") != NULL);
}

static void test_recover(void)
{
	struct drv_handle h = {.pidfd = -1};
	CHECK_EQ_INT(driver_xen.recover(&h), -ESRCH);
	snprintf(h.domain, sizeof h.domain, "mv-0000000000000001");
	CHECK_EQ_INT(driver_xen.recover(&h), 0);
	CHECK_EQ_INT(h.pidfd, -1);
}

int main(int argc, char **argv)
{
	char bindir[PATH_MAX - 16], *slash;
	(void)argc;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/mv-test-xen.XXXXXX");
	if (!mkdtemp(tmpdir) || !realpath("tests/xl-standin/xl", xl)) {
		fprintf(stderr, "test_xen: run from the repo root (needs tests/xl-standin/xl)\n");
		return 1;
	}
	snprintf(bindir, sizeof bindir, "%s", argv[0]);
	if ((slash = strrchr(bindir, '/')))
		*slash = '\0';
	else
		snprintf(bindir, sizeof bindir, ".");
	snprintf(xlcheck, sizeof xlcheck, "%s/xlcheck", bindir);
	if (access(xlcheck, X_OK) != 0) {
		fprintf(stderr, "test_xen: %s is missing (make builds it)\n", xlcheck);
		return 1;
	}
	snprintf(standin_dir, sizeof standin_dir, "%s/standin", tmpdir);
	setenv("XL_STANDIN_DIR", standin_dir, 1);
	setenv("XL_STANDIN_CHECK", xlcheck, 1);
	snprintf(kernel, sizeof kernel, "%s/kernel", tmpdir);
	snprintf(initrd, sizeof initrd, "%s/initrd", tmpdir);
	write_file(kernel, "not a real kernel: the stand-in only checks that it is there\n");
	write_file(initrd, "initrd\n");
	opts.xl_binary = xl;
	printf("  xl STAND-IN toolstack %s (no Xen on this machine), checker %s\n", xl, xlcheck);

	RUN(test_probe);
	RUN(test_xl_gets_stdio_only);
	RUN(test_start_status_stop);
	RUN(test_pv_destroy);
	RUN(test_cycles);
	RUN(test_bad_config);
	RUN(test_recover);

	if (unit_failed == 0)
		fs_remove_tree(tmpdir);
	else
		printf("  left %s for inspection\n", tmpdir);
	UNIT_END();
}
