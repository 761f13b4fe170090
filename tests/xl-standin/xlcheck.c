/* xlcheck — part of the xl STAND-IN toolstack (tests/xl-standin/xl), not of Xen.
 *
 * Parses an xl domain config with Xen's own parser, libxlutil (xlu_cfg_readfile and the
 * xlu_cfg_get_* accessors: the code `xl create` runs first; it needs no /dev/xen), then
 * checks it against the xl.cfg(5) rules for a diskless ClickOS-style PV/PVH guest:
 *
 *   name      required string, 1-63 chars [A-Za-z0-9._-], not all digits
 *   type      required "pv" or "pvh" (a unikernel booted directly, no firmware)
 *   kernel    required absolute path to a readable file;  ramdisk: same, optional
 *   extra     optional string (the kernel command line)
 *   memory    required integer MiB > 0;  maxmem: optional integer >= memory
 *   vcpus     optional integer 1-512;    maxvcpus: optional integer >= vcpus
 *   vif       optional list of strings "key=value,..." with xl-network-configuration(5)
 *             keys; bridge= an interface name, mac= six hex octets
 *   on_poweroff, on_reboot, on_crash, on_watchdog: optional, one of xl.cfg's actions
 *   disk      must be absent (diskless);  any other key is refused (a typo would be
 *             silently ignored by xl, which is how configs go wrong unnoticed)
 *
 * Usage: xlcheck FILE. Exit 0 and prints "name=NAME" when the config is good; exit 1 and
 * one line per problem on stderr when not. */
#include <ctype.h>
#include <errno.h>
#include <libxlutil.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int problems;
static const char *file;

#define PROBLEM(...)                                                      \
	do {                                                              \
		fprintf(stderr, "xlcheck: %s: ", file);                   \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		problems++;                                               \
	} while (0)

static const char *const known_keys[] = {"name", "type", "kernel", "ramdisk", "extra", "memory", "maxmem",
                                         "vcpus", "maxvcpus", "vif", "on_poweroff", "on_reboot", "on_crash",
                                         "on_watchdog", NULL};
static const char *const actions[] = {"destroy", "restart", "rename-restart", "preserve",
                                      "coredump-destroy", "coredump-restart", "soft-reset", NULL};
static const char *const vif_keys[] = {"bridge", "mac", "ip", "script", "type", "model", "vifname", "rate",
                                       "backend", "gatewaydev", "mtu", "trusted", "untrusted", NULL};

static bool in_list(const char *const *list, const char *s, size_t n)
{
	for (int i = 0; list[i]; i++)
		if (strlen(list[i]) == n && strncmp(list[i], s, n) == 0)
			return true;
	return false;
}

static bool ifname_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

/* libxlutil has no iterator over keys: find each "KEY =" or "KEY +=" at the start of a
 * statement with a small scan (the values are left to libxlutil). */
static void check_keys(void)
{
	FILE *f = fopen(file, "r");
	char line[8192];
	if (!f) {
		PROBLEM("cannot open: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof line, f)) {
		char *p = line;
		size_t n;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#' || *p == '\n' || *p == '\0' || *p == '\'' || *p == '"' || *p == ']' || *p == ',')
			continue; /* comment, blank, or a list continued over lines */
		n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
		if (n == 0)
			continue;
		if (strncmp(p, "disk", n) == 0 && n == 4)
			PROBLEM("disk is set: a Micro-VNF guest is diskless (the kernel is injected by the toolstack)");
		else if (!in_list(known_keys, p, n))
			PROBLEM("unexpected key \"%.*s\" (not part of a ClickOS-style guest config)", (int)n, p);
	}
	fclose(f);
}

static const char *get_string(XLU_Config *cfg, const char *key, bool required)
{
	const char *v = NULL;
	int rc = xlu_cfg_get_string(cfg, key, &v, 0);
	if (rc == ESRCH) {
		if (required)
			PROBLEM("%s is required", key);
		return NULL;
	}
	if (rc != 0) {
		PROBLEM("%s must be a string", key);
		return NULL;
	}
	return v;
}

static bool get_long(XLU_Config *cfg, const char *key, bool required, long min, long max, long *out)
{
	int rc = xlu_cfg_get_long(cfg, key, out, 0);
	if (rc == ESRCH) {
		if (required)
			PROBLEM("%s is required", key);
		return false;
	}
	if (rc != 0) {
		PROBLEM("%s must be an integer", key);
		return false;
	}
	if (*out < min || *out > max) {
		PROBLEM("%s = %ld is out of range [%ld, %ld]", key, *out, min, max);
		return false;
	}
	return true;
}

static void check_file(const char *key, const char *path)
{
	if (!path)
		return;
	if (path[0] != '/')
		PROBLEM("%s must be an absolute path (got \"%s\")", key, path);
	else if (access(path, R_OK) != 0)
		PROBLEM("%s %s: %s", key, path, strerror(errno));
}

static bool mac_ok(const char *s, size_t n)
{
	if (n != 17)
		return false;
	for (size_t i = 0; i < n; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static void check_vif(const char *spec)
{
	const char *p = spec;
	if (!*p) {
		PROBLEM("vif entry is empty");
		return;
	}
	while (*p) {
		size_t n = strcspn(p, ","), k = strcspn(p, "=");
		if (k >= n) {
			PROBLEM("vif \"%s\": \"%.*s\" is not key=value", spec, (int)n, p);
		} else if (!in_list(vif_keys, p, k)) {
			PROBLEM("vif \"%s\": unknown key \"%.*s\"", spec, (int)k, p);
		} else if (k == 6 && strncmp(p, "bridge", 6) == 0) {
			char br[64];
			snprintf(br, sizeof br, "%.*s", (int)(n - k - 1), p + k + 1);
			if (!ifname_ok(br, 15))
				PROBLEM("vif \"%s\": bridge \"%s\" is not an interface name", spec, br);
		} else if (k == 3 && strncmp(p, "mac", 3) == 0 && !mac_ok(p + k + 1, n - k - 1)) {
			PROBLEM("vif \"%s\": mac must be six hex octets XX:XX:XX:XX:XX:XX", spec);
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

int main(int argc, char **argv)
{
	XLU_Config *cfg;
	XLU_ConfigList *vifs;
	const char *name, *type, *s;
	long memory = 0, vcpus = 1, v;
	int nvifs, rc;

	if (argc != 2) {
		fprintf(stderr, "usage: xlcheck FILE   (the xl stand-in's config checker)\n");
		return 2;
	}
	file = argv[1];
	if (!(cfg = xlu_cfg_init(stderr, file))) {
		fprintf(stderr, "xlcheck: out of memory\n");
		return 1;
	}
	if ((rc = xlu_cfg_readfile(cfg, file)) != 0) {
		/* libxlutil already said where; after a failed read only destroy is allowed */
		fprintf(stderr, "xlcheck: %s: libxlutil cannot parse it: %s\n", file, strerror(rc));
		xlu_cfg_destroy(cfg);
		return 1;
	}
	check_keys();

	if ((name = get_string(cfg, "name", true))) {
		if (!ifname_ok(name, 63))
			PROBLEM("name \"%s\" must be 1-63 characters [A-Za-z0-9._-]", name);
		else if (strspn(name, "0123456789") == strlen(name))
			PROBLEM("name \"%s\" is all digits: xl would take it for a domain id", name);
	}
	if ((type = get_string(cfg, "type", true)) && strcmp(type, "pv") != 0 && strcmp(type, "pvh") != 0)
		PROBLEM("type \"%s\": a ClickOS-style guest is \"pv\" or \"pvh\"", type);
	check_file("kernel", get_string(cfg, "kernel", true));
	check_file("ramdisk", get_string(cfg, "ramdisk", false));
	get_string(cfg, "extra", false);
	get_long(cfg, "memory", true, 1, 16L * 1024 * 1024, &memory);
	if (get_long(cfg, "maxmem", false, 1, 16L * 1024 * 1024, &v) && v < memory)
		PROBLEM("maxmem = %ld is less than memory = %ld", v, memory);
	get_long(cfg, "vcpus", false, 1, 512, &vcpus);
	if (get_long(cfg, "maxvcpus", false, 1, 512, &v) && v < vcpus)
		PROBLEM("maxvcpus = %ld is less than vcpus = %ld", v, vcpus);
	for (const char *const *k = (const char *const[]){"on_poweroff", "on_reboot", "on_crash", "on_watchdog", NULL};
	     *k; k++)
		if ((s = get_string(cfg, *k, false)) && !in_list(actions, s, strlen(s)))
			PROBLEM("%s = \"%s\" is not an xl.cfg action", *k, s);

	rc = xlu_cfg_get_list(cfg, "vif", &vifs, &nvifs, 0);
	if (rc == 0) {
		for (int i = 0; i < nvifs; i++) {
			const char *item = xlu_cfg_get_listitem(vifs, i);
			if (!item)
				PROBLEM("vif[%d] must be a string", i);
			else
				check_vif(item);
		}
	} else if (rc != ESRCH) {
		PROBLEM("vif must be a list of strings");
	}

	if (problems == 0)
		printf("name=%s\n", name);
	xlu_cfg_destroy(cfg);
	return problems ? 1 : 0;
}
