/* test_netdev — bridges, taps, veth pairs and network namespaces, for real, inside a
 * private network and mount namespace this test makes for itself (needs root): the
 * host's links and /run/netns are never touched. Results are checked with /sys/class/net
 * (a sysfs mounted in our namespace), `ip`, `bridge`, setns on a helper thread, and a
 * ping across the bridge into a namespace. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node/netdev.h"
#include "unit.h"

#define BR "mvtbr0"
#define TAP "mvttap0"
#define VETH "mvtveth0"
#define NS "mvtns0"
#define CYCLES 20

/* ---- helpers ---- */

/* Runs a shell command; its output (stdout and stderr) into out. Returns the exit code. */
static int sh(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sh(char *out, size_t outlen, const char *fmt, ...)
{
	char body[480], cmd[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(body))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s 2>&1", body);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t len = 0;
	char sink[256];
	if (out && outlen)
		out[0] = '\0';
	while (fgets(sink, sizeof(sink), p)) {
		size_t l = strlen(sink);
		if (out && len + l < outlen) {
			memcpy(out + len, sink, l + 1);
			len += l;
		}
	}
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool sys_exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool sys_exists(const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0;
}

static unsigned if_flags(const char *name)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	unsigned flags = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 ? (unsigned short)ifr.ifr_flags : 0;
	close(fd);
	return flags;
}

/* The basename of /sys/class/net/NAME/master, or "". */
static void master_of(const char *name, char *buf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	snprintf(path, sizeof(path), "/sys/class/net/%s/master", name);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	buf[0] = '\0';
	if (n <= 0)
		return;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	size_t l = strlen(base);
	if (l < len)
		memcpy(buf, base, l + 1);
}

/* Entries of a directory other than . and .., and those named in `except`. */
static int count_entries(const char *dir, const char *except1, const char *except2)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((except1 && strcmp(e->d_name, except1) == 0) ||
		    (except2 && strcmp(e->d_name, except2) == 0))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static int count_fds(void)
{
	return count_entries("/proc/self/fd", NULL, NULL);
}

static ino_t thread_netns(void)
{
	struct stat st;
	return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

static bool list_has(char **names, const char *name)
{
	for (char **p = names; p && *p; p++)
		if (strcmp(*p, name) == 0)
			return true;
	return false;
}

/* Waits (bounded) until /sys/class/net/NAME/operstate says "up". */
static bool wait_operstate_up(const char *name)
{
	char path[PATH_MAX], state[32];
	snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", name);
	for (int i = 0; i < 300; i++) {
		FILE *f = fopen(path, "r");
		if (f) {
			bool up = fgets(state, sizeof(state), f) && strncmp(state, "up", 2) == 0;
			fclose(f);
			if (up)
				return true;
		}
		struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

/* What a helper thread sees after setns into a namespace. */
struct ns_view {
	const char *netns;
	int rc;
	unsigned eth0_index, eth0_flags, lo_flags;
	int links; /* entries in the namespace other than lo */
};

static void *ns_view_thread(void *arg)
{
	struct ns_view *v = arg;
	char path[PATH_MAX];
	netdev_netns_path(v->netns, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		v->rc = -errno;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	close(fd);
	/* This thread now lives in the namespace and ends there; nothing to restore. */
	v->eth0_index = if_nametoindex("eth0");
	v->eth0_flags = if_flags("eth0");
	v->lo_flags = if_flags("lo");
	struct if_nameindex *all = if_nameindex();
	v->links = 0;
	for (struct if_nameindex *p = all; p && p->if_index; p++)
		if (strcmp(p->if_name, "lo") != 0)
			v->links++;
	if (all)
		if_freenameindex(all);
	return NULL;
}

static struct ns_view ns_view(const char *netns)
{
	struct ns_view v = {.netns = netns};
	pthread_t t;
	if (pthread_create(&t, NULL, ns_view_thread, &v) != 0)
		v.rc = -EAGAIN;
	else
		pthread_join(t, NULL);
	return v;
}

/* ---- tests ---- */

static void test_bad_names(void)
{
	CHECK_EQ_INT(netdev_bridge_create(""), -EINVAL);
	CHECK_EQ_INT(netdev_bridge_create("sixteen-chars-xx"), -EINVAL);
	CHECK_EQ_INT(netdev_bridge_create("a/b"), -EINVAL);
	CHECK_EQ_INT(netdev_bridge_create("a b"), -EINVAL);
	CHECK_EQ_INT(netdev_tap_create("..", BR), -EINVAL);
	CHECK_EQ_INT(netdev_netns_create("a/b"), -EINVAL);
	CHECK_EQ_INT(netdev_netns_create(".."), -EINVAL);
	CHECK_EQ_INT(netdev_delete("sixteen-chars-xx"), -EINVAL);
	CHECK(!netdev_exists(""));
	CHECK(!netdev_exists("sixteen-chars-xx"));
	char path[64];
	netdev_netns_path("x1", path, sizeof(path));
	CHECK_STR(path, "/run/netns/x1");
}

static void test_bridge(void)
{
	ino_t ns = thread_netns();
	CHECK(!netdev_exists(BR));
	CHECK(!netdev_is_bridge(BR));
	CHECK_EQ_INT(netdev_bridge_create(BR), 0);
	CHECK_EQ_INT(netdev_bridge_create(BR), 0); /* existing bridge: 0 */
	CHECK(netdev_exists(BR));
	CHECK(netdev_is_bridge(BR));
	CHECK(sys_exists("/sys/class/net/%s/bridge", BR));
	CHECK(if_flags(BR) & IFF_UP);
	CHECK(netdev_exists("lo"));
	CHECK(!netdev_is_bridge("lo"));
	CHECK_EQ_INT(netdev_bridge_create("lo"), -EEXIST); /* there, but not a bridge */

	CHECK_EQ_INT(netdev_bridge_create("mvtbr1"), 0);
	char **names = NULL;
	CHECK_EQ_INT(netdev_bridges(&names), 0);
	CHECK(list_has(names, BR));
	CHECK(list_has(names, "mvtbr1"));
	CHECK(!list_has(names, "lo"));
	int n = 0;
	for (char **p = names; p && *p; p++)
		n++;
	CHECK_EQ_INT(n, 2);
	netdev_list_free(names);

	char out[4096];
	CHECK_EQ_INT(sh(out, sizeof(out), "ip -d link show %s", BR), 0);
	CHECK(strstr(out, "bridge") != NULL);
	CHECK(strstr(out, ",UP") != NULL);

	CHECK_EQ_INT(netdev_delete("mvtbr1"), 0);
	CHECK(!netdev_exists("mvtbr1"));
	CHECK_EQ_INT(netdev_bridges(&names), 0);
	CHECK(list_has(names, BR) && !list_has(names, "mvtbr1"));
	netdev_list_free(names);
	CHECK(thread_netns() == ns);
}

static void test_tap(void)
{
	CHECK_EQ_INT(netdev_tap_create(TAP, BR), 0);
	CHECK(netdev_exists(TAP));
	CHECK(!netdev_is_bridge(TAP));
	CHECK(sys_exists("/sys/class/net/%s/tun_flags", TAP));
	char master[IFNAMSIZ + 1];
	master_of(TAP, master, sizeof(master));
	CHECK_STR(master, BR);
	CHECK(if_flags(TAP) & IFF_UP);
	CHECK(sys_exists("/sys/class/net/" BR "/brif/%s", TAP));

	char out[4096];
	CHECK_EQ_INT(sh(out, sizeof(out), "bridge link show dev %s", TAP), 0);
	CHECK(strstr(out, "master " BR) != NULL);
	CHECK_EQ_INT(sh(out, sizeof(out), "ip -d link show %s", TAP), 0);
	CHECK(strstr(out, "tun type tap") != NULL || strstr(out, "tap") != NULL);

	/* Errors leave nothing behind. */
	CHECK_EQ_INT(netdev_tap_create(TAP, BR), -EEXIST);
	CHECK(netdev_exists(TAP));
	CHECK_EQ_INT(netdev_tap_create("mvttap9", "mvtnobr"), -ENODEV);
	CHECK(!netdev_exists("mvttap9"));
	CHECK_EQ_INT(netdev_tap_create("mvttap9", "lo"), -EINVAL);
	CHECK(!netdev_exists("mvttap9"));
	CHECK_EQ_INT(netdev_tap_create(BR, BR), -EEXIST);
}

static void test_netns_veth(void)
{
	ino_t ns = thread_netns();
	CHECK_EQ_INT(netdev_netns_create(NS), 0);
	CHECK(thread_netns() == ns);
	CHECK(sys_exists("/run/netns/%s", NS));
	CHECK_EQ_INT(netdev_netns_create(NS), -EEXIST);
	CHECK(thread_netns() == ns);

	char out[4096];
	CHECK_EQ_INT(sh(out, sizeof(out), "ip netns list"), 0);
	CHECK(strstr(out, NS) != NULL);
	CHECK_EQ_INT(sh(out, sizeof(out), "ip -n %s link show lo", NS), 0);
	CHECK(strstr(out, ",UP") != NULL);

	CHECK_EQ_INT(netdev_veth_create(VETH, BR, NS, "eth0"), 0);
	CHECK(thread_netns() == ns);
	CHECK(netdev_exists(VETH));
	CHECK(!netdev_exists("eth0")); /* the inner end is not in our namespace */
	char master[IFNAMSIZ + 1];
	master_of(VETH, master, sizeof(master));
	CHECK_STR(master, BR);
	CHECK(if_flags(VETH) & IFF_UP);

	/* Inside: with ip, and by setns on a helper thread. */
	CHECK_EQ_INT(sh(out, sizeof(out), "ip -n %s -d link show eth0", NS), 0);
	CHECK(strstr(out, "veth") != NULL);
	CHECK(strstr(out, ",UP") != NULL);
	struct ns_view v = ns_view(NS);
	CHECK_EQ_INT(v.rc, 0);
	CHECK(v.eth0_index != 0);
	CHECK(v.eth0_flags & IFF_UP);
	CHECK(v.lo_flags & IFF_UP);
	CHECK_EQ_INT(v.links, 1);
	CHECK(thread_netns() == ns);

	/* Errors: nothing half-made remains. */
	CHECK_EQ_INT(netdev_veth_create(VETH, BR, NS, "eth1"), -EEXIST);
	CHECK_EQ_INT(netdev_veth_create("mvtveth9", BR, NS, "eth0"), -EEXIST); /* inner taken */
	CHECK(!netdev_exists("mvtveth9"));
	CHECK_EQ_INT(netdev_veth_create("mvtveth9", BR, "mvtnons", "eth0"), -ENOENT);
	CHECK_EQ_INT(netdev_veth_create("mvtveth9", "mvtnobr", NS, "eth0"), -ENODEV);
	CHECK(!netdev_exists("mvtveth9"));
	v = ns_view(NS);
	CHECK_EQ_INT(v.links, 1);
	CHECK(thread_netns() == ns);
}

static void test_traffic(void)
{
	char out[4096];
	/* These addresses exist only in this test's private network namespaces. */
	CHECK_EQ_INT(sh(out, sizeof(out), "ip addr add 10.77.0.1/24 dev %s", BR), 0);
	CHECK_EQ_INT(sh(out, sizeof(out), "ip -n %s addr add 10.77.0.2/24 dev eth0", NS), 0);
	CHECK(wait_operstate_up(VETH));
	CHECK(wait_operstate_up(BR));
	int rc = -1;
	for (int i = 0; i < 3 && rc != 0; i++) /* the first ARP may race link activation */
		rc = sh(out, sizeof(out), "ping -c1 -W1 10.77.0.2");
	CHECK_EQ_INT(rc, 0);
	if (rc != 0)
		fprintf(stderr, "%s", out);
	rc = -1;
	for (int i = 0; i < 3 && rc != 0; i++)
		rc = sh(out, sizeof(out), "ip netns exec %s ping -c1 -W1 10.77.0.1", NS);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(sh(out, sizeof(out), "bridge fdb show br %s", BR), 0);
	CHECK(strstr(out, VETH) != NULL);
}

static void test_delete_all(void)
{
	CHECK_EQ_INT(netdev_delete(TAP), 0);
	CHECK_EQ_INT(netdev_delete(VETH), 0);
	CHECK(!netdev_exists(TAP));
	CHECK(!netdev_exists(VETH));
	struct ns_view v = ns_view(NS);
	CHECK_EQ_INT(v.rc, 0);
	CHECK_EQ_INT(v.links, 0); /* the peer went with the host end */
	CHECK_EQ_INT(netdev_netns_delete(NS), 0);
	CHECK(!sys_exists("/run/netns/%s", NS));
	CHECK_EQ_INT(netdev_delete(BR), 0);
	CHECK(!netdev_exists(BR));

	/* Missing is not an error. */
	CHECK_EQ_INT(netdev_delete(TAP), 0);
	CHECK_EQ_INT(netdev_netns_delete(NS), 0);

	CHECK_EQ_INT(count_entries("/sys/class/net", "lo", NULL), 0);
	CHECK_EQ_INT(count_entries("/run/netns", NULL, NULL), 0);
	char **names = NULL;
	CHECK_EQ_INT(netdev_bridges(&names), 0);
	CHECK(names && names[0] == NULL);
	netdev_list_free(names);
	char out[4096];
	CHECK_EQ_INT(sh(out, sizeof(out), "ip netns list | wc -l"), 0);
	CHECK(atoi(out) == 0);
}

static void test_cycles(void)
{
	ino_t ns = thread_netns();
	int fds = count_fds();
	CHECK_EQ_INT(netdev_bridge_create(BR), 0);
	int failures = 0;
	for (int i = 0; i < CYCLES; i++) {
		char tap[IFNAMSIZ], veth[IFNAMSIZ], netns[32];
		snprintf(tap, sizeof(tap), "mvtc%d", i);
		snprintf(veth, sizeof(veth), "mvtv%d", i);
		snprintf(netns, sizeof(netns), "mvtcns%d", i);
		failures += netdev_tap_create(tap, BR) != 0;
		failures += !netdev_exists(tap);
		failures += netdev_netns_create(netns) != 0;
		failures += netdev_veth_create(veth, BR, netns, "eth0") != 0;
		failures += !netdev_exists(veth);
		failures += netdev_delete(tap) != 0;
		failures += netdev_delete(veth) != 0;
		failures += netdev_netns_delete(netns) != 0;
		failures += netdev_exists(tap) || netdev_exists(veth);
	}
	CHECK_EQ_INT(failures, 0);
	CHECK_EQ_INT(netdev_delete(BR), 0);
	CHECK_EQ_INT(count_entries("/sys/class/net", "lo", NULL), 0);
	CHECK_EQ_INT(count_entries("/run/netns", NULL, NULL), 0);
	CHECK_EQ_INT(count_fds(), fds);
	CHECK(thread_netns() == ns);
}

/* Concurrent callers: namespace work stays on each thread. */
struct worker_arg {
	int id, failures;
};

static void *cycle_thread(void *arg)
{
	struct worker_arg *w = arg;
	ino_t ns = thread_netns();
	for (int i = 0; i < 5; i++) {
		char veth[IFNAMSIZ], netns[32];
		snprintf(veth, sizeof(veth), "mvtw%dv%d", w->id, i);
		snprintf(netns, sizeof(netns), "mvtw%dns%d", w->id, i);
		w->failures += netdev_netns_create(netns) != 0;
		w->failures += netdev_veth_create(veth, BR, netns, "eth0") != 0;
		w->failures += netdev_delete(veth) != 0;
		w->failures += netdev_netns_delete(netns) != 0;
		w->failures += thread_netns() != ns;
	}
	return NULL;
}

static void test_threads(void)
{
	CHECK_EQ_INT(netdev_bridge_create(BR), 0);
	enum { N = 4 };
	pthread_t t[N];
	struct worker_arg w[N];
	for (int i = 0; i < N; i++) {
		w[i] = (struct worker_arg){.id = i};
		CHECK_EQ_INT(pthread_create(&t[i], NULL, cycle_thread, &w[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(w[i].failures, 0);
	}
	CHECK_EQ_INT(netdev_delete(BR), 0);
	CHECK_EQ_INT(count_entries("/sys/class/net", "lo", NULL), 0);
	CHECK_EQ_INT(count_entries("/run/netns", NULL, NULL), 0);
}

/* A private network namespace, a private mount namespace with its own sysfs (so that
 * /sys/class/net shows our links) and a tmpfs on /run/netns: all of it vanishes with
 * this process. */
static bool created_run_netns; /* on the host's /run: removed again at the end */

static int isolate(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
		perror("test_netdev: unshare(CLONE_NEWNET|CLONE_NEWNS)");
		return -1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		perror("test_netdev: make / private");
		return -1;
	}
	if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
		perror("test_netdev: mount sysfs");
		return -1;
	}
	if (mkdir("/run/netns", 0755) == 0)
		created_run_netns = true;
	else if (errno != EEXIST) {
		perror("test_netdev: mkdir /run/netns");
		return -1;
	}
	if (mount("tmpfs", "/run/netns", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") < 0) {
		perror("test_netdev: mount tmpfs on /run/netns");
		return -1;
	}
	return 0;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("skip test_netdev: needs root (network and mount namespaces)\n");
		printf("0 passed, 0 failed\n");
		return 0;
	}
	if (isolate() < 0) {
		printf("FAIL isolate\n0 passed, 1 failed\n");
		return 1;
	}
	RUN(test_bad_names);
	RUN(test_bridge);
	RUN(test_tap);
	RUN(test_netns_veth);
	RUN(test_traffic);
	RUN(test_delete_all);
	RUN(test_cycles);
	RUN(test_threads);
	if (umount2("/run/netns", MNT_DETACH) == 0 && created_run_netns)
		rmdir("/run/netns");
	UNIT_END();
}
