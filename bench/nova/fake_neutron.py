#!/usr/bin/python3
"""fake_neutron — a stand-in for Neutron's API, for bench/nova only (stdlib).

Zed's Nova calls Neutron even when a server is created with "networks": "none": nova-api
on every GET /servers/{id} (the security groups of the server's ports) and nova-compute on
every delete (its ports, to unbind them) and in a periodic task. No Neutron is packaged
here with agents that could run without a network stack of its own, and none is needed to
measure Nova: this answers what those calls ask, and nothing else —

    GET /                         the API versions (v2.0)
    GET /v2.0/<collection>[?...]  an empty list ({"ports": []}, {"security_groups": []}, ...)
    GET /v2.0/extensions          no extensions
    anything else                 404 in Neutron's error format

Its time is inside every figure measured against Nova: a real Neutron would cost more,
not less. It answers HTTP/1.1 with keep-alive, on 127.0.0.1 only.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-neutron"

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 0:
            self.rfile.read(min(n, 1 << 20))

    def do_GET(self):
        path = urlsplit(self.path).path.rstrip("/")
        parts = [p for p in path.split("/") if p]
        if not parts:
            port = self.server.server_address[1]
            self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                           "links": [{"rel": "self", "href": f"http://127.0.0.1:{port}/v2.0/"}]}]})
        elif parts[0] == "v2.0" and len(parts) == 2:
            name = parts[1].removesuffix(".json")
            self._send(200, {name.replace("-", "_"): []})
        else:
            self.not_found()

    def not_found(self):
        self._drain()
        self._send(404, {"NeutronError": {"type": "HTTPNotFound", "message": f"{self.command} {self.path}: "
                                          "not served by this stand-in", "detail": ""}})

    do_POST = do_PUT = do_DELETE = do_PATCH = not_found

    def log_message(self, fmt, *args):  # quiet: one line per request would dominate the log
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=9696)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
