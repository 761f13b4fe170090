"""The OpenStack façade (core --openstack-listen), driven by OpenStack's own clients: the
`openstack` CLI (python3-openstackclient) and openstacksdk, both Debian's, run by
/usr/bin/python3 (scripts/install-deps installs them). The sample VNF build/vnf/hello is a
Glance aki image; a flavor with microvim extra specs says its fractional vCPUs and its
ready marker, so ACTIVE means the guest printed it. Keystone's tokens work on the native
API too. The openstack CLI starts in a second or two, so its commands go through one
process (its batch mode reads them from stdin)."""

import json
import os
import re
import secrets
import signal
import subprocess

import harness as h

OPENSTACK = "/usr/bin/openstack"
PYTHON = "/usr/bin/python3"
MARKER = "MICROVIM-VNF"  # the sample VNF prints "MICROVIM-VNF READY" once up


def _need_clients():
    if not os.path.exists(OPENSTACK):
        raise AssertionError(f"{OPENSTACK} is missing: scripts/install-deps installs python3-openstackclient "
                             "and python3-openstacksdk")


def _start(extra=()):
    port = h.free_port()
    d = h.start_dev(extra=["--openstack-listen", f"127.0.0.1:{port}", *extra])
    d.os_url = f"http://127.0.0.1:{port}"
    node = d.client().nodes()[0]
    if "qemu" not in node["drivers"]:
        raise AssertionError("no qemu driver on this node (scripts/install-deps installs qemu-system-x86)")
    return d


def _env(d, password="any-password"):
    e = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    e.update({"OS_AUTH_URL": d.os_url + "/identity/v3", "OS_USERNAME": "admin", "OS_PASSWORD": password,
              "OS_PROJECT_NAME": "admin", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
              "OS_IDENTITY_API_VERSION": "3", "OS_REGION_NAME": "RegionOne"})
    return e


def _run(argv, env, stdin=None, timeout=120):
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env, start_new_session=True)
    try:
        out, _ = p.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate(timeout=10)
        raise AssertionError(f"{argv[0]} did not finish within {timeout} s:\n{out[-2000:]}") from None
    return p.returncode, out


def _documents(text):
    """The JSON documents (-f json) in the batch's output, in order; other lines skipped."""
    text = re.sub(r"Progress: \d+", "\n", text)  # --wait's progress ends without a newline
    dec, docs, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "[{" and (i == 0 or text[i - 1] == "\n"):
            try:
                doc, end = dec.raw_decode(text, i)
                docs.append(doc)
                i = end
                continue
            except ValueError:
                pass
        i = text.find("\n", i) + 1 or len(text)
    return docs


def test_openstack_cli_and_sdk_boot_the_sample_vnf():
    """openstack image create (aki, the file uploaded), flavor create (fractional vCPUs and
    the ready marker as extra specs), server create --wait reaches ACTIVE with the guest's
    marker seen, server list/show (host, phase trace), server delete --wait, a missing server
    refused with the CLI's own words; then openstacksdk: compute.create_server and
    wait_for_server, delete_server(wait=True). (The SDK's cloud-layer create_server(wait=True)
    insists on an IP address, which a microvim guest does not get from the VIM.)"""
    _need_clients()
    d = _start()
    env = _env(d)
    kernel = str(h.ROOT / "build" / "vnf" / "hello")
    batch = [
        f"image create hello --disk-format aki --container-format aki --file {kernel} -f json",
        f"flavor create m1.micro --vcpus 1 --ram 16 --disk 0 --property microvim:vcpus=0.1 "
        f"--property microvim:ready={MARKER} -f json",
        "server create --image hello --flavor m1.micro --wait s1 -f json",
        "server list -f json",
        "server show s1 -f json",
        "server delete --wait s1",
        "server list -f json",
        "server show nosuch",
    ]
    rc, out = _run([OPENSTACK], env, "\n".join(batch) + "\n")
    docs = _documents(out)
    assert len(docs) == 6, f"openstack batch: {len(docs)} JSON answers (want 6); output:\n{out[-3000:]}"
    image, flavor, created, listed, shown, after = docs
    assert image["name"] == "hello" and image["disk_format"] == "aki", image
    assert flavor["name"] == "m1.micro" and flavor["properties"]["microvim:vcpus"] == "0.1", flavor
    assert created["status"] == "ACTIVE" and created["microvim:state"] == "running", created
    assert [(s["Name"], s["Status"]) for s in listed] == [("s1", "ACTIVE")], listed
    assert shown["OS-EXT-SRV-ATTR:host"] == "dev" and shown["image"].startswith("hello"), shown
    assert "boot" in shown["microvim:trace"]["phases"], shown["microvim:trace"]
    assert after == [], f"s1 still listed after delete --wait: {after}"
    assert "No server with a name or ID of 'nosuch' exists." in out, out[-1500:]
    # the same instance seen natively: ACTIVE came after the guest's marker, and it is gone
    assert d.client().list() == [], d.client().list()

    sdk = f"""
import json, openstack
c = openstack.connect(auth_url={d.os_url + '/identity/v3'!r}, username="admin", password="x",
                      project_name="admin", user_domain_name="Default", project_domain_name="Default")
img, fl = c.image.find_image("hello"), c.compute.find_flavor("m1.micro")
s = c.compute.create_server(name="s2", image_id=img.id, flavor_id=fl.id, networks="none")
s = c.compute.wait_for_server(s, interval=0.2, wait=60)
mid = [i for i in c.list_servers() if i.name == "s2"]
ok = c.delete_server("s2", wait=True, timeout=60)
print(json.dumps({{"status": s.status, "listed": len(mid), "deleted": ok, "left": len(c.list_servers())}}))
"""
    rc, out = _run([PYTHON, "-c", sdk], env)
    assert rc == 0, f"openstacksdk script exits {rc}:\n{out[-3000:]}"
    res = json.loads(out.strip().splitlines()[-1])
    assert res == {"status": "ACTIVE", "listed": 1, "deleted": True, "left": 0}, res


test_openstack_cli_and_sdk_boot_the_sample_vnf.budget = 240


def _keystone(url, body):
    return h.call(url, "POST", "/identity/v3/auth/tokens", body)


def _password_body(password, project="admin"):
    b = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"name": "Default"}, "password": password}}}}}
    if project:
        b["auth"]["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    return b


def test_keystone_tokens_work_on_both_apis():
    """With --token-file and no --openstack-password-file, the admin's password is the
    cluster token. A token issued (X-Subject-Token) carries the catalog and works on the
    native API as a bearer token; one from the token method too; revoked, it works on
    neither. Wrong credentials get 401 in Keystone's shape and issue nothing."""
    tok = "t-" + secrets.token_hex(16)
    tf = os.path.join(h.tmpdir("mv-ostok-"), "token")
    with open(tf, "w") as f:
        f.write(tok + "\n")
    port = h.free_port()
    core = h.start_core(token=tok, token_file=tf, extra=["--openstack-listen", f"127.0.0.1:{port}"])
    os_url = f"http://127.0.0.1:{port}"

    st, js, raw = _keystone(os_url, _password_body("wrong-" + tok))
    assert st == 401 and js["error"]["code"] == 401 and "password" in js["error"]["message"], (st, raw)
    st, js, raw = _keystone(os_url, _password_body(tok, project="nosuch"))
    assert st == 401 and "nosuch" in js["error"]["message"], (st, raw)

    req = __import__("urllib.request").request
    r = req.urlopen(req.Request(os_url + "/identity/v3/auth/tokens", method="POST",
                                data=json.dumps(_password_body(tok)).encode(),
                                headers={"Content-Type": "application/json"}), timeout=10)
    issued, body = r.headers["X-Subject-Token"], json.loads(r.read())
    assert r.status == 201 and issued, r.status
    types = sorted(e["type"] for e in body["token"]["catalog"])
    assert types == ["compute", "identity", "image", "network"], types
    assert body["token"]["project"]["name"] == "admin" and body["token"]["roles"][0]["name"] == "admin", body

    st, js, raw = h.call(core.url, "GET", "/v1/instances", token=issued)
    assert st == 200, f"a Keystone token on the native API: {st} {raw[:300]!r}"
    st, js, raw = h.call(os_url, "GET", "/compute/v2.1/servers", headers={"X-Auth-Token": tok})
    assert st == 200 and js == {"servers": []}, f"the cluster token on the façade: {st} {raw[:300]!r}"

    # the token method, then validation and revocation
    st, js, raw = _keystone(os_url, {"auth": {"identity": {"methods": ["token"], "token": {"id": issued}}}})
    assert st == 201 and "catalog" not in js["token"], (st, raw[:300])
    hdr = {"X-Auth-Token": issued, "X-Subject-Token": issued}
    st, js, raw = h.call(os_url, "GET", "/identity/v3/auth/tokens", headers=hdr)
    assert st == 200 and js["token"]["user"]["name"] == "admin", (st, raw[:300])
    st, js, raw = h.call(os_url, "DELETE", "/identity/v3/auth/tokens", headers=hdr)
    assert st == 204, (st, raw[:300])
    st, js, raw = h.call(core.url, "GET", "/v1/instances", token=issued)
    assert st == 401, f"a revoked token still works on the native API: {st}"
    st, js, raw = h.call(os_url, "GET", "/compute/v2.1/servers", headers={"X-Auth-Token": issued})
    assert st == 401 and js["unauthorized"]["code"] == 401, (st, raw[:300])


def _login(os_url):
    import urllib.request
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": "p"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    r = urllib.request.urlopen(urllib.request.Request(
        os_url + "/identity/v3/auth/tokens", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}), timeout=10)
    return {"X-Auth-Token": r.headers["X-Subject-Token"]}


def test_glance_ami_image_is_a_diskless_boot():
    """aki and ari images uploaded through Glance, an ami image naming them (kernel_id,
    ramdisk_id, os_command_line) active at once: the registry image has that kernel, initrd
    and command line, and a server of it boots them (its instance's boot). Glance's list
    filters, the download of a file, an image in use refused (409), the other routes a
    client reads (limits, zones, key pairs, networks) answer."""
    d = _start()
    os_url, c = d.os_url, d.client()
    auth = _login(os_url)

    def call(method, path, body=None, hdrs=None):
        return h.call(os_url, method, path, body, headers={**auth, **(hdrs or {})})

    kernel = open(h.ROOT / "build" / "vnf" / "hello", "rb").read()
    ramdisk = b"a ramdisk " * 100
    ids = {}
    for name, fmt, data in (("k", "aki", kernel), ("r", "ari", ramdisk)):
        st, js, raw = call("POST", "/image/v2/images", {"name": name, "disk_format": fmt, "container_format": fmt})
        assert st == 201 and js["status"] == "queued", (st, raw[:300])
        ids[name] = js["id"]
        st, js, raw = call("PUT", f"/image/v2/images/{js['id']}/file", data,
                           {"Content-Type": "application/octet-stream"})
        assert st == 204, (st, raw[:300])
    st, js, raw = call("POST", "/image/v2/images", {"name": "vnf", "disk_format": "ami", "container_format": "ami",
                                                    "kernel_id": ids["k"], "ramdisk_id": ids["r"],
                                                    "os_command_line": "console=ttyS0 quiet"})
    assert st == 201 and js["status"] == "active" and js["kernel_id"] == ids["k"], (st, raw[:400])
    vnf = js["id"]
    st, img, raw = c.call("GET", "/v1/images/vnf")
    assert st == 200, raw
    assert img["kernel_size"] == len(kernel) and img["initrd_size"] == len(ramdisk), img
    assert img["cmdline"] == "console=ttyS0 quiet", img
    assert c.call("GET", "/v1/images/r")[0] == 404, "a ramdisk is not a bootable registry image"

    st, js, raw = call("GET", "/image/v2/images?disk_format=ari")
    assert [i["name"] for i in js["images"]] == ["r"], js
    st, js, raw = call("GET", "/image/v2/images?limit=2")
    assert len(js["images"]) == 2 and "next" in js, js
    st, js, raw = call("GET", js["next"].replace("/v2/", "/image/v2/"))
    assert len(js["images"]) == 1 and "next" not in js, js
    req = __import__("urllib.request").request
    with req.urlopen(req.Request(os_url + f"/image/v2/images/{ids['r']}/file", headers=auth), timeout=10) as r:
        assert r.read() == ramdisk

    # a server of the ami image boots its kernel, initrd and command line (its instance's boot,
    # resolved when it was accepted); deleted without waiting for the guest
    st, js, raw = call("POST", "/compute/v2.1/flavors", {"flavor": {"name": "m", "ram": 16, "vcpus": 1, "disk": 0}})
    flavor = js["flavor"]["id"]
    st, js, raw = call("POST", "/compute/v2.1/servers", {"server": {"name": "ami1", "imageRef": vnf,
                                                                    "flavorRef": flavor, "networks": "none"}})
    assert st == 202, (st, raw[:300])
    sid = js["server"]["id"]
    iid = sid.replace("-", "")[:16]
    inst = c.get(iid)
    assert inst["spec"]["image"] == "vnf" and inst["spec"]["boot"]["cmdline"] == "console=ttyS0 quiet", inst["spec"]
    assert inst["spec"]["boot"]["initrd"] == img["initrd"], inst["spec"]
    st, js, raw = call("DELETE", f"/image/v2/images/{vnf}")
    assert st == 409 and "in use" in js["error"]["message"], (st, raw[:300])
    st, js, raw = call("DELETE", f"/compute/v2.1/servers/{sid}")
    assert st == 204, (st, raw[:300])
    h.wait_until(lambda: call("GET", f"/compute/v2.1/servers/{sid}")[0] == 404, 30, "the deleted server to go")
    st, js, raw = call("DELETE", f"/image/v2/images/{vnf}")
    assert st == 204 and c.call("GET", "/v1/images/vnf")[0] == 404, (st, raw[:300])
    # removed through the native API, a Glance image is gone for Glance too
    assert c.call("DELETE", "/v1/images/k")[0] == 204
    st, js, raw = call("GET", f"/image/v2/images/{ids['k']}")
    assert st == 404, (st, raw[:300])
    assert [i["name"] for i in call("GET", "/image/v2/images")[1]["images"]] == ["r"]

    for path, key in (("/compute/v2.1/limits", "limits"), ("/compute/v2.1/os-availability-zone", "availabilityZoneInfo"),
                      ("/compute/v2.1/os-keypairs", "keypairs"), ("/network/v2.0/networks", "networks"),
                      ("/identity/v3/projects", "projects"), ("/compute/v2.1/servers/detail", "servers")):
        st, js, raw = call("GET", path)
        assert st == 200 and key in js, (path, st, raw[:300])
    assert js["servers"] == [], js


def _token_of(os_url, user, password, project):
    """(status, X-Subject-Token or None, body) of a password log-in."""
    import urllib.error
    import urllib.request
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    req = urllib.request.Request(os_url + "/identity/v3/auth/tokens", method="POST", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:  # PBKDF2 off the loop: seconds under ASan on a busy host
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers["X-Subject-Token"], json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None, json.loads(e.read() or b"null")


def test_keystone_users_are_the_tenancy_users():
    """A core with --auth: Keystone's users, projects and roles are its own. Projects p1 and
    p2, p1's member m1 and reader r1, p2's member m2 (made on the native API). The openstack
    CLI as m1 uploads an image and creates a server in p1; as m2 it sees neither (the CLI's
    "No server with a name or ID"); as r1 it lists p1's server but may not delete it (403).
    A Keystone token works on the native API with the same rights; the admin lists projects
    and users; wrong password, another project's scope, a reader's create, another
    project's server each refused in OpenStack's shape, changing nothing."""
    _need_clients()
    port = h.free_port()
    core = h.start_auth_core(extra=["--openstack-listen", f"127.0.0.1:{port}"])
    os_url = f"http://127.0.0.1:{port}"
    h.start_node(core.url, name="n-os", token=core.token, token_file=core.token_file)
    adm = {"X-Auth-Token": core.token}  # the admin's native token is a Keystone token too

    def native(method, path, body=None, token=core.token, want=None):
        st, js, raw = h.call(core.url, method, path, body, token=token, timeout=120)
        assert want is None or st == want, f"{method} {path}: {st} {raw[:300]!r}"
        return st, js

    for p in ("p1", "p2"):
        native("POST", "/v1/projects", {"name": p}, want=201)
    pw = {u: f"pw-{u}-{secrets.token_hex(4)}" for u in ("m1", "r1", "m2")}
    for user, project, role in (("m1", "p1", "member"), ("r1", "p1", "reader"), ("m2", "p2", "member")):
        native("POST", "/v1/users", {"name": user, "project": project, "role": role, "password": pw[user]}, want=201)
    st, js, raw = h.call(os_url, "POST", "/compute/v2.1/flavors", {"flavor": {
        "name": "m1.micro", "ram": 16, "vcpus": 1, "disk": 0}}, headers=adm)
    assert st == 200, (st, raw[:300])
    flavor = js["flavor"]["id"]
    st, js, raw = h.call(os_url, "POST", f"/compute/v2.1/flavors/{flavor}/os-extra_specs",
                         {"extra_specs": {"microvim:vcpus": "0.1"}}, headers=adm)
    assert st == 200, (st, raw[:300])

    def cli(user, project, batch):
        e = _env(type("D", (), {"os_url": os_url}), pw[user])
        e.update({"OS_USERNAME": user, "OS_PROJECT_NAME": project})
        return _run([OPENSTACK], e, "\n".join(batch) + "\n")

    kernel = str(h.ROOT / "build" / "vnf" / "hello")
    rc, out = cli("m1", "p1", [f"image create hello --disk-format aki --container-format aki --file {kernel} -f json",
                               "server create --image hello --flavor m1.micro s1 -f json", "server list -f json"])
    docs = _documents(out)
    assert len(docs) == 3, f"m1's batch: {len(docs)} JSON answers (want 3):\n{out[-3000:]}"
    image, created, listed = docs
    sid = created["id"]
    assert [s["Name"] for s in listed] == ["s1"], listed

    rc, out = cli("m2", "p2", ["server list -f json", "image list -f json", f"server show {sid}"])
    docs = _documents(out)
    assert docs[:2] == [[], []], f"m2 sees p1's server or image:\n{out[-2000:]}"
    assert f"No server with a name or ID of '{sid}' exists." in out, out[-1500:]

    rc, out = cli("r1", "p1", ["server list -f json", f"server delete {sid}"])
    docs = _documents(out)
    assert [s["Name"] for s in docs[0]] == ["s1"], out[-2000:]
    assert "HTTP 403" in out or "Policy doesn't allow" in out, out[-1500:]

    # the same tokens on the native API, with the same rights
    tokens = {}
    for user, project in (("m1", "p1"), ("r1", "p1"), ("m2", "p2")):
        st, tokens[user], js = _token_of(os_url, user, pw[user], project)
        assert st == 201 and js["token"]["project"]["name"] == project, (st, js)
        assert js["token"]["roles"][0]["name"] == {"m1": "member", "r1": "reader", "m2": "member"}[user], js
        if user == "m1":
            assert image["owner"] == js["token"]["project"]["id"], (image, js["token"]["project"])
    iid = sid.replace("-", "")[:16]
    st, js = native("GET", "/v1/instances", token=tokens["m1"], want=200)
    assert [i["id"] for i in js["instances"]] == [iid], js
    native("GET", f"/v1/instances/{iid}", token=tokens["m2"], want=404)
    native("DELETE", f"/v1/instances/{iid}", token=tokens["r1"], want=403)

    # the admin's view of Keystone
    st, js, raw = h.call(os_url, "GET", "/identity/v3/projects", headers=adm)
    assert st == 200 and {"admin", "p1", "p2"} <= {p["name"] for p in js["projects"]}, (st, raw[:300])
    st, js, raw = h.call(os_url, "GET", "/identity/v3/users", headers=adm)
    assert st == 200 and {"admin", "m1", "r1", "m2"} <= {u["name"] for u in js["users"]}, (st, raw[:300])

    # refusals, in OpenStack's shapes; nothing changes
    def snapshot():
        return sorted(i["id"] for i in native("GET", "/v1/instances", want=200)[1]["instances"])

    before = snapshot()
    st, tok, js = _token_of(os_url, "m1", "wrong-password", "p1")
    assert st == 401 and tok is None and js["error"]["code"] == 401, (st, js)
    st, tok, js = _token_of(os_url, "m1", pw["m1"], "p2")
    assert st == 401 and "p2" in js["error"]["message"], (st, js)
    st, tok, js = _token_of(os_url, "nosuch", pw["m1"], "p1")
    assert st == 401 and js["error"]["code"] == 401, (st, js)
    srv = {"server": {"name": "s2", "imageRef": image["id"], "flavorRef": flavor, "networks": "none"}}
    rows = [
        ("r1", "POST", "/compute/v2.1/servers", srv, 403, "forbidden"),
        ("r1", "POST", f"/compute/v2.1/servers/{sid}/action", {"os-stop": None}, 403, "forbidden"),
        ("r1", "POST", "/image/v2/images", {"name": "r1img", "disk_format": "aki"}, 403, "error"),
        ("m2", "GET", f"/compute/v2.1/servers/{sid}", None, 404, "itemNotFound"),
        ("m2", "DELETE", f"/compute/v2.1/servers/{sid}", None, 404, "itemNotFound"),
        ("m2", "GET", f"/image/v2/images/{image['id']}", None, 404, "error"),
        ("m2", "POST", "/compute/v2.1/servers", dict(srv, server=dict(srv["server"], name="s3")), 400, "badRequest"),
        ("m1", "GET", "/identity/v3/projects", None, 403, "error"),
        ("m1", "GET", "/identity/v3/users", None, 403, "error"),
        ("m1", "GET", "/identity/v3/projects/p2", None, 404, "error"),
        ("m1", "GET", "/compute/v2.1/servers?all_tenants=1", None, 200, None),
    ]
    fails = []
    for user, method, path, body, want, shape in rows:
        st, js, raw = h.call(os_url, method, path, body, headers={"X-Auth-Token": tokens[user]}, timeout=30)
        if st != want or (shape and not (isinstance(js, dict) and shape in js and js[shape].get("message"))):
            fails.append(f"{user} {method} {path}: {st} (want {want} {shape}) {raw[:200]!r}")
    assert not fails, "\n".join(fails)
    assert snapshot() == before, "a refused request changed the instances"
    # a member's Nova list is its project's, all_tenants or not
    st, js, raw = h.call(os_url, "GET", "/compute/v2.1/servers?all_tenants=1", headers={"X-Auth-Token": tokens["m2"]})
    assert st == 200 and js["servers"] == [], js


test_keystone_users_are_the_tenancy_users.budget = 240


def _os_token(d):
    """A Keystone token for the admin project, and the X-Subject-Token header's value."""
    import urllib.request
    body = _password_body("any-password")
    r = urllib.request.urlopen(urllib.request.Request(
        d.os_url + "/identity/v3/auth/tokens", method="POST", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}), timeout=10)
    return r.headers["X-Subject-Token"]


def test_openstack_server_start_and_reboot():
    """openstack server stop, then server start (SHUTOFF -> ACTIVE, the guest's marker seen
    again), server reboot --soft --wait and --hard --wait (ACTIVE again, each a new run of
    the instance on its node), and the Nova 409 of a start of an ACTIVE server, through the
    real CLI; the task states in between through Nova's API."""
    _need_clients()
    d = _start(["--stop-grace", "1"])  # the sample guest ignores the gentle stop: forced after 1 s
    env = _env(d)
    c = d.client()
    kernel = str(h.ROOT / "build" / "vnf" / "hello")
    rc, out = _run([OPENSTACK], env, "\n".join([
        f"image create hello --disk-format aki --container-format aki --file {kernel} -f json",
        f"flavor create m1.micro --vcpus 1 --ram 16 --disk 0 --property microvim:vcpus=0.1 "
        f"--property microvim:ready={MARKER} -f json",
        "server create --image hello --flavor m1.micro --wait s1 -f json",
        "server stop s1",
    ]) + "\n")
    docs = _documents(out)
    assert len(docs) == 3 and docs[2]["status"] == "ACTIVE", f"openstack batch:\n{out[-3000:]}"
    iid = [i for i in c.list() if i["name"] == "s1"][0]["id"]
    c.wait_state(iid, "stopped", timeout=30)

    rc, out = _run([OPENSTACK], env, "server show s1 -f json\nserver start s1\n")
    shown = _documents(out)
    assert shown and shown[0]["status"] == "SHUTOFF", out[-2000:]
    assert "Error" not in out and "HTTP 409" not in out, out[-2000:]
    inst = c.wait_state(iid, "running", timeout=60)
    h.wait_until(lambda: c.get(iid).get("ready"), 60, "the guest's marker after os-start")
    assert c.get(iid)["run"] == 1

    rc, out = _run([OPENSTACK], env, "\n".join([
        "server show s1 -f json",
        "server reboot --soft --wait s1",
        "server show s1 -f json",
        "server reboot --hard --wait s1",
        "server show s1 -f json",
        "server start s1",
    ]) + "\n")
    docs = _documents(out)
    assert len(docs) == 3, f"openstack batch: {len(docs)} JSON answers (want 3):\n{out[-3000:]}"
    for doc, run in zip(docs, (1, 2, 3)):
        assert doc["status"] == "ACTIVE" and doc["OS-EXT-STS:task_state"] is None, doc
        assert doc["microvim:run"] == run and "boot" in doc["microvim:trace"]["phases"], doc
    assert "Cannot 'start' instance" in out and "vm_state active" in out and "HTTP 409" in out, out[-2000:]
    assert c.get(iid)["run"] == 3 and c.get(iid)["ready"] is True

    # through Nova's API: the task state while it reboots; what SHUTOFF takes
    tok = {"X-Auth-Token": _os_token(d)}
    sid = docs[0]["id"]
    path = f"/compute/v2.1/servers/{sid}"
    st, _, raw = h.call(d.os_url, "POST", path + "/action", {"reboot": {"type": "HARD"}}, headers=tok)
    assert st == 202, raw
    st, js, raw = h.call(d.os_url, "GET", path, headers=tok)
    srv = js["server"]
    # the reboot is on its way, or (on a very fast host) done already: never anything else
    assert (srv["status"], srv["OS-EXT-STS:task_state"]) in (("HARD_REBOOT", "rebooting_hard"), ("ACTIVE", None)), srv
    if srv["status"] == "HARD_REBOOT":
        st, js, raw = h.call(d.os_url, "POST", path + "/action", {"reboot": {"type": "SOFT"}}, headers=tok)
        assert st == 409 and "task_state rebooting_hard" in js["conflictingRequest"]["message"], raw
    h.wait_until(lambda: h.call(d.os_url, "GET", path, headers=tok)[1]["server"]["status"] == "ACTIVE", 60,
                 "ACTIVE after the hard reboot")
    assert c.get(iid)["run"] == 4
    st, _, raw = h.call(d.os_url, "POST", path + "/action", {"os-stop": None}, headers=tok)
    assert st == 202, raw
    c.wait_state(iid, "stopped", timeout=30)
    st, js, raw = h.call(d.os_url, "POST", path + "/action", {"reboot": {"type": "SOFT"}}, headers=tok)
    assert st == 409 and "vm_state stopped" in js["conflictingRequest"]["message"], raw
    assert c.get(iid)["state"] == "stopped" and c.get(iid)["run"] == 4  # refused: nothing changed
    rc, out = _run([OPENSTACK], env, "server delete --wait s1\nserver list -f json\n")
    assert _documents(out) == [[]], out[-2000:]


test_openstack_server_start_and_reboot.budget = 240
