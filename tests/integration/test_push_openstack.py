"""test_push_openstack — `microvim push --api openstack` up to the point where it needs a
real OpenStack: options, credentials (OS_* variables, clouds.yaml through --os-cloud and
$OS_CLIENT_CONFIG_FILE), and what it says and returns when Keystone does not answer. Its
measurements against a real Nova are bench/nova's (BENCHMARKS.md); no imitation of Nova
stands in for it here.
"""

import os

import harness

OS_VARS = ["OS_AUTH_URL", "OS_USERNAME", "OS_USER_ID", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_TENANT_NAME",
           "OS_PROJECT_ID", "OS_USER_DOMAIN_NAME", "OS_PROJECT_DOMAIN_NAME", "OS_REGION_NAME", "OS_INTERFACE",
           "OS_CLOUD", "OS_CLIENT_CONFIG_FILE"]


def _push(args, env=None):
    e = {k: "" for k in OS_VARS}  # the test's own environment, not the caller's cloud
    e.update(env or {})
    return harness.cli(["push", "--api", "openstack"] + args, env=e, timeout=60)


def test_push_openstack_options():
    for args, why in [([], "needs --image NAME|ID and --flavor NAME|ID"),
                      (["--image", "vnf"], "needs --image NAME|ID and --flavor"),
                      (["--image", "vnf", "--flavor", "f", "--config", "{}"], "go with --api microvim"),
                      (["--image", "vnf", "--flavor", "f", "--ready", "X"], "go with --api microvim"),
                      (["--image", "vnf", "--flavor", "f", "--poll-ms", "0"], "--poll-ms must be a number"),
                      (["--image", "vnf", "--flavor", "f"], "OS_AUTH_URL is missing")]:
        r = _push(args)
        assert r.returncode == 2 and why in r.stderr, (args, r.returncode, r.stderr)
    r = harness.cli(["push", "--api", "nomad"])
    assert r.returncode == 2 and "--api is microvim (default) or openstack" in r.stderr, r.stderr
    r = harness.cli(["push", "--flavor", "f", "--config", '{"command":"/bin/true"}'])
    assert r.returncode == 2 and "go with --api openstack" in r.stderr, r.stderr


def test_push_openstack_keystone_unreachable():
    port = harness.free_port()  # nothing listens there
    env = {"OS_AUTH_URL": f"http://127.0.0.1:{port}/v3", "OS_USERNAME": "admin", "OS_PASSWORD": "pw",
           "OS_PROJECT_NAME": "admin"}
    r = _push(["--image", "vnf", "--flavor", "f", "--replicate", "1"], env)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert f"no answer from 127.0.0.1:{port} to POST /v3/auth/tokens" in r.stderr, r.stderr


def test_push_openstack_clouds_yaml():
    work = harness.tmpdir("mv-clouds-")
    port = harness.free_port()
    path = os.path.join(work, "clouds.yaml")
    with open(path, "w") as f:
        f.write("clouds:\n"
                "  bench:\n"
                "    auth:\n"
                f"      auth_url: http://127.0.0.1:{port}   # root URL: /v3 is added\n"
                "      username: admin\n"
                "      password: 'pw'\n"
                "      project_name: admin\n"
                "  broken:\n"
                "    auth:\n"
                f"      auth_url: http://127.0.0.1:{port}\n"
                "      username: admin\n")
    env = {"OS_CLIENT_CONFIG_FILE": path}
    r = _push(["--os-cloud", "bench", "--image", "vnf", "--flavor", "f"], env)
    assert r.returncode == 3 and f"no answer from 127.0.0.1:{port} to POST /v3/auth/tokens" in r.stderr, r.stderr
    r = _push(["--image", "vnf", "--flavor", "f"], dict(env, OS_CLOUD="bench"))  # $OS_CLOUD picks it too
    assert r.returncode == 3, r.stderr
    r = _push(["--os-cloud", "broken", "--image", "vnf", "--flavor", "f"], env)
    assert r.returncode == 2 and "auth.password is missing" in r.stderr and "broken" in r.stderr, r.stderr
    r = _push(["--os-cloud", "nope", "--image", "vnf", "--flavor", "f"], env)
    assert r.returncode == 2 and "no cloud \"nope\" (there are: bench, broken)" in r.stderr, r.stderr
    with open(path, "a") as f:
        f.write("\tbad: tab\n")
    r = _push(["--os-cloud", "bench", "--image", "vnf", "--flavor", "f"], env)
    assert r.returncode == 2 and "line 12: a tab in the indentation" in r.stderr, r.stderr
