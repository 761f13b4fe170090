/* confine — spawning a process that is held to limits from its first instruction: it
 * joins its cgroups (cgroup.h) and drops to an unprivileged user (node --exec-user)
 * before it executes anything, so nothing it allocates escapes the limit and nothing it
 * runs is root.
 *
 * posix_spawn can do neither, and a cgroup joined after the spawn would let the start of
 * the program run outside it. So the child is made as posix_spawn makes it (clone with
 * CLONE_VM | CLONE_VFORK: no copy of the node's memory, whatever its size), and the child
 * itself writes "0" to each cgroup.procs, which moves the writer, then sets its groups
 * and ids with raw system calls (glibc's setuid would ask every thread of the node to
 * change too, and the child shares the node's memory until it executes), then executes.
 * An error in the child comes back through the shared memory, as posix_spawn's does. */
#ifndef MICROVIM_CONFINE_H
#define MICROVIM_CONFINE_H

#include <stddef.h>
#include <sys/types.h>

#define CONFINE_GROUPS_MAX 64

/* An unprivileged user to run as: its ids and supplementary groups, looked up once. */
struct confine_user {
	char name[64];
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[CONFINE_GROUPS_MAX];
};

/* Looks name up in the user database. 0 or -ENOENT/-errno with a sentence in err. */
int confine_user_lookup(const char *name, struct confine_user *u, char *err, size_t errlen);

struct confine_spawn {
	const char *path;
	char *const *argv;
	char *const *envp;
	int fds[3];          /* become its stdin, stdout, stderr; -1: /dev/null */
	const char *dir;     /* its working directory (entered before the ids change); NULL: ours */
	int join_fds[2];     /* open cgroup.procs files it joins; -1: none */
	const struct confine_user *user; /* NULL: it keeps ours */
};

/* Spawns s as the leader of its own session, with default signal dispositions and an
 * empty mask, like proc's posix_spawn. 0 or -errno with a sentence in err (which step
 * failed: joining the cgroup, the user, the executable). */
int confine_spawn(const struct confine_spawn *s, pid_t *pid, char *err, size_t errlen);

#endif
