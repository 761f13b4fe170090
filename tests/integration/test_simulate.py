"""`microvim node --simulate N`: N simulated nodes from one process, each registered over
HTTP with its own long-poll and heartbeat; their driver `sim` keeps instances as records.
The scale harness (bench/scale) runs it with thousands of nodes; here a few dozen show that
it is a faithful node: placement over all of them, states reported, failures, stops, the
same ids after a restart, and nodes lost when it dies."""

import signal
import time

import harness as h

N = 24


def start_sim(core, n=N, extra=()):
    work = h.tmpdir("mv-sim-")
    d = h.Daemon("sim", ["node", "--core", core.url, "--simulate", str(n), "--name", "t"] + list(extra),
                 work, url=core.url).start()

    def all_ready():
        nodes = core.client().nodes()
        return sum(1 for x in nodes if x["state"] == "ready" and x["name"].startswith("t-")) == n
    h.wait_until(all_ready, 20, f"{n} simulated nodes ready")
    return d


def test_simulated_nodes_register_and_take_instances():
    core = h.start_core(extra=["--schedule", "spread"])
    c = core.client()
    sim = start_sim(core)
    nodes = c.nodes()
    assert len(nodes) == N
    assert all(list(x["drivers"]) == ["sim"] for x in nodes), nodes[0]["drivers"]
    names = sorted(x["name"] for x in nodes)
    assert names[0] == "t-00001" and names[-1] == f"t-{N:05d}", names

    insts = c.create({"name": "s", "driver": "sim", "count": 2 * N})
    assert {i["state"] for i in insts} == {"running"}, {i["state"] for i in insts}
    per = {}
    for i in insts:
        per[i["node"]] = per.get(i["node"], 0) + 1
    assert sorted(per.values()) == [2] * N, f"spread over {N} simulated nodes: {per}"
    one = c.get(insts[0]["id"])
    assert one["trace"]["phases"]["spawn"] >= 0 and one["trace"]["total_ms"] > 0, one["trace"]

    # a stop goes to the node that has it, and its report comes back
    st, js, raw = c.call("DELETE", f"/v1/instances/{insts[0]['id']}?wait=stopped&timeout=10")
    assert st in (200, 202), raw[:300]
    c.wait_state(insts[0]["id"], {"stopped"}, timeout=10)

    # a slower simulated start, per instance
    slow = c.create({"name": "slow", "driver": "sim", "config": {"spawn_ms": 300}})[0]
    assert slow["state"] == "running"
    assert c.get(slow["id"])["trace"]["phases"]["spawn"] >= 250, c.get(slow["id"])["trace"]
    sim.stop()


def test_simulated_failures_and_restart_keeps_ids():
    core = h.start_core(extra=["--heartbeat-timeout", "2"])
    c = core.client()
    sim = start_sim(core, n=4, extra=["--sim-fail-rate", "1"])
    ids = sorted(x["id"] for x in c.nodes())
    inst = c.create({"name": "f", "driver": "sim"}, wait=False)[0]
    got = c.wait_state(inst["id"], {"failed"}, timeout=10)
    assert "simulated start failure" in (got.get("error") or ""), got
    ok = c.create({"name": "ok", "driver": "sim", "config": {"fail_rate": 0}})[0]
    assert ok["state"] == "running"

    # the simulator dies: its nodes go down, their instances are lost
    sim.stop(sig=signal.SIGKILL, expect_alive=True)
    h.wait_until(lambda: all(x["state"] == "down" for x in c.nodes()), 15, "simulated nodes down")
    c.wait_state(ok["id"], {"lost"}, timeout=10)

    # a new simulator registers the same nodes again
    start_sim(core, n=4)
    assert sorted(x["id"] for x in c.nodes()) == ids
    assert len(c.nodes()) == 4


def test_node_with_many_instances_registers_again():
    """A node's registration lists every instance it runs (~20 bytes each): past ~50,000 its
    body outgrows the 1 MiB any other request may have. The core takes big bodies on that
    route too, so a node running 60,000 (a simulated one here) registers again after the
    core restarts, keeps them running, and nothing is lost."""
    core = h.start_core(extra=["--max-inflight", "0"])
    c = core.client()
    sim = start_sim(core, n=1, extra=["--sim-memory-mb", "1048576"])
    many = 60000
    for k in range(many // 1000):
        st, js, raw = c.call("POST", "/v1/instances", {"name": f"m{k}", "driver": "sim", "count": 1000,
                                                      "resources": {"vcpus": 0.001, "memory_mb": 1}})
        assert st == 201, raw[:300]
    h.wait_until(lambda: c.call("GET", "/v1/health")[1]["instances"] == many, 60, f"{many} instances stored")

    def running():
        return h.metric_value(core, 'microvim_instances{state="running"}') == many
    h.wait_until(running, 120, f"{many} instances running")
    core.stop()
    core = h.start_core(port=core.port, data_dir=core.data_dir, extra=["--max-inflight", "0"])
    c = core.client()
    h.wait_until(lambda: [x["state"] for x in c.nodes()] == ["ready"], 60,
                 "the simulated node registered again with its 60,000 instances")
    assert h.metric_value(core, 'microvim_instances{state="running"}') == many
    assert not h.metric_value(core, 'microvim_instances{state="lost"}')
    assert "registration refused" not in sim.log_text()
    sim.stop()


def test_simulate_bad_usage():
    for args, want in ((["--simulate", "0"], "1-100000"), (["--simulate", "x"], "1-100000"),
                       (["--simulate", "2", "--sim-fail-rate", "2"], "0-1")):
        r = h.cli(["node", "--core", "http://127.0.0.1:9"] + args)
        assert r.returncode == 2 and want in r.stderr, (args, r.returncode, r.stderr)


def test_heartbeat_interval_grows_with_the_nodes():
    """--heartbeat-rate-max (Nomad's max_heartbeats_per_second): 30 simulated nodes at 10
    heartbeats/s together beat every 3 s, not every second (--heartbeat-timeout 3), and are
    not taken for down at the 3 s timeout; killed, they are down after three intervals (9 s).
    A bad value is refused before anything starts."""
    for bad in ("-1", "x", "2000000"):
        r = h.cli(["core", "--heartbeat-rate-max", bad, "--data-dir", h.tmpdir("mv-bad-")], timeout=10)
        assert r.returncode == 2 and "--heartbeat-rate-max" in r.stderr, (bad, r.returncode, r.stderr[-300:])
    core = h.start_core(extra=["--heartbeat-timeout", "3", "--heartbeat-rate-max", "10"])
    c = core.client()
    sim = start_sim(core, n=30)
    st, js, raw = c.call("GET", "/v1/health")
    assert st == 200 and js["heartbeat_interval_s"] == 3, raw[:300]
    # three timeouts' worth of time: a node still keeping the 1 s interval, or a core still
    # holding them to the 3 s timeout, would show as a node down here
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        down = [x["name"] for x in c.nodes() if x["state"] != "ready"]
        assert not down, f"nodes taken for down while beating every 3 s: {down}\n{core.log_tail(10)}"
        time.sleep(0.5)
    assert "is down" not in core.log_text(), core.log_tail(10)
    sim.stop(signal.SIGKILL, expect_alive=True)
    h.wait_until(lambda: all(x["state"] == "down" for x in c.nodes()), 30, "the killed nodes down")
    assert "no heartbeat for 9 s" in core.log_text(), core.log_tail(10)
