"""Instance lifecycle through `microvim dev`: create (wait=running) with its phase trace,
show, list, filter, delete (202 then stopped; wait=stopped 200), remove (204), 404;
processes that end by themselves (exited / failed); 200 instances one by one and through
`count`; node accounting; health and metrics."""

import re
import time

import harness as h

PHASES = ("accept", "schedule", "dispatch", "prepare", "network", "spawn", "notify")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SMALL = {"vcpus": 0.01, "memory_mb": 1}


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_trace(inst):
    tr = inst.get("trace")
    assert isinstance(tr, dict), f"running instance has no trace: {inst}"
    phases = tr.get("phases")
    assert isinstance(phases, dict), f"trace has no phases object: {tr}"
    missing = [p for p in PHASES if p not in phases]
    assert not missing, f"trace.phases misses {missing}: {phases}"
    for p, v in phases.items():
        assert _num(v) and v >= 0, f"phase {p} = {v!r} is not a number >= 0"
    total, over = tr.get("total_ms"), tr.get("overhead_ms")
    assert _num(total) and total >= 0, f"total_ms = {total!r}"
    assert _num(over) and over >= 0, f"overhead_ms = {over!r}"
    assert over <= total, f"overhead_ms {over} > total_ms {total}"
    # docs/architecture.md: the phases add up to total; overhead = total - spawn - boot.
    s = sum(phases.values())
    assert abs(s - total) <= 0.01, f"phases add up to {s:.4f} ms, total_ms is {total}: {phases}"
    expect_over = total - phases["spawn"] - phases.get("boot", 0)
    assert abs(over - expect_over) <= 0.01, \
        f"overhead_ms {over} != total - spawn - boot = {expect_over:.4f}"


def check_instance_shape(inst, name=None):
    for k in ("id", "name", "driver", "state", "desired", "node", "spec", "created_at", "updated_at"):
        assert k in inst, f"instance has no {k!r}: {inst}"
    assert isinstance(inst["id"], str) and inst["id"], inst
    if name is not None:
        assert inst["name"] == name, f"name {inst['name']!r} != {name!r}"
    assert inst["driver"] == "exec", inst
    assert isinstance(inst["spec"], dict), inst
    for k in ("created_at", "updated_at"):
        assert isinstance(inst[k], str) and ISO.match(inst[k]), f"{k} is not ISO 8601: {inst[k]!r}"


def test_create_show_list_delete():
    d = h.start_dev()
    c = d.client()
    tok_a, tok_b = h.unique_arg(), h.unique_arg()

    t0 = time.monotonic()
    insts = c.create(h.exec_body("fw1", [tok_a]), wait=True, timeout=10)
    elapsed_ms = (time.monotonic() - t0) * 1000
    assert len(insts) == 1, insts
    a = insts[0]
    check_instance_shape(a, "fw1")
    assert a["state"] == "running", f"wait=running answered state {a['state']!r}: {a}"
    assert a["desired"] == "running", a
    assert isinstance(a["node"], str) and a["node"], f"running instance has no node: {a}"
    check_trace(a)
    assert a["trace"]["total_ms"] <= elapsed_ms + 1, \
        f"server total_ms {a['trace']['total_ms']} exceeds what the client saw ({elapsed_ms:.1f} ms)"
    h.expect_procs(tok_a, 1, f"/bin/sleep {tok_a} of the running instance")
    assert a["spec"].get("config", {}).get("command") == "/bin/sleep", a["spec"]

    # the node the instance is on is listed
    nodes = {n["id"]: n for n in c.nodes()}
    assert a["node"] in nodes, f"instance node {a['node']} not in GET /v1/nodes {list(nodes)}"

    # show
    g = c.get(a["id"])
    check_instance_shape(g, "fw1")
    assert g["id"] == a["id"] and g["state"] == "running", g
    check_trace(g)

    # list and filter
    ids = [i["id"] for i in c.list()]
    assert a["id"] in ids, f"{a['id']} not in GET /v1/instances: {ids}"
    assert a["id"] in [i["id"] for i in c.list("running")], "not in ?state=running"
    assert a["id"] not in [i["id"] for i in c.list("stopped")], "a running instance in ?state=stopped"

    # DELETE without wait: 202 with the instance, then it becomes stopped
    st, js, raw = c.delete(a["id"])
    assert st == 202, f"DELETE of a running instance -> {st} (want 202): {raw[:400]!r}"
    assert isinstance(js, dict) and js.get("id") == a["id"], f"202 body is not the instance: {raw[:400]!r}"
    s = c.wait_state(a["id"], "stopped", timeout=10)
    assert s["desired"] == "stopped", f"desired after DELETE: {s['desired']!r}"
    h.wait_until(lambda: not h.procs_with_arg(tok_a), 2, f"/bin/sleep {tok_a} gone")
    assert a["id"] in [i["id"] for i in c.list("stopped")], "stopped instance not in ?state=stopped"
    assert a["id"] not in [i["id"] for i in c.list("running")], "stopped instance in ?state=running"

    # a second instance, DELETE ?wait=stopped -> 200 state stopped
    b = c.create(h.exec_body("fw2", [tok_b]), wait=True)[0]
    assert b["state"] == "running", b
    assert b["id"] != a["id"]
    st, js, raw = c.delete(b["id"], wait=True, timeout=10)
    assert st == 200, f"DELETE ?wait=stopped -> {st} (want 200): {raw[:400]!r}"
    assert js and js.get("state") == "stopped" and js.get("id") == b["id"], raw[:400]
    assert not h.procs_with_arg(tok_b), f"/bin/sleep {tok_b} still runs after state stopped"

    # "count": 1 answers a list of one
    tok_c = h.unique_arg()
    one = c.create(h.exec_body("fw3", [tok_c], count=1), wait=True)
    assert len(one) == 1 and one[0]["name"] == "fw3" and one[0]["state"] == "running", one
    c.stop_and_remove(one[0]["id"])

    # ended instances are removed by DELETE: 204, then 404
    for iid in (a["id"], b["id"]):
        st, js, raw = c.delete(iid)
        assert st == 204, f"DELETE of a stopped instance -> {st} (want 204): {raw[:400]!r}"
        assert raw == b"", f"204 with a body: {raw[:200]!r}"
        st, js, raw = c.call("GET", f"/v1/instances/{iid}")
        assert st == 404, f"GET removed instance -> {st}: {raw[:300]!r}"
        assert js and js.get("error", {}).get("code") == "not_found", raw[:300]
        st, js, raw = c.delete(iid)
        assert st == 404, f"DELETE removed instance -> {st}: {raw[:300]!r}"
    assert c.list() == [], f"store not empty after removing everything: {c.list()}"


def test_exit_codes():
    d = h.start_dev()
    c = d.client()
    t = c.create(h.exec_body("ok", [], command="/bin/true"), wait=True)[0]
    f = c.create(h.exec_body("bad", [], command="/bin/false"), wait=True)[0]
    assert t["state"] in ("running", "exited"), f"/bin/true answered {t['state']!r}: {t}"
    assert f["state"] in ("running", "failed"), f"/bin/false answered {f['state']!r}: {f}"
    t = c.wait_state(t["id"], ("exited", "failed", "stopped", "lost"), timeout=10)
    f = c.wait_state(f["id"], ("exited", "failed", "stopped", "lost"), timeout=10)
    assert t["state"] == "exited", f"/bin/true ended {t['state']!r}: {t}"
    assert t.get("exit_code") == 0, f"/bin/true exit_code {t.get('exit_code')!r}"
    assert f["state"] == "failed", f"/bin/false ended {f['state']!r}: {f}"
    assert f.get("exit_code") == 1, f"/bin/false exit_code {f.get('exit_code')!r}"
    assert f["id"] in [i["id"] for i in c.list("failed")]
    assert t["id"] in [i["id"] for i in c.list("exited")]
    # ended: DELETE removes at once
    for iid in (t["id"], f["id"]):
        st, _, raw = c.delete(iid)
        assert st == 204, f"DELETE of an ended instance -> {st}: {raw[:300]!r}"


def test_two_hundred_one_by_one():
    d = h.start_dev()
    c = d.client()
    base = int(h.unique_arg())
    toks = [str(base + i) for i in range(200)]
    for t in toks:
        h.register_token(t)
    ids = []
    for i, t in enumerate(toks):
        inst = c.create(h.exec_body(f"one-{i}", [t], resources=SMALL), wait=True, timeout=10)
        assert len(inst) == 1 and inst[0]["state"] == "running", \
            f"instance {i}: {inst[0].get('state') if inst else inst}: {inst}"
        ids.append(inst[0]["id"])
    assert len(set(ids)) == 200, "ids are not unique"
    running = {i["id"] for i in c.list("running")}
    assert set(ids) <= running, f"{len(set(ids) - running)} of 200 not listed as running"
    h.expect_procs(toks, 200, "sleep processes of 200 running instances")
    for iid in ids:
        c.stop_and_remove(iid)
    h.wait_until(lambda: h.count_procs(toks) == 0, 3, "all 200 processes gone")
    assert c.list() == [], "instances left in the store"


test_two_hundred_one_by_one.budget = 150


def test_two_hundred_by_count():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    insts = c.create(h.exec_body("bulk", [tok], resources=SMALL, count=200), wait=True, timeout=60)
    assert len(insts) == 200, f"count 200 answered {len(insts)} instances"
    names = sorted(i["name"] for i in insts)
    assert names == sorted(f"bulk-{k}" for k in range(1, 201)), \
        f"names are not bulk-1..bulk-200: {names[:5]}..."
    states = {}
    for i in insts:
        states[i["state"]] = states.get(i["state"], 0) + 1
    assert states == {"running": 200}, f"states after wait=running: {states}"
    assert len({i["id"] for i in insts}) == 200, "ids are not unique"
    h.expect_procs(tok, 200, "sleep processes of 200 running instances")
    listed = {i["id"] for i in c.list("running")}
    assert {i["id"] for i in insts} <= listed
    for i in insts:
        st, js, raw = c.delete(i["id"], wait=True, timeout=10)
        assert st == 200 and js and js.get("state") == "stopped", \
            f"DELETE {i['name']} ?wait=stopped -> {st}: {raw[:300]!r}"
    h.wait_until(lambda: not h.procs_with_arg(tok), 3, "all 200 processes gone")
    assert c.list("running") == [], "instances still running"
    for i in insts:
        st, _, raw = c.delete(i["id"])
        assert st == 204, f"DELETE stopped {i['name']} -> {st}: {raw[:200]!r}"


test_two_hundred_by_count.budget = 150


def test_node_accounting_and_defaults():
    d = h.start_dev()
    c = d.client()
    before = c.nodes()
    assert len(before) == 1, f"dev runs one node: {before}"
    n0 = before[0]
    for k in ("id", "name", "state", "drivers", "labels", "resources", "allocated", "instances",
              "last_heartbeat"):
        assert k in n0, f"node has no {k!r}: {n0}"
    assert "exec" in n0["drivers"], f"dev node with --exec-allow does not offer exec: {n0['drivers']}"
    assert n0["resources"]["vcpus"] > 0 and n0["resources"]["memory_mb"] > 0, n0
    tok = h.unique_arg()
    inst = c.create(h.exec_body("acct", [tok], resources={"vcpus": 0.5, "memory_mb": 64}))[0]
    dflt = c.create(h.exec_body("dflt", [tok]))[0]
    assert dflt["spec"].get("resources", {"vcpus": 0.1, "memory_mb": 16}) == \
        {"vcpus": 0.1, "memory_mb": 16}, f"defaults are not 0.1 vCPU / 16 MiB: {dflt['spec']}"
    st, n1, raw = c.call("GET", f"/v1/nodes/{n0['id']}")
    assert st == 200, f"GET /v1/nodes/{{id}} -> {st}: {raw[:300]!r}"
    dv = n1["allocated"]["vcpus"] - n0["allocated"]["vcpus"]
    dm = n1["allocated"]["memory_mb"] - n0["allocated"]["memory_mb"]
    assert abs(dv - 0.6) < 1e-6 and dm == 80, f"allocated grew by {dv} vCPU / {dm} MiB (want 0.6 / 80)"
    assert n1["instances"] - n0["instances"] == 2, f"instances {n0['instances']} -> {n1['instances']}"
    c.stop_and_remove(inst["id"])
    c.stop_and_remove(dflt["id"])
    st, n2, raw = c.call("GET", f"/v1/nodes/{n0['id']}")
    assert abs(n2["allocated"]["vcpus"] - n0["allocated"]["vcpus"]) < 1e-6 and \
        n2["allocated"]["memory_mb"] == n0["allocated"]["memory_mb"], \
        f"allocation not released: before {n0['allocated']} after {n2['allocated']}"
    st, js, raw = c.call("GET", "/v1/nodes/0123456789abcdef")
    assert st == 404, f"GET unknown node -> {st}"


def test_health_and_metrics():
    d = h.start_dev()
    c = d.client()
    st, js, raw = c.call("GET", "/v1/health")
    assert st == 200 and js.get("status") == "ok", raw[:300]
    assert js.get("nodes_ready") == 1 and js.get("instances") == 0 and "version" in js, js
    c.create(h.exec_body("m1", [h.unique_arg()]))
    st, js, raw = c.call("GET", "/v1/health")
    assert js.get("instances") == 1, f"health after one create: {js}"
    st, _, raw = c.call("GET", "/metrics")
    assert st == 200, f"GET /metrics -> {st}"
    text = raw.decode()
    for needle in ('microvim_phase_seconds_bucket', 'phase="spawn"', 'driver="exec"',
                   'microvim_instances{', 'state="running"', 'microvim_nodes{',
                   'microvim_http_requests_total'):
        assert needle in text, f"/metrics lacks {needle!r}"
