"""Per-client request rate: `core --max-rate N` answers 429 (JSON error, Retry-After) past
a burst of 2N requests from one address, and serves it again once tokens refill."""
import time

import harness as h


def test_rate_limit_per_client():
    core = h.start_core(extra=["--max-rate", "5"])
    statuses = []
    for _ in range(30):
        st, body, raw = h.call(core.url, "GET", "/v1/health")
        statuses.append(st)
        if st == 429:
            assert body["error"]["code"] == "rate_limited" and "requests/s" in body["error"]["message"], raw
    # the burst is 2N = 10, less what start_core spent polling /v1/health
    assert 6 <= statuses.count(200) <= 12, f"a burst of about 2N=10 expected: {statuses}"
    assert statuses.count(429) >= 18, f"the rest refused: {statuses}"
    time.sleep(1.2)  # 5 tokens/s refill
    st, _, _ = h.call(core.url, "GET", "/v1/health")
    assert st == 200, "not served again after the bucket refilled"


def test_rate_limit_off():
    core = h.start_core(extra=["--max-rate", "0"])
    for _ in range(200):
        st, _, _ = h.call(core.url, "GET", "/v1/health")
        assert st == 200
