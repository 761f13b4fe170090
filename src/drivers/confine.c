/* confine — see confine.h. The child runs on a stack of its own in the node's memory
 * until it executes: it only makes system calls and writes its error into the shared
 * struct child; it never returns into the node's code, allocates, or takes a lock. */
#include "drivers/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int confine_user_lookup(const char *name, struct confine_user *u, char *err, size_t errlen)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc;
	*u = (struct confine_user){0};
	if ((rc = getpwnam_r(name, &pw, buf, sizeof buf, &found)) != 0 || !found) {
		snprintf(err, errlen, "no user \"%.64s\" on this host%s%s", name, rc ? ": " : "", rc ? strerror(rc) : "");
		return rc ? -rc : -ENOENT;
	}
	snprintf(u->name, sizeof u->name, "%s", name);
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	u->ngroups = CONFINE_GROUPS_MAX;
	if (getgrouplist(name, pw.pw_gid, u->groups, &u->ngroups) < 0) {
		snprintf(err, errlen, "user %.64s is in more than %d groups", name, CONFINE_GROUPS_MAX);
		return -E2BIG;
	}
	return 0;
}

/* What the parent and the child share (CLONE_VM): the request, and the child's error. */
struct child {
	const struct confine_spawn *s;
	const char *step; /* what failed, or NULL */
	int error;        /* its errno */
};

/* The child's functions are not instrumented by the sanitizers: their stack frames are
 * on the stack confine_spawn lends, and shadow memory they marked would outlive them. */
#define CHILD_CODE __attribute__((no_sanitize("address", "undefined"), noinline))

/* Notes the failed step and ends the child. */
CHILD_CODE static int child_fail(struct child *c, const char *step)
{
	c->error = errno;
	c->step = step;
	_exit(127);
}

/* Makes fd (or /dev/null) the child's descriptor target, open across the exec (the
 * /dev/null descriptor itself is close-on-exec: only its copy on target stays). */
CHILD_CODE static int child_fd(int fd, int target)
{
	if (fd < 0 && (fd = open("/dev/null", (target == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC)) < 0)
		return -1;
	if (fd == target) /* dup2 would leave its close-on-exec flag */
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, target) < 0 ? -1 : 0;
}

CHILD_CODE static int child_main(void *arg)
{
	struct child *c = arg;
	const struct confine_spawn *s = c->s;
	const struct confine_user *u = s->user;
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;

	for (int i = 0; i < 2; i++) /* "0": the writer itself */
		if (s->join_fds[i] >= 0 && write(s->join_fds[i], "0", 1) != 1)
			child_fail(c, "join its cgroup");
	if (setsid() < 0)
		child_fail(c, "start a session");
	for (int fd = 0; fd < 3; fd++)
		if (child_fd(s->fds[fd], fd) < 0)
			child_fail(c, "set up its stdin/stdout/stderr");
	if (s->dir && chdir(s->dir) < 0)
		child_fail(c, "enter its directory");
	/* raw calls: these change this task only (see confine.h); groups first, while still root */
	if (u && (syscall(SYS_setgroups, (size_t)u->ngroups, u->groups) < 0 ||
	          syscall(SYS_setresgid, u->gid, u->gid, u->gid) < 0 || syscall(SYS_setresuid, u->uid, u->uid, u->uid) < 0))
		child_fail(c, "become the exec user");
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* glibc's own signals refuse: they are not the program's */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(s->path, s->argv, s->envp);
	return child_fail(c, "execute");
}

#define CHILD_STACK (32 * 1024)

int confine_spawn(const struct confine_spawn *s, pid_t *pid, char *err, size_t errlen)
{
	/* the child's stack: ours, below this frame, which waits (CLONE_VFORK) while it runs */
	_Alignas(16) char stack[CHILD_STACK];
	struct child c = {.s = s};
	sigset_t all, saved;
	int status;

	/* no handler of the node may run in the child, which shares its memory: it starts
	 * with every signal blocked and unblocks them once the handlers are the defaults */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	*pid = clone(child_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
	if (*pid < 0)
		c.error = errno;
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (*pid < 0) {
		snprintf(err, errlen, "cannot start %s: clone: %s", s->path, strerror(c.error));
		return -c.error;
	}
	if (c.step) { /* it ended before executing: collect it */
		while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
			;
		snprintf(err, errlen, "cannot %s%s%s: %s", c.step, strcmp(c.step, "execute") == 0 ? " " : " for ",
		         s->path, strerror(c.error));
		return -c.error;
	}
	return 0;
}
