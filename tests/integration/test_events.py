"""GET /v1/events: one JSON object per line for every state change, in order."""

import harness as h

ORDER = ["pending", "scheduled", "starting", "running", "stopped"]


def _subsequence(want, got):
    it = iter(got)
    return all(any(g == w for g in it) for w in want)


def test_events_show_each_transition():
    d = h.start_dev()
    c = d.client()
    es = h.EventStream(d.url).start()
    try:
        tok = h.unique_arg()
        inst = c.create(h.exec_body("ev1", [tok]))[0]
        iid = inst["id"]
        st, js, raw = c.delete(iid, wait=True)
        assert st == 200, f"DELETE ?wait=stopped -> {st}: {raw[:300]!r}"
        es.wait_for(lambda e: e.get("id") == iid and e.get("state") == "stopped", 5,
                    "a 'stopped' event for the instance")
        evs = es.events()
        bad = [e for e in evs if "_unparsable" in e]
        assert not bad, f"unparsable lines in the stream: {bad[:3]}"
        mine = [e for e in evs if e.get("type") == "instance" and e.get("id") == iid]
        states = [e.get("state") for e in mine]
        need = ["scheduled", "starting", "running", "stopped"]
        assert _subsequence(need, states), f"event states for {iid}: {states} (want {need} in order)"
        # nothing out of order: each state's position follows the lifecycle
        idx = [ORDER.index(s) for s in states if s in ORDER]
        assert idx == sorted(idx), f"events out of order: {states}"
        assert all(s in ORDER for s in states), f"unexpected states: {states}"
        for e in mine:
            for k in ("seq", "time", "type", "id", "name", "state", "node"):
                assert k in e, f"event lacks {k!r}: {e}"
            assert e["name"] == "ev1", e
        running = [e for e in mine if e["state"] == "running"][0]
        assert running["node"] == inst["node"], f"running event node {running['node']} != {inst['node']}"
        seqs = [e["seq"] for e in evs if "seq" in e]
        assert all(isinstance(s, int) for s in seqs), f"seq not integers: {seqs[:10]}"
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), \
            f"seq not strictly increasing: {seqs}"
        assert not es.eof, "the events stream closed by itself"
    finally:
        es.close()


def test_events_two_subscribers_and_exit():
    """Two subscribers see the same events; an instance that ends by itself ends with
    an 'exited' event after its start events."""
    d = h.start_dev()
    c = d.client()
    a = h.EventStream(d.url).start()
    b = h.EventStream(d.url).start()
    try:
        inst = c.create(h.exec_body("ev2", [], command="/bin/true"))[0]
        iid = inst["id"]
        for es in (a, b):
            es.wait_for(lambda e: e.get("id") == iid and e.get("state") == "exited", 10,
                        "an 'exited' event")
        sa = [e["state"] for e in a.events() if e.get("id") == iid]
        sb = [e["state"] for e in b.events() if e.get("id") == iid]
        assert sa == sb, f"subscribers disagree: {sa} vs {sb}"
        assert _subsequence(["scheduled", "starting", "exited"], sa), sa
        assert sa[-1] == "exited", f"events after exited: {sa}"
    finally:
        a.close()
        b.close()
