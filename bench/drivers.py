#!/usr/bin/env python3
"""bench/drivers.py — the measurement helper of bench/drivers (Python 3 stdlib only).

  drivers.py qemu    --core URL --runs N --accel tcg|kvm --kernel FILE --work DIR --out PREFIX
  drivers.py libvirt --core URL --runs N --uri URI --kernel FILE --work DIR --out PREFIX --owner USER
  drivers.py table   SUMMARY.json...     (markdown rows for BENCHMARKS.md)

qemu and libvirt run N rounds, each one bare start and one start through the VIM, the
order alternating from round to round (bare first in even rounds), after one warm-up round
that is recorded but left out of the statistics (it is the image-cache miss of a cache-on
node and the first QEMU start after a while):

bare qemu     os.posix_spawn of the command line src/drivers/qemu.c builds (build_argv:
              same options in the same order; -name microvim-bare-N), with the driver's
              spawn attributes (own session, stdin /dev/null, stdout/stderr to log files,
              PATH-only environment, cwd the instance dir), serial to a file created
              beforehand as the node does. spawn = the posix_spawn call (returns once the
              child has exec'd: glibc's CLONE_VFORK), ready = the call made -> the marker
              seen in the serial file (inotify on the dir, then a read: what the node does),
              clean = QMP capabilities + quit (what the driver sends) -> QEMU reaped.
bare libvirt  `virsh -c URI create FILE.xml` of the XML src/drivers/libvirt.c builds
              (build_xml, domain type 'qemu': the session daemon cannot open /dev/kvm).
              create = virsh started -> virsh exited (the domain exists), ready = virsh
              started -> marker in the serial file, clean = `virsh destroy NAME` -> exited.
VIM           POST /v1/instances?wait=ready (ready = {"serial": MARKER}) on a keep-alive
              connection, the same resources (1 vCPU, 64 MiB); total = request sent ->
              answer read, and the core's phase trace from the answer. overhead = total -
              spawn - boot (docs/architecture.md). clean = DELETE ?wait=stopped -> answer; purge =
              the second DELETE that removes the record.

Raw records: PREFIX-bare.jsonl, PREFIX-vim.jsonl; statistics: PREFIX-summary.json.
Percentiles by linear interpolation between order statistics (as microvim's stats).
"""
import ctypes
import http.client
import json
import math
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

MARKER = b"MICROVIM-VNF READY"
READY_TIMEOUT_S = 60.0
MEMORY_MB = 64
VCPUS = 1

IN_MODIFY, IN_CLOSE_WRITE, IN_CREATE, IN_MOVED_TO = 0x2, 0x8, 0x100, 0x80
_libc = ctypes.CDLL(None, use_errno=True)


def now():
    return time.perf_counter_ns()


def ms(ns):
    return ns / 1e6


# ---- statistics ----

def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    k = (len(sorted_vals) - 1) * p / 100.0
    f = math.floor(k)
    c = min(f + 1, len(sorted_vals) - 1)
    return sorted_vals[f] + (sorted_vals[c] - sorted_vals[f]) * (k - f)


def summarize(vals):
    v = sorted(x for x in vals if x is not None and not math.isnan(x))
    if not v:
        return None
    n = len(v)
    mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
    return {"n": n, "mean": mean, "ci95": 1.96 * sd / math.sqrt(n) if n > 1 else 0.0, "p50": pct(v, 50),
            "p95": pct(v, 95), "p99": pct(v, 99), "max": v[-1], "min": v[0]}


# ---- the serial file ----

class SerialWatch:
    """inotify on the directory holding the serial file (robust to a file re-created by
    QEMU or libvirt), then reads of the whole (small) file."""

    def __init__(self, path):
        self.path = path
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = _libc.inotify_add_watch(self.fd, os.path.dirname(path).encode(),
                                     IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def seen(self):
        try:
            with open(self.path, "rb") as f:
                return MARKER in f.read(1 << 16)
        except FileNotFoundError:
            return False

    def wait(self, deadline_ns):
        """The instant (perf_counter ns) the marker was seen, or None at the deadline."""
        while True:
            if self.seen():
                return now()
            left = (deadline_ns - now()) / 1e9
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if r:
                try:
                    while os.read(self.fd, 4096):
                        pass
                except BlockingIOError:
                    pass

    def close(self):
        os.close(self.fd)


# ---- the VIM, through its public API ----

class Core:
    def __init__(self, url):
        hostport = url.split("://", 1)[1].rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.conn = None

    def request(self, method, path, body=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                hdrs = {"Content-Type": "application/json"} if body is not None else {}
                t0 = now()
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                t1 = now()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, data, t0, t1
            except (http.client.HTTPException, OSError):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def vim_once(core, body, name, inspect=None, run_dir=None):
    """With body["ready"], waits for ready (the node's boot phase); without it (libvirt: see
    bench/drivers), waits for running and then watches the instance's serial file in the
    node's run dir itself: ready_ms = request sent -> marker seen by this helper."""
    b = dict(body)
    b["name"] = name
    rec = {"kind": "vim", "name": name}
    wait = "ready" if "ready" in body else "running"
    status, data, t0, t1 = core.request("POST", "/v1/instances?wait=%s&timeout=%d" % (wait, READY_TIMEOUT_S),
                                        json.dumps(b, separators=(",", ":")))
    rec["total_ms"] = ms(t1 - t0)
    try:
        inst = json.loads(data)
    except ValueError:
        inst = {}
    rec["http"] = status
    rec["id"] = inst.get("id")
    if wait == "ready":
        rec["ready_ms"] = rec["total_ms"]
    elif rec["id"] and status < 300:
        w = SerialWatch(os.path.join(run_dir, "instances", rec["id"], "serial.log"))
        t2 = w.wait(now() + int(READY_TIMEOUT_S * 1e9))
        w.close()
        if t2 is None:
            rec["error"] = "no READY in the serial file within %d s" % READY_TIMEOUT_S
        else:
            rec["ready_ms"] = ms(t2 - t0)
            rec["boot_seen_ms"] = ms(t2 - t1)
    if status >= 300 or inst.get("state") != "running" or (wait == "ready" and inst.get("ready") is not True):
        rec["error"] = (inst.get("error") or {}).get("message") or ("state %s ready %s" % (inst.get("state"), inst.get("ready")))
    trace = inst.get("trace")
    if rec["id"] and not trace and "error" not in rec:
        _, d2, _, _ = core.request("GET", "/v1/instances/" + rec["id"])
        trace = json.loads(d2).get("trace")
    if trace:
        rec["phases"] = trace.get("phases", {})
        rec["core_total_ms"] = trace.get("total_ms")
        rec["core_overhead_ms"] = trace.get("overhead_ms")
        rec["image_cache"] = trace.get("image_cache")
        ph = rec["phases"]
        if "spawn" in ph:
            rec["overhead_ms"] = rec["total_ms"] - ph["spawn"] - ph.get("boot", 0.0)
    if inspect and rec["id"] and "error" not in rec:
        try:
            inspect(rec["id"])
        except Exception as e:  # evidence only; never fails the run
            print("drivers.py: inspect: %s" % e, file=sys.stderr)
    if rec["id"]:
        st, d3, t2, t3 = core.request("DELETE", "/v1/instances/%s?wait=stopped&timeout=60" % rec["id"])
        rec["clean_ms"] = ms(t3 - t2)
        if st >= 300:
            rec.setdefault("error", "delete: HTTP %d %s" % (st, d3[:200]))
        st, d4, t4, t5 = core.request("DELETE", "/v1/instances/" + rec["id"])
        rec["purge_ms"] = ms(t5 - t4)
    return rec


# ---- bare qemu ----

def qemu_argv(binary, name, accel, kernel, serial, qmp):
    """src/drivers/qemu.c build_argv() for a PVH/multiboot kernel (microvm), no initrd,
    no command line, no tap."""
    return [binary, "-name", name, "-M", "microvm,pit=off,pic=off,rtc=off", "-accel", accel, "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-m", "%dM" % MEMORY_MB, "-smp", str(VCPUS),
            "-kernel", kernel, "-serial", "file:" + serial, "-qmp", "unix:%s,server=on,wait=off" % qmp]


def qmp_quit(path, timeout=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n')
        while s.recv(4096):
            pass
        return True
    except OSError:
        return False
    finally:
        s.close()


def bare_qemu_once(binary, accel, kernel, work, idx):
    d = os.path.join(work, "bare-%06d" % idx)
    os.makedirs(d, 0o750, exist_ok=True)
    serial, qmp = os.path.join(d, "serial.log"), os.path.join(d, "qmp.sock")
    out = os.open(os.path.join(d, "stdout.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    err = os.open(os.path.join(d, "stderr.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    os.close(os.open(serial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640))
    name = "microvim-bare%06d" % idx
    argv = qemu_argv(binary, name, accel, kernel, serial, qmp)
    w = SerialWatch(serial)
    rec = {"kind": "bare", "name": name}
    cwd = os.getcwd()
    os.chdir(d)
    t0 = now()
    pid = os.posix_spawn(binary, argv, {"PATH": "/usr/local/bin:/usr/bin:/bin"},
                         file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                       (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)],
                         setsid=True, setsigmask=(), setsigdef=signal.valid_signals())
    t1 = now()
    os.chdir(cwd)
    os.close(out)
    os.close(err)
    t2 = w.wait(t1 + int(READY_TIMEOUT_S * 1e9))
    w.close()
    rec.update(spawn_ms=ms(t1 - t0), pid=pid)
    if t2 is None:
        rec["error"] = "no READY within %d s" % READY_TIMEOUT_S
    else:
        rec.update(ready_ms=ms(t2 - t0), boot_ms=ms(t2 - t1))
    t3 = now()
    quit_ok = qmp_quit(qmp)
    if not quit_ok:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    rec["clean_ms"] = ms(now() - t3)
    rec["clean_by"] = "qmp" if quit_ok else "sigkill"
    rec["argv"] = argv if idx == 0 else None
    shutil.rmtree(d, ignore_errors=True)
    return rec


def proc_cmdline_with(needle):
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                args = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if args and b"qemu-system" in args[0] and needle.encode() in args:
            return [a.decode(errors="replace") for a in args]
    return None


# ---- bare libvirt ----

def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
            .replace('"', "&quot;"))


def domain_xml(name, iid, kernel, serial, kind="qemu"):
    """src/drivers/libvirt.c build_xml() for a QEMU host, no initrd, no cmdline, no bridge."""
    s = xml_escape(serial)
    return ("<domain type='%s'>\n  <name>%s</name>\n  <description>microvim instance %s</description>\n"
            "  <memory unit='MiB'>%d</memory>\n  <vcpu>%d</vcpu>\n  <os>\n"
            "    <type arch='x86_64' machine='pc'>hvm</type>\n    <kernel>%s</kernel>\n  </os>\n"
            "  <clock offset='utc'/>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n"
            "  <on_crash>destroy</on_crash>\n  <devices>\n"
            "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n"
            "    <serial type='file'><source path='%s'/><target port='0'/></serial>\n"
            "    <console type='file'><source path='%s'/><target type='serial' port='0'/></console>\n"
            "  </devices>\n</domain>\n") % (kind, xml_escape(name), xml_escape(iid), MEMORY_MB, VCPUS,
                                            xml_escape(kernel), s, s)


def virsh(uri, *args):
    t0 = now()
    p = subprocess.run(["virsh", "-q", "-c", uri] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p, t0, now()


def bare_libvirt_once(uri, kernel, work, idx, owner):
    d = os.path.join(work, "bare-%06d" % idx)
    os.makedirs(d, 0o750, exist_ok=True)
    os.chown(d, owner.pw_uid, owner.pw_gid)
    serial = os.path.join(d, "serial.log")
    os.close(os.open(serial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640))
    os.chown(serial, owner.pw_uid, owner.pw_gid)
    iid = "bare%06d" % idx
    name = "mv-" + iid
    xml = os.path.join(d, "domain.xml")
    with open(xml, "w") as f:
        f.write(domain_xml(name, iid, kernel, serial))
    w = SerialWatch(serial)
    rec = {"kind": "bare", "name": name}
    p, t0, t1 = virsh(uri, "create", xml)
    rec["create_ms"] = ms(t1 - t0)
    if p.returncode != 0:
        rec["error"] = "virsh create: " + p.stderr.decode(errors="replace").strip()[:300]
        w.close()
        return rec
    t2 = w.wait(t1 + int(READY_TIMEOUT_S * 1e9))
    w.close()
    if t2 is None:
        rec["error"] = "no READY within %d s" % READY_TIMEOUT_S
    else:
        rec.update(ready_ms=ms(t2 - t0), boot_ms=ms(t2 - t1))
    if idx == 0:
        dp, _, _ = virsh(uri, "dumpxml", name)
        rec["live_xml"] = dp.stdout.decode(errors="replace")
    p, t3, t4 = virsh(uri, "destroy", name)
    rec["clean_ms"] = ms(t4 - t3)
    if p.returncode != 0:
        rec.setdefault("error", "virsh destroy: " + p.stderr.decode(errors="replace").strip()[:300])
    shutil.rmtree(d, ignore_errors=True)
    return rec


# ---- the runs ----

def metric_table(recs, fields):
    ok = [r for r in recs if "error" not in r]
    out = {}
    for f in fields:
        s = summarize([r.get(f) for r in ok])
        if s:
            out[f] = s
    return out


def phase_table(recs):
    ok = [r for r in recs if "error" not in r and "phases" in r]
    names = sorted({k for r in ok for k in r["phases"]})
    return {k: summarize([r["phases"].get(k) for r in ok]) for k in names}


def run(args, bare_fn, body, inspect_vim, inspect_bare, bare_fields):
    core = Core(args["core"])
    n = args["runs"]
    prefix = args["out"]
    bare_recs, vim_recs = [], []
    t_start = time.time()
    with open(prefix + "-bare.jsonl", "w") as fb, open(prefix + "-vim.jsonl", "w") as fv:
        for i in range(n + 1):  # round 0: warm-up
            order = ("bare", "vim") if i % 2 == 0 else ("vim", "bare")
            for k in order:
                if k == "bare":
                    r = bare_fn(i)
                    if i == 0:
                        inspect_bare(r)
                    r.pop("argv", None)
                    r.pop("live_xml", None)
                    r["round"] = i
                    r["warmup"] = i == 0
                    fb.write(json.dumps(r) + "\n")
                    (bare_recs if i else []).append(r)
                else:
                    r = vim_once(core, body, "%s-%06d" % (args["label"], i), inspect_vim if i == 0 else None,
                                 args.get("vim_run_dir"))
                    r["round"] = i
                    r["warmup"] = i == 0
                    fv.write(json.dumps(r) + "\n")
                    (vim_recs if i else []).append(r)
                if "error" in r:
                    print("drivers.py: round %d %s: %s" % (i, k, r["error"]), file=sys.stderr)
            if sys.stderr.isatty() or (i % 10 == 0):
                print("drivers.py: %s round %d/%d" % (args["label"], i, n), file=sys.stderr)
    summary = {
        "label": args["label"], "desc": args.get("desc", args["label"]), "driver": args["mode"], "runs": n, "seconds": time.time() - t_start,
        "bare": metric_table(bare_recs, bare_fields), "bare_errors": sum("error" in r for r in bare_recs),
        "vim": metric_table(vim_recs, ["total_ms", "ready_ms", "boot_seen_ms", "overhead_ms", "core_total_ms", "core_overhead_ms",
                                       "clean_ms", "purge_ms"]),
        "vim_phases": phase_table(vim_recs), "vim_errors": sum("error" in r for r in vim_recs),
        "image_cache": sorted({str(r.get("image_cache")) for r in vim_recs}),
        "body": body, "extra": args.get("extra", {}),
    }
    with open(prefix + "-summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: summary[k] for k in ("label", "bare", "vim", "vim_phases", "bare_errors", "vim_errors",
                                              "image_cache")}, indent=1))
    return summary


def parse(argv):
    a = {"mode": argv[0], "runs": 100, "label": argv[0]}
    i = 1
    while i < len(argv):
        k = argv[i].lstrip("-").replace("-", "_")
        a[k] = argv[i + 1]
        i += 2
    a["runs"] = int(a["runs"])
    return a


def main_qemu(a):
    binary = shutil.which("qemu-system-x86_64", path="/usr/local/bin:/usr/bin:/bin")
    os.makedirs(a["work"], exist_ok=True)
    extra = {}
    body = {"driver": "qemu", "image": a.get("image", "hello"), "config": {"accel": a["accel"]},
            "resources": {"vcpus": VCPUS, "memory_mb": MEMORY_MB}, "ready": {"serial": MARKER.decode()}}

    def inspect_vim(iid):
        extra["vim_argv"] = proc_cmdline_with("microvim-" + iid)

    def inspect_bare(r):
        extra["bare_argv"] = r.get("argv")

    a["extra"] = extra

    def bare(i):
        return bare_qemu_once(binary, a["accel"], a["kernel"], a["work"], i)

    s = run(a, bare, body, inspect_vim, inspect_bare, ["spawn_ms", "ready_ms", "boot_ms", "clean_ms"])
    # the two command lines side by side, with what must differ (name, paths) normalized
    va, ba = extra.get("vim_argv"), extra.get("bare_argv")
    if va and ba:
        def norm(v):
            out = []
            for x in v:
                x = x.split("/")[-1] if x.startswith("/") and "kernel" not in x else x
                out.append(x)
            return out
        diff = [(x, y) for x, y in zip(va, ba) if x != y]
        s["extra"]["argv_differences"] = diff
        s["extra"]["argv_same_length"] = len(va) == len(ba)
        with open(a["out"] + "-summary.json", "w") as f:
            json.dump(s, f, indent=1)


def main_libvirt(a):
    owner = pwd.getpwnam(a.get("owner", "nobody"))
    os.makedirs(a["work"], exist_ok=True)
    os.chown(a["work"], owner.pw_uid, owner.pw_gid)
    extra = {}
    # no "ready": the node never sees the marker of a libvirt guest (libvirt re-creates the
    # serial file; the node's inotify watch and fd follow the file it created) - see
    # BENCHMARKS.md. READY is watched by this helper in the node's run dir instead.
    body = {"driver": "libvirt", "image": a.get("image", "hello"),
            "resources": {"vcpus": VCPUS, "memory_mb": MEMORY_MB}}

    def inspect_vim(iid):
        p, _, _ = virsh(a["uri"], "dumpxml", "mv-" + iid)
        extra["vim_live_xml"] = p.stdout.decode(errors="replace")

    def inspect_bare(r):
        extra["bare_live_xml"] = r.get("live_xml")

    a["extra"] = extra

    def bare(i):
        return bare_libvirt_once(a["uri"], a["kernel"], a["work"], i, owner)

    s = run(a, bare, body, inspect_vim, inspect_bare, ["create_ms", "ready_ms", "boot_ms", "clean_ms"])
    vx, bx = extra.get("vim_live_xml"), extra.get("bare_live_xml")
    if vx and bx:
        import re

        def norm(x):
            x = re.sub(r"<uuid>.*?</uuid>", "<uuid/>", x)
            x = re.sub(r"mv-[A-Za-z0-9]+", "mv-ID", x)
            x = re.sub(r"microvim instance [A-Za-z0-9]+", "microvim instance ID", x)
            x = re.sub(r"(path|<kernel>)[^'<]*", r"\1PATH", x)
            x = re.sub(r"<kernel>[^<]*", "<kernel>PATH", x)
            x = re.sub(r"path='[^']*'", "path='PATH'", x)
            x = re.sub(r"<label>.*?</label>", "", x)
            return [l.strip() for l in x.splitlines()]
        nv, nb = norm(vx), norm(bx)
        s["extra"]["xml_differences"] = [l for l in nv if l not in nb] + ["(bare) " + l for l in nb if l not in nv]
        with open(a["out"] + "-summary.json", "w") as f:
            json.dump(s, f, indent=1)


# ---- markdown ----

def f3(x):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else "%.3f" % x


def g(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def table(paths):
    rows = []
    sums = [json.load(open(p)) for p in paths]
    out = []
    out.append("| run | driver, accel, image cache | bare to READY p50 / p99 | VIM to READY p50 / p99 | VIM / bare p50 | "
               "bare spawn¹ p50 / p99 | VIM spawn phase p50 / p99 | boot bare / VIM p50 | "
               "**VIM overhead** p50 / p99 (client) | VIM overhead, core's trace p50 / p99 | target p50 ≤ 2 ms | errors bare / VIM |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for s in sums:
        b, v, ph = s["bare"], s["vim"], s["vim_phases"]
        spawn_key = "spawn_ms" if "spawn_ms" in b else "create_ms"
        r50 = g(b, "ready_ms", "p50")
        v50 = g(v, "ready_ms", "p50")
        ov = g(v, "overhead_ms", "p50")
        verdict = "—" if ov is None else ("met" if ov <= 2.0 else "**missed**")
        out.append("| %s | %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s / %s | **%s** / %s | %s / %s | %s | %d / %d |" % (
            s["label"], s.get("desc", s["label"]), f3(r50), f3(g(b, "ready_ms", "p99")), f3(v50), f3(g(v, "ready_ms", "p99")),
            "%.2f×" % (v50 / r50) if r50 and v50 else "—",
            f3(g(b, spawn_key, "p50")), f3(g(b, spawn_key, "p99")), f3(g(ph, "spawn", "p50")), f3(g(ph, "spawn", "p99")),
            f3(g(b, "boot_ms", "p50")), f3(g(ph, "boot", "p50") if g(ph, "boot") else g(v, "boot_seen_ms", "p50")), f3(ov), f3(g(v, "overhead_ms", "p99")),
            f3(g(v, "core_overhead_ms", "p50")), f3(g(v, "core_overhead_ms", "p99")), verdict,
            s["bare_errors"], s["vim_errors"]))
    out.append("")
    out.append("Phases through the VIM (ms, p50 / p99; mean ± 95% CI), the paper's breakdown: artifact + init "
               "environment = prepare (image cache hit/miss as shown), network, spawn, boot, clean = DELETE "
               "?wait=stopped; bare clean in the last column.")
    out.append("")
    cols = ["accept", "schedule", "dispatch", "prepare", "network", "spawn", "boot", "notify"]
    out.append("| run | image cache | " + " | ".join(cols) + " | clean (VIM) | clean (bare) |")
    out.append("|---|---|" + "---:|" * (len(cols) + 2))
    for s in sums:
        ph = s["vim_phases"]
        cells = []
        for c in cols:
            st = ph.get(c)
            cells.append("—" if not st else "%s / %s" % (f3(st["p50"]), f3(st["p99"])))
        out.append("| %s | %s | %s | %s / %s | %s / %s |" % (
            s["label"], ",".join(s["image_cache"]), " | ".join(cells), f3(g(s["vim"], "clean_ms", "p50")),
            f3(g(s["vim"], "clean_ms", "p99")), f3(g(s["bare"], "clean_ms", "p50")), f3(g(s["bare"], "clean_ms", "p99"))))
    out.append("")
    out.append("| run | prepare mean ± CI | spawn mean ± CI | VIM overhead mean ± CI | rounds | seconds |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for s in sums:
        ph = s["vim_phases"]

        def mc(st):
            return "—" if not st else "%.3f ± %.3f" % (st["mean"], st["ci95"])
        out.append("| %s | %s | %s | %s | %d | %.0f |" % (s["label"], mc(ph.get("prepare")), mc(ph.get("spawn")),
                                                         mc(s["vim"].get("overhead_ms")), s["runs"], s["seconds"]))
    print("\n".join(out))


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    mode = sys.argv[1]
    if mode == "table":
        table(sys.argv[2:])
        return 0
    a = parse(sys.argv[1:])
    if mode == "qemu":
        main_qemu(a)
    elif mode == "libvirt":
        main_libvirt(a)
    else:
        print("drivers.py: unknown mode %s" % mode, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
