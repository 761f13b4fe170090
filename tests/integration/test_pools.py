"""Warm pools with real QEMU under TCG (the sample VNF, build/vnf/hello): a pool keeps its
guests booted to the ready marker and paused; a create that names the pool (or whose guest
is the pool's exactly) takes one and answers ready with trace.pool "hit"; with none warm it
boots cold ("miss"); the pool refills; a paused guest killed with SIGKILL is replaced; a
node restarted re-attaches its paused guests (and resumes an instance's guest it left
paused); a guest never serves two instances; a pooled instance's later runs boot cold;
placement prefers the node that holds a warm guest."""

import os
import signal
import subprocess

import harness as h

MARKER = "MICROVIM-VNF READY"
KERNEL = str(h.ROOT / "build" / "vnf" / "hello")
BOOT_TIMEOUT = 60  # a pool of 2 boots 2 guests of ~50 ms each; generous for an ASan build on a busy host


def _qemu_pids(run_dir):
    """pid -> argv of the QEMU processes whose command line names this test's run dir."""
    found = {}
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        argv = h._argv(ent)
        if not argv or "qemu-system" not in os.path.basename(argv[0]):
            continue
        if any(run_dir in a for a in argv):
            try:
                with open(f"/proc/{ent}/stat") as f:
                    st = f.read()
                if st[st.rindex(")") + 2] == "Z":
                    continue
            except (OSError, ValueError, IndexError):
                continue
            found[int(ent)] = argv
    return found


def _kill_qemus(run_dir):
    for pid in _qemu_pids(run_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _cwd(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _pool_pids(run_dir):
    """QEMU processes of pool guests: their working dir (the guest's dir, which moves to the
    instance's when taken) is under RUN_DIR/pool/."""
    return sorted(p for p in _qemu_pids(run_dir) if _cwd(p).startswith(os.path.join(run_dir, "pool") + "/"))


def _setup(d, name="warm", size=2, cli=False):
    """Image hello and pool `name` of `size` on dev daemon d (through the API, or `microvim
    pool create`); waits until all are warm."""
    c = d.client()
    if "qemu" not in c.nodes()[0]["drivers"]:
        raise AssertionError("no qemu driver on this node (scripts/install-deps installs qemu-system-x86)")
    r = subprocess.run([h.BIN, "image", "add", "hello", "--core", d.url, "--kernel", KERNEL],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"image add: {r.stderr}"
    if cli:
        p = h.cli(["pool", "create", name, "--core", d.url, "--image", "hello", "--size", str(size), "--ready", MARKER,
                   "--accel", "tcg", "--memory-mb", "32"])
        assert p.returncode == 0 and f"pool {name}" in p.stdout, f"pool create: {p.stdout} {p.stderr}"
    else:
        st, js, raw = c.call("POST", "/v1/pools", {"name": name, "driver": "qemu", "image": "hello", "size": size,
                                                   "ready": {"serial": MARKER}, "config": {"accel": "tcg"},
                                                   "resources": {"memory_mb": 32}})
        assert st == 201, f"POST /v1/pools -> {st}: {raw[:400]!r}"
    _wait_warm(c, name, size)
    return c


def _wait_warm(c, name, n):
    def check():
        st, js, raw = c.call("GET", f"/v1/pools/{name}")
        return js if st == 200 and js.get("warm") == n and js.get("booting") == 0 else None
    return h.wait_until(check, BOOT_TIMEOUT, f"pool {name} with {n} warm guests", 0.05)


def _create(c, body):
    st, js, raw = c.call("POST", "/v1/instances?wait=ready&timeout=30", body, timeout=60)
    assert st == 201, f"create -> {st}: {raw[:400]!r}"
    assert js["state"] == "running" and js.get("ready") is True, f"not running/ready: {raw[:400]!r}"
    return js


def _dev():
    d = h.start_dev()
    h.on_teardown(lambda: _kill_qemus(d.run_dir))
    return d


def test_pool_hit_miss_refill():
    d = _dev()
    c = _setup(d, size=2)
    warm = _pool_pids(d.run_dir)
    assert len(warm) == 2, f"2 pool guests expected, found {warm}"

    # hit: named pool, and a create whose guest is the pool's exactly (implicit)
    a = _create(c, {"name": "hit-a", "pool": "warm"})
    b = _create(c, {"name": "hit-b", "driver": "qemu", "image": "hello", "config": {"accel": "tcg"},
                    "resources": {"memory_mb": 32}, "ready": {"serial": MARKER}})
    for inst in (a, b):
        t = inst["trace"]
        assert t.get("pool") == "hit", f"{inst['name']}: trace.pool {t.get('pool')!r}: {t}"
    # a guest serves one instance: the two took two different QEMU processes, both from the pool
    gone = set(warm) - set(_pool_pids(d.run_dir))
    assert len(gone) == 2, f"both warm guests should have left the pool: before {warm}, now {_pool_pids(d.run_dir)}"
    took = set()
    for inst in (a, b):
        log = os.path.join(d.run_dir, "instances", inst["id"], "serial.log")
        assert MARKER in open(log, errors="replace").read(), f"{inst['id']}: no marker in {log}"
        took |= {p for p in gone if _cwd(p) == os.path.join(d.run_dir, "instances", inst["id"])}
    assert took == gone, f"each instance runs one of the pool's guests: {gone} vs {took}"

    # miss: take more than the pool has before it refills (count 3, the pool refills 2 at a time)
    st, js, raw = c.call("POST", "/v1/instances?wait=ready&timeout=30", {"name": "many", "pool": "warm", "count": 3},
                         timeout=60)
    assert st == 201, raw[:400]
    uses = sorted(i["trace"].get("pool") for i in js["instances"])
    assert "miss" in uses and all(u in ("hit", "miss") for u in uses), f"trace.pool of count 3: {uses}"
    assert all(i["state"] == "running" and i["ready"] for i in js["instances"]), raw[:400]

    # refill: back to 2 warm, with new processes
    _wait_warm(c, "warm", 2)
    again = _pool_pids(d.run_dir)
    assert len(again) == 2 and not set(again) & set(warm), f"refilled pool {again} vs first {warm}"

    # no implicit match with a cmdline of its own: booted cold, nothing taken
    cold = _create(c, {"name": "cold", "driver": "qemu", "image": "hello", "config": {"accel": "tcg"},
                       "resources": {"memory_mb": 32}, "ready": {"serial": MARKER}, "cmdline": "vnf=cold"})
    assert "pool" not in cold["trace"], f"a create with a cmdline matched a pool: {cold['trace']}"
    assert _pool_pids(d.run_dir) == again, "a cold create took a pool guest"
    for i in [a, b, cold] + js["instances"]:
        c.stop_and_remove(i["id"], timeout=20)

    # pool removed: its guests go
    st, _, raw = c.call("DELETE", "/v1/pools/warm")
    assert st == 204, raw[:300]
    h.wait_until(lambda: not _pool_pids(d.run_dir), 20, "the removed pool's guests to end")


def test_pool_guest_killed_is_replaced():
    d = _dev()
    c = _setup(d, size=1, cli=True)
    p = h.cli(["pool", "ls", "--core", d.url])
    assert p.returncode == 0 and "warm" in p.stdout and "MICROVIM-VNF READY" in p.stdout, p.stdout + p.stderr
    [pid] = _pool_pids(d.run_dir)
    os.kill(pid, signal.SIGKILL)
    h.wait_until(lambda: (p := _pool_pids(d.run_dir)) and p != [pid] and p, 30, "a new guest after kill -9")
    _wait_warm(c, "warm", 1)
    inst = _create(c, {"name": "after-kill", "pool": "warm"})
    assert inst["trace"].get("pool") == "hit", inst["trace"]
    c.stop_and_remove(inst["id"], timeout=20)
    p = h.cli(["pool", "rm", "warm", "--core", d.url])
    assert p.returncode == 0, p.stderr
    p = h.cli(["pool", "rm", "warm", "--core", d.url])
    assert p.returncode != 0 and "not_found" in p.stderr, f"a second pool rm: {p.returncode} {p.stderr}"


def _core_node_pool(node_name, pool, size):
    """A core and one node (apart, so that the node can be killed and started again), image
    hello and pool `pool` of `size`, all warm. Returns (core, client, node)."""
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name=node_name)
    h.on_teardown(lambda: _kill_qemus(node.run_dir))
    r = subprocess.run([h.BIN, "image", "add", "hello", "--core", core.url, "--kernel", KERNEL],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    st, js, raw = c.call("POST", "/v1/pools", {"name": pool, "driver": "qemu", "image": "hello", "size": size,
                                               "ready": {"serial": MARKER}, "config": {"accel": "tcg"}})
    assert st == 201, raw[:400]
    _wait_warm(c, pool, size)
    return core, c, node


def test_pool_survives_node_restart():
    core, c, node = _core_node_pool("n-pool", "keep", 2)
    before = _pool_pids(node.run_dir)
    assert len(before) == 2, before

    node.stop(sig=signal.SIGKILL)
    node2 = h.start_node(core.url, name="n-pool", data_dir=node.data_dir, run_dir=node.run_dir)
    # the core lists the node as ready from before the kill: wait for the new process's
    # registration, which makes the core forget the old stock until the node says it again
    h.wait_until(lambda: "registered with" in open(node2.log_path).read(), 20, "the restarted node registered",
                 0.05)
    _wait_warm(c, "keep", 2)
    assert _pool_pids(node2.run_dir) == before, \
        f"the paused guests were not re-attached: before {before}, after {_pool_pids(node2.run_dir)}"
    inst = _create(c, {"name": "after-restart", "pool": "keep"})
    assert inst["trace"].get("pool") == "hit", inst["trace"]
    assert not set(_pool_pids(node2.run_dir)) & {p for p in before if p not in _pool_pids(node2.run_dir)}
    c.stop_and_remove(inst["id"], timeout=20)


def _wait_state(c, iid, state, timeout=30):
    def check():
        st, js, raw = c.call("GET", f"/v1/instances/{iid}")
        return js if st == 200 and js.get("state") == state else None
    return h.wait_until(check, timeout, f"instance {iid} {state}", 0.05)


def test_pooled_instance_stop_start_restart():
    """A pooled guest serves one run: the instance's next runs (start after a stop, restart)
    boot cold, on the same node, with a new QEMU process, and their trace says pool miss."""
    d = _dev()
    c = _setup(d, size=1)
    a = _create(c, {"name": "pooled", "pool": "warm"})
    assert a["trace"].get("pool") == "hit", a["trace"]
    idir = os.path.join(d.run_dir, "instances", a["id"])
    [first] = [p for p in _qemu_pids(d.run_dir) if _cwd(p) == idir]
    _wait_warm(c, "warm", 1)  # refilled: a later run could take from it, and must not

    st, js, raw = c.call("DELETE", f"/v1/instances/{a['id']}?wait=stopped&timeout=20", timeout=40)
    assert st == 200 and js["state"] == "stopped", f"stop -> {st}: {raw[:400]!r}"
    h.wait_until(lambda: first not in _qemu_pids(d.run_dir), 20, "the pooled guest's QEMU to end")
    warm = _pool_pids(d.run_dir)

    runs = []
    for verb in ("start", "restart"):
        st, js, raw = c.call("POST", f"/v1/instances/{a['id']}/{verb}?wait=ready&timeout=30", timeout=60)
        assert st == 200, f"{verb} -> {st}: {raw[:400]!r}"
        assert js["state"] == "running" and js.get("ready") is True, f"{verb}: not running/ready: {raw[:400]!r}"
        assert js["trace"].get("pool") == "miss", f"{verb}: trace.pool {js['trace'].get('pool')!r}: {js['trace']}"
        assert js["run"] == len(runs) + 1, f"{verb}: run {js['run']}"
        pids = [p for p in _qemu_pids(d.run_dir) if _cwd(p) == idir]
        assert len(pids) == 1 and pids[0] != first and pids[0] not in runs, f"{verb}: QEMU {pids}, before {runs}"
        runs.append(pids[0])
        log = os.path.join(idir, "serial.log")
        assert MARKER in open(log, errors="replace").read(), f"{verb}: no marker in {log}"
        assert _pool_pids(d.run_dir) == warm, f"{verb}: the pool's guest was taken: {warm} -> {_pool_pids(d.run_dir)}"
    h.wait_until(lambda: runs[0] not in _qemu_pids(d.run_dir), 20, "the first cold run's QEMU to end")
    c.stop_and_remove(a["id"], timeout=20)


def test_pool_placement_prefers_warm_node():
    """Two nodes, a pool of 1: only one node holds its warm guest. Under --schedule spread a
    cold create goes to the emptier node, yet every pooled create goes where the warm guest
    is (and is a hit), even once that node is the fuller one."""
    core = h.start_core(extra=["--schedule", "spread"])
    c = core.client()
    nodes = [h.start_node(core.url, name=f"n-warm-{k}") for k in "ab"]
    for n in nodes:
        h.on_teardown(lambda n=n: _kill_qemus(n.run_dir))
    r = subprocess.run([h.BIN, "image", "add", "hello", "--core", core.url, "--kernel", KERNEL],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    guest = {"driver": "qemu", "image": "hello", "ready": {"serial": MARKER}, "config": {"accel": "tcg"},
             "resources": {"memory_mb": 32}}
    st, js, raw = c.call("POST", "/v1/pools", dict(guest, name="one", size=1))
    assert st == 201, raw[:400]
    pool = _wait_warm(c, "one", 1)
    [holder] = [n["id"] for n in pool["nodes"] if n["warm"] == 1]
    made = []
    for k in range(3):
        _wait_warm(c, "one", 1)
        inst = _create(c, {"name": f"pooled-{k}", "pool": "one"})
        made.append(inst)
        assert inst["node"] == holder, f"pooled create {k} placed on {inst['node']}, the warm guest is on {holder}"
        assert inst["trace"].get("pool") == "hit", inst["trace"]
        if k == 1:  # the holder is now the fuller node: spread alone puts a cold create elsewhere
            cold = _create(c, dict(guest, name="cold", cmdline="vnf=cold"))
            made.append(cold)
            assert cold["node"] != holder, f"spread put a cold create on the fuller node {holder}"
    for i in made:
        c.stop_and_remove(i["id"], timeout=20)


def _qmp_status(sock_path):
    """QEMU's run state ("running", "paused") on a fresh QMP connection, or None."""
    import json
    import socket as so
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(sock_path)
        s.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n')
        buf = b""
        for _ in range(50):
            chunk = s.recv(4096)
            if not chunk:
                return None
            buf += chunk
            for line in buf.split(b"\n"):
                if b'"status"' in line:
                    return json.loads(line)["return"]["status"]
        return None
    except OSError:
        return None
    finally:
        s.close()


def _qmp_stop(sock_path):
    import socket as so
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(sock_path)
        s.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"stop"}\n')
        buf = b""
        while buf.count(b'"return"') < 2:
            chunk = s.recv(4096)
            assert chunk, "QMP closed before answering stop"
            buf += chunk
    finally:
        s.close()


def test_pooled_instance_left_paused_resumed_by_node_restart():
    """A node killed between a take's record and its resume leaves the guest paused: the
    restarted node re-attaches the instance and resumes it (here the pause is made by
    hand, through QMP, before the kill)."""
    core, c, node = _core_node_pool("n-paused", "p", 1)
    inst = _create(c, {"name": "taken", "pool": "p"})
    assert inst["trace"].get("pool") == "hit", inst["trace"]
    sock = os.path.join(node.run_dir, "instances", inst["id"], "qmp.sock")
    assert _qmp_status(sock) == "running"
    _qmp_stop(sock)
    assert _qmp_status(sock) == "paused"
    node.stop(sig=signal.SIGKILL)
    h.start_node(core.url, name="n-paused", data_dir=node.data_dir, run_dir=node.run_dir)
    h.wait_until(lambda: _qmp_status(sock) == "running", 30, "the re-attached guest resumed")
    st, js, raw = c.call("GET", f"/v1/instances/{inst['id']}")
    assert st == 200 and js["state"] == "running", raw[:400]
    c.stop_and_remove(inst["id"], timeout=20)
