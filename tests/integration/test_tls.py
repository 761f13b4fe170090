"""TLS: a core with --tls-cert/--tls-key serves HTTPS only; the CLI and nodes verify it with
--tls-ca; --tls-client-ca makes nodes' routes need a client certificate; plain HTTP to the
TLS port gets nothing; bad certificate files stop the start with a sentence naming them.
The PKI is made per test by tests/tls/make-certs (the openssl command)."""

import atexit
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import harness as h


_pki_dir = None


def _certs():
    """The test PKI, made once for this file's tests (a few seconds of openssl on a busy
    machine), removed when the runner exits."""
    global _pki_dir
    if _pki_dir is None:
        d = tempfile.mkdtemp(prefix="mv-certs-")
        atexit.register(shutil.rmtree, d, True)
        subprocess.run([str(h.ROOT / "tests" / "tls" / "make-certs"), d], check=True, timeout=60,
                       stdout=subprocess.DEVNULL)
        _pki_dir = d
    h.trust_ca(os.path.join(_pki_dir, "ca.pem"))
    return lambda name: os.path.join(_pki_dir, name)


def _tls_core(pki, client_ca=False, extra=()):
    args = ["--tls-cert", pki("server.pem"), "--tls-key", pki("server.key")]
    if client_ca:
        args += ["--tls-client-ca", pki("ca.pem")]
    return h.start_core(scheme="https", extra=args + list(extra))


def _node_cert(pki, name="node"):
    return ["--tls-cert", pki(f"{name}.pem"), "--tls-key", pki(f"{name}.key")]


def _ok(p, what):
    assert p.returncode == 0, f"{what}: exit {p.returncode}\nstdout: {p.stdout[-800:]}\nstderr: {p.stderr[-800:]}"


def test_https_run_ps_rm_with_a_node_over_mtls():
    pki = _certs()
    core = _tls_core(pki, client_ca=True)
    assert core.url.startswith("https://")
    assert "listening on https://" in core.log_text()
    h.start_node(core.url, name="tlsnode", extra=["--tls-ca", pki("ca.pem")] + _node_cert(pki))
    cli = ["--core", core.url, "--tls-ca", pki("ca.pem")]
    arg = h.unique_arg()

    p = h.cli(["run", *cli, "--name", "tls1", "--", "/bin/sleep", arg])
    _ok(p, "microvim run over https")
    assert "cannot follow the core's event stream" not in p.stderr, p.stderr
    h.expect_procs(arg, 1, f"after `microvim run` over https, /bin/sleep {arg}")
    insts = [i for i in core.client().list() if i["name"] == "tls1"]
    assert len(insts) == 1 and insts[0]["state"] == "running", insts
    iid = insts[0]["id"]

    # $MICROVIM_TLS_CA instead of --tls-ca
    p = h.cli(["ps", "--core", core.url], env={"MICROVIM_TLS_CA": pki("ca.pem")})
    _ok(p, "MICROVIM_TLS_CA=CA microvim ps")
    assert "tls1" in p.stdout, p.stdout

    p = h.cli(["rm", *cli, iid])
    _ok(p, "microvim rm over https")
    h.wait_until(lambda: h.count_procs(arg) == 0, 10, "the instance's process gone after rm")

    # the other clients of the API: image, push (keep-alive connections over TLS)
    p = h.cli(["image", "ls", *cli])
    _ok(p, "microvim image ls over https")
    # and the tenancy commands (an open loopback core: its caller is an admin)
    p = h.cli(["project", "create", "tlsproj", *cli])
    _ok(p, "microvim project create over https")
    p = h.cli(["project", "ls", *cli])
    _ok(p, "microvim project ls over https")
    assert "tlsproj" in p.stdout, p.stdout
    arg = h.unique_arg()
    p = h.cli(["push", *cli, "--config", '{"command": "/bin/sleep", "args": ["%s"]}' % arg, "--replicate", "3",
               "--json"])
    _ok(p, "microvim push over https")
    assert '"errors":0' in p.stdout.replace(" ", ""), p.stdout[-800:]


def test_wrong_ca_is_refused_by_cli_and_node():
    pki = _certs()
    core = _tls_core(pki)
    p = h.cli(["ps", "--core", core.url, "--tls-ca", pki("other-ca.pem")])
    assert p.returncode == 3, f"exit {p.returncode}: {p.stderr}"
    assert "certificate of 127.0.0.1 was refused" in p.stderr and "--tls-ca" in p.stderr, p.stderr
    # no --tls-ca: the system store does not know the test CA either
    p = h.cli(["ps", "--core", core.url])
    assert p.returncode == 3 and "was refused" in p.stderr, p.stderr
    # a garbage CA file is named
    p = h.cli(["ps", "--core", core.url, "--tls-ca", pki("garbage.pem")])
    assert p.returncode == 3 and "--tls-ca" in p.stderr and "garbage.pem" in p.stderr, p.stderr

    node = h.start_node(core.url, name="lost", extra=["--tls-ca", pki("other-ca.pem")], wait=False)
    h.wait_until(lambda: "was refused" in node.log_text(), 10, "the node saying why it cannot register")
    assert "cannot register with " + core.url in node.log_text(), node.log_tail()
    st, js, _ = core.client().call("GET", "/v1/nodes")
    assert st == 200 and js["nodes"] == [], js


def test_client_certificate_required_for_node_routes():
    pki = _certs()
    core = _tls_core(pki, client_ca=True)
    register = ("POST", "/v1/nodes/register", {"id": "0123456789abcdef", "name": "x"})

    # no client certificate: people's routes answer, nodes' routes are 403
    st, js, _ = core.client().call("GET", "/v1/instances")
    assert st == 200, (st, js)
    for method, path, body in (register, ("POST", "/v1/nodes/0123456789abcdef/heartbeat", {}),
                               ("GET", "/v1/nodes/0123456789abcdef/assignments", None)):
        st, js, raw = core.client().call(method, path, body)
        assert st == 403 and js["error"]["code"] == "client_certificate_required", (path, st, raw)
        assert "--tls-client-ca" in js["error"]["message"], js

    # a certificate by another CA: the handshake fails, nothing is answered
    ctx = h.tls_context(pki("other-node.pem"), pki("other-node.key"))
    st, js, raw = h.call(core.url, "GET", "/v1/instances", context=ctx)
    assert st == 0, (st, raw)

    # the node's certificate: its routes are open to it (the register body is then judged)
    ctx = h.tls_context(pki("node.pem"), pki("node.key"))
    st, js, raw = h.call(core.url, *register[:2], register[2], context=ctx)
    assert st != 403, (st, raw)

    # a node without a certificate says why it cannot register
    node = h.start_node(core.url, name="nocert", extra=["--tls-ca", pki("ca.pem")], wait=False)
    h.wait_until(lambda: "client certificate" in node.log_text(), 10, "the node saying it lacks a certificate")
    # one with a stranger's certificate: refused in the handshake, and says so
    node = h.start_node(core.url, name="stranger", extra=["--tls-ca", pki("ca.pem")] + _node_cert(pki, "other-node"),
                        wait=False)
    # (the core's alert, or under TLS 1.3 a reset that can overtake it)
    h.wait_until(lambda: any(s in node.log_text() for s in ("refused this client's certificate",
                                                              "--tls-client-ca take this node's --tls-cert")),
                 10, "the node saying its certificate was refused")
    st, js, _ = core.client().call("GET", "/v1/nodes")
    assert st == 200 and js["nodes"] == [], js


def _closed(sock, timeout):
    """True when the peer closes (or resets) within timeout; what it sent comes back too."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True, got
            got += chunk
            if len(got) > 65536:
                return False, got
    except (ConnectionResetError, BrokenPipeError):
        return True, got
    except socket.timeout:
        return False, got


def test_plain_http_to_the_tls_port_gets_nothing():
    pki = _certs()
    core = _tls_core(pki, extra=["--read-timeout", "1"])
    # plain HTTP: the handshake fails at the first bytes; no HTTP answer
    with socket.create_connection(("127.0.0.1", core.port), timeout=5) as s:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, got = _closed(s, 10)
    assert closed and b"HTTP/" not in got, got[:200]
    # the CLI says what is likely wrong
    p = h.cli(["ps", "--core", core.url.replace("https://", "http://")])
    assert p.returncode == 3 and "https://" in p.stderr, p.stderr

    # a connection that never shakes hands is closed by the guard's deadline
    with socket.create_connection(("127.0.0.1", core.port), timeout=5) as s:
        closed, _ = _closed(s, 10)
    assert closed, "a silent connection to the TLS port stayed open past --read-timeout"

    # the per-address cap still holds: past it a connection is closed at once, unanswered
    # (a core whose handshake deadline does not close the held ones meanwhile)
    core = _tls_core(pki, extra=["--max-conns-per-addr", "3"])
    held = [socket.create_connection(("127.0.0.1", core.port), timeout=5) for _ in range(3)]
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the guard adopts the three on its next loop pass
            st, js, _ = h.call(core.url, "GET", "/metrics", timeout=2)
            if st == 0:
                break
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", core.port), timeout=5) as s:
            closed, got = _closed(s, 5)
        assert closed and got == b"", got[:200]
    finally:
        for s in held:
            s.close()
    # and HTTPS still works
    h.wait_until(lambda: h.call(core.url, "GET", "/v1/health", timeout=2)[0] == 200, 10, "health over https")


def _start_fails(args, says):
    p = h.cli(args, timeout=30)
    assert p.returncode != 0, f"{args} started: {p.stdout[-300:]} {p.stderr[-300:]}"
    for s in says:
        assert s in p.stderr, f"{args}: stderr lacks {s!r}: {p.stderr[-600:]}"


def test_bad_certificate_files_stop_the_start():
    pki = _certs()
    data = h.tmpdir("mv-data-")
    core = ["core", "--listen", f"127.0.0.1:{h.free_port()}", "--data-dir", data]
    _start_fails(core + ["--tls-cert", pki("expired.pem"), "--tls-key", pki("expired.key")],
                 ["--tls-cert", "expired.pem", "expired on 2020-02-01"])
    _start_fails(core + ["--tls-cert", pki("garbage.pem"), "--tls-key", pki("server.key")],
                 ["garbage.pem", "holds no PEM certificate"])
    _start_fails(core + ["--tls-cert", pki("server.pem"), "--tls-key", pki("node.key")],
                 ["--tls-key", "node.key", "is not the key of the certificate"])
    _start_fails(core + ["--tls-cert", pki("missing.pem"), "--tls-key", pki("server.key")],
                 ["cannot read --tls-cert", "No such file"])
    _start_fails(core + ["--tls-cert", pki("server.pem")], ["needs --tls-key"])
    _start_fails(core + ["--tls-client-ca", pki("ca.pem")], ["--tls-cert FILE and --tls-key FILE"])
    _start_fails(core + ["--tls-cert", pki("server.pem"), "--tls-key", pki("server.key"),
                         "--tls-client-ca", pki("garbage.pem")], ["--tls-client-ca", "garbage.pem"])

    node = ["node", "--data-dir", data, "--run-dir", os.path.join(data, "run")]
    _start_fails(node + ["--core", "https://127.0.0.1:1", "--tls-ca", pki("garbage.pem")],
                 ["--tls-ca", "garbage.pem"])
    _start_fails(node + ["--core", "https://127.0.0.1:1", "--tls-ca", pki("ca.pem"), "--tls-cert", pki("node.pem"),
                         "--tls-key", pki("other-node.key")], ["is not the key"])
    _start_fails(node + ["--core", "http://127.0.0.1:1", "--tls-ca", pki("ca.pem")],
                 ["for an https:// core", "plain HTTP"])


def test_guard_answers_over_tls_are_encrypted_json():
    """The guard's own answers (413 before the body, 408 at the deadline) reach a TLS client
    as JSON inside the session, like every other answer."""
    pki = _certs()
    core = _tls_core(pki, extra=["--read-timeout", "1"])
    ctx = h.tls_context()

    def exchange(data, timeout=10):
        raw = socket.create_connection(("127.0.0.1", core.port), timeout=timeout)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(data)
            got = b""
            try:
                while len(got) < 65536:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                    if b"\r\n\r\n" in got and b'"}}' in got:
                        break
            except (ssl.SSLError, ConnectionResetError, socket.timeout):
                pass
            return got

    got = exchange(b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 5000000\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 413") and b'"body_too_large"' in got, got[:300]
    got = exchange(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # the head never ends
    assert got.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in got, got[:300]
    st, js, _ = core.client().call("GET", "/v1/health")
    assert st == 200, (st, js)
