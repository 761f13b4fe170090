"""The network phase through the whole VIM: a dev VIM runs in network and mount
namespaces this test makes (nothing touches the host's network), with a bridge it
creates (--bridge). Checked with `ip` and `bridge` inside those namespaces: exec
instances get a veth whose inner end is eth0 in a netns of their own, reachable across
the bridge; qemu instances get a tap on the bridge; every interface, namespace, process
and file is gone after delete, over many cycles."""
import concurrent.futures
import ctypes
import os
import re
import subprocess

import harness as h

BRIDGE = "mvbr0"
NET = "10.99.0"  # addresses that exist only inside this test's namespaces


class NsDev(h.Daemon):
    """`microvim dev` started inside new network and mount namespaces (same pid)."""

    def __init__(self, port, data_dir, exec_allow):
        super().__init__("dev", [], h.tmpdir("mv-netdev-"), url=f"http://127.0.0.1:{port}")
        setup = ("mount --make-rprivate / && mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && "
                 "ip link set lo up && exec \"$0\" \"$@\"")
        self.args = ["unshare", "--net", "--mount", "sh", "-c", setup, h.BIN, "dev",
                     "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
                     "--run-dir", os.path.join(data_dir, "run"), "--exec-allow", exec_allow,
                     "--bridge", BRIDGE]
        self.data_dir = data_dir
        self._pool = None

    def api(self, method, path, body=None, timeout=40.0):
        """HTTP to the dev VIM from a thread of this process that has joined its network
        namespace (setns is per thread): (status, parsed JSON or None), status 0 for no
        answer. Not a process per request: starting an interpreter under nsenter for each
        call cost 0.3-1 s on a busy host, and test_twenty_cycles_leave_nothing makes 60."""
        if self._pool is None:
            # until unshare(1) has run, the pid is still in the host's namespace
            h.wait_until(lambda: _netns(self.pid) not in (None, _netns("self")), h.READY_TIMEOUT,
                         "the dev VIM in a network namespace of its own")
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=_enter_netns,
                                                               initargs=(self.pid,))
        st, js, _ = self._pool.submit(h.call, self.url, method, path, body, None, timeout).result(timeout + 10)
        return st, js

    def stop(self, *args, **kwargs):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        return super().stop(*args, **kwargs)


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _netns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _enter_netns(pid):
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns into the network namespace of pid {pid}: {os.strerror(e)}")
    finally:
        os.close(fd)


def ns(pid, *cmd, check=True, mount=False):
    """Runs cmd in the namespaces of pid (network; and mount with mount=True)."""
    args = ["nsenter", "-t", str(pid), "-n"] + (["-m"] if mount else []) + ["--"] + list(cmd)
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if check:
        assert r.returncode == 0, f"{' '.join(args)} -> {r.returncode}: {r.stderr.strip()}"
    return r.stdout


def api(d, method, path, body=None):
    return d.api(method, path, body)


def start():
    if os.geteuid() != 0:
        raise AssertionError("test_network needs root (CI runs as root): namespaces, bridges")
    port = h.free_port()
    d = NsDev(port, os.path.join(h.tmpdir("mv-netdata-"), "data"), "/bin/sleep").start()
    h.wait_until(lambda: d.alive() and api(d, "GET", "/v1/nodes")[0] == 200 and
                 any(n["state"] == "ready" and BRIDGE in n.get("bridges", [])
                     for n in api(d, "GET", "/v1/nodes")[1]["nodes"]),
                 h.READY_TIMEOUT, "the namespaced dev VIM with its bridge")
    return d


def links(pid):
    return ns(pid, "ip", "-o", "link", "show")


def leftovers(d):
    """Interfaces and namespaces the VIM made that still exist."""
    mine = [l.split(":")[1].strip().split("@")[0] for l in links(d.pid).splitlines()
            if re.match(r"\d+: mv", l) and BRIDGE not in l.split(":")[1]]
    nsl = ns(d.pid, "ls", "/run/netns", mount=True).split()
    return mine, nsl


def create(d, body, wait="running"):
    st, inst = api(d, "POST", f"/v1/instances?wait={wait}&timeout=30", body)
    assert st == 201 and inst and inst.get("state") == "running", f"create -> {st}: {inst}"
    return inst


def remove(d, iid):
    st, inst = api(d, "DELETE", f"/v1/instances/{iid}?wait=stopped&timeout=20")
    assert st == 200, f"DELETE {iid} -> {st}: {inst}"
    st, _ = api(d, "DELETE", f"/v1/instances/{iid}")
    assert st == 204, f"purge {iid} -> {st}"


def test_exec_in_own_netns_across_the_bridge():
    d = start()
    tok = h.unique_arg()
    inst = create(d, h.exec_body("net-exec", [tok], network={"bridge": BRIDGE}))
    iid = inst["id"]
    assert inst["trace"]["phases"]["network"] > 0, f"no network phase: {inst['trace']}"
    host_end = f"mv{iid[:12]}"
    show = ns(d.pid, "ip", "-o", "link", "show", host_end)
    assert f"master {BRIDGE}" in show and "UP" in show, f"veth host end not on the bridge: {show}"
    assert host_end in ns(d.pid, "bridge", "link", "show"), "bridge does not list the veth"
    assert f"mv-{iid[:12]}" in ns(d.pid, "ip", "netns", "list", mount=True)
    pids = h.procs_with_arg(tok)
    assert len(pids) == 1, f"expected one instance process, saw {pids}"
    pid = pids[0]
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink(f"/proc/{d.pid}/ns/net"), \
        "the process runs in the VIM's own network namespace"
    inner = links(pid)
    assert re.search(r"\d+: eth0@\S+: <[^>]*UP", inner), f"no eth0 up in the instance's netns: {inner}"
    # traffic across the bridge, on addresses inside our namespaces only
    ns(d.pid, "ip", "addr", "add", f"{NET}.1/24", "dev", BRIDGE)
    ns(pid, "ip", "addr", "add", f"{NET}.2/24", "dev", "eth0")
    r = subprocess.run(["nsenter", "-t", str(d.pid), "-n", "--", "ping", "-c1", "-W2", f"{NET}.2"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, f"no ping across the bridge: {r.stdout} {r.stderr}"
    remove(d, iid)
    h.wait_until(lambda: not h.procs_with_arg(tok), 3, "the instance process gone")
    mine, nsl = leftovers(d)
    assert not mine and not nsl, f"left behind: links {mine}, netns {nsl}"


def test_twenty_cycles_leave_nothing():
    d = start()
    for i in range(20):
        tok = h.unique_arg()
        inst = create(d, h.exec_body(f"cyc-{i}", [tok], network={"bridge": BRIDGE}))
        remove(d, inst["id"])
        h.wait_until(lambda: not h.procs_with_arg(tok), 3, f"cycle {i}: process gone")
    mine, nsl = leftovers(d)
    assert not mine and not nsl, f"after 20 cycles: links {mine}, netns {nsl}"
    run_dir = os.path.join(d.data_dir, "run", "instances")
    assert not os.path.isdir(run_dir) or not os.listdir(run_dir), f"instance dirs left: {os.listdir(run_dir)}"


def test_qemu_tap_on_the_bridge():
    d = start()
    st, nodes = api(d, "GET", "/v1/nodes")
    if "qemu" not in nodes["nodes"][0]["drivers"]:
        raise AssertionError("no qemu driver on this node (scripts/install-deps installs qemu-system-x86)")
    kernel = str(h.ROOT / "build" / "vnf" / "hello")
    r = subprocess.run(["nsenter", "-t", str(d.pid), "-n", "--", h.BIN, "image", "add", "hello",
                        "--core", d.url, "--kernel", kernel], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"image add: {r.stderr}"
    for i in range(5):
        inst = create(d, {"name": f"vm-{i}", "driver": "qemu", "image": "hello", "config": {"accel": "tcg"},
                          "network": {"bridge": BRIDGE}, "ready": {"serial": "MICROVIM-VNF READY"}},
                      wait="ready")
        tap = f"mv{inst['id'][:12]}"
        show = ns(d.pid, "ip", "-o", "link", "show", tap)
        assert f"master {BRIDGE}" in show, f"tap not on the bridge: {show}"
        assert inst.get("ready") is True and inst["trace"]["phases"].get("boot", 0) > 0
        if i == 0:  # restarted: the same network, its tap made again on the bridge
            st, again = api(d, "POST", f"/v1/instances/{inst['id']}/restart?wait=ready&timeout=30")
            assert st == 200 and again["ready"] is True and again["run"] == 1, f"restart -> {st}: {again}"
            show = ns(d.pid, "ip", "-o", "link", "show", tap)
            assert f"master {BRIDGE}" in show, f"tap not on the bridge after the restart: {show}"
        remove(d, inst["id"])
    mine, nsl = leftovers(d)
    assert not mine and not nsl, f"after qemu cycles: links {mine}, netns {nsl}"
    left = subprocess.run(["pgrep", "-f", "microvim-"], capture_output=True, text=True).stdout.split()
    qemu_left = [p for p in left if "qemu" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
                 and d.data_dir in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")]
    assert not qemu_left, f"qemu processes left: {qemu_left}"


def test_missing_bridge_is_refused():
    d = start()
    st, body = api(d, "POST", "/v1/instances", h.exec_body("nobr", ["1"], network={"bridge": "nosuchbr"}))
    assert st == 422 and body["error"]["code"] == "no_node" and "bridge" in body["error"]["message"], \
        f"{st}: {body}"
    st, body = api(d, "GET", "/v1/instances")
    assert st == 200 and body["instances"] == [], "a refused create left a record"


def _node_bridges(d):
    st, body = api(d, "GET", "/v1/nodes")
    assert st == 200, f"GET /v1/nodes -> {st}: {body}"
    return [b for n in body["nodes"] if n["state"] == "ready" for b in n.get("bridges", [])]


def test_bridge_added_and_deleted_while_the_node_runs():
    """A bridge made after the node started is advertised (rtnetlink), and one deleted is
    withdrawn: placement follows without restarting the node."""
    d = start()
    late = "mvlate0"
    tok = h.unique_arg()
    body = h.exec_body("late", [tok], network={"bridge": late})

    st, err = api(d, "POST", "/v1/instances", body)
    assert st == 422 and err["error"]["code"] == "no_node", f"before the bridge exists: {st}: {err}"

    ns(d.pid, "ip", "link", "add", late, "type", "bridge")
    ns(d.pid, "ip", "link", "set", late, "up")
    h.wait_until(lambda: late in _node_bridges(d), 10, f"the core to list bridge {late}")
    inst = create(d, body)
    show = ns(d.pid, "ip", "-o", "link", "show", f"mv{inst['id'][:12]}", check=False)
    assert f"master {late}" in show, f"veth not on the late bridge: {show}"
    remove(d, inst["id"])

    ns(d.pid, "ip", "link", "del", late)
    h.wait_until(lambda: late not in _node_bridges(d), 10, f"the core to drop bridge {late}")
    assert BRIDGE in _node_bridges(d), "the bridge made at start was dropped too"
    st, err = api(d, "POST", "/v1/instances", body)
    assert st == 422 and err["error"]["code"] == "no_node", f"after the bridge was deleted: {st}: {err}"
    d.stop()
