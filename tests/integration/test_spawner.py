"""Spawning with many instances running (src/drivers/proc.c: the spawner threads).

The node spawns from threads whose descriptor table holds only what a child needs, so
that a spawn's cost does not grow with the pidfd the node keeps per instance. What the
node guaranteed before must hold with many instances running:
1. test_exit_status_with_many_running: with 400 instances running, an instance that exits
   is reported at once with its exit status (0, a code, a signal), and it inherited only
   its stdin, stdout and stderr (none of the node's 400 pidfds, sockets or logs).
2. test_readopted_exit_and_new_children: after the node's kill -9 and restart, instances
   of the previous node process (not its children) are re-attached; one that then ends is
   reported at once; new instances are the new node's children, with their exit status,
   and a stop reaches the right process.
"""

import os
import signal
import time

import faultlib as fl
import harness as h

SMALL = {"vcpus": 0.001, "memory_mb": 1}
MANY = 400


def _keep(c, tok, n):
    """n running `sleep TOKEN` instances, created in one request."""
    insts = c.create(h.exec_body("many", [tok], resources=dict(SMALL), count=n), timeout=60)
    assert len(insts) == n, f"created {len(insts)} of {n}"
    h.expect_procs(tok, n, f"{n} running instances", timeout=30)
    return insts


def _sh(name, script, **extra):
    return h.exec_body(name, ["-c", script], command="/bin/sh", resources=dict(SMALL), **extra)


def _fds_of(pid):
    return sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd"))


def test_exit_status_with_many_running():
    d = h.start_dev()
    c = d.client()
    tok = h.unique_arg()
    _keep(c, tok, MANY)
    assert len(_fds_of(d.pid)) > MANY, "the node should hold a descriptor per instance"

    out = os.path.join(h.tmpdir("mv-fds-"), "fds")
    t0 = time.monotonic()
    # the shell lists its own descriptors: 0-2, and the one it reads the directory with
    g = c.create(_sh("fds", f'cd /proc/self/fd && echo * > {out}; exit 7'), wait=False)[0]
    # An exit is an event (the pidfd), never polled: one that is not reported within the
    # bound never is. How soon it comes is the host's load; shown, not asserted.
    g = c.wait_state(g["id"], ("failed", "exited"), 30)
    print(f"  start and exit reported in {time.monotonic() - t0:.2f} s with {MANY} instances running")
    assert g["state"] == "failed" and g.get("exit_code") == 7, g
    assert "exited with code 7" in (g.get("error") or ""), g
    with open(out) as f:
        seen = [int(x) for x in f.read().split()]
    assert {0, 1, 2} <= set(seen) and max(seen) <= 4, \
        f"the instance inherited descriptors {seen}: only 0-2 (and its own) expected"

    ok = c.create(_sh("zero", "exit 0"))[0]
    g = c.wait_state(ok["id"], ("failed", "exited"), 10)
    assert g["state"] == "exited" and g.get("exit_code") == 0, g

    tok2 = h.unique_arg()
    victim = c.create(h.exec_body("victim", [tok2], resources=dict(SMALL)))[0]
    pid = h.expect_procs(tok2, 1, "the victim's process")[0]
    os.kill(pid, signal.SIGKILL)
    g = c.wait_state(victim["id"], ("failed", "exited"), 10)
    assert g["state"] == "failed" and g.get("exit_code") == 128 + 9, g
    assert "killed by signal 9" in (g.get("error") or ""), g
    # every instance process is the node's child, and none is a zombie
    assert all(fl.ppid_of(p) == d.pid for p in h.procs_with_arg(tok)), "an instance is not the node's child"
    assert len(h.procs_with_arg(tok)) == MANY, "an instance died along the way"


test_exit_status_with_many_running.budget = 120


def test_readopted_exit_and_new_children():
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="spawner-n")
    tok = h.unique_arg()
    _keep(c, tok, 100)
    tok_v = h.unique_arg()
    victim = c.create(h.exec_body("victim", [tok_v], resources=dict(SMALL)))[0]
    vpid = h.expect_procs(tok_v, 1, "the victim's process")[0]
    old_node_pid = node.pid

    before = fl.registrations(node)
    fl.kill9(node)
    fl.restart(node)
    fl.wait_registered(node, before)
    h.wait_until(lambda: len(fl.log_grep(node, r"re-attached", limit=1000)) >= 101 or None, 10, "101 re-attachments")
    assert fl.ppid_of(vpid) != node.pid, "an instance of the previous node process is the new one's child"

    # a re-attached instance (not our child: watched through its pidfd) that ends now
    t0 = time.monotonic()
    os.kill(vpid, signal.SIGTERM)
    g = c.wait_state(victim["id"], ("failed", "exited"), 30)  # an event (its pidfd), as above
    print(f"  the end of a re-attached instance reported in {time.monotonic() - t0:.2f} s")
    assert g.get("error") or "exit_code" in g, f"ended without saying why: {g}"

    # new instances are the new node process's children, with their exit status
    g = c.create(_sh("after", "exit 5"), wait=False)[0]
    g = c.wait_state(g["id"], ("failed", "exited"), 10)
    assert g["state"] == "failed" and g.get("exit_code") == 5, g
    tok_n = h.unique_arg()
    fresh = c.create(h.exec_body("fresh", [tok_n], resources=dict(SMALL)))[0]
    npid = h.expect_procs(tok_n, 1, "the new instance's process")[0]
    assert fl.ppid_of(npid) == node.pid and node.pid != old_node_pid, \
        f"the new instance's parent is {fl.ppid_of(npid)}, the node is {node.pid}"

    # stops reach the right processes: one old, one new
    old = [i for i in c.list() if i["name"].startswith("many")][0]
    opid = [p for p in h.procs_with_arg(tok)]
    st, js, raw = c.delete(fresh["id"], wait=True, timeout=15)
    assert st == 200 and js["state"] == "stopped", raw[:300]
    st, js, raw = c.delete(old["id"], wait=True, timeout=15)
    assert st == 200 and js["state"] == "stopped", raw[:300]
    h.wait_until(lambda: not h.procs_with_arg(tok_n) or None, 5, "the new instance gone")
    h.wait_until(lambda: len(h.procs_with_arg(tok)) == len(opid) - 1 or None, 5, "one old instance gone")
    node.stop()
    core.stop()


test_readopted_exit_and_new_children.budget = 90
