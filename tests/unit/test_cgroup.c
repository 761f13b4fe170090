/* test_cgroup — the pure parts of drivers/cgroup.c (modes, --cgroup-parent, the limit
 * arithmetic from vCPUs and memory, cpu.max and keyed files, mountinfo) and of confine.c
 * (user lookup); cgroup_host_init on a mountinfo without cgroups. The real cgroupfs is
 * exercised by tests/integration/test_cgroups.py. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/cgroup.h"
#include "drivers/confine.h"
#include "unit.h"

static void test_modes(void)
{
	enum cgroup_mode m = CGROUP_OFF;
	CHECK_EQ_INT(cgroup_mode_parse("auto", &m), 0);
	CHECK_EQ_INT(m, CGROUP_AUTO);
	CHECK_EQ_INT(cgroup_mode_parse("v1", &m), 0);
	CHECK_EQ_INT(m, CGROUP_V1);
	CHECK_EQ_INT(cgroup_mode_parse("v2", &m), 0);
	CHECK_EQ_INT(m, CGROUP_V2);
	CHECK_EQ_INT(cgroup_mode_parse("off", &m), 0);
	CHECK_EQ_INT(m, CGROUP_OFF);
	CHECK_EQ_INT(cgroup_mode_parse("v3", &m), -EINVAL);
	CHECK_EQ_INT(cgroup_mode_parse("", &m), -EINVAL);
	CHECK_EQ_INT(cgroup_mode_parse("V1", &m), -EINVAL);
	CHECK_STR(cgroup_mode_name(CGROUP_V2), "v2");
}

static void test_parent(void)
{
	CHECK(cgroup_parent_valid("microvim"));
	CHECK(cgroup_parent_valid("/microvim"));
	CHECK(cgroup_parent_valid("vnf/prod.1"));
	CHECK(cgroup_parent_valid("a/b/c/d"));
	CHECK(!cgroup_parent_valid("a/b/c/d/e"));
	CHECK(!cgroup_parent_valid(""));
	CHECK(!cgroup_parent_valid("/"));
	CHECK(!cgroup_parent_valid(".."));
	CHECK(!cgroup_parent_valid("a/../b"));
	CHECK(!cgroup_parent_valid("./a"));
	CHECK(!cgroup_parent_valid("a//b"));
	CHECK(!cgroup_parent_valid("a b"));
	CHECK(!cgroup_parent_valid("a/"));
}

static void test_limits(void)
{
	struct cgroup_limits l;
	char buf[64];
	cgroup_limits_from(0.5, 16, &l);
	CHECK_EQ_INT(l.cpu_period_us, 100000);
	CHECK_EQ_INT(l.cpu_quota_us, 50000);
	CHECK_EQ_INT(l.memory_bytes, 16LL << 20);
	cgroup_limits_from(2.25, 1, &l);
	CHECK_EQ_INT(l.cpu_quota_us, 225000);
	CHECK_EQ_INT(l.memory_bytes, 1LL << 20);
	cgroup_limits_from(0.001, 1 << 20, &l); /* the least vCPU share: the kernel's 1 ms minimum */
	CHECK_EQ_INT(l.cpu_quota_us, 1000);
	CHECK_EQ_INT(l.memory_bytes, 1LL << 40);
	cgroup_limits_from(256, 1, &l);
	CHECK_EQ_INT(l.cpu_quota_us, 25600000);
	cgroup_limits_from(0.3333, 1, &l); /* rounded to the nearest microsecond */
	CHECK_EQ_INT(l.cpu_quota_us, 33330);
	cgroup_limits_from(0, 0, &l);
	CHECK_EQ_INT(l.cpu_quota_us, -1);
	CHECK_EQ_INT(l.memory_bytes, -1);

	cgroup_limits_from(1.5, 64, &l);
	CHECK_EQ_INT(cgroup_cpu_max_format(&l, buf, sizeof buf), 0);
	CHECK_STR(buf, "150000 100000");
	cgroup_limits_from(0, 64, &l);
	CHECK_EQ_INT(cgroup_cpu_max_format(&l, buf, sizeof buf), 0);
	CHECK_STR(buf, "max 100000");
	CHECK_EQ_INT(cgroup_cpu_max_format(&l, buf, 4), -ENOSPC);
}

static void test_cpu_max_parse(void)
{
	long long q = 0, p = 0;
	CHECK_EQ_INT(cgroup_cpu_max_parse("50000 100000\n", &q, &p), 0);
	CHECK_EQ_INT(q, 50000);
	CHECK_EQ_INT(p, 100000);
	CHECK_EQ_INT(cgroup_cpu_max_parse("max 100000\n", &q, &p), 0);
	CHECK_EQ_INT(q, -1);
	CHECK_EQ_INT(cgroup_cpu_max_parse("max\n", &q, &p), -EINVAL);
	CHECK_EQ_INT(cgroup_cpu_max_parse("-5 100000", &q, &p), -EINVAL);
	CHECK_EQ_INT(cgroup_cpu_max_parse("12x 100000", &q, &p), -EINVAL);
	CHECK_EQ_INT(cgroup_cpu_max_parse("1000 0", &q, &p), -EINVAL);
	CHECK_EQ_INT(cgroup_cpu_max_parse("", &q, &p), -EINVAL);
}

static void test_keyed(void)
{
	const char *events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
	const char *v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
	CHECK_EQ_INT(cgroup_keyed_value(events, "oom_kill"), 1);
	CHECK_EQ_INT(cgroup_keyed_value(events, "oom"), 2); /* not oom_kill's prefix */
	CHECK_EQ_INT(cgroup_keyed_value(events, "max"), 12);
	CHECK_EQ_INT(cgroup_keyed_value(v1, "oom_kill"), 0);
	CHECK_EQ_INT(cgroup_keyed_value("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"), -1); /* before 4.13 */
	CHECK_EQ_INT(cgroup_keyed_value("", "oom_kill"), -1);
}

static void test_mounts(void)
{
	/* a hybrid host like CI's: v1 controllers, and a cgroup2 mount without them */
	const char *hybrid =
		"30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
		"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
		"32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
		"33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
		"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
		"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
	const char *v2 = "25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
	const char *joint = "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
	                    "32 30 0:29 / /sys/fs/cgroup/x rw - cgroup cgroup rw,memory,cpuset\n"
	                    "33 30 0:30 / /sys/fs/cgroup/with\\040space rw - cgroup2 cgroup2 rw\n"
	                    "garbage line\n";
	struct cgroup_mounts m;
	cgroup_mounts_parse(hybrid, &m);
	CHECK_STR(m.cpu, "/sys/fs/cgroup/cpu");
	CHECK_STR(m.memory, "/sys/fs/cgroup/memory");
	CHECK_STR(m.v2, "/sys/fs/cgroup/unified");
	cgroup_mounts_parse(v2, &m);
	CHECK_STR(m.v2, "/sys/fs/cgroup");
	CHECK_STR(m.cpu, "");
	CHECK_STR(m.memory, "");
	cgroup_mounts_parse(joint, &m);
	CHECK_STR(m.cpu, "/sys/fs/cgroup/cpu,cpuacct");
	CHECK_STR(m.memory, "/sys/fs/cgroup/x");
	CHECK_STR(m.v2, ""); /* an escaped mount point is not used */
	cgroup_mounts_parse("", &m);
	CHECK_STR(m.v2, "");
}

static void test_host_without_cgroups(void)
{
	struct cgroup_host c;
	char err[256] = "";
	const char *none = "25 21 0:22 / /proc rw - proc proc rw\n";
	CHECK_EQ_INT(cgroup_host_init(&c, CGROUP_AUTO, "microvim", "0123456789abcdef", none, err, sizeof err), 0);
	CHECK_EQ_INT(c.mode, CGROUP_OFF);
	CHECK(strstr(c.why, "no cgroup2 mount") != NULL);
	CHECK(strstr(c.why, "no cgroup v1 cpu hierarchy") != NULL);
	CHECK(cgroup_host_init(&c, CGROUP_V1, "microvim", "0123456789abcdef", none, err, sizeof err) < 0);
	CHECK(strstr(err, "--cgroups v1: not usable here") != NULL);
	CHECK(cgroup_host_init(&c, CGROUP_V2, "microvim", "0123456789abcdef", none, err, sizeof err) < 0);
	CHECK(strstr(err, "--cgroups v2") != NULL);
	CHECK_EQ_INT(cgroup_host_init(&c, CGROUP_OFF, "microvim", "0123456789abcdef", NULL, err, sizeof err), 0);
	CHECK_EQ_INT(c.mode, CGROUP_OFF);
	CHECK(strstr(c.why, "--cgroups off") != NULL);
}

static void test_user_lookup(void)
{
	struct confine_user u;
	char err[256] = "";
	CHECK_EQ_INT(confine_user_lookup("root", &u, err, sizeof err), 0);
	CHECK_EQ_INT(u.uid, 0);
	CHECK_EQ_INT(u.gid, 0);
	CHECK(u.ngroups >= 1);
	CHECK_EQ_INT(confine_user_lookup("no-such-user-mv", &u, err, sizeof err), -ENOENT);
	CHECK(strstr(err, "no user \"no-such-user-mv\"") != NULL);
}

/* ---- a cgroupfs played by plain files: the v2 and v1 paths end to end ----
 * A group dir that exists is reused (cgroup_create), so its files can be made beforehand;
 * the kernel's checks are not played, only what microvim writes and reads. */

static void touch(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", dir, file);
	if ((f = fopen(path, "w"))) {
		fputs(text, f);
		fclose(f);
	}
}

static void slurp(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	FILE *f;
	size_t n = 0;
	snprintf(path, sizeof path, "%s/%s", dir, file);
	if ((f = fopen(path, "r"))) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

static void test_fake_v2(void)
{
	char top[] = "/tmp/mv-cgv2-XXXXXX", dir[PATH_MAX], group[PATH_MAX + 32], mi[PATH_MAX + 128], err[256] = "";
	char buf[128], procs[2][PATH_MAX];
	struct cgroup_host c;
	struct cgroup_limits l, got;
	if (!mkdtemp(top)) {
		CHECK(0);
		return;
	}
	snprintf(mi, sizeof mi, "25 21 0:22 / %s rw - cgroup2 cgroup2 rw\n", top);
	touch(top, "cgroup.controllers", "cpuset cpu io memory pids\n");
	touch(top, "cgroup.subtree_control", "");
	snprintf(dir, sizeof dir, "%s/vnf", top);
	mkdir(dir, 0755);
	touch(dir, "cgroup.subtree_control", "");
	snprintf(dir, sizeof dir, "%s/vnf/0123456789abcdef", top);
	mkdir(dir, 0755);
	touch(dir, "cgroup.subtree_control", "");
	snprintf(group, sizeof group, "%s/fedcba9876543210", dir);
	mkdir(group, 0755);
	touch(group, "cpu.max", "");
	touch(group, "memory.max", "");
	touch(group, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");

	CHECK_EQ_INT(cgroup_host_init(&c, CGROUP_AUTO, "/vnf", "0123456789abcdef", mi, err, sizeof err), 0);
	CHECK_EQ_INT(c.mode, CGROUP_V2);
	CHECK_STR(c.dirs[0], dir);
	CHECK_STR(c.dirs[1], "");
	slurp(top, "cgroup.subtree_control", buf, sizeof buf);
	CHECK_STR(buf, "+cpu +memory"); /* each level hands the controllers down */
	slurp(dir, "cgroup.subtree_control", buf, sizeof buf);
	CHECK_STR(buf, "+cpu +memory");

	cgroup_limits_from(0.25, 48, &l);
	CHECK_EQ_INT(cgroup_create(&c, "fedcba9876543210", &l, err, sizeof err), 0);
	slurp(group, "cpu.max", buf, sizeof buf);
	CHECK_STR(buf, "25000 100000");
	slurp(group, "memory.max", buf, sizeof buf);
	CHECK_STR(buf, "50331648");
	CHECK_EQ_INT(cgroup_limits_read(&c, "fedcba9876543210", &got), 0);
	CHECK_EQ_INT(got.cpu_quota_us, 25000);
	CHECK_EQ_INT(got.memory_bytes, 48LL << 20);
	CHECK_EQ_INT(cgroup_oom_killed(&c, "fedcba9876543210"), 1);
	CHECK_EQ_INT(cgroup_procs_paths(&c, "fedcba9876543210", procs), 0);
	snprintf(mi, sizeof mi, "%s/cgroup.procs", group);
	CHECK_STR(procs[0], mi);
	CHECK_STR(procs[1], "");

	/* a v2 mount whose controllers are v1's: auto takes none, v2 insists and fails */
	touch(top, "cgroup.controllers", "pids\n");
	snprintf(mi, sizeof mi, "25 21 0:22 / %s rw - cgroup2 cgroup2 rw\n", top);
	CHECK_EQ_INT(cgroup_host_init(&c, CGROUP_AUTO, "vnf", "0123456789abcdef", mi, err, sizeof err), 0);
	CHECK_EQ_INT(c.mode, CGROUP_OFF);
	CHECK(strstr(c.why, "has no cpu and memory controllers") != NULL);
	CHECK(cgroup_host_init(&c, CGROUP_V2, "vnf", "0123456789abcdef", mi, err, sizeof err) < 0);
	snprintf(mi, sizeof mi, "rm -rf %s", top);
	CHECK_EQ_INT(system(mi), 0);
}

static void test_fake_v1(void)
{
	char top[] = "/tmp/mv-cgv1-XXXXXX", mi[2 * PATH_MAX + 256], err[256] = "", buf[128];
	char cpu[PATH_MAX + 64], mem[PATH_MAX + 64], procs[2][PATH_MAX];
	struct cgroup_host c;
	struct cgroup_limits l;
	if (!mkdtemp(top)) {
		CHECK(0);
		return;
	}
	snprintf(mi, sizeof mi,
	         "31 30 0:28 / %s/cpu rw - cgroup cgroup rw,cpu\n34 30 0:31 / %s/memory rw - cgroup cgroup rw,memory\n",
	         top, top);
	snprintf(cpu, sizeof cpu, "%s/cpu/microvim/0123456789abcdef/fedcba9876543210", top);
	snprintf(mem, sizeof mem, "%s/memory/microvim/0123456789abcdef/fedcba9876543210", top);
	snprintf(mi, sizeof mi, "mkdir -p %s %s", cpu, mem);
	CHECK_EQ_INT(system(mi), 0);
	snprintf(mi, sizeof mi,
	         "31 30 0:28 / %s/cpu rw - cgroup cgroup rw,cpu\n34 30 0:31 / %s/memory rw - cgroup cgroup rw,memory\n",
	         top, top);
	touch(cpu, "cpu.cfs_period_us", "");
	touch(cpu, "cpu.cfs_quota_us", "");
	touch(mem, "memory.limit_in_bytes", "");
	touch(mem, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
	/* no memory.memsw.*: swap accounting off, which is not an error */

	CHECK_EQ_INT(cgroup_host_init(&c, CGROUP_AUTO, "microvim", "0123456789abcdef", mi, err, sizeof err), 0);
	CHECK_EQ_INT(c.mode, CGROUP_V1); /* no cgroup2 mount: auto falls to v1 */
	cgroup_limits_from(1.5, 16, &l);
	CHECK_EQ_INT(cgroup_create(&c, "fedcba9876543210", &l, err, sizeof err), 0);
	slurp(cpu, "cpu.cfs_quota_us", buf, sizeof buf);
	CHECK_STR(buf, "150000");
	slurp(cpu, "cpu.cfs_period_us", buf, sizeof buf);
	CHECK_STR(buf, "100000");
	slurp(mem, "memory.limit_in_bytes", buf, sizeof buf);
	CHECK_STR(buf, "16777216");
	CHECK_EQ_INT(cgroup_oom_killed(&c, "fedcba9876543210"), 0);
	CHECK_EQ_INT(cgroup_procs_paths(&c, "fedcba9876543210", procs), 0);
	CHECK(strstr(procs[0], "/cpu/microvim/") != NULL && strstr(procs[1], "/memory/microvim/") != NULL);
	touch(mem, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
	CHECK_EQ_INT(cgroup_oom_killed(&c, "fedcba9876543210"), 1);
	snprintf(mi, sizeof mi, "rm -rf %s", top);
	CHECK_EQ_INT(system(mi), 0);
}

/* confine_spawn without cgroups or a user: what it shares with posix_spawn (stdout,
 * session, exit status) and its errors, which name the step. */
static void test_confine_spawn(void)
{
	char *argv[] = {"/bin/sh", "-c", "echo hi; exit 7", NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	char err[256] = "", out[128] = "";
	int pipefd[2], status = 0;
	pid_t pid = -1;
	ssize_t n;
	CHECK_EQ_INT(pipe2(pipefd, O_CLOEXEC), 0);
	struct confine_spawn s = {.path = "/bin/sh", .argv = argv, .envp = envp, .fds = {-1, pipefd[1], -1},
	                          .join_fds = {-1, -1}};
	CHECK_EQ_INT(confine_spawn(&s, &pid, err, sizeof err), 0);
	close(pipefd[1]);
	n = read(pipefd[0], out, sizeof out - 1);
	close(pipefd[0]);
	CHECK(n == 3 && strncmp(out, "hi\n", 3) == 0);
	CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);

	s.fds[1] = -1;
	s.path = "/nonexistent/program";
	CHECK_EQ_INT(confine_spawn(&s, &pid, err, sizeof err), -ENOENT);
	CHECK(strstr(err, "cannot execute /nonexistent/program") != NULL);
	s.path = "/bin/sh";
	s.join_fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC); /* not writable: the join fails */
	CHECK_EQ_INT(confine_spawn(&s, &pid, err, sizeof err), -EBADF);
	CHECK(strstr(err, "cannot join its cgroup") != NULL);
	close(s.join_fds[0]);
}

int main(void)
{
	RUN(test_modes);
	RUN(test_parent);
	RUN(test_limits);
	RUN(test_cpu_max_parse);
	RUN(test_keyed);
	RUN(test_mounts);
	RUN(test_host_without_cgroups);
	RUN(test_user_lookup);
	RUN(test_confine_spawn);
	RUN(test_fake_v2);
	RUN(test_fake_v1);
	UNIT_END();
}
