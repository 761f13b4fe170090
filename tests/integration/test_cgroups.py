"""Resource limits for exec instances (README "Resource limits", docs/drivers.md): each runs
in a cgroup of its own (v2 where its cpu and memory controllers are writable, else v1)
holding it to its vCPUs and memory; over its memory it is killed and ends failed with
"oom"; `--exec-user` runs it as that user; a restarted node sweeps groups left behind;
`--cgroups off` runs instances as before. Needs root and cgroups (CI has both: v1)."""
import os

import harness as h

ALLOW = h.EXEC_ALLOW + ",/bin/dd"


def _need_root():
    if os.geteuid() != 0:
        raise AssertionError("needs root to create cgroups and change users (CI runs as root)")


def _mounts():
    """{"v2": dir, "cpu": dir, "memory": dir} of this host, from mountinfo (as the node reads it)."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, (fstype, _src, opts) = left.split(), right.split()[:3]
            if fstype == "cgroup2":
                found.setdefault("v2", fields[4])
            elif fstype == "cgroup":
                for ctl in ("cpu", "memory"):
                    if ctl in opts.split(","):
                        found.setdefault(ctl, fields[4])
    return found


def _host_mode():
    m = _mounts()
    if "v2" in m:
        try:
            with open(os.path.join(m["v2"], "cgroup.controllers")) as f:
                ctl = f.read().split()
            if "cpu" in ctl and "memory" in ctl:
                return "v2"
        except OSError:
            pass
    return "v1" if "cpu" in m and "memory" in m else "off"


def _group_dirs(mode, node_id, iid, parent="microvim"):
    """The instance's group in each hierarchy: [cpu dir, memory dir] (one dir on v2)."""
    m = _mounts()
    if mode == "v2":
        return [os.path.join(m["v2"], parent, node_id, iid)]
    return [os.path.join(m["cpu"], parent, node_id, iid), os.path.join(m["memory"], parent, node_id, iid)]


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _status_ids(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return [int(x) for x in line.split()[1:]]
    return []


def _node(c, name):
    return [n for n in c.nodes() if n["name"] == name][0]


def _cluster(name, extra=()):
    _need_root()
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name=name, exec_allow=ALLOW, extra=list(extra))
    n = _node(c, name)
    limits = n["drivers"]["exec"]["limits"]
    want = _host_mode()
    assert limits["cgroups"] == want, f"the node reports cgroups {limits}, the host offers {want}"
    if want == "off":
        raise AssertionError(f"this host has no usable cgroups ({limits.get('why')}): the test needs them")
    return core, c, node, n["id"], want


def test_limits_written_and_read_back():
    core, c, node, node_id, mode = _cluster("n-cg-limits")
    assert f"cgroups: {mode}:" in node.log_text(), f"the node does not say its cgroups at start:\n{node.log_tail()}"
    tok = h.unique_arg()
    inst = c.create(h.exec_body("limited", ["30", tok], resources={"vcpus": 0.5, "memory_mb": 24}))[0]
    pid = h.expect_procs(tok, 1, "the limited instance's process")[0]
    dirs = _group_dirs(mode, node_id, inst["id"])
    if mode == "v2":
        assert _read(os.path.join(dirs[0], "cpu.max")) == "50000 100000"
        assert _read(os.path.join(dirs[0], "memory.max")) == str(24 << 20)
    else:
        assert _read(os.path.join(dirs[0], "cpu.cfs_quota_us")) == "50000"
        assert _read(os.path.join(dirs[0], "cpu.cfs_period_us")) == "100000"
        assert _read(os.path.join(dirs[1], "memory.limit_in_bytes")) == str(24 << 20)
        memsw = os.path.join(dirs[1], "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):
            assert _read(memsw) == str(24 << 20), "swap is not off for the instance"
    # the process is in its group in every hierarchy, from its start
    groups = _read(f"/proc/{pid}/cgroup")
    want_path = f"/microvim/{node_id}/{inst['id']}"
    assert groups.count(want_path) == (1 if mode == "v2" else 2), f"/proc/{pid}/cgroup:\n{groups}"
    # 2.25 vCPUs: a fraction of the period above one CPU
    tok2 = h.unique_arg()
    inst2 = c.create(h.exec_body("wide", ["30", tok2], resources={"vcpus": 2.25, "memory_mb": 100}))[0]
    d2 = _group_dirs(mode, node_id, inst2["id"])
    quota = _read(os.path.join(d2[0], "cpu.max")).split()[0] if mode == "v2" else \
        _read(os.path.join(d2[0], "cpu.cfs_quota_us"))
    assert quota == "225000", quota
    # the group goes with the instance
    c.stop_and_remove(inst["id"])
    c.stop_and_remove(inst2["id"])
    for d in dirs + d2:
        h.wait_until(lambda d=d: not os.path.exists(d), 5, f"{d} removed after the instance ended")


def test_escaped_process_killed_with_the_group():
    """A process the instance left in its group, in a session of its own (out of reach of
    the stop's signal to the instance's process group), is killed when the group goes."""
    core, c, node, node_id, mode = _cluster("n-cg-escape")
    tok, tok2 = h.unique_arg(), h.unique_arg()
    inst = c.create(h.exec_body("escaper", ["-c", f"setsid sleep 60 {tok2} & exec sleep 60 {tok}"],
                                command="/bin/sh"))[0]
    # Until the shell's background child has exec'd `setsid` and then `sleep`, it is a copy
    # of the shell whose argv carries both tokens too: wait for the `sleep` itself (setsid(2)
    # comes before that exec, so by then its session is its own), then count the instance's.
    escaped = h.wait_until(lambda: h.procs_of_program("sleep", tok2), 5,
                           "the process in a session of its own")[0]
    h.expect_procs(tok, 1, "the instance's own process")
    assert os.getsid(escaped) == escaped, "the second process did not get a session of its own"
    c.stop_and_remove(inst["id"])
    h.wait_until(lambda: not h.procs_with_arg(tok2), 5, "the escaped process killed with its group")
    # (its group may stay until the node's next start sweeps it: the kill is not waited for)


def test_forced_stop_of_a_throttled_instance():
    """An instance at the least CPU quota (0.001 vCPU: 1 ms each 100 ms) that ignores SIGTERM
    and spins is killed when its grace is over, with what it left in its group. A killed
    process still runs its way out and the kernel throttles it there: a debt of CPU time
    made such ends take seconds on a busy host, so the forced stop lifts the quota of the
    group it kills (src/drivers/cgroup.c cgroup_kill); the delay itself is a figure of
    the stressed runs, not asserted here."""
    core, c, node, node_id, mode = _cluster("n-cg-force", extra=["--stop-grace", "0.5"])
    tok, tok2 = h.unique_arg(), h.unique_arg()
    script = f"trap '' TERM; setsid sleep 60 {tok2} & while :; do :; done; exit {tok}"
    inst = c.create(h.exec_body("spinner", ["-c", script], command="/bin/sh",
                                resources={"vcpus": 0.001, "memory_mb": 16}))[0]
    # The escaped sleep first: until the shell's background child has exec'd `setsid` and
    # then `sleep`, it is a copy of the shell that carries tok too, and at this quota it may
    # stay one for a while (CI once saw two "spinning shells" for 2 s).
    h.wait_until(lambda: h.procs_of_program("sleep", tok2), 10, "the escaped sleep")
    h.expect_procs(tok, 1, "the spinning shell")
    c.stop_and_remove(inst["id"], timeout=30)
    h.wait_until(lambda: not h.procs_with_arg(tok) and not h.procs_with_arg(tok2), 5,
                 "the spinning shell and the escaped sleep killed")
    assert "did not stop within 0.5 s: forcing" in node.log_text(), node.log_tail()
    assert "cannot lift its CPU quota" not in node.log_text(), node.log_tail()
    for d in _group_dirs(mode, node_id, inst["id"]):
        h.wait_until(lambda d=d: not os.path.exists(d), 5, f"{d} removed after the forced stop")


def test_memory_hog_fails_with_oom():
    core, c, node, node_id, mode = _cluster("n-cg-oom")
    hog = {"name": "hog", "driver": "exec", "resources": {"vcpus": 1, "memory_mb": 16},
           "config": {"command": "/bin/dd", "args": ["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]}}
    inst = c.create(hog, wait=False)[0]
    end = c.wait_state(inst["id"], ("failed", "exited"), 15)
    assert end["state"] == "failed" and end.get("error", "").startswith("oom"), \
        f"a 64 MiB buffer under a 16 MiB limit: {end.get('state')} {end.get('error')!r}"
    for d in _group_dirs(mode, node_id, inst["id"]):
        h.wait_until(lambda d=d: not os.path.exists(d), 5, f"{d} removed after the oom")
    # the same program within its memory exits 0
    ok = dict(hog, name="fits", resources={"vcpus": 1, "memory_mb": 128})
    inst = c.create(ok, wait=False)[0]
    end = c.wait_state(inst["id"], ("failed", "exited"), 15)
    assert end["state"] == "exited", f"64 MiB under 128 MiB: {end.get('state')} {end.get('error')!r}"


def test_exec_user_nobody():
    core, c, node, node_id, mode = _cluster("n-cg-user", extra=["--exec-user", "nobody"])
    assert _node(c, "n-cg-user")["drivers"]["exec"]["limits"].get("user") == "nobody"
    tok = h.unique_arg()
    inst = c.create(h.exec_body("as-nobody", ["-c", f"echo made > own-file; exec sleep 30 {tok}"],
                                command="/bin/sh"))[0]
    pid = h.expect_procs(tok, 1, "the instance run as nobody")[0]
    made = os.path.join(node.run_dir, "instances", inst["id"], "own-file")
    h.wait_until(lambda: os.path.exists(made), 5, "the instance's file in its own dir")
    assert os.stat(made).st_uid == 65534, "the instance's file is not nobody's"
    uids, gids = _status_ids(pid, "Uid"), _status_ids(pid, "Gid")
    assert uids == [65534] * 4, f"Uid of the instance: {uids}, want nobody (65534) in all four"
    assert gids and len(set(gids)) == 1 and gids[0] != 0, f"Gid of the instance: {gids}"
    assert _status_ids(node.pid, "Uid")[0] == 0, "the node itself stays root"


def test_unknown_exec_user_refused_at_start():
    _need_root()
    core = h.start_core()
    node = h.start_node(core.url, name="n-cg-nouser", exec_allow=ALLOW,
                        extra=["--exec-user", "no-such-user-mv"], wait=False)
    h.wait_until(lambda: not node.alive(), 10, "the node to refuse an unknown --exec-user")
    assert "no user \"no-such-user-mv\"" in node.log_text(), node.log_tail()
    node.stop(expect_alive=False)


def test_restart_sweeps_stale_groups():
    core, c, node, node_id, mode = _cluster("n-cg-sweep")
    tok = h.unique_arg()
    keep = c.create(h.exec_body("keep", ["60", tok]))[0]
    h.expect_procs(tok, 1, "the instance that outlives the node's restart")
    stale = _group_dirs(mode, node_id, "0123456789abcdef")
    for d in stale:
        os.mkdir(d)
    # a node that is gone left a group (an hour old), and one of a live node is being made now
    gone = [os.path.join(os.path.dirname(os.path.dirname(d)), "feedfeedfeedfeed") for d in stale]
    young = [os.path.join(os.path.dirname(os.path.dirname(d)), "beefbeefbeefbeef") for d in stale]
    for g, y in zip(gone, young):
        os.makedirs(os.path.join(g, "0123456789abcdef"), exist_ok=True)
        os.makedirs(os.path.join(y, "0123456789abcdef"), exist_ok=True)
        old = os.stat(g).st_mtime - 3600
        os.utime(os.path.join(g, "0123456789abcdef"), (old, old))
        os.utime(g, (old, old))
    node.stop()
    node2 = h.start_node(core.url, name="n-cg-sweep", exec_allow=ALLOW, data_dir=node.data_dir,
                         run_dir=node.run_dir)
    # the core lists the node as ready from before the restart: wait for the new one
    h.wait_until(lambda: "registered with" in node2.log_text(), 10, "the restarted node registered")
    for d in stale:
        assert not os.path.exists(d), f"the restarted node left the stale group {d}"
    assert "cgroups: removed" in node2.log_text(), node2.log_tail()
    for g, y in zip(gone, young):
        assert not os.path.exists(g), f"the group of a node that is gone stays: {g}"
        assert os.path.isdir(os.path.join(y, "0123456789abcdef")), f"a live node's new group was taken: {y}"
        os.rmdir(os.path.join(y, "0123456789abcdef"))
        os.rmdir(y)
    # the running instance's group is kept, and still holds it
    for d in _group_dirs(mode, node_id, keep["id"]):
        assert os.path.isdir(d), f"the re-attached instance lost its group {d}"
    c.stop_and_remove(keep["id"])


def test_cgroups_off_runs_as_before():
    _need_root()
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="n-cg-off", exec_allow=ALLOW, extra=["--cgroups", "off"])
    limits = _node(c, "n-cg-off")["drivers"]["exec"]["limits"]
    assert limits["cgroups"] == "off" and "--cgroups off" in limits.get("why", ""), limits
    assert "cgroups: none" in node.log_text(), node.log_tail()
    p = h.cli(["nodes", "--core", core.url])
    assert p.returncode == 0 and "none" in p.stdout and "EXEC LIMITS" in p.stdout, p.stdout + p.stderr
    tok = h.unique_arg()
    c.create(h.exec_body("unlimited", ["30", tok], resources={"vcpus": 0.5, "memory_mb": 16}))
    pid = h.expect_procs(tok, 1, "the instance without limits")[0]
    assert "/microvim/" not in _read(f"/proc/{pid}/cgroup"), _read(f"/proc/{pid}/cgroup")
    # the 64 MiB buffer that a 16 MiB limit kills: nothing holds it here
    inst = c.create({"name": "hog", "driver": "exec", "resources": {"vcpus": 1, "memory_mb": 16},
                     "config": {"command": "/bin/dd", "args": ["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]}},
                    wait=False)[0]
    end = c.wait_state(inst["id"], ("failed", "exited"), 15)
    assert end["state"] == "exited", f"{end.get('state')} {end.get('error')!r}"


def test_nodes_shows_the_limits():
    core, c, node, node_id, mode = _cluster("n-cg-cli", extra=["--exec-user", "nobody"])
    p = h.cli(["nodes", "--core", core.url])
    line = [ln for ln in p.stdout.splitlines() if "n-cg-cli" in ln]
    assert p.returncode == 0 and line and f"cgroups {mode}, user nobody" in line[0], p.stdout + p.stderr


def test_bad_cgroup_options_refused():
    for args, words in ((["--cgroups", "v3"], "give auto, v1, v2 or off"),
                        (["--cgroup-parent", "../escape"], "path components")):
        p = h.cli(["node", "--data-dir", h.tmpdir("mv-cgopt-")] + args)
        assert p.returncode != 0 and words in p.stderr, f"node {args}: rc {p.returncode}, stderr {p.stderr!r}"
