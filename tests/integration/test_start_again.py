"""Starting an instance again (POST /v1/instances/ID/start) and restarting it
(POST /v1/instances/ID/restart), through the real daemons: a new run on the same node
with the same spec, resources and network, and a new phase trace; refusals in the wrong
states; the CLI's start and restart; consistency when the core or the node is killed -9
in the middle of a restart; the exec and qemu drivers."""

import signal

import harness as h

SMALL = {"vcpus": 0.01, "memory_mb": 1}
PHASES = ("accept", "schedule", "dispatch", "prepare", "network", "spawn", "notify")
READY = h.HELLO_READY


def _post(c, iid, what, query="?wait=running&timeout=20"):
    return c.call("POST", f"/v1/instances/{iid}/{what}{query}", timeout=40)


def _sleeper(c, name, tok):
    h.register_token(tok)
    return c.create(h.exec_body(name, [tok], resources=SMALL), timeout=20)[0]


def _check_trace(inst):
    tr = inst.get("trace")
    assert tr and set(PHASES) <= set(tr["phases"]), f"no phase trace: {inst}"
    total = sum(tr["phases"].values())
    assert abs(total - tr["total_ms"]) < 0.01, tr


def _node_used(c, node_id):
    n = [n for n in c.nodes() if n["id"] == node_id][0]
    return n["allocated"]["vcpus"], n["allocated"]["memory_mb"]


def test_start_stopped_exec_instance():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    inst = _sleeper(c, "again", tok)
    node = inst["node"]
    assert inst["run"] == 0
    used_running = _node_used(c, node)
    h.expect_procs([tok], 1, "the first run")
    st, js, raw = c.delete(inst["id"], wait=True)
    assert st == 200 and js["state"] == "stopped", raw
    h.expect_procs([tok], 0, "stopped")
    assert _node_used(c, node) != used_running  # released while stopped
    # start it again: same node, same spec, resources held again, a new trace
    st, js, raw = _post(c, inst["id"], "start")
    assert st == 200, raw
    assert js["state"] == "running" and js["run"] == 1 and js["node"] == node, js
    assert js["desired"] == "running" and "exit_code" not in js and "error" not in js, js
    assert js["spec"] == inst["spec"], (js["spec"], inst["spec"])
    _check_trace(js)
    h.expect_procs([tok], 1, "the second run")
    assert _node_used(c, node) == used_running
    # a start of a running instance is refused and changes nothing
    st, err, raw = _post(c, inst["id"], "start", "")
    assert st == 409 and err["error"]["code"] == "invalid_state", raw
    assert "restart" in err["error"]["message"], raw
    now = c.get(inst["id"])
    assert now["state"] == "running" and now["run"] == 1
    h.expect_procs([tok], 1, "after the refused start")
    # stopped and started again once more, without waiting: 202, then running
    c.delete(inst["id"], wait=True)
    st, js, raw = _post(c, inst["id"], "start", "")
    assert st == 202 and js["run"] == 2 and js["state"] in ("scheduled", "starting", "running"), raw
    js = c.wait_state(inst["id"], "running")
    assert js["run"] == 2
    c.stop_and_remove(inst["id"])
    h.expect_procs([tok], 0, "removed")


def test_start_ended_and_unknown():
    d = h.start_dev()
    c = d.client()
    inst = c.create(h.exec_body("once", [], command="/bin/true", resources=SMALL), wait=False)[0]
    c.wait_state(inst["id"], "exited")
    st, js, raw = _post(c, inst["id"], "start", "")
    assert st == 202 and js["run"] == 1, raw
    js = c.wait_state(inst["id"], "exited")
    assert js["run"] == 1 and js["exit_code"] == 0, js
    # a failed one runs again too, and fails again
    bad = c.create(h.exec_body("bad", [], command="/bin/false", resources=SMALL), wait=False)[0]
    c.wait_state(bad["id"], "failed")
    st, js, raw = _post(c, bad["id"], "restart", "")
    assert st == 202 and js["run"] == 1 and "error" not in js, raw
    js = c.wait_state(bad["id"], "failed")
    assert js["run"] == 1 and js["exit_code"] == 1, js
    # unknown ids
    for what in ("start", "restart"):
        st, js, raw = _post(c, "0123456789abcdef", what, "")
        assert st == 404 and js["error"]["code"] == "not_found", raw
        st, js, raw = c.call("POST", f"/v1/instances/{inst['id']}/{what}?wait=soon")
        assert st == 400 and js["error"]["code"] == "invalid_query" and "wait" in js["error"]["message"], raw
        assert c.get(inst["id"])["run"] == 1


def test_restart_running_exec_instance():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    inst = _sleeper(c, "rs", tok)
    pid1 = h.procs_with_arg(tok)
    st, js, raw = _post(c, inst["id"], "restart")
    assert st == 200, raw
    assert js["state"] == "running" and js["run"] == 1 and js["node"] == inst["node"], js
    _check_trace(js)
    h.expect_procs([tok], 1, "one process after the restart")
    assert h.procs_with_arg(tok) != pid1, "the old process was not replaced"
    # the node's resources were held once through it
    assert _node_used(c, inst["node"]) == (0.01, 1), c.nodes()
    # twice more, back to back: the last run wins, one process in the end
    st, _, raw = _post(c, inst["id"], "restart", "")
    assert st == 202, raw
    st, js, raw = _post(c, inst["id"], "restart", "")
    assert st == 409 and js["error"]["code"] == "invalid_state", raw  # on its way to running
    js = c.wait_state(inst["id"], "running")
    assert js["run"] == 2, js
    h.expect_procs([tok], 1, "one process after two restarts")
    # restarting a stopped one is a start
    c.delete(inst["id"], wait=True)
    st, js, raw = _post(c, inst["id"], "restart")
    assert st == 200 and js["state"] == "running" and js["run"] == 3, raw
    c.stop_and_remove(inst["id"])


def test_cli_start_and_restart():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    inst = _sleeper(c, "cli", tok)
    p = h.cli(["restart", inst["id"], "--core", d.url])
    assert p.returncode == 0 and "running (run 1)" in p.stdout and "total (core)" in p.stdout, (p.stdout, p.stderr)
    p = h.cli(["start", inst["id"], "--core", d.url])
    assert p.returncode == 1 and "running already" in p.stderr, (p.returncode, p.stderr)
    p = h.cli(["stop", inst["id"], "--core", d.url])
    assert p.returncode == 0, p.stderr
    p = h.cli(["start", inst["id"], "--core", d.url])
    assert p.returncode == 0 and "running (run 2)" in p.stdout, (p.stdout, p.stderr)
    p = h.cli(["start", "nope", "--core", d.url])
    assert p.returncode == 2, (p.returncode, p.stderr)
    h.expect_procs([tok], 1, "after the CLI's start")
    c.stop_and_remove(inst["id"])


def _split(name, extra=()):
    core = h.start_core(extra=extra)
    c = core.client()
    node = h.start_node(core.url, name=name)
    return core, c, node


def test_core_killed_during_restart():
    """kill -9 of the core right after it stored the restart: its record says the new run;
    once it is back the node gets that start (again) and one process runs, in the new run."""
    core, c, node = _split("n-kc")
    tok = h.unique_arg()
    inst = _sleeper(c, "kc", tok)
    st, js, raw = _post(c, inst["id"], "restart", "")
    assert st == 202 and js["run"] == 1, raw
    core.stop(sig=signal.SIGKILL)
    core2 = h.start_core(port=core.port, data_dir=core.data_dir)
    c2 = core2.client()
    js = c2.wait_state(inst["id"], "running", timeout=30)
    assert js["run"] == 1 and js["node"] == inst["node"], js
    h.expect_procs([tok], 1, "one process after the core's restart")
    c2.stop_and_remove(inst["id"])
    h.expect_procs([tok], 0, "removed")


def test_node_killed_during_restart():
    """kill -9 of the node right after the restart was asked: the node comes back, the core
    sends the new run's start again, and one process runs in the new run."""
    core, c, node = _split("n-kn")
    tok = h.unique_arg()
    inst = _sleeper(c, "kn", tok)
    st, js, raw = _post(c, inst["id"], "restart", "")
    assert st == 202, raw
    node.stop(sig=signal.SIGKILL)
    h.start_node(core.url, name="n-kn", data_dir=node.data_dir, run_dir=node.run_dir)
    js = c.wait_state(inst["id"], "running", timeout=30)
    assert js["run"] == 1 and js["node"] == inst["node"], js
    h.expect_procs([tok], 1, "one process after the node's restart")
    # and a start again after a node restart with the instance stopped
    st, js, raw = c.delete(inst["id"], wait=True)
    assert st == 200, raw
    st, js, raw = _post(c, inst["id"], "start")
    assert st == 200 and js["run"] == 2 and js["state"] == "running", raw
    c.stop_and_remove(inst["id"])
    h.expect_procs([tok], 0, "removed")


def test_start_refused_when_node_down():
    core, c, node = _split("n-down", extra=["--heartbeat-timeout", "2"])
    tok = h.unique_arg()
    inst = _sleeper(c, "nd", tok)
    c.delete(inst["id"], wait=True)
    node.stop()
    h.wait_until(lambda: all(n["state"] == "down" for n in c.nodes()), 30, "the node seen down")
    st, js, raw = _post(c, inst["id"], "start", "")
    assert st == 409 and js["error"]["code"] == "node_down" and "n-down" in js["error"]["message"], raw
    assert c.get(inst["id"])["state"] == "stopped" and c.get(inst["id"])["run"] == 0


def test_qemu_start_again():
    d = h.start_dev()
    c = d.client()
    h.qemu_with_hello(d)
    inst = c.create({"name": "vm", "driver": "qemu", "image": "hello", "config": {"accel": "tcg"},
                     "ready": {"serial": READY}}, timeout=60)[0]
    st, js, raw = c.delete(inst["id"], wait=True, timeout=30)
    assert st == 200 and js["state"] == "stopped", raw
    # started again: QEMU spawned anew; ready once the guest prints its marker again
    st, js, raw = _post(c, inst["id"], "start", "?wait=ready&timeout=60")
    assert st == 200 and js["state"] == "running" and js["ready"] is True and js["run"] == 1, raw
    _check_trace(js)
    assert "boot" in js["trace"]["phases"], js["trace"]
    # restarted while it runs: the same again
    st, js, raw = _post(c, inst["id"], "restart", "?wait=ready&timeout=60")
    assert st == 200 and js["state"] == "running" and js["ready"] is True and js["run"] == 2, raw
    st, _, body = c.call("GET", f"/v1/instances/{inst['id']}/logs?stream=serial")
    assert st == 200 and READY.encode() in body, body[-300:]
    c.stop_and_remove(inst["id"], timeout=30)
