/* proc — process handles shared by drivers whose instance is a host process (exec, qemu):
 * pidfds, start times, signals to the whole process group, reaping. */
#ifndef MICROVIM_PROC_H
#define MICROVIM_PROC_H

#include "drivers/confine.h"
#include "drivers/driver.h"

/* What to spawn: path (never through a shell, no PATH lookup) as the leader of its own
 * session and process group, with default signal dispositions and an empty signal mask. */
struct proc_spawn_request {
	const char *path;
	char *const *argv;
	char *const *envp;
	int fds[3];        /* become its stdin, stdout, stderr; -1: /dev/null */
	const char *dir;   /* its working directory; NULL: ours */
	int hold_fd;       /* > 0: a close-on-exec descriptor the child holds until it executes
	                    * or dies, so that a lock on it outlasts a spawner killed mid-spawn */
	const char *netns; /* a network namespace to start it in (a path under /run/netns); NULL: ours */
	/* Confinement (confine.h): cgroup.procs files it joins before it executes (each may
	 * be NULL or ""), and the user it runs as (NULL: ours). With neither, posix_spawn. */
	const char *cgroup_procs[2];
	const struct confine_user *user;
};

/* Spawns r and fills h (pidfd, start time). The spawn itself runs on a spawner thread
 * whose descriptor table holds only what the child needs, so its cost does not grow with
 * the descriptors the process holds; the child is ours all the same. It inherits only
 * r->fds, on 0-2. 0 or -errno with a sentence in err. */
int proc_spawn(const struct proc_spawn_request *r, struct drv_handle *h, char *err, size_t errlen);
/* Starts the spawner threads (proc_spawn starts them when needed). Cheapest while the
 * process holds few descriptors: each thread copies the table once, then closes the copy.
 * 0 or -errno; on failure proc_spawn spawns from its caller's thread. */
int proc_spawner_start(void);
/* Stops them; only when no proc_spawn can be in flight. */
void proc_spawner_stop(void);
/* Start time of pid from /proc/PID/stat (field 22), or 0 when it is gone. */
unsigned long long proc_start_time(pid_t pid);
/* Fills h for a process we just spawned (pidfd, start time). 0 or -errno. */
int proc_handle_open(struct drv_handle *h, pid_t pid);
/* A signal to the instance's process group (it leads its own), while the leader is unreaped. */
int proc_signal(struct drv_handle *h, int signo);
int proc_reap(struct drv_handle *h, int *exit_code, bool *code_known);
/* Finds the process started for instance_id (its environment carries
 * MICROVIM_INSTANCE_ID=ID, set by the drivers) and attaches to it: the adopt operation. */
int proc_adopt(const struct drv_options *o, const char *instance_id, struct drv_handle *h);
/* Re-attaches to h->pid when it is still the same process (start time matches). */
int proc_recover(struct drv_handle *h);
void proc_handle_close(struct drv_handle *h);

#endif
