#!/usr/bin/python3
"""A byte-counting HTTP proxy on 127.0.0.1 for the demo (scripts/demo.sh).

The demo's throwaway root shares the host's network, so the host's interface counters include
everyone's traffic. Pointing apt (http_proxy) and pip (https_proxy) of one step at this proxy
counts exactly what that step received from the network: plain HTTP requests (absolute-form,
port 80) and CONNECT tunnels (port 443) are relayed, and every byte relayed towards the client is
added up. On SIGTERM/SIGINT the total is written to --count-file and the proxy exits.

    countproxy.py --port-file P --count-file C      (prints nothing; port 0 = any free port)
    countproxy.py --unix PATH --count-file C [--rate BYTES_PER_S]

With --unix it listens on a Unix socket instead (the fleet demo and bench: servers in network
namespaces with no route reach it through scripts/unixfwd.py, so it is their only way out), and
--rate paces everything relayed towards the clients, all connections together (an internet link).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
ALLOWED_PORTS = {80, 443}


class Counter:
    """Bytes received from upstream, across threads: in all and per upstream host."""

    def __init__(self) -> None:
        self.total = 0
        self.by_host: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, n: int, host: str = "") -> None:
        """Count n bytes from host."""
        with self.lock:
            self.total += n
            self.by_host[host] = self.by_host.get(host, 0) + n

    def reset(self) -> None:
        """Start from zero."""
        with self.lock:
            self.total = 0
            self.by_host = {}


COUNTER = Counter()


class Pacer:
    """A shared byte-rate limit (token bucket, ~0.25 s burst) for all relayed connections."""

    def __init__(self) -> None:
        self.rate = 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self, n: int) -> None:
        """Sleep until n more bytes fit under the rate (no-op when rate is 0)."""
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now - 0.25, self.next)
            self.next = start + n / self.rate
            delay = self.next - now
        if delay > 0:
            time.sleep(delay)


PACER = Pacer()


def pump(src: socket.socket, dst: socket.socket, count: bool, host: str = "") -> None:
    """Copy src -> dst until EOF; count the bytes (under host) if asked; half-close dst."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if count:
                PACER.wait(len(data))
            dst.sendall(data)
            if count:
                COUNTER.add(len(data), host)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Handler(socketserver.BaseRequestHandler):
    """One client connection: a CONNECT tunnel or a relayed plain-HTTP connection."""

    def handle(self) -> None:
        """Relay one connection."""
        client: socket.socket = self.request
        client.settimeout(300)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk or len(head) > MAX_HEAD:
                return
            head += chunk
        line, _, rest = head.partition(b"\r\n")
        try:
            method, target, version = line.decode("latin-1").split(" ")
        except ValueError:
            return
        if method == "CONNECT":
            host, _, port_s = target.rpartition(":")
            port, first = int(port_s or 0), b""
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return
            host, port = url.hostname, url.port or 80
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            first = f"{method} {path} {version}\r\n".encode("latin-1") + rest
        if port not in ALLOWED_PORTS:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host.strip("[]"), port), timeout=60)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            upstream.settimeout(300)
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(first)
            up = threading.Thread(target=pump, args=(client, upstream, False), daemon=True)
            up.start()
            pump(upstream, client, True, host)
            up.join(timeout=5)


class Server(socketserver.ThreadingTCPServer):
    """The relay on TCP 127.0.0.1."""

    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingUnixStreamServer):
    """The relay on a Unix socket."""

    daemon_threads = True


def main() -> int:
    """Serve until SIGTERM/SIGINT, then write the count."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--unix", metavar="PATH", help="listen on this Unix socket instead of TCP")
    ap.add_argument("--rate", type=float, default=0, help="bytes/s towards clients (0: no limit)")
    ap.add_argument("--count-file", required=True)
    args = ap.parse_args()
    if not args.unix and not args.port_file:
        ap.error("--port-file or --unix is required")
    PACER.rate = args.rate
    server: socketserver.BaseServer
    if args.unix:
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        old = os.umask(0o077)
        server = UnixServer(args.unix, Handler)
        os.umask(old)
    else:
        server = Server(("127.0.0.1", args.port), Handler)

    def stop(_sig: int, _frame: object) -> None:
        tmp = args.count_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{COUNTER.total}\n")
        os.replace(tmp, args.count_file)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{server.server_address[1] if not args.unix else args.unix}\n")
        os.replace(tmp, args.port_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
