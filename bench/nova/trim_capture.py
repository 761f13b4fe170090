#!/usr/bin/env python3
"""trim_capture — cuts a capture of a Nova controller down to one instantiation (stdlib).

    bench/nova/trim_capture.py IN.pcap OUT.pcap [--nth N] [--with-delete] [--ports P,...]

Keeps the frames of the watched TCP ports (default: Nova's, as `microvim analyze --vim nova`
watches them) captured between the client's N-th POST .../servers (default the first) and
the first answer after it that says "status": "ACTIVE" (with --with-delete: until the first
404 answer after the DELETE that follows). Nothing inside the window is changed or dropped:
the long-lived AMQP connections are cut at the window's edges, which is what the analyzer
meets in any capture that starts after the services. The tests' fixtures under
tests/fixtures/ were made this way from captures of bench/nova's Nova, then gzip -9.
"""
import argparse
import struct
import sys

DEFAULT_PORTS = (8774, 5000, 9292, 8778, 9696, 5672)


def frames(data):
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit("trim_capture: not a little-endian pcap file (pcapng is not read here)")
    scale = 1e9 if magic == 0xA1B23C4D else 1e6
    link = struct.unpack("<I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack("<IIII", data[off:off + 16])
        yield sec + frac / scale, data[off:off + 16 + caplen], data[off + 16:off + 16 + caplen], link
        off += 16 + caplen


def tcp_of(frame, link):
    """(sport, dport, payload) of an IPv4 TCP frame, or None."""
    if link == 1:
        if len(frame) < 14 or frame[12:14] != b"\x08\x00":
            return None
        ip = frame[14:]
    elif link == 113:
        ip = frame[16:]
    elif link in (101, 12, 228):
        ip = frame
    else:
        sys.exit(f"trim_capture: link type {link} is not read here")
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
        return None
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    seg = ip[ihl:total]
    if len(seg) < 20:
        return None
    sport, dport = struct.unpack("!HH", seg[:4])
    return sport, dport, seg[(seg[12] >> 4) * 4:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--nth", type=int, default=1)
    ap.add_argument("--with-delete", action="store_true")
    ap.add_argument("--ports", default=",".join(map(str, DEFAULT_PORTS)))
    a = ap.parse_args()
    ports = {int(p) for p in a.ports.split(",")}
    api = min(ports, key=lambda p: p != 8774)  # nova's API port when it is watched
    data = open(a.src, "rb").read()
    start = end = None
    posts = 0
    deleting = False
    for ts, _, frame, link in frames(data):
        t = tcp_of(frame, link)
        if not t:
            continue
        sport, dport, pay = t
        if dport == api and pay.startswith(b"POST ") and b"/servers " in pay[:200]:
            posts += 1
            if posts == a.nth:
                start = ts
        elif start is not None and sport == api and end is None and b'"status": "ACTIVE"' in pay:
            end = ts
            if not a.with_delete:
                break
        elif end is not None and dport == api and pay.startswith(b"DELETE "):
            deleting = True
        elif deleting and sport == api and pay.startswith(b"HTTP/1.1 404"):
            end = ts
            break
    if start is None or end is None:
        sys.exit(f"trim_capture: no POST .../servers number {a.nth} followed by an ACTIVE answer in {a.src}")
    out = bytearray(data[:24])
    kept = 0
    for ts, record, frame, link in frames(data):
        t = tcp_of(frame, link)
        if t and (t[0] in ports or t[1] in ports) and start - 0.001 <= ts <= end + 0.001:
            out += record
            kept += 1
    open(a.dst, "wb").write(out)
    print(f"trim_capture: kept {kept} frames, {end - start:.3f} s, {len(out)} bytes")


if __name__ == "__main__":
    main()
