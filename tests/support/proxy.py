"""A forward HTTP proxy on 127.0.0.1, as a corporate network puts in front of its clients:
absolute-form requests for plain HTTP and CONNECT tunnels for HTTPS, optional Basic
credentials, and a log of what it carried. It reaches loopback only; ``routes`` maps an address
the clients name to where the server really listens, so a store can be reachable through the
proxy and nowhere else."""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import socketserver
import threading
import urllib.parse


class ProxyServer(socketserver.ThreadingTCPServer):
    """The proxy; ``log`` holds "METHOD target" per request, ``auth_seen`` the credentials sent."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: str | None = None,
                 routes: dict[tuple[str, int], tuple[str, int]] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.credentials = credentials          # "user:password" required, or None
        self.routes = routes or {}
        self.log: list[str] = []
        self.auth_seen: list[str] = []
        self.port = int(self.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def count(self, method: str | None = None) -> int:
        """Requests carried (of one method)."""
        return sum(1 for line in list(self.log) if method is None or line.startswith(method + " "))

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> ProxyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(socketserver.StreamRequestHandler):
    server: ProxyServer
    rbufsize = 0  # unbuffered: nothing of a body is read ahead of the pump

    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1")
        parts = line.split()
        if len(parts) != 3:
            return
        method, target, version = parts
        head = []
        auth = None
        while True:
            h = self.rfile.readline(8192).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            name = h.split(":", 1)[0].strip().lower()
            if name == "proxy-authorization":
                auth = h.split(":", 1)[1].strip()
                continue
            if name in ("proxy-connection", "connection"):
                continue
            head.append(h.rstrip("\r\n"))
        self.server.log.append(f"{method} {target}")
        if auth:
            self.server.auth_seen.append(auth)
        if self.server.credentials is not None and auth != "Basic " + base64.b64encode(
                self.server.credentials.encode()).decode():
            self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = self._dial(host, int(port))
            if upstream is None:
                return
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            self._pump(upstream, b"")
            return
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = self._dial(url.hostname, url.port or 80)
        if upstream is None:
            return
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        first = f"{method} {path} {version}\r\n" + "".join(f"{h}\r\n" for h in head) + \
            "Connection: close\r\n\r\n"
        self._pump(upstream, first.encode("latin-1"))

    def _dial(self, host: str, port: int) -> socket.socket | None:
        host, port = self.server.routes.get((host, port), (host, port))
        if host not in ("127.0.0.1", "localhost"):
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return None
        try:
            return socket.create_connection((host, port), 10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None

    def _pump(self, upstream: socket.socket, first: bytes) -> None:
        """Copy bytes both ways until either side closes (what the rfile buffered goes first)."""
        client = self.connection
        with upstream:
            upstream.sendall(first)
            open_ends = 2
            while open_ends:
                ready, _, _ = select.select([client, upstream], [], [], 30)
                if not ready:
                    return
                for src in ready:
                    dst = upstream if src is client else client
                    try:
                        data = src.recv(1 << 16)
                    except OSError:
                        return
                    if not data:
                        open_ends -= 1
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                        if src is upstream:
                            return
                        continue
                    try:
                        dst.sendall(data)
                    except OSError:
                        return
