"""The core's store in PostgreSQL, against private servers this file starts
(tests/integration/pgserver.py: initdb + pg_ctl as an unprivileged user, stopped by PID).

- two cores on one database: the second follows (GET /v1/health); once the first is
  killed (-9), the second leads and finds every instance;
- PostgreSQL's own failover: a primary + a hot standby (streaming replication, synchronous
  so that a commit answered is on both), the core given both hosts with
  target_session_attrs=read-write; the primary is killed (-9) and the standby promoted with
  pg_ctl promote: the core reconnects to it, every instance answered 2xx is still there,
  and creates go on (clients retry with the same Idempotency-Key while the database is away);
- tenancy in PostgreSQL: a `--auth` core starts on it (it makes the admin project at the first
  start) and a project made over HTTP is there after a restart, the admin token still good;
- a name another core took a moment ago (a row the leader has not heard of yet): the create
  is a 409 that changed nothing, alone or in a batch (whose rows written before are taken
  back), and the leader goes on leading.
"""

import signal
import time

import harness as h
from pgserver import PgServer, bindir


def _server(**kw):
    if not bindir():
        raise AssertionError("no PostgreSQL binaries (scripts/install-deps installs postgresql)")
    srv = PgServer(**kw)
    h.on_teardown(srv.stop)
    return srv.start()


def _db_url(srv, name):
    return h.pg_database_url(srv.url, name)


def test_second_core_follows():
    srv = _server()
    url = _db_url(srv, "one")
    core = h.start_core(extra=["--store", url])
    node = h.start_node(core.url)
    c = core.client()
    tok = h.unique_arg()
    made = [c.create(h.exec_body(f"pg-{i}", [tok]), wait=True)[0] for i in range(3)]
    assert all(m["state"] == "running" for m in made), made

    # a second core on the same database follows (issue 14: one leader, elected)
    core2 = h.start_core(extra=["--store", url])
    st, js, raw = h.call(core2.url, "GET", "/v1/health")
    assert st == 200 and js["role"] == "follower" and js["leader"] == core.url, (st, raw[:300])

    core.stop(signal.SIGKILL, expect_alive=True)
    h.wait_until(lambda: h.call(core2.url, "GET", "/v1/health")[1].get("role") == "leader", 10,
                 "the second core leading after the first was killed")
    got = {i["id"]: i["state"] for i in core2.client().list()}
    # the node, told the new leader's URL, registers there and its instances are adopted
    node.stop()
    node = h.start_node(core2.url, name=node.name, data_dir=node.data_dir, run_dir=node.run_dir)
    for m in made:
        assert m["id"] in got, f"{m['name']} lost across the second core's start: {got}"
    for m in made:
        core2.client().stop_and_remove(m["id"])
    node.stop()
    core2.stop()


test_second_core_follows.budget = 90


def test_auth_core_on_pg():
    srv = _server()
    url = _db_url(srv, "auth")
    core = h.start_auth_core(extra=["--store", url])
    st, js, raw = h.call(core.url, "POST", "/v1/projects", {"name": "blue"}, token=core.token)
    assert st == 201, (st, raw[:300])
    core.stop()
    core2 = h.Daemon("core", ["core", "--auth", "--listen", f"127.0.0.1:{core.port}", "--data-dir",
                              core.data_dir, "--store", url], h.tmpdir("mv-core-"), url=core.url,
                     token=core.token).start()
    h.wait_until(lambda: h.call(core.url, "GET", "/v1/health", token=core.token, timeout=2)[0] == 200,
                 h.READY_TIMEOUT, "the restarted core")
    st, js, raw = h.call(core.url, "GET", "/v1/projects", token=core.token)
    assert st == 200, (st, raw[:300])
    names = sorted(p["name"] for p in js["projects"])
    assert names == ["admin", "blue"], names
    core2.stop()


test_auth_core_on_pg.budget = 60


def _wait_sync(primary, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if primary.psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == "1":
            return
        time.sleep(0.2)
    raise AssertionError("the standby never became synchronous:\n" + primary.log()[-2000:])


def _create_retrying(c, name, tok, deadline):
    """POST with one Idempotency-Key until a 2xx (the database may be away): the instance."""
    key = f"pg-failover-{name}"
    last = None
    while time.monotonic() < deadline:
        st, js, raw = c.call("POST", "/v1/instances?wait=running&timeout=10", h.exec_body(name, [tok]),
                             headers={"Idempotency-Key": key}, timeout=30)
        if st in (200, 201):
            return h.instances_of(None, js, raw)[0]
        assert st >= 500, f"create {name}: {st} {raw[:300]!r}"
        last = (st, raw[:200])
        time.sleep(0.1)
    raise AssertionError(f"create {name} never succeeded; last answer {last}")


def test_standby_promoted():
    primary = _server()
    standby = _server(standby_of=primary)
    primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
    primary.psql("SELECT pg_reload_conf()")
    _wait_sync(primary)

    url = (f"postgresql://microvim@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
           "?target_session_attrs=read-write&connect_timeout=2")
    d = h.start_dev(extra=["--store", url])
    c = d.client()
    tok = h.unique_arg()
    before = [c.create(h.exec_body(f"before-{i}", [tok]), wait=True)[0] for i in range(3)]

    primary.kill9()
    t0 = time.monotonic()
    standby.promote()
    after = _create_retrying(c, "after", tok, time.monotonic() + 60)
    pause = time.monotonic() - t0
    print(f"first create answered {pause:.2f} s after the primary was killed (promotion included)")
    assert after["state"] == "running", after

    got = {i["id"]: i for i in c.list()}
    for b in before:
        assert b["id"] in got and got[b["id"]]["state"] == "running", f"{b['name']} lost: {got.get(b['id'])}"
    assert "promoted" in standby.log() or standby.psql("SELECT pg_is_in_recovery()") == "f"
    for i in before + [after]:
        c.stop_and_remove(i["id"])
    assert not h.procs_with_arg(tok), "processes left after deleting everything"
    d.stop()


test_standby_promoted.budget = 120


def _row_of_another_core(srv, db, iid, name):
    """The row another core's create wrote, before this core heard of it (a stopped one)."""
    spec = '{"name":"%s","driver":"exec","config":{"command":"/bin/sleep","args":["60"]}}' % name
    srv.psql("INSERT INTO instances (id, name, driver, spec, state, created_us, updated_us, project)"
             f" VALUES ('{iid}', '{name}', 'exec', '{spec}', 'stopped', 1, 1, 'admin')", db=db)


def test_name_taken_through_another_core():
    srv = _server()
    url = _db_url(srv, "taken")
    core = h.start_core(extra=["--store", url])
    node = h.start_node(core.url)
    c = core.client()
    tok = h.unique_arg()
    first = c.create(h.exec_body("before", [tok]), wait=True)[0]

    # one instance (on PostgreSQL its insert goes with the turn's commit, and its refusal is
    # learnt there): 409, and the leader goes on
    _row_of_another_core(srv, "taken", "f000000000000001", "taken-one")
    st, js, raw = c.call("POST", "/v1/instances?wait=running&timeout=10", h.exec_body("taken-one", [tok]))
    assert st == 409 and js["error"]["code"] == "name_conflict", (st, raw[:400])
    assert "another core" in js["error"]["message"], raw[:400]
    # a batch whose second name is taken: nothing of it, not even its first row
    _row_of_another_core(srv, "taken", "f000000000000002", "taken-batch-2")
    st, js, raw = c.call("POST", "/v1/instances", h.exec_body("taken-batch", [tok], count=2))
    assert st == 409 and js["error"]["code"] == "name_conflict", (st, raw[:400])
    assert srv.psql("SELECT count(*) FROM instances WHERE name LIKE 'taken-%'", db="taken") == "2"
    names = {i["name"] for i in c.list()}
    assert names == {"before"}, names

    st, js, raw = h.call(core.url, "GET", "/v1/health")
    assert st == 200 and js["role"] == "leader", (st, raw[:300])
    assert core.proc.poll() is None, "the leader exited"
    # the node runs only what was answered 201, and a create goes on as before
    after = c.create(h.exec_body("after", [tok]), wait=True)[0]
    assert after["state"] == "running", after
    c.stop_and_remove(first["id"])
    c.stop_and_remove(after["id"])
    node.stop()
    core.stop()


test_name_taken_through_another_core.budget = 60
