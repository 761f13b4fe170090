"""The CLI as a script would use it: run/ps/show/rm/nodes, --json, --help, exit codes,
--core or MICROVIM_CORE."""

import json

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
