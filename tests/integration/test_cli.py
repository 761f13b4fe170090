"""The CLI as a script would use it: run/ps/show/rm/nodes, --json, --help, exit codes,
--core or MICROVIM_CORE."""

import json
import os
import re

import harness as h

SUBCOMMANDS = ("dev", "core", "node", "run", "ps", "show", "stop", "rm", "nodes")


def _ok(p, what):
    assert p.returncode == 0, f"{what}: exit {p.returncode}\nstdout: {p.stdout[-800:]}\nstderr: {p.stderr[-800:]}"


def _json(p, what):
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"{what}: stdout is not JSON: {p.stdout[:600]!r}") from None


def _find(obj, pred):
    """Any dict inside obj for which pred holds."""
    if isinstance(obj, dict):
        if pred(obj):
            return obj
        vals = obj.values()
    elif isinstance(obj, list):
        vals = obj
    else:
        return None
    for v in vals:
        r = _find(v, pred)
        if r is not None:
            return r
    return None


def test_run_ps_show_rm_nodes():
    d = h.start_dev()
    c = d.client()
    core = ["--core", d.url]
    arg = h.unique_arg()

    p = h.cli(["run", *core, "--name", "clix", "--", "/bin/sleep", arg])
    _ok(p, "microvim run")
    low = p.stdout.lower()
    for word in ("accept", "schedule", "dispatch", "spawn", "notify", "total", "overhead"):
        assert word in low, f"run's phase table lacks {word!r}:\n{p.stdout}"
    insts = [i for i in c.list() if i["name"] == "clix"]
    assert len(insts) == 1 and insts[0]["state"] == "running", f"after run: {insts}"
    iid = insts[0]["id"]
    assert iid in p.stdout, f"run does not print the instance id {iid}:\n{p.stdout}"
    h.expect_procs(arg, 1, f"after `microvim run`, /bin/sleep {arg}")

    arg2 = h.unique_arg()
    p = h.cli(["run", *core, "--json", "--name", "cliy", "--", "/bin/sleep", arg2])
    _ok(p, "microvim run --json")
    js = _json(p, "run --json")
    y = _find(js, lambda o: o.get("name") == "cliy" and "id" in o)
    assert y and y.get("state") == "running", f"run --json: {p.stdout[:600]}"
    assert _find(js, lambda o: "phases" in o), f"run --json has no phases: {p.stdout[:600]}"

    p = h.cli(["ps", *core])
    _ok(p, "microvim ps")
    assert "clix" in p.stdout and "cliy" in p.stdout, f"ps:\n{p.stdout}"
    p = h.cli(["ps", *core, "--json"])
    _ok(p, "microvim ps --json")
    js = _json(p, "ps --json")
    assert _find(js, lambda o: o.get("id") == iid), f"ps --json lacks {iid}: {p.stdout[:600]}"

    # MICROVIM_CORE instead of --core
    p = h.cli(["ps"], env={"MICROVIM_CORE": d.url})
    _ok(p, "MICROVIM_CORE=URL microvim ps")
    assert "clix" in p.stdout, f"ps with MICROVIM_CORE:\n{p.stdout}"

    p = h.cli(["show", *core, iid])
    _ok(p, "microvim show")
    assert iid in p.stdout and "clix" in p.stdout and "running" in p.stdout, p.stdout
    p = h.cli(["show", *core, "--json", iid])
    _ok(p, "microvim show --json")
    js = _json(p, "show --json")
    assert _find(js, lambda o: o.get("id") == iid and o.get("state") == "running"), p.stdout[:600]

    p = h.cli(["nodes", *core])
    _ok(p, "microvim nodes")
    node = c.nodes()[0]
    assert node["name"] in p.stdout or node["id"] in p.stdout, f"nodes:\n{p.stdout}"
    # where the node keeps instance dirs and records (it may be a fallback): API and table
    assert node.get("run_dir") == d.run_dir, f"GET /v1/nodes run_dir {node.get('run_dir')!r}, want {d.run_dir!r}"
    assert d.run_dir in p.stdout and "RUN DIR" in p.stdout, f"nodes does not show the run dir:\n{p.stdout}"
    p = h.cli(["nodes", *core, "--json"])
    _ok(p, "microvim nodes --json")
    assert _find(_json(p, "nodes --json"), lambda o: o.get("id") == node["id"]), p.stdout[:600]

    def stopped_or_gone(i):
        st, js, _ = c.call("GET", f"/v1/instances/{i}")
        return st == 404 or (st == 200 and js.get("state") == "stopped")
    p = h.cli(["rm", *core, iid])
    _ok(p, "microvim rm")
    h.wait_until(lambda: stopped_or_gone(iid), 10, "instance stopped or removed after rm")
    h.wait_until(lambda: not h.procs_with_arg(arg), 2, "process gone after rm")
    p = h.cli(["rm", *core, "--json", y["id"]])
    _ok(p, "microvim rm --json")
    if p.stdout.strip():
        _json(p, "rm --json")
    h.wait_until(lambda: stopped_or_gone(y["id"]), 10, "instance stopped or removed after rm")
    h.wait_until(lambda: not h.procs_with_arg(arg2), 2, "process gone after rm")

    p = h.cli(["show", *core, "0123456789abcdef"])
    assert p.returncode == 1, f"show of an unknown id exits {p.returncode} (want 1): {p.stderr[-300:]}"
    assert p.stderr.strip(), "show of an unknown id says nothing on stderr"


test_run_ps_show_rm_nodes.budget = 90


def test_exit_codes_and_errors():
    d = h.start_dev()
    core = ["--core", d.url]
    p = h.cli(["frobnicate"])
    assert p.returncode == 2, f"unknown subcommand exits {p.returncode} (want 2)"
    p = h.cli(["run", *core, "--name", "nocmd"])
    assert p.returncode == 2, f"run without a command exits {p.returncode} (want 2): {p.stderr[-300:]}"
    p = h.cli(["run", *core, "--name", "nocmd", "--"])
    assert p.returncode == 2, f"run with an empty command exits {p.returncode} (want 2)"
    p = h.cli(["ps", "--no-such-option", *core])
    assert p.returncode == 2, f"an unknown option exits {p.returncode} (want 2)"
    p = h.cli([])
    assert p.returncode != 0, "no subcommand exits 0"
    # refused by the core (disallowed executable): not 0, the reason on stderr
    p = h.cli(["run", *core, "--name", "idx", "--", "/usr/bin/id"])
    assert p.returncode not in (0, 2) and p.returncode > 0, f"refused run exits {p.returncode}"
    assert p.stderr.strip(), "refused run prints no reason"
    assert d.client().list() == [], "a refused run stored an instance"
    # no core there
    p = h.cli(["ps", "--core", f"http://127.0.0.1:{h.free_port()}"])
    assert p.returncode not in (0, 2) and p.returncode > 0, f"ps with no core exits {p.returncode}"
    assert p.stderr.strip(), "ps with no core prints no reason"


def test_help_everywhere():
    fails = []
    for args in [["--help"]] + [[s, "--help"] for s in SUBCOMMANDS]:
        p = h.cli(args, timeout=10)
        if p.returncode != 0:
            fails.append(f"microvim {' '.join(args)}: exit {p.returncode}")
        elif "usage" not in p.stdout.lower():
            fails.append(f"microvim {' '.join(args)}: no usage on stdout: {p.stdout[:200]!r}")
    assert not fails, "\n  ".join(fails)


def test_daemon_options_of_the_other_daemon_are_refused():
    """An option of the core given to a node (or the other way round) is refused with exit
    status 2 and a sentence naming the daemon it belongs to, not silently ignored; dev takes
    both, but not --core or --user."""
    cases = [(["node", "--max-rate", "5"], "of `microvim core`"),
             (["node", "--listen", "127.0.0.1:1"], "of `microvim core`"),
             (["core", "--exec-allow", "/bin/sleep"], "of `microvim node`"),
             (["core", "--stop-grace", "1"], "of `microvim node`"),
             (["dev", "--core", "http://127.0.0.1:1"], "not an option of `microvim dev`"),
             (["dev", "--user", "nobody"], "not an option of `microvim dev`")]
    for argv, says in cases:
        p = h.cli(argv + ["--data-dir", h.tmpdir("mv-opt-")])
        assert p.returncode == 2, f"{argv} exits {p.returncode} (want 2): {p.stderr[-300:]}"
        assert says in p.stderr and argv[1] in p.stderr, f"{argv}: {p.stderr!r}"


def test_core_store_option():
    """--store takes a PostgreSQL URL only (SQLite needs none); a server nobody listens on
    stops the core at start with words naming PostgreSQL, exit status 1, nothing bound."""
    p = h.cli(["core", "--store", "mysql://x@y/z", "--data-dir", h.tmpdir("mv-opt-")])
    assert p.returncode == 2 and "--store" in p.stderr and "postgresql://" in p.stderr, p.stderr[-400:]
    p = h.cli(["core", "--store", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", "--listen",
               f"127.0.0.1:{h.free_port()}", "--data-dir", h.tmpdir("mv-opt-")], timeout=30)
    assert p.returncode == 1 and "PostgreSQL" in p.stderr, (p.returncode, p.stderr[-400:])


# ---- the guest's wait is not the VIM's; run does not call a failed instance a success ----

def _add_hello(d):
    node = d.client().nodes()[0]
    if "qemu" not in node["drivers"]:
        raise AssertionError("no qemu driver on this node (scripts/install-deps installs qemu-system-x86)")
    p = h.cli(["image", "add", "hello", "--core", d.url, "--kernel", str(h.ROOT / "build" / "vnf" / "hello")])
    _ok(p, "microvim image add hello")


def _row(text, label):
    """The cells after `label` in the phase table of run/show, or None."""
    for line in text.splitlines():
        if line.strip().startswith(label):
            return line.strip()[len(label):].split()
    return []


def test_ready_marker_that_never_came_is_not_charged_to_the_vim():
    """A guest asked for --ready that never prints its marker: run exits 1 and charges no
    client-side VIM overhead (it printed 2999 ms for a 3 s wait); push counts it as an error
    (not_ready) with no total and no overhead, like the core's trace that ends at running.
    A guest that does print it then shows image_cache (hit: the first fetched the image) in
    run's and show's table."""
    d = h.start_dev()
    core = ["--core", d.url]
    c = d.client()
    _add_hello(d)
    qemu = ["--driver", "qemu", "--image", "hello", "--config", '{"accel": "tcg"}']

    p = h.cli(["run", *core, *qemu, "--name", "vm-never", "--ready", "NEVER", "--timeout", "2"],
              timeout=60)
    assert p.returncode == 1, f"run whose guest never got ready exits {p.returncode} (want 1): {p.stderr}"
    total = _row(p.stdout, "total (client)")
    # --timeout counts from the command's start, the client's total from the request sent a
    # few ms later: "includes the wait" is far above the core's few ms, not >= 2000 exactly
    assert total and float(total[0]) >= 1500, f"the client's total should include the 2 s wait:\n{p.stdout}"
    over = _row(p.stdout, "VIM overhead (client)")
    assert over and over[0] == "-", f"the wait for the marker is charged to the VIM:\n{p.stdout}"
    core_over = _row(p.stdout, "VIM overhead (core)")
    assert core_over and float(core_over[0]) < 1000, f"core overhead until running:\n{p.stdout}"
    assert "not ready" in p.stderr and "NEVER" in p.stderr, p.stderr
    never = [i for i in c.list() if i["name"] == "vm-never"][0]
    assert never["state"] == "running" and never.get("ready") is False, never

    out = os.path.join(h.tmpdir("mv-push-"), "nr.jsonl")
    p = h.cli(["push", *core, *qemu, "--ready", "NEVER", "--timeout", "1", "--count", "1", "--delete",
               "--out", out, "--json"], timeout=90)
    assert p.returncode == 1, f"push with a guest never ready exits {p.returncode} (want 1): {p.stderr}"
    js = _json(p, "push --json")
    assert js["running"] == 0 and js["errors"] == 1, js
    assert [g["code"] for g in js["error_codes"]] == ["not_ready"], js["error_codes"]
    assert js["series"]["overhead"]["n"] == 0 and js["series"]["total"]["n"] == 0, js["series"]
    rec = json.loads(open(out).read().splitlines()[0])
    assert rec["overhead_ms"] is None and rec["total_ms"] is None, f"record charges the wait: {rec}"
    assert rec["state"] == "running" and "ready marker" in rec["error"], rec

    p = h.cli(["run", *core, *qemu, "--name", "vm-ok", "--ready", "MICROVIM-VNF READY"], timeout=60)
    _ok(p, "run --ready MICROVIM-VNF READY")
    assert _row(p.stdout, "image_cache")[:1] == ["hit"], f"run's table lacks image_cache hit:\n{p.stdout}"
    ok_id = [i for i in c.list() if i["name"] == "vm-ok"][0]["id"]
    p = h.cli(["show", *core, ok_id])
    _ok(p, "show")
    assert _row(p.stdout, "image_cache")[:1] == ["hit"], f"show's table lacks image_cache:\n{p.stdout}"
    assert "ready    yes" in p.stdout, f"show does not say the guest is ready:\n{p.stdout}"

    for iid in (ok_id, never["id"]):
        _ok(h.cli(["rm", *core, iid]), "rm")


test_ready_marker_that_never_came_is_not_charged_to_the_vim.budget = 150


def test_run_reports_an_instance_that_ended_at_once():
    """`run -- /bin/sleep` (no argument): the process exits 1 right after it started. run
    says so, with the error, exit code and its stderr's tail, and exits 1 instead of printing
    "running" and 0.
    One that exits 0 is reported and run exits 0; a healthy one is running after --settle."""
    d = h.start_dev()
    core = ["--core", d.url]
    # --settle 10: the window ends as soon as the instance does, and a busy machine may take
    # a while to report the exit; it is the default window's length that is a choice
    p = h.cli(["run", *core, "--name", "nosleep", "--settle", "10", "--", "/bin/sleep"])
    assert p.returncode == 1, f"run of a failing command exits {p.returncode} (want 1)\n{p.stdout}\n{p.stderr}"
    assert "failed" in p.stdout.splitlines()[0], f"run's first line should say failed:\n{p.stdout}"
    # "started, then failed", or "ended before it was seen running" when the exit overtook
    # the running report
    assert "failed: exited with code 1" in p.stderr, p.stderr
    # with the tail of its stderr (GET /v1/instances/ID/logs?stream=stderr): sleep's complaint
    assert "its stderr ends with:" in p.stderr and "missing operand" in p.stderr, p.stderr

    p = h.cli(["run", *core, "--json", "--name", "nosleep2", "--settle", "10", "--", "/bin/sleep"])
    assert p.returncode == 1, f"run --json of a failing command exits {p.returncode} (want 1)"
    js = _json(p, "run --json")
    assert js["state"] == "failed" and js.get("exit_code") == 1, js

    p = h.cli(["run", *core, "--name", "zero", "--settle", "10", "--", "/bin/sh", "-c", "exit 0"])
    _ok(p, "run of a command that exits 0")
    assert "exited (exit code 0)" in p.stderr, p.stderr

    arg = h.unique_arg()
    p = h.cli(["run", *core, "--name", "healthy", "--settle", "0.2", "--", "/bin/sleep", arg])
    _ok(p, "run of a healthy command")
    assert "running" in p.stdout.splitlines()[0] and not p.stderr.strip(), f"{p.stdout}\n{p.stderr}"
    healthy = [i for i in d.client().list() if i["name"] == "healthy"][0]
    _ok(h.cli(["rm", *core, healthy["id"]]), "rm")
    h.wait_until(lambda: not h.procs_with_arg(arg), 5, "process gone after rm")


test_run_reports_an_instance_that_ended_at_once.budget = 90


def test_push_groups_errors_by_code():
    """push prints the errors by code with one example message each, not just a count."""
    d = h.start_dev()
    core = ["--core", d.url]
    refused = ["--config", '{"command": "/usr/bin/id"}']  # not on --exec-allow: 422 no_node
    p = h.cli(["push", *core, "--count", "2", *refused])
    assert p.returncode == 1, f"push with refused instances exits {p.returncode} (want 1)"
    lines = p.stdout.splitlines()
    at = [k for k, line in enumerate(lines) if line.startswith("errors 2 ")]
    assert at, f"no 'errors 2' line:\n{p.stdout}"
    assert lines[at[0] + 1].strip().startswith("no_node x 2, e.g. HTTP 422 no_node: "), p.stdout
    p = h.cli(["push", *core, "--count", "2", "--json", *refused])
    js = _json(p, "push --json")
    groups = js.get("error_codes")
    assert groups and groups[0]["code"] == "no_node" and groups[0]["count"] == 2, js
    assert "exec-allow" in groups[0]["example"], groups


# ---- CLI details ----

def test_core_url_mistakes_name_the_fix():
    """--core without its scheme is bad usage (2) with the URL to give, in every client
    command and from $MICROVIM_CORE too; a host that does not resolve says so (3)."""
    port = h.free_port()
    bare = f"127.0.0.1:{port}"
    cases = [["ps", "--core", bare], ["run", "--core", bare, "--", "/bin/sleep", "1"],
             ["image", "ls", "--core", bare], ["push", "--core", bare, "--config", '{"command": "/bin/true"}']]
    for argv in cases:
        p = h.cli(argv)
        assert p.returncode == 2, f"{argv} exits {p.returncode} (want 2): {p.stderr}"
        assert f"http://{bare}" in p.stderr and "--core" in p.stderr, f"{argv}: {p.stderr!r}"
    p = h.cli(["nodes"], env={"MICROVIM_CORE": bare})
    assert p.returncode == 2 and "$MICROVIM_CORE" in p.stderr and f"http://{bare}" in p.stderr, p.stderr
    p = h.cli(["ps", "--core", f"https://{bare}/v1"])  # https is a core with --tls-cert; no path
    assert p.returncode == 2 and f"use https://{bare}" in p.stderr, p.stderr
    p = h.cli(["ps", "--core", "http://no-such-host.invalid:4650"], timeout=90)
    assert p.returncode == 3, f"unresolvable host exits {p.returncode} (want 3): {p.stderr}"
    assert "cannot resolve" in p.stderr and "no-such-host.invalid" in p.stderr, p.stderr


def test_numbers_help_and_docs_pointers():
    """Numbers as people write them (1048576, 0.1); `microvim --help` in one column; help
    texts point to docs/, not to header files."""
    for argv in (["run", "--memory-mb", "0", "--", "/bin/sleep", "1"],
                 ["push", "--memory-mb", "0", "--config", '{"command": "/bin/true"}']):
        p = h.cli(argv)
        assert p.returncode == 2 and "1048576" in p.stderr and "e+" not in p.stderr, f"{argv}: {p.stderr!r}"

    d = h.start_dev()
    core = ["--core", d.url]
    arg = h.unique_arg()
    p = h.cli(["run", *core, "--name", "tenth", "--vcpus", "0.1", "--", "/bin/sleep", arg])
    _ok(p, "run --vcpus 0.1")
    p = h.cli(["show", *core, [i for i in d.client().list() if i["name"] == "tenth"][0]["id"]])
    _ok(p, "show")
    spec = [line for line in p.stdout.splitlines() if line.startswith("spec")]
    assert spec and '"vcpus":0.1' in spec[0] and "0.1000" not in spec[0], f"show's spec: {spec}"
    arg2 = h.unique_arg()
    _ok(h.cli(["run", *core, "--name", "more", "--vcpus", "0.15", "--", "/bin/sleep", arg2]), "run --vcpus 0.15")
    p = h.cli(["nodes", *core])
    _ok(p, "nodes")
    assert re.search(r"\s0\.25/", p.stdout), f"nodes should show 0.25 vCPUs allocated, not rounded:\n{p.stdout}"
    for name in ("tenth", "more"):
        _ok(h.cli(["rm", *core, [i for i in d.client().list() if i["name"] == name][0]["id"]]), "rm")
    h.wait_until(lambda: not h.procs_with_arg(arg) and not h.procs_with_arg(arg2), 5, "processes gone after rm")

    p = h.cli(["--help"])
    _ok(p, "--help")
    starts = [re.match(r"  \S+\s+", line).end() for line in p.stdout.splitlines() if re.match(r"  \S+\s+\S", line)]
    assert len(starts) >= 10 and len(set(starts)) == 1, f"summaries not in one column ({starts}):\n{p.stdout}"
    for cmd in SUBCOMMANDS + ("push", "image", "analyze", "report", "spawn-baseline"):
        p = h.cli([cmd, "--help"])
        assert not re.search(r"\S+\.h\b", p.stdout), f"`{cmd} --help` points to a header file:\n{p.stdout}"
