"""--notify-batch-ms emulates stock Nomad's client: status reports go out on a free-running
tick of that period, so a report waits from 0 up to the period depending on where in the
period it was queued (not a timer started by the first queued report, which made every
stock notify phase at least the period)."""

import random
import time

import harness as h

PERIOD_MS = 200
RUNS = 8


def test_notify_batch_free_running_tick():
    dev = h.start_dev(extra=["--notify-batch-ms", str(PERIOD_MS)])
    c = dev.client()
    tok = h.unique_arg()
    notify = []
    for i in range(RUNS):
        # start each run at a random point of the period: one right after the previous
        # delete (whose stopped report came on a tick) would always land at the same phase
        time.sleep(random.uniform(0, PERIOD_MS / 1000))
        inst = c.create(h.exec_body(f"nb{i}", [tok]), wait=True)[0]
        assert inst["state"] == "running", inst
        notify.append(inst["trace"]["phases"]["notify"])
        c.stop_and_remove(inst["id"])
    # A timer started by the queued report makes notify >= the period every time; with the
    # tick, each run has a 3/4 chance to wait less than 150 ms (all 8 missing: 1.5e-5).
    assert min(notify) < PERIOD_MS * 0.75, \
        f"notify never below {PERIOD_MS * 0.75} ms in {RUNS} runs started at random phases: {notify}"
    dev.stop()


test_notify_batch_free_running_tick.budget = 60
