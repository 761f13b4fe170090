"""libvirtd — a private virtlogd + libvirtd for integration tests and benchmarks (stdlib only).

Two modes, both stopped by PID, never by name:

* session (the default): both daemons run as user `nobody` with HOME and XDG_* in a temp dir,
  reached as qemu:///session?socket=DIR/run/libvirt/libvirt-sock: the approach of
  tests/unit/test_libvirt.c and bench/drivers. The node that drives it runs as `nobody` too
  (`as_nobody()`): the session daemon's QEMU must write the serial file into the node's
  instance dir, which the node creates 0750 as its own user.

* system (`system=True`): the distribution's privileged daemon as it is installed — root,
  QEMU as `libvirt-qemu`, dynamic ownership, virtlogd — reached as
  qemu:///system?socket=DIR/sock/libvirt-sock. A privileged libvirtd has its paths compiled
  in (/etc/libvirt, /run, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt), so both
  daemons run in a mount namespace of their own (unshare) where those paths are this
  object's temp dirs: nothing is shared with a libvirtd of the machine or of another test,
  and nothing they write outlives stop() and remove() (stop() also removes the /machine
  cgroups libvirt makes for its domains). Only the socket dir is outside, for the node.
  qemu.conf is Debian's as shipped (every line a comment, so the build's defaults: user and
  group libvirt-qemu, dynamic_ownership = 1), with those three settings written out so that
  the test does not depend on the build's defaults. Needs the user libvirt-qemu, which
  Debian's libvirt-daemon-system creates.

The first time a client asks for its capabilities (a node's driver probe does, at
start-up), libvirtd probes every qemu-system-* binary in its PATH, a second or more each:
~75 s on a busy 2-CPU machine with all of Debian's architectures installed, longer than a
node waits to start. So the daemons' PATH holds qemu-system-x86_64 (a link to the installed
one, the only one the tests' domains use) and no other emulator, start() returns once
libvirtd has its capabilities, and the probe's results are cached in one directory per mode
shared by every daemon this process starts (libvirt checks each entry against its binary),
removed when the process exits.
"""

import atexit
import errno
import glob
import grp
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

DAEMONS = ("/usr/sbin/virtlogd", "/usr/sbin/libvirtd", "/usr/bin/qemu-system-x86_64", "/usr/bin/virsh")
QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_USER = "libvirt-qemu"  # Debian's build: QEMU runs as libvirt-qemu:libvirt-qemu

# system mode: each compiled-in path of the privileged daemons -> its private stand-in
SYSTEM_PATHS = (("etc", "/etc/libvirt"), ("lib", "/var/lib/libvirt"), ("cache", "/var/cache/libvirt"),
                ("log", "/var/log/libvirt"), ("run", "/run"))  # "cache": the shared one
CGROUPS = "/sys/fs/cgroup"


def machine_cgroups():
    """libvirt's partition for its domains' cgroups in each hierarchy (cgroups without
    systemd): a system libvirtd makes /machine when it starts its first domain and leaves it
    (each domain's own group inside is removed when the domain stops)."""
    if not os.path.isdir(CGROUPS):
        return set()
    found = (os.path.join(CGROUPS, c, "machine") for c in os.listdir(CGROUPS))
    return {d for d in found if os.path.isdir(d)}


def missing(system=False):
    """What is not installed, or "" when a private libvirtd of that mode can run here."""
    for p in DAEMONS:
        if not os.access(p, os.X_OK):
            return p
    for tool in ("unshare", "nsenter", "mount", "sh") if system else ("setpriv",):
        if not shutil.which(tool):
            return tool
    if system:
        try:
            pwd.getpwnam(QEMU_USER)
            grp.getgrnam(QEMU_USER)
        except KeyError:
            return f"the user {QEMU_USER} (libvirt-daemon-system)"
        for _, path in SYSTEM_PATHS:
            if not os.path.isdir(path):
                return f"{path} (libvirt-daemon-system)"
    return ""


def as_nobody(argv):
    return [shutil.which("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups"] + list(argv)


def nobody_dir(path):
    """Creates path (0755) owned by nobody."""
    pw = pwd.getpwnam("nobody")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


_shared_dir = []  # this process's dir shared by all its daemons, made on first use


def _shared(what):
    """A path in the dir every daemon of this process shares (removed when it exits): "bin",
    the daemons' PATH dir with their one emulator, whose path is the same for all, so that
    their capabilities caches match it; "cache-system" and "cache-session", those caches."""
    if not _shared_dir:
        d = tempfile.mkdtemp(prefix="mv-libvirt-shared-")
        atexit.register(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        os.symlink(QEMU, os.path.join(_dir(os.path.join(d, "bin"), 0o755), os.path.basename(QEMU)))
        _dir(os.path.join(_dir(os.path.join(d, "cache-system"), 0o711), "qemu"), 0o711)  # as Debian has it
        nobody_dir(os.path.join(d, "cache-session"))
        _shared_dir.append(d)
    return os.path.join(_shared_dir[0], what)


def _dir(path, mode, owner=None):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if owner:
        os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(owner).gr_gid)
    return path


class PrivateLibvirt:
    def __init__(self, base=None, system=False):
        self.base = base or tempfile.mkdtemp(prefix="mv-libvirtd-")
        self.system = system
        os.chmod(self.base, 0o755)
        self.procs = {}
        if system:
            self.cgroups_before = machine_cgroups()
            self._system_dirs()
        else:
            self.home = nobody_dir(os.path.join(self.base, "home"))
            self.run = os.path.join(self.base, "run")
            nobody_dir(self.run)
            os.chmod(self.run, 0o700)
            self.sock = os.path.join(self.run, "libvirt", "libvirt-sock")
            self.uri = f"qemu:///session?socket={self.sock}"

    def _system_dirs(self):
        """The private stand-ins for the system paths, with the owners and modes Debian's
        packages give them (libvirt-daemon-system's postinst)."""
        b = self.base
        etc = _dir(os.path.join(b, "etc"), 0o755)
        _dir(os.path.join(etc, "qemu"), 0o755)
        lib = _dir(os.path.join(b, "lib"), 0o755)
        _dir(os.path.join(lib, "qemu"), 0o750, QEMU_USER)
        for d in ("images", "boot"):
            _dir(os.path.join(lib, d), 0o711)
        _dir(os.path.join(_dir(os.path.join(b, "log"), 0o755), "qemu"), 0o755)
        self.run = _dir(os.path.join(b, "run"), 0o755)
        sockdir = _dir(os.path.join(b, "sock"), 0o755)
        self.sock = os.path.join(sockdir, "libvirt-sock")
        self.uri = f"qemu:///system?socket={self.sock}"
        shipped = "/etc/libvirt/qemu.conf"
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            if os.path.exists(shipped):
                # only its comments: a machine's own edits (user = "root"...) would hide
                # exactly what this mode is for
                with open(shipped) as s:
                    f.writelines(ln for ln in s if ln.lstrip().startswith("#") or not ln.strip())
            f.write(f'\n# microvim test: the defaults of Debian\'s build, written out\n'
                    f'user = "{QEMU_USER}"\ngroup = "{QEMU_USER}"\ndynamic_ownership = 1\n')
        os.chmod(os.path.join(etc, "qemu.conf"), 0o600)
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            f.write(f'unix_sock_dir = "{sockdir}"\nunix_sock_rw_perms = "0700"\nunix_sock_ro_perms = "0700"\n'
                    'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    'log_outputs = "3:stderr"\n')
        with open(os.path.join(etc, "virtlogd.conf"), "w") as f:
            f.write('log_outputs = "3:stderr"\n')

    def _private(self, name):
        """The private stand-in of a system path (SYSTEM_PATHS)."""
        return _shared("cache-system") if name == "cache" else os.path.join(self.base, name)

    def _env(self):
        """The daemons' environment. PATH: no /usr/bin (nor /bin, its link), where every
        installed emulator is; the daemons run nothing from there that these tests need."""
        path = f"{_shared('bin')}:/usr/sbin:/sbin"
        if self.system:
            return {"PATH": path, "LANG": "C"}
        return {"HOME": self.home, "XDG_RUNTIME_DIR": self.run,
                "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
                "XDG_CACHE_HOME": _shared("cache-session"), "PATH": path}

    def _argv(self, prog):
        """How prog is started: as nobody (session), or as root in the private mount
        namespace (system). virtlogd makes the namespace; libvirtd joins it. unshare and
        nsenter exec, so the pid is the daemon's."""
        if not self.system:
            return as_nobody([prog])
        conf = os.path.join(self.base, "etc", os.path.basename(prog) + ".conf")
        pidfile = os.path.join(self.run, os.path.basename(prog) + ".pid")
        daemon = [prog, "--config", conf, "--pid-file", pidfile]
        if os.path.basename(prog) == "virtlogd":
            mount = shutil.which("mount")
            mounts = "".join(f"{mount} --bind {shlex.quote(self._private(d))} {path}\n" for d, path in SYSTEM_PATHS)
            return [shutil.which("unshare"), "--mount", "--propagation", "private", shutil.which("sh"), "-ec",
                    mounts + 'exec "$@"', "sh"] + daemon
        return [shutil.which("nsenter"), f"--mount=/proc/{self.procs['virtlogd'].pid}/ns/mnt", "--"] + daemon

    def _spawn(self, prog):
        name = os.path.basename(prog)
        log = open(os.path.join(self.base, f"{name}.log"), "ab")
        p = subprocess.Popen(self._argv(prog), stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env=self._env(), start_new_session=True)
        log.close()
        self.procs[name] = p
        return p

    def virsh(self, *args, timeout=60):
        return subprocess.run(["virsh", "-q", "-c", self.uri] + list(args), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, timeout=60, probe_timeout=300):
        """Both daemons, and libvirtd's capabilities (see the top); on failure, whatever
        started is stopped again."""
        try:
            if "virtlogd" not in self.procs or self.procs["virtlogd"].poll() is not None:
                self._spawn("/usr/sbin/virtlogd")
                # a session libvirtd would start a virtlogd of its own if ours were not
                # listening yet; a system one would fail to reach it
                self._wait(os.path.join(self.run, "libvirt", "virtlogd-sock"), timeout, "virtlogd")
            self.start_libvirtd(timeout)
            r = self.virsh("capabilities", timeout=probe_timeout)
            if r.returncode != 0:
                raise AssertionError(f"libvirtd gave no capabilities: {r.stderr.strip()}")
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
                return
            time.sleep(0.05)
        raise AssertionError(f"libvirtd did not answer on {self.sock} within {timeout} s")

    def _wait(self, path, timeout, name):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            p = self.procs.get(name)
            if p is not None and p.poll() is not None:
                raise AssertionError(f"{name} exited at start-up: see {self.base}/{name}.log")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{path} did not appear within {timeout} s")
            time.sleep(0.02)

    def domains(self, all_=False):
        r = self.virsh("list", "--name", *(["--all"] if all_ else []))
        return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]

    def qemu_pid(self, domain):
        """The pid of a domain's QEMU, from the daemon's pid file."""
        state = os.path.join(self.run, "libvirt", "qemu") if self.system else \
            os.path.join(self.run, "libvirt", "qemu", "run")
        with open(os.path.join(state, f"{domain}.pid")) as f:
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
        self._kill_probes()
        if self.system:
            self._remove_cgroups()

    def _kill_probes(self):
        """QEMU processes libvirtd started to probe a binary's capabilities and left behind
        when it was stopped in the middle (they daemonize: not its children). Killed by the
        pid in their pid file, when that pid still runs QEMU with that pid file."""
        lib = os.path.join(self.base, "lib", "qemu") if self.system else \
            os.path.join(self.home, ".config", "libvirt", "qemu", "lib")
        for pidfile in glob.glob(os.path.join(lib, "qmp-*", "qmp.pid")):
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read()
            except (OSError, ValueError):
                continue
            # the daemon names it by its own view of the path (system: in its namespace)
            if os.path.join(os.path.basename(os.path.dirname(pidfile)), "qmp.pid").encode() in argv:
                os.kill(pid, signal.SIGKILL)

    def _remove_cgroups(self, timeout=5):
        """The /machine partitions this daemon made. A domain's group inside goes once its
        QEMU has exited, which may lag its destroy a little; one that another daemon uses
        stays busy and is left to it."""
        deadline = time.monotonic() + timeout
        for d in machine_cgroups() - self.cgroups_before:
            while True:
                try:
                    os.rmdir(d)
                    break
                except OSError as e:
                    if e.errno == errno.ENOENT or time.monotonic() >= deadline:
                        break
                    time.sleep(0.05)

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)
