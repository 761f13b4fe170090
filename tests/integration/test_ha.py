"""Several cores over one PostgreSQL (issue 14): one leads, the others follow.

Three cores on one private PostgreSQL (pgserver.py); a node registered with the leader.
- a create through a follower runs on the node (the follower stores it pending and wakes
  the leader, which places it); a follower redirects nodes' routes to the leader (307);
- the leader killed (-9): a follower leads (GET /v1/health), every instance answered 2xx is
  still there and running, none runs twice (the node, given the new leader's URL, adopts
  its instances);
- the new leader stopped (SIGSTOP): the last follower fences it and leads; the old one,
  continued (SIGCONT), finds another led meanwhile and exits (status 75) without acting.
"""

import os
import signal

import harness as h
from pgserver import PgServer, bindir

EXIT_LOST = 75  # core/leader.h LEADER_EXIT_LOST
ELECTION_TIMEOUT = 10  # bound of the waits; the election itself takes ~0.1 s (kill) or ~1.5 s (stop)


def _server():
    if not bindir():
        raise AssertionError("no PostgreSQL binaries (scripts/install-deps installs postgresql)")
    srv = PgServer()
    h.on_teardown(srv.stop)
    return srv.start()


def _role(core):
    st, js, _ = h.call(core.url, "GET", "/v1/health", timeout=3)
    return js.get("role") if st == 200 and js else None


def _wait_leader(cores, what):
    got = []

    def check():
        got[:] = [c for c in cores if _role(c) == "leader"]
        return len(got) == 1
    h.wait_until(check, ELECTION_TIMEOUT, what, interval=0.05)
    return got[0]


def _move_node(node, core):
    """The node given another core's URL (until nodes take a list of cores): restarted with
    its data and run dirs, it registers there and adopts what it runs."""
    node.stop()
    return h.start_node(core.url, name=node.name, data_dir=node.data_dir, run_dir=node.run_dir)


def _check_all_there(core, made, tok):
    got = {i["id"]: i for i in core.client().list()}
    for m in made:
        assert m["id"] in got, f"{m['name']} (answered 2xx) lost: {sorted(got)}"
    h.wait_until(lambda: all(core.client().get(m["id"])["state"] == "running" for m in made), 10,
                 "every instance running after the failover")
    # each instance's process exactly once on the node: nothing started twice
    h.expect_procs([tok], len(made), "instance processes (one each)")


def test_three_cores_failover():
    srv = _server()
    url = h.pg_database_url(srv.url, "ha")
    cores = [h.start_core(extra=["--store", url]) for _ in range(3)]
    leader = _wait_leader(cores, "one leader among three cores")
    followers = [c for c in cores if c is not leader]
    st, js, _ = h.call(followers[0].url, "GET", "/v1/health")
    assert js["role"] == "follower" and js["leader"] == leader.url, js
    node = h.start_node(leader.url)

    # a follower redirects what the leader's memory answers (nodes' routes, the nodes'
    # liveness) there: 307, which the client follows to the node ready at the leader
    st, js, raw = h.call(followers[0].url, "GET", "/v1/nodes")
    assert st == 200 and [n["state"] for n in js["nodes"]] == ["ready"], (st, raw[:200])

    tok = h.unique_arg()
    made = []
    for i, f in enumerate(followers + followers):
        body = h.exec_body(f"ha-{i}", [tok])
        st, js, raw = h.call(f.url, "POST", "/v1/instances?wait=running", body,
                             headers={"Idempotency-Key": f"ha-key-{i}"})
        assert st == 201, (st, raw[:300])
        inst = h.instances_of(body, js, raw)[0]
        assert inst["state"] == "running" and inst["node"], inst
        made.append(inst)

    # the leader killed: a follower leads, nothing lost, nothing twice
    leader.stop(signal.SIGKILL, expect_alive=True)
    alive = followers
    leader = _wait_leader(alive, "a follower leading after the leader's kill -9")
    node = _move_node(node, leader)
    _check_all_there(leader, made, tok)
    other = [c for c in alive if c is not leader][0]
    body = h.exec_body("ha-after-kill", [tok])
    st, js, raw = h.call(other.url, "POST", "/v1/instances?wait=running", body)
    assert st == 201 and h.instances_of(body, js, raw)[0]["state"] == "running", (st, raw[:300])
    made.append(h.instances_of(body, js, raw)[0])

    # the new leader stalled: the last follower fences it and leads
    os.kill(leader.pid, signal.SIGSTOP)
    try:
        new = _wait_leader([other], "the last follower leading after the leader's SIGSTOP")
    finally:
        os.kill(leader.pid, signal.SIGCONT)
    rc = leader.proc.wait(timeout=ELECTION_TIMEOUT)
    assert rc == EXIT_LOST, f"the stalled leader, continued, should exit {EXIT_LOST}: {rc}\n{leader.log_tail()}"
    leader.stop(expect_alive=False)
    assert _role(new) == "leader"
    node = _move_node(node, new)
    _check_all_there(new, made, tok)

    for m in made:
        new.client().stop_and_remove(m["id"])
    node.stop()
    new.stop()


test_three_cores_failover.budget = 90
