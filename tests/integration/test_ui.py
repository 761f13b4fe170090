"""The web dashboard (/ui/): its files as the core serves them (types, ETags, 404, no way
out of the embedded table, public while the API needs the token), GET /v1/traces, and the
page itself in a real browser (headless Chromium through chromedriver): token asked once,
no console errors, an instance created through the API or the CLI appears with its phases,
the waterfall shows the API's values, delete from the page, create from the form, and a
screenshot of each view (into the test's temp dir; also into $MICROVIM_UI_SCREENSHOTS when
set: `make ui-screenshots` refreshes docs/ui/ so)."""

import hashlib
import os
import secrets
import shutil
import time

import harness as h

UI_DIR = h.ROOT / "ui"
VIEWS = ("overview", "nodes", "instances", "instance", "phases", "create")
PHASES = ("accept", "schedule", "dispatch", "prepare", "network", "spawn", "boot", "notify")


def _token_file(token):
    p = os.path.join(h.tmpdir("mv-tok-"), "token")
    with open(p, "w") as f:
        f.write(token + "\n")
    os.chmod(p, 0o600)
    return p


def _get(url, path, headers=None, token=None):
    """(status, headers dict with lower-case names, body bytes), redirects not followed."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        conn.request("GET", path, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _error_code(body):
    import json
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


# ---- the files -------------------------------------------------------------------------------

def test_ui_files_served():
    tok = "t-" + secrets.token_hex(16)
    core = h.start_core(token=tok, token_file=_token_file(tok))
    url = core.url

    st, hd, body = _get(url, "/ui")
    assert st == 301 and hd.get("location") == "/ui/", f"GET /ui -> {st} {hd}"

    files = sorted(p for p in os.listdir(UI_DIR) if not p.startswith("."))
    assert "index.html" in files and "app.js" in files, files
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in files:
        path = "/ui/" if name == "index.html" else f"/ui/{name}"
        st, hd, body = _get(url, path)  # no token: the files are public
        assert st == 200, f"GET {path} without a token -> {st}: {body[:200]!r}"
        with open(UI_DIR / name, "rb") as f:
            want = f.read()
        assert body == want, f"GET {path}: the bytes served are not ui/{name} ({len(body)} vs {len(want)})"
        ctype = hd.get("content-type", "")
        ext = os.path.splitext(name)[1]
        assert ctype.startswith(types[ext]), f"GET {path}: Content-Type {ctype!r} (want {types[ext]})"
        etag = hd.get("etag", "")
        assert etag == '"%s"' % hashlib.sha256(want).hexdigest()[:16], f"GET {path}: ETag {etag!r}"
        assert hd.get("cache-control") == "no-cache", f"GET {path}: Cache-Control {hd.get('cache-control')!r}"
        assert hd.get("x-content-type-options") == "nosniff", hd
        assert "default-src 'self'" in hd.get("content-security-policy", ""), hd
        st, hd2, body = _get(url, path, {"If-None-Match": etag})
        assert st == 304 and body == b"" and hd2.get("etag") == etag, f"GET {path} If-None-Match -> {st}"
        st, _, _ = _get(url, path, {"If-None-Match": f'"other", W/{etag}'})
        assert st == 304, f"GET {path} with a weak tag in a list -> {st}"
        st, _, body = _get(url, path, {"If-None-Match": '"0000000000000000"'})
        assert st == 200 and body == want, f"GET {path} with a stale ETag -> {st}"

    # nothing outside the embedded table, whatever the path
    for path in ("/ui/nope.js", "/ui/../v1/nodes", "/ui/..", "/ui/%2e%2e%2fcore.db", "/ui/..%2f..%2fetc%2fpasswd",
                 "/ui/.hidden", "/ui/js/app.js", "/ui/index.html%00.js", "/ui/INDEX.HTML"):
        st, hd, body = _get(url, path)
        assert st == 404 and _error_code(body) == "not_found", f"GET {path} -> {st}: {body[:200]!r}"
    st = h.call(url, "POST", "/ui/app.js", {})[0]
    assert st == 405, f"POST /ui/app.js -> {st}"
    # the data stays behind the token
    for path in ("/v1/traces", "/v1/instances", "/v1/events"):
        st, _, body = _get(url, path)
        assert st == 401, f"GET {path} without the token -> {st}"


# ---- GET /v1/traces ----------------------------------------------------------------------------

def test_traces_route():
    d = h.start_dev()
    c = d.client()
    st, js, raw = c.call("GET", "/v1/traces")
    assert st == 200 and js["traces"] == [] and js["seq"] == 0 and js["capacity"] >= 1000, raw[:300]
    insts = c.create(dict(h.exec_body("tr", [h.unique_arg()]), count=3))
    insts = [c.get(i["id"]) for i in insts]
    st, js, raw = c.call("GET", "/v1/traces")
    assert st == 200, raw[:300]
    got = {t["id"]: t for t in js["traces"]}
    assert set(got) == {i["id"] for i in insts}, f"traces {sorted(got)} for instances {[i['id'] for i in insts]}"
    seqs = [t["seq"] for t in js["traces"]]
    assert seqs == sorted(seqs) and js["seq"] == seqs[-1], f"seq order: {seqs}, last {js['seq']}"
    for i in insts:
        t = got[i["id"]]
        assert t["trace"] == i["trace"], f"{i['id']}: trace {t['trace']} != the instance's {i['trace']}"
        assert (t["name"], t["driver"], t["node"]) == (i["name"], "exec", i["node"]), t
        assert h.parse_time(t["running_at"]) >= h.parse_time(i["created_at"]), t
    # after, limit, driver
    st, js2, _ = c.call("GET", f"/v1/traces?after={seqs[0]}")
    assert [t["seq"] for t in js2["traces"]] == seqs[1:], js2
    st, js2, _ = c.call("GET", "/v1/traces?limit=1")
    assert [t["seq"] for t in js2["traces"]] == seqs[-1:], js2
    st, js2, _ = c.call("GET", "/v1/traces?driver=qemu")
    assert st == 200 and js2["traces"] == [], js2
    st, js2, _ = c.call("GET", f"/v1/traces?driver=exec&after={seqs[-1]}")
    assert st == 200 and js2["traces"] == [] and js2["seq"] == seqs[-1], js2
    # a removed instance keeps its trace here (that is why the route exists)
    c.stop_and_remove(insts[0]["id"])
    st, js2, _ = c.call("GET", "/v1/traces")
    assert insts[0]["id"] in {t["id"] for t in js2["traces"]}, "the trace went with the instance"
    # bad queries: 400 invalid_query, naming the parameter
    for q, word in (("after=-1", "after"), ("after=abc", "after"), ("after=1.5", "after"), ("after=", "after"),
                    ("after=" + "9" * 40, "after"), ("limit=0", "limit"), ("limit=100000", "limit"),
                    ("limit=+5", "limit"), ("driver=nope", "driver"), ("driver=", "driver")):
        st, js2, raw = c.call("GET", "/v1/traces?" + q)
        assert st == 400 and js2["error"]["code"] == "invalid_query" and word in js2["error"]["message"], \
            f"GET /v1/traces?{q} -> {st} {raw[:300]!r}"


# ---- the page in a browser -------------------------------------------------------------------

def _allowed(entry, allow):
    """A browser log entry the test provoked on purpose: (URL part, status) of a network error."""
    msg = entry.get("message", "")
    return entry.get("source") == "network" and any(
        part in msg and f"status of {status}" in msg for part, status in allow)


def _shots_dir():
    return os.environ.get("MICROVIM_UI_SCREENSHOTS")


def _shot(b, tmp, view, shots):
    path = b.screenshot(os.path.join(tmp, f"{view}.png"))
    with open(path, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, f"{view}.png is not a screenshot ({len(png)} bytes)"
    shots.append(path)


def _view(b, route, ready_js, what, *args, timeout=15):
    b.js("location.hash = arguments[0]", route)
    return b.wait_js(ready_js, timeout, what, *args)


def test_ui_in_browser():
    import browser
    tok = "t-" + secrets.token_hex(16)
    tf = _token_file(tok)
    core = h.start_core(token=tok, token_file=tf)
    h.start_node(core.url, name="n-ui", token=tok, token_file=tf, labels={"rack": "r1"})
    c = core.client()
    first = c.create(h.exec_body("web-a", [h.unique_arg()]))[0]
    tmp = h.tmpdir("mv-ui-shots-")
    shots = []
    allow = [("/logs?", 404), ("/v1/instances", 422)]  # the logs route is not there yet; a refused create

    b = browser.Browser()
    b.get(core.url + "/ui/")
    # the token: asked once; a wrong one is refused with the API's message, then the right one
    b.wait_js("return document.getElementById('login').open", 15, "the token dialog")
    b.js("document.getElementById('login-token').value = arguments[0];"
         "document.getElementById('login-ok').click()", "wrong-" + tok)
    why = b.wait_js("const d = document.getElementById('login');"
                    "return d.open && /refused/.test(document.getElementById('login-why').textContent)"
                    " && document.getElementById('login-why').textContent", 15, "the dialog again after a wrong token")
    assert "bearer token" in why, f"the dialog does not show the API's message: {why!r}"
    b.js("document.getElementById('login-token').value = arguments[0];"
         "document.getElementById('login-ok').click()", tok)
    b.wait_js("return document.getElementById('status').textContent === 'live'", 15, "the event stream open")
    before_login = b.logs()
    assert all(e.get("source") == "network" and "status of 401" in e.get("message", "") for e in before_login
               if e.get("level") == "SEVERE"), f"errors other than the 401s before the token: {before_login}"
    b.console.clear()

    # Overview: the node is ready, the running instance counted, its instantiation in the rate
    b.wait_js("const r = document.querySelector('#ov-nodes [data-ready]');"
              "const n = document.querySelector('#ov-instances [data-state=running]');"
              "return r && r.dataset.ready === '1' && n && n.textContent === '1'", 15,
              "overview: 1 node ready, 1 instance running")
    # a burst while the page watches: every instantiation reaches the page's counts (traces pulled live)
    burst = 100
    p = h.cli(["push", "--core", core.url, "--token-file", tf, "--count", str(burst), "--concurrency", "8",
               "--delete", "-q", "--vcpus", "0.001", "--memory-mb", "1",
               "--config", '{"command": "/bin/sleep", "args": ["%s"]}' % h.unique_arg()], timeout=60)
    assert p.returncode == 0, f"microvim push: {p.returncode} {p.stderr[-400:]}"
    b.wait_js("const r = document.querySelector('#ov-rate [data-count]');"
              f"return r && Number(r.dataset.count) >= {burst}", 15, f"overview: the {burst} instantiations counted")
    b.wait_js("const r = document.querySelector('#ov-instances [data-inflight]');"
              "return r && r.dataset.inflight === '0'", 15, "overview: the core's gauges read again after the burst")
    _shot(b, tmp, "overview", shots)

    # an instance made through the CLI appears by itself (events), then its phases (traces)
    # Instances: the list with the phases of the instance created through the API
    cells = _view(b, "#/instances", "const r = document.querySelector(arguments[0]);"
                  "return r && [...r.querySelectorAll('td')].map(t => t.textContent)",
                  "the first instance in the list", f"tr[data-id=\"{first['id']}\"]")
    first = c.get(first["id"])
    assert cells[0] == "web-a" and cells[2] == "running" and cells[3] == "exec", cells
    assert (cells[6], cells[7]) == ("%.3f ms" % first["trace"]["total_ms"], "%.3f ms" % first["trace"]["overhead_ms"]), \
        f"list row {cells} vs API trace {first['trace']}"
    arg = h.unique_arg()
    p = h.cli(["run", "--core", core.url, "--token-file", tf, "--name", "web-cli", "--", "/bin/sleep", arg])
    assert p.returncode == 0, f"microvim run: {p.returncode} {p.stderr[-400:]}"
    t_cli = time.monotonic()
    cli_inst = [i for i in c.list() if i["name"] == "web-cli"][0]
    row = b.wait_js("const r = document.querySelector(arguments[0]); if (!r) return null;"
                    "const td = [...r.querySelectorAll('td')].map(t => t.textContent);"
                    "return td[3] !== '…' && td[6] !== '–' ? td : null", 15, "the CLI's instance with its trace",
                    f"tr[data-id=\"{cli_inst['id']}\"]")
    print(f"  the CLI's instance was in the list with its trace {time.monotonic() - t_cli:.2f} s after run returned")
    assert row[0] == "web-cli" and row[2] == "running" and row[3] == "exec" and row[4] == "n-ui", row
    assert row[6] == "%.3f ms" % cli_inst["trace"]["total_ms"], f"total {row[6]} != API {cli_inst['trace']}"
    _shot(b, tmp, "instances", shots)

    # Instance: the waterfall has the API's phase values, the logs panel the API's answer
    iid = cli_inst["id"]
    rows = _view(b, f"#/instance/{iid}",
                 "const r = [...document.querySelectorAll('.wf-row[data-phase]')];"
                 "return r.length ? r.map(e => [e.dataset.phase, Number(e.dataset.ms),"
                 " e.querySelector('.wf-ms').textContent]) : null", "the waterfall")
    phases = cli_inst["trace"]["phases"]
    assert [r[0] for r in rows] == [p for p in PHASES if p in phases], f"waterfall phases {rows} vs API {phases}"
    for name, ms, text in rows:
        assert ms == phases[name] and text == "%.3f ms" % phases[name], \
            f"waterfall {name}: {ms} / {text!r}, API {phases[name]}"
    total = b.js("return document.querySelector('.wf-total .wf-ms').textContent")
    assert total == "%.3f ms" % cli_inst["trace"]["total_ms"], f"waterfall total {total!r}: {cli_inst['trace']}"
    spec = b.js("return JSON.parse(document.getElementById('spec').textContent)")
    assert spec == cli_inst["spec"], f"spec shown {spec} != API {cli_inst['spec']}"
    st, js, _ = c.call("GET", f"/v1/instances/{iid}/logs?stream=stdout")
    if st == 404:  # the route is not in this core yet: the panel shows the API's own message
        msg = b.wait_js("const n = document.getElementById('log-note'); return !n.hidden && n.textContent",
                        15, "the logs panel's message")
        assert msg == f"{js['error']['code']}: {js['error']['message']}", f"logs panel: {msg!r} vs API {js}"
    _shot(b, tmp, "instance", shots)

    # delete from the page: Stop (202), then Remove (204)
    b.js("document.getElementById('delete').click()")
    c.wait_state(iid, "stopped", timeout=15)
    b.wait_js("const s = document.querySelector('h1 .state'); return s && s.textContent === 'stopped'", 15,
              "the page showing the instance stopped")
    h.wait_until(lambda: not h.procs_with_arg(arg), 5, "the instance's process gone")
    b.wait_js("const x = document.getElementById('delete'); return x && !x.disabled && x.textContent === 'Remove'",
              15, "a Remove button")
    b.js("document.getElementById('delete').click()")
    b.wait_js("return location.hash === '#/instances'", 15, "back to the list after Remove")
    st, _, _ = c.call("GET", f"/v1/instances/{iid}")
    assert st == 404, f"GET the removed instance -> {st}"
    b.wait_js(f"return !document.querySelector('tr[data-id=\"{iid}\"]') && "
              "!!document.querySelector('#instances-table')", 15, "the removed instance gone from the list")

    # Phases: the distributions over what GET /v1/traces holds
    st, tr, _ = c.call("GET", "/v1/traces?driver=exec")
    n = len(tr["traces"])
    _view(b, "#/phases", "const r = document.querySelector('#phases-table tr[data-phase=total] td:nth-child(2)');"
          f"return r && r.textContent === '{n}'", f"the phases table over {n} traces")
    _shot(b, tmp, "phases", shots)

    # an instance push removed: its page says so and still shows its phases, from the traces
    gone = [t for t in tr["traces"] if t["name"].startswith("push-")][-1]
    allow.append((f"/v1/instances/{gone['id']}", 404))
    rows = _view(b, f"#/instance/{gone['id']}",
                 "const n = document.querySelector('.message.bad'); const r = [...document.querySelectorAll("
                 "'.wf-row[data-phase]')]; return n && !n.hidden && r.length ? [n.textContent, r.map(e => "
                 "[e.dataset.phase, Number(e.dataset.ms)])] : null", "a removed instance's page")
    assert rows[0].startswith("not_found: "), rows
    assert rows[1] == [[p, gone["trace"]["phases"][p]] for p in PHASES if p in gone["trace"]["phases"]], \
        f"{rows[1]} vs the trace {gone['trace']}"

    # Nodes
    node = c.nodes()[0]
    cells = _view(b, "#/nodes", f"const r = document.querySelector('tr[data-node=\"{node['id']}\"]');"
                  "return r && [...r.querySelectorAll('td')].map(t => t.textContent)", "the node's row")
    assert "n-ui" in cells[0] and cells[1] == "ready" and "rack=r1" in cells[7] and "exec" in cells[5], cells
    _shot(b, tmp, "nodes", shots)

    # Create: a refused create shows the API's message; an accepted one is made
    _view(b, "#/create", "return !!document.getElementById('create-form')", "the form")
    form = ("const set = (id, v) => { document.getElementById(id).value = v; };"
            "set('c-name', arguments[0]); set('c-command', arguments[1]); set('c-args', arguments[2]);"
            "document.getElementById('c-submit').click()")
    b.js(form, "web-no", "/bin/not-allowed", "1")
    msg = b.wait_js("const m = document.querySelector('#create-result .message.bad'); return m && m.textContent",
                    15, "the refusal's message")
    assert msg.startswith("no_node: "), f"create refused shows {msg!r}"
    arg2 = h.unique_arg()
    b.js(form, "web-form", "/bin/sleep", arg2)
    b.wait_js("const m = document.querySelector('#create-result .message.ok'); return m && m.textContent",
              15, "the create's answer")
    made = [i for i in c.list() if i["name"] == "web-form"]
    assert len(made) == 1 and made[0]["spec"]["config"] == {"command": "/bin/sleep", "args": [arg2]}, made
    c.wait_state(made[0]["id"], "running")
    _shot(b, tmp, "create", shots)

    # the token is kept for the tab: a reload asks nothing
    b.driver.refresh()
    b.wait_js("return document.getElementById('status').textContent === 'live'", 15, "live after a reload")
    assert not b.js("return document.getElementById('login').open"), "the token was asked again after a reload"

    errors = [e for e in b.logs() if e.get("level") == "SEVERE" and not _allowed(e, allow)]
    assert not errors, "console errors:\n  " + "\n  ".join(str(e) for e in errors)
    assert sorted(os.path.basename(s)[:-4] for s in shots) == sorted(VIEWS), shots
    if _shots_dir():
        os.makedirs(_shots_dir(), exist_ok=True)
        for s in shots:
            shutil.copy(s, _shots_dir())
test_ui_in_browser.budget = 120
