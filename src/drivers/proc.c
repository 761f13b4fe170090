#include "drivers/proc.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* ---- spawning, in whatever thread runs it ---- */

/* Moves the calling thread into the network namespace at nspath, so that what it spawns
 * next starts there; *saved gets the thread's own namespace for netns_leave. The namespace
 * is per thread: the rest of the process stays where it is. 0 or -errno. */
static int netns_enter(const char *nspath, int *saved)
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

static void netns_leave(int saved)
{
	/* a thread left in an instance's namespace would start the next instances there */
	if (setns(saved, CLONE_NEWNET) < 0)
		fatal("cannot return a spawning thread to its network namespace");
	close(saved);
}

static bool confined(const struct proc_spawn_request *r)
{
	return r->user || (r->cgroup_procs[0] && r->cgroup_procs[0][0]) || (r->cgroup_procs[1] && r->cgroup_procs[1][0]);
}

/* confine_spawn of r: the cgroup.procs files are opened here, in the spawning thread's
 * own descriptor table, for the child to write to. */
static int spawn_confined(const struct proc_spawn_request *r, const int fds[3], pid_t *pid, char *err, size_t errlen)
{
	struct confine_spawn s = {.path = r->path, .argv = r->argv, .envp = r->envp, .fds = {fds[0], fds[1], fds[2]},
	                          .dir = r->dir, .join_fds = {-1, -1}, .user = r->user};
	int rc = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (!r->cgroup_procs[i] || !r->cgroup_procs[i][0])
			continue;
		if ((s.join_fds[i] = open(r->cgroup_procs[i], O_WRONLY | O_CLOEXEC)) < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot open %s: %s", r->cgroup_procs[i], strerror(-rc));
		}
	}
	if (rc == 0)
		rc = confine_spawn(&s, pid, err, errlen);
	for (int i = 0; i < 2; i++)
		if (s.join_fds[i] >= 0)
			close(s.join_fds[i]);
	return rc;
}

/* posix_spawn of r with fds (numbers valid in the calling thread's descriptor table) as
 * stdin, stdout, stderr. 0 or -errno with a sentence in err. */
static int spawn_here(const struct proc_spawn_request *r, const int fds[3], pid_t *pid, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int rc, saved_ns = -1;

	if (r->netns && (rc = netns_enter(r->netns, &saved_ns)) < 0) {
		snprintf(err, errlen, "cannot enter network namespace %s: %s", r->netns, strerror(-rc));
		return rc;
	}
	if (confined(r)) {
		rc = spawn_confined(r, fds, pid, err, errlen);
		if (saved_ns >= 0)
			netns_leave(saved_ns);
		return rc;
	}
	posix_spawn_file_actions_init(&fa);
	for (int fd = 0; fd < 3; fd++) {
		if (fds[fd] < 0)
			posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
		else
			posix_spawn_file_actions_adddup2(&fa, fds[fd], fd);
	}
	if (r->dir)
		posix_spawn_file_actions_addchdir_np(&fa, r->dir);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(pid, r->path, &fa, &attr, r->argv, r->envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (saved_ns >= 0)
		netns_leave(saved_ns);
	if (rc != 0) {
		snprintf(err, errlen, "cannot execute %s: %s", r->path, strerror(rc));
		return -rc;
	}
	return 0;
}

/* ---- the spawner: threads with a descriptor table of their own ----
 *
 * clone() copies the calling thread's descriptor table (the kernel's dup_fd, one reference
 * per open descriptor) and execve() then walks it again to close the close-on-exec ones.
 * The node holds a pidfd per running instance, so a spawn from a worker thread cost more
 * with every instance running (p50 x4 at 10,000: BENCHMARKS.md, bench/density). The spawner threads leave the process's
 * table at start (unshare(CLONE_FILES)) and keep only 0-2 and their socket, so a spawn from
 * them copies a handful of descriptors, however many the node holds.
 *
 * Why threads rather than a helper process: the instances stay the node's own children
 * (every thread of a process may wait for any of its children), so the pidfd, the exit
 * status from waitid, proc_signal's guard against pid reuse and proc_adopt after a restart
 * work exactly as before. A helper process would make the instances its children: their
 * exit status would have to be relayed, and its death would orphan them.
 * Why not one SIGCHLD-driven waitid(P_ALL) instead of the pidfds: it would reap the other
 * children of the process (xl, qemu --version, libvirt's helpers) under their callers'
 * feet, and instances re-adopted after a restart are no children of ours, so they need
 * pidfds anyway: 10,000 of them after a restart would make spawning dear again.
 * Why not clone(CLONE_FILES) and close_range(CLOSE_RANGE_UNSHARE) in the child: the child
 * then keeps only descriptors below a bound, and the ones it needs (logs, pipes) are
 * wherever the node's table put them.
 *
 * A request travels as a pointer over a SOCK_SEQPACKET socketpair, the descriptors the
 * child needs with it (SCM_RIGHTS: they arrive in the spawner's own table); the caller
 * waits on a semaphore in its request. */

/* As many as the node's workers (worker.h), so that no spawn waits for a spawner where it
 * would not have waited for a worker: measured at concurrency 64, 2 per CPU moved ~1 ms of
 * queueing into the spawn phase. */
#define SPAWNER_THREADS_PER_CPU 16
#define SPAWNER_THREADS_MAX 64
#define SPAWNER_STACK (256 * 1024)

/* Descriptors a request carries: stdin, stdout, stderr and the hold. */
#define CALL_FDS 4

struct spawn_call {
	const struct proc_spawn_request *r;
	int nfds;              /* descriptors sent along */
	int slot[CALL_FDS];    /* stdin, stdout, stderr, hold: index into what was sent, -1: none
	                        * (/dev/null for stdio) */
	pid_t pid;
	int rc;
	char err[256];
	sem_t done;
};

static struct {
	pthread_rwlock_t lock; /* read: a spawn in flight; write: start or stop */
	int sock;              /* the callers' end; -1 when not running */
	bool unavailable;      /* could not start: spawn in the calling thread */
	int nthreads;
	pthread_t threads[SPAWNER_THREADS_MAX];
} spawner = {.lock = PTHREAD_RWLOCK_INITIALIZER, .sock = -1};

struct spawner_start {
	int serve;   /* the spawners' end of the socketpair */
	int rc;      /* what the thread's set-up gave */
	sem_t ready;
};

/* Gives the calling thread a descriptor table of its own holding only 0-2 and keep. 0-2
 * stay occupied (on /dev/null when the process had them closed) so that descriptors
 * received later land above them and a dup2 to 0-2 never overwrites one of them. */
static int private_table(int keep)
{
	if (unshare(CLONE_FILES) < 0)
		return -errno;
	if ((keep > 3 && close_range(3, (unsigned)keep - 1, 0) < 0) || close_range((unsigned)keep + 1, ~0U, 0) < 0)
		return -errno;
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		int null = open("/dev/null", O_RDWR);
		if (null < 0)
			return -errno;
		if (null != fd) { /* cannot be: fd was the lowest free */
			close(null);
			return -EBADF;
		}
	}
	return 0;
}

/* Receives one request and its descriptors (close-on-exec, in this thread's table).
 * 1, or 0 at the end (the callers' end was shut). Anything else breaks the invariant that
 * only proc_spawn writes to this socket, one whole request at a time. */
static int call_recv(int sock, struct spawn_call **c, int fds[CALL_FDS], int *nfds)
{
	union {
		char buf[CMSG_SPACE(CALL_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = c, .iov_len = sizeof *c};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	ssize_t n;
	*nfds = 0;
	while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0)
		fatal("spawner: recvmsg");
	if (n == 0)
		return 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		*nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (*nfds > CALL_FDS)
			fatalx("spawner: %d descriptors in one request", *nfds);
		memcpy(fds, CMSG_DATA(cm), (size_t)*nfds * sizeof(int));
	}
	if (n != sizeof *c || (m.msg_flags & MSG_CTRUNC))
		fatalx("spawner: a request of %zd bytes, flags %#x", n, (unsigned)m.msg_flags);
	return 1;
}

/* Serves one request: the descriptors it brought become the child's stdin/out/err; the
 * hold stays in this thread's table while it spawns, so the child has a copy of it. */
static void call_serve(struct spawn_call *c, const int got[CALL_FDS], int ngot)
{
	int fds[3];
	if (ngot != c->nfds) {
		snprintf(c->err, sizeof c->err, "spawner: %d descriptors arrived, %d were sent", ngot, c->nfds);
		c->rc = -EPROTO;
		return;
	}
	for (int i = 0; i < 3; i++)
		fds[i] = c->slot[i] < 0 ? -1 : got[c->slot[i]];
	c->rc = spawn_here(c->r, fds, &c->pid, c->err, sizeof c->err);
}

static void *spawner_main(void *arg)
{
	struct spawner_start *st = arg;
	int sock = st->serve, got[CALL_FDS], ngot, rc;
	struct spawn_call *c;
	st->rc = rc = private_table(sock);
	sem_post(&st->ready); /* st is gone after this: rc is read from our own copy */
	if (rc < 0)
		return NULL;
	while (call_recv(sock, &c, got, &ngot) == 1) {
		call_serve(c, got, ngot);
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		sem_post(&c->done); /* c is gone after this */
	}
	close(sock);
	return NULL;
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* Starts one spawner thread on serve and waits until its table is its own. */
static int spawner_thread_start(int serve, pthread_t *tid)
{
	struct spawner_start st = {.serve = serve};
	pthread_attr_t attr;
	int rc;
	sem_init(&st.ready, 0, 0);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SPAWNER_STACK);
	rc = -pthread_create(tid, &attr, spawner_main, &st);
	pthread_attr_destroy(&attr);
	if (rc == 0) {
		while (sem_wait(&st.ready) < 0 && errno == EINTR)
			;
		rc = st.rc;
		if (rc < 0)
			pthread_join(*tid, NULL);
	}
	sem_destroy(&st.ready);
	return rc;
}

/* With the write lock held. */
static void spawner_stop_locked(void)
{
	if (spawner.sock < 0)
		return;
	shutdown(spawner.sock, SHUT_RDWR); /* every spawner's recvmsg returns 0 */
	for (int i = 0; i < spawner.nthreads; i++)
		pthread_join(spawner.threads[i], NULL);
	close(spawner.sock);
	spawner.sock = -1;
	spawner.nthreads = 0;
}

/* With the write lock held. */
static int spawner_start_locked(void)
{
	int sv[2], rc = 0, want = online_cpus() * SPAWNER_THREADS_PER_CPU;
	if (spawner.sock >= 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	spawner.sock = sv[0];
	if (want > SPAWNER_THREADS_MAX)
		want = SPAWNER_THREADS_MAX;
	while (spawner.nthreads < want && rc == 0)
		if ((rc = spawner_thread_start(sv[1], &spawner.threads[spawner.nthreads])) == 0)
			spawner.nthreads++;
	close(sv[1]); /* each spawner has its own copy */
	if (rc < 0)
		spawner_stop_locked();
	return rc;
}

int proc_spawner_start(void)
{
	int rc;
	pthread_rwlock_wrlock(&spawner.lock);
	if ((rc = spawner_start_locked()) < 0 && !spawner.unavailable) {
		spawner.unavailable = true;
		log_warnx("cannot start the spawner threads (%s): spawning from the calling threads, whose cost "
		          "grows with the open descriptors", strerror(-rc));
	}
	pthread_rwlock_unlock(&spawner.lock);
	return rc;
}

void proc_spawner_stop(void)
{
	pthread_rwlock_wrlock(&spawner.lock);
	spawner_stop_locked();
	spawner.unavailable = false;
	pthread_rwlock_unlock(&spawner.lock);
}

/* Read-locks the spawner, starting it first when needed. Its socket, or -1 when it
 * cannot run (then the caller spawns itself). Release with pthread_rwlock_unlock. */
static int spawner_acquire(void)
{
	pthread_rwlock_rdlock(&spawner.lock);
	if (spawner.sock >= 0 || spawner.unavailable)
		return spawner.sock;
	pthread_rwlock_unlock(&spawner.lock);
	proc_spawner_start();
	pthread_rwlock_rdlock(&spawner.lock);
	return spawner.sock;
}

/* Sends c with the descriptors it names (-1: none). 0 or -errno. */
static int call_send(int sock, struct spawn_call *c, const int fds[CALL_FDS])
{
	union {
		char buf[CMSG_SPACE(CALL_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	int pass[CALL_FDS];
	struct iovec iov = {.iov_base = &c, .iov_len = sizeof c};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
	c->nfds = 0;
	for (int i = 0; i < CALL_FDS; i++) {
		c->slot[i] = fds[i] < 0 ? -1 : c->nfds;
		if (fds[i] >= 0)
			pass[c->nfds++] = fds[i];
	}
	if (c->nfds > 0) {
		struct cmsghdr *cm;
		memset(&u, 0, sizeof u);
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE((size_t)c->nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)c->nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), pass, (size_t)c->nfds * sizeof(int));
	}
	while (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Has a spawner run r; falls back to this thread when there is none. */
static int spawn_via_spawner(const struct proc_spawn_request *r, pid_t *pid, char *err, size_t errlen)
{
	struct spawn_call c = {.r = r};
	int sock = spawner_acquire(), rc;
	if (sock < 0) {
		pthread_rwlock_unlock(&spawner.lock);
		return spawn_here(r, r->fds, pid, err, errlen);
	}
	int fds[CALL_FDS] = {r->fds[0], r->fds[1], r->fds[2], r->hold_fd > 0 ? r->hold_fd : -1};
	sem_init(&c.done, 0, 0);
	if ((rc = call_send(sock, &c, fds)) == 0) {
		while (sem_wait(&c.done) < 0 && errno == EINTR)
			;
		rc = c.rc;
		*pid = c.pid;
		if (rc < 0)
			snprintf(err, errlen, "%s", c.err);
	} else {
		snprintf(err, errlen, "cannot hand %s to a spawner: %s", r->path, strerror(-rc));
	}
	pthread_rwlock_unlock(&spawner.lock);
	sem_destroy(&c.done);
	return rc;
}

int proc_spawn(const struct proc_spawn_request *r, struct drv_handle *h, char *err, size_t errlen)
{
	pid_t pid;
	int rc;
	if ((rc = spawn_via_spawner(r, &pid, err, errlen)) < 0)
		return rc;
	if ((rc = proc_handle_open(h, pid)) < 0) {
		snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(-rc));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0); /* our child: leave no zombie behind */
		return rc;
	}
	return 0;
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

int proc_signal(struct drv_handle *h, int sig)
{
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
