"""The core needs no privilege: `microvim core --user nobody` gives its data dir to that
user, runs as it, and serves nodes and clients as before."""
import os

import harness as h


def _uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def test_core_runs_as_unprivileged_user():
    if os.geteuid() != 0:
        raise AssertionError("needs root to drop (CI runs as root)")
    top = h.tmpdir("mv-user-")
    os.chmod(top, 0o755)  # the user must be able to reach its data dir
    core = h.start_core(data_dir=os.path.join(top, "core"), extra=["--user", "nobody"])
    uids = _uid(core.pid)
    assert uids and all(u == 65534 for u in uids), f"core uids {uids}, want nobody (65534) everywhere"
    st = os.stat(os.path.join(top, "core", "core.db"))
    assert st.st_uid == 65534, "the store is not owned by the core's user"
    h.start_node(core.url, name="n-user")
    tok = h.unique_arg()
    st, body, raw = h.call(core.url, "POST", "/v1/instances?wait=running&timeout=10",
                           h.exec_body("as-nobody", [tok]))
    assert st == 201 and body["state"] == "running", f"{st}: {raw[:300]!r}"
    # a core restart as the same user opens the same store
    core.stop()
    core2 = h.start_core(port=core.port, data_dir=os.path.join(top, "core"), extra=["--user", "nobody"])
    st, body, raw = h.call(core2.url, "GET", f"/v1/instances/{body['id']}")
    assert st == 200, f"record lost across a restart as nobody: {st} {raw[:200]!r}"


def test_unknown_user_is_refused():
    r = h.cli(["core", "--listen", "127.0.0.1:1", "--data-dir", h.tmpdir("mv-u2-"), "--user", "no-such-user-x"])
    assert r.returncode == 1 and "no such user" in (r.stdout + r.stderr), f"{r.returncode}: {r.stderr}"
