"""Failover of clients and nodes along a list of cores (`--core URL1,URL2,...`,
$MICROVIM_CORE): a dead first core is skipped, a core killed mid-request is replaced by the
next in the list, and a create retried with its Idempotency-Key is answered from its first
result instead of being made twice. Bad lists are usage errors naming the entry."""

import json
import os
import signal
import socket
import threading

import harness as h


def _dead_url():
    """A URL where nothing listens: another loopback address, a port just freed."""
    return f"http://127.0.0.3:{h.free_port()}"


def _ids(c, name_prefix):
    return sorted(i["id"] for i in c.list() if i["name"].startswith(name_prefix))


# ---- bad lists ------------------------------------------------------------------------

def test_bad_core_lists_are_usage_errors():
    good = "http://127.0.0.1:4650"
    cases = [
        (f"{good},127.0.0.1:4651", "entry 2 of 2", "http://127.0.0.1:4651"),
        (f"{good},,http://127.0.0.1:4652", "entry 2 of 3", "empty"),
        (f"{good},{good}", "entry 2 of 2", "again"),
        ("127.0.0.1:4650", "lacks its scheme", "http://127.0.0.1:4650"),
        (",".join(f"http://127.0.0.1:{4650 + i}" for i in range(17)), "at most 16", ""),
    ]
    for arg, want1, want2 in cases:
        for cmd in (["ps"], ["nodes"], ["image", "ls"], ["project", "ls"],
                    ["run", "--", "/bin/true"], ["push", "--count", "1", "--config",
                                                 '{"command":"/bin/true"}']):
            r = h.cli(cmd[:1] + ["--core", arg] + cmd[1:])
            assert r.returncode == 2, f"{cmd} --core {arg!r}: exit {r.returncode}, {r.stderr!r}"
            assert want1 in r.stderr and want2 in r.stderr, f"{cmd} --core {arg!r}: {r.stderr!r}"
        r = h.cli(["ps"], env={"MICROVIM_CORE": arg})
        assert r.returncode == 2 and "$MICROVIM_CORE" in r.stderr and want1 in r.stderr, \
            f"MICROVIM_CORE={arg!r}: exit {r.returncode}, {r.stderr!r}"
        work = h.tmpdir("mv-node-")
        r = h.cli(["node", "--core", arg, "--data-dir", os.path.join(work, "d"),
                   "--run-dir", os.path.join(work, "r")])
        assert r.returncode == 2 and want1 in r.stderr, f"node --core {arg!r}: {r.returncode} {r.stderr!r}"


test_bad_core_lists_are_usage_errors.budget = 60


# ---- a dead first core ----------------------------------------------------------------

def test_cli_skips_a_dead_first_core():
    core = h.start_core()
    dead = _dead_url()
    node = h.start_node(f"{dead},{core.url}", name="n-skip", wait=False)
    h._wait_ready(node, lambda: h._node_ready(core.url, None, "n-skip"), "node ready through the list")
    cores = f"{dead},{core.url}"
    tok = h.unique_arg()
    r = h.cli(["run", "--core", cores, "--name", "fo-run", "--", "/bin/sleep", "30", tok])
    assert r.returncode == 0, f"run: {r.returncode} {r.stdout!r} {r.stderr!r}"
    assert "running" in r.stdout and dead in r.stderr, (r.stdout, r.stderr)
    r = h.cli(["ps", "--json"], env={"MICROVIM_CORE": cores})
    assert r.returncode == 0, r.stderr
    names = [i["name"] for i in json.loads(r.stdout)["instances"]]
    assert names == ["fo-run"], names
    iid = json.loads(r.stdout)["instances"][0]["id"]
    r = h.cli(["logs", "--core", cores, iid])
    assert r.returncode == 0, r.stderr
    r = h.cli(["rm", "--core", cores, iid])
    assert r.returncode == 0 and "removed" in r.stdout, (r.stdout, r.stderr)
    assert core.client().list() == []
    node.stop()
    core.stop()


# ---- the same key, one instance -------------------------------------------------------

class DropAfterForward:
    """A stand-in for a core that dies after committing a create but before answering:
    it forwards one request to the real core, reads the answer, and closes the client's
    connection without a byte. Stopped by close()."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.forwarded = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_request(self, conn):
        data = b""
        conn.settimeout(10)
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                req = self._read_request(conn)
                up = socket.create_connection(("127.0.0.1", self.target), timeout=30)
                up.sendall(req)
                answer = b""
                while True:
                    chunk = up.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
                up.close()
                self.forwarded.append((req.split(b"\r\n")[0].decode(), answer.split(b"\r\n")[0].decode()))
            except OSError:
                pass
            finally:
                conn.close()

    def close(self):
        self.sock.close()
        self.thread.join(timeout=5)


def test_retried_create_with_the_same_key_makes_one_instance():
    core = h.start_core()
    node = h.start_node(core.url, name="n-idem")
    proxy = DropAfterForward(core.port)
    h.on_teardown(proxy.close)
    tok = h.unique_arg()
    cores = f"http://127.0.0.1:{proxy.port},{core.url}"
    r = h.cli(["run", "--core", cores, "--name", "fo-once", "--json", "--", "/bin/sleep", "30", tok])
    assert r.returncode == 0, f"run: {r.returncode} {r.stdout!r} {r.stderr!r}"
    assert len(proxy.forwarded) == 1 and " 201 " in proxy.forwarded[0][1] + " ", \
        f"the first core did not commit the create: {proxy.forwarded}"
    inst = json.loads(r.stdout)
    assert inst["state"] == "running" and inst["name"] == "fo-once", inst
    c = core.client()
    assert [i["id"] for i in c.list()] == [inst["id"]], f"more than one instance: {c.list()}"
    h.expect_procs(tok, 1, "one sleep process")

    # the same key given twice by a script: the second run is answered from the first
    tok2 = h.unique_arg()
    args = ["run", "--core", core.url, "--idempotency-key", "fo-key-1", "--name", "fo-twice", "--json",
            "--", "/bin/sleep", "30", tok2]
    a, b = h.cli(args), h.cli(args)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert json.loads(a.stdout)["id"] == json.loads(b.stdout)["id"]
    assert len(c.list()) == 2
    h.expect_procs(tok2, 1, "one sleep process for the key used twice")
    r = h.cli(["run", "--core", core.url, "--idempotency-key", "has space", "--", "/bin/true"])
    assert r.returncode == 2 and "--idempotency-key" in r.stderr, (r.returncode, r.stderr)
    for i in c.list():
        c.stop_and_remove(i["id"])
    proxy.close()
    node.stop()
    core.stop()


# ---- a core killed under a waiting run ------------------------------------------------

def test_run_wait_and_nodes_carry_on_when_the_core_is_killed():
    """The core dies (kill -9) while `run --wait` waits; a core started on another port
    from the same data dir takes over. A node re-registers there with its instance still
    running (the same process); a simulated node re-registers with the instance it is
    still starting; the run's retry (same key) waits there until that one runs."""
    core = h.start_core()
    port2 = h.free_port()
    url2 = f"http://127.0.0.1:{port2}"
    cores = f"{core.url},{url2}"
    node = h.start_node(cores, name="n-kill", wait=False)
    h._wait_ready(node, lambda: h._node_ready(core.url, None, "n-kill"), "node ready at the first core")
    work = h.tmpdir("mv-sim-")
    sim = h.Daemon("sim", ["node", "--core", cores, "--simulate", "1", "--name", "fo"], work).start()
    h._wait_ready(sim, lambda: h._node_ready(core.url, None, "fo-00001"), "the simulated node ready")
    c = core.client()
    tok = h.unique_arg()
    kept = c.create(h.exec_body("fo-kept", [tok]), wait=True)[0]
    assert kept["state"] == "running", kept

    # a start that takes 5 s on the simulated node: the run is still waiting when the core dies
    run = h.subprocess.Popen([h.BIN, "run", "--core", cores, "--name", "fo-wait", "--driver", "sim",
                              "--config", '{"spawn_ms": 5000}', "--timeout", "60", "--settle", "0", "--json"],
                             stdout=h.subprocess.PIPE, stderr=h.subprocess.PIPE, text=True,
                             start_new_session=True, env={k: v for k, v in os.environ.items()
                                                          if k != "MICROVIM_CORE"})
    try:
        h.wait_until(lambda: any(i["name"] == "fo-wait" and i["state"] == "starting" for i in c.list()), 15,
                     "the simulated instance starting", 0.02)
        core.stop(sig=signal.SIGKILL)
        core2 = h.start_core(port=port2, data_dir=core.data_dir)
        c2 = core2.client()
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.communicate(timeout=10)
    assert run.returncode == 0, f"run --wait: exit {run.returncode}; stderr {err!r}"
    got = json.loads(out)
    assert got["name"] == "fo-wait" and got["state"] == "running", got
    assert url2 in err, f"run did not say it moved to the second core: {err!r}"
    names = sorted(i["name"] for i in c2.list())
    assert names == ["fo-kept", "fo-wait"], f"one instance each, none made twice: {names}"

    # the node is back at the second core, its instance never restarted
    h.wait_until(lambda: h._node_ready(url2, None, "n-kill") is True, 20, "the node at the second core", 0.1)
    assert c2.get(kept["id"])["state"] == "running"
    h.expect_procs(tok, 1, "the kept instance's process")
    assert "moving to " + url2 in node.log_text(), node.log_tail()
    # and takes new work there (its long-poll is on the second core)
    tok2 = h.unique_arg()
    new = c2.create(h.exec_body("fo-after", [tok2]), wait=True)[0]
    assert new["state"] == "running", new
    for i in c2.list():
        c2.stop_and_remove(i["id"])
    sim.stop()
    node.stop()
    core2.stop()


test_run_wait_and_nodes_carry_on_when_the_core_is_killed.budget = 90
