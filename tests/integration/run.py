#!/usr/bin/env python3
"""run.py — the integration suite's runner (stdlib only, no pytest).

Discovers test_*.py beside this file and their test_* functions (in source order), runs
each within its time budget (a function may set `fn.budget = SECONDS`; default 60), then
tears down everything it started (harness.teardown); problems found there fail the test.
Prints `ok   name` or `FAIL name` with the traceback and the daemons' log tails, and ends
with `N passed, N failed`. Exit status 0 only when nothing failed.

Budgets are seconds of an unloaded machine. A busy machine stretches every test's wall
time, so each budget is multiplied by the load factor measured when the test starts (the
1-minute load average per CPU, at least 1, at most MAX_LOAD_FACTOR), and the suite's
budget is charged each test's wall time divided by the factor measured over it. On an
idle machine nothing changes; under two CPU hogs (load ~4 on 2 CPUs) a test may take twice
as long before it counts as hung. A hang is still caught: it runs out of any finite budget.

Usage: run.py [-k SUBSTRING]... [-x]
Env:   MICROVIM_BIN (binary under test), MICROVIM_SUITE_BUDGET (s, default 600).
"""

import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

DEFAULT_BUDGET = 60
MAX_LOAD_FACTOR = harness.MAX_LOAD_FACTOR
load_factor = harness.load_factor


class TestTimeout(Exception):
    pass


class Interrupted(BaseException):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time budget")


def _terminate(signum, frame):
    raise Interrupted(f"signal {signum}")


def discover(filters):
    tests = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        try:
            mod = importlib.import_module(modname)
        except Exception:  # noqa: BLE001
            tests.append((f"{modname}.<import>", None, traceback.format_exc()))
            continue
        fns = [(n, f) for n, f in vars(mod).items()
               if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == modname]
        fns.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
        for n, f in fns:
            tests.append((f"{modname}.{n}", f, None))
    if filters:
        tests = [t for t in tests if any(k in t[0] for k in filters)]
    return tests


def main(argv):
    filters, stop_first = [], False
    i = 0
    while i < len(argv):
        if argv[i] == "-k" and i + 1 < len(argv):
            filters.append(argv[i + 1])
            i += 2
        elif argv[i] == "-x":
            stop_first = True
            i += 1
        else:
            print(f"usage: run.py [-k SUBSTRING]... [-x]  (unknown argument {argv[i]!r})")
            return 2
    if not os.access(harness.BIN, os.X_OK):
        print(f"FAIL setup: MICROVIM_BIN {harness.BIN} is not an executable file")
        print("0 passed, 1 failed")
        return 1

    suite_budget = float(os.environ.get("MICROVIM_SUITE_BUDGET", "600"))
    spent = 0.0  # of the suite budget: wall time divided by the load factor, per test
    suite_t0 = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    # stopped from outside (e.g. tests/run's timeout): tear down what the test started
    signal.signal(signal.SIGTERM, _terminate)
    passed = failed = 0
    print(f"# integration suite against {harness.BIN}", flush=True)
    for name, fn, import_error in discover(filters):
        if import_error:
            failed += 1
            print(f"FAIL {name}\n{import_error}", flush=True)
            continue
        left = suite_budget - spent
        if left < 5:
            failed += 1
            print(f"FAIL {name}: not run, the suite's budget of {suite_budget:.0f} s is spent",
                  flush=True)
            continue
        factor = load_factor()
        budget = max(1, int(min(float(getattr(fn, "budget", DEFAULT_BUDGET)), left) * factor))
        t0 = time.monotonic()
        err = None
        try:
            signal.alarm(budget)
            try:
                fn()
            finally:
                signal.alarm(0)
        except TestTimeout:
            err = (f"timed out after {budget} s (its budget x load factor {factor:.2f})\n"
                   + traceback.format_exc())
        except (KeyboardInterrupt, Interrupted):
            signal.alarm(0)
            harness.teardown()
            failed += 1
            print(f"FAIL {name}: interrupted", flush=True)
            print(f"{passed} passed, {failed} failed", flush=True)
            return 130
        except BaseException:  # noqa: BLE001 - report anything a test raises
            err = traceback.format_exc()
        try:
            problems, report = harness.teardown(want_report=err is not None)
        except Exception:  # noqa: BLE001
            problems, report = [f"teardown crashed:\n{traceback.format_exc()}"], ""
        dt = time.monotonic() - t0
        spent += dt / ((factor + load_factor()) / 2)
        if err is None and not problems:
            passed += 1
            print(f"ok   {name} ({dt:.2f} s)", flush=True)
        else:
            failed += 1
            print(f"FAIL {name} ({dt:.2f} s)", flush=True)
            if err:
                print(err.rstrip(), flush=True)
            for p in problems:
                print("teardown: " + p.rstrip(), flush=True)
            if report:
                print(report, flush=True)
            if stop_first:
                break
    wall = time.monotonic() - suite_t0
    print(f"# suite: {wall:.0f} s wall, {spent:.0f} s of its {suite_budget:.0f} s budget "
          f"(load factor now {load_factor():.2f})", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
