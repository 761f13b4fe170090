"""--token-file: bearer tokens for users and nodes; a non-loopback --listen needs one;
node routes need the node's own token."""

import os
import secrets
import signal
import subprocess

import harness as h


def _token_file(dirpath, token):
    p = os.path.join(dirpath, "token")
    with open(p, "w") as f:
        f.write(token + "\n")  # as `echo TOKEN > file` writes it
    os.chmod(p, 0o600)
    return p


def _is_error(js):
    e = js.get("error") if isinstance(js, dict) else None
    return isinstance(e, dict) and isinstance(e.get("code"), str) and isinstance(e.get("message"), str)


def test_token_required():
    tok = "t-" + secrets.token_hex(16)
    tf = _token_file(h.tmpdir("mv-tok-"), tok)
    core = h.start_core(token=tok, token_file=tf)
    url = core.url
    paths = [("GET", "/v1/health"), ("GET", "/v1/instances"), ("GET", "/v1/nodes"),
             ("GET", "/metrics"), ("POST", "/v1/instances"), ("DELETE", "/v1/instances/0123456789abcdef"),
             ("POST", "/v1/nodes/register")]
    body = h.exec_body("a1", ["1"])
    fails = []
    for method, path in paths:
        for label, hdrs in (("no token", {}),
                            ("wrong token", {"Authorization": "Bearer wrong-" + tok}),
                            ("token without Bearer", {"Authorization": tok}),
                            ("token with a suffix", {"Authorization": f"Bearer {tok}x"})):
            st, js, raw = h.call(url, method, path, body if method == "POST" else None, headers=hdrs)
            if st != 401 or not _is_error(js):
                fails.append(f"{method} {path} {label}: {st} {raw[:200]!r}")
    assert not fails, "requests without the right token were not refused with 401:\n  " + \
        "\n  ".join(fails)
    st, js, raw = h.call(url, "GET", "/v1/instances", token=tok)
    assert st == 200 and js == {"instances": []}, f"right token: {st} {raw[:300]!r}"
    st, js, raw = h.call(url, "GET", "/v1/health", token=tok)
    assert st == 200 and js.get("status") == "ok", f"right token: {st} {raw[:300]!r}"
    # nothing was created by the refused POSTs
    assert js.get("instances") == 0, js


def test_node_with_token_runs_instance():
    tok = "t-" + secrets.token_hex(16)
    tf = _token_file(h.tmpdir("mv-tok-"), tok)
    core = h.start_core(token=tok, token_file=tf)
    h.start_node(core.url, name="n-auth", token=tok, token_file=tf)
    c = core.client()
    arg = h.unique_arg()
    inst = c.create(h.exec_body("secure", [arg]), wait=True)[0]
    assert inst["state"] == "running", inst
    h.expect_procs(arg, 1, "the instance's process")
    c.stop_and_remove(inst["id"])
    assert not h.procs_with_arg(arg)


def test_node_without_token_is_refused():
    tok = "t-" + secrets.token_hex(16)
    tf = _token_file(h.tmpdir("mv-tok-"), tok)
    core = h.start_core(token=tok, token_file=tf)
    bad = _token_file(h.tmpdir("mv-tok-"), "not-the-token")
    node = h.start_node(core.url, name="n-intruder", token=tok, token_file=bad, wait=False)
    # the node says it was refused (not a fixed pause: on a busy host its first attempt can
    # come late, and a pause that ended before it would prove nothing)
    h.wait_until(lambda: "unauthorized: check --token-file" in node.log_text() or not node.alive(),
                 h.READY_TIMEOUT, "the node's refused registration in its log")
    names = [n["name"] for n in core.client().nodes()]
    assert "n-intruder" not in names, f"a node with a wrong token registered: {names}"
    node.stop(expect_alive=False)


def test_node_routes_need_node_token():
    """Without --token-file too, node routes need the node's own token (API.md)."""
    d = h.start_dev()
    c = d.client()
    arg = h.unique_arg()
    inst = c.create(h.exec_body("victim", [arg]))[0]
    nid = inst["node"]
    forged = {"reports": [{"id": inst["id"], "state": "failed", "exit_code": 9, "error": "forged"}]}
    for hdrs in ({}, {"Authorization": "Bearer forged"}):
        st, js, raw = c.call("POST", f"/v1/nodes/{nid}/reports", forged, headers=hdrs)
        assert st == 401 and _is_error(js), f"forged report ({hdrs}) -> {st} {raw[:200]!r}"
        st, js, raw = c.call("POST", f"/v1/nodes/{nid}/heartbeat", {}, headers=hdrs)
        assert st == 401, f"heartbeat without the node token ({hdrs}) -> {st} {raw[:200]!r}"
        st, js, raw = c.call("GET", f"/v1/nodes/{nid}/assignments?after=0&wait=0", headers=hdrs)
        assert st == 401, f"assignments without the node token ({hdrs}) -> {st} {raw[:200]!r}"
    g = c.get(inst["id"])
    assert g["state"] == "running" and "exit_code" not in g, f"a forged report changed it: {g}"


def test_public_listen_turns_auth_on():
    """`core --listen 0.0.0.0:PORT` turns authentication on by itself: the first start writes
    DATA_DIR/admin.token (0600) and says where; a request without a token is refused, the
    admin's token is taken."""
    # 0.0.0.0:PORT collides with any socket on PORT, on any address (a client's ephemeral
    # port in TIME_WAIT, thousands of them on a busy host): a port taken is tried again on
    # another, a bounded number of times; any other exit fails below.
    for attempt in range(5):
        port = h.free_port()
        data = h.tmpdir("mv-pub-")
        p = subprocess.Popen([h.BIN, "core", "--listen", f"0.0.0.0:{port}", "--data-dir", data],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
        token_path = os.path.join(data, "admin.token")
        url = f"http://127.0.0.1:{port}"
        # the token is written before the listen: wait for an answer, or the exit
        h.wait_until(lambda: p.poll() is not None or (os.path.exists(token_path) and
                                                       h.call(url, "GET", "/v1/health", timeout=2)[0] != 0),
                     h.READY_TIMEOUT, "the core's first answer")
        if p.poll() is None:
            break
        out, _ = p.communicate(timeout=10)
        if "in use" not in out:
            raise AssertionError(f"core --listen 0.0.0.0 exited {p.returncode}: {out[-400:]}")
    else:
        raise AssertionError("five free ports in a row were taken on 0.0.0.0")
    try:
        assert p.poll() is None, f"core --listen 0.0.0.0 exited {p.returncode}"
        assert os.stat(token_path).st_mode & 0o777 == 0o600, oct(os.stat(token_path).st_mode)
        with open(token_path) as f:
            tok = f.read().strip()
        h.wait_until(lambda: h.call(url, "GET", "/v1/health", token=tok, timeout=2)[0] == 200,
                     h.READY_TIMEOUT, "health with the admin token")
        st, js, raw = h.call(url, "GET", "/v1/instances")
        assert st == 401 and _is_error(js), f"no token on a public listen: {st} {raw[:200]!r}"
        st, js, raw = h.call(url, "GET", "/v1/instances", token="t-" + secrets.token_hex(16))
        assert st == 401 and _is_error(js), f"a wrong token on a public listen: {st} {raw[:200]!r}"
    finally:
        os.kill(p.pid, signal.SIGTERM)
        try:
            out, _ = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            out, _ = p.communicate(timeout=10)
    for mark in h.SANITIZER_MARKS:
        assert mark not in out, f"sanitizer report:\n{out[:3000]}"
    assert token_path in out, f"the core did not say where the admin token is: {out[-600:]!r}"
    assert tok not in out, "the admin token itself was printed"
