"""GET /v1/instances in pages: id order, `limit` and `after`, a "next" while more follow,
a page boundary that survives the removal of its instance, the state filter counted
within the limit; `microvim ps` and the harness page through the whole list. Instances
are simulated (`node --simulate`), so hundreds cost milliseconds."""

import json

import harness as h

TOTAL = 250


def _setup():
    core = h.start_core()
    c = core.client()
    work = h.tmpdir("mv-page-")
    sim = h.Daemon("sim", ["node", "--core", core.url, "--simulate", "2", "--name", "pg"], work,
                   url=core.url).start()
    h.wait_until(lambda: sum(1 for x in c.nodes() if x["state"] == "ready") == 2, 20, "2 simulated nodes")
    insts = c.create({"name": "pg", "driver": "sim", "count": TOTAL})
    assert len(insts) == TOTAL
    return core, c, sim, sorted(i["id"] for i in insts)


def _page(c, q):
    st, js, raw = c.call("GET", "/v1/instances" + q)
    assert st == 200, f"GET /v1/instances{q} -> {st}: {raw[:300]!r}"
    return js


def test_pages_in_id_order_with_next():
    core, c, sim, ids = _setup()
    seen, after, pages = [], None, 0
    for _ in range(10):
        js = _page(c, "?limit=100" + (f"&after={after}" if after else ""))
        pages += 1
        got = [i["id"] for i in js["instances"]]
        assert got == sorted(got), "a page is in id order"
        seen += got
        if "next" not in js:
            break
        assert js["next"] == got[-1], f"next is the last id of the page: {js['next']} vs {got[-1]}"
        after = js["next"]
    assert pages == 3 and seen == ids, f"{pages} pages, {len(seen)} ids"
    # exactly a page's worth: no "next" (no empty page to fetch)
    js = _page(c, f"?limit={TOTAL}")
    assert len(js["instances"]) == TOTAL and "next" not in js
    # without a limit: the default page (1000) holds them all
    assert len(_page(c, "")["instances"]) == TOTAL
    # after an id that is not there (any hex boundary): the ids above it
    js = _page(c, "?limit=10000&after=8")
    assert [i["id"] for i in js["instances"]] == [i for i in ids if i > "8"]
    assert _page(c, "?after=ffffffffffffffff") == {"instances": []}

    # the last instance of a page removed: the next page starts where it was
    js = _page(c, "?limit=50")
    gone = js["next"]
    st, _, raw = c.call("DELETE", f"/v1/instances/{gone}?wait=stopped&timeout=10", timeout=30)
    assert st in (200, 202), raw[:300]
    c.wait_state(gone, {"stopped"}, timeout=10)
    st, _, raw = c.call("DELETE", f"/v1/instances/{gone}")
    assert st == 204, raw[:300]
    js = _page(c, f"?limit=50&after={gone}")
    assert [i["id"] for i in js["instances"]] == ids[50:100]

    # the state filter counts within the limit
    stopped = c.call("DELETE", f"/v1/instances/{ids[200]}?wait=stopped&timeout=10", timeout=30)
    assert stopped[0] in (200, 202)
    c.wait_state(ids[200], {"stopped"}, timeout=10)
    js = _page(c, "?state=stopped&limit=1")
    assert [i["id"] for i in js["instances"]] == [ids[200]] and "next" not in js
    js = _page(c, "?state=running&limit=248")
    assert len(js["instances"]) == 248 and "next" not in js

    # the harness and the CLI page through all of it
    assert [i["id"] for i in c.list()] == [i for i in ids if i != gone]
    assert len(c.list(limit=7)) == TOTAL - 1
    p = h.cli(["ps", "--core", core.url, "--page", "60"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()[1:]
    assert [ln.split()[0] for ln in lines] == [i for i in ids if i != gone], p.stdout[:400]
    p = h.cli(["ps", "--core", core.url, "--page", "60", "--json", "--state", "stopped"])
    assert p.returncode == 0, p.stderr
    assert [i["id"] for i in json.loads(p.stdout)["instances"]] == [ids[200]]
    p = h.cli(["ps", "--core", core.url, "--page", "0"])
    assert p.returncode != 0 and "--page" in p.stderr, (p.returncode, p.stderr)
    sim.stop()
    core.stop()
