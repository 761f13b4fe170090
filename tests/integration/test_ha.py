"""Several cores over one PostgreSQL (issue 14): one leads, the others follow.

Three cores on one private PostgreSQL (pgserver.py); a node registered with the leader.
- a create through a follower runs on the node (the follower stores it pending and wakes
  the leader, which places it); a follower redirects nodes' routes to the leader (307);
- the leader killed (-9): a follower leads (GET /v1/health), every instance answered 2xx is
  still there and running, none runs twice (the node, given the new leader's URL, adopts
  its instances);
- the new leader stopped (SIGSTOP): the last follower fences it and leads; the old one,
  continued (SIGCONT), finds another led meanwhile and exits (status 75) without acting.

A node given `--core FOLLOWER,LEADER`: the follower redirects it (307) to the leader, where
it registers; the leader killed (-9), it registers with the new leader (the follower, next
in its list) and keeps its instances: the same processes, none started again.

The fault suite's invariants with three cores (test_leader_kill9_under_load,
test_leader_stalled_under_load): 8 clients create (each with its Idempotency-Key, retried
on another core with the same key when one does not answer) and delete through all three
cores while the leader is killed -9, or stalled (SIGSTOP), again and again. A stalled one
is fenced by a follower, which leads; continued (SIGCONT), it must exit 75 at once, and
PostgreSQL's own audit log (every changing statement, with its session's name) must show
nothing written by it after the fence. Restarted each time, it comes back as a follower.
Then every create answered 2xx has one record, running unless deleted; no key has two
records; nothing nobody asked for exists; one process per running instance and none for
anything else; the node, never restarted, is ready at the last leader; deleting
everything leaves nothing.

`microvim push --core LEADER,FOLLOWER` with the leader killed -9 mid-run: push moves to
the follower and sends what got no answer again there (creates with their Idempotency-Key):
every instance of the run is running, once.

The OpenStack façade of a follower: servers created, stopped (os-stop) and deleted there
run, stop and go on the leader's node (the follower asks the leader, as native deletes do);
with a shared data dir, a flavor made on one core's façade and an image record made on the
other's are seen by both.

Two --auth cores sharing a database (and a data dir, for the blobs): what one writes of
the catalog every core keeps in memory (projects, users, tokens, images, join tokens) the
other sees within a bounded wait, and a token revoked on one is refused by both.
"""

import collections
import hashlib
import json
import os
import random
import secrets
import signal
import subprocess
import threading
import time
import urllib.request

import faultlib as fl
import harness as h
from pgserver import PgServer, bindir

EXIT_LOST = 75  # core/leader.h LEADER_EXIT_LOST
ELECTION_TIMEOUT = 10  # bound of the waits; the election itself takes ~0.1 s (kill) or ~1.5 s (stop)
CATALOG_TIMEOUT = 5  # bound of the waits for another core's change; it takes a loop turn or two


def _server(audit=False):
    if not bindir():
        raise AssertionError("no PostgreSQL binaries (scripts/install-deps installs postgresql)")
    srv = PgServer(audit=audit)
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


def _status(core, method, path, body=None, token=None):
    hdrs = {"Content-Type": "application/octet-stream"} if isinstance(body, bytes) else None
    st, _, raw = h.call(core.url, method, path, body, token=token or core.token, headers=hdrs, timeout=5)
    return st, raw


def _expect(core, method, path, body, want, what, token=None):
    st, raw = _status(core, method, path, body, token)
    assert st == want, f"{what}: {method} {path} on {core.url}: {st} {raw[:300]!r}"


def _sees(core, path, want, what, token=None):
    """Bounded wait until GET path on core answers want (another core's write reached it)."""
    h.wait_until(lambda: _status(core, "GET", path, token=token)[0] == want, CATALOG_TIMEOUT,
                 f"{what} ({core.url} GET {path} -> {want})", interval=0.05)


def test_catalog_on_every_core():
    srv = _server()
    url = h.pg_database_url(srv.url, "catalog")
    a = h.start_auth_core(extra=["--store", url])
    b = h.start_auth_core(extra=["--store", url], data_dir=a.data_dir)
    assert b.token == a.token

    # a project, a user and its token made on A work on B
    _expect(a, "POST", "/v1/projects", {"name": "blue"}, 201, "project on A")
    _sees(b, "/v1/projects/blue", 200, "B sees A's project")
    _expect(a, "POST", "/v1/users", {"name": "bm", "project": "blue", "role": "member"}, 201, "user on A")
    st, js, raw = h.call(a.url, "POST", "/v1/tokens", {"user": "bm"}, token=a.token)
    assert st == 201, raw
    member, member_id = js["token"], js["id"]
    _sees(b, "/v1/instances", 200, "B takes A's new token", token=member)

    # an image made on B (its blob in the shared data dir) is A's too, for blue's member
    blob = secrets.token_bytes(64)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    _expect(b, "PUT", f"/v1/blobs/{digest}", blob, 201, "blob on B", token=member)
    _expect(b, "POST", "/v1/images", {"name": "img-blue", "kernel": digest}, 201, "image on B", token=member)
    _sees(a, "/v1/images/img-blue", 200, "A sees B's image", token=member)

    # a join token made on A is listed on B
    st, js, raw = h.call(a.url, "POST", "/v1/node-tokens", {"expires": "1h"}, token=a.token)
    assert st == 201, raw
    join_id = js["id"]
    h.wait_until(lambda: join_id in [j["id"] for j in (h.call(b.url, "GET", "/v1/node-tokens", token=b.token)[1]
                                                      or {}).get("node_tokens", [])],
                 CATALOG_TIMEOUT, "B lists A's join token", interval=0.05)

    # the member's token revoked on B: refused on A as on B
    _expect(b, "DELETE", f"/v1/tokens/{member_id}", None, 204, "revoke on B")
    _expect(b, "GET", "/v1/instances", None, 401, "the revoked token on B", token=member)
    _sees(a, "/v1/instances", 401, "A refuses the token revoked on B", token=member)

    # the image removed on A, then the project with its user: gone on B
    _expect(a, "DELETE", "/v1/images/img-blue", None, 204, "image removed on A")
    _sees(b, "/v1/images/img-blue", 404, "B forgets the image removed on A")
    _expect(a, "DELETE", "/v1/projects/blue", None, 204, "project removed on A")
    _sees(b, "/v1/projects/blue", 404, "B forgets the project removed on A")
    st, js, raw = h.call(b.url, "GET", "/v1/users", token=b.token)
    assert st == 200 and "bm" not in [u["name"] for u in js["users"]], raw[:300]
    b.stop()
    a.stop()


test_catalog_on_every_core.budget = 60


NOVA = "/compute/v2.1"


def _keystone_token(os_url):
    """A token of the façade (a loopback core without --auth takes any password)."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"name": "Default"}, "password": "any"}}}}}
    r = urllib.request.urlopen(urllib.request.Request(
        os_url + "/identity/v3/auth/tokens", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}), timeout=10)
    return r.headers["X-Subject-Token"]


def test_openstack_writes_on_a_follower():
    srv = _server()
    url = h.pg_database_url(srv.url, "facade")
    leader_port, port = h.free_port(), h.free_port()
    leader = h.start_core(extra=["--store", url, "--openstack-listen", f"127.0.0.1:{leader_port}"])
    _wait_leader([leader], "the first core leading")
    # the cores share the data dir: the façade's flavors and image records are files there
    follower = h.start_core(data_dir=leader.data_dir,
                            extra=["--store", url, "--openstack-listen", f"127.0.0.1:{port}"])
    assert _role(follower) == "follower"
    node = h.start_node(leader.url)
    os_url, leader_os = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{leader_port}"
    auth = {"X-Auth-Token": _keystone_token(os_url)}
    leader_auth = {"X-Auth-Token": _keystone_token(leader_os)}

    def call(method, path, b=None):
        return h.call(os_url, method, path, b, headers=auth, timeout=15)

    st, js, raw = call("POST", f"{NOVA}/flavors", {"flavor": {"name": "f1", "ram": 16, "vcpus": 1, "disk": 0}})
    assert st == 200, raw[:300]
    flavor = js["flavor"]["id"]
    tok = h.unique_arg()
    specs = {"microvim:driver": "exec", "microvim:vcpus": "0.01",
             "microvim:config": json.dumps({"command": "/bin/sleep", "args": [tok]})}
    st, js, raw = call("POST", f"{NOVA}/flavors/{flavor}/os-extra_specs", {"extra_specs": specs})
    assert st == 200, raw[:300]
    # the follower's flavor on the leader's façade, the leader's image record on the follower's
    st, js, raw = h.call(leader_os, "GET", f"{NOVA}/flavors/{flavor}/os-extra_specs", headers=leader_auth)
    assert st == 200 and js["extra_specs"]["microvim:driver"] == "exec", (st, raw[:300])
    st, js, raw = h.call(leader_os, "POST", "/image/v2/images", {"name": "ha-queued", "disk_format": "aki"},
                         headers=leader_auth)
    assert st == 201, raw[:300]
    st, js, raw = call("GET", f"/image/v2/images/{js['id']}")
    assert st == 200 and js["name"] == "ha-queued", (st, raw[:300])
    servers = []
    for name in ("ha-os-stop", "ha-os-delete"):
        st, js, raw = call("POST", f"{NOVA}/servers",
                           {"server": {"name": name, "imageRef": "", "flavorRef": flavor, "networks": "none"}})
        assert st == 202, f"a server created on the follower: {st} {raw[:300]!r}"
        servers.append(js["server"]["id"])

    def status(sid):
        st, js, raw = call("GET", f"{NOVA}/servers/{sid}")
        return js["server"]["status"] if st == 200 else st
    for sid in servers:
        h.wait_until(lambda: status(sid) == "ACTIVE", 10, f"server {sid} ACTIVE through the follower")
    h.expect_procs([tok], 2, "both servers' processes on the leader's node")

    st, _, raw = call("POST", f"{NOVA}/servers/{servers[0]}/action", {"os-stop": None})
    assert st == 202, f"os-stop on the follower: {st} {raw[:300]!r}"
    h.wait_until(lambda: status(servers[0]) == "SHUTOFF", 10, "the server stopped through the follower: SHUTOFF")
    st, _, raw = call("DELETE", f"{NOVA}/servers/{servers[1]}")
    assert st == 204, f"a server deleted on the follower: {st} {raw[:300]!r}"
    h.wait_until(lambda: status(servers[1]) == 404, 10, "the deleted server gone (404) through the follower")
    h.wait_until(lambda: leader.client().list() and len(leader.client().list()) == 1, 10,
                 "the leader keeps only the stopped server")
    st, _, raw = call("DELETE", f"{NOVA}/servers/{servers[0]}")
    assert st == 204, f"the stopped server deleted on the follower: {st} {raw[:300]!r}"
    h.wait_until(lambda: status(servers[0]) == 404, 10, "the stopped server gone (404) through the follower")
    h.wait_until(lambda: h.count_procs([tok]) == 0, 5, "no server process left")
    assert leader.client().list() == [], leader.client().list()
    node.stop()
    follower.stop()
    leader.stop()


test_openstack_writes_on_a_follower.budget = 60


def test_node_with_a_list_follows_the_leader():
    srv = _server()
    url = h.pg_database_url(srv.url, "nodelist")
    first = h.start_core(extra=["--store", url])
    _wait_leader([first], "the first core leading")
    second = h.start_core(extra=["--store", url])
    assert _role(second) == "follower"
    # the follower first in the list: its 307 sends the node to the leader
    node = h.start_node(f"{second.url},{first.url}", wait=False)
    h.wait_until(lambda: h._node_ready(second.url, None, node.name) is True, ELECTION_TIMEOUT,
                 "the node ready at the leader (GET /v1/nodes through the follower: 307)")
    assert f"the core at {second.url} is a follower: moving to the leader at {first.url}" in node.log_text(), \
        node.log_tail()
    tok = h.unique_arg()
    made = []
    for i, core in enumerate((first, second)):
        body = h.exec_body(f"ha-list-{i}", [tok])
        st, js, raw = h.call(core.url, "POST", "/v1/instances?wait=running", body)
        assert st == 201, (st, raw[:300])
        made.append(h.instances_of(body, js, raw)[0])
    pids = h.expect_procs([tok], 2, "both instances' processes on the node")

    first.stop(signal.SIGKILL, expect_alive=True)
    _wait_leader([second], "the follower leading after the leader's kill -9")
    h.wait_until(lambda: h._node_ready(second.url, None, node.name) is True, ELECTION_TIMEOUT + 20,
                 "the node registered with the new leader (next in its --core list)")
    assert node.alive(), "the node kept running through the failover"
    _check_all_there(second, made, tok)
    assert h.expect_procs([tok], 2, "the same processes") == pids, "an instance was started again"
    body = h.exec_body("ha-list-after", [tok])
    st, js, raw = h.call(second.url, "POST", "/v1/instances?wait=running", body)
    assert st == 201 and h.instances_of(body, js, raw)[0]["state"] == "running", (st, raw[:300])
    made.append(h.instances_of(body, js, raw)[0])
    for m in made:
        second.client().stop_and_remove(m["id"])
    node.stop()
    second.stop()


test_node_with_a_list_follows_the_leader.budget = 90


def test_leader_watch():
    """GET /v1/leader (core/leaderwatch.h) on a follower: answered at once when the caller
    knows another leader than the one there is, after its wait when it knows the right one;
    bad waits refused. Then a node listing three cores, its leader stalled (SIGSTOP): the
    watch it keeps on a follower moves it to the new leader (its log says so), not a
    heartbeat's timeout."""
    srv = _server()
    url = h.pg_database_url(srv.url, "watch")
    cores = [h.start_core(extra=["--store", url])]
    _wait_leader(cores, "the first core leading")
    cores += [h.start_core(extra=["--store", url]) for _ in range(2)]
    first, follower = cores[0], cores[1]
    h.wait_until(lambda: _role(follower) == "follower" and h.call(follower.url, "GET", "/v1/health")[1].get(
        "leader") == first.url, ELECTION_TIMEOUT, "the follower knowing the leader")

    st, js, raw = h.call(follower.url, "GET", "/v1/leader?known=http://127.0.0.1:1&wait=30", timeout=10)
    assert st == 200 and js == {"leader": first.url, "role": "follower", "core": follower.url}, (st, raw[:300])
    st, js, raw = h.call(follower.url, "GET", f"/v1/leader?known={first.url}&wait=0.3", timeout=10)
    assert st == 200 and js["leader"] == first.url, (st, raw[:300])  # no news: answered at its wait
    for bad in ("wait=abc", "wait=61", "wait=-1"):
        st, js, raw = h.call(follower.url, "GET", f"/v1/leader?{bad}")
        assert st == 400 and js["error"]["code"], (bad, st, raw[:300])

    node = h.start_node(",".join(c.url for c in cores), wait=False)
    h.wait_until(lambda: h._node_ready(first.url, None, node.name) is True, ELECTION_TIMEOUT,
                 "the node ready at the leader")
    tok = h.unique_arg()
    body = h.exec_body("watched", [tok])
    st, js, raw = h.call(first.url, "POST", "/v1/instances?wait=running", body)
    assert st == 201, (st, raw[:300])
    made = [h.instances_of(body, js, raw)[0]]
    pids = h.expect_procs([tok], 1, "the instance's process")

    os.kill(first.pid, signal.SIGSTOP)
    try:
        new = _wait_leader(cores[1:], "a follower leading after the leader's SIGSTOP")
        h.wait_until(lambda: h._node_ready(new.url, None, node.name) is True, ELECTION_TIMEOUT + 20,
                     "the node registered with the new leader")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    rc = first.proc.wait(timeout=ELECTION_TIMEOUT)
    assert rc == EXIT_LOST, f"the stalled leader, continued, should exit {EXIT_LOST}: {rc}\n{first.log_tail()}"
    first.stop(expect_alive=False)
    text = node.log_text()
    assert f"says {new.url} leads now (was {first.url}): moving there" in text, node.log_tail(30)
    assert f"no answer from the core at {first.url}" not in text, \
        f"the node left the stalled leader on a timeout, not on the watch:\n{node.log_tail(30)}"
    _check_all_there(new, made, tok)
    assert h.expect_procs([tok], 1, "the same process") == pids, "the instance was started again"
    for m in made:
        new.client().stop_and_remove(m["id"])
    node.stop()
    for c in cores[1:]:
        c.stop()


test_leader_watch.budget = 90


# ---- the fault suite's invariants with three cores ------------------------------------------

SMALL = {"vcpus": 0.01, "memory_mb": 1}
SETTLED = {"running", "failed", "exited", "stopped", "lost"}


class _Item:
    def __init__(self, i, tok, delete):
        self.i, self.tok, self.delete = i, tok, delete
        self.name = f"ha{i:04d}-{tok}"
        self.key = f"ha-{tok}-{i}"
        self.statuses, self.ids = [], []
        self.final = self.code = None
        self.deleted = False     # both deletes answered: it must be gone
        self.delete_log = []


def _retrying(cores, start, fn, deadline):
    """fn(url) -> (status, js); on no answer or 5xx the next core (bounded, with backoff)."""
    backoff, k = 0.05, start
    while True:
        st, js = fn(cores[k % len(cores)].url)
        if (st != 0 and st < 500) or time.monotonic() > deadline:
            return st, js
        k += 1
        time.sleep(backoff)
        backoff = min(backoff * 2, 0.5)


def _client_work(cores, it, deadline):
    body = h.exec_body(it.name, [it.tok], resources=dict(SMALL))
    q = "?wait=running&timeout=3" if it.i % 2 else ""

    def create(url):
        st, js, _ = h.call(url, "POST", "/v1/instances" + q, body, headers={"Idempotency-Key": it.key}, timeout=8)
        it.statuses.append(st)
        return st, js
    while True:
        st, js = _retrying(cores, it.i, create, deadline)
        it.final = st
        it.code = ((js or {}).get("error") or {}).get("code") if isinstance(js, dict) else None
        if not (st == 422 and it.code in ("no_node", "no_capacity")) or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # the node is re-registering with the new leader
    if not 200 <= st < 300:
        return
    it.ids.append(js.get("id") if isinstance(js, dict) else f"<bad answer {js!r}>")
    if not it.delete:
        return
    iid = it.ids[0]
    # the API's delete: stop (wait until stopped), then DELETE again removes the record (204);
    # a core that still sees it stopping answers 200/202 (not yet ended) or 409: asked again
    for path, done in ((f"/v1/instances/{iid}?wait=stopped&timeout=5", lambda st, js: st in (204, 404) or (
                           st == 200 and isinstance(js, dict) and js.get("state") in ("stopped", "exited", "failed"))),
                       (f"/v1/instances/{iid}", lambda st, js: st in (204, 404))):
        def delete(url):
            st, js, _ = h.call(url, "DELETE", path, timeout=8)
            it.delete_log.append((path, st))
            return st, js
        while True:
            st, js = _retrying(cores, it.i + 1, delete, deadline)
            if done(st, js):
                break
            if st not in (200, 202, 409) or time.monotonic() > deadline:
                return
            time.sleep(0.1)
    it.deleted = True


class _KillFault:
    """kill -9 of the leader; restarted, it comes back as a follower."""
    name, rounds, gap_s = "kill -9", 3, 2.0  # gap_s: load before each round

    def __init__(self, srv):
        self.srv = srv

    def inject(self, tl, leader, cores):
        tl.note(f"kill -9 of the leader {leader.url} (pid {leader.pid})")
        fl.kill9(leader)
        new = _wait_leader([c for c in cores if c is not leader], "a new leader after the kill")
        tl.note(f"{new.url} leads; restarting {leader.url} (a follower now)")


class _StallFault:
    """SIGSTOP of the leader: a follower fences it (its lease lapsed) and leads; continued
    (SIGCONT), the stalled core must exit EXIT_LOST at once, having written nothing in the
    database after the fence ended its sessions (the server's audit log says so: every
    changing statement with its session's application_name); restarted, a follower."""
    name, rounds, gap_s = "SIGSTOP", 2, 1.5  # a round takes ~1.5 s more: both amid the creates

    def __init__(self, srv):
        self.srv = srv

    def _leader_app(self, leader):
        app, url = self.srv.psql("SELECT app || ' ' || url FROM ha_leader WHERE one = 1", db="chaos").split()
        assert url == leader.url, f"the lease names {url}, not the leader found {leader.url}"
        return app

    def inject(self, tl, leader, cores):
        app = self._leader_app(leader)
        log_from = len(self.srv.log())
        tl.note(f"SIGSTOP of the leader {leader.url} (pid {leader.pid}, sessions {app})")
        os.kill(leader.pid, signal.SIGSTOP)
        try:
            new = _wait_leader([c for c in cores if c is not leader], "a follower leading after the SIGSTOP")
        finally:
            os.kill(leader.pid, signal.SIGCONT)
        tl.note(f"{new.url} leads; SIGCONT of {leader.url}")
        try:
            rc = leader.proc.wait(timeout=ELECTION_TIMEOUT * h.load_factor())
        except subprocess.TimeoutExpired:
            rc = None
        leader.stop(signal.SIGKILL, expect_alive=False)
        assert rc == EXIT_LOST, (f"the stalled leader, continued, exited {rc}, want {EXIT_LOST}:\n"
                                 f"{leader.log_tail(15)}")
        bad = _writes_after_fence(self.srv.log()[log_from:], app)
        assert not bad, "the stalled leader wrote after it was fenced:\n  " + "\n  ".join(bad[:10])
        tl.note(f"{leader.url} exited {rc}, nothing written after its fence; restarting it (a follower now)")


def _writes_after_fence(log, app):
    """The changing statements of sessions named app that the server's audit log has after
    the first of them ended (the fence)."""
    fenced, bad = False, []
    for line in log.splitlines():
        if f" app={app} " not in line:
            continue
        if "terminating connection due to administrator command" in line or "disconnection:" in line:
            fenced = True
        elif fenced and ("statement: " in line or " execute " in line):
            bad.append(line[:300])
    return bad


def _fault_leaders(tl, cores, fault, errors, stop_evt):
    try:
        for k in range(fault.rounds):
            if stop_evt.wait(fault.gap_s):
                return
            leader = _wait_leader([c for c in cores if c.alive()], f"a leader before {fault.name} {k + 1}")
            fault.inject(tl, leader, cores)
            fl.restart(leader)
            fl.wait_core_ready(leader)
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(f"{type(e).__name__}: {e}")


def _leader_faults_under_load(fault_cls):
    seed = fl.seed_from_env()
    rng = random.Random(seed)
    n_items, threads = (80, 6) if fl.ASAN else (160, 8)
    srv = _server(audit=True)
    fault = fault_cls(srv)
    tl = fl.Timeline("ha-chaos")
    tl.note(f"seed {seed}; {n_items} creates by {threads} clients over three cores, {fault.rounds} x "
            f"{fault.name} of the leader")
    url = h.pg_database_url(srv.url, "chaos")
    cores = [h.start_core(extra=["--store", url]) for _ in range(3)]
    leader = _wait_leader(cores, "one leader among three cores")
    node = h.start_node(",".join(c.url for c in cores), wait=False)
    h.wait_until(lambda: h._node_ready(leader.url, None, node.name) is True, ELECTION_TIMEOUT,
                 "the node ready at the leader")
    items = [_Item(i, h.unique_arg(), rng.random() < 0.3) for i in range(n_items)]
    push_s = 8.0  # creates paced over this long, so that every fault falls amid them
    t_start = time.monotonic()
    deadline = t_start + 90
    nxt, lock, errors, stop_evt = [0], threading.Lock(), [], threading.Event()

    def worker():
        while True:
            with lock:
                k = nxt[0]
                nxt[0] += 1
            if k >= n_items:
                return
            delay = t_start + k * push_s / n_items - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            _client_work(cores, items[k], deadline)

    chaos = threading.Thread(target=_fault_leaders, args=(tl, cores, fault, errors, stop_evt),
                             daemon=True)
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    chaos.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join(max(1.0, deadline + 10 - time.monotonic()))
    stop_evt.set()
    chaos.join(30)
    assert not chaos.is_alive() and not any(w.is_alive() for w in workers), f"clients or chaos stuck\n{tl.text()}"
    assert not errors, f"seed {seed}: the fault injection failed: {errors}\n{tl.text()}"
    hist = collections.Counter(str(s) for it in items for s in it.statuses)
    tl.note(f"clients: {sum(1 for it in items if it.ids)}/{n_items} answered 2xx, "
            f"{sum(1 for it in items if it.deleted)} deleted; statuses {dict(hist)}")

    leader = _wait_leader(cores, "a leader after the chaos")
    client = leader.client()
    # the node, never restarted, follows the leader of the moment (its --core list)
    assert node.alive(), f"the node died amid the failovers:\n{node.log_tail(20)}"
    h.wait_until(lambda: h._node_ready(leader.url, None, node.name) is True, ELECTION_TIMEOUT + 20,
                 f"the node ready at the last leader {leader.url}")
    deleted_ids = {it.ids[0] for it in items if it.deleted}
    box = {}

    def converged():
        insts = client.list()
        box["insts"] = insts
        return all(i["state"] in SETTLED for i in insts) and not deleted_ids & {i["id"] for i in insts}
    try:
        h.wait_until(converged, 30, "every instance settled, every deleted one gone", 0.25)
    except AssertionError:
        insts = box.get("insts", [])
        raise AssertionError(
            f"seed {seed}: not settled within 30 s at the leader {leader.url}: states "
            f"{dict(collections.Counter(i['state'] for i in insts))}; unsettled "
            f"{[(i['id'], i['state'], i.get('node')) for i in insts if i['state'] not in SETTLED][:10]}; deleted yet "
            f"there {[(i['id'], i['state']) for i in insts if i['id'] in deleted_ids][:10]}; their deletes "
            f"{[(it.ids[0], it.statuses, it.delete_log) for it in items if it.deleted and it.ids[0] in {i['id'] for i in insts}][:5]}"
            f"\n{tl.text()}") from None
    insts = box["insts"]
    by_id, by_name = {i["id"]: i for i in insts}, {i["name"]: i for i in insts}
    names = {it.name for it in items}
    violations = []
    for it in items:
        inst = by_name.get(it.name)
        if it.ids:
            iid = it.ids[0]
            if it.deleted:
                if inst is not None:
                    violations.append(f"{it.name} ({iid}): deleted (answers {it.delete_log}) yet still {inst['state']}")
                continue
            if by_id.get(iid) is None:
                violations.append(f"{it.name}: answered 2xx as {iid} (statuses {it.statuses}) but lost")
            elif by_id[iid]["state"] != "running" and not (by_id[iid]["state"] == "failed" and by_id[iid].get("error")):
                violations.append(f"{it.name} ({iid}) ended {by_id[iid]['state']}, want running")
        elif inst is not None and it.final not in (0, None) and it.final < 500:
            violations.append(f"{it.name}: refused for good ({it.final} {it.code}) yet stored as {inst['id']}")
    violations += [f"an instance nobody asked for: {i['id']} {i['name']}" for i in insts if i["name"] not in names]
    # one Idempotency-Key, one record: retried on another core, a create must not be made twice
    twice = collections.Counter(i["name"] for i in insts)
    violations += [f"{name}: {n} records for one Idempotency-Key" for name, n in twice.items() if n > 1]
    running = {i["name"] for i in insts if i["state"] == "running"}
    box2 = {}

    def procs_ok():
        found = h.procs_matching([it.tok for it in items])
        box2["bad"] = [f"{it.name}: {len(found[it.tok])} processes, want {int(it.name in running)}"
                       for it in items if len(found[it.tok]) != int(it.name in running)]
        return not box2["bad"]
    try:
        h.wait_until(procs_ok, 10, "one process per running instance, none else", 0.2)
    except AssertionError:
        violations += box2["bad"][:30]
    tl.note(f"store: {len(insts)} instances {dict(collections.Counter(i['state'] for i in insts))}; "
            f"{len(violations)} violations")
    assert not violations, f"seed {seed}: " + "\n  ".join(violations[:40]) + f"\n{tl.text()}"

    for i in insts:
        client.stop_and_remove(i["id"])
    h.wait_until(lambda: not client.list() and h.count_procs([it.tok for it in items]) == 0, 20,
                 "nothing left after deleting everything")
    node.stop()
    for c in cores:
        c.stop()


def test_leader_kill9_under_load():
    _leader_faults_under_load(_KillFault)


test_leader_kill9_under_load.budget = 150


def test_leader_stalled_under_load():
    _leader_faults_under_load(_StallFault)


test_leader_stalled_under_load.budget = 150


def test_push_fails_over():
    srv = _server()
    url = h.pg_database_url(srv.url, "push")
    first = h.start_core(extra=["--store", url])
    _wait_leader([first], "the first core leading")
    second = h.start_core(extra=["--store", url])
    node = h.start_node(f"{first.url},{second.url}", wait=False)
    h.wait_until(lambda: h._node_ready(first.url, None, node.name) is True, ELECTION_TIMEOUT, "the node ready")
    tok, n = h.unique_arg(), 60
    out = os.path.join(h.tmpdir("mv-push-"), "push.jsonl")
    env = dict(os.environ)
    env.pop("MICROVIM_CORE", None)
    push = subprocess.Popen(
        [h.BIN, "push", "--core", f"{first.url},{second.url}", "--rate", "20", "--count", str(n), "--keep",
         "--config", json.dumps({"command": "/bin/sleep", "args": [tok]}), "--vcpus", "0.01", "--memory-mb", "1",
         "--name-prefix", "hapush", "--timeout", "10", "--out", out, "--quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True)
    try:
        h.wait_until(lambda: h.count_procs([tok]) >= 10 or push.poll() is not None, 20, "push under way")
        assert push.poll() is None, f"push ended before the kill: {push.communicate()}"
        first.stop(signal.SIGKILL, expect_alive=True)
        stdout, stderr = push.communicate(timeout=90)
    finally:
        if push.poll() is None:
            os.kill(push.pid, signal.SIGKILL)
            push.communicate(timeout=10)
    assert push.returncode == 0, f"push exited {push.returncode}:\n{stdout[-2000:]}\n{stderr[-2000:]}"
    assert f"{first.url}: no answer; going on with {second.url}" in stderr, stderr[-2000:]
    recs = [json.loads(line) for line in open(out).read().splitlines()]
    assert len(recs) == n and all(r["state"] == "running" for r in recs), [r for r in recs if r["state"] != "running"][:5]
    _wait_leader([second], "the follower leading")
    insts = [i for i in second.client().list() if i["name"].startswith("hapush-")]
    assert sorted(i["id"] for i in insts) == sorted(r["id"] for r in recs), "push's records and the store differ"
    h.wait_until(lambda: all(second.client().get(i["id"])["state"] == "running" for i in insts), 20,
                 "every pushed instance running at the new leader")
    h.expect_procs([tok], n, "one process per pushed instance")
    for i in insts:
        second.client().stop_and_remove(i["id"])
    node.stop()
    second.stop()


test_push_fails_over.budget = 90
