"""harness — helpers for microvim's black-box integration tests (stdlib only).

Everything a test starts is registered here and torn down by `teardown()`, which the
runner (run.py) calls after every test: daemons are stopped by PID (SIGTERM, bounded
wait, then SIGKILL), their logs are scanned for sanitizer reports, instance processes
left behind are killed by PID, temp dirs are removed. Problems found during teardown
fail the test.

Servers are only ever bound to 127.0.0.1 (except the one refusal check in test_auth,
which must not start at all).
"""

import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("MICROVIM_BIN") or str(ROOT / "build" / "microvim")
EXEC_ALLOW = "/bin/sleep,/bin/true,/bin/false,/bin/sh"
# Start-up of an ASan build is slower; still bounded.
READY_TIMEOUT = float(os.environ.get("MICROVIM_READY_TIMEOUT", "15"))
STOP_TIMEOUT = 10.0

SANITIZER_MARKS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "UndefinedBehaviorSanitizer",
    "SUMMARY: AddressSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer",
)

# ---- per-test registry --------------------------------------------------------------

_daemons = []     # Daemon objects started during the current test
_tmpdirs = []     # temp dirs to remove
_tokens = set()   # unique argv tokens of instance processes started by this test
_problems = []    # teardown problems (strings) that fail the test
_logs_for_report = []  # (label, path) of daemon logs, to print on failure
_cleanups = []    # functions teardown() calls first, newest first (e.g. a browser to stop)
_tls_ca = None    # the CA file https:// calls verify with (trust_ca); None: the system's


def trust_ca(path):
    """https:// calls of this test verify the server with this CA file."""
    global _tls_ca
    _tls_ca = path


def tls_context(cert=None, key=None):
    """A client context trusting trust_ca's CA, presenting cert/key when given."""
    ctx = ssl.create_default_context(cafile=_tls_ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def problem(msg):
    _problems.append(msg)


def on_teardown(fn):
    """fn() runs at teardown, before the daemons are stopped; what it raises is a problem."""
    _cleanups.append(fn)


def tmpdir(prefix="mv-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_arg():
    """A unique number usable as `sleep` argument; registered so leftovers are found."""
    tok = str(random.randint(100_000_000, 999_999_999))
    _tokens.add(tok)
    return tok


def register_token(tok):
    _tokens.add(str(tok))


# ---- processes of instances -----------------------------------------------------------

def _argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None  # kernel thread or zombie
    return [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")]


# Instance processes are these programs (the --exec-allow list); a process is only ever
# matched (and, at teardown, killed) when it runs one of them with a test's unique token.
INSTANCE_PROGRAMS = {"sleep", "sh", "true", "false", "dash", "bash"}


def procs_matching(tokens):
    """{token: [pid, ...]} of live instance processes (INSTANCE_PROGRAMS) whose argv[1:]
    contains the token, e.g. `/bin/sleep TOKEN` or `/bin/sh -c "... TOKEN ..."`.
    One token may be given as a plain string (iterating it would match its digits, and
    with them any `sleep 5` on the host)."""
    tokens = {str(tokens)} if isinstance(tokens, (str, int)) else set(str(t) for t in tokens)
    found = {t: [] for t in tokens}
    me = os.getpid()
    for ent in os.listdir("/proc"):
        if not ent.isdigit() or int(ent) == me:
            continue
        argv = _argv(ent)
        if not argv or os.path.basename(argv[0]) not in INSTANCE_PROGRAMS:
            continue
        try:
            with open(f"/proc/{ent}/stat") as f:
                st = f.read()
            if st[st.rindex(")") + 2] == "Z":
                continue
        except (OSError, ValueError, IndexError):
            continue
        for t in tokens:
            if any(a == t or (len(t) >= 9 and t in a) for a in argv[1:]):
                found[t].append(int(ent))
    return found


def procs_with_arg(token):
    return procs_matching([token])[str(token)]


def procs_of_program(program, token):
    """Pids of live instance processes that carry the token and run `program` (argv[0]'s
    base name): for a shell that execs a program, this is the moment after the exec, when
    whatever the shell set up before it (a trap, a session) is in place."""
    return [p for p in procs_with_arg(token) if os.path.basename((_argv(p) or [""])[0]) == program]


def count_procs(tokens):
    return sum(len(v) for v in procs_matching(tokens).values())


def expect_procs(tokens, n, what, timeout=2.0):
    """Waits until exactly n instance processes carry the token(s); returns their pids.
    ("running" means the process exists; its exec may finish a moment later, and until
    then /proc shows no argv, hence the short bounded wait.)"""
    tokens = [tokens] if isinstance(tokens, str) else list(tokens)
    box = {}

    def check():
        pids = sorted(p for v in procs_matching(tokens).values() for p in v)
        box["pids"] = pids
        return (pids,) if len(pids) == n else None  # truthy also for none expected
    try:
        return wait_until(check, timeout, what, 0.02)[0]
    except AssertionError:
        raise AssertionError(f"{what}: expected {n} processes, found {len(box['pids'])} "
                             f"after {timeout} s: {box['pids'][:20]}") from None


def _kill_leftovers(tokens):
    left = [p for pids in procs_matching(tokens).values() for p in pids]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def _kill_guests_in(dirs):
    """Guests (QEMU, under any driver) a stopped node left running, by design, in the test's
    temporary dirs (its instance and pool dirs are there; the guests' argv name them): killed
    by PID, each waited for until gone (init reaps them; bounded). Returns their pids."""
    marks = [d.rstrip("/") + "/" for d in dirs if d]
    me, left = os.getpid(), []
    if not marks:
        return left
    for ent in os.listdir("/proc"):
        if not ent.isdigit() or int(ent) == me:
            continue
        argv = _argv(ent)
        if argv and "qemu" in os.path.basename(argv[0]) and any(m in a for a in argv for m in marks):
            left.append(int(ent))
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    for pid in left:
        while time.monotonic() < deadline and _alive_not_zombie(pid):
            time.sleep(0.02)
    return left


def _alive_not_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return st[st.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return False


# ---- waiting ------------------------------------------------------------------------

# Past this, more load stretches the budgets no further: a machine that busy is not one a
# test run can be judged on, and tests/run's own time limit assumes it (MAX_LOAD_FACTOR x
# the suite budget, plus a margin).
MAX_LOAD_FACTOR = 4.0


def load_factor():
    """Runnable tasks per CPU over the last minute (os.getloadavg), within [1, MAX]."""
    try:
        per_cpu = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 1.0
    return min(MAX_LOAD_FACTOR, max(1.0, per_cpu))


def metric_value(daemon, series):
    """The value of one series of the daemon's /metrics (e.g. 'microvim_instances{state="lost"}'),
    or None when it is not there."""
    st, _, raw = daemon.client().call("GET", "/metrics")
    assert st == 200, f"GET /metrics -> {st}"
    for line in raw.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def wait_until(fn, timeout, what, interval=0.02):
    """Calls fn until it returns something truthy; bounded by timeout (s of an idle
    machine), stretched by the load factor as the runner stretches test budgets: a wait
    for the daemons' work is not a timing assertion, and a busy host slows that work."""
    factor = load_factor()
    deadline = time.monotonic() + timeout * factor
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout * factor:.1f} s ({timeout} s x load factor "
                                 f"{factor:.2f}) waiting for {what}; last: {last!r}")
        time.sleep(interval)


# ---- HTTP -----------------------------------------------------------------------------

def call(base, method, path, body=None, headers=None, timeout=15.0, token=None, context=None):
    """One request. Returns (status, parsed JSON or None, raw bytes). HTTP error statuses
    are answers like any other; status 0 means no answer (refused, reset, timeout, a
    failed TLS handshake). An https:// base is verified with trust_ca's CA, or `context`."""
    url = base.rstrip("/") + path
    data = None
    hdrs = {}
    if body is not None:
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if headers:
        hdrs.update(headers)
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        if url.startswith("https://"):
            context = context or tls_context()
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status = e.code
        try:
            raw = e.read()
        except Exception:  # noqa: BLE001 - a reset while reading the error body
            raw = b""
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout,
            http.client.HTTPException, ssl.SSLError) as e:
        return 0, None, repr(e).encode()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, parsed, raw


class Client:
    def __init__(self, url, token=None):
        self.url = url
        self.token = token

    def call(self, method, path, body=None, headers=None, timeout=15.0, token="__default__"):
        tok = self.token if token == "__default__" else token
        return call(self.url, method, path, body, headers, timeout, tok)

    # conveniences that assert the contract's success answers
    def create(self, body, wait=True, timeout=10, expect=201, headers=None):
        q = f"?wait=running&timeout={timeout}" if wait else ""
        st, js, raw = self.call("POST", "/v1/instances" + q, body, headers=headers,
                                timeout=timeout + 20)
        assert st == expect, f"POST /v1/instances{q} -> {st} (want {expect}): {raw[:600]!r}"
        return instances_of(body, js, raw)

    def get(self, iid):
        st, js, raw = self.call("GET", f"/v1/instances/{iid}")
        assert st == 200, f"GET /v1/instances/{iid} -> {st}: {raw[:400]!r}"
        return js

    def list(self, state=None, limit=1000, max_pages=1000):
        """Every instance (of one state), following the pages' "next" (a bounded loop)."""
        out, after = [], None
        for _ in range(max_pages):
            q = f"?limit={limit}" + (f"&state={state}" if state else "") + (f"&after={after}" if after else "")
            st, js, raw = self.call("GET", "/v1/instances" + q, timeout=30)
            assert st == 200, f"GET /v1/instances{q} -> {st}: {raw[:400]!r}"
            assert isinstance(js, dict) and isinstance(js.get("instances"), list), raw[:400]
            out += js["instances"]
            if "next" not in js:
                return out
            assert after is None or js["next"] > after, f"page after {after} did not move on: {js['next']}"
            after = js["next"]
        raise AssertionError(f"GET /v1/instances: more than {max_pages} pages")

    def nodes(self):
        st, js, raw = self.call("GET", "/v1/nodes")
        assert st == 200, f"GET /v1/nodes -> {st}: {raw[:400]!r}"
        assert isinstance(js, dict) and isinstance(js.get("nodes"), list), raw[:400]
        return js["nodes"]

    def delete(self, iid, wait=False, timeout=10):
        q = f"?wait=stopped&timeout={timeout}" if wait else ""
        return self.call("DELETE", f"/v1/instances/{iid}{q}", timeout=timeout + 20)

    def stop_and_remove(self, iid, timeout=10):
        """DELETE ?wait=stopped (200 stopped, or 204 when it had ended), then DELETE (204)."""
        st, js, raw = self.delete(iid, wait=True, timeout=timeout)
        assert st in (200, 204), f"DELETE {iid}?wait=stopped -> {st}: {raw[:400]!r}"
        if st == 200:
            assert js and js.get("state") == "stopped", f"DELETE ?wait=stopped answered {raw[:400]!r}"
            st, js, raw = self.delete(iid)
            assert st == 204, f"second DELETE {iid} -> {st}: {raw[:400]!r}"

    def wait_state(self, iid, states, timeout=10):
        states = {states} if isinstance(states, str) else set(states)
        box = {}

        def check():
            st, js, raw = self.call("GET", f"/v1/instances/{iid}")
            box["last"] = (st, raw[:300])
            return js if st == 200 and js and js.get("state") in states else None
        try:
            return wait_until(check, timeout, f"instance {iid} in {sorted(states)}", 0.02)
        except AssertionError:
            raise AssertionError(f"instance {iid} did not reach {sorted(states)} in {timeout} s; "
                                 f"last GET: {box.get('last')}") from None


def instances_of(body, js, raw=b""):
    """The instances of a create answer, as a list. API.md: the answer is one INSTANCE when
    the body has no `count`, {"instances": [...]} when it has one."""
    if isinstance(body, dict) and "count" in body:
        assert isinstance(js, dict) and isinstance(js.get("instances"), list), \
            f"create with count must answer {{\"instances\": [...]}}: {raw[:600]!r}"
        return js["instances"]
    assert isinstance(js, dict) and isinstance(js.get("id"), str) and "instances" not in js, \
        f"create without count must answer the INSTANCE itself: {raw[:600]!r}"
    return [js]


HELLO_KERNEL = str(ROOT / "build" / "vnf" / "hello")
HELLO_READY = "MICROVIM-VNF READY"


def qemu_with_hello(d):
    """Fails unless the (only) node of d offers qemu; registers build/vnf/hello as image
    "hello" (what a qemu instance of the tests boots)."""
    st, nodes, _ = d.client().call("GET", "/v1/nodes")
    if "qemu" not in nodes["nodes"][0]["drivers"]:
        raise AssertionError("no qemu driver on this node (scripts/install-deps installs qemu-system-x86)")
    r = cli(["image", "add", "hello", "--core", d.url, "--kernel", HELLO_KERNEL])
    assert r.returncode == 0, r.stderr


def exec_body(name, args, command="/bin/sleep", **extra):
    b = {"name": name, "driver": "exec", "config": {"command": command, "args": list(args)}}
    b.update(extra)
    return b


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


# ---- daemons --------------------------------------------------------------------------

class Daemon:
    def __init__(self, kind, args, workdir, url=None, token=None, env=None):
        self.kind = kind
        self.args = [BIN] + args
        self.workdir = workdir
        self.log_path = os.path.join(workdir, f"{kind}-{len(_daemons)}.log")
        self.url = url
        self.token = token
        self.env = env
        self.proc = None
        self.stopped = False
        self.returncode = None

    def start(self):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self.logf = open(self.log_path, "ab")
        self.logf.write(("$ " + " ".join(self.args) + "\n").encode())
        self.logf.flush()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=self.workdir, env=env)
        self.stopped = False
        _daemons.append(self)
        _logs_for_report.append((f"{self.kind} pid {self.proc.pid}", self.log_path))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def client(self):
        return Client(self.url, self.token)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, expect_alive=True):
        """Stops the process by PID. With SIGTERM a clean exit is expected (status 0 or
        death by SIGTERM, within timeout); otherwise a problem is recorded. The log is
        scanned for sanitizer reports."""
        if self.proc is None or self.stopped:
            return self.returncode
        self.stopped = True
        rc = self.proc.poll()
        if rc is not None:
            if expect_alive:
                problem(f"{self.kind} (pid {self.pid}) had died before it was stopped: "
                        f"status {rc}")
        else:
            try:
                os.kill(self.pid, sig)
            except OSError:
                pass
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                rc = self.proc.wait(timeout=10)
                if sig != signal.SIGKILL:
                    problem(f"{self.kind} (pid {self.pid}) did not exit within {timeout} s of "
                            f"signal {signal.Signals(sig).name}; killed")
            else:
                if sig == signal.SIGTERM and rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                    problem(f"{self.kind} (pid {self.pid}) exited with status {rc} on SIGTERM")
        self.returncode = rc
        try:
            self.logf.close()
        except Exception:  # noqa: BLE001
            pass
        self.scan_sanitizer()
        if self.kind == "dev" and sig == signal.SIGTERM and _tokens:
            # `microvim dev`: SIGTERM stops every instance and cleans up.
            try:
                wait_until(lambda: count_procs(_tokens) == 0, 3.0, "instances gone", 0.05)
            except AssertionError:
                left = _kill_leftovers(_tokens)
                if left:
                    problem(f"dev stopped by SIGTERM but left instance processes {left}")
        return rc

    def scan_sanitizer(self):
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                start = text.rfind("\n", 0, max(0, i - 200)) + 1
                excerpt = "\n".join(text[start:].splitlines()[:40])
                frames = []
                for m in re.finditer(r" in (\S+) ((?:src|tests)/\S+)", text[i:]):
                    f = f"{m.group(1)} {m.group(2)}"
                    if f not in frames:
                        frames.append(f)
                where = ("; project frames: " + ", ".join(frames[:8])) if frames else ""
                problem(f"sanitizer report in {self.kind} log {self.log_path}{where}:\n{excerpt}")
                return


def _wait_ready(d, check, what):
    deadline = time.monotonic() + READY_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if not d.alive():
            raise AssertionError(f"{d.kind} exited during start-up with status {d.proc.poll()}; "
                                 f"log:\n{d.log_tail(30)}")
        try:
            last = check()
            if last is True:
                return
        except AssertionError as e:
            last = str(e)
        time.sleep(0.05)
    raise AssertionError(f"{d.kind} not ready ({what}) within {READY_TIMEOUT} s; last: {last!r}; "
                         f"log:\n{d.log_tail(30)}")


def _health_ok(url, token):
    st, js, raw = call(url, "GET", "/v1/health", timeout=2, token=token)
    if st == 200 and isinstance(js, dict) and js.get("status") == "ok":
        return True
    return (st, raw[:200])


def _node_ready(url, token, name=None):
    st, js, raw = call(url, "GET", "/v1/nodes", timeout=2, token=token)
    if st != 200 or not isinstance(js, dict):
        return (st, raw[:200])
    for n in js.get("nodes") or []:
        if n.get("state") == "ready" and (name is None or n.get("name") == name):
            return True
    return ("no ready node", raw[:300])


# ---- the store: SQLite in the data dir, or PostgreSQL --------------------------------------

# MICROVIM_TEST_PG_URL (a server's URL, tests/integration/pgserver.py starts one; tests/run
# does for its PostgreSQL pass): every core and dev a test starts gets --store, a database of
# its own named after its data dir, so that a core restarted on the same data dir finds its
# state again, as with SQLite.
PG_URL = os.environ.get("MICROVIM_TEST_PG_URL", "")


def pg_database_url(server_url, name):
    """server_url with its database replaced by `name`, created when missing."""
    from pgserver import bindir  # the tests' PostgreSQL helper, next to this file
    parts = urllib.parse.urlsplit(server_url)
    psql = os.path.join(bindir() or "/usr/bin", "psql")
    r = subprocess.run([psql, "-X", "-A", "-t", "-d", server_url, "-c",
                        f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode == 0 and r.stdout.strip() != "1":
        r = subprocess.run([psql, "-X", "-q", "-d", server_url, "-c", f'CREATE DATABASE "{name}"'],
                           capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"cannot make database {name}: {r.stderr.strip()}")
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def store_args(data_dir):
    if not PG_URL:
        return []
    import hashlib
    name = "mv_" + hashlib.sha256(os.path.realpath(data_dir).encode()).hexdigest()[:16]
    return ["--store", pg_database_url(PG_URL, name)]


def start_dev(exec_allow=EXEC_ALLOW, data_dir=None, extra=(), port=None):
    work = tmpdir("mv-dev-")
    port = port or free_port()
    data_dir = data_dir or os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    # the node's instance dirs, logs and records (default /run/microvim/NODE-ID) stay
    # inside the test's temp dir
    run_dir = os.path.join(work, "run")
    args = ["dev", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir, "--run-dir", run_dir]
    args += store_args(data_dir)
    if exec_allow:
        args += ["--exec-allow", exec_allow]
    d = Daemon("dev", args + list(extra), work, url=url).start()
    _wait_ready(d, lambda: _health_ok(url, None), "GET /v1/health")
    _wait_ready(d, lambda: _node_ready(url, None), "a ready node in GET /v1/nodes")
    d.data_dir = data_dir
    d.run_dir = run_dir
    d.port = port
    return d


def start_core(port=None, data_dir=None, token=None, token_file=None, extra=(), scheme="http"):
    """scheme https: extra gives --tls-cert and --tls-key; trust_ca the CA first."""
    work = tmpdir("mv-core-")
    port = port or free_port()
    data_dir = data_dir or os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    url = f"{scheme}://127.0.0.1:{port}"
    args = ["core", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir] + store_args(data_dir)
    if token_file:
        args += ["--token-file", token_file]
    d = Daemon("core", args + list(extra), work, url=url, token=token).start()
    _wait_ready(d, lambda: _health_ok(url, token), "GET /v1/health")
    d.data_dir = data_dir
    d.port = port
    return d


def start_auth_core(extra=(), data_dir=None):
    """`microvim core --auth`: waits for DATA_DIR/admin.token (written at the first start),
    reads it and waits for health with it. The daemon's .token is the admin's. data_dir:
    another core's (cores sharing a database share it, and the admin's token in it)."""
    work = tmpdir("mv-core-")
    port = free_port()
    data_dir = data_dir or os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    args = ["core", "--auth", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    d = Daemon("core", args + list(extra), work, url=url).start()
    token_path = os.path.join(data_dir, "admin.token")
    _wait_ready(d, lambda: os.path.exists(token_path) or "no admin.token yet", "DATA_DIR/admin.token")
    with open(token_path) as f:
        d.token = f.read().strip()
    d.token_file = token_path
    _wait_ready(d, lambda: _health_ok(url, d.token), "GET /v1/health")
    d.data_dir = data_dir
    d.port = port
    return d


def start_node(core_url, name=None, labels=None, exec_allow=EXEC_ALLOW, data_dir=None,
               run_dir=None, token=None, token_file=None, extra=(), wait=True):
    """Starts `microvim node`; waits until the core lists it (by name) as ready. `token`
    is what the test uses to ask the core (the cluster token, if any)."""
    work = tmpdir("mv-node-")
    data_dir = data_dir or os.path.join(work, "data")
    os.makedirs(data_dir, exist_ok=True)
    run_dir = run_dir or os.path.join(work, "run")
    name = name or f"node-{random.randint(1000, 9999)}"
    args = ["node", "--core", core_url, "--data-dir", data_dir, "--run-dir", run_dir, "--name", name]
    if exec_allow:
        args += ["--exec-allow", exec_allow]
    for k, v in (labels or {}).items():
        args += ["--label", f"{k}={v}"]
    if token_file:
        args += ["--token-file", token_file]
    d = Daemon("node", args + list(extra), work, url=core_url, token=token).start()
    d.name = name
    d.data_dir = data_dir
    d.run_dir = run_dir
    if wait:
        _wait_ready(d, lambda: _node_ready(core_url, token, name), f"node {name} ready at core")
    return d


# ---- the events stream ---------------------------------------------------------------------

class EventStream:
    """Reads GET /v1/events in a thread; lines (bounded) are collected in .lines."""

    MAX_LINES = 100_000

    def __init__(self, url, token=None, path="/v1/events"):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.path = path
        self.token = token
        self.lines = []
        self.status = None
        self.headers = None
        self.error = None
        self.eof = False
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._conn = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout=5.0):
        self._thread.start()
        if not self._connected.wait(timeout):
            raise AssertionError(f"GET {self.path}: no response headers within {timeout} s")
        if self.error:
            raise AssertionError(f"GET {self.path} failed: {self.error}")
        assert self.status == 200, f"GET {self.path} -> {self.status}"
        return self

    def _run(self):
        try:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            hdrs = {"Accept": "application/x-ndjson"}
            if self.token:
                hdrs["Authorization"] = f"Bearer {self.token}"
            self._conn.request("GET", self.path, headers=hdrs)
            resp = self._conn.getresponse()
            self.status = resp.status
            self.headers = dict(resp.getheaders())
            self._connected.set()
            while True:
                line = resp.readline()
                if not line:
                    self.eof = True
                    break
                line = line.strip()
                if not line:
                    continue
                with self._lock:
                    if len(self.lines) < self.MAX_LINES:
                        self.lines.append(line.decode("utf-8", "replace"))
        except Exception as e:  # noqa: BLE001 - closing the socket ends the read
            if not self._connected.is_set():
                self.error = repr(e)
        finally:
            self._connected.set()

    def events(self):
        with self._lock:
            lines = list(self.lines)
        out = []
        for ln in lines:
            try:
                out.append(json.loads(ln))
            except ValueError:
                out.append({"_unparsable": ln})
        return out

    def wait_for(self, pred, timeout, what):
        return wait_until(lambda: [e for e in self.events() if pred(e)], timeout, what, 0.02)

    def close(self):
        try:
            if self._conn is not None and self._conn.sock is not None:
                self._conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(5)
        try:
            if self._conn is not None:
                self._conn.close()
        except OSError:
            pass


# ---- CLI ----------------------------------------------------------------------------------

def cli(args, env=None, timeout=30):
    """Runs the microvim binary as a client. Returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.pop("MICROVIM_CORE", None)
    if env:
        e.update(env)
    p = subprocess.Popen([BIN] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=10)
        raise AssertionError(f"microvim {' '.join(args)} did not finish within {timeout} s; "
                             f"stdout: {out[-500:]!r} stderr: {err[-500:]!r}") from None
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


# ---- teardown -----------------------------------------------------------------------------

def log_report(max_lines=25):
    """Tails of this test's daemon logs, for a failure report."""
    parts = []
    for label, path in _logs_for_report:
        try:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            continue
        parts.append(f"--- {label}: {path} (last {max_lines} lines)")
        parts.extend(lines[-max_lines:])
    return "\n".join(parts)


def teardown(want_report=False, keep_logs=False):
    """Stops everything the test started; returns (problems, log report). The report (tails
    of the daemon logs) is made when asked for or when there are problems."""
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            problem(f"cleanup {getattr(fn, '__qualname__', fn)}: {e!r}")
    for d in list(reversed(_daemons)):
        try:
            d.stop()
        except Exception as e:  # noqa: BLE001
            problem(f"stopping {d.kind}: {e!r}")
    # Instance processes whose node was stopped (a node may leave them running by design),
    # and guests (instances, warm pools' paused guests) left the same way.
    _kill_leftovers(_tokens)
    _kill_guests_in(_tmpdirs)
    report = log_report() if (_problems or want_report) else ""
    for t in _tmpdirs:
        if not keep_logs:
            shutil.rmtree(t, ignore_errors=True)
    probs = list(_problems)
    trust_ca(None)
    _daemons.clear()
    _tmpdirs.clear()
    _tokens.clear()
    _problems.clear()
    _logs_for_report.clear()
    return probs, report
