"""pgserver — a private PostgreSQL for the tests (stdlib only).

initdb + pg_ctl in a new temporary directory, on a free 127.0.0.1 port, as an unprivileged
user (PostgreSQL refuses to run as root: when we are root, the dir is given to `nobody` and
the tools run through `runuser -u nobody`). Authentication is `trust` for the user
`microvim`: the server listens on loopback only and lives for one test run. It is stopped by
its postmaster's PID (postmaster.pid), never by name.

As a module:   srv = PgServer(); srv.start(); srv.url ... srv.stop()
As a program:  pgserver.py start [--fsync]  -> prints "URL DIR" (the server keeps running;
                                 fsync is off unless asked: tests kill processes, not hosts)
               pgserver.py stop DIR
               pgserver.py available  -> exit 0 when the PostgreSQL binaries are installed
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

USER = "microvim"          # the database user (initdb -U)
RUN_AS = "nobody"          # the system user the server runs as when we are root
START_TIMEOUT = 60         # pg_ctl -w -t, seconds
STOP_TIMEOUT = 30.0


def bindir():
    """The newest installed PostgreSQL's bin dir (Debian: /usr/lib/postgresql/N/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of ours is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PgServer:
    """One PostgreSQL cluster in its own temp dir. standby_of: a running primary whose base
    backup this one starts from, as a hot standby streaming from it. audit: the server's log
    (log()) names, with each session's application_name, every statement that changes
    something (log_statement = mod) and every session's end: a test reads there what a
    core wrote after it was fenced."""

    AUDIT_CONF = ("log_line_prefix = '%m [%p] app=%a '\nlog_statement = mod\nlog_disconnections = on\n")

    def __init__(self, standby_of=None, fsync=False, audit=False):
        self.audit = audit
        self.bin = bindir()
        if not self.bin:
            raise RuntimeError("PostgreSQL is not installed (scripts/install-deps installs postgresql)")
        self.standby_of = standby_of
        self.fsync = fsync
        self.dir = None
        self.port = None
        self.pid = None

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def url(self):
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def _as_user(self, argv):
        if os.geteuid() == 0:
            return ["runuser", "-u", RUN_AS, "--"] + argv
        return argv

    def _run(self, argv):
        r = subprocess.run(self._as_user(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=START_TIMEOUT + 30, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout[-3000:]}")
        return r.stdout

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="mv-pg-")
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        if self.standby_of:
            self._run([f"{self.bin}/pg_basebackup", "-D", self.data, "-h", "127.0.0.1",
                       "-p", str(self.standby_of.port), "-U", USER, "-R", "-X", "stream", "-c", "fast"])
        else:
            self._run([f"{self.bin}/initdb", "-D", self.data, "-U", USER, "--auth=trust", "-E", "UTF8",
                       "--locale=C", "--no-sync"])
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                f.write("\n# pgserver.py (tests)\n"
                        f"fsync = {'on' if self.fsync else 'off'}\n"
                        "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                        "max_connections = 100\nshared_buffers = 32MB\n"
                        + (self.AUDIT_CONF if self.audit else ""))
            with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
                f.write("host replication all 127.0.0.1/32 trust\n")
        # port and socket dir on the command line: a standby's copied config keeps the primary's
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), "-w",
                   "-t", str(START_TIMEOUT), "-o", opts, "start"])
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())
        return self

    def psql(self, sql, db="postgres"):
        return self._run([f"{self.bin}/psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
                          "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql]).strip()

    def promote(self):
        self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-w", "-t", str(START_TIMEOUT), "promote"])

    def log(self):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill9(self):
        """The postmaster killed outright (its backends notice and exit)."""
        if self.pid and _pid_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        self._wait_gone(STOP_TIMEOUT)

    def _wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while self.pid and _pid_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not (self.pid and _pid_alive(self.pid))

    def stop(self):
        """Fast shutdown (SIGINT to the postmaster), then SIGKILL if it lingers; removes the dir."""
        if self.pid and _pid_alive(self.pid):
            os.kill(self.pid, signal.SIGINT)
            if not self._wait_gone(STOP_TIMEOUT):
                os.kill(self.pid, signal.SIGKILL)
                self._wait_gone(5)
        self.pid = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _stop_dir(path):
    srv = PgServer.__new__(PgServer)
    srv.dir, srv.pid = path, None
    try:
        with open(os.path.join(path, "data", "postmaster.pid")) as f:
            srv.pid = int(f.readline())
    except (OSError, ValueError):
        pass
    srv.stop()


def main(argv):
    if len(argv) >= 1 and argv[0] == "available":
        return 0 if bindir() else 1
    if argv[:1] == ["start"] and argv[1:] in ([], ["--fsync"]):
        srv = PgServer(fsync=len(argv) == 2).start()
        print(srv.url, srv.dir, flush=True)
        return 0
    if len(argv) == 2 and argv[0] == "stop" and os.path.basename(argv[1]).startswith("mv-pg-"):
        _stop_dir(argv[1])
        return 0
    print("usage: pgserver.py start [--fsync] | stop DIR | available", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
