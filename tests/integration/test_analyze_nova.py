"""test_analyze_nova — `microvim analyze --vim nova` on captures of a real OpenStack Nova.

The fixtures (tests/fixtures/nova-*.pcap.gz) were recorded on lo with `microvim analyze
--vim nova --iface lo --write` while bench/nova's Nova (Debian 12's Zed: nova 26.2.2,
oslo.messaging 14.0.3, RabbitMQ 3.10.8) created one server, then cut to that instantiation
by bench/nova/trim_capture.py (the long-lived AMQP connections are cut mid-stream, as in
any capture that starts after the services) and gzip'ed:

  nova-fake.pcap.gz           Nova's FakeDriver, the openstack CLI as the client, the
                              first boot after the services started (tokens not cached yet)
  nova-libvirt-stock.pcap.gz  libvirt + QEMU/TCG, flavor vnf.stock, push --api openstack
                              --poll-ms 100 as the client, on a heavily loaded machine

The expected figures below were read off each capture's --events timeline (the markers'
first bytes) and Glance's exchanges; the analysis is deterministic, so they are compared
to the microsecond: a change in how the markers are picked shows here.
"""

import gzip
import json
import os
import shutil

import harness

FIXTURES = harness.ROOT / "tests" / "fixtures"

EXPECTED = {
    "nova-fake.pcap.gz": {
        "id": "ab57e1ce-be11-42c0-8d3b-b0dd1629fc95",
        "total_ms": 8453.190,
        "api_auth_ms": 1612.838, "image_ms": 348.738, "scheduling_ms": 2587.897,
        "compute_network_ms": 1508.182, "compute_spawn_ms": 161.540, "notification_ms": 2233.995,
        "auth_ms": 942.512, "placement_ms": 735.578, "select_ms": 1280.415,
    },
    "nova-libvirt-stock.pcap.gz": {
        "id": "27f95c16-80a9-4302-b094-c93ab8a51683",
        "total_ms": 23794.159,
        "api_auth_ms": 542.831, "image_ms": 147.131, "scheduling_ms": 1246.403,
        "compute_network_ms": 1816.522, "compute_spawn_ms": 19510.585, "notification_ms": 530.688,
        "auth_ms": 0.0, "placement_ms": 404.519, "select_ms": 508.790, "neutron_ms": 111.239,
    },
}

PHASES = ["api_auth_ms", "image_ms", "scheduling_ms", "compute_network_ms", "compute_spawn_ms", "notification_ms"]
# the order of the markers in --events: each must come after the one before
MARKERS = ["POST /v2.1/servers", "rpc  schedule_and_build_instances", "rpc  select_destinations",
           "rpc  build_and_run_instance", "save task_state=spawning", "save task_state=null vm_state=active",
           "-> 200 ACTIVE"]


def _unpack(name, work):
    path = os.path.join(work, name[:-3])
    with gzip.open(FIXTURES / name, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _analyze(args):
    r = harness.cli(["analyze", "--vim", "nova"] + args, timeout=120)
    assert r.returncode == 0, f"analyze {args}: exit {r.returncode}: {r.stderr[-800:]}"
    return r


def test_analyze_nova_fixtures_give_the_phases():
    work = harness.tmpdir("mv-nova-")
    for name, exp in EXPECTED.items():
        pcap = _unpack(name, work)
        out = os.path.join(work, name + ".jsonl")
        r = _analyze([pcap, "--out", out, "--events"])
        assert "0 framing errors, 0 content errors" in r.stdout, r.stdout[-1500:]
        assert "instances: 1 created in the capture, 1 seen ACTIVE" in r.stdout, r.stdout[-1500:]
        with open(out) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        assert len(recs) == 1, recs
        rec = recs[0]
        assert rec["id"] == exp["id"] and rec["state"] == "running" and rec["error"] == "", rec
        for k, v in exp.items():
            if k != "id":
                assert abs(rec[k] - v) < 0.0015, f"{name}: {k} = {rec[k]}, expected {v}"
        # the phases add up to the total: each begins where the one before ended
        assert abs(sum(rec[p] for p in PHASES) - rec["total_ms"]) < 0.005, rec
        assert all(rec[p] > 0 for p in PHASES), rec
        # the markers, in the order of the paper's Fig. 4
        lines = r.stdout.splitlines()
        pos = []
        for m in MARKERS:
            hits = [i for i, ln in enumerate(lines) if m in ln]
            assert hits, f"{name}: no '{m}' in the events:\n" + "\n".join(lines[:80])
            pos.append(hits[0])
        times = [float(lines[i].split()[0]) for i in pos]
        assert times == sorted(times), f"{name}: markers out of order: {list(zip(MARKERS, times))}"
        # the same records as CSV
        csv = os.path.join(work, name + ".csv")
        _analyze([pcap, "--out", csv, "-q"])
        with open(csv) as f:
            head, row = f.read().splitlines()[:2]
        cols = dict(zip(head.split(","), row.split(",")))
        assert cols["id"] == exp["id"] and abs(float(cols["total_ms"]) - exp["total_ms"]) < 0.0015, cols


def test_analyze_nova_capture_cut_short():
    """The capture ends before the server is ACTIVE: the record says so, nothing fails."""
    work = harness.tmpdir("mv-nova-")
    pcap = _unpack("nova-libvirt-stock.pcap.gz", work)
    with open(pcap, "rb") as f:
        data = f.read()
    cut = os.path.join(work, "cut.pcap")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 3])
    out = os.path.join(work, "cut.jsonl")
    r = harness.cli(["analyze", "--vim", "nova", cut, "--out", out], timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ends mid-record" in r.stderr or "analysing what came before" in r.stderr, r.stderr
    with open(out) as f:
        rec = json.loads(f.readline())
    assert rec["state"] == "error" and "not seen ACTIVE in the capture" in rec["error"], rec
    assert rec["total_ms"] is None and rec["api_auth_ms"] > 0, rec


def test_analyze_nova_ports_and_usage():
    work = harness.tmpdir("mv-nova-")
    pcap = _unpack("nova-fake.pcap.gz", work)
    # the API on another port: nothing of Nova's is seen (and nothing fails)
    r = _analyze([pcap, "--ports", "nova=18774"])
    assert "instances: 0 created in the capture" in r.stdout, r.stdout
    for args, why in [(["--vim", "nova", pcap, "--ports", "cinder=8776"], "unknown service \"cinder\""),
                      (["--vim", "nova", pcap, "--port", "4651"], "--port goes with --vim microvim"),
                      (["--vim", "nomad", pcap], "--vim nomad: not a VIM analyze knows"),
                      (["--vim", "microvim", pcap, "--events"], "--events go with --vim nova"),
                      (["--vim", "nova", pcap, "--out", "x.txt"], "must end in .jsonl or .csv")]:
        r = harness.cli(["analyze"] + args)
        assert r.returncode == 2 and why in r.stderr, (args, r.returncode, r.stderr)
