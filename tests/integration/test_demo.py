"""`make demo` stays true: scripts/demo (what `make demo` runs after building) starts a
dev VIM, runs the exec and unikernel Micro-VNFs, prints their phases and stops it all."""
import os
import re
import signal
import subprocess

import harness as h


def test_demo_script():
    port = h.free_port()
    env = dict(os.environ, MICROVIM_BIN=h.BIN, MICROVIM_DEMO_PORT=str(port))
    proc = subprocess.Popen([str(h.ROOT / "scripts" / "demo")], cwd=str(h.ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("scripts/demo did not finish within 90 s")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"scripts/demo exited {proc.returncode}:\n{text[-3000:]}"
    for want in ("accept", "schedule", "dispatch", "prepare", "spawn", "notify", "VIM overhead"):
        assert want in text, f"the demo's phase table lacks {want!r}:\n{text[-3000:]}"
    if "demo-vnf" in text:  # qemu available: the unikernel booted and said so on serial
        assert "MICROVIM-VNF READY" in text, f"no READY marker in the demo output:\n{text[-3000:]}"
        assert re.search(r"boot\s+\d+\.\d+", text), "the unikernel's boot phase is missing"
    # nothing of the demo is left running
    left = subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout.split()
    assert not left, f"demo processes left running: {left}"
