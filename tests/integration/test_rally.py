"""Rally (Debian's rally and python3-rally-openstack, scripts/install-deps) drives the
OpenStack façade as it drives a cloud: NovaServers.boot_and_delete_server, 50 iterations at
concurrency 4, on an "existing cloud" environment whose user is the façade's admin, must
end with 0 failures (its SLA failure_rate max 0). The server is the sample VNF
(build/vnf/hello, a Glance aki image) booted by the qemu driver; Rally polls every 50 ms.
Rally's database, configuration and home (it writes ~/.rally) live in the test's temp dir,
removed with it. Figures: bench/rally and BENCHMARKS.md."""

import json
import os
import shutil
import signal
import subprocess
import urllib.request

import harness as h

RALLY = "/usr/bin/rally"
TIMES, CONCURRENCY = 50, 4


def _rally(args, work, timeout):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = work  # Rally's ~/.rally, in the temp dir
    p = subprocess.Popen([RALLY, "--config-file", os.path.join(work, "rally.conf"), *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, cwd=work, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate(timeout=10)
        raise AssertionError(f"rally {args[0]} did not finish within {timeout} s:\n{out[-3000:]}") from None
    return p.returncode, out


def _results(work):
    """The iterations of the last task (`rally task results`: a JSON list after whatever
    warnings Rally prints first)."""
    rc, out = _rally(["task", "results"], work, 60)
    assert rc == 0, out[-2000:]
    start = min(i for i in (out.find("\n["), 0 if out.startswith("[") else -1) if i >= 0)
    return json.loads(out[start:])[0]["result"]


def _iteration_errors(work):
    """What the failed iterations say (type, message, the end of the traceback), for the
    failure message: Rally prints them amid its tables, which get cut."""
    try:
        errors = [it["error"] for it in _results(work) if it["error"]]
    except Exception as e:  # noqa: BLE001 (a failure message must not fail)
        return f"(no results: {e})"
    shown = [" / ".join(str(x)[-600:] for x in err) for err in errors[:3]]
    return f"{len(errors)} iterations failed: " + "\n".join(shown)


def test_rally_boot_and_delete_server_50_at_concurrency_4():
    if not os.path.exists(RALLY):
        raise AssertionError(f"{RALLY} is missing: scripts/install-deps installs rally and python3-rally-openstack")
    port = h.free_port()
    d = h.start_dev(extra=["--openstack-listen", f"127.0.0.1:{port}"])
    os_url = f"http://127.0.0.1:{port}"
    work = h.tmpdir("mv-rally-")
    try:
        # the image and the flavor, through the façade (what `openstack image/flavor create` send)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "rally"}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
        with urllib.request.urlopen(urllib.request.Request(
                os_url + "/identity/v3/auth/tokens", method="POST", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}), timeout=30) as r:
            auth = {"X-Auth-Token": r.headers["X-Subject-Token"]}
        st, js, raw = h.call(os_url, "POST", "/image/v2/images",
                             {"name": "hello", "disk_format": "aki", "container_format": "aki"}, headers=auth)
        assert st == 201, raw[:300]
        kernel = open(h.ROOT / "build" / "vnf" / "hello", "rb").read()
        st, _, raw = h.call(os_url, "PUT", f"/image/v2/images/{js['id']}/file", kernel,
                            headers={**auth, "Content-Type": "application/octet-stream"})
        assert st == 204, raw[:300]
        st, js, raw = h.call(os_url, "POST", "/compute/v2.1/flavors",
                             {"flavor": {"name": "m1.micro", "ram": 16, "vcpus": 1, "disk": 0}}, headers=auth)
        assert st == 200, raw[:300]
        st, _, raw = h.call(os_url, "POST", f"/compute/v2.1/flavors/{js['flavor']['id']}/os-extra_specs",
                            {"extra_specs": {"microvim:vcpus": "0.1", "microvim:ready": "MICROVIM-VNF"}},
                            headers=auth)
        assert st == 200, raw[:300]

        with open(os.path.join(work, "rally.conf"), "w") as f:
            f.write(f"[database]\nconnection = sqlite:///{work}/rally.sqlite\n[openstack]\n"
                    "nova_server_boot_prepoll_delay = 0\nnova_server_boot_poll_interval = 0.05\n"
                    "nova_server_delete_poll_interval = 0.05\n")
        with open(os.path.join(work, "env.json"), "w") as f:
            json.dump({"openstack": {"auth_url": os_url + "/identity/v3", "region_name": "RegionOne", "users": [{
                "username": "admin", "password": "rally", "project_name": "admin", "user_domain_name": "Default",
                "project_domain_name": "Default"}]}}, f)
        with open(os.path.join(work, "task.json"), "w") as f:
            json.dump({"NovaServers.boot_and_delete_server": [{
                "args": {"flavor": {"name": "m1.micro"}, "image": {"name": "hello"}},
                "runner": {"type": "constant", "times": TIMES, "concurrency": CONCURRENCY},
                "sla": {"failure_rate": {"max": 0}}}]}, f)
        for args in (["db", "create"], ["env", "create", "--name", "microvim", "--spec", "env.json"]):
            rc, out = _rally(args, work, 120)
            assert rc == 0, f"rally {' '.join(args)} exits {rc}:\n{out[-3000:]}"
        rc, out = _rally(["task", "start", "task.json"], work, 300)
        assert rc == 0, f"rally task start exits {rc}; {_iteration_errors(work)}\n{out[-4000:]}"
        rc, out = _rally(["task", "sla-check", "--json"], work, 60)
        assert rc == 0, f"Rally's SLA failed (rc {rc}):\n{out[-3000:]}"
        iterations = _results(work)
        errors = [it["error"] for it in iterations if it["error"]]
        assert len(iterations) == TIMES and not errors, f"{len(iterations)} iterations, errors: {errors[:3]}"
        # every server deleted: nothing left behind
        assert d.client().list() == [], d.client().list()
    finally:
        shutil.rmtree(work, ignore_errors=True)


test_rally_boot_and_delete_server_50_at_concurrency_4.budget = 300
