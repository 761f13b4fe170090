"""Tenancy (core --auth): projects, users with roles, tokens. The isolation matrix walks every
user route x role (admin, member, reader) x own/other project, and every route with a
missing, expired, revoked or garbage token; quotas are checked with all-or-nothing counts
and 32 clients racing at the limit; a refused request changes nothing."""

import hashlib
import os
import secrets
import threading

import harness as h

STOPPABLE = (200, 202, 204)


def _is_error(js, code=None):
    e = js.get("error") if isinstance(js, dict) else None
    ok = isinstance(e, dict) and isinstance(e.get("code"), str) and isinstance(e.get("message"), str)
    return ok and (code is None or e["code"] == code)


def _ok(st, js, raw, want, what):
    assert st == want, f"{what}: {st} (want {want}) {raw[:300]!r}"
    return js


class Tenancy:
    """An --auth core with one node, projects blue and red, and in each an instance and an
    image; tokens of an admin, blue's member and reader, red's member."""

    def __init__(self):
        self.core = h.start_auth_core()
        self.url = self.core.url
        self.admin = self.core.token
        self.node = h.start_node(self.url, name="n-tenancy", token=self.admin, token_file=self.core.token_file)
        self.tokens = {"admin": self.admin}
        self.token_ids = {}
        for p in ("blue", "red"):
            self.call("admin", "POST", "/v1/projects", {"name": p}, want=201)
        for user, project, role in (("bm", "blue", "member"), ("br", "blue", "reader"), ("rm", "red", "member")):
            self.call("admin", "POST", "/v1/users", {"name": user, "project": project, "role": role}, want=201)
            js = self.call("admin", "POST", "/v1/tokens", {"user": user}, want=201)
            assert js["token"].startswith("mvt_") and len(js["token"]) == 68, js
            assert js["project"] == project and js["role"] == role, js
            self.tokens[user] = js["token"]
            self.token_ids[user] = js["id"]
        self.inst = {}
        for who, project in (("bm", "blue"), ("rm", "red")):
            arg = h.unique_arg()
            js = self.call(who, "POST", "/v1/instances?wait=running&timeout=10",
                           h.exec_body(f"{project}-1", [arg]), want=201)
            assert js["project"] == project and js["state"] == "running", js
            self.inst[project] = js["id"]
        blob = secrets.token_bytes(64)
        self.digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        self.call("bm", "PUT", f"/v1/blobs/{self.digest}", blob, want=201)
        self.image = {}
        for who, project in (("bm", "blue"), ("rm", "red")):
            js = self.call(who, "POST", "/v1/images", {"name": f"img-{project}", "kernel": self.digest}, want=201)
            assert js["project"] == project, js
            self.image[project] = js["name"]
        self.node_id = self.call("admin", "GET", "/v1/nodes", want=200)["nodes"][0]["id"]

    def call(self, who, method, path, body=None, want=None, token=None):
        tok = token if token is not None else self.tokens[who]
        hdrs = {"Content-Type": "application/octet-stream"} if isinstance(body, bytes) else None
        # a password is derived with 310000 rounds of PBKDF2: seconds under ASan on a busy host
        timeout = 120 if isinstance(body, dict) and "password" in body else 15
        st, js, raw = h.call(self.url, method, path, body, token=tok, headers=hdrs, timeout=timeout)
        if want is not None:
            _ok(st, js, raw, want, f"{who} {method} {path}")
            return js
        return st, js, raw

    def snapshot(self):
        """What a refused request must not change."""
        ids = sorted(i["id"] for i in self.call("admin", "GET", "/v1/instances", want=200)["instances"])
        imgs = sorted(i["name"] for i in self.call("admin", "GET", "/v1/images", want=200)["images"])
        projects = sorted(p["name"] for p in self.call("admin", "GET", "/v1/projects", want=200)["projects"])
        users = sorted(u["name"] for u in self.call("admin", "GET", "/v1/users", want=200)["users"])
        tokens = sorted((t["id"], t["revoked"]) for t in self.call("admin", "GET", "/v1/tokens", want=200)["tokens"])
        return ids, imgs, projects, users, tokens


ROLES = {"admin": "admin", "member": "bm", "reader": "br"}


def _object_rows(t):
    """(method, path of the own (blue) object, of the other (red) one, body, what each role
    gets: {role: (own, other)}). Deletes come later, where they are allowed to succeed."""
    return [
        ("GET", f"/v1/instances/{t.inst['blue']}", f"/v1/instances/{t.inst['red']}", None,
         {"admin": (200, 200), "member": (200, 404), "reader": (200, 404)}),
        ("GET", f"/v1/instances/{t.inst['blue']}/logs?stream=stdout", f"/v1/instances/{t.inst['red']}/logs?stream=stdout",
         None, {"admin": (200, 200), "member": (200, 404), "reader": (200, 404)}),
        ("DELETE", f"/v1/instances/{t.inst['blue']}", f"/v1/instances/{t.inst['red']}", None,
         {"member": (None, 404), "reader": (403, 403)}),
        # both run: a start is refused as such (409) where the instance is seen
        ("POST", f"/v1/instances/{t.inst['blue']}/start", f"/v1/instances/{t.inst['red']}/start", None,
         {"admin": (409, 409), "member": (409, 404), "reader": (403, 403)}),
        ("POST", f"/v1/instances/{t.inst['blue']}/restart", f"/v1/instances/{t.inst['red']}/restart", None,
         {"member": (None, 404), "reader": (403, 403)}),
        ("GET", f"/v1/images/{t.image['blue']}", f"/v1/images/{t.image['red']}", None,
         {"admin": (200, 200), "member": (200, 404), "reader": (200, 404)}),
        ("DELETE", f"/v1/images/{t.image['blue']}", f"/v1/images/{t.image['red']}", None,
         {"member": (None, 404), "reader": (403, 403)}),
        ("GET", "/v1/projects/blue", "/v1/projects/red", None,
         {"admin": (200, 200), "member": (200, 404), "reader": (200, 404)}),
        ("DELETE", "/v1/projects/blue", "/v1/projects/red", None,
         {"admin": (409, 409), "member": (403, 403), "reader": (403, 403)}),
        ("GET", "/v1/instances?project=blue", "/v1/instances?project=red", None,
         {"admin": (200, 200), "member": (200, 404), "reader": (200, 404)}),
        ("GET", "/v1/images?project=blue", "/v1/images?project=red", None,
         {"admin": (200, 200), "member": (200, 404), "reader": (200, 404)}),
    ]


def _route_rows(t):
    """Routes without an object of a project: (method, path, body, {role: status})."""
    adm = {"admin": 200, "member": 403, "reader": 403}
    return [
        ("GET", "/v1/health", None, {"admin": 200, "member": 200, "reader": 200}),
        ("GET", "/v1/instances", None, {"admin": 200, "member": 200, "reader": 200}),
        ("GET", "/v1/images", None, {"admin": 200, "member": 200, "reader": 200}),
        ("GET", "/v1/projects", None, {"admin": 200, "member": 200, "reader": 200}),
        ("GET", "/v1/tokens", None, {"admin": 200, "member": 200, "reader": 200}),
        ("GET", f"/v1/blobs/{t.digest}", None, {"admin": 200, "member": 200, "reader": 200}),
        ("POST", "/v1/instances", h.exec_body("refused-x", ["1"], resources={"vcpus": 0.1, "memory_mb": 16}),
         {"reader": 403}),
        ("POST", "/v1/images", {"name": "img-refused", "kernel": t.digest}, {"reader": 403}),
        ("PUT", f"/v1/blobs/{t.digest}", b"x", {"reader": 403}),
        ("GET", "/v1/nodes", None, adm),
        ("GET", f"/v1/nodes/{t.node_id}", None, adm),
        ("POST", "/v1/nodes/register", {}, {"member": 403, "reader": 403}),
        ("GET", "/metrics", None, adm),
        ("GET", "/v1/traces", None, adm),
        ("POST", "/v1/projects", {"name": "green"}, {"member": 403, "reader": 403}),
        ("GET", "/v1/users", None, adm),
        ("POST", "/v1/users", {"name": "mallory", "project": "blue", "role": "admin"}, {"member": 403, "reader": 403}),
        ("DELETE", "/v1/users/rm", None, {"member": 403, "reader": 403}),
        ("POST", "/v1/tokens", {"user": "rm"}, {"member": 403, "reader": 403}),
        ("DELETE", f"/v1/tokens/{t.token_ids['rm']}", None, {"member": 404, "reader": 404}),
        ("GET", "/v1/node-tokens", None, adm),
        ("POST", "/v1/node-tokens", {}, {"member": 403, "reader": 403}),
        ("DELETE", "/v1/node-tokens/00000000000000aa", None, {"member": 403, "reader": 403}),
        ("POST", f"/v1/nodes/{t.node_id}/revoke", None, {"member": 403, "reader": 403}),
    ]


def test_isolation_matrix():
    t = Tenancy()
    before = t.snapshot()
    fails = []
    for method, own, other, body, want in _object_rows(t):
        for role, (w_own, w_other) in want.items():
            for path, w in ((own, w_own), (other, w_other)):
                if w is None:
                    continue
                st, js, raw = t.call(ROLES[role], method, path, body)
                if st != w or (st >= 400 and not _is_error(js)):
                    fails.append(f"{role} {method} {path}: {st} (want {w}) {raw[:160]!r}")
    for method, path, body, want in _route_rows(t):
        for role, w in want.items():
            st, js, raw = t.call(ROLES[role], method, path, body)
            if st != w or (st >= 400 and not _is_error(js)):
                fails.append(f"{role} {method} {path}: {st} (want {w}) {raw[:160]!r}")
            if st == 403 and not _is_error(js, "forbidden"):
                fails.append(f"{role} {method} {path}: 403 without code forbidden: {raw[:160]!r}")
    assert not fails, "the isolation matrix does not hold:\n  " + "\n  ".join(fails)
    assert t.snapshot() == before, "a refused request changed something"

    # what each sees in the lists
    def ids(who, path="/v1/instances"):
        return sorted(i["id"] for i in t.call(who, "GET", path, want=200)["instances"])
    assert ids("admin") == sorted(t.inst.values())
    assert ids("bm") == [t.inst["blue"]] and ids("br") == [t.inst["blue"]] and ids("rm") == [t.inst["red"]]
    assert ids("admin", "/v1/instances?project=red") == [t.inst["red"]]
    names = [i["name"] for i in t.call("br", "GET", "/v1/images", want=200)["images"]]
    assert names == [t.image["blue"]], names
    projects = [p["name"] for p in t.call("bm", "GET", "/v1/projects", want=200)["projects"]]
    assert projects == ["blue"], projects
    projects = [p["name"] for p in t.call("admin", "GET", "/v1/projects", want=200)["projects"]]
    assert projects == ["admin", "blue", "red"], f"not in name order: {projects}"
    toks = [k["user"] for k in t.call("bm", "GET", "/v1/tokens", want=200)["tokens"]]
    assert toks == ["bm"], toks
    # another project's image is as unknown as a missing one, on create too
    st, js, raw = t.call("bm", "POST", "/v1/instances",
                         {"name": "vm-x", "driver": "qemu", "image": t.image["red"]})
    assert st == 422 and _is_error(js, "unknown_image"), f"{st} {raw[:300]!r}"

    # the allowed writes: a member creates and deletes in its project, an admin anywhere
    arg = h.unique_arg()
    js = t.call("bm", "POST", "/v1/instances?wait=running&timeout=10", h.exec_body("blue-2", [arg]), want=201)
    assert js["project"] == "blue"
    for who, iid in (("bm", js["id"]), ("bm", t.inst["blue"]), ("admin", t.inst["red"])):
        st, _, raw = t.call(who, "DELETE", f"/v1/instances/{iid}?wait=stopped&timeout=10")
        assert st in STOPPABLE, f"{who} DELETE {iid}: {st} {raw[:200]!r}"
        st, _, raw = t.call(who, "DELETE", f"/v1/instances/{iid}")
        assert st == 204, f"{who} DELETE {iid} (ended): {st} {raw[:200]!r}"
    t.call("bm", "DELETE", f"/v1/images/{t.image['blue']}", want=204)
    t.call("admin", "DELETE", f"/v1/images/{t.image['red']}", want=204)
    # a project that owns nothing any more can go, and its users' tokens with it
    t.call("admin", "DELETE", "/v1/projects/red", want=204)
    st, js, raw = t.call("rm", "GET", "/v1/instances")
    assert st == 401 and _is_error(js, "unauthorized"), f"the token of a removed project's user: {st} {raw[:200]!r}"


def test_bad_tokens_on_every_route():
    t = Tenancy()
    js = t.call("admin", "POST", "/v1/tokens", {"user": "bm", "expires": 1}, want=201)
    expired = js["token"]
    js = t.call("admin", "POST", "/v1/tokens", {"user": "bm"}, want=201)
    revoked = js["token"]
    t.call("admin", "DELETE", f"/v1/tokens/{js['id']}", want=204)
    h.wait_until(lambda: t.call("bm", "GET", "/v1/health", token=expired)[0] == 401, 5, "the 1 s token to expire")
    before = t.snapshot()
    bad = {"missing": None, "expired": expired, "revoked": revoked,
           "garbage": "garbage", "unknown": "mvt_" + secrets.token_hex(32), "admin's with a suffix": t.admin + "0"}
    rows = [(m, p, b) for m, p, b, _ in _route_rows(t)] + \
           [(m, own, b) for m, own, _, b, _ in _object_rows(t)] + \
           [("DELETE", f"/v1/instances/{t.inst['blue']}", None), ("GET", "/v1/events", None),
            ("DELETE", "/v1/projects/blue", None), ("GET", "/v1/projects/blue", None)]
    fails = []
    for method, path, body in rows:
        for label, tok in bad.items():
            hdrs = {} if tok is None else {"Authorization": f"Bearer {tok}"}
            st, js, raw = h.call(t.url, method, path, body, headers=hdrs)
            if st != 401 or not _is_error(js, "unauthorized"):
                fails.append(f"{method} {path} with a {label} token: {st} {raw[:160]!r}")
    assert not fails, "bad tokens were not refused with 401:\n  " + "\n  ".join(fails)
    assert t.snapshot() == before, "a request with a bad token changed something"
    st, js, raw = h.call(t.url, "GET", "/v1/health", headers={"Authorization": f"Bearer {revoked}"})
    assert "revoked" in js["error"]["message"], raw
    st, js, raw = h.call(t.url, "GET", "/v1/health", headers={"Authorization": f"Bearer {expired}"})
    assert "expired" in js["error"]["message"], raw


def test_events_of_own_project_only():
    t = Tenancy()
    ev = h.EventStream(t.url, token=t.tokens["bm"]).start()
    try:
        arg = h.unique_arg()
        red = t.call("rm", "POST", "/v1/instances?wait=running&timeout=10", h.exec_body("red-ev", [arg]), want=201)
        blue = t.call("bm", "POST", "/v1/instances?wait=running&timeout=10", h.exec_body("blue-ev", [arg]), want=201)
        ev.wait_for(lambda e: e.get("id") == blue["id"] and e.get("state") == "running", 10, "blue's running event")
        seen = {e.get("id") for e in ev.events()}
        assert red["id"] not in seen, "a member saw another project's instance in /v1/events"
        assert not [e for e in ev.events() if e.get("type") == "node"], "a member saw node events"
    finally:
        ev.close()


def test_login_with_password():
    t = Tenancy()
    t.call("admin", "POST", "/v1/users", {"name": "carol", "project": "blue", "role": "member",
                                          "password": "s3cret horse"}, want=201)
    users = {u["name"]: u for u in t.call("admin", "GET", "/v1/users", want=200)["users"]}
    assert users["carol"]["password"] is True and "s3cret" not in str(users)
    js = t.call(None, "POST", "/v1/tokens", {"user": "carol", "password": "s3cret horse", "project": "blue"},
                want=201, token="")
    tok = js["token"]
    assert js["expires_at"], "a log-in token expires"
    assert t.call("x", "GET", "/v1/instances", token=tok, want=200) == {"instances": [
        i for i in t.call("admin", "GET", "/v1/instances?project=blue", want=200)["instances"]]}
    for body in ({"user": "carol", "password": "wrong"}, {"user": "nobody", "password": "s3cret horse"},
                 {"user": "carol", "password": "s3cret horse", "project": "red"},
                 {"user": "bm", "password": "x"}):
        st, js, raw = t.call(None, "POST", "/v1/tokens", body, token="")
        assert st == 401 and _is_error(js, "unauthorized"), f"{body}: {st} {raw[:200]!r}"
    assert tok not in t.core.log_text(), "a token appeared in the core's log"
    assert "s3cret" not in t.core.log_text(), "a password appeared in the core's log"


def test_quota_counts_all_or_nothing_and_shows_usage():
    t = Tenancy()
    t.call("admin", "POST", "/v1/projects", {"name": "q", "quota": {"instances": 3, "vcpus": 0.25}}, want=201)
    t.call("admin", "POST", "/v1/users", {"name": "qm", "project": "q", "role": "member"}, want=201)
    t.tokens["qm"] = t.call("admin", "POST", "/v1/tokens", {"user": "qm"}, want=201)["token"]
    arg = h.unique_arg()
    res = {"vcpus": 0.1, "memory_mb": 16}
    st, js, raw = t.call("qm", "POST", "/v1/instances", h.exec_body("q", [arg], count=4, resources=res))
    assert st == 403 and _is_error(js, "quota_exceeded"), f"count 4 over 3: {st} {raw[:300]!r}"
    msg = js["error"]["message"]
    assert "instances" in msg and "limit 3" in msg and "usage 0" in msg, msg
    st, js, raw = t.call("qm", "POST", "/v1/instances", h.exec_body("q", [arg], count=3, resources=res))
    assert st == 403 and "vcpus" in js["error"]["message"] and "limit 0.25" in js["error"]["message"], raw
    assert t.call("admin", "GET", "/v1/instances?project=q", want=200)["instances"] == [], \
        "a refused count created some"
    made = t.call("qm", "POST", "/v1/instances", h.exec_body("q", [arg], count=2, resources=res), want=201)
    p = t.call("qm", "GET", "/v1/projects/q", want=200)
    assert p["usage"]["instances"] == 2 and abs(p["usage"]["vcpus"] - 0.2) < 1e-9, p
    assert p["quota"] == {"instances": 3, "vcpus": 0.25, "memory_mb": None}, p
    out = h.cli(["project", "show", "q", "--core", t.url], env={"MICROVIM_TOKEN": t.tokens["qm"]})
    assert out.returncode == 0 and "2 of 3" in out.stdout and "0.2 of 0.25" in out.stdout, out.stdout + out.stderr
    # removing an instance gives its share back
    iid = made["instances"][0]["id"]
    t.call("qm", "DELETE", f"/v1/instances/{iid}?wait=stopped&timeout=10")
    t.call("qm", "DELETE", f"/v1/instances/{iid}", want=204)
    assert t.call("qm", "GET", "/v1/projects/q", want=200)["usage"]["instances"] == 1


def test_quota_race_32_clients():
    """32 clients create at once in a project with room for 5: exactly 5 are created, the
    others get 403 quota_exceeded, never more (the check and the write are one step)."""
    t = Tenancy()
    t.call("admin", "POST", "/v1/projects", {"name": "race", "quota": {"instances": 5}}, want=201)
    t.call("admin", "POST", "/v1/users", {"name": "racer", "project": "race", "role": "member"}, want=201)
    tok = t.call("admin", "POST", "/v1/tokens", {"user": "racer"}, want=201)["token"]
    arg = h.unique_arg()
    results = [None] * 32
    start = threading.Barrier(32)

    def client(i):
        start.wait(10)
        results[i] = h.call(t.url, "POST", "/v1/instances", h.exec_body(f"race-{i}", [arg]), token=tok,
                            timeout=30)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    statuses = sorted(r[0] for r in results if r)
    assert len(statuses) == 32, f"answers: {len(statuses)} of 32"
    assert statuses.count(201) == 5 and statuses.count(403) == 27, f"statuses: {statuses}"
    for st, js, raw in results:
        if st == 403:
            assert _is_error(js, "quota_exceeded") and "limit 5" in js["error"]["message"], raw[:300]
    listed = t.call("admin", "GET", "/v1/instances?project=race", want=200)["instances"]
    assert len(listed) == 5, f"{len(listed)} instances in a project with a quota of 5"
    assert t.call("admin", "GET", "/v1/projects/race", want=200)["usage"]["instances"] == 5
    h.expect_procs(arg, 5, "the 5 instances' processes", timeout=10)


def test_auth_survives_restart():
    """Projects, users and tokens are in the store: after a restart the same tokens work,
    a revoked one stays revoked, and admin.token is not rewritten."""
    t = Tenancy()
    revoked = t.call("admin", "POST", "/v1/tokens", {"user": "br"}, want=201)
    t.call("admin", "DELETE", f"/v1/tokens/{revoked['id']}", want=204)
    with open(t.core.token_file) as f:
        before = f.read()
    t.node.stop()
    t.core.stop()
    core = h.Daemon("core", ["core", "--auth", "--listen", f"127.0.0.1:{t.core.port}", "--data-dir",
                             t.core.data_dir], h.tmpdir("mv-core-"), url=t.url, token=t.admin).start()
    h.wait_until(lambda: h.call(t.url, "GET", "/v1/health", token=t.admin, timeout=2)[0] == 200, h.READY_TIMEOUT,
                 "the restarted core")
    with open(t.core.token_file) as f:
        assert f.read() == before, "admin.token was rewritten at a restart"
    ids = [i["id"] for i in t.call("bm", "GET", "/v1/instances", want=200)["instances"]]
    assert ids == [t.inst["blue"]], ids
    st, js, raw = t.call("x", "GET", "/v1/instances", token=revoked["token"])
    assert st == 401, f"a revoked token after a restart: {st} {raw[:200]!r}"
    core.stop()


def test_audit_log():
    """Every mutating request is a JSON line in DATA_DIR/audit.log (0600) with who, the route
    and the result, refused ones too; never a token; on /v1/events for an admin only;
    `microvim audit` reads it."""
    t = Tenancy()
    admin_ev = h.EventStream(t.url, token=t.admin).start()
    member_ev = h.EventStream(t.url, token=t.tokens["bm"]).start()
    try:
        st, _, _ = t.call("br", "POST", "/v1/instances", h.exec_body("aud-refused", ["1"]))
        assert st == 403
        made = t.call("admin", "POST", "/v1/tokens", {"user": "br"}, want=201)
        st, _, _ = t.call(None, "POST", "/v1/tokens", {"user": "br", "password": "nope"}, token="")
        assert st == 401
        t.call("bm", "DELETE", f"/v1/instances/{t.inst['blue']}?wait=stopped&timeout=10")
        path = os.path.join(t.core.data_dir, "audit.log")
        assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)

        def lines():
            with open(path) as f:
                return [__import__("json").loads(x) for x in f if x.strip()]
        # a request answered later is written when its answer has gone out: maybe just after
        # the client has read it
        h.wait_until(lambda: any(e.get("route") == "/v1/tokens" and e.get("status") == 401 for e in lines()), 30,
                     "the refused log-in in the audit log")
        h.wait_until(lambda: any(e["method"] == "DELETE" and e.get("id") == t.inst["blue"] for e in lines()), 30,
                     "the delete in the audit log")
        got = lines()
        assert not [e for e in got if e.get("id") and "*" not in e["route"]], "an id on a route without one"
        refused = [e for e in got if e.get("user") == "br" and e["method"] == "POST" and e["path"] == "/v1/instances"]
        assert refused and refused[0]["status"] == 403 and refused[0]["project"] == "blue" and \
            refused[0]["role"] == "reader", got
        assert any(e.get("user") == "admin" and e["route"] == "/v1/tokens" and e["status"] == 201 for e in got), got
        assert any(e.get("user") == "bm" and e["method"] == "DELETE" and e.get("id") == t.inst["blue"] and
                   e["status"] in (200, 202) for e in got), got
        assert not [e for e in got if e["method"] == "GET"], "a GET in the audit log"
        with open(path) as f:
            text = f.read()
        for tok in list(t.tokens.values()) + [made["token"]]:
            assert tok not in text, "a token in the audit log"
        assert "nope" not in text, "a password in the audit log"
        admin_ev.wait_for(lambda e: e.get("type") == "audit" and e.get("user") == "br", 10, "audit events for an admin")
        assert not [e for e in member_ev.events() if e.get("type") == "audit"], "a member saw audit events"
        out = h.cli(["audit", "--data-dir", t.core.data_dir, "--since", "1h"])
        assert out.returncode == 0 and "/v1/instances" in out.stdout and "br" in out.stdout, out.stdout + out.stderr
        out = h.cli(["audit", "--data-dir", t.core.data_dir, "--since", "2999-01-01T00:00:00Z", "--json"])
        assert out.returncode == 0 and out.stdout == "", out.stdout
    finally:
        admin_ev.close()
        member_ev.close()


test_login_with_password.budget = 240  # seven PBKDF2 derivations of 310000 rounds; slow under ASan
test_audit_log.budget = 120           # one
