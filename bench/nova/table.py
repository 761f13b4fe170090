#!/usr/bin/env python3
"""table.py — bench/nova/run's tables for BENCHMARKS.md (stdlib only).

Reads, from --out-dir, for each driver D (fake, libvirt) and variant V (stock, tuned):
  nova-D-V.jsonl         analyze --vim nova records: the paper's Fig. 6a phases per run
  nova-D-V.push.json     push --api openstack --json: the client's totals
  microvim-M-V.push.json push --json for microvim (M = exec beside fake, qemu beside libvirt)
  *.load                 the sampler's /proc/loadavg and /proc/stat lines
and prints markdown: one table per driver with every phase's mean ± 95% CI (Student t, as
microvim's stats), totals (mean ± CI, p50, p99), the stock/tuned ratios, the machine's load,
and the paper's published figures beside them.
"""
import argparse
import json
import math
import os

T95 = [0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t95(df):
    if df <= 30:
        return T95[df]
    pts = [(30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (math.inf, 1.960)]
    for (d0, t0), (d1, t1) in zip(pts, pts[1:]):
        if df <= d1:
            x0, x1, x = 1 / d0, (0 if d1 == math.inf else 1 / d1), 1 / df
            return t0 + (t1 - t0) * (x - x0) / (x1 - x0)
    return 1.96


def pct(sorted_v, p):
    h = (len(sorted_v) - 1) * p / 100
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (h - lo) * (sorted_v[hi] - sorted_v[lo])


def summary(values):
    v = sorted(x for x in values if x is not None)
    n = len(v)
    if n == 0:
        return None
    mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else 0
    ci = t95(n - 1) * sd / math.sqrt(n) if n > 1 else 0
    return {"n": n, "mean": mean, "ci": ci, "p50": pct(v, 50), "p99": pct(v, 99)}


def cell(s, unit_s=False):
    if not s:
        return "–"
    if unit_s:
        return f"{s['mean'] / 1000:.3f} ± {s['ci'] / 1000:.3f}"
    return f"{s['mean']:.1f} ± {s['ci']:.1f}"


def load(path):
    """(mean 1-minute load, machine CPU busy %) over a run, from the sampler's lines."""
    try:
        lines = [ln.split() for ln in open(path) if ln.strip()]
    except OSError:
        return None
    if not lines:
        return None
    loads = [float(ln[0]) for ln in lines]
    if len(lines) < 2:  # a run shorter than one sampling interval: the load, no CPU share
        return loads[0], None
    a = [int(x) for x in lines[0][1:]]
    b = [int(x) for x in lines[-1][1:]]
    d = [y - x for x, y in zip(a, b)]
    total = sum(d)
    idle = d[3] + (d[4] if len(d) > 4 else 0)
    return sum(loads) / len(loads), 100 * (total - idle) / total if total else 0


def records(path):
    try:
        return [json.loads(ln) for ln in open(path) if ln.strip()]
    except OSError:
        return []


NOVA_PHASES = [("api_auth_ms", "API and authentication"), ("image_ms", "image (Glance)"),
               ("scheduling_ms", "scheduling"), ("compute_network_ms", "compute: claim + network"),
               ("compute_spawn_ms", "compute: spawn"), ("notification_ms", "notification (to the client)")]
NOVA_DETAILS = [("auth_ms", "  of which Keystone calls"), ("placement_ms", "  of which Placement calls"),
                ("select_ms", "  select_destinations call"), ("neutron_ms", "  Neutron calls (compute)"),
                ("delete_ms", "delete (DELETE -> 404)")]
MV_PHASES = ["accept", "schedule", "dispatch", "prepare", "network", "spawn", "boot", "notify"]
# The paper (Ventre et al., 2016), Sec. V: Nova with libvirt/libxl booting ClickOS on Xen, two hosts.
PAPER = {"total_stock": "2.1 s", "total_tuned": "1.15 s", "spawn_stock": "~1.6 s (create image ~1 s, XML + libvirt 0.4 s)",
         "spawn_tuned": "0.4 s", "rest": "~0.5 s (all but spawn)", "nomad": "~0.3 s (0.2 s without the lazy notification)"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--drivers", default="fake,libvirt")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--poll-ms", default="10")
    ap.add_argument("--versions", default="")
    a = ap.parse_args()
    o = a.out_dir
    for d in a.drivers.split(","):
        mvd = "exec" if d == "fake" else "qemu"
        nova = {v: records(os.path.join(o, f"nova-{d}-{v}.jsonl")) for v in ("stock", "tuned")}
        push = {}
        for v in ("stock", "tuned"):
            try:
                push[v] = json.load(open(os.path.join(o, f"nova-{d}-{v}.push.json")))
            except OSError:
                push[v] = None
        mv = {}
        for v in ("stock", "tuned"):
            try:
                mv[v] = json.load(open(os.path.join(o, f"microvim-{mvd}-{v}.push.json")))
            except OSError:
                mv[v] = None
        print(f"\n#### Nova ({d} driver) and microvim ({mvd}): {a.runs} replicated runs each, ms, mean ± 95% CI\n")
        print("| phase (Fig. 6a) | Nova stock | Nova tuned | tuned/stock |")
        print("|---|---|---|---|")
        for key, label in NOVA_PHASES + NOVA_DETAILS:
            s = {v: summary([r.get(key) for r in nova[v] if r.get("state") == "running"]) for v in nova}
            ratio = f"{s['tuned']['mean'] / s['stock']['mean']:.2f}" if s["stock"] and s["tuned"] and s["stock"]["mean"] > 0 else "–"
            print(f"| {label} | {cell(s['stock'])} | {cell(s['tuned'])} | {ratio} |")
        tot = {v: summary([r.get("total_ms") for r in nova[v] if r.get("state") == "running"]) for v in nova}
        ratio = f"{tot['tuned']['mean'] / tot['stock']['mean']:.2f}" if tot["stock"] and tot["tuned"] else "–"
        print(f"| **total on the wire** (POST -> ACTIVE answer) | **{cell(tot['stock'])}** | **{cell(tot['tuned'])}** | {ratio} |")
        print("| total p50 / p99 | " + " | ".join(f"{tot[v]['p50']:.1f} / {tot[v]['p99']:.1f}" if tot[v] else "–"
                                                 for v in ("stock", "tuned")) + " | |")
        cl = {v: (push[v] or {}).get("series", {}).get("total") for v in push}
        print("| client total (push, poll every " + a.poll_ms + " ms) p50 / p99 | " +
              " | ".join(f"{cl[v]['p50']:.1f} / {cl[v]['p99']:.1f}" if cl[v] and cl[v].get("n") else "–"
                         for v in ("stock", "tuned")) + " | |")
        print("| runs ACTIVE / errors | " + " | ".join(
            f"{(push[v] or {}).get('running', '–')} / {(push[v] or {}).get('errors', '–')}" for v in ("stock", "tuned")) + " | |")
        for v in ("stock", "tuned"):
            ld = load(os.path.join(o, f"nova-{d}-{v}.load"))
            if ld:
                busy = f", CPUs busy {ld[1]:.0f} %" if ld[1] is not None else ""
                print(f"\nNova {v}: machine load during the runs: 1-min load average {ld[0]:.1f}{busy}"
                      " (Nova's own work included).", end="")
        print("\n")
        print(f"| microvim ({mvd}) phase | stock | tuned | tuned/stock |")
        print("|---|---|---|---|")
        for ph in MV_PHASES + ["total", "overhead"]:
            s = {v: (mv[v] or {}).get("series", {}).get(ph) for v in ("stock", "tuned")}
            if not any(x and x.get("n") for x in s.values()):
                continue
            cells = [f"{x['mean']:.3f} ± {x['ci95']:.3f}" if x and x.get("n") else "–" for x in (s["stock"], s["tuned"])]
            ratio = (f"{s['tuned']['mean'] / s['stock']['mean']:.2f}" if s["stock"] and s["tuned"] and s["stock"].get("mean")
                     else "–")
            print(f"| {ph} | {cells[0]} | {cells[1]} | {ratio} |")
        print("| total p50 / p99 | " + " | ".join(
            f"{(mv[v] or {}).get('series', {}).get('total', {}).get('p50', float('nan')):.3f} / "
            f"{(mv[v] or {}).get('series', {}).get('total', {}).get('p99', float('nan')):.3f}" for v in ("stock", "tuned")) + " | |")
        for v in ("stock", "tuned"):
            ld = load(os.path.join(o, f"microvim-{mvd}-{v}.load"))
            if ld:
                busy = f", CPUs busy {ld[1]:.0f} %" if ld[1] is not None else ""
                print(f"\nmicrovim {v}: machine load during the runs: 1-min load average {ld[0]:.1f}{busy}.", end="")
        print("\n")
        if tot["stock"] and mv["tuned"]:
            mt = mv["tuned"]["series"]["total"]["mean"]
            print(f"Nova stock / microvim tuned, mean totals: {tot['stock']['mean'] / mt:.0f}x; "
                  f"Nova tuned / microvim tuned: {tot['tuned']['mean'] / mt:.0f}x.\n" if tot["tuned"] else "")
    print("\nThe paper's published figures (Nova with libvirt/libxl booting ClickOS on Xen, two hosts, 100 runs): "
          f"total stock {PAPER['total_stock']}, tuned {PAPER['total_tuned']}; spawn stock {PAPER['spawn_stock']}, "
          f"tuned {PAPER['spawn_tuned']}; the other components {PAPER['rest']}; Nomad {PAPER['nomad']}.")
    if a.versions:
        print(f"\nPackages: {a.versions.rstrip(';').replace(';', '; ')}.")


if __name__ == "__main__":
    main()
