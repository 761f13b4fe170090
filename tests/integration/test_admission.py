"""Admission control: `core --max-inflight N` bounds the instances the core holds pending,
scheduled or starting. A create past it is refused with 503 `saturated` (JSON error,
Retry-After) and changes nothing; a batch is all or nothing; a batch larger than N is 422;
an Idempotency-Key replay of an accepted create still gets its answer. Capacity frees as
instances start (or fail, or are lost), and the count survives a core restart.

Instances are kept in flight by a stand-in node: the test registers a node through the API
and then plays it (long-poll for assignments, reports) or keeps silent, so nothing depends
on how fast a real node spawns. A real `microvim node` takes over in the last test."""
import http.client
import json
import re
import secrets
import urllib.parse

import faultlib as fl
import harness as h

SMALL = {"vcpus": 0.01, "memory_mb": 1}
IN_FLIGHT = ("pending", "scheduled", "starting")


def _body(name, **extra):
    b = h.exec_body(name, ["600"], resources=dict(SMALL))
    b.update(extra)
    return b


def _post(url, body, headers=None, query=""):
    """POST /v1/instances; returns (status, headers as a dict with lower-case keys, JSON)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    try:
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        conn.request("POST", "/v1/instances" + query, json.dumps(body).encode(), hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def _assert_saturated(st, hdrs, js, in_flight, adds, limit):
    assert st == 503, f"a create past --max-inflight must be 503: {st} {js!r}"
    assert hdrs.get("retry-after") == "1", f"503 saturated needs Retry-After: {hdrs!r}"
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    err = js["error"]
    assert err["code"] == "saturated", js
    msg = err["message"]
    # the message says how many are in flight, what this request adds, the limit and the flag
    for part in (f"{in_flight} instances are in flight", f"adds {adds}", f"limit of {limit}",
                 "--max-inflight", "nothing was created", "retry"):
        assert part in msg, f"{part!r} missing from the 503 message: {msg!r}"


def _metrics(c):
    st, _, raw = c.call("GET", "/metrics")
    assert st == 200, raw[:200]
    text = raw.decode()
    vals = {}
    for m in re.finditer(r'^(microvim_[a-z_]+)(?:\{state="([a-z]+)"\})? (\S+)$', text, re.M):
        vals[(m.group(1), m.group(2))] = float(m.group(3))
    return vals


def _in_flight(c):
    """The core's gauge, checked against its own per-state gauges (a scan)."""
    v = _metrics(c)
    gauge = v[("microvim_instances_inflight", None)]
    by_state = sum(v[("microvim_instances", s)] for s in IN_FLIGHT)
    assert gauge == by_state, f"microvim_instances_inflight {gauge} != pending+scheduled+starting {by_state}"
    return int(gauge)


class FakeNode:
    """A node played by the test over the node API: it receives assignments only when asked
    and reports what the test says."""

    def __init__(self, url, name="standin"):
        self.url = url
        self.id = secrets.token_hex(8)
        self.seq = 0
        body = {"id": self.id, "name": name, "resources": {"cpus": 2, "memory_mb": 4096},
                "drivers": {"exec": {"allow": ["/bin/sleep"]}}, "instances": []}
        st, js, raw = h.call(url, "POST", "/v1/nodes/register", body)
        assert st == 200, f"register the stand-in node: {st} {raw[:300]!r}"
        self.token = js["token"]

    def take(self):
        """Fetches (and so acknowledges up to the last seen) assignments without waiting."""
        st, js, raw = h.call(self.url, "GET", f"/v1/nodes/{self.id}/assignments?after={self.seq}&wait=0",
                             token=self.token)
        assert st == 200, f"assignments: {st} {raw[:300]!r}"
        got = js["assignments"]
        if got:
            self.seq = got[-1]["seq"]
        return got

    def report(self, states):
        body = {"reports": [{"id": i, "state": s} for i, s in states.items()]}
        st, _, raw = h.call(self.url, "POST", f"/v1/nodes/{self.id}/reports", body, token=self.token)
        assert st == 200, f"reports: {st} {raw[:300]!r}"


def _names(c):
    return {i["name"] for i in c.list()}


def _core_with_standin(limit, *extra):
    """A core with --max-inflight LIMIT and a stand-in node registered."""
    core = h.start_core(extra=["--max-inflight", str(limit), *extra])
    return core, core.client(), FakeNode(core.url)


def test_saturated_create_is_refused_and_changes_nothing():
    # the stand-in takes the instances and never starts them: they stay scheduled
    core, c, _ = _core_with_standin(5)
    es = h.EventStream(core.url).start()
    try:
        first = c.create(_body("batch", count=3), wait=False)
        assert [i["state"] for i in first] == ["scheduled"] * 3, first
        assert _in_flight(c) == 3

        # a batch of 3 would make 6: refused whole, none of it stored
        st, hdrs, js = _post(core.url, _body("over", count=3))
        _assert_saturated(st, hdrs, js, 3, 3, 5)
        # a batch of 2 fits exactly
        c.create(_body("fits", count=2), wait=False)
        assert _in_flight(c) == 5
        # full: a single create and a waiting one are refused at once
        for q in ("", "?wait=running&timeout=5"):
            st, hdrs, js = _post(core.url, _body("single"), query=q)
            _assert_saturated(st, hdrs, js, 5, 1, 5)
        # a batch larger than the limit could never fit: not "retry later" but 422
        st, hdrs, js = _post(core.url, _body("huge", count=6))
        assert st == 422 and js["error"]["code"] == "over_max_inflight", (st, js)
        assert "--max-inflight 5" in js["error"]["message"] and "retry-after" not in hdrs, (js, hdrs)

        names = _names(c)
        assert names == {"batch-1", "batch-2", "batch-3", "fits-1", "fits-2"}, names
        # a barrier: the stream is in order, so once a later event arrives every event the
        # refused creates could have caused would have arrived too
        FakeNode(core.url, name="barrier")
        es.wait_for(lambda e: e.get("type") == "node" and e.get("name") == "barrier", 5,
                    "an event after the refusals")
        accepted = [e for e in es.events() if e.get("type") == "instance"]
        assert len(accepted) == 10, f"pending + scheduled of 5 accepted instances: {accepted}"
        refused = [e for e in es.events() if str(e.get("name", "")).startswith(("over", "single", "huge"))]
        assert not refused, f"refused creates emitted events: {refused}"
        v = _metrics(c)
        assert v[("microvim_instances_inflight_limit", None)] == 5, v
        assert v[("microvim_admission_refused_total", None)] == 3, v
    finally:
        es.close()


def test_idempotent_replay_answered_when_saturated():
    core, c, node = _core_with_standin(2)
    body = _body("idem", count=2)
    st, _, js = _post(core.url, body, headers={"Idempotency-Key": "k-accepted"})
    assert st == 201, js
    ids = [i["id"] for i in js["instances"]]
    assert _in_flight(c) == 2

    # saturated now; the replay still gets the first answer (200, same ids), creating nothing
    for _ in range(2):
        st, hdrs, js = _post(core.url, body, headers={"Idempotency-Key": "k-accepted"})
        assert st == 200, f"replay while saturated: {st} {js!r}"
        assert [i["id"] for i in js["instances"]] == ids, js
    # the same key with another body is still a conflict, not a 503
    st, _, js = _post(core.url, _body("other"), headers={"Idempotency-Key": "k-accepted"})
    assert st == 409 and js["error"]["code"] == "idempotency_conflict", (st, js)
    # a new key is refused, and the refusal does not use the key up
    later = _body("later")
    st, hdrs, js = _post(core.url, later, headers={"Idempotency-Key": "k-new"})
    _assert_saturated(st, hdrs, js, 2, 1, 2)
    assert len(c.list()) == 2

    # the stop of a scheduled instance is asked of its node, and it stays in flight until
    # the node says it stopped
    st, _, raw = c.delete(ids[0])
    assert st == 202 and _in_flight(c) == 2, (st, raw[:200])
    assert any(a["op"] == "stop" and a["instance"]["id"] == ids[0] for a in node.take())
    node.report({ids[0]: "stopped"})
    assert _in_flight(c) == 1
    st, _, js = _post(core.url, later, headers={"Idempotency-Key": "k-new"})
    assert st == 201, f"the refused key, once there is room: {st} {js!r}"
    new_id = js["id"]
    st, hdrs, js = _post(core.url, later, headers={"Idempotency-Key": "k-new"})
    assert st == 200 and js["id"] == new_id, (st, js)
    assert _in_flight(c) == 2


def test_capacity_frees_as_instances_start():
    core, c, node = _core_with_standin(3)
    insts = c.create(_body("a", count=3), wait=False)
    ids = [i["id"] for i in insts]
    st, hdrs, js = _post(core.url, _body("b"))
    _assert_saturated(st, hdrs, js, 3, 1, 3)

    # the node takes its assignments: starting is still in flight
    got = node.take()
    assert sorted(a["instance"]["id"] for a in got if a["op"] == "start") == sorted(ids), got
    node.take()  # acknowledges them
    h.wait_until(lambda: all(c.get(i)["state"] == "starting" for i in ids), 5, "starting")
    assert _in_flight(c) == 3
    st, hdrs, js = _post(core.url, _body("b"))
    _assert_saturated(st, hdrs, js, 3, 1, 3)

    # one runs, one fails: two slots
    node.report({ids[0]: "running"})
    node.report({ids[1]: "failed"})
    assert _in_flight(c) == 1
    c.create(_body("b", count=2), wait=False)
    assert _in_flight(c) == 3
    st, hdrs, js = _post(core.url, _body("c"))
    _assert_saturated(st, hdrs, js, 3, 1, 3)

    # one exits and a running one is deleted: exited frees, running was never counted
    node.report({ids[2]: "exited"})
    assert _in_flight(c) == 2
    st, _, raw = c.delete(ids[0])
    assert st == 202 and _in_flight(c) == 2, (st, raw[:200])
    c.create(_body("c"), wait=False)
    assert _in_flight(c) == 3

    # the ended ones removed: nothing changes in flight
    for i in ids[1:]:
        st, _, raw = c.delete(i)
        assert st == 204, raw[:200]
    assert _in_flight(c) == 3


def test_stop_of_a_pending_instance_and_lost_node_and_real_node():
    # heartbeat timeout 3 s: the stand-in (which never heartbeats) is declared down soon,
    # while a real node (heartbeat every second) stays up
    core, c, _ = _core_with_standin(2, "--heartbeat-timeout", "3")
    keep = c.create(_body("onlost", restart="on-lost"), wait=False)[0]
    gone = c.create(_body("plain"), wait=False)[0]
    assert _in_flight(c) == 2
    st, hdrs, js = _post(core.url, _body("x"))
    _assert_saturated(st, hdrs, js, 2, 1, 2)

    # the silent node is lost: "plain" is lost (ended, frees its slot); "onlost" goes back
    # to pending to be placed again, and pending is in flight
    c.wait_state(gone["id"], "lost", 15)
    c.wait_state(keep["id"], "pending", 5)
    assert _in_flight(c) == 1

    # the stop of a pending instance ends it at once
    st, js, raw = c.delete(keep["id"])
    assert st == 200 and js["state"] == "stopped", (st, raw[:200])
    assert _in_flight(c) == 0

    # a real node: instances start and leave flight; a full batch is admitted again
    node = h.start_node(core.url, name="real")
    tok = h.unique_arg()
    made = c.create(h.exec_body("real", [tok], resources=dict(SMALL), count=2), wait=True)
    assert [i["state"] for i in made] == ["running"] * 2, made
    assert _in_flight(c) == 0
    h.expect_procs(tok, 2, "two running sleeps")
    made2 = c.create(h.exec_body("again", [tok], resources=dict(SMALL), count=2), wait=True)
    assert [i["state"] for i in made2] == ["running"] * 2, made2
    for i in made + made2:
        c.stop_and_remove(i["id"])
    assert _in_flight(c) == 0
    node.stop()


test_stop_of_a_pending_instance_and_lost_node_and_real_node.budget = 90


def test_in_flight_survives_core_restart():
    core, c, _ = _core_with_standin(2)
    c.create(_body("r", count=2), wait=False)
    assert _in_flight(c) == 2
    rc = fl.sigterm(core)
    assert rc in (0, -15), f"core exit status on SIGTERM: {rc}"
    fl.restart(core)
    fl.wait_core_ready(core)
    # loaded from the store: still two scheduled, so still full
    assert _in_flight(c) == 2
    st, hdrs, js = _post(core.url, _body("s"))
    _assert_saturated(st, hdrs, js, 2, 1, 2)
    assert _names(c) == {"r-1", "r-2"}


def test_no_limit_and_bad_values():
    core, c, _ = _core_with_standin(0)
    c.create(_body("many", count=50), wait=False)
    assert _in_flight(c) == 50
    assert _metrics(c)[("microvim_instances_inflight_limit", None)] == 0

    for cmd in ("core", "dev"):
        for bad in ("-1", "abc", "1.5", "", " 3", "3x", "99999999999"):
            work = h.tmpdir("mv-bad-")
            p = h.cli([cmd, "--listen", f"127.0.0.1:{h.free_port()}", "--data-dir", work,
                       "--max-inflight", bad], timeout=10)
            assert p.returncode == 2, f"{cmd} --max-inflight {bad!r}: exit {p.returncode}: {p.stderr!r}"
            assert "--max-inflight" in p.stderr and "whole number" in p.stderr, p.stderr
    p = h.cli(["core", "--help"])
    assert "--max-inflight N" in p.stdout, p.stdout
