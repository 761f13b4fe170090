#include "drivers/proc.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int proc_spawn(const char *path, char *const argv[], char *const envp[], const int fds[3], const char *dir,
               struct drv_handle *h, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	pid_t pid;
	int rc;

	posix_spawn_file_actions_init(&fa);
	for (int fd = 0; fd < 3; fd++) {
		if (fds[fd] < 0)
			posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
		else
			posix_spawn_file_actions_adddup2(&fa, fds[fd], fd);
	}
	if (dir)
		posix_spawn_file_actions_addchdir_np(&fa, dir);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, path, &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		snprintf(err, errlen, "cannot execute %s: %s", path, strerror(rc));
		return -rc;
	}
	if ((rc = proc_handle_open(h, pid)) < 0) {
		snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(-rc));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0); /* our child: leave no zombie behind */
		return rc;
	}
	return 0;
}

int proc_netns_enter(const char *nspath, int *saved)
{
	int ns = open(nspath, O_RDONLY | O_CLOEXEC), rc = 0;
	*saved = -1;
	if (ns < 0)
		return -errno;
	*saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*saved < 0 || setns(ns, CLONE_NEWNET) < 0) {
		rc = -errno;
		if (*saved >= 0)
			close(*saved);
		*saved = -1;
	}
	close(ns);
	return rc;
}

int proc_netns_leave(int saved)
{
	int rc = setns(saved, CLONE_NEWNET) < 0 ? -errno : 0;
	close(saved);
	return rc;
}

unsigned long long proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	FILE *f;
	size_t n;
	char *p;
	unsigned long long start = 0;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: fields start after the last ')' */
	if (!(p = strrchr(buf, ')')))
		return 0;
	p++;
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p, " %llu", &start) != 1)
		start = 0;
	return start;
}

int proc_handle_open(struct drv_handle *h, pid_t pid)
{
	h->pid = pid;
	h->is_child = true;
	h->pidfd = pidfd_open(pid);
	if (h->pidfd < 0)
		return -errno;
	h->start_time = proc_start_time(pid);
	return 0;
}

int proc_signal(struct drv_handle *h, bool force)
{
	int sig = force ? SIGKILL : SIGTERM;
	if (h->pidfd < 0)
		return -ESRCH;
	/* The instance leads its own session and group (POSIX_SPAWN_SETSID): signal them all,
	 * but only while our pidfd says the leader is unreaped, so the group id is still ours. */
	if (kill(-h->pid, sig) < 0 && syscall(SYS_pidfd_send_signal, h->pidfd, sig, NULL, 0) < 0)
		return -errno;
	return 0;
}

int proc_reap(struct drv_handle *h, int *exit_code, bool *code_known)
{
	siginfo_t info;
	*code_known = false;
	if (h->pidfd < 0)
		return -EBADF;
	if (h->is_child) {
		memset(&info, 0, sizeof info);
		if (waitid((idtype_t)P_PIDFD, (id_t)h->pidfd, &info, WEXITED | WNOHANG) < 0)
			return -errno;
		if (info.si_pid == 0)
			return -EAGAIN; /* not yet */
		*code_known = true;
		*exit_code = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
	}
	proc_handle_close(h);
	return 0;
}

/* True when /proc/PID/environ holds the string want (NUL-terminated entries). */
static bool environ_has(const char *pid, const char *want)
{
	char path[64], buf[65536];
	size_t n, wl = strlen(want);
	int fd;
	ssize_t r;
	snprintf(path, sizeof path, "/proc/%s/environ", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return false;
	n = (size_t)r;
	buf[n] = '\0';
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
		if (strncmp(buf + i, want, wl + 1) == 0)
			return true;
	return false;
}

int proc_adopt(UNUSED const struct drv_options *o, const char *instance_id, struct drv_handle *h)
{
	char want[64];
	DIR *d = opendir("/proc");
	struct dirent *e;
	int rc = -ESRCH;
	if (!d)
		return -errno;
	snprintf(want, sizeof want, "MICROVIM_INSTANCE_ID=%s", instance_id);
	while ((e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9' || !environ_has(e->d_name, want))
			continue;
		h->pid = (pid_t)atoi(e->d_name);
		h->start_time = proc_start_time(h->pid);
		rc = proc_recover(h);
		break;
	}
	closedir(d);
	return rc;
}

int proc_recover(struct drv_handle *h)
{
	int fd;
	h->is_child = false;
	h->pidfd = -1;
	if (h->pid <= 0 || proc_start_time(h->pid) != h->start_time)
		return -ESRCH;
	fd = pidfd_open(h->pid);
	if (fd < 0)
		return -errno;
	/* the pid could have been reused between the two reads */
	if (proc_start_time(h->pid) != h->start_time) {
		close(fd);
		return -ESRCH;
	}
	h->pidfd = fd;
	return 0;
}

void proc_handle_close(struct drv_handle *h)
{
	if (h->pidfd >= 0)
		close(h->pidfd);
	h->pidfd = -1;
}
