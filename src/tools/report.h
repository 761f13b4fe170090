/* report — plots of push and analyze records (record.h, analyze.h) through gnuplot.
 *
 *   microvim report FILE... -o OUT.svg|OUT.png [--kind phases|driver|latency|cdf] [--label NAME ...]
 *                   [--rate R ...] [--title T] [--gnuplot PATH]
 *
 * Each FILE (.jsonl or .csv, as push, spawn-baseline and analyze write them) is one run,
 * named by the --label given in the same position (default: the file's base name without
 * its extension).
 *
 *   phases   the paper's Fig. 6: one horizontal bar per run, stacked from the means of its
 *            phases, each segment with the 95% confidence interval of its mean (Student t)
 *            as an error bar at its right end, and the sum of the means written after the
 *            bar. A run from push stacks the trace phases (accept, schedule, dispatch,
 *            prepare, network, spawn, boot, notify); a run from analyze (it has core_ms and
 *            no accept) stacks the wire phases core, node, notify. Phases that no run has, or
 *            whose mean is 0 in every run (network without a bridge), are left out.
 *   driver   the paper's Fig. 6b for microvim's drivers: one bar per run (a run per driver,
 *            named by --label), stacked from the means of the node's steps (push records:
 *            artifact, environment, then the network phase, config, call; docs/architecture.md,
 *            "Phases"), with the same error bars and sums as phases.
 *   latency  p50 and p99 of total_ms (records whose state is "running") against the offered
 *            rate, one point per run. The rate is the run's --rate (instantiations/s, given
 *            in FILE order) or, without it, (n - 1) / (last - first intended_send_us) over
 *            the run's records: the rate requests were due at in an open-loop push (in a
 *            closed loop that is the achieved rate).
 *   cdf      the empirical CDF of total_ms (records whose state is "running"), one curve per run.
 *
 * gnuplot runs through posix_spawn (never a shell) on a script written with the data in a
 * private temporary directory, removed afterwards (kept, and named, when gnuplot fails).
 * Success means gnuplot exited 0 and OUT exists and is not empty.
 * Exit status: 0 done, 1 a file could not be read or gnuplot failed, 2 bad usage. */
#ifndef MICROVIM_REPORT_H
#define MICROVIM_REPORT_H

int report_main(int argc, char **argv);

#endif
