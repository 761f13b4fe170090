"""Fault injection (issue 5): nothing lost, nothing duplicated.

1. test_push_under_kill9: a paced push of 1,000 instances (MICROVIM_FAULT_PUSH_N) by 8 client
   threads, each create with its own Idempotency-Key and bounded retries with the same
   key, while a seeded chaos thread kills -9 the core and the two nodes at random moments
   and restarts them on the same port / data dir / run dir. Then the invariants: every
   create answered 2xx has a record that ends running (or failed with an error); one
   process per running instance, none for anything else; instance dirs only for live
   instances; after deleting everything no process and no instance dir is left.
   Seed: printed; MICROVIM_FAULT_SEED replays the fault plan (targets, moments, pauses)
   and the client mix; thread interleavings are not replayed.
2. test_node_kill9_keeps_instances: a node killed -9 and restarted re-attaches to its
   instances (same pids, no second copy); one killed while the node was away is reported
   ended. test_running_report_lost_with_both_killed: the node's "running" report is lost
   and core and node are killed -9; after the restarts the instance must be running.
3. test_partition_on_lost: core and two nodes in network namespaces joined by veth pairs
   (fallback: SIGSTOP/SIGCONT of the node when namespaces are not available, or forced by
   MICROVIM_FAULT_PARTITION=sigstop); the link of
   one node is cut: its instances become lost, an on-lost one is placed on the other node;
   after the heal exactly one copy runs and the lost one without restart runs again.
4. test_core_sigterm_answers_waiters / test_node_sigterm_leaves_instances: graceful stops.
"""

import collections
import os
import random
import signal
import threading
import time

import faultlib as fl
import harness as h

SMALL = {"vcpus": 0.01, "memory_mb": 1}
DONE_STATES = {"running", "failed", "exited", "stopped", "lost"}
RETRY_422 = {"no_node", "no_capacity"}


def _body(name, tok, **extra):
    b = h.exec_body(name, [tok], resources=dict(SMALL))
    b.update(extra)
    return b


def _excerpts(daemons, pattern=r"WARN|warn|reconcile|re-attached|error|ERROR|registered|down",
              limit=15):
    out = []
    for d in daemons:
        lines = fl.log_grep(d, pattern, limit)
        if lines:
            out.append(f"--- {d.kind} {getattr(d, 'name', '')} {d.log_path}")
            out.extend(lines)
    return "\n".join(out)


# ---- 1. push under kill -9 ------------------------------------------------------------------

class Item:
    __slots__ = ("i", "tok", "name", "key", "wait", "statuses", "ids", "final", "code",
                 "replay", "t_first", "t_done")

    def __init__(self, i, tok, wait):
        self.i, self.tok, self.wait = i, tok, wait
        self.name = f"f{i:04d}-{tok}"
        self.key = f"k-{tok}-{i}"
        self.statuses = []   # every HTTP status seen (0: no answer)
        self.ids = []        # instance id of every 2xx answer
        self.final = None    # last status
        self.code = None     # error code of a refusal
        self.replay = None   # (status, id) of the verification retry after a 2xx
        self.t_first = self.t_done = None


def _create(url, it, deadline, max_attempts):
    body = _body(it.name, it.tok)
    q = "?wait=running&timeout=2" if it.wait else ""
    hdr = {"Idempotency-Key": it.key}
    backoff = 0.05
    for _ in range(max_attempts):
        if time.monotonic() > deadline:
            break
        st, js, raw = h.call(url, "POST", "/v1/instances" + q, body, headers=hdr, timeout=8)
        it.statuses.append(st)
        it.final = st
        if 200 <= st < 300:
            if isinstance(js, dict) and isinstance(js.get("id"), str):
                it.ids.append(js["id"])
            else:
                it.ids.append(f"<bad answer {raw[:120]!r}>")
            return True
        code = (js or {}).get("error", {}).get("code") if isinstance(js, dict) else None
        it.code = code
        if st == 0 or st >= 500 or (st == 422 and code in RETRY_422):
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
            continue
        return False  # refused for good
    return False


def _replay(url, it, deadline):
    """The same key and body again, after a 2xx: the answer must name the first answer's
    instance and create nothing. The chaos thread may have the core down at that moment (no
    answer, or 5xx while it restarts): that is retried as a create is, and the first real
    answer is the verdict. Returns (status, id)."""
    backoff = 0.05
    while True:
        st, js, _ = h.call(url, "POST", "/v1/instances", _body(it.name, it.tok),
                           headers={"Idempotency-Key": it.key}, timeout=8)
        if (st != 0 and st < 500) or time.monotonic() > deadline:
            return st, js.get("id") if isinstance(js, dict) else None
        time.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


def _chaos(tl, rng, core, nodes, client, plan, stats, errors, stop_evt):
    """Runs the fault plan: [(at_s, target_index, pause_s)], target 0 = core."""
    t0 = time.monotonic()
    try:
        for at, target, pause in plan:
            while time.monotonic() - t0 < at:
                if stop_evt.is_set():
                    return
                time.sleep(0.02)
            d = core if target == 0 else nodes[target - 1]
            what = "core" if target == 0 else d.name
            before = fl.registrations(d) if target else 0
            pid = d.pid
            fl.kill9(d)
            tl.note(f"chaos: kill -9 {what} (pid {pid}); restart in {pause:.2f} s")
            stats[f"kill -9 {what}"] += 1
            time.sleep(pause)
            fl.restart(d)
            if target == 0:
                # the nodes register again on their own (with backoff); the next fault
                # may come before they did
                fl.wait_core_ready(d, client, timeout=h.READY_TIMEOUT)
            else:
                fl.wait_registered(d, before, timeout=20)
            tl.note(f"chaos: {what} back (pid {d.pid})")
    except BaseException as e:  # noqa: BLE001 - reported by the main thread
        errors.append(f"chaos thread: {e!r}")
        tl.note(f"chaos: ERROR {e!r}")


def test_push_under_kill9():
    seed = fl.seed_from_env()
    rng = random.Random(seed)
    n_items = int(os.environ.get("MICROVIM_FAULT_PUSH_N") or 1000)
    threads = 8
    push_s = 16.0
    kills = {"core": 3, "node": 2}  # per node
    tl = fl.Timeline("push")
    tl.note(f"seed {seed} (MICROVIM_FAULT_SEED={seed} replays it); {n_items} creates, {threads} "
            f"threads, paced over {push_s:.0f} s{' (ASan build: scaled down from 1000)' if fl.ASAN and n_items < 1000 else ''}")

    core = h.start_core(extra=["--schedule", "spread"])
    client = core.client()
    nodes = [h.start_node(core.url, name="fa-n1"), h.start_node(core.url, name="fa-n2")]
    daemons = [core] + nodes

    # the fault plan, all from the seed
    targets = [0] * kills["core"] + [1] * kills["node"] + [2] * kills["node"]
    rng.shuffle(targets)
    times = sorted(rng.uniform(0.8, push_s - 2.0) for _ in targets)
    plan = [(t, tg, rng.uniform(0.1, 0.8)) for t, tg in zip(times, targets)]
    tl.note("plan: " + ", ".join(f"+{t:.2f}s {'core' if tg == 0 else nodes[tg - 1].name} "
                                 f"(down {p:.2f}s)" for t, tg, p in plan))

    items = []
    for i in range(n_items):
        tok = h.unique_arg()
        items.append(Item(i, tok, wait=(rng.random() < 0.5)))
    stats = collections.Counter()
    errors = []
    stop_evt = threading.Event()
    t_start = time.monotonic()
    hard_deadline = t_start + push_s + 60
    nxt = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                k = nxt[0]
                nxt[0] += 1
            if k >= n_items or stop_evt.is_set():
                return
            it = items[k]
            release = t_start + k * push_s / n_items
            delay = release - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            it.t_first = time.monotonic() - t_start
            ok = _create(core.url, it, hard_deadline, 60)
            it.t_done = time.monotonic() - t_start
            if ok and it.i % 10 == 0:
                it.replay = _replay(core.url, it, hard_deadline)

    chaos = threading.Thread(target=_chaos, daemon=True,
                             args=(tl, rng, core, nodes, client, plan, stats, errors, stop_evt))
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    chaos.start()
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join(max(1.0, hard_deadline + 10 - time.monotonic()))
        tl.note("push: clients done")
        chaos.join(max(1.0, hard_deadline + 30 - time.monotonic()))
    finally:
        stop_evt.set()
    assert not chaos.is_alive() and not any(w.is_alive() for w in workers), \
        f"push or chaos did not finish in time\n{tl.text()}"
    assert not errors, f"seed {seed}: fault injection itself failed: {errors}\n{tl.text()}\n" \
                       f"{_excerpts(daemons)}"
    for d in daemons:
        assert d.alive(), f"{d.kind} {getattr(d, 'name', '')} is not running after the push: " \
                          f"status {d.proc.poll()}\n{d.log_tail(30)}"
    fl.wait_nodes_ready(client, [n.name for n in nodes], timeout=20)

    # ---- client-side tally
    hist = collections.Counter()
    for it in items:
        hist.update(str(s) for s in it.statuses)
    ok_items = [it for it in items if it.ids]
    retried = [it for it in items if len(it.statuses) > 1]
    conn_err = sum(1 for it in items for s in it.statuses if s == 0)
    tl.note(f"injected: {dict(stats)}")
    tl.note(f"client: {len(ok_items)}/{n_items} answered 2xx; {len(retried)} needed retries; "
            f"{conn_err} requests without an answer; statuses seen {dict(hist)}")

    violations = []
    # ---- convergence (bounded): nothing pending, scheduled or starting
    conv_s = 45 if fl.ASAN else 30
    box = {}

    def converged():
        st, js, raw = client.call("GET", "/v1/instances", timeout=30)
        if st != 200:
            return None
        box["insts"] = js["instances"]
        return all(i["state"] in DONE_STATES for i in js["instances"])
    t_conv = time.monotonic()
    try:
        h.wait_until(converged, conv_s, "every instance in a settled state", 0.25)
        tl.note(f"converged in {time.monotonic() - t_conv:.2f} s")
    except AssertionError:
        pend = collections.Counter(i["state"] for i in box.get("insts", []))
        violations.append(f"not converged within {conv_s} s: states {dict(pend)}")
        tl.note(f"NOT converged within {conv_s} s: states {dict(pend)}")
    insts = box.get("insts", [])
    by_id = {i["id"]: i for i in insts}
    by_name = {i["name"]: i for i in insts}
    states = collections.Counter(i["state"] for i in insts)
    tl.note(f"store: {len(insts)} instances, states {dict(states)}")

    # ---- invariants on records
    names = {it.name: it for it in items}
    accepted_unanswered = 0
    for it in items:
        if it.ids:
            if len(set(it.ids)) != 1:
                violations.append(f"{it.name} (key {it.key}): 2xx answers name different instances {it.ids}")
            iid = it.ids[0]
            inst = by_id.get(iid)
            if inst is None:
                violations.append(f"{it.name}: answered 2xx as {iid} (statuses {it.statuses}) but the "
                                  f"store has no such instance (found by name: "
                                  f"{(by_name.get(it.name) or {}).get('id')})")
                continue
            if inst["name"] != it.name:
                violations.append(f"{it.name}: answered 2xx as {iid}, which is named {inst['name']}")
            if inst["state"] == "failed":
                if not inst.get("error"):
                    violations.append(f"{it.name} ({iid}) failed without an error: {inst}")
            elif inst["state"] != "running":
                violations.append(f"{it.name} ({iid}) ended {inst['state']} (want running, or failed "
                                  f"with an error); error {inst.get('error')!r}, node {inst.get('node')}")
            if it.replay is not None and (it.replay[0] != 200 or it.replay[1] != iid):
                violations.append(f"{it.name}: the retry with the same Idempotency-Key answered "
                                  f"{it.replay} (want 200 and {iid})")
        else:
            inst = by_name.get(it.name)
            if inst is not None and it.final != 0 and it.final is not None:
                violations.append(f"{it.name}: refused for good ({it.final} {it.code}; statuses "
                                  f"{it.statuses}) yet stored as {inst['id']} ({inst['state']})")
            elif inst is not None:
                accepted_unanswered += 1
                if inst["state"] not in ("running", "failed"):
                    violations.append(f"{it.name}: stored without a 2xx answer, ended {inst['state']}")
    for inst in insts:
        if inst["name"] not in names:
            violations.append(f"store has an instance nobody asked for: {inst['id']} {inst['name']}")
    refused = collections.Counter((it.final, it.code) for it in items if not it.ids)
    tl.note(f"checker: {len(ok_items)} answered 2xx, {accepted_unanswered} stored without an "
            f"answer, refused/unanswered: {dict(refused)}")

    # ---- invariants on processes and files (bounded: a spawned process may still be exec'ing)
    nids = fl.node_ids(client)
    run_dir_of = {nids[n.name]: n.run_dir for n in nodes}
    tokens = [it.tok for it in items]
    running = [i for i in insts if i["state"] == "running"]
    box2 = {}

    def procs_ok():
        found = h.procs_matching(tokens)
        bad = []
        for it in items:
            inst = by_name.get(it.name)
            n = len(found[it.tok])
            want = 1 if inst is not None and inst["state"] == "running" else 0
            if n != want:
                bad.append(f"{it.name} ({inst['id'] if inst else 'no record'}, "
                           f"{inst['state'] if inst else '-'}): {n} processes {found[it.tok]}, want {want}")
        total = sum(len(v) for v in found.values())
        if total != len(running):
            bad.append(f"{total} sleep processes for {len(running)} running instances")
        dirs = {nid: set(fl.instance_dirs(rd)) for nid, rd in run_dir_of.items()}
        for inst in running:
            if inst["id"] not in dirs.get(inst.get("node"), set()):
                bad.append(f"running {inst['id']} has no instance dir on its node {inst.get('node')}")
        box2["bad"], box2["total"] = bad, total
        return not bad
    try:
        h.wait_until(procs_ok, 10, "one process per running instance", 0.2)
    except AssertionError:
        violations.extend(box2["bad"][:40])
        # evidence for each instance with a process count off: who the processes are,
        # what the nodes' records say, what the logs say about the instance
        found = h.procs_matching(tokens)
        node_pids = {d.pid: d.name for d in nodes}
        for it in items:
            inst = by_name.get(it.name)
            want = 1 if inst is not None and inst["state"] == "running" else 0
            if len(found[it.tok]) == want:
                continue
            iid = inst["id"] if inst else None
            desc = []
            for pid in found[it.tok]:
                ppid = fl.ppid_of(pid)
                desc.append(f"pid {pid} (parent {ppid}{' = node ' + node_pids[ppid] if ppid in node_pids else ''}, "
                            f"started {fl.start_time(pid)})")
            recs = {n.name: fl.record_of(n.run_dir, iid) for n in nodes} if iid else {}
            violations.append(f"evidence for {it.name} {iid} (node {inst.get('node') if inst else '-'}; "
                              f"create released at +{it.t_first:.3f}s, answered at +{it.t_done:.3f}s, "
                              f"statuses {it.statuses}): processes {'; '.join(desc)}; node records "
                              f"{ {k: (v or {}).get('pid') for k, v in recs.items()} }; logs: "
                              + " | ".join(ln for d in daemons for ln in fl.log_grep(d, iid or it.name, 8)))
    tl.note(f"checker: {box2.get('total')} sleep processes, {len(running)} running instances, "
            f"{len(box2.get('bad', []))} process/dir problems")

    # ---- delete everything: DELETE ?wait=stopped, then DELETE to purge
    del_problems = []
    ids = list(by_id)
    cursor = [0]

    def deleter():
        while True:
            with lock:
                k = cursor[0]
                cursor[0] += 1
            if k >= len(ids):
                return
            iid = ids[k]
            for _ in range(5):
                st, js, raw = client.delete(iid, wait=True, timeout=15)
                if st != 0:
                    break
                time.sleep(0.2)
            if st == 200:
                if not (isinstance(js, dict) and js.get("state") == "stopped"):
                    del_problems.append(f"DELETE {iid}?wait=stopped -> 200 {raw[:200]!r}")
                st, js, raw = client.delete(iid)
                if st != 204:
                    del_problems.append(f"second DELETE {iid} -> {st} {raw[:200]!r}")
            elif st != 204:
                del_problems.append(f"DELETE {iid}?wait=stopped -> {st} {raw[:200]!r}")
    t_del = time.monotonic()
    dels = [threading.Thread(target=deleter, daemon=True) for _ in range(threads)]
    for d in dels:
        d.start()
    for d in dels:
        d.join(max(1.0, 120 - (time.monotonic() - t_del)))
    assert not any(d.is_alive() for d in dels), "deletes did not finish within 120 s"
    violations.extend(del_problems[:20])
    tl.note(f"deleted {len(ids)} instances in {time.monotonic() - t_del:.2f} s "
            f"({len(del_problems)} unexpected answers)")

    def all_gone():
        left = client.list()
        procs = h.count_procs(tokens)
        dirs = {n.name: fl.instance_dirs(n.run_dir) for n in nodes}
        box2["gone"] = (len(left), procs, {k: len(v) for k, v in dirs.items()}, dirs)
        return not left and procs == 0 and not any(dirs.values())
    try:
        h.wait_until(all_gone, 20, "no instance, process or instance dir left", 0.2)
        tl.note("after deletes: no record, no process, no instance dir")
    except AssertionError:
        n_left, procs, ndirs, dirs = box2["gone"]
        violations.append(f"after deleting everything: {n_left} records, {procs} processes, "
                          f"instance dirs per node {ndirs} (e.g. {[v[:3] for v in dirs.values()]})")
        tl.note(f"after deletes: {n_left} records, {procs} processes, dirs {ndirs}")

    tl.note(f"invariants: {len(violations)} violations")
    assert not violations, (
        f"seed {seed} (MICROVIM_FAULT_SEED={seed}): {len(violations)} invariant violations:\n  "
        + "\n  ".join(violations[:60]) + f"\n--- timeline\n{tl.text(120)}\n--- daemon log excerpts\n"
        + _excerpts(daemons, limit=25))
    for d in nodes + [core]:
        d.stop()


test_push_under_kill9.budget = 170


# ---- 2. node kill -9 keeps its instances ----------------------------------------------------

def test_node_kill9_keeps_instances():
    tl = fl.Timeline("node-kill9")
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="fk-n")
    toks = [h.unique_arg() for _ in range(4)]
    insts = [c.create(_body(f"keep{k}", t), wait=True)[0] for k, t in enumerate(toks)]
    assert all(i["state"] == "running" for i in insts), [i["state"] for i in insts]
    pids = [h.expect_procs(t, 1, f"process of keep{k}")[0] for k, t in enumerate(toks)]
    tl.note(f"4 instances running, pids {pids}")

    before = fl.registrations(node)
    fl.kill9(node)
    tl.note("kill -9 node")
    victim_pid, victim = pids[3], insts[3]
    os.kill(victim_pid, signal.SIGKILL)
    # Gone for good: reaped (by init, its parent being dead), not a zombie. A zombie would
    # be re-attached by the restarting node and end at once, the easy case; an init that
    # reaps at once (or this one, ~1.5 s, before a slow node restart) leaves only the
    # node's record, and the node must still report the end.
    h.wait_until(lambda: not os.path.exists(f"/proc/{victim_pid}"), 30, "the victim reaped")
    tl.note(f"killed keep3's process {victim_pid} while the node is down")
    fl.restart(node)
    fl.wait_registered(node, before)
    tl.note("node restarted and registered")

    for k in range(3):
        assert fl.pid_alive_with(pids[k], toks[k]), \
            f"keep{k}: pid {pids[k]} no longer runs after the node's restart\n{node.log_tail(30)}"
        g = c.get(insts[k]["id"])
        assert g["state"] == "running", f"keep{k} is {g['state']} after the node's restart: {g}"
    # no second copy, now or a moment later (a duplicate start would show here)
    time.sleep(1.0)
    for k in range(3):
        got = h.procs_with_arg(toks[k])
        assert got == [pids[k]], f"keep{k}: processes {got} after the restart, want only {pids[k]}"
    reattached = fl.log_grep(node, r"re-attached")
    assert len(reattached) >= 3, f"node log shows {len(reattached)} re-attachments: {reattached}"

    g = c.wait_state(victim["id"], {"exited", "failed"}, 10)
    tl.note(f"keep3 (killed while the node was away) is {g['state']}: exit_code "
            f"{g.get('exit_code')!r}, error {g.get('error')!r}")
    assert g.get("error") or "exit_code" in g, f"ended without saying why: {g}"
    assert h.procs_with_arg(toks[3]) == [], "keep3 was started again"

    # the node still controls what it re-attached to: a stop works
    for i in insts:
        c.stop_and_remove(i["id"])
    assert h.count_procs(toks) == 0, "processes left after deleting everything"
    h.wait_until(lambda: fl.instance_dirs(node.run_dir) == [] or None, 10, "instance dirs purged")
    # each instance's resources released exactly once (keep3's when it was taken for lost)
    n = [x for x in c.nodes() if x["name"] == "fk-n"][0]
    assert n["instances"] == 0 and n["allocated"]["vcpus"] == 0 and n["allocated"]["memory_mb"] == 0, n
    node.stop()
    core.stop()


test_node_kill9_keeps_instances.budget = 60


def test_running_report_lost_with_both_killed():
    """Deterministic case of a fault the push test hits at random: the node starts an
    instance (record written) but its "running" report never reaches the core, then both
    are killed -9. After the restarts the core's record says scheduled/starting, the node
    re-attaches and lists the instance alive: the instance must end `running`, one copy."""
    tl = fl.Timeline("report-lost")
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="fr-n")
    port = int(core.url.rsplit(":", 1)[1])
    fl.wait_registered(node, 0)
    for attempt in range(5):
        tok = h.unique_arg()
        # Stopped between two polls (busy with the last attempt's stop, say) the node would
        # leave the assignment at the core: stop it only once it idles with its poll sent.
        fl.wait_quiet(node.pid, port)
        os.kill(node.pid, signal.SIGSTOP)      # the assignment waits in the node's socket
        try:
            unread = fl.bytes_waiting_from(node.pid, port)
            inst = c.create(_body("unreported", tok), wait=False)[0]
            # The core answers the node's long-poll with the assignment; only once those bytes
            # are in the node's socket may the core stop (the create's own answer can come
            # first). If the node was stopped between two polls, no poll is waiting and the
            # assignment stays at the core: then the instance starts the ordinary way, and
            # the test tries again.
            try:
                h.wait_until(lambda: fl.bytes_waiting_from(node.pid, port) > unread, 3,
                             "the assignment in the stopped node's socket", 0.01)
                delivered = True
            except AssertionError:
                delivered = False
            if delivered:
                os.kill(core.pid, signal.SIGSTOP)  # the node's report will get no answer
        finally:
            os.kill(node.pid, signal.SIGCONT)
        if delivered:
            break
        tl.note(f"attempt {attempt + 1}: the node had no long-poll at the core; again")
        assert c.wait_state(inst["id"], ("running",), 20)["state"] == "running"
        c.stop_and_remove(inst["id"])
    else:
        raise AssertionError("the node never had a long-poll waiting at the core in 5 attempts")
    try:
        pid = h.expect_procs(tok, 1, "the process started by the node", timeout=5)[0]
        h.wait_until(lambda: fl.record_state(node.run_dir, inst["id"]) == "running", 5,
                     "the node's record says running")
        time.sleep(0.3)
        fl.kill9(core)  # still stopped: the report was never read
    finally:
        if core.alive():
            os.kill(core.pid, signal.SIGCONT)
    fl.kill9(node)
    tl.note(f"instance {inst['id']} pid {pid} started, its running report unanswered; core and "
            f"node killed -9")
    fl.restart(core)
    fl.wait_core_ready(core)
    tl.note(f"core back: instance is {c.get(inst['id'])['state']}")
    before = fl.registrations(node)
    fl.restart(node)
    fl.wait_registered(node, before)
    box = {}

    def running():
        box["g"] = c.get(inst["id"])
        return box["g"]["state"] == "running"
    try:
        h.wait_until(running, 10, "the instance running again", 0.1)
    except AssertionError:
        raise AssertionError(
            f"instance {inst['id']} (process {pid} alive: {fl.pid_alive_with(pid, tok)}, re-attached "
            f"by the node) is still {box['g']['state']} 10 s after the node re-registered\n"
            f"node log: {fl.log_grep(node, r'warn|re-attached|refused')}\n"
            f"core log: {fl.log_grep(core, r'warn|reconcile')}") from None
    assert h.procs_with_arg(tok) == [pid], f"processes {h.procs_with_arg(tok)}, want [{pid}]"
    tl.note("running again, one copy")
    c.stop_and_remove(inst["id"])
    assert h.procs_with_arg(tok) == []
    node.stop()
    core.stop()


test_running_report_lost_with_both_killed.budget = 60


# ---- 3. partition ------------------------------------------------------------------------------

def test_partition_on_lost():
    tl = fl.Timeline("partition")
    if os.environ.get("MICROVIM_FAULT_PARTITION") == "sigstop":
        ok, why = False, "MICROVIM_FAULT_PARTITION=sigstop"
    else:
        ok, why = fl.netns_available()
    mode = "netns" if ok else "sigstop"
    tl.note(f"partition by {'network namespaces + veth, link cut with ip link set down' if ok else 'SIGSTOP/SIGCONT of the node (' + why + ')'}")
    if ok:
        _partition_netns(tl)
    else:
        _partition_sigstop(tl)
    tl.note(f"done ({mode})")


test_partition_on_lost.budget = 90


def _partition_checks(tl, c, node_a, start_b, cut, heal, daemons):
    """Shared by both modes. Two instances are placed on A (the only node yet), B is
    started, then A is cut off and healed."""
    tok_x, tok_y = h.unique_arg(), h.unique_arg()
    x = c.create(_body("mover", tok_x, restart="on-lost"), wait=True)[0]
    y = c.create(_body("stayer", tok_y), wait=True)[0]
    assert x["state"] == "running" and y["state"] == "running", (x, y)
    px = h.expect_procs(tok_x, 1, "mover's process on A")[0]
    py = h.expect_procs(tok_y, 1, "stayer's process on A")[0]
    node_b = start_b()
    nid = fl.node_ids(c)
    assert x["node"] == nid[node_a.name] and y["node"] == nid[node_a.name], (x["node"], y["node"], nid)
    tl.note(f"mover {x['id']} (restart on-lost) pid {px} and stayer {y['id']} pid {py} run on "
            f"{node_a.name}; {node_b.name} is ready")

    cut()
    t_cut = time.monotonic()
    tl.note(f"cut {node_a.name} off")

    def a_down():
        return any(n["name"] == node_a.name and n["state"] == "down" for n in c.nodes())
    h.wait_until(a_down, 15, f"{node_a.name} down at the core", 0.1)
    tl.note(f"{node_a.name} down at the core after {time.monotonic() - t_cut:.2f} s")
    h.wait_until(lambda: (lambda g: g["state"] == "running" and g.get("node") == nid[node_b.name])(
        c.get(x["id"])) or None, 15, "the mover running on B", 0.1)
    gy = c.wait_state(y["id"], "lost", 10)
    during = h.expect_procs(tok_x, 2, "the mover's two copies during the partition", timeout=5)
    tl.note(f"mover placed on {node_b.name} and running; stayer is {gy['state']} "
            f"({gy.get('error')}); during the partition the mover has processes {during} "
            f"(the cut-off node cannot know: documented)")
    assert px in during, f"A's copy {px} should keep running during the partition: {during}"
    time.sleep(2.0)  # the cut-off node keeps trying; its requests pile up
    assert h.procs_with_arg(tok_x) == during, f"mover: {h.procs_with_arg(tok_x)} (was {during})"

    heal()
    t_heal = time.monotonic()
    tl.note(f"healed {node_a.name}")

    def settled():
        ns = {n["name"]: n["state"] for n in c.nodes()}
        if ns.get(node_a.name) != "ready":
            return None
        gx2, gy2 = c.get(x["id"]), c.get(y["id"])
        procs_x = h.procs_with_arg(tok_x)
        if gx2["state"] == "running" and gx2["node"] == nid[node_b.name] and len(procs_x) == 1 \
                and px not in procs_x and gy2["state"] == "running":
            return (gx2, gy2, procs_x)
        return None
    bound = 40
    try:
        gx2, gy2, procs_x = h.wait_until(settled, bound, "one copy of the mover, the stayer running", 0.1)
    except AssertionError:
        gx2, gy2 = c.get(x["id"]), c.get(y["id"])
        raise AssertionError(
            f"{bound} s after the heal: node A "
            f"{[n['state'] for n in c.nodes() if n['name'] == node_a.name]}, mover {gx2['state']} on "
            f"{gx2['node']} with processes {h.procs_with_arg(tok_x)} (A's copy was {px}), stayer "
            f"{gy2['state']} on {gy2['node']}\n{tl.text()}\n{_excerpts(daemons)}") from None
    tl.note(f"settled {time.monotonic() - t_heal:.2f} s after the heal: mover on {node_b.name} "
            f"pid {procs_x}, A's copy {px} stopped; stayer {gy2['state']} on {node_a.name}")
    assert gy2["node"] == nid[node_a.name], f"stayer moved: {gy2}"
    assert h.procs_with_arg(tok_y) == [py], f"stayer: {h.procs_with_arg(tok_y)}, want [{py}]"
    # and it stays so
    time.sleep(1.5)
    assert h.procs_with_arg(tok_x) == procs_x, f"mover: {h.procs_with_arg(tok_x)}, want {procs_x}"
    assert c.get(x["id"])["state"] == "running" and c.get(y["id"])["state"] == "running"
    stops = fl.log_grep(daemons[0], r"reconcile")
    tl.note("core reconcile log: " + " | ".join(ln[-110:] for ln in stops[-4:]))
    for d in daemons:
        assert d.alive(), f"{d.kind} {getattr(d, 'name', '')} died: {d.log_tail(20)}"
    for i in (x, y):
        c.stop_and_remove(i["id"])
    h.wait_until(lambda: h.count_procs([tok_x, tok_y]) == 0, 10, "no process left")
    for n in (node_a, node_b):
        try:
            h.wait_until(lambda n=n: fl.instance_dirs(n.run_dir) == [] or None, 10,
                         f"no instance dir left on {n.name}")
        except AssertionError:
            left = {i: fl.record_state(n.run_dir, i) for i in fl.instance_dirs(n.run_dir)}
            raise AssertionError(
                f"10 s after both instances were deleted (204), {n.name}'s run dir still has "
                f"instance dirs {{id: record state}} {left} (mover {x['id']}, stayer {y['id']}; "
                f"the mover's copy on {node_a.name} was stopped at the heal)\n{tl.text()}\n"
                f"{_excerpts(daemons)}") from None


def _partition_netns(tl):
    topo = fl.Topology()
    daemons = []
    try:
        topo.up()
        tl.note(f"namespaces {sorted(topo.ns.values())}; core listens on {topo.core_ip} (lo of "
                f"{topo.ns['c']} only); veth pairs {sorted(topo.dev.values())}")
        work = h.tmpdir("mv-part-")
        tokf = os.path.join(work, "token")
        token = "fault-partition-" + h.unique_arg()
        with open(tokf, "w") as f:
            f.write(token + "\n")
        url = f"http://{topo.core_ip}:4650"
        core = fl.ns_daemon(topo, "c", "core",
                            ["core", "--listen", f"{topo.core_ip}:4650", "--data-dir",
                             os.path.join(work, "core"), "--token-file", tokf,
                             "--heartbeat-timeout", "2"], url, token)
        daemons.append(core)
        c = fl.NsClient(url, token, topo)
        fl.wait_core_ready(core, c)

        def node(nskey, name):
            rd = os.path.join(work, name, "run")
            d = fl.ns_daemon(topo, nskey, "node",
                             ["node", "--core", url, "--data-dir", os.path.join(work, name),
                              "--run-dir", rd, "--name", name, "--exec-allow", h.EXEC_ALLOW,
                              "--token-file", tokf], url, token)
            d.name, d.run_dir = name, rd
            daemons.append(d)
            fl.wait_nodes_ready(c, [name], 15)
            return d
        node_a = node("a", "pa")
        _partition_checks(tl, c, node_a, lambda: node("b", "pb"),
                          lambda: topo.cut("a"), lambda: topo.heal("a"), daemons)
        for d in reversed(daemons):
            d.stop()
    finally:
        for d in reversed(daemons):
            if d.alive():
                d.stop()
        errs = topo.down()
        if errs:
            h.problem("; ".join(errs))
        tl.note("namespaces and veths removed" + (f" (errors: {errs})" if errs else ""))


def _partition_sigstop(tl):
    core = h.start_core(extra=["--heartbeat-timeout", "2"])
    c = core.client()
    node_a = h.start_node(core.url, name="pa")
    daemons = [core, node_a]

    def start_b():
        d = h.start_node(core.url, name="pb")
        daemons.append(d)
        return d

    def cut():
        os.kill(node_a.pid, signal.SIGSTOP)

    def heal():
        os.kill(node_a.pid, signal.SIGCONT)
    try:
        _partition_checks(tl, c, node_a, start_b, cut, heal, daemons)
    finally:
        if node_a.alive():
            os.kill(node_a.pid, signal.SIGCONT)


# ---- 4. graceful stops ------------------------------------------------------------------------

def test_core_sigterm_answers_waiters():
    tl = fl.Timeline("core-sigterm")
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="fg-n")
    # a frozen node never reports running: the clients below wait until the core answers
    os.kill(node.pid, signal.SIGSTOP)
    toks = [h.unique_arg() for _ in range(3)]
    answers = [None] * 3
    bad = []

    def waiter(k):
        answers[k] = h.call(core.url, "POST", "/v1/instances?wait=running&timeout=60",
                            _body(f"waiting{k}", toks[k]), timeout=90)
    ts = [threading.Thread(target=waiter, args=(k,), daemon=True) for k in range(3)]
    try:
        for t in ts:
            t.start()
        h.wait_until(lambda: len(c.list()) == 3, 10, "the three creates stored")
        time.sleep(0.3)
        assert all(a is None for a in answers), f"answered before the SIGTERM: {answers}"
        stored = {i["name"]: i["id"] for i in c.list()}
        tl.note(f"3 clients waiting on ?wait=running (instances {stored}); SIGTERM to the core")
        t0 = time.monotonic()
        rc = fl.sigterm(core, timeout=15)
        tl.note(f"core exited with status {rc} after {time.monotonic() - t0:.2f} s")
        for t in ts:
            t.join(10)
        for k, a in enumerate(answers):
            if a is None:
                bad.append(f"client {k} still waiting after the core exited")
                continue
            st, js, raw = a
            tl.note(f"client {k}: status {st}: {raw[:160]!r}")
            if st == 0:
                bad.append(f"client {k} got no answer, the connection was closed: {raw[:120]!r}")
            elif not (isinstance(js, dict) and (js.get("id") or js.get("error"))):
                bad.append(f"client {k}: not a JSON answer: {st} {raw[:200]!r}")
        if rc != 0:
            bad.append(f"core exited with status {rc} on SIGTERM (want 0)")
    finally:
        if node.alive():
            os.kill(node.pid, signal.SIGCONT)
    # what was accepted is there after a restart, and runs
    before = fl.registrations(node)
    fl.restart(core)
    fl.wait_core_ready(core)
    fl.wait_registered(node, before, timeout=20)
    for name, iid in stored.items():
        g = c.wait_state(iid, "running", 15)
        tl.note(f"after the core's restart {name} is {g['state']}")
    for t in toks:
        h.expect_procs(t, 1, "one process per created instance", timeout=5)
    for i in c.list():
        c.stop_and_remove(i["id"])
    assert h.count_procs(toks) == 0
    assert not bad, ("SIGTERM on the core while clients wait on ?wait=running:\n  " + "\n  ".join(bad)
                     + f"\n--- timeline\n{tl.text()}\n--- core log\n"
                     + "\n".join(fl.log_grep(core, r".", 30)))
    node.stop()
    core.stop()


test_core_sigterm_answers_waiters.budget = 60


def test_node_sigterm_leaves_instances():
    tl = fl.Timeline("node-sigterm")
    core = h.start_core()
    c = core.client()
    node = h.start_node(core.url, name="fs-n")
    toks = [h.unique_arg() for _ in range(3)]
    insts = [c.create(_body(f"stay{k}", t), wait=True)[0] for k, t in enumerate(toks)]
    pids = [h.expect_procs(t, 1, "process")[0] for t in toks]
    before = fl.registrations(node)
    rc = fl.sigterm(node, timeout=15)
    tl.note(f"node exited with status {rc} on SIGTERM")
    assert rc in (0, -signal.SIGTERM), f"node exited with {rc} on SIGTERM\n{node.log_tail(20)}"
    # it says what it leaves, and how they come back
    left = fl.log_grep(node, r"leaving 3 instances running")
    assert len(left) == 1 and all(i["id"] in left[0] for i in insts) and node.run_dir in left[0] \
        and "--stop-instances-on-exit" in left[0], f"no word of the instances left: {node.log_tail(10)}"
    time.sleep(0.5)
    for k, t in enumerate(toks):
        assert h.procs_with_arg(t) == [pids[k]], \
            f"stay{k}: processes {h.procs_with_arg(t)} after the node's SIGTERM, want [{pids[k]}]"
    fl.restart(node)
    fl.wait_registered(node, before)
    time.sleep(0.5)
    for k, t in enumerate(toks):
        assert h.procs_with_arg(t) == [pids[k]], \
            f"stay{k}: processes {h.procs_with_arg(t)} after the restart, want [{pids[k]}]"
        assert c.get(insts[k]["id"])["state"] == "running"
    back = fl.log_grep(node, r"3 instances from the run dir .* alive again")
    assert len(back) == 1 and node.run_dir in back[0], f"no summary of the re-attachment: {node.log_tail(10)}"
    n_re = len(fl.log_grep(node, r"re-attached"))
    tl.note(f"restarted node re-attached {n_re} instances, same pids {pids}")
    assert n_re >= 3, f"re-attached {n_re}: {node.log_tail(20)}"
    # and controls them: stop one, the process ends and the state says stopped
    for i in insts:
        c.stop_and_remove(i["id"])
    assert h.count_procs(toks) == 0, "processes left after deleting everything"
    node.stop()
    core.stop()


test_node_sigterm_leaves_instances.budget = 60
