"""test_analyze — `microvim analyze` on a live loopback capture of 200 instantiations,
checked instance by instance against the client (push) and the core's own phase trace.

How the wire phases (analyze.h) map onto the trace (trace.h). The trace is computed from
the core's marks (accepted, persisted, scheduled, sent, reported, notified) and the node's
timing (prepare, network, spawn, boot, work = assignment received -> report sent); the time
between `sent` and `reported` that the node did not measure, est = reported - sent - work,
is split evenly: half into dispatch, half into notify. The node's work after its last step,
tail = work - (prepare + network + spawn + boot), goes to notify too. The wire sees the same
instants from outside; the node's work is in its report (the analyzer's node_work_ms), and
est is, on the wire, node_ms - node_work_ms. So, per instance:

  wire                        trace or client                                  bound
  total_ms                    push's total_ms (the client's clock)             wire <= client
  core_ms+node_ms+notify_ms   trace total_ms (accepted -> notified)            wire >= trace
  core_ms                     accept + schedule + dispatch - est/2
  notify_ms                   notify - est/2 - tail
  node_ms                     >= node_work_ms >= prepare + network + spawn + boot
  prepare, spawn              prepare, spawn (the same report, read twice)     equal

Each pair must agree within 1 ms (TOL_MS; 5 ms in a sanitizer build) for at least 90% of
the instances, with a median difference under 0.25 ms, and the one-sided bounds must hold
for every instance (up to rounding, 0.05 ms). The misses are real time the trace does not
see, which only the wire shows: on a busy host the core's loop sometimes stalls (a store
commit, another request) between a request's arrival and its parsing (`accepted`), or
between waking a waiting client (`notified`) and writing its answer; and a client or node
is descheduled for a while. They are printed.
"""

import json
import os
import signal
import time

import harness

N = 200


def _sanitized(path):
    """An ASan/UBSan build runs everything a few times slower: its loops stall for
    milliseconds, so agreement is checked there with a wider tolerance (bounds stay exact)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _sanitized(harness.BIN)
TOL_MS = 5.0 if SANITIZED else 1.0
MAX_OUTLIERS = N // 10
MEDIAN_TOL_MS = 0.5 if SANITIZED else 0.25


def _wait_log(d, text, timeout=10.0):
    harness.wait_until(lambda: text in d.log_text() or not d.alive(), timeout, f"'{text}' in {d.kind} log")
    assert d.alive(), f"{d.kind} exited: {d.log_tail(20)}"


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _stats(diffs):
    v = sorted(diffs)
    return v[0], v[len(v) // 2], v[-1], max(abs(x) for x in v)


def test_analyze_live_capture_agrees_with_trace():
    if os.geteuid() != 0:
        print("  (skipped: a live capture needs root)")
        return
    work = harness.tmpdir("mv-analyze-")
    port = harness.free_port()
    pcap = os.path.join(work, "cap.pcap")
    an_out = os.path.join(work, "an.jsonl")
    push_out = os.path.join(work, "push.jsonl")

    # the capture starts first, so that it sees the node register and its first poll
    an = harness.Daemon("analyze", ["analyze", "--iface", "lo", "--port", str(port), "--duration", "300",
                                    "--write", pcap, "--out", an_out], work).start()
    _wait_log(an, "capturing on lo")
    dev = harness.start_dev(port=port, exec_allow="/bin/sleep")
    tok = harness.unique_arg()
    r = harness.cli(["push", "--core", dev.url, "--count", str(N), "--concurrency", "1", "--keep", "-q",
                     "--config", json.dumps({"command": "/bin/sleep", "args": [tok]}), "--out", push_out],
                    timeout=120)
    assert r.returncode == 0, f"push failed ({r.returncode}): {r.stdout[-800:]} {r.stderr[-800:]}"
    pushed = _records(push_out)
    assert len(pushed) == N and all(p["state"] == "running" for p in pushed), pushed[:3]
    client = dev.client()
    traces = {p["id"]: client.get(p["id"])["trace"] for p in pushed}

    time.sleep(0.2)  # the last answers are on the wire; the kernel hands them to the capture
    rc = an.stop(sig=signal.SIGTERM)
    assert rc == 0, f"analyze exited {rc}: {an.log_tail(30)}"
    wire = {w["id"]: w for w in _records(an_out)}

    diffs = {k: [] for k in ("total", "sum", "core", "notify", "node-work", "work-steps", "report")}
    outliers, broken = [], []
    for p in pushed:
        iid, t = p["id"], traces[p["id"]]
        w = wire.get(iid)
        assert w is not None, f"instance {iid} is not in the analyzer's records"
        assert w["state"] == "running", w
        ph = t["phases"]
        steps = ph["prepare"] + ph["network"] + ph["spawn"] + ph.get("boot", 0.0)
        est = w["node_ms"] - w["node_work_ms"]
        tail = w["node_work_ms"] - steps
        d = {
            "total": p["total_ms"] - w["total_ms"],
            "sum": (w["core_ms"] + w["node_ms"] + w["notify_ms"]) - t["total_ms"],
            "core": w["core_ms"] - (ph["accept"] + ph["schedule"] + ph["dispatch"] - est / 2),
            "notify": w["notify_ms"] - (ph["notify"] - est / 2 - tail),
            "node-work": est,
            "work-steps": tail,
            "report": max(abs(w["prepare"] - ph["prepare"]), abs(w["spawn"] - ph["spawn"])),
        }
        for k, v in d.items():
            diffs[k].append(v)
        # one-sided bounds (nesting of the intervals), exact up to rounding
        if min(d["total"], d["sum"], d["node-work"], d["work-steps"]) < -0.05 or d["report"] > 0.0015:
            broken.append((iid, {k: round(v, 3) for k, v in d.items()}))
        if max(d["total"], d["sum"], abs(d["core"]), abs(d["notify"])) > TOL_MS:
            outliers.append((iid, {k: round(v, 3) for k, v in d.items()}))

    print(f"  {N} instances; differences in ms (min, p50, max, max |d|); tolerance {TOL_MS} ms:")
    for k, v in diffs.items():
        lo, mid, hi, mx = _stats(v)
        print(f"    {k:11s} {lo:+8.3f} {mid:+8.3f} {hi:+8.3f} {mx:8.3f}")
    print(f"  beyond {TOL_MS} ms: {len(outliers)} of {N} {outliers[:3]}")
    assert not broken, f"{len(broken)} instances break a bound: {broken[:5]}"
    for k in ("total", "sum", "core", "notify"):
        med = sorted(abs(x) for x in diffs[k])[N // 2]
        assert med <= MEDIAN_TOL_MS, f"{k}: median difference {med:.3f} ms > {MEDIAN_TOL_MS} ms"
    assert len(outliers) <= MAX_OUTLIERS, \
        f"{len(outliers)} of {N} instances disagree by more than {TOL_MS} ms: {outliers[:5]}"

    # the capture it kept gives the same records when read back from the file
    again = os.path.join(work, "again.csv")
    r = harness.cli(["analyze", pcap, "--port", str(port), "--out", again], timeout=60)
    assert r.returncode == 0, r.stderr
    assert "0 parse errors" in r.stdout and " 0 bytes lost" in r.stdout, r.stdout
    with open(again) as f:
        header = f.readline().strip().split(",")
        rows = {}
        for line in f:
            cells = line.rstrip("\n").split(",")
            rows[cells[0]] = dict(zip(header, cells))
    for p in pushed:
        w, c = wire[p["id"]], rows.get(p["id"])
        assert c is not None, p["id"]
        for k in ("core_ms", "node_ms", "notify_ms", "node_work_ms", "total_ms"):
            assert abs(float(c[k]) - w[k]) < 0.0011, (p["id"], k, c[k], w[k])

    # the plots of both runs, if gnuplot is there
    if any(os.access(os.path.join(d, "gnuplot"), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
        svg = os.path.join(work, "phases.svg")
        r = harness.cli(["report", push_out, an_out, "--label", "trace", "--label", "wire", "-o", svg], timeout=60)
        assert r.returncode == 0, r.stderr
        with open(svg) as f:
            text = f.read()
        assert "core (wire)" in text and "spawn" in text and "time (ms)" in text


test_analyze_live_capture_agrees_with_trace.budget = 180


def test_analyze_usage_and_bad_files():
    work = harness.tmpdir("mv-analyze-")
    r = harness.cli(["analyze"])
    assert r.returncode == 2, r
    r = harness.cli(["analyze", "x.pcap", "--iface", "lo"])
    assert r.returncode == 2, r
    r = harness.cli(["analyze", "x.pcap", "--out", "x.txt"])
    assert r.returncode == 2, r
    r = harness.cli(["analyze", os.path.join(work, "missing.pcap")])
    assert r.returncode == 1 and "missing.pcap" in r.stderr, r
    junk = os.path.join(work, "junk.pcap")
    with open(junk, "wb") as f:
        f.write(b"this is not a capture file at all\n" * 4)
    r = harness.cli(["analyze", junk])
    assert r.returncode == 1, r
