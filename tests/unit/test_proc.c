/* test_proc — process handles (src/drivers/proc.c) for real: spawning through the spawner
 * threads while the process holds many descriptors, what the child inherits, exit status
 * from the pidfd of a child that a spawner thread forked, spawns from many threads at once,
 * group signals, errors, adopt and recover, and the spawner stopped and started again.
 * Timing is not asserted here (bench/density measures it); the structure that makes it
 * cheap is: the threads that spawn have descriptor tables of a handful of entries. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drivers/proc.h"
#include "node/instrec.h"
#include "unit.h"

#define HELD 2000    /* descriptors the "node" holds, like pidfds of running instances */
#define THREADS 6
#define PER_THREAD 15

static int held[HELD];
static int nheld;

/* Opens n descriptors that are not close-on-exec: a spawn that copied the caller's table
 * would hand them all to the child. */
static void hold_descriptors(int n)
{
	struct rlimit rl;
	int null = open("/dev/null", O_RDONLY);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (nheld = 0; nheld < n && null >= 0; nheld++)
		if ((held[nheld] = dup(null)) < 0)
			break;
	if (null >= 0)
		close(null);
}

static void release_descriptors(void)
{
	for (int i = 0; i < nheld; i++)
		close(held[i]);
	nheld = 0;
}

/* Waits (bounded) until h's pidfd is readable, then reaps through proc_reap. */
static int wait_and_reap(struct drv_handle *h, int *code, bool *known)
{
	struct pollfd p = {.fd = h->pidfd, .events = POLLIN};
	if (poll(&p, 1, 10000) != 1)
		return -ETIMEDOUT;
	return proc_reap(h, code, known);
}

/* Runs /bin/sh -c script with stdout to a pipe; returns what it printed (static buffer). */
static const char *run_sh(const char *script, int *code)
{
	static char out[4096];
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct drv_handle h = {.pidfd = -1};
	char err[256] = "";
	int pipefd[2], rc;
	size_t n = 0;
	ssize_t got;
	bool known = false;

	out[0] = '\0';
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return out;
	struct proc_spawn_request r = {.path = "/bin/sh", .argv = argv, .envp = envp, .fds = {-1, pipefd[1], -1}};
	rc = proc_spawn(&r, &h, err, sizeof err);
	close(pipefd[1]);
	CHECK_EQ_INT(rc, 0);
	while (rc == 0 && n < sizeof out - 1 && (got = read(pipefd[0], out + n, sizeof out - 1 - n)) > 0)
		n += (size_t)got;
	out[n] = '\0';
	close(pipefd[0]);
	if (rc == 0) {
		CHECK_EQ_INT(wait_and_reap(&h, code, &known), 0);
		CHECK(known);
	}
	return out;
}

/* The child gets 0-2 and nothing else, although the process holds HELD descriptors that
 * are not close-on-exec. */
static void test_child_inherits_only_its_stdio(void)
{
	int code = -1;
	const char *out;
	hold_descriptors(HELD);
	CHECK_EQ_INT(nheld, HELD);
	/* the shell's own descriptors: 0-2, and whatever it opens to list them */
	out = run_sh("cd /proc/self/fd && for f in *; do echo $f; done | wc -l; exit 4", &code);
	CHECK_EQ_INT(code, 4);
	CHECK(atoi(out) >= 3 && atoi(out) <= 5);
	if (!(atoi(out) >= 3 && atoi(out) <= 5))
		fprintf(stderr, "  the child saw %s descriptors\n", out);
	release_descriptors();
}

/* Counts, per thread of this process, the entries of its descriptor table (threads that
 * share the process's table show the same count). Returns how many threads have at most
 * max entries. */
static int threads_with_small_tables(int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int small = 0;
	while (d && (e = readdir(d))) {
		char path[300];
		DIR *fd;
		int n = 0;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/fd", e->d_name);
		if (!(fd = opendir(path)))
			continue;
		while (readdir(fd))
			n++;
		closedir(fd);
		if (n - 2 - 1 <= max) /* less . and .., and the one opendir holds (if shared) */
			small++;
	}
	if (d)
		closedir(d);
	return small;
}

/* The spawns happen in threads whose tables stay small however many the process holds. */
static void test_spawner_tables_stay_small(void)
{
	int code;
	hold_descriptors(HELD);
	CHECK_EQ_INT(proc_spawner_start(), 0);
	run_sh("exit 0", &code);
	CHECK(threads_with_small_tables(8) >= 1);
	release_descriptors();
}

struct many {
	int thread;
	int failures;
};

/* Each spawn exits with its own code; each must come back with that code. */
static void *spawn_many(void *arg)
{
	struct many *m = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		char script[64], err[256];
		char *argv[] = {"/bin/sh", "-c", script, NULL};
		char *envp[] = {NULL};
		struct drv_handle h = {.pidfd = -1};
		int want = (m->thread * PER_THREAD + i) % 120, code = -1;
		bool known = false;
		snprintf(script, sizeof script, "exit %d", want);
		struct proc_spawn_request r = {.path = "/bin/sh", .argv = argv, .envp = envp, .fds = {-1, -1, -1}};
		if (proc_spawn(&r, &h, err, sizeof err) < 0 || wait_and_reap(&h, &code, &known) < 0 || !known ||
		    code != want)
			m->failures++;
	}
	return NULL;
}

/* Many threads spawning at once (as the node's workers do), with many descriptors held:
 * every child's exit status reaches the thread that asked, through its pidfd. */
static void test_exit_status_from_many_threads(void)
{
	pthread_t t[THREADS];
	struct many m[THREADS];
	hold_descriptors(HELD);
	for (int i = 0; i < THREADS; i++) {
		m[i] = (struct many){.thread = i};
		CHECK_EQ_INT(pthread_create(&t[i], NULL, spawn_many, &m[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(m[i].failures, 0);
	}
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD); /* nothing left to reap */
	release_descriptors();
}

/* A signal through the handle reaches the child (its group), and the status says which. */
static void test_signal_and_status(void)
{
	char *argv[] = {"/bin/sleep", "60", NULL};
	char *envp[] = {NULL};
	struct drv_handle h = {.pidfd = -1};
	char err[256];
	int code = -1;
	bool known = false;
	struct proc_spawn_request r = {.path = "/bin/sleep", .argv = argv, .envp = envp, .fds = {-1, -1, -1}, .dir = "/"};
	CHECK_EQ_INT(proc_spawn(&r, &h, err, sizeof err), 0);
	CHECK(h.pidfd >= 0 && h.is_child && h.start_time > 0);
	CHECK_EQ_INT(getpgid(h.pid), h.pid); /* leads its own group */
	CHECK_EQ_INT(getsid(h.pid), h.pid);  /* and session */
	CHECK_EQ_INT(proc_signal(&h, SIGTERM), 0);
	CHECK_EQ_INT(wait_and_reap(&h, &code, &known), 0);
	CHECK(known);
	CHECK_EQ_INT(code, 128 + SIGTERM);
	CHECK_EQ_INT(h.pidfd, -1);
	CHECK_EQ_INT(proc_signal(&h, SIGKILL), -ESRCH); /* reaped: the pid may be someone else's now */
}

/* What cannot be executed is an error with words, and leaves nothing behind. */
static void test_spawn_errors(void)
{
	char *argv[] = {"/nonexistent/vnf", NULL};
	char *envp[] = {NULL};
	struct drv_handle h = {.pidfd = -1};
	char err[256] = "";
	struct proc_spawn_request r = {.path = "/nonexistent/vnf", .argv = argv, .envp = envp, .fds = {-1, -1, -1}};
	CHECK_EQ_INT(proc_spawn(&r, &h, err, sizeof err), -ENOENT);
	CHECK(strstr(err, "cannot execute /nonexistent/vnf") != NULL);
	CHECK_EQ_INT(h.pidfd, -1);
	r.path = "/bin/sleep";
	r.dir = "/nonexistent-dir";
	CHECK(proc_spawn(&r, &h, err, sizeof err) < 0);
	r.dir = NULL;
	r.netns = "/nonexistent-netns";
	CHECK(proc_spawn(&r, &h, err, sizeof err) < 0);
	CHECK(strstr(err, "network namespace") != NULL);
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* Waits (bounded, 10 s) until the kernel shows pid's environment. posix_spawn returns as
 * soon as the exec can no longer fail (the kernel releases the vfork'ed parent when it
 * switches the child to the new image), and /proc/PID/environ stays empty until the new
 * image's stack is laid out a moment later: on a busy host the child can be preempted in
 * between for milliseconds, and an adopt that looked then would find nothing. A node's
 * adopt runs after the node restarted, long after that moment. 0 or -ETIMEDOUT. */
static int wait_environ_shown(pid_t pid)
{
	char path[64], byte;
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	for (int i = 0; i < 10000; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, &byte, 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n == 1)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/* A process started for an instance is found again by its MICROVIM_INSTANCE_ID (adopt:
 * the node died before recording it), and a recorded pid with the wrong start time is
 * never taken for it (recover). Neither is a child of ours afterwards. */
static void test_adopt_and_recover(void)
{
	char id_env[64], id[32];
	char *argv[] = {"/bin/sleep", "60", NULL};
	char *envp[] = {id_env, NULL};
	struct drv_handle h = {.pidfd = -1}, found = {.pidfd = -1}, stale;
	char err[256];
	int code;
	bool known;
	snprintf(id, sizeof id, "t%08x%06d", (unsigned)getpid(), rand() % 1000000);
	snprintf(id_env, sizeof id_env, "MICROVIM_INSTANCE_ID=%s", id);
	struct proc_spawn_request r = {.path = "/bin/sleep", .argv = argv, .envp = envp, .fds = {-1, -1, -1}};
	CHECK_EQ_INT(proc_spawn(&r, &h, err, sizeof err), 0);
	CHECK_EQ_INT(wait_environ_shown(h.pid), 0);
	CHECK_EQ_INT(proc_adopt(NULL, id, &found), 0);
	CHECK_EQ_INT(found.pid, h.pid);
	CHECK(found.start_time == h.start_time && !found.is_child && found.pidfd >= 0);
	stale = (struct drv_handle){.pid = h.pid, .start_time = h.start_time + 1, .pidfd = -1};
	CHECK_EQ_INT(proc_recover(&stale), -ESRCH);
	CHECK_EQ_INT(stale.pidfd, -1);
	CHECK_EQ_INT(proc_signal(&found, SIGKILL), 0);
	CHECK_EQ_INT(wait_and_reap(&found, &code, &known), 0);
	CHECK(!known); /* not reaped through this handle: the exit code is its parent's to read */
	CHECK_EQ_INT(wait_and_reap(&h, &code, &known), 0);
	CHECK(known && code == 128 + SIGKILL);
}

/* The spawn hold (node/instrec.h): held while the node spawns, handed to the child, gone
 * once the child executes; a restarted node's wait ends when a slow child gets to its exec. */
static void test_spawn_hold(void)
{
	char dir[] = "/tmp/mv-hold-XXXXXX", path[64], exe[PATH_MAX];
	char *argv[] = {"/bin/sleep", "60", NULL};
	char *envp[] = {NULL};
	struct drv_handle h = {.pidfd = -1};
	char err[256];
	int code, fd;
	bool known;
	pid_t slow;
	ssize_t n;
	CHECK(mkdtemp(dir) != NULL);
	CHECK_EQ_INT(instrec_hold_wait(dir, 0), 0); /* none taken yet */
	CHECK((fd = instrec_hold_take(dir)) > 0);
	CHECK_EQ_INT(instrec_hold_take(dir), -EWOULDBLOCK);
	CHECK_EQ_INT(instrec_hold_wait(dir, 20), -ETIMEDOUT);
	/* through a spawner thread: neither it nor the executed child keeps the hold */
	struct proc_spawn_request r = {.path = "/bin/sleep", .argv = argv, .envp = envp, .fds = {-1, -1, -1}, .hold_fd = fd};
	CHECK_EQ_INT(proc_spawn(&r, &h, err, sizeof err), 0);
	close(fd);
	CHECK_EQ_INT(instrec_hold_wait(dir, 0), 0);
	CHECK_EQ_INT(proc_signal(&h, SIGKILL), 0);
	CHECK_EQ_INT(wait_and_reap(&h, &code, &known), 0);
	/* a child slow to reach its exec (as one joining cgroups after its node was killed) */
	CHECK((fd = instrec_hold_take(dir)) > 0);
	if ((slow = fork()) == 0) {
		struct timespec t = {.tv_nsec = 200 * 1000 * 1000};
		nanosleep(&t, NULL);
		execve("/bin/sleep", argv, envp);
		_exit(127);
	}
	CHECK(slow > 0);
	close(fd); /* the "node" is gone: only the child holds it now */
	CHECK_EQ_INT(instrec_hold_wait(dir, 10000), 0);
	snprintf(path, sizeof path, "/proc/%d/exe", (int)slow);
	n = readlink(path, exe, sizeof exe - 1);
	CHECK(n > 0);
	exe[n > 0 ? n : 0] = '\0';
	CHECK(strstr(exe, "sleep") != NULL); /* it had executed when the wait ended */
	kill(slow, SIGKILL);
	waitpid(slow, NULL, 0);
	snprintf(path, sizeof path, "%s/spawning.lock", dir);
	unlink(path);
	rmdir(dir);
}

/* Stopped (as the node does at exit), the spawner starts again on the next spawn; a child
 * whose spawner thread is gone is still ours (the kernel gives it to another thread of the
 * process), with its exit status. */
static void test_spawner_stop_and_restart(void)
{
	char *argv[] = {"/bin/sleep", "60", NULL};
	char *envp[] = {NULL};
	struct drv_handle h = {.pidfd = -1};
	struct proc_spawn_request r = {.path = "/bin/sleep", .argv = argv, .envp = envp, .fds = {-1, -1, -1}};
	char err[256];
	int code = -1;
	bool known = false;
	CHECK_EQ_INT(proc_spawn(&r, &h, err, sizeof err), 0);
	proc_spawner_stop();
	CHECK_EQ_INT(getpgid(h.pid), h.pid); /* alive after its spawner thread ended */
	CHECK_EQ_INT(proc_signal(&h, SIGKILL), 0);
	CHECK_EQ_INT(wait_and_reap(&h, &code, &known), 0);
	CHECK(known && code == 128 + SIGKILL);
	proc_spawner_stop(); /* twice is harmless */
	run_sh("exit 9", &code);
	CHECK_EQ_INT(code, 9);
	proc_spawner_stop();
	CHECK_EQ_INT(proc_spawner_start(), 0);
	run_sh("exit 10", &code);
	CHECK_EQ_INT(code, 10);
}

int main(void)
{
	srand((unsigned)getpid());
	RUN(test_child_inherits_only_its_stdio);
	RUN(test_spawner_tables_stay_small);
	RUN(test_exit_status_from_many_threads);
	RUN(test_signal_and_status);
	RUN(test_spawn_errors);
	RUN(test_adopt_and_recover);
	RUN(test_spawn_hold);
	RUN(test_spawner_stop_and_restart);
	proc_spawner_stop();
	UNIT_END();
}
