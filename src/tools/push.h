/* push — the workload generator: instantiations through the public API only, many at once
 * on one libevent loop with one keep-alive evhttp connection per request in flight (like
 * redis-benchmark), no threads.
 *
 *   closed loop   --count N --concurrency C       C requests in flight until N are done
 *   open loop     --rate R --arrival constant|poisson|burst:K (--duration S | --count N)
 *                 requests are due at scheduled instants whatever the server does;
 *                 latency counts from the instant a request was due, so queueing in a slow
 *                 server (or in push, when --concurrency is exhausted) is never hidden
 *   replicate     --replicate N                   one at a time, each deleted before the
 *                 next: the paper's protocol for unloaded runs
 *
 * Each instance: POST /v1/instances?wait=running&timeout=S, GET /v1/instances/{id} when
 * the answer lacks the trace; with deletion, DELETE ...?wait=stopped then DELETE again to
 * remove the record. In the closed and open loops deletion runs beside the creations (at
 * most C deletions in flight, creations wait when that many are); with --replicate it is
 * part of each run. Throughput counts instances that reached running over the time from
 * the start to the last of them.
 *
 * With --ready MARKER an instance counts as done once the guest printed its marker; one
 * still not ready when the wait ends is an error ("not_ready") without total or overhead:
 * that wait is the guest's (boot), not the VIM's. The summary counts the instances that
 * did not finish by error code (the API's, or no_answer, failed, exited, timeout,
 * not_ready), with one example message each.
 *
 * Exit status: 0 when every instance reached running, 1 otherwise, 2 on bad usage, 3 when
 * the core does not answer. */
#ifndef MICROVIM_PUSH_H
#define MICROVIM_PUSH_H

int push_main(int argc, char **argv);

#endif
