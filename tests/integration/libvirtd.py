"""libvirtd — a private virtlogd + libvirtd for integration tests and benchmarks (stdlib only).

Both run as user `nobody` in session mode with HOME and XDG_* in a temp dir, reached as
qemu:///session?socket=DIR/run/libvirt/libvirt-sock: the approach of tests/unit/test_libvirt.c
and bench/drivers (a root libvirtd would share /run/libvirt, /var/lib/libvirt and
/etc/libvirt with any system daemon). Stopped by PID, never by name.

The node that drives it runs as `nobody` too (`as_nobody()`): the session daemon's QEMU must
write the serial file into the node's instance dir, which the node creates 0750 as its own
user.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

QEMU = "/usr/bin/qemu-system-x86_64"
DAEMONS = ("/usr/sbin/virtlogd", "/usr/sbin/libvirtd", QEMU, "/usr/bin/virsh")


def missing():
    """What is not installed, or "" when a private libvirtd can run here."""
    for p in DAEMONS:
        if not os.access(p, os.X_OK):
            return p
    if not shutil.which("setpriv"):
        return "setpriv"
    return ""


def as_nobody(argv):
    # setpriv by its path: the daemons' PATH (_env) does not hold /usr/bin
    return [shutil.which("setpriv") or "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + list(argv)


def nobody_dir(path):
    """Creates path (0755) owned by nobody."""
    pw = pwd.getpwnam("nobody")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


class PrivateLibvirt:
    def __init__(self, base=None):
        self.base = base or tempfile.mkdtemp(prefix="mv-libvirtd-")
        os.chmod(self.base, 0o755)
        self.home = nobody_dir(os.path.join(self.base, "home"))
        self.run = os.path.join(self.base, "run")
        nobody_dir(self.run)
        os.chmod(self.run, 0o700)
        self.sock = os.path.join(self.run, "libvirt", "libvirt-sock")
        self.uri = f"qemu:///session?socket={self.sock}"
        self.procs = {}

    def _emulators(self):
        """A directory holding only the QEMU these tests boot (a link to it), for the
        daemons' PATH. libvirtd probes the capabilities of every qemu-system-* it finds
        in PATH when the first client connects, one QEMU process at a time; with Debian's
        qemu-system (30 emulators) installed that took over a minute on a busy host, in
        every test (each has a fresh cache), and the node's probe gave up after 15 s."""
        d = os.path.join(self.base, "emulators")
        if not os.path.isdir(d):
            os.makedirs(d)
            os.chmod(d, 0o755)
            os.symlink(QEMU, os.path.join(d, os.path.basename(QEMU)))
        return d

    def _env(self):
        return {"HOME": self.home, "XDG_RUNTIME_DIR": self.run,
                "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
                "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
                "PATH": f"{self._emulators()}:/usr/sbin:/sbin"}

    def _spawn(self, prog):
        name = os.path.basename(prog)
        log = open(os.path.join(self.base, f"{name}.log"), "ab")
        p = subprocess.Popen(as_nobody([prog]), stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env=self._env(), start_new_session=True)
        log.close()
        self.procs[name] = p
        return p

    def virsh(self, *args, timeout=60):
        return subprocess.run(["virsh", "-q", "-c", self.uri] + list(args), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, timeout=60):
        """Both daemons; on failure, whatever started is stopped again."""
        try:
            if "virtlogd" not in self.procs or self.procs["virtlogd"].poll() is not None:
                self._spawn("/usr/sbin/virtlogd")
                # libvirtd would start a virtlogd of its own if ours were not listening yet
                self._wait(os.path.join(self.run, "libvirt", "virtlogd-sock"), timeout)
            self.start_libvirtd(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_libvirtd(self, timeout=60):
        p = self._spawn("/usr/sbin/libvirtd")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise AssertionError(f"libvirtd exited at start-up: see {self.base}/libvirtd.log")
            if os.path.exists(self.sock) and self.virsh("uri").returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"libvirtd did not answer on {self.sock} within {timeout} s")
        # the QEMU capabilities are probed at the first request that needs them; done here,
        # so that a node started next finds a daemon that answers at once
        r = self.virsh("capabilities", timeout=max(10.0, deadline - time.monotonic()))
        if r.returncode != 0:
            raise AssertionError(f"libvirtd: virsh capabilities failed: {r.stderr.strip()}; "
                                 f"see {self.base}/libvirtd.log")

    def _wait(self, path, timeout):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() >= deadline:
                raise AssertionError(f"{path} did not appear within {timeout} s")
            time.sleep(0.02)

    def domains(self):
        r = self.virsh("list", "--name")
        return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]

    def qemu_pid(self, domain):
        """The pid of a domain's QEMU, from the session daemon's pid file."""
        with open(os.path.join(self.run, "libvirt", "qemu", "run", f"{domain}.pid")) as f:
            return int(f.read().strip())

    def stop_daemon(self, name, timeout=10):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)

    def stop(self):
        """Destroys every domain left, then stops both daemons by PID."""
        if "libvirtd" in self.procs and self.procs["libvirtd"].poll() is None:
            for d in self.domains():
                self.virsh("destroy", d)
        self.stop_daemon("libvirtd")
        self.stop_daemon("virtlogd")

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)
