"""Instance logs (GET /v1/instances/ID/logs, `microvim logs`): an exec instance's stdout and
stderr, read after its end and followed while it runs (the stream ends when the instance
does), the --log-max-bytes bound with the oldest bytes dropped (and the file's blocks
bounded on the node), a real QEMU guest's serial console, the refusals, and the CLI."""

import http.client
import os
import signal
import time
import urllib.parse

import harness as h

READY = "MICROVIM-VNF READY"


def logs(d, iid, query="", timeout=30):
    """(status, headers, body bytes) of one logs request, read whole."""
    u = urllib.parse.urlsplit(d.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", f"/v1/instances/{iid}/logs{query}")
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def sh(name, script, **extra):
    return {"name": name, "driver": "exec", "config": {"command": "/bin/sh", "args": ["-c", script]}, **extra}


def test_exec_stdout_stderr_after_end():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    inst = c.create(sh("out", f'echo "out-{tok}"; echo "err-{tok}" >&2; echo "out2-{tok}"'))[0]
    g = c.wait_state(inst["id"], ("exited", "failed"), 10)
    assert g["state"] == "exited", g
    st, hd, body = logs(d, inst["id"])  # stdout is a process's default stream
    assert st == 200 and body == f"out-{tok}\nout2-{tok}\n".encode(), (st, body)
    assert hd.get("X-Log-Stream") == "stdout" and hd.get("X-Log-Dropped") == "0", hd
    st, hd, body = logs(d, inst["id"], "?stream=stderr")
    assert st == 200 and body == f"err-{tok}\n".encode(), (st, body)
    # follow on an ended instance: what there is, then the end
    st, _, body = logs(d, inst["id"], "?stream=stdout&follow=1", timeout=20)
    assert st == 200 and body == f"out-{tok}\nout2-{tok}\n".encode(), (st, body)
    # until it is removed
    c.stop_and_remove(inst["id"])
    st, _, body = logs(d, inst["id"])
    assert st == 404, (st, body)


def test_follow_sees_lines_and_ends_with_the_instance():
    d = h.start_dev()
    c = d.client()
    go = os.path.join(h.tmpdir("mv-logs-"), "go")
    # prints a line, waits for the test's go file, prints another, exits
    inst = c.create(sh("chatty", f'echo first; while [ ! -e "{go}" ]; do /bin/sleep 0.05; done; echo second; '
                                 'echo bye >&2'))[0]
    u = urllib.parse.urlsplit(d.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    conn.request("GET", f"/v1/instances/{inst['id']}/logs?follow=1")
    r = conn.getresponse()
    assert r.status == 200, r.read()
    got = b""
    while b"first\n" not in got:  # bounded by the socket timeout
        chunk = r.read1(4096)
        assert chunk, f"the stream ended before the first line: {got!r}"
        got += chunk
    assert c.get(inst["id"])["state"] == "running", "the line came while the instance runs"
    open(go, "w").close()
    while True:  # to the end of the stream, which is the instance's end
        chunk = r.read1(4096)
        if not chunk:
            break
        got += chunk
    conn.close()
    assert got == b"first\nsecond\n", got
    g = c.wait_state(inst["id"], ("exited", "failed"), 10)
    assert g["state"] == "exited", g


def test_bound_drops_the_oldest():
    cap = 65536
    d = h.start_dev(extra=["--log-max-bytes", str(cap)])
    c = d.client()
    n = 40000  # "line-NNNNN\n": about 470 KB, seven times the cap
    inst = c.create(sh("loud", f'i=0; while [ $i -lt {n} ]; do echo "line-$i"; i=$((i+1)); done'))[0]
    g = c.wait_state(inst["id"], ("exited", "failed"), 60)
    assert g["state"] == "exited", g
    total = sum(len(f"line-{i}\n") for i in range(n))
    st, hd, body = logs(d, inst["id"])
    assert st == 200 and len(body) == cap, (st, len(body))
    assert int(hd["X-Log-Dropped"]) == total - cap and int(hd["X-Log-Start"]) == total - cap, hd
    assert body.endswith(f"line-{n - 2}\nline-{n - 1}\n".encode()), body[-40:]
    # the oldest went: the kept bytes are the stream's tail, byte for byte
    full = "".join(f"line-{i}\n" for i in range(n)).encode()
    assert body == full[-cap:]
    # and on the node the file holds about the cap, not the whole stream (holes)
    path = os.path.join(d.run_dir, "instances", inst["id"], "stdout.log")
    st_ = os.stat(path)
    assert st_.st_size == total, st_.st_size
    assert st_.st_blocks * 512 <= cap + 64 * 1024 + 8192, f"{st_.st_blocks * 512} bytes kept for a {cap} cap"


def test_refusals():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    inst = c.create(h.exec_body("bad", [tok]))[0]
    h.register_token(tok)
    rows = [("?stream=bogus", 400, "invalid_query", "stream"),
            ("?stream=serial", 400, "invalid_query", "serial"),
            ("?stream=", 400, "invalid_query", "stream"),
            ("?follow=maybe", 400, "invalid_query", "follow")]
    fails = []
    for q, want, code, word in rows:
        st, _, body = logs(d, inst["id"], q)
        js = __import__("json").loads(body or b"null")
        err = js.get("error") if isinstance(js, dict) else None
        if st != want or not err or err.get("code") != code or word not in err.get("message", ""):
            fails.append(f"{q}: {st} {body[:200]!r}")
    st, _, body = logs(d, "0123456789abcdef")
    if st != 404 or b"not_found" not in body:
        fails.append(f"unknown instance: {st} {body[:200]!r}")
    assert not fails, "\n".join(fails)
    assert c.get(inst["id"])["state"] == "running", "a refused logs request changed the instance"
    c.stop_and_remove(inst["id"])


def test_cli_logs_and_follow():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    inst = c.create(sh("cli", f'echo "o-{tok}"; echo "e-{tok}" >&2; /bin/sleep 1; echo "late-{tok}"'))[0]
    # -f follows to the end of the instance
    p = h.cli(["logs", inst["id"], "-f", "--core", d.url], timeout=30)
    assert p.returncode == 0 and p.stdout == f"o-{tok}\nlate-{tok}\n", (p.returncode, p.stdout, p.stderr)
    assert c.get(inst["id"])["state"] == "exited"
    p = h.cli(["logs", inst["id"], "--stream", "stderr", "--core", d.url])
    assert p.returncode == 0 and p.stdout == f"e-{tok}\n", (p.returncode, p.stdout, p.stderr)
    # bad usage and refusals
    p = h.cli(["logs", inst["id"], "--stream", "nope", "--core", d.url])
    assert p.returncode == 2 and "stdout, stderr or serial" in p.stderr, (p.returncode, p.stderr)
    p = h.cli(["logs", "--core", d.url])
    assert p.returncode == 2, (p.returncode, p.stderr)
    p = h.cli(["logs", "0123456789abcdef", "--core", d.url])
    assert p.returncode == 1 and "no instance" in p.stderr, (p.returncode, p.stderr)
    p = h.cli(["logs", inst["id"], "--stream", "serial", "--core", d.url])
    assert p.returncode == 1 and "serial" in p.stderr, (p.returncode, p.stderr)


def test_qemu_serial():
    d = h.start_dev()
    c = d.client()
    h.qemu_with_hello(d)
    inst = c.create({"name": "vm", "driver": "qemu", "image": "hello", "config": {"accel": "tcg"},
                     "ready": {"serial": READY}}, timeout=60)[0]
    # the console is a guest's default stream; following it shows the marker
    u = urllib.parse.urlsplit(d.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", f"/v1/instances/{inst['id']}/logs?follow=1")
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("X-Log-Stream") == "serial", (r.status, r.getheaders())
    got = b""
    while READY.encode() not in got:  # bounded by the socket timeout
        chunk = r.read1(4096)
        assert chunk, f"the serial stream ended without the marker: {got[-300:]!r}"
        got += chunk
    # stopping the guest ends the followed stream
    st, js, raw = c.delete(inst["id"], wait=True, timeout=30)
    assert st == 200, raw
    while r.read1(4096):
        pass
    conn.close()
    # after its end the console is still there, until removal
    st, hd, body = logs(d, inst["id"], "?stream=serial")
    assert st == 200 and READY.encode() in body, (st, body[-300:])
    st, _, body = logs(d, inst["id"], "?stream=stderr")
    assert st == 200, (st, body)
    c.stop_and_remove(inst["id"])
    st, _, _ = logs(d, inst["id"], "?stream=serial")
    assert st == 404


def _follow_until(d, iid, want, timeout=20):
    """Opens a follow stream and reads until `want` came; returns (conn, response, bytes)."""
    u = urllib.parse.urlsplit(d.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", f"/v1/instances/{iid}/logs?follow=1")
    r = conn.getresponse()
    assert r.status == 200, r.read()
    got = b""
    while want not in got:  # bounded by the socket timeout
        chunk = r.read1(4096)
        assert chunk, f"the stream ended before {want!r}: {got!r}"
        got += chunk
    return conn, r, got


def _read_to_end(r, got):
    while True:
        chunk = r.read1(4096)
        if not chunk:
            return got
        got += chunk


def test_clients_that_go_away_end_their_relays():
    """Followers that hang up mid-stream: the core drops their relays (and its requests to
    the node, whose waiting reads go too); a follower that stays gets the rest and the end.
    Leaks would show in the sanitizer build's report at exit (teardown scans it)."""
    d = h.start_dev()
    c = d.client()
    go = os.path.join(h.tmpdir("mv-logs-"), "go")
    inst = c.create(sh("quiet", f'echo hi; while [ ! -e "{go}" ]; do /bin/sleep 0.05; done; echo bye'))[0]
    for _ in range(10):
        conn, _, _ = _follow_until(d, inst["id"], b"hi\n")
        conn.close()
    conn, r, got = _follow_until(d, inst["id"], b"hi\n")
    open(go, "w").close()
    assert _read_to_end(r, got) == b"hi\nbye\n"
    conn.close()
    st, js, _ = c.call("GET", "/v1/health")
    assert st == 200, js


def test_logs_across_a_node_restart():
    """The logs are the node's files: a node killed and started again serves them (at its
    new address) and follows the instance it re-attached to, to its end."""
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="phoenix")
    go = os.path.join(h.tmpdir("mv-logs-"), "go")
    inst = c.create(sh("survivor", f'echo before; while [ ! -e "{go}" ]; do /bin/sleep 0.05; done; echo after'))[0]
    h.wait_until(lambda: logs(core, inst["id"])[2] == b"before\n", 10, "the first line")
    node.stop(sig=signal.SIGKILL)
    st, _, body = logs(core, inst["id"])
    assert st == 503 and b"node_" in body, (st, body)  # its node is away: said, not hung
    node2 = h.start_node(core.url, name="phoenix", data_dir=node.data_dir, run_dir=node.run_dir)
    # the core took the old registration for the node until the new one came
    h.wait_until(lambda: "registered with" in node2.log_text(), 15, "the restarted node registered")
    conn, r, got = _follow_until(core, inst["id"], b"before\n")
    open(go, "w").close()
    assert _read_to_end(r, got) == b"before\nafter\n"
    conn.close()
    g = c.wait_state(inst["id"], ("exited", "failed"), 10)
    assert g["state"] == "exited", g


test_logs_across_a_node_restart.budget = 60


def test_node_options_refused():
    """--log-max-bytes below a page or not a number, --logs-listen not a numeric address."""
    for bad in ("10", "1e9x", "-1", "2147483648000"):
        p = h.cli(["dev", "--log-max-bytes", bad])
        assert p.returncode == 2 and "--log-max-bytes" in p.stderr and "4096" in p.stderr, (bad, p.returncode, p.stderr)
    work = h.tmpdir("mv-logs-")
    p = h.cli(["dev", "--listen", f"127.0.0.1:{h.free_port()}", "--data-dir", os.path.join(work, "data"),
               "--run-dir", os.path.join(work, "run"), "--logs-listen", "localhost:0"])
    assert p.returncode != 0 and "--logs-listen localhost:0" in p.stderr and "numeric" in p.stderr, \
        (p.returncode, p.stderr[-500:])
