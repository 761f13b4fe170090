"""faultlib — helpers of the fault-injection suite (test_faults.py); stdlib only.

Builds on harness.py (which it does not change): daemons are harness.Daemon objects,
registered with the harness so that its teardown stops them by PID and scans their logs.
What this adds:
  - kill9 / restart of a Daemon in place (same args: same port, data dir, run dir);
  - a timeline of what was injected, printed in the test output;
  - the seed (MICROVIM_FAULT_SEED overrides a random one);
  - per-node checks on the run dir (instance dirs) and on registrations (node log);
  - network namespaces joined by veth pairs, for partitions, with a thread pool whose
    threads live in one namespace (so the test can speak to a core that listens only
    there); everything made is removed, even on failure.
"""

import concurrent.futures
import ctypes
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import harness as h

ASAN = "/asan/" in h.BIN


def seed_from_env():
    s = os.environ.get("MICROVIM_FAULT_SEED")
    if s:
        return int(s)
    return random.SystemRandom().randint(1, 2**31 - 1)


# ---- timeline -------------------------------------------------------------------------

class Timeline:
    """Time-stamped notes (seconds since the test began), printed as they happen and
    kept for failure messages."""

    def __init__(self, name):
        self.name = name
        self.t0 = time.monotonic()
        self.lines = []
        self._lock = threading.Lock()

    def note(self, msg):
        line = f"[{self.name} +{time.monotonic() - self.t0:7.3f}s] {msg}"
        with self._lock:
            self.lines.append(line)
        print(line, flush=True)

    def text(self, last=80):
        with self._lock:
            return "\n".join(self.lines[-last:])


# ---- daemons: kill -9 and restart in place ------------------------------------------------

def kill9(d):
    """SIGKILL by PID (harness.Daemon.stop with SIGKILL: waits for it, scans the log).
    A daemon that had already died on its own is recorded as a problem by the harness."""
    return d.stop(sig=signal.SIGKILL)


def sigterm(d, timeout=15.0):
    """SIGTERM by PID; returns the exit status (None if it did not exit in time, then it
    is killed). The caller judges the status."""
    if not d.alive():
        return d.stop(expect_alive=True)
    os.kill(d.pid, signal.SIGTERM)
    try:
        rc = d.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
    d.stop(sig=signal.SIGKILL, expect_alive=False)  # closes the log, scans it
    return rc


def restart(d):
    """Starts the same Daemon again (same argv: port, data dir, run dir, name). The
    harness's registry keeps one entry per daemon object."""
    d.start()
    # Daemon.start appends itself to the harness registry each time; keep it once.
    while h._daemons.count(d) > 1:
        h._daemons.remove(d)
    seen, kept = set(), []
    for label, path in h._logs_for_report:
        if path not in seen:
            seen.add(path)
            kept.append((label, path))
    h._logs_for_report[:] = kept
    return d


def wait_core_ready(d, client=None, timeout=None):
    c = client or d.client()

    def ok():
        st, js, _ = c.call("GET", "/v1/health", timeout=2)
        return st == 200 and isinstance(js, dict) and js.get("status") == "ok"
    _wait_alive(d, ok, timeout or h.READY_TIMEOUT, "core health")


def registrations(d):
    """How many times the node's log says it registered."""
    return len(re.findall(r"registered with \S+ as ", d.log_text()))


def wait_registered(d, before, timeout=None):
    _wait_alive(d, lambda: registrations(d) > before, timeout or h.READY_TIMEOUT,
                f"node {getattr(d, 'name', '?')} registered (more than {before} times)")


def _wait_alive(d, fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        if not d.alive():
            raise AssertionError(f"{d.kind} (pid {d.pid}) exited while waiting for {what}: "
                                 f"status {d.proc.poll()}; log:\n{d.log_tail(30)}")
        if fn():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                 f"log:\n{d.log_tail(30)}")
        time.sleep(0.05)


def wait_nodes_ready(client, names, timeout=20.0):
    names = set(names)

    def ok():
        st, js, _ = client.call("GET", "/v1/nodes", timeout=3)
        if st != 200 or not isinstance(js, dict):
            return None
        ready = {n.get("name") for n in js.get("nodes") or [] if n.get("state") == "ready"}
        return names <= ready
    h.wait_until(ok, timeout, f"nodes {sorted(names)} ready at the core", 0.1)


def node_ids(client):
    return {n["name"]: n["id"] for n in client.nodes()}


def log_grep(d, pattern, limit=20):
    """Lines of a daemon's log matching a regex (the last `limit`)."""
    rx = re.compile(pattern)
    return [ln for ln in d.log_text().splitlines() if rx.search(ln)][-limit:]


# ---- processes and files ---------------------------------------------------------------

def pid_alive_with(pid, token):
    """True when pid is a live (non-zombie) process whose argv carries token."""
    argv = h._argv(pid)
    if not argv or str(token) not in argv[1:]:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return False


def instance_dirs(run_dir):
    p = os.path.join(run_dir, "instances")
    try:
        return sorted(os.listdir(p))
    except FileNotFoundError:
        return []


def record_of(run_dir, iid):
    """An instance's record.json on the node, parsed (None if missing or unreadable)."""
    try:
        with open(os.path.join(run_dir, "instances", iid, "record.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def record_state(run_dir, iid):
    return (record_of(run_dir, iid) or {}).get("state")


def bytes_waiting_from(pid, port):
    """Bytes that reached pid's TCP sockets from peer port `port` and that pid has not read
    yet (the rx_queue of /proc/PID/net/tcp and tcp6, for the sockets pid holds)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return 0
    waiting = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    col = line.split()
                    if len(col) > 9 and col[9] in inodes and int(col[2].rsplit(":", 1)[1], 16) == port:
                        waiting += int(col[4].split(":")[1], 16)
        except OSError:
            continue
    return waiting


def wait_quiet(pid, port, timeout=5.0):
    """Waits until pid has been idle for 3 samples 20 ms apart: every thread asleep (state S)
    and nothing unread from peer `port`. A node idle like that has sent its long-poll, so the
    core will answer it with the next assignment (the node always keeps one poll out; between
    two polls it is busy reading or sending). Returns False if it never got quiet."""
    quiet, deadline = 0, time.monotonic() + timeout
    while quiet < 3 and time.monotonic() < deadline:
        try:
            states = [open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0]
                      for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            states = ["?"]
        quiet = quiet + 1 if all(s == "S" for s in states) and bytes_waiting_from(pid, port) == 0 else 0
        time.sleep(0.02)
    return quiet >= 3


def _stat_fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rindex(")") + 2:].split()
    except (OSError, ValueError):
        return None


def ppid_of(pid):
    f = _stat_fields(pid)
    return int(f[1]) if f else None


def start_time(pid):
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat)."""
    f = _stat_fields(pid)
    return int(f[19]) if f else None


# ---- network namespaces --------------------------------------------------------------------

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _run(args, check=True, timeout=10):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} -> {p.returncode}: {p.stderr.strip()}")
    return p


def netns_available():
    """(True, "") when this process may create network namespaces and veth pairs."""
    if os.geteuid() != 0:
        return False, "not root"
    name = f"mvfprobe{os.getpid() % 100000}"
    try:
        _run(["ip", "netns", "add", name])
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return False, f"ip netns add failed: {e}"
    try:
        _run(["ip", "-n", name, "link", "add", "mvfpa", "type", "veth", "peer", "name", "mvfpb"])
        return True, ""
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        return False, f"veth in a namespace failed: {e}"
    finally:
        _run(["ip", "netns", "del", name], check=False)


class Topology:
    """Three namespaces: C (core) joined to A and to B by one veth pair each.
    The core listens on CORE_IP, an address on C's loopback that exists only inside C;
    A and B reach it through their veth. Cutting A's link (C's end down) leaves B's.

        A  10.X.1.2 --veth-- 10.X.1.1  C (lo: 10.X.0.1)  10.X.2.1 --veth-- 10.X.2.2  B
    """

    def __init__(self):
        tag = f"{os.getpid() % 1000:03d}{random.randint(0, 99):02d}"
        x = 200 + random.randint(0, 50)
        self.ns = {k: f"mvf{tag}{k}" for k in ("c", "a", "b")}
        self.dev = {"ca": f"mvf{tag}ca", "ac": f"mvf{tag}ac", "cb": f"mvf{tag}cb", "bc": f"mvf{tag}bc"}
        self.core_ip = f"10.{x}.0.1"
        self.ip = {"ca": f"10.{x}.1.1", "ac": f"10.{x}.1.2", "cb": f"10.{x}.2.1", "bc": f"10.{x}.2.2"}
        self.made = []
        self._pool = None

    def up(self):
        ns, dev, ip = self.ns, self.dev, self.ip
        for k in ("c", "a", "b"):
            _run(["ip", "netns", "add", ns[k]])
            self.made.append(ns[k])
            _run(["ip", "-n", ns[k], "link", "set", "lo", "up"])
        _run(["ip", "-n", ns["c"], "addr", "add", f"{self.core_ip}/32", "dev", "lo"])
        for near, far, nsn, nsf in (("ca", "ac", "c", "a"), ("cb", "bc", "c", "b")):
            _run(["ip", "-n", ns[nsn], "link", "add", dev[near], "type", "veth",
                  "peer", "name", dev[far], "netns", ns[nsf]])
            _run(["ip", "-n", ns[nsn], "addr", "add", f"{ip[near]}/24", "dev", dev[near]])
            _run(["ip", "-n", ns[nsf], "addr", "add", f"{ip[far]}/24", "dev", dev[far]])
            _run(["ip", "-n", ns[nsn], "link", "set", dev[near], "up"])
            _run(["ip", "-n", ns[nsf], "link", "set", dev[far], "up"])
            _run(["ip", "-n", ns[nsf], "route", "add", f"{self.core_ip}/32", "via", ip[near]])
        return self

    def cut(self, side="a"):
        _run(["ip", "-n", self.ns["c"], "link", "set", self.dev["c" + side], "down"])

    def heal(self, side="a"):
        _run(["ip", "-n", self.ns["c"], "link", "set", self.dev["c" + side], "up"])

    def wrap(self, nskey, argv):
        return ["ip", "netns", "exec", self.ns[nskey]] + list(argv)

    # HTTP from inside C: the threads of this pool have joined C's network namespace.
    def _enter_c(self):
        fd = os.open(f"/run/netns/{self.ns['c']}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns {self.ns['c']}: {os.strerror(e)}")
        finally:
            os.close(fd)

    def pool(self):
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=6, initializer=self._enter_c,
                                                               thread_name_prefix="netns-c")
        return self._pool

    def down(self):
        """Removes the veths and namespaces (processes inside must have been stopped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        errs = []
        if self.ns["c"] in self.made:
            for d in ("ca", "cb"):
                _run(["ip", "-n", self.ns["c"], "link", "del", self.dev[d]], check=False)
        for n in reversed(self.made):
            p = _run(["ip", "netns", "del", n], check=False)
            if p.returncode != 0:
                errs.append(f"ip netns del {n}: {p.stderr.strip()}")
        self.made.clear()
        return errs


class NsClient(h.Client):
    """A harness Client whose requests are made from threads inside a namespace."""

    def __init__(self, url, token, topo):
        super().__init__(url, token)
        self.topo = topo

    def call(self, method, path, body=None, headers=None, timeout=15.0, token="__default__"):
        tok = self.token if token == "__default__" else token
        fut = self.topo.pool().submit(h.call, self.url, method, path, body, headers, timeout, tok)
        return fut.result(timeout + 10)


def ns_daemon(topo, nskey, kind, args, url, token=None):
    """A harness Daemon run with `ip netns exec NS` (which execs: the PID is the daemon's)."""
    work = h.tmpdir(f"mv-{kind}-ns-")
    d = h.Daemon(kind, list(args), work, url=url, token=token)
    d.args = topo.wrap(nskey, [h.BIN] + list(args))
    d.start()
    return d
