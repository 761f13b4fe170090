"""test_analyze — `microvim analyze` on a live loopback capture of 200 instantiations,
checked instance by instance against the client (push), the core's phase trace and the
node's own timing.

Three observers time each instantiation, each on its own clock, and none of them sees the
others' instants: the client (push: request handed to its connection -> answer read), the
core (its marks, trace.h: accepted, persisted, scheduled, sent, reported, notified) and the
node (assignment received -> report handed to the network: work, with prepare, network,
spawn and boot inside it); the analyzer adds the packets (F = first, L = last byte on the
wire). Causality orders all of them, for every instance, on any machine and under any load:

  client send <= create R_F <= R_L <= accepted <= persisted <= scheduled <= sent
      <= assignment A_F <= A_L <= received <= (steps) <= handed <= report P_F <= P_L
      <= reported <= notified <= answer S_F <= S_L <= client reads the answer

Only durations can be compared (four clocks), so the check is nesting: an interval one
observer measured lies inside the interval that encloses it on another. Per instance:

  bound                                             intervals                        guards
  (1) push total_ms   >= wire total_ms              [send, read] > [R_F, S_L]        R early, S late
  (2) wire core_total >= trace total_ms             [R_L, S_F] > [accepted, notified] R late, S early
  (3) wire core_ms    >= accept + schedule          [R_L, A_F] > [accepted, scheduled] A early
  (4) wire node_ms    >= node_work_ms               [A_L, P_F] > [received, handed]   A late, P early
  (5) wire node_ms    <= dispatch + notify + steps  [scheduled, notified] > [A_F, P_L] A early, P late
  (6) wire notify_ms  >= 0                          [P_L, S_F] > [reported, notified] P late
  (7) node_work_ms    >= steps (prepare + network + spawn + boot), the node's own nesting
  (8) wire core_ms + node_ms + notify_ms <= core_total_ms <= total_ms, the wire's own
  (9) the report's prepare, network, spawn, boot read from the wire == the trace's (equal)

(5) uses what the core measured, not how it splits it: the trace's dispatch and notify
each hold half of the time between `sent` and `reported` that the node did not measure
(est, trace.h), but their sum with the steps is exactly notified - scheduled on the core's
clock. So the wire is not compared with dispatch or notify one by one (this test once did,
"core_ms ~ accept + schedule + dispatch - est/2", within a fixed tolerance): the even split
is an estimate, and each such difference is the time between a packet and an observer's
clock (evhttp reading a request before `accepted`; the store commit and the write after
`notified`; the client parsing an answer). Those are 0.1-0.8 ms in an ASan build (0.6 ms
for the client's side alone, which is what made that check fail there every time) and can
be tens of ms for a few instances on a busy host: a tolerance on them measures the host's
scheduling, not the analyzer. The bounds above hold exactly whatever those delays are
(up to the records' µs rounding, ROUND_MS).

What the bounds still prove: each boundary the analyzer places (R, A, P, S) is held from
both sides. A boundary misplaced by d ms (the wrong message: another long-poll answer, the
report's answer, another report; or a wrong end of one) breaks a bound that guards it for
every instance whose slack there is below d, and the slack is the observers' own stack
time, whose smallest value over the run is well below a millisecond (tried: moving any of
the four boundaries in analyze.c by 0.3 ms, either way, broke 18 to 200 of the 200 instances
in the optimised build; taking the report's answer for the report, or the long-poll's
request for its answer, broke all 200). The test computes
that smallest slack for each boundary and direction (the run's resolution: the smallest
misplacement it would catch) and requires it to be below a quarter of the median node
phase, measured in the same run: so a boundary taken from the wrong exchange, which moves
it by a whole phase, cannot pass, however slow the build or busy the host.
"""

import json
import os
import signal

import harness

N = 200


ROUND_MS = 0.003  # both sides round to whole µs (the trace's ms fields, the records' ms fields)

# Which misplacement each bound catches: (boundary, direction) -> the bounds guarding it.
GUARDS = {
    ("R", "early"): ("client",), ("R", "late"): ("core-total",),
    ("A", "early"): ("core-start", "node-out"), ("A", "late"): ("node-in",),
    ("P", "early"): ("node-in",), ("P", "late"): ("node-out", "notify"),
    ("S", "early"): ("core-total",), ("S", "late"): ("client",),
}


def _wait_log(d, text, timeout=10.0):
    harness.wait_until(lambda: text in d.log_text() or not d.alive(), timeout, f"'{text}' in {d.kind} log")
    assert d.alive(), f"{d.kind} exited: {d.log_tail(20)}"


def _records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _slacks(p, t, w):
    """The slack of each bound for one instance (>= 0 when the bound holds), in ms."""
    ph = t["phases"]
    steps = ph["prepare"] + ph["network"] + ph["spawn"] + ph.get("boot", 0.0)
    wire_sum = w["core_ms"] + w["node_ms"] + w["notify_ms"]
    return {
        "client": p["total_ms"] - w["total_ms"],
        "core-total": w["core_total_ms"] - t["total_ms"],
        "core-start": w["core_ms"] - (ph["accept"] + ph["schedule"]),
        "node-in": w["node_ms"] - w["node_work_ms"],
        "node-out": (ph["dispatch"] + ph["notify"] + steps) - w["node_ms"],
        "notify": w["notify_ms"],
        "node-steps": w["node_work_ms"] - steps,
        "wire-nesting": min(w["core_total_ms"] - wire_sum, w["total_ms"] - w["core_total_ms"]),
    }


def _report_mismatch(t, w):
    """The report's timing, read from the wire by the analyzer and from the trace (ms)."""
    ph = t["phases"]
    keys = ["prepare", "network", "spawn"] + (["boot"] if "boot" in ph else [])
    return max(abs(w[k] - ph[k]) for k in keys)


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

    # every packet is in the capture's ring before its receiver reads it, and analyze reads
    # the ring to the end when it stops: nothing to wait for
    rc = an.stop(sig=signal.SIGTERM)
    assert rc == 0, f"analyze exited {rc}: {an.log_tail(30)}"
    wire = {w["id"]: w for w in _records(an_out)}

    slacks, broken, node_ms = {}, [], []
    for p in pushed:
        iid, t = p["id"], traces[p["id"]]
        w = wire.get(iid)
        assert w is not None, f"instance {iid} is not in the analyzer's records"
        assert w["state"] == "running", w
        s = _slacks(p, t, w)
        for k, v in s.items():
            slacks.setdefault(k, []).append(v)
        node_ms.append(w["node_ms"])
        if min(s.values()) < -ROUND_MS or _report_mismatch(t, w) > 0.0015:
            broken.append((iid, {k: round(v, 3) for k, v in s.items()}, round(_report_mismatch(t, w), 4)))

    print(f"  {N} instances; slack of each bound in ms (min, p50, max):")
    for k, v in slacks.items():
        v = sorted(v)
        print(f"    {k:12s} {v[0]:+8.3f} {v[len(v) // 2]:+8.3f} {v[-1]:+8.3f}")
    assert not broken, f"{len(broken)} of {N} instances break a bound: {broken[:5]}"

    # the run's resolution: the smallest misplacement of each boundary it would catch
    limit = sorted(node_ms)[N // 2] / 4
    resolution = {bd: min(min(slacks[g]) for g in guards) for bd, guards in GUARDS.items()}
    print(f"  resolution (ms; must be below {limit:.3f}, a quarter of the median node phase): " +
          ", ".join(f"{b} {d} {v:.3f}" for (b, d), v in resolution.items()))
    blunt = {f"{b} {d}": round(v, 3) for (b, d), v in resolution.items() if v >= limit}
    assert not blunt, f"the bounds cannot place these boundaries within {limit:.3f} ms this run: {blunt}"

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
