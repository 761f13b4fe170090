"""The xen driver end to end, through the xl STAND-IN (this machine has no Xen).

`microvim dev --xl tests/xl-standin/xl --xenstore BUILD/tests/xenstore-standin
--xen-console-dir DIR`: the stand-in toolstack checks every config with Xen's own parser
(libxlutil) and every kernel's Xen ELF notes against the guest type, keeps a fake xenstore
(a directory tree with watches) and logs each "guest's" console as xenconsoled would; no
guest runs (tests/xl-standin, docs/drivers.md). Covered: a PV image (ClickOS-style, its
type from `image add --xen-type pv`) with a Click configuration that the stand-in ClickOS
guest reads from xenstore before it logs "Starting driver" (the ready marker: the boot
phase), a PVH image (the sample VNF, no type: PVH) whose console line is its marker, a
domain destroyed behind the node's back (reported by the @releaseDomain watch, not the
poll), and the refusals: a PVH-only kernel registered as PV, a Click configuration for a
PVH image, a bad xen_type, a bad config.click, config.type.
"""

import os

import harness as h

XL = str(h.ROOT / "tests" / "xl-standin" / "xl")
BUILD_TESTS = os.path.join(os.path.dirname(os.path.abspath(h.BIN)), "tests")
HELLO = str(h.ROOT / "build" / "vnf" / "hello")
CLICK = "\n".join(["// a ClickOS router from microvim's test",
                   "src :: FromDevice;",
                   "src -> Print(\"in\") -> Queue -> ToDevice;"] +
                  [f"Idle -> Discard; // filler line {i} with a \\backslash" for i in range(40)]) + "\n"


def _standin():
    """The stand-in's dirs and the environment its programs read."""
    work = h.tmpdir("mv-xen-")
    env = {
        "XL_STANDIN_DIR": os.path.join(work, "standin"),
        "XL_STANDIN_CHECK": os.path.join(BUILD_TESTS, "xlcheck"),
        "XL_STANDIN_XENSTORE": os.path.join(BUILD_TESTS, "xenstore-standin"),
        "XL_STANDIN_CONSOLE_DIR": os.path.join(work, "console"),
        "XL_STANDIN_BOOT_MS": "20",
    }
    for tool in ("xlcheck", "xenstore-standin", "xl-mkkernel"):
        path = os.path.join(BUILD_TESTS, tool)
        assert os.access(path, os.X_OK), f"{path} is missing: `make` builds the xl stand-in's programs"
    pv_kernel = os.path.join(work, "clickos-pv")
    r = h.subprocess.run([os.path.join(BUILD_TESTS, "xl-mkkernel"), "pv", pv_kernel], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return work, env, pv_kernel


def _start(env):
    port = h.free_port()
    work = h.tmpdir("mv-dev-")
    url = f"http://127.0.0.1:{port}"
    args = ["dev", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(work, "data"), "--run-dir",
            os.path.join(work, "run"), "--stop-grace", "1", "--xl", XL, "--xenstore", env["XL_STANDIN_XENSTORE"],
            "--xen-console-dir", env["XL_STANDIN_CONSOLE_DIR"]]
    d = h.Daemon("dev", args, work, url=url, env=env).start()
    h._wait_ready(d, lambda: h._health_ok(url, None), "GET /v1/health")
    h._wait_ready(d, lambda: h._node_ready(url, None), "a ready node")
    return d


def _image_add(url, name, kernel, *extra):
    r = h.cli(["image", "add", name, "--core", url, "--kernel", kernel] + list(extra))
    assert r.returncode == 0, f"image add {name}: {r.stdout} {r.stderr}"


def _standin_xl(env, *args):
    e = dict(os.environ)
    e.update(env)
    return h.subprocess.run([XL] + list(args), capture_output=True, text=True, env=e, timeout=60)


def _domid(env, iid):
    r = _standin_xl(env, "domid", f"mv-{iid}")
    assert r.returncode == 0, f"xl domid mv-{iid}: {r.stderr}"
    return int(r.stdout.strip())


def test_xen_clickos_and_pvh_through_the_standin():
    _, env, pv_kernel = _standin()
    dev = _start(env)
    c = dev.client()
    nodes = c.nodes()
    assert "xen" in nodes[0]["drivers"], nodes[0]["drivers"]
    assert "standin" in nodes[0]["drivers"]["xen"]["version"], nodes[0]["drivers"]["xen"]

    _image_add(dev.url, "clickos", pv_kernel, "--xen-type", "pv")
    _image_add(dev.url, "hello", HELLO, "--cmdline", "hello PVH-GUEST-UP")
    st, js, raw = c.call("GET", "/v1/images/clickos")
    assert st == 200 and js["xen_type"] == "pv", raw
    st, js, raw = c.call("GET", "/v1/images/hello")
    assert st == 200 and "xen_type" not in js, raw

    # ClickOS: the Click configuration goes through xenstore; its "Starting driver" is boot
    fw = c.create({"name": "fw", "driver": "xen", "image": "clickos", "config": {"click": CLICK},
                   "ready": {"serial": "Starting driver"}}, timeout=60)[0]
    fw = h.wait_until(lambda: (lambda j: j if j.get("ready") else None)(c.get(fw["id"])), 30,
                      "the ClickOS instance ready")
    assert fw["state"] == "running", fw
    assert "boot" in fw["trace"]["phases"], fw["trace"]
    domid = _domid(env, fw["id"])
    with open(os.path.join(env["XL_STANDIN_DIR"], "guests", str(domid), "click-0.conf")) as f:
        assert f.read() == CLICK, "the guest read another Click configuration than the one given"
    # the console as xenconsoled logged it: the node's serial log, through the link
    with open(os.path.join(env["XL_STANDIN_CONSOLE_DIR"], f"guest-mv-{fw['id']}.log")) as f:
        console = f.read()
    assert "booted as pv, GUEST_OS Mini-OS" in console and "Starting driver" in console, console
    print(f"  ClickOS (stand-in): spawn {fw['trace']['phases'].get('spawn')} ms, "
          f"boot {fw['trace']['phases']['boot']} ms")

    # PVH (no xen_type on the image): the sample VNF; the stand-in's console echoes its cmdline
    pvh = c.create({"name": "pvh", "driver": "xen", "image": "hello",
                    "ready": {"serial": "PVH-GUEST-UP"}}, timeout=60)[0]
    pvh = h.wait_until(lambda: (lambda j: j if j.get("ready") else None)(c.get(pvh["id"])), 30,
                       "the PVH instance ready")
    assert "boot" in pvh["trace"]["phases"], pvh["trace"]
    with open(os.path.join(env["XL_STANDIN_CONSOLE_DIR"], f"guest-mv-{pvh['id']}.log")) as f:
        assert "booted as pvh" in f.read()

    # a domain destroyed behind the node's back: the @releaseDomain watch reports it
    h.wait_until(lambda: "domain exits are events now" in dev.log_text(), 10, "the xen watch on")
    r = _standin_xl(env, "destroy", f"mv-{fw['id']}")
    assert r.returncode == 0, r.stderr
    ended = c.wait_state(fw["id"], ("exited", "failed"), 15)
    assert f"instance {fw['id']}: domain mv-{fw['id']} ended (xen event)" in dev.log_text(), dev.log_tail(20)
    assert "gone" in (ended.get("error") or "") or ended["state"] == "exited", ended

    # the destroyed ClickOS domain started again (xl create anew, its Click configuration
    # written again), and the PVH one restarted: each a new run, ready again
    st, js, raw = c.call("POST", f"/v1/instances/{fw['id']}/start?wait=ready&timeout=30", timeout=60)
    assert st == 200 and js["state"] == "running" and js["ready"] is True and js["run"] == 1, raw
    with open(os.path.join(env["XL_STANDIN_DIR"], "guests", str(_domid(env, fw["id"])), "click-0.conf")) as f:
        assert f.read() == CLICK, "the new run's guest read another Click configuration"
    st, js, raw = c.call("POST", f"/v1/instances/{pvh['id']}/restart?wait=ready&timeout=30", timeout=60)
    assert st == 200 and js["state"] == "running" and js["ready"] is True and js["run"] == 1, raw
    assert _standin_xl(env, "list").stdout.count("mv-") == 2

    # a normal stop
    c.stop_and_remove(pvh["id"], timeout=20)
    c.stop_and_remove(fw["id"], timeout=20)
    assert _standin_xl(env, "list").stdout.count("mv-") == 0
    dev.stop()


test_xen_clickos_and_pvh_through_the_standin.budget = 180


def test_xen_refusals_through_the_standin():
    _, env, pv_kernel = _standin()
    dev = _start(env)
    c = dev.client()
    _image_add(dev.url, "hello-as-pv", HELLO, "--xen-type", "pv")
    _image_add(dev.url, "hello", HELLO)

    # the image's type: pv or pvh, nothing else
    r = h.cli(["image", "add", "x", "--core", dev.url, "--kernel", pv_kernel, "--xen-type", "hvm"])
    assert r.returncode == 1 and "xen_type must be" in r.stderr, (r.returncode, r.stderr)

    # refused at the core, nothing stored
    for config, what in (({"click": "a\u0007b"}, "0x07"), ({"click": ""}, "empty"),
                         ({"type": "pv"}, "--xen-type"), ({"click": "x" * (64 * 1024 + 1)}, "config.click")):
        st, js, raw = c.call("POST", "/v1/instances", {"name": "bad", "driver": "xen", "image": "hello",
                                                       "config": config})
        assert st == 400 and what in js["error"]["message"], (config.keys(), st, raw[:300])
    assert c.list() == []

    # refused by Xen (the stand-in, as Xen's PV loader would): a PVH-only kernel as PV
    bad = c.create({"name": "pvh-as-pv", "driver": "xen", "image": "hello-as-pv"}, timeout=60)[0]
    bad = c.wait_state(bad["id"], "failed", 30)
    assert "generic loader" in bad["error"] and "boot it as PVH" in bad["error"], bad["error"]

    # a Click configuration for a PVH image: refused by the driver before any domain exists
    bad = c.create({"name": "click-on-pvh", "driver": "xen", "image": "hello",
                    "config": {"click": "Idle -> Discard;"}}, timeout=60)[0]
    bad = c.wait_state(bad["id"], "failed", 30)
    assert "PV guest" in bad["error"], bad["error"]
    with open(os.path.join(env["XL_STANDIN_DIR"], "calls.log")) as f:
        assert f"/{bad['id']}/xen.cfg" not in f.read(), "xl create was called for a refused instance"
    assert _standin_xl(env, "list").stdout.count("mv-") == 0
    dev.stop()


test_xen_refusals_through_the_standin.budget = 120
