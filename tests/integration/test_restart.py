"""A core restart keeps every record; the node reconnects and work goes on.
Separate `microvim core` and `microvim node` processes, SIGTERM and SIGKILL variants."""

import datetime
import signal
import time

import harness as h


def _snapshot(c):
    return {i["id"]: (i["name"], i["state"], i.get("node")) for i in c.list()}


def _restart_case(sig):
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="n-restart")
    node_id = [n for n in c.nodes() if n["name"] == "n-restart"][0]["id"]
    tok = h.unique_arg()
    insts = c.create(h.exec_body("keep", [tok], count=5), wait=True)
    assert len(insts) == 5 and all(i["state"] == "running" for i in insts), \
        f"5 instances not running: {[i['state'] for i in insts]}"
    # one that has ended, so more than one state is kept
    ended = c.create(h.exec_body("gone", [], command="/bin/true"))[0]
    c.wait_state(ended["id"], "exited", 10)
    before = _snapshot(c)
    assert len(before) == 6, before

    core.stop(sig=sig)
    assert not core.alive()
    restart_wall = datetime.datetime.now(datetime.timezone.utc)
    core2 = h.start_core(port=core.port, data_dir=core.data_dir)
    c2 = core2.client()
    after = _snapshot(c2)
    assert after == before, (f"records changed across a core restart ({signal.Signals(sig).name}):\n"
                             f" before {before}\n after  {after}")
    for i in insts:
        g = c2.get(i["id"])
        t0, t1 = i.get("trace") or {}, g.get("trace") or {}
        p0, p1 = t0.get("phases") or {}, t1.get("phases") or {}
        assert p1 and set(p0) == set(p1) and all(abs(p0[k] - p1[k]) < 0.0015 for k in p0) \
            and abs(t0.get("total_ms", 0) - t1.get("total_ms", -1)) < 0.0015, \
            f"trace changed across the restart: {t0} -> {t1}"

    # the node comes back: ready, same id, a heartbeat after the restart
    def node_back():
        for n in c2.nodes():
            if n["name"] == "n-restart" and n["state"] == "ready":
                try:
                    hb = h.parse_time(n["last_heartbeat"])
                except (KeyError, TypeError, ValueError):
                    return None
                if hb >= restart_wall - datetime.timedelta(seconds=1):
                    return n
        return None
    n = h.wait_until(node_back, 20, "the node ready again with a heartbeat after the restart", 0.1)
    assert n["id"] == node_id, f"node came back as {n['id']}, was {node_id}"
    ready = [x for x in c2.nodes() if x["name"] == "n-restart" and x["state"] == "ready"]
    assert len(ready) == 1, f"the node is listed {len(ready)} times as ready: {ready}"

    # a new create works (the node's long-poll is back)
    new = c2.create(h.exec_body("after", [tok]), wait=True)[0]
    assert new["state"] == "running", f"create after restart: {new}"
    assert new["node"] == node_id
    # the instances kept running through the core's restart
    time.sleep(0.5)
    still = _snapshot(c2)
    for iid, (name, state, nd) in before.items():
        assert still.get(iid) == (name, state, nd), \
            f"{name} changed after the node reconnected: {before[iid]} -> {still.get(iid)}"
    h.expect_procs(tok, 6, "sleep processes (5 kept + 1 new)")

    for i in insts + [new]:
        c2.stop_and_remove(i["id"])
    assert not h.procs_with_arg(tok), "processes left after deleting everything"
    node.stop()
    core2.stop()


def test_core_restart_sigterm():
    _restart_case(signal.SIGTERM)


test_core_restart_sigterm.budget = 90


def test_core_restart_sigkill():
    _restart_case(signal.SIGKILL)


test_core_restart_sigkill.budget = 90
