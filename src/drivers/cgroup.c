/* cgroup — see cgroup.h. The pure helpers (modes, limit arithmetic, the files' formats,
 * mountinfo) come first and have unit tests; then the files of a real cgroupfs. */
#include "drivers/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"

static const char *const mode_names[] = {
	[CGROUP_AUTO] = "auto", [CGROUP_V1] = "v1", [CGROUP_V2] = "v2", [CGROUP_OFF] = "off"};

int cgroup_mode_parse(const char *s, enum cgroup_mode *m)
{
	for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*m = (enum cgroup_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *cgroup_mode_name(enum cgroup_mode m)
{
	return (unsigned)m < sizeof mode_names / sizeof mode_names[0] ? mode_names[m] : "?";
}

bool cgroup_parent_valid(const char *parent)
{
	const char *p = parent[0] == '/' ? parent + 1 : parent;
	int parts = 0;
	if (strlen(p) > 200)
		return false;
	while (*p) {
		size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') || ++parts > 4)
			return false;
		p += n;
		if (*p == '/' && p[1] != '\0')
			p++;
		else if (*p != '\0')
			return false;
	}
	return parts > 0;
}

void cgroup_limits_from(double vcpus, long long memory_mb, struct cgroup_limits *l)
{
	l->cpu_period_us = CGROUP_CPU_PERIOD_US;
	l->cpu_quota_us = vcpus > 0 ? (long long)(vcpus * (double)CGROUP_CPU_PERIOD_US + 0.5) : -1;
	if (l->cpu_quota_us > 0 && l->cpu_quota_us < CGROUP_CPU_QUOTA_MIN_US)
		l->cpu_quota_us = CGROUP_CPU_QUOTA_MIN_US; /* 0.001 vCPU asked: the least the kernel gives */
	l->memory_bytes = memory_mb > 0 ? memory_mb * 1024 * 1024 : -1;
}

int cgroup_cpu_max_format(const struct cgroup_limits *l, char *buf, size_t len)
{
	int n = l->cpu_quota_us > 0 ? snprintf(buf, len, "%lld %lld", l->cpu_quota_us, l->cpu_period_us)
	                            : snprintf(buf, len, "max %lld", l->cpu_period_us);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int cgroup_cpu_max_parse(const char *text, long long *quota, long long *period)
{
	char q[32];
	if (sscanf(text, "%31s %lld", q, period) != 2 || *period <= 0)
		return -EINVAL;
	if (strcmp(q, "max") == 0) {
		*quota = -1;
		return 0;
	}
	char *end;
	errno = 0;
	*quota = strtoll(q, &end, 10);
	return errno || *end || *quota <= 0 ? -EINVAL : 0;
}

long long cgroup_keyed_value(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		long long v;
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ' && sscanf(p + kl + 1, "%lld", &v) == 1)
			return v;
	}
	return -1;
}

/* Is word one of the comma-separated words of list? */
static bool has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = list; p; p = strchr(p, ','), p = p ? p + 1 : NULL)
		if (strncmp(p, word, wl) == 0 && (p[wl] == ',' || p[wl] == '\0'))
			return true;
	return false;
}

/* One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". */
static void mount_line(char *line, struct cgroup_mounts *m)
{
	char *fields[6], *save = NULL, *tok, *sep = strstr(line, " - ");
	char fstype[32], source[64], superopts[512];
	int n = 0;
	if (!sep || sscanf(sep + 3, "%31s %63s %511s", fstype, source, superopts) != 3)
		return;
	*sep = '\0';
	for (tok = strtok_r(line, " ", &save); tok && n < 6; tok = strtok_r(NULL, " ", &save))
		fields[n++] = tok;
	if (n < 6 || strchr(fields[4], '\\')) /* an escaped mount point: not one we would use */
		return;
	if (strcmp(fstype, "cgroup2") == 0 && !m->v2[0])
		snprintf(m->v2, sizeof m->v2, "%s", fields[4]);
	if (strcmp(fstype, "cgroup") != 0)
		return;
	if (has_word(superopts, "cpu") && !m->cpu[0])
		snprintf(m->cpu, sizeof m->cpu, "%s", fields[4]);
	if (has_word(superopts, "memory") && !m->memory[0])
		snprintf(m->memory, sizeof m->memory, "%s", fields[4]);
}

void cgroup_mounts_parse(const char *mountinfo, struct cgroup_mounts *m)
{
	*m = (struct cgroup_mounts){0};
	for (const char *p = mountinfo; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[4096];
		if (n < sizeof line) {
			memcpy(line, p, n);
			line[n] = '\0';
			mount_line(line, m);
		}
		p = nl ? nl + 1 : NULL;
	}
}

/* ---- the files of a cgroupfs ---- */

static int file_write(const char *dir, const char *name, const char *file, const char *text)
{
	char path[PATH_MAX];
	int fd, rc = 0;
	if (snprintf(path, sizeof path, "%s/%s%s%s", dir, name, name[0] ? "/" : "", file) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static int file_read(const char *dir, const char *name, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;
	if (snprintf(path, sizeof path, "%s/%s%s%s", dir, name, name[0] ? "/" : "", file) >= (int)sizeof path)
		return -ENAMETOOLONG;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int file_read_ll(const char *dir, const char *name, const char *file, long long *v)
{
	char buf[64];
	int rc = file_read(dir, name, file, buf, sizeof buf);
	if (rc < 0)
		return rc;
	if (strncmp(buf, "max", 3) == 0) {
		*v = -1;
		return 0;
	}
	return sscanf(buf, "%lld", v) == 1 ? 0 : -EINVAL;
}

/* Puts the sentence in why and gives rc. */
__attribute__((format(printf, 4, 5))) static int fail_why(char *why, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return rc;
}

/* The dir of the memory controller's groups (v1: its own hierarchy, or cpu's). */
static const char *memory_dir(const struct cgroup_host *c)
{
	return c->mode == CGROUP_V1 && c->dirs[1][0] ? c->dirs[1] : c->dirs[0];
}

/* v2: PARENT/NODE-ID under mount, each level handing the cpu and memory controllers down. */
static int v2_setup(struct cgroup_host *c, const char *mount, const char *parent, const char *node_id,
                    char *why, size_t whylen)
{
	char buf[512], path[PATH_MAX], sub[PATH_MAX];
	int rc;
	if (!mount[0])
		return fail_why(why, whylen, -ENOTSUP, "no cgroup2 mount");
	if ((rc = file_read(mount, "", "cgroup.controllers", buf, sizeof buf)) < 0)
		return fail_why(why, whylen, rc, "cannot read %s/cgroup.controllers: %s", mount, strerror(-rc));
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(sub, sizeof sub, " %s ", buf);
	if (!strstr(sub, " cpu ") || !strstr(sub, " memory "))
		return fail_why(why, whylen, -ENOTSUP, "cgroup v2 at %s has no cpu and memory controllers (it has \"%s\")", mount,
		                buf);
	if (access(mount, W_OK) != 0)
		return fail_why(why, whylen, -errno, "cgroup v2 at %s is not writable: %s", mount, strerror(errno));
	if (snprintf(sub, sizeof sub, "%s/%s", parent[0] == '/' ? parent + 1 : parent, node_id) >= (int)sizeof sub)
		return -ENAMETOOLONG;
	/* every level from the mount down to the node's own group, the node's included (its
	 * children are the instances), enables the controllers for the level below */
	snprintf(path, sizeof path, "%s", mount);
	for (char *save = NULL, *part = strtok_r(sub, "/", &save);; part = strtok_r(NULL, "/", &save)) {
		if ((rc = file_write(path, "", "cgroup.subtree_control", "+cpu +memory")) < 0)
			return fail_why(why, whylen, rc, "cannot enable cpu and memory in %s: %s", path, strerror(-rc));
		if (!part)
			break;
		size_t used = strlen(path);
		if (snprintf(path + used, sizeof path - used, "/%s", part) >= (int)(sizeof path - used))
			return -ENAMETOOLONG;
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return fail_why(why, whylen, -errno, "cannot create %s: %s", path, strerror(errno));
	}
	c->mode = CGROUP_V2;
	snprintf(c->dirs[0], sizeof c->dirs[0], "%s", path);
	c->dirs[1][0] = '\0';
	return 0;
}

/* v1: PARENT/NODE-ID in the cpu hierarchy and the memory one (one dir when they are one). */
static int v1_setup(struct cgroup_host *c, const struct cgroup_mounts *m, const char *parent, const char *node_id,
                    char *why, size_t whylen)
{
	const char *mounts[2] = {m->cpu, strcmp(m->cpu, m->memory) == 0 ? "" : m->memory};
	const char *p = parent[0] == '/' ? parent + 1 : parent;
	int rc;
	if (!m->cpu[0] || !m->memory[0])
		return fail_why(why, whylen, -ENOTSUP, "no cgroup v1 %s hierarchy mounted", !m->cpu[0] ? "cpu" : "memory");
	for (int i = 0; i < 2; i++) {
		c->dirs[i][0] = '\0';
		if (!mounts[i][0])
			continue;
		if (access(mounts[i], W_OK) != 0)
			return fail_why(why, whylen, -errno, "cgroup v1 at %s is not writable: %s", mounts[i], strerror(errno));
		if (snprintf(c->dirs[i], sizeof c->dirs[i], "%s/%s/%s", mounts[i], p, node_id) >= (int)sizeof c->dirs[i])
			return -ENAMETOOLONG;
		if ((rc = fs_mkdir_p(c->dirs[i], 0755)) < 0)
			return fail_why(why, whylen, rc, "cannot create %s: %s", c->dirs[i], strerror(-rc));
	}
	c->mode = CGROUP_V1;
	return 0;
}

int cgroup_host_init(struct cgroup_host *c, enum cgroup_mode want, const char *parent, const char *node_id,
                     const char *mountinfo, char *err, size_t errlen)
{
	char *text = NULL, why2[256] = "", why1[256] = "";
	struct cgroup_mounts m;
	int rc = 0;

	*c = (struct cgroup_host){.mode = CGROUP_OFF};
	if (want == CGROUP_OFF) {
		snprintf(c->why, sizeof c->why, "turned off (--cgroups off)");
		return 0;
	}
	if (!mountinfo && (rc = fs_read_file("/proc/self/mountinfo", 1 << 20, &text, NULL)) < 0) {
		snprintf(err, errlen, "cannot read /proc/self/mountinfo: %s", strerror(-rc));
		return rc;
	}
	cgroup_mounts_parse(mountinfo ? mountinfo : text, &m);
	free(text);
	if (want != CGROUP_V1 && (rc = v2_setup(c, m.v2, parent, node_id, why2, sizeof why2)) == 0)
		return 0;
	if (want != CGROUP_V2 && (rc = v1_setup(c, &m, parent, node_id, why1, sizeof why1)) == 0)
		return 0;
	c->mode = CGROUP_OFF;
	snprintf(c->why, sizeof c->why, "%.120s%s%.120s", why2, why2[0] && why1[0] ? "; " : "", why1);
	if (want == CGROUP_AUTO)
		return 0;
	snprintf(err, errlen, "--cgroups %s: not usable here: %s", cgroup_mode_name(want), c->why);
	return rc < 0 ? rc : -ENOTSUP;
}

/* Writes the limits into group name; fresh: both its dirs were made just now, so they hold
 * the kernel's defaults. */
static int limits_write(const struct cgroup_host *c, const char *name, const struct cgroup_limits *l, bool fresh,
                        char *err, size_t errlen)
{
	char buf[64];
	int rc;
	const char *what;
	if (c->mode == CGROUP_V2) {
		cgroup_cpu_max_format(l, buf, sizeof buf);
		if ((rc = file_write(c->dirs[0], name, what = "cpu.max", buf)) < 0)
			goto fail;
		snprintf(buf, sizeof buf, l->memory_bytes > 0 ? "%lld" : "max", l->memory_bytes);
		if ((rc = file_write(c->dirs[0], name, what = "memory.max", buf)) < 0)
			goto fail;
		/* no swap: a process over its memory is killed, not slowed down on the swap
		 * device (the file is missing where swap is not accounted) */
		if ((rc = file_write(c->dirs[0], name, what = "memory.swap.max", "0")) < 0 && rc != -ENOENT)
			goto fail;
		return 0;
	}
	/* A v1 write costs tens of µs on a VM (cpu.cfs_* the most), every instance pays them:
	 * what a fresh group holds already is not written again. A new group's period is the
	 * kernel's default, 100 ms; the read-back in cgroup_create would catch a kernel where it
	 * is not. */
	snprintf(buf, sizeof buf, "%lld", l->cpu_period_us);
	if ((!fresh || l->cpu_period_us != CGROUP_CPU_PERIOD_US) &&
	    (rc = file_write(c->dirs[0], name, what = "cpu.cfs_period_us", buf)) < 0)
		goto fail;
	snprintf(buf, sizeof buf, "%lld", l->cpu_quota_us > 0 ? l->cpu_quota_us : -1);
	if ((rc = file_write(c->dirs[0], name, what = "cpu.cfs_quota_us", buf)) < 0)
		goto fail;
	/* memsw (memory + swap) must stay >= the memory limit at every step: lift it (a fresh
	 * group's is unlimited already), set the memory, then pin memsw to it (no swap); memsw is
	 * missing without swap accounting */
	snprintf(buf, sizeof buf, "%lld", l->memory_bytes > 0 ? l->memory_bytes : -1);
	if (!fresh && (rc = file_write(memory_dir(c), name, what = "memory.memsw.limit_in_bytes", "-1")) < 0 &&
	    rc != -ENOENT)
		goto fail;
	if ((rc = file_write(memory_dir(c), name, what = "memory.limit_in_bytes", buf)) < 0)
		goto fail;
	if ((rc = file_write(memory_dir(c), name, what = "memory.memsw.limit_in_bytes", buf)) < 0 && rc != -ENOENT)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "cgroup %s: cannot set %s to %s: %s", name, what, buf, strerror(-rc));
	return rc;
}

int cgroup_limits_read(const struct cgroup_host *c, const char *name, struct cgroup_limits *l)
{
	char buf[64];
	int rc;
	if (c->mode == CGROUP_V2) {
		if ((rc = file_read(c->dirs[0], name, "cpu.max", buf, sizeof buf)) < 0 ||
		    (rc = cgroup_cpu_max_parse(buf, &l->cpu_quota_us, &l->cpu_period_us)) < 0)
			return rc;
		return file_read_ll(c->dirs[0], name, "memory.max", &l->memory_bytes);
	}
	if (c->mode != CGROUP_V1)
		return -ENOTSUP;
	if ((rc = file_read_ll(c->dirs[0], name, "cpu.cfs_quota_us", &l->cpu_quota_us)) < 0 ||
	    (rc = file_read_ll(c->dirs[0], name, "cpu.cfs_period_us", &l->cpu_period_us)) < 0 ||
	    (rc = file_read_ll(memory_dir(c), name, "memory.limit_in_bytes", &l->memory_bytes)) < 0)
		return rc;
	if (l->memory_bytes >= (1LL << 62)) /* v1 says "no limit" with the largest page multiple */
		l->memory_bytes = -1;
	return 0;
}

/* The node's own dir i, made again: another node's sweep removed it while it had no
 * instance (sweep_others). */
static int node_dir_again(const struct cgroup_host *c, int i)
{
	int rc = fs_mkdir_p(c->dirs[i], 0755);
	if (rc == 0 && c->mode == CGROUP_V2)
		rc = file_write(c->dirs[i], "", "cgroup.subtree_control", "+cpu +memory");
	return rc;
}

/* mkdir of a group in hierarchy i, its node's dir made again when it is gone. 1 when it
 * was made, 0 when it was there already, or -errno. */
static int group_mkdir(const struct cgroup_host *c, int i, const char *path)
{
	int rc;
	if (mkdir(path, 0755) == 0)
		return 1;
	if (errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -errno;
	if ((rc = node_dir_again(c, i)) < 0)
		return rc;
	return mkdir(path, 0755) == 0 ? 1 : errno == EEXIST ? 0 : -errno;
}

int cgroup_create(const struct cgroup_host *c, const char *name, const struct cgroup_limits *l, char *err,
                  size_t errlen)
{
	struct cgroup_limits got;
	char path[PATH_MAX];
	bool fresh = true;
	int rc;
	for (int i = 0; i < 2; i++) {
		if (!c->dirs[i][0])
			continue;
		if (snprintf(path, sizeof path, "%s/%s", c->dirs[i], name) >= (int)sizeof path)
			return snprintf(err, errlen, "cgroup path too long"), -ENAMETOOLONG;
		if ((rc = group_mkdir(c, i, path)) < 0) {
			snprintf(err, errlen, "cannot create cgroup %s: %s", path, strerror(-rc));
			cgroup_remove(c, name);
			return rc;
		}
		fresh = fresh && rc == 1;
	}
	if ((rc = limits_write(c, name, l, fresh, err, errlen)) < 0)
		goto fail;
	/* read back: a kernel that clamps or rounds would hold the instance to another limit
	 * than the one it asked for, silently */
	if ((rc = cgroup_limits_read(c, name, &got)) < 0) {
		snprintf(err, errlen, "cgroup %s: cannot read its limits back: %s", name, strerror(-rc));
		goto fail;
	}
	if ((l->cpu_quota_us > 0 && (got.cpu_quota_us != l->cpu_quota_us || got.cpu_period_us != l->cpu_period_us)) ||
	    got.memory_bytes != (l->memory_bytes > 0 ? l->memory_bytes : -1)) {
		snprintf(err, errlen, "cgroup %s: the kernel holds cpu %lld/%lld us, memory %lld bytes; asked %lld/%lld, %lld",
		         name, got.cpu_quota_us, got.cpu_period_us, got.memory_bytes, l->cpu_quota_us, l->cpu_period_us,
		         l->memory_bytes);
		rc = -EIO;
		goto fail;
	}
	return 0;
fail:
	cgroup_remove(c, name);
	return rc;
}

int cgroup_procs_paths(const struct cgroup_host *c, const char *name, char paths[2][PATH_MAX])
{
	for (int i = 0; i < 2; i++) {
		paths[i][0] = '\0';
		if (c->dirs[i][0] &&
		    snprintf(paths[i], PATH_MAX, "%s/%s/cgroup.procs", c->dirs[i], name) >= PATH_MAX)
			return -ENAMETOOLONG;
	}
	return 0;
}

int cgroup_oom_killed(const struct cgroup_host *c, const char *name)
{
	char buf[1024];
	long long kills;
	int rc;
	if (c->mode == CGROUP_V2) {
		if ((rc = file_read(c->dirs[0], name, "memory.events", buf, sizeof buf)) < 0)
			return rc;
		return cgroup_keyed_value(buf, "oom_kill") > 0;
	}
	if (c->mode != CGROUP_V1)
		return 0;
	if ((rc = file_read(memory_dir(c), name, "memory.oom_control", buf, sizeof buf)) < 0)
		return rc;
	if ((kills = cgroup_keyed_value(buf, "oom_kill")) >= 0)
		return kills > 0;
	/* kernels before 4.13 do not count kills: the limit was hit, the nearest sign */
	if ((rc = file_read(memory_dir(c), name, "memory.failcnt", buf, sizeof buf)) < 0)
		return rc;
	return atoll(buf) > 0;
}

/* Sends SIGKILL to every process of dir/name (v2's cgroup.kill does it at once, where the
 * kernel has it). True when there was none. */
static bool group_kill(const char *dir, const char *name, bool v2)
{
	char buf[4096];
	bool empty = true;
	if (file_read(dir, name, "cgroup.procs", buf, sizeof buf) < 0 || !buf[0])
		return true;
	if (v2 && file_write(dir, name, "cgroup.kill", "1") == 0)
		return false;
	for (char *p = buf; *p;) {
		long pid = strtol(p, &p, 10);
		if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
			empty = false;
		p += strspn(p, "\n");
		if (pid <= 0)
			break;
	}
	return empty;
}

int cgroup_kill(const struct cgroup_host *c, const char *name)
{
	char buf[64];
	if (c->mode == CGROUP_OFF || !c->dirs[0][0])
		return 0;
	group_kill(c->dirs[0], name, c->mode == CGROUP_V2); /* v1: cpu's hierarchy has them all */
	if (c->mode == CGROUP_V2) {
		snprintf(buf, sizeof buf, "max %lld", CGROUP_CPU_PERIOD_US);
		return file_write(c->dirs[0], name, "cpu.max", buf);
	}
	return file_write(c->dirs[0], name, "cpu.cfs_quota_us", "-1");
}

#define REMOVE_TRIES 40           /* x REMOVE_WAIT_NS: at most 200 ms */
#define REMOVE_WAIT_NS 5000000L

int cgroup_remove(const struct cgroup_host *c, const char *name)
{
	char path[PATH_MAX];
	int rc = 0;
	for (int i = 0; i < 2; i++) {
		if (!c->dirs[i][0])
			continue;
		if (snprintf(path, sizeof path, "%s/%s", c->dirs[i], name) >= (int)sizeof path)
			return -ENAMETOOLONG;
		/* the rmdir first: an emptied group (the common end) goes in one call, without
		 * reading its cgroup.procs; one still holding processes refuses (EBUSY), and they
		 * are killed before the rmdir is tried again */
		if (rmdir(path) == 0 || errno == ENOENT)
			continue;
		group_kill(c->dirs[i], name, c->mode == CGROUP_V2);
		/* the killed take a moment to be gone (one escaped in a session of its own was
		 * killed with the rest a moment ago, say): a bounded wait, only on this path */
		for (int tries = 0; rmdir(path) < 0 && errno == EBUSY && tries < REMOVE_TRIES; tries++)
			nanosleep(&(struct timespec){.tv_nsec = REMOVE_WAIT_NS}, NULL);
		if (access(path, F_OK) == 0 && rmdir(path) < 0 && errno != ENOENT && rc == 0)
			rc = -errno;
	}
	return rc;
}

/* Removes the groups under dir that no process is in and that are older than min_age_s
 * (0: any age). The number removed. */
static int sweep_dir(const char *dir, time_t min_age_s)
{
	time_t now = time(NULL);
	int removed = 0;
	struct dirent *e;
	DIR *d = opendir(dir);
	char buf[64];
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		if (file_read(dir, e->d_name, "cgroup.procs", buf, sizeof buf) < 0 || buf[0])
			continue; /* a process is in it: an instance the node re-attached to */
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
			continue;
		if (min_age_s && (stat(path, &st) < 0 || now - st.st_mtime < min_age_s))
			continue;
		if (rmdir(path) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

/* Other nodes' dirs under the parent (their age: mtime): those of nodes that are gone (a
 * test's, a node whose data dir was wiped) would stay forever. A live node's group is empty only between its
 * creation and its process joining (milliseconds), so only groups older than a minute are
 * taken; a live node whose own dir was removed while it had no instance makes it again
 * (cgroup_create). */
#define SWEEP_OTHERS_AGE_S 60

static int sweep_others(const char *node_dir)
{
	char parent[PATH_MAX];
	const char *me = strrchr(node_dir, '/');
	int removed = 0;
	struct dirent *e;
	DIR *d;
	if (!me || snprintf(parent, sizeof parent, "%.*s", (int)(me - node_dir), node_dir) >= (int)sizeof parent ||
	    !(d = opendir(parent)))
		return 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		if (e->d_type != DT_DIR || e->d_name[0] == '.' || strcmp(e->d_name, me + 1) == 0 ||
		    snprintf(path, sizeof path, "%s/%s", parent, e->d_name) >= (int)sizeof path)
			continue;
		/* its age before the sweep, which makes it new (a removal changes its mtime) */
		bool old = stat(path, &st) == 0 && time(NULL) - st.st_mtime >= SWEEP_OTHERS_AGE_S;
		removed += sweep_dir(path, SWEEP_OTHERS_AGE_S);
		if (old && rmdir(path) == 0)
			removed++; /* no group left in it (busy otherwise) */
	}
	closedir(d);
	return removed;
}

int cgroup_sweep(const struct cgroup_host *c)
{
	int removed = 0;
	for (int i = 0; i < 2 && c->mode != CGROUP_OFF; i++) {
		if (!c->dirs[i][0])
			continue;
		removed += sweep_dir(c->dirs[i], 0);
		removed += sweep_others(c->dirs[i]);
	}
	return removed;
}

void cgroup_host_close(const struct cgroup_host *c)
{
	for (int i = 0; i < 2 && c->mode != CGROUP_OFF; i++)
		if (c->dirs[i][0])
			rmdir(c->dirs[i]); /* busy while instances run on: kept for the next start */
}
