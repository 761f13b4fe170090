"""The node's sub-steps of prepare and spawn (the paper's Fig. 6b view for microvim's
drivers): artifact and environment split prepare, config and call split spawn, exactly;
they reach the core on the wire with the running report, are stored with the trace
(GET /v1/instances/{id}, GET /v1/traces) and shown by `microvim show`. For an exec process
and a qemu guest whose image the node fetches (miss: artifact carries the fetch) and then
has (hit). A stop adds its two steps (asked -> ended, then the clean-up) to the trace, push's
records and the driver figure."""

import json
import os
import shutil
import subprocess

import harness as h

STEPS = ("artifact", "environment", "config", "call")
TOL = 0.0021  # ms: each value is rounded to the microsecond


def _check_steps(inst, what):
    t = inst.get("trace") or {}
    st, ph = t.get("steps"), t.get("phases") or {}
    assert isinstance(st, dict) and set(st) == set(STEPS), f"{what}: trace.steps {st!r}"
    assert all(isinstance(st[k], (int, float)) and st[k] >= 0 for k in STEPS), f"{what}: {st}"
    assert abs(st["artifact"] + st["environment"] - ph["prepare"]) <= TOL, f"{what}: prepare {ph} vs {st}"
    assert abs(st["config"] + st["call"] - ph["spawn"]) <= TOL, f"{what}: spawn {ph} vs {st}"
    return st


def _stop_checked(c, iid, what, timeout=10):
    """DELETE ?wait=stopped: the answer's trace carries the stop's steps; then the purge."""
    st, js, raw = c.delete(iid, wait=True, timeout=timeout)
    assert st == 200 and js.get("state") == "stopped", f"{what}: DELETE ?wait=stopped -> {st}: {raw[:300]!r}"
    stop = (js.get("trace") or {}).get("stop_steps")
    assert isinstance(stop, dict) and set(stop) == {"stop", "cleanup"}, f"{what}: trace.stop_steps {stop!r}"
    assert all(isinstance(v, (int, float)) and v >= 0 for v in stop.values()), f"{what}: {stop}"
    assert stop["stop"] > 0, f"{what}: a stop takes time on the node: {stop}"
    g = c.get(iid)
    assert g["trace"].get("stop_steps") == stop, f"{what}: GET after the stop: {g['trace']}"
    st, _, raw = c.delete(iid)
    assert st == 204, f"{what}: purge -> {st}: {raw[:200]!r}"


def test_steps_exec_and_qemu():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    inst = c.create(h.exec_body("steps-exec", [tok]), wait=True)[0]
    _check_steps(inst, "exec create answer")
    _check_steps(c.get(inst["id"]), "exec GET")
    st, js, raw = c.call("GET", "/v1/traces")
    assert st == 200, raw[:300]
    mine = [x for x in js["traces"] if x["id"] == inst["id"]]
    assert mine, f"no /v1/traces entry for {inst['id']}"
    _check_steps(mine[0], "exec /v1/traces")
    p = h.cli(["show", "--core", d.url, inst["id"]])
    assert p.returncode == 0, p.stderr
    for k in STEPS:
        assert f"    {k} " in p.stdout, f"show lacks the step {k}:\n{p.stdout}"
    _stop_checked(c, inst["id"], "exec")

    nodes = c.nodes()
    if "qemu" not in nodes[0]["drivers"]:
        raise AssertionError("no qemu driver on this node (scripts/install-deps installs qemu-system-x86)")
    kernel = str(h.ROOT / "build" / "vnf" / "hello")
    r = subprocess.run([h.BIN, "image", "add", "hello", "--core", d.url, "--kernel", kernel],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"image add: {r.stderr}"
    for want in ("miss", "hit"):
        vm = c.create({"name": f"steps-vm-{want}", "driver": "qemu", "image": "hello",
                       "config": {"accel": "tcg"}}, wait=True, timeout=30)[0]
        assert vm["trace"].get("image_cache") == want, f"image_cache {vm['trace'].get('image_cache')} (want {want})"
        s = _check_steps(vm, f"qemu ({want})")
        assert s["call"] > 0, f"qemu: no time in the hypervisor call: {s}"
        if want == "miss":
            assert s["artifact"] > 0, f"qemu: the image fetch is not in the artifact step: {s}"
        _stop_checked(c, vm["id"], f"qemu ({want})", timeout=20)

    # push records carry the steps, and report --kind driver draws them per driver (Fig. 6b)
    work = h.tmpdir("mv-steps-")
    runs = {"exec": ["--config", json.dumps({"command": "/bin/sleep", "args": [tok]})],
            "qemu": ["--driver", "qemu", "--image", "hello", "--config", '{"accel": "tcg"}']}
    for drv, args in runs.items():
        out = os.path.join(work, f"{drv}.jsonl")
        p = h.cli(["push", "--core", d.url, "--replicate", "3", *args, "--out", out], timeout=90)
        assert p.returncode == 0, f"push {drv}: {p.stdout[-400:]} {p.stderr[-400:]}"
        recs = [json.loads(x) for x in open(out)]
        assert len(recs) == 3 and all(isinstance(r.get(k), (int, float)) for r in recs for k in STEPS), \
            f"push {drv}: records without steps: {recs[:1]}"
        assert all(isinstance(r.get(k), (int, float)) for r in recs for k in ("stop", "cleanup")), \
            f"push {drv}: records without the stop's steps: {recs[:1]}"
    if shutil.which("gnuplot"):
        svg = os.path.join(work, "fig6b.svg")
        p = h.cli(["report", os.path.join(work, "exec.jsonl"), os.path.join(work, "qemu.jsonl"), "--kind", "driver",
                   "--label", "exec", "--label", "qemu", "-o", svg])
        assert p.returncode == 0 and os.path.getsize(svg) > 0, f"report --kind driver: {p.stderr}"
        text = open(svg).read()
        assert "toolstack/hypervisor call" in text and "qemu" in text, "the driver plot lacks its steps"
        assert "clean-up on stop" in text, "the driver plot lacks the stop's clean-up"
    d.stop()


test_steps_exec_and_qemu.budget = 120
