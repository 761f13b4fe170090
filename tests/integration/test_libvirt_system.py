"""The libvirt driver against the distribution's system libvirtd as installed: root, QEMU as
libvirt-qemu, dynamic ownership, virtlogd writing file consoles (Debian's qemu.conf).

A private system-mode virtlogd + libvirtd (tests/integration/libvirtd.py, system=True: its
own mount namespace, config, run, state, log dirs and socket) and `microvim dev` as root
with --libvirt-uri qemu:///system?socket=...: the sample VNF boots to its ready marker
(the node reads it from the serial file: the boot phase), is deleted, and nothing of it is
left — no domain, no QEMU, no instance dir, no label or ownership change on the kernel,
none of libvirt's state for it but the QEMU log libvirt keeps of every domain.

Before the fix QEMU (libvirt-qemu) could not reach the kernel in the node's image cache
(dirs 0700): "could not open kernel file ...: Permission denied".

Skipped (passing, with a line saying so) when libvirtd, virtlogd, QEMU, virsh, unshare,
nsenter or the user libvirt-qemu (libvirt-daemon-system) is missing, or when not root.
"""

import os

import harness as h
import libvirtd

KERNEL = str(h.ROOT / "build" / "vnf" / "hello")
READY = "MICROVIM-VNF READY"


def _skip():
    why = "root" if os.geteuid() != 0 else libvirtd.missing(system=True)
    if why:
        print(f"  SKIP: {why} is not there (scripts/install-deps)")
    return bool(why)


def _libvirt_files(lv, domain):
    """Every file or dir under the daemon's private state, config, run and log dirs whose
    name holds the domain's."""
    found = []
    for d in ("etc", "lib", "run", "log"):
        for root, dirs, files in os.walk(os.path.join(lv.base, d)):
            found += [os.path.relpath(os.path.join(root, n), lv.base) for n in dirs + files if domain in n]
    return sorted(found)


def test_libvirt_system_daemon_boots_and_cleans_up():
    if _skip():
        return
    lv = libvirtd.PrivateLibvirt(base=h.tmpdir("mv-libvirtd-sys-"), system=True).start()
    dev = None
    try:
        dev = h.start_dev(exec_allow=None, extra=["--libvirt-uri", lv.uri, "--stop-grace", "0"])
        r = h.cli(["image", "add", "hello", "--core", dev.url, "--kernel", KERNEL])
        assert r.returncode == 0, f"image add: {r.stderr}"
        c = dev.client()
        inst = c.create({"name": "lv-sys", "driver": "libvirt", "image": "hello",
                         "resources": {"vcpus": 1, "memory_mb": 32}, "ready": {"serial": READY}},
                        timeout=60)[0]
        iid, domain = inst["id"], f"mv-{inst['id']}"
        assert inst["state"] == "running", f"{inst.get('error')}; node log:\n{dev.log_tail(10)}"
        h.wait_until(lambda: c.get(iid).get("ready"), 30, "the ready marker seen by the node")
        trace = c.get(iid)["trace"]["phases"]
        print(f"  spawn {trace['spawn']:.0f} ms (virDomainCreateXML), boot {trace['boot']:.1f} ms")

        # QEMU runs as libvirt-qemu, and wrote into the node's own serial file
        qemu = lv.qemu_pid(domain)
        with open(f"/proc/{qemu}/status") as f:
            uid = [ln.split()[1] for ln in f if ln.startswith("Uid:")][0]
        assert int(uid) == libvirtd.pwd.getpwnam(libvirtd.QEMU_USER).pw_uid, f"QEMU runs as uid {uid}"
        inst_dir = os.path.join(dev.run_dir, "instances", iid)
        with open(os.path.join(inst_dir, "serial.log")) as f:
            assert READY in f.read()
        # appended to, not replaced: virtlogd's own file would be 0600 (the node makes 0640)
        serial, stdout = (os.stat(os.path.join(inst_dir, n)) for n in ("serial.log", "stdout.log"))
        assert (serial.st_mode, serial.st_uid) == (stdout.st_mode, stdout.st_uid), \
            f"serial.log is {oct(serial.st_mode)} uid {serial.st_uid}: not the file the node made"
        kernel = os.path.join(dev.data_dir, "node", "images", inst["spec"]["boot"]["kernel"].split(":", 1)[1])
        assert os.path.exists(kernel), kernel

        groups = [os.path.join(m, n) for m in libvirtd.machine_cgroups() for n in os.listdir(m) if iid in n]
        print(f"  the domain's cgroups while it runs: {len(groups)} ({', '.join(groups[:2])}...)")

        # restarted: the domain destroyed, created anew (transient, the same name), ready again
        st, js, raw = c.call("POST", f"/v1/instances/{iid}/restart?wait=ready&timeout=60", timeout=90)
        assert st == 200 and js["state"] == "running" and js["ready"] is True and js["run"] == 1, raw
        assert lv.qemu_pid(domain) != qemu, "the same QEMU after the restart"
        qemu = lv.qemu_pid(domain)

        c.stop_and_remove(iid, timeout=30)
        assert c.call("GET", f"/v1/instances/{iid}")[0] == 404
        assert domain not in lv.domains(all_=True), lv.domains(all_=True)
        h.wait_until(lambda: not os.path.exists(f"/proc/{qemu}"), 10, f"QEMU (pid {qemu}) gone")
        h.wait_until(lambda: not os.path.exists(inst_dir), 10, f"{inst_dir} removed (purge)")
        # libvirt gave the kernel to libvirt-qemu for the domain's life, remembering its owner
        h.wait_until(lambda: (os.stat(kernel).st_uid, os.stat(kernel).st_gid) == (0, 0), 10,
                     "the kernel owned by root again")
        assert not [a for a in os.listxattr(kernel) if a.startswith("trusted.libvirt")], os.listxattr(kernel)
        assert _libvirt_files(lv, domain) == [f"log/qemu/{domain}.log"], _libvirt_files(lv, domain)
        groups = [os.path.join(m, n) for m in libvirtd.machine_cgroups() for n in os.listdir(m) if iid in n]
        assert not groups, f"the domain's cgroups are left: {groups}"
    finally:
        if dev:
            dev.stop(expect_alive=False)  # before libvirtd: the node's last calls go to it
        lv.stop()
    assert libvirtd.machine_cgroups() <= lv.cgroups_before, "libvirt's /machine cgroups are left"


test_libvirt_system_daemon_boots_and_cleans_up.budget = 180
