#!/usr/bin/python3
"""Forward TCP connections on 127.0.0.1:PORT to a Unix socket (fleet demo and bench).

Runs inside a server's network namespace (`ip netns exec NS unixfwd.py ...`): the namespace has
no route to the internet, and a Unix socket crosses namespaces through the file system, so the
counting relay in the root namespace (scripts/countproxy.py --unix) is the server's only way
out. Counts nothing itself; prints nothing; exits on SIGTERM.

    unixfwd.py --listen 127.0.0.1:3128 --unix /path/relay.sock
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver
import sys
import threading

from countproxy import pump  # the relay's copy loop (scripts/ is on sys.path: run as a script)

UNIX_PATH = ""


class Handler(socketserver.BaseRequestHandler):
    """One client connection, relayed to the Unix socket."""

    def handle(self) -> None:
        """Forward one connection."""
        client: socket.socket = self.request
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(UNIX_PATH)
        except OSError:
            up.close()
            return
        with up:
            t = threading.Thread(target=pump, args=(client, up, False), daemon=True)
            t.start()
            pump(up, client, False)
            t.join(timeout=5)


class Server(socketserver.ThreadingTCPServer):
    """The forwarder's listener."""

    daemon_threads = True
    allow_reuse_address = True


def main() -> int:
    """Serve until SIGTERM."""
    global UNIX_PATH
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:3128", help="HOST:PORT to listen on")
    ap.add_argument("--unix", required=True, help="the Unix socket to forward to")
    args = ap.parse_args()
    UNIX_PATH = args.unix
    host, _, port = args.listen.rpartition(":")
    server = Server((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
