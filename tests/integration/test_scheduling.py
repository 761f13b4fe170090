"""The scheduler seen from outside: label constraints, binpack (default) and spread,
capacity = host CPUs x --cpu-ratio, nodes going down."""

import os
import signal

import harness as h


def _node_ids(c):
    return {n["name"]: n["id"] for n in c.nodes()}


def test_labels_place_on_matching_node():
    core = h.start_core()
    c = core.client()
    h.start_node(core.url, name="r1", labels={"rack": "r1"})
    h.start_node(core.url, name="r2", labels={"rack": "r2", "zone": "z"})
    ids = _node_ids(c)
    tok = h.unique_arg()
    for i in range(3):
        inst = c.create(h.exec_body(f"lab{i}", [tok], labels={"rack": "r2"}))[0]
        assert inst["node"] == ids["r2"], f"labels rack=r2 placed on {inst['node']} (r2 is {ids['r2']})"
    inst = c.create(h.exec_body("both", [tok], labels={"rack": "r2", "zone": "z"}))[0]
    assert inst["node"] == ids["r2"]
    st, js, raw = c.call("POST", "/v1/instances", h.exec_body("none", [tok], labels={"rack": "r1", "zone": "z"}))
    assert st == 422 and js["error"]["code"] == "no_node", f"labels matching no single node: {st} {raw[:300]!r}"
    nodes = {n["name"]: n for n in c.nodes()}
    assert nodes["r2"]["labels"] == {"rack": "r2", "zone": "z"}, nodes["r2"]
    assert nodes["r2"]["instances"] == 4 and nodes["r1"]["instances"] == 0, \
        {k: v["instances"] for k, v in nodes.items()}


def test_binpack_default_and_spread():
    core = h.start_core()
    c = core.client()
    na = h.start_node(core.url, name="a")
    nb = h.start_node(core.url, name="b")
    tok = h.unique_arg()
    insts = c.create(h.exec_body("bp", [tok], count=6))
    used = {i["node"] for i in insts}
    assert len(used) == 1, f"binpack (default) used {len(used)} nodes for 6 small instances"
    na.stop()
    nb.stop()
    core.stop()

    core = h.start_core(extra=["--schedule", "spread"])
    c = core.client()
    h.start_node(core.url, name="c")
    h.start_node(core.url, name="d")
    tok2 = h.unique_arg()
    insts = c.create(h.exec_body("sp", [tok2], count=6))
    per = {}
    for i in insts:
        per[i["node"]] = per.get(i["node"], 0) + 1
    assert sorted(per.values()) == [3, 3], f"spread placed {per}"


def test_capacity_is_cpus_times_ratio():
    core = h.start_core(extra=["--cpu-ratio", "1"])
    c = core.client()
    h.start_node(core.url, name="small")
    n = [x for x in c.nodes() if x["name"] == "small"][0]
    cpus = os.cpu_count()
    cap = n["resources"]["vcpus"]
    assert abs(cap - cpus) < 1e-6, f"--cpu-ratio 1 on a {cpus}-CPU host offers {cap} vCPUs"
    tok = h.unique_arg()
    big = c.create(h.exec_body("big", [tok], resources={"vcpus": cap - 0.5}))[0]
    assert big["state"] == "running"
    st, js, raw = c.call("POST", "/v1/instances", h.exec_body("over", [tok], resources={"vcpus": 1}))
    assert st == 422 and js["error"]["code"] == "no_capacity", f"over capacity: {st} {raw[:300]!r}"
    fit = c.create(h.exec_body("fit", [tok], resources={"vcpus": 0.5}))[0]
    assert fit["state"] == "running"
    st, js, raw = c.call("POST", "/v1/instances", h.exec_body("over2", [tok], resources={"vcpus": 0.001}))
    assert st == 422 and js["error"]["code"] == "no_capacity", f"full node: {st} {raw[:300]!r}"
    # an ended instance gives its share back
    c.stop_and_remove(big["id"])
    again = c.create(h.exec_body("again", [tok], resources={"vcpus": 1}))[0]
    assert again["state"] == "running"


def test_node_down_marks_instances_lost():
    core = h.start_core(extra=["--heartbeat-timeout", "1"])
    c = core.client()
    node = h.start_node(core.url, name="mortal")
    tok = h.unique_arg()
    inst = c.create(h.exec_body("onnode", [tok]))[0]
    es = h.EventStream(core.url).start()
    try:
        node.stop(sig=signal.SIGKILL)
        nid = inst["node"]
        h.wait_until(lambda: [n for n in c.nodes() if n["id"] == nid and n["state"] == "down"], 10,
                     "the node marked down after --heartbeat-timeout 1")
        g = c.wait_state(inst["id"], "lost", 10)
        assert g["state"] == "lost"
        st, js, raw = c.call("POST", "/v1/instances", h.exec_body("nowhere", [tok]))
        assert st == 422 and js["error"]["code"] == "no_node", f"create with no ready node: {st} {raw[:300]!r}"
        es.wait_for(lambda e: e.get("type") == "node" and e.get("state") == "down", 5, "a node 'down' event")
        es.wait_for(lambda e: e.get("id") == inst["id"] and e.get("state") == "lost", 5, "a 'lost' event")
        st, _, raw = c.delete(inst["id"])
        assert st == 204, f"DELETE of a lost instance -> {st} (an ended state): {raw[:200]!r}"
    finally:
        es.close()


test_node_down_marks_instances_lost.budget = 60


def test_node_ready_event():
    core = h.start_core()
    es = h.EventStream(core.url).start()
    try:
        h.start_node(core.url, name="newcomer")
        evs = es.wait_for(lambda e: e.get("type") == "node" and e.get("state") == "ready", 5,
                          "a node 'ready' event")
        e = evs[0]
        for k in ("seq", "time", "type", "id", "state"):
            assert k in e, f"node event lacks {k!r}: {e}"
        assert e["id"] == _node_ids(core.client())["newcomer"], e
    finally:
        es.close()
