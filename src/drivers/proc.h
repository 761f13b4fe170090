/* proc — process handles shared by drivers whose instance is a host process (exec, qemu):
 * pidfds, start times, signals to the whole process group, reaping. */
#ifndef MICROVIM_PROC_H
#define MICROVIM_PROC_H

#include "drivers/driver.h"

/* Spawns path (never through a shell, no PATH lookup) as the leader of its own session and
 * process group, with default signal dispositions and an empty signal mask; fds[0..2]
 * become its stdin, stdout, stderr (-1: /dev/null); dir is its working directory (NULL:
 * ours). Fills h (pidfd, start time). 0 or -errno with a sentence in err. */
int proc_spawn(const char *path, char *const argv[], char *const envp[], const int fds[3], const char *dir,
               struct drv_handle *h, char *err, size_t errlen);
/* Moves the calling thread into the network namespace at nspath, so that what it spawns
 * next starts there; *saved gets the thread's own namespace for proc_netns_leave. Only
 * for worker threads: the namespace is per thread. 0 or -errno. */
int proc_netns_enter(const char *nspath, int *saved);
/* Returns the thread to the namespace saved by proc_netns_enter and closes saved. */
int proc_netns_leave(int saved);
/* Start time of pid from /proc/PID/stat (field 22), or 0 when it is gone. */
unsigned long long proc_start_time(pid_t pid);
/* Fills h for a process we just spawned (pidfd, start time). 0 or -errno. */
int proc_handle_open(struct drv_handle *h, pid_t pid);
/* SIGTERM (or SIGKILL when force) to the instance's process group. */
int proc_signal(struct drv_handle *h, bool force);
int proc_reap(struct drv_handle *h, int *exit_code, bool *code_known);
/* Finds the process started for instance_id (its environment carries
 * MICROVIM_INSTANCE_ID=ID, set by the drivers) and attaches to it: the adopt operation. */
int proc_adopt(const struct drv_options *o, const char *instance_id, struct drv_handle *h);
/* Re-attaches to h->pid when it is still the same process (start time matches). */
int proc_recover(struct drv_handle *h);
void proc_handle_close(struct drv_handle *h);

#endif
