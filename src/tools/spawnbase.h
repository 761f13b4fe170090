/* spawnbase — `microvim spawn-baseline`: the bare ceiling the VIM is compared against.
 * posix_spawn of the same binary N times, C at a time from C threads, with the exec
 * driver's own spawn attributes (stdin from /dev/null, stdout and stderr to /dev/null
 * instead of log files, own session, default signal mask and dispositions). Each sample
 * is the posix_spawn call itself: glibc spawns with CLONE_VFORK, so it returns once the
 * child has exec'd.
 *   --reap end (default)  children live on, as instances do, until the last spawn has
 *                         returned; then all are killed (SIGKILL) and reaped. Their start-up
 *                         (ld.so, libc init: ~0.5 ms of CPU for /bin/sleep) competes with the
 *                         spawner, as the instances' does with the VIM.
 *   --reap each           each thread kills and reaps its child before its next spawn: the
 *                         child rarely gets to run at all, so this is the cheapest case.
 * Either way no child is left behind (PID 1 reaps orphans slowly here).
 *
 * Prints the summary push prints (rows spawn and total, which are the same sample here)
 * and the throughput (spawns/s over the wall time); --out FILE writes push's record
 * format (id = pid, spawn = total_ms = the posix_spawn call, overhead_ms = 0).
 * Exit status: 0 when every spawn succeeded, 1 otherwise, 2 on bad usage. */
#ifndef MICROVIM_SPAWNBASE_H
#define MICROVIM_SPAWNBASE_H

int spawnbase_main(int argc, char **argv);

#endif
