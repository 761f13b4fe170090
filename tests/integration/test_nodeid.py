"""Node identity (core --auth): an admin makes a join token; a node started with it
(`node --token-file JOIN`) registers once and gets its own credential, bound to its node
id, kept in DATA_DIR/node.credential (0600) and used from then on. A credential acts for
its own node only: registering as another node's id, long-polling, beating or reporting as
another node is 403 and changes nothing. `microvim nodes revoke ID` cuts a node off at once
and its instances are lost (restart on-lost ones move). Expired, revoked and garbage
tokens are 401."""

import os
import secrets
import stat
import subprocess

import harness as h


def _is_error(js, code=None):
    e = js.get("error") if isinstance(js, dict) else None
    ok = isinstance(e, dict) and isinstance(e.get("code"), str) and isinstance(e.get("message"), str)
    return ok and (code is None or e["code"] == code)


def _join_token(core, expires="1h"):
    st, js, raw = h.call(core.url, "POST", "/v1/node-tokens", {"expires": expires}, token=core.token)
    assert st == 201, f"POST /v1/node-tokens: {st} {raw[:300]!r}"
    assert js["token"].startswith("mvt_") and len(js["token"]) == 68 and js["nodes"] == 0, js
    path = os.path.join(h.tmpdir("mv-join-"), "join.token")
    with open(path, "w") as f:
        f.write(js["token"] + "\n")
    os.chmod(path, 0o600)
    return js, path


def _credential(node):
    path = os.path.join(node.data_dir, "node.credential")
    # the core lists the node as ready once it answered; the node keeps the credential then
    h.wait_until(lambda: os.path.exists(path), 10, f"{path}")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, f"{path} has mode {mode:o} (want 600)"
    with open(path) as f:
        return f.read().strip()


def _node(core, name):
    st, js, raw = h.call(core.url, "GET", "/v1/nodes", token=core.token)
    assert st == 200, raw
    found = [n for n in js["nodes"] if n["name"] == name]
    assert found, f"no node {name} in {raw[:300]!r}"
    return found[0]


def _register_body(node_id, name):
    return {"id": node_id, "name": name, "resources": {"cpus": 1, "memory_mb": 64}, "drivers": {}}


def _state(core):
    """What a refused request must not change: the nodes (id, name, state) and instances."""
    st, js, raw = h.call(core.url, "GET", "/v1/nodes", token=core.token)
    nodes = sorted((n["id"], n["name"], n["state"]) for n in js["nodes"])
    st, js, raw = h.call(core.url, "GET", "/v1/instances", token=core.token)
    insts = sorted((i["id"], i["state"], i.get("node")) for i in js["instances"])
    return nodes, insts


def _cli(core, *args):
    bin_ = os.environ.get("MICROVIM_BIN", "build/microvim")
    return subprocess.run([bin_, *args, "--core", core.url, "--token-file", core.token_file],
                          capture_output=True, text=True, timeout=30)


def test_join_credential_and_restart():
    """A node joins with a join token, gets its credential (0600, not the join token),
    runs an instance; after a restart of the node, with the join token revoked, it
    registers with its credential; after a restart of the core too. Neither secret is
    ever in a log."""
    core = h.start_auth_core()
    join, join_file = _join_token(core)
    node = h.start_node(core.url, name="n-join", token=core.token, token_file=join_file)
    cred = _credential(node)
    assert cred.startswith("mvt_") and len(cred) == 68 and cred != join["token"], "the credential's shape"
    st, js, raw = h.call(core.url, "GET", "/v1/node-tokens", token=core.token)
    assert st == 200 and [(k["id"], k["nodes"]) for k in js["node_tokens"]] == [(join["id"], 1)], raw
    assert join["token"] not in raw.decode() and "token" not in js["node_tokens"][0], "a join token was listed"
    node_id = _node(core, "n-join")["id"]
    c = core.client()
    arg = h.unique_arg()
    inst = c.create(h.exec_body("joined-1", [arg]), wait=True)[0]
    assert inst["state"] == "running" and inst["node"] == node_id, inst

    # the join token is not needed again: revoked, then the node restarts
    st, _, raw = h.call(core.url, "DELETE", f"/v1/node-tokens/{join['id']}", token=core.token)
    assert st == 204, raw
    node.stop()
    node2 = h.start_node(core.url, name="n-join", token=core.token, token_file=join_file,
                         data_dir=node.data_dir, run_dir=node.run_dir)
    assert _node(core, "n-join")["id"] == node_id and _credential(node2) == cred, "the node changed identity"
    h.wait_until(lambda: "registering with this node's credential" in node2.log_text(), 10,
                 "the node to register with its credential")
    h.wait_until(lambda: "registered with" in node2.log_text(), 10, "the node registered again")

    # the credential is in the store: a restarted core knows it
    node2.stop()
    core.stop()
    core2 = h.Daemon("core", ["core", "--auth", "--listen", f"127.0.0.1:{core.port}", "--data-dir", core.data_dir],
                     h.tmpdir("mv-core-"), url=core.url, token=core.token).start()
    h.wait_until(lambda: h.call(core.url, "GET", "/v1/health", token=core.token, timeout=2)[0] == 200,
                 h.READY_TIMEOUT, "the restarted core")
    st, js, raw = h.call(core.url, "GET", f"/v1/nodes/{node_id}/assignments?wait=0", token=cred)
    assert st == 404 and _is_error(js, "register_again"), f"the credential after a core restart: {st} {raw!r}"
    node3 = h.start_node(core.url, name="n-join", token=core.token, data_dir=node.data_dir, run_dir=node.run_dir)
    assert _node(core2, "n-join")["id"] == node_id
    for d in (core, node, node2, node3, core2):
        assert join["token"] not in d.log_text() and cred not in d.log_text(), f"a secret in the {d.kind}'s log"
    with open(os.path.join(core.data_dir, "audit.log")) as f:
        audit = f.read()
    assert join["token"] not in audit and cred not in audit and '"route":"/v1/node-tokens"' in audit.replace(" ", "")
    node3.stop()
    core2.stop()


def test_impersonation_refused():
    """Node A's credential may not register as B, long-poll, beat or report as B, nor act
    on B's instances from its own path; a join token may not take B's id or act as a node;
    a credential is no user token and fetches only its instances' blobs."""
    core = h.start_auth_core()
    join, join_file = _join_token(core)
    a = h.start_node(core.url, name="n-a", labels={"host": "a"}, token=core.token, token_file=join_file)
    b = h.start_node(core.url, name="n-b", labels={"host": "b"}, token=core.token, token_file=join_file)
    cred_a, cred_b = _credential(a), _credential(b)
    assert cred_a != cred_b
    a_id, b_id = _node(core, "n-a")["id"], _node(core, "n-b")["id"]
    c = core.client()
    on_b = c.create(h.exec_body("on-b", [h.unique_arg()], labels={"host": "b"}), wait=True)[0]
    assert on_b["node"] == b_id and on_b["state"] == "running", on_b
    before = _state(core)

    def refused(method, path, body, token, want, code, what):
        st, js, raw = h.call(core.url, method, path, body, token=token)
        assert st == want and _is_error(js, code), f"{what}: {st} (want {want} {code}) {raw[:300]!r}"
        return js["error"]["message"]

    report = {"reports": [{"id": on_b["id"], "state": "failed", "error": "forged"}]}
    msg = refused("POST", "/v1/nodes/register", _register_body(b_id, "evil"), cred_a, 403, "node_mismatch",
                  "A registering as B")
    assert a_id in msg and b_id in msg, msg
    refused("GET", f"/v1/nodes/{b_id}/assignments?wait=0", None, cred_a, 403, "node_mismatch", "A polling as B")
    refused("POST", f"/v1/nodes/{b_id}/heartbeat", None, cred_a, 403, "node_mismatch", "A beating as B")
    refused("POST", f"/v1/nodes/{b_id}/reports", report, cred_a, 403, "node_mismatch", "A reporting as B")
    refused("PUT", f"/v1/nodes/{b_id}/bridges", {"bridges": []}, cred_a, 403, "node_mismatch", "A's bridges as B")
    refused("POST", "/v1/nodes/register", _register_body(b_id, "evil"), join["token"], 403, "node_id_taken",
            "a join token taking B's id")
    refused("GET", f"/v1/nodes/{a_id}/assignments?wait=0", None, join["token"], 403, "forbidden",
            "a join token polling")
    for method, path, body in (("GET", "/v1/instances", None), ("GET", "/v1/nodes", None),
                               ("POST", "/v1/node-tokens", {}), ("POST", f"/v1/nodes/{b_id}/revoke", None),
                               ("DELETE", f"/v1/instances/{on_b['id']}", None),
                               ("POST", "/v1/instances", h.exec_body("x", ["1"]))):
        refused(method, path, body, cred_a, 403, "forbidden", f"A's credential on {method} {path}")
        refused(method, path, body, join["token"], 403, "forbidden", f"a join token on {method} {path}")
    blob = secrets.token_bytes(32)
    digest = "sha256:" + __import__("hashlib").sha256(blob).hexdigest()
    st, _, raw = h.call(core.url, "PUT", f"/v1/blobs/{digest}", blob, token=core.token,
                        headers={"Content-Type": "application/octet-stream"})
    assert st == 201, raw
    refused("GET", f"/v1/blobs/{digest}", None, cred_a, 403, "forbidden", "A fetching a blob none of its instances boots")
    refused("GET", f"/v1/blobs/{digest}", None, join["token"], 403, "forbidden", "a join token fetching a blob")
    # from its own path, A's report about B's instance is skipped (and said so)
    st, js, raw = h.call(core.url, "POST", f"/v1/nodes/{a_id}/reports", report, token=cred_a)
    assert st == 200 and js.get("skipped") == [on_b["id"]], f"A reporting on B's instance: {st} {raw!r}"
    assert _state(core) == before, "a refused request changed something"
    assert c.get(on_b["id"])["state"] == "running" and not c.get(on_b["id"]).get("error")
    # the credential does act for its own node
    st, js, raw = h.call(core.url, "POST", f"/v1/nodes/{a_id}/heartbeat", None, token=cred_a)
    assert st == 200, f"A's credential on its own heartbeat: {st} {raw!r}"
    c.stop_and_remove(on_b["id"])
    a.stop()
    b.stop()
    core.stop()


def test_revoke_node():
    """`microvim nodes revoke ID`: the node is down at once, its credential and its token of
    the moment are refused, its id may not register again (not even by an admin), its
    instances are lost and a restart on-lost one moves to another node."""
    core = h.start_auth_core()
    join, join_file = _join_token(core)
    a = h.start_node(core.url, name="n-rev", labels={"pool": "p"}, token=core.token, token_file=join_file)
    c = core.client()
    stay = c.create(h.exec_body("stays", [h.unique_arg()], labels={"pool": "p"}), wait=True)[0]
    mover = c.create(h.exec_body("moves", [h.unique_arg()], restart="on-lost"), wait=True)[0]
    b = h.start_node(core.url, name="n-other", token=core.token, token_file=join_file)
    a_id, b_id = _node(core, "n-rev")["id"], _node(core, "n-other")["id"]
    assert stay["node"] == a_id and mover["node"] == a_id, (stay, mover)
    cred_a = _credential(a)

    r = _cli(core, "nodes", "revoke", a_id)
    assert r.returncode == 0 and "revoked" in r.stdout, f"nodes revoke: {r.returncode} {r.stdout} {r.stderr}"
    assert _node(core, "n-rev")["state"] == "down", "a revoked node is down at once"
    assert c.get(stay["id"])["state"] == "lost", c.get(stay["id"])
    moved = c.wait_state(mover["id"], {"running"}, timeout=15)
    assert moved["node"] == b_id, moved
    st, js, raw = h.call(core.url, "POST", "/v1/nodes/register", _register_body(a_id, "n-rev"), token=cred_a)
    assert st == 401 and _is_error(js, "unauthorized") and "revoked" in js["error"]["message"], raw
    st, js, raw = h.call(core.url, "GET", f"/v1/nodes/{a_id}/assignments?wait=0", token=cred_a)
    assert st == 401 and _is_error(js, "unauthorized"), raw
    st, js, raw = h.call(core.url, "POST", "/v1/nodes/register", _register_body(a_id, "n-rev"), token=core.token)
    assert st == 403 and _is_error(js, "node_revoked"), f"an admin registering a revoked id: {st} {raw!r}"
    h.wait_until(lambda: "revoked" in a.log_text(), 15, "the node to say why")
    assert _node(core, "n-rev")["state"] == "down", "the revoked node came back"
    st, js, raw = h.call(core.url, "POST", f"/v1/nodes/{a_id}/revoke", None, token=core.token)
    assert st == 200, f"revoking twice: {st} {raw!r}"
    r = _cli(core, "nodes", "revoke", "00112233445566ff")
    assert r.returncode == 1 and "404" in r.stderr, f"revoking an unknown node: {r.returncode} {r.stderr}"
    r = _cli(core, "nodes", "revoke", "nope")
    assert r.returncode == 2, f"revoking a malformed id: {r.returncode} {r.stderr}"
    c.stop_and_remove(mover["id"])
    a.stop()
    b.stop()
    core.stop()


def test_bad_join_tokens():
    """An expired or revoked join token, and garbage, register nothing (401 saying why);
    a node started with an expired one says so and never becomes ready."""
    core = h.start_auth_core()
    expired, expired_file = _join_token(core, expires=1)
    revoked, _ = _join_token(core)
    st, _, raw = h.call(core.url, "DELETE", f"/v1/node-tokens/{revoked['id']}", token=core.token)
    assert st == 204, raw
    good, _ = _join_token(core)
    h.wait_until(lambda: [k["expired"] for k in h.call(core.url, "GET", "/v1/node-tokens", token=core.token)[1]
                          ["node_tokens"] if k["id"] == expired["id"]] == [True], 10, "the 1 s join token to expire")
    before = _state(core)
    body = _register_body("00112233445566cc", "n-bad")
    for label, tok, word in (("expired", expired["token"], "expired"), ("revoked", revoked["token"], "revoked"),
                             ("garbage", "garbage", None), ("unknown", "mvt_" + secrets.token_hex(32), None),
                             ("a join token with a suffix", good["token"] + "0", None),
                             ("a join token one character off", good["token"][:-1] +
                              ("0" if good["token"][-1] != "0" else "1"), None)):
        for method, path, b in (("POST", "/v1/nodes/register", body),
                                ("GET", "/v1/nodes/00112233445566cc/assignments?wait=0", None)):
            st, js, raw = h.call(core.url, method, path, b, token=tok)
            assert st == 401 and _is_error(js, "unauthorized"), f"{label} on {method} {path}: {st} {raw[:200]!r}"
            if word and method == "POST":
                assert word in js["error"]["message"], f"{label}: {raw!r}"
    assert _state(core) == before, "a bad token registered something"
    n = h.start_node(core.url, name="n-expired", token=core.token, token_file=expired_file, wait=False)
    h.wait_until(lambda: "expired" in n.log_text(), 15, "the node to say its join token expired")
    assert all(x["name"] != "n-expired" for x in h.call(core.url, "GET", "/v1/nodes", token=core.token)[1]["nodes"])
    assert not os.path.exists(os.path.join(n.data_dir, "node.credential"))
    st, js, raw = h.call(core.url, "GET", "/v1/node-tokens", token=core.token)
    assert st == 200 and all(k["nodes"] == 0 for k in js["node_tokens"]), raw
    n.stop()
    core.stop()
