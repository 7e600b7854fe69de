"""A real HTTP/1.1 server on 127.0.0.1 for the fetch tests.

It serves ETag, Last-Modified, 304, Range/If-Range (206), redirects, 404, 500, a connection cut
mid-body, a body that stalls until released, slow bodies and files that change; every request is
logged (method, path, headers, status, body bytes sent) so tests can count downloads. Requests in
absolute form (``GET http://host/path``) are accepted and marked as proxied.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BASE_TIME = 1_700_000_000


@dataclass
class Resource:
    """What the server returns for one path."""

    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None       # redirect target (302)
    status: int = 200                 # e.g. 404
    fail_left: int = 0                # answer 500 this many times first
    cut_after: int | None = None      # send this many body bytes, then drop the connection ...
    cuts_left: int = 0                # ... this many times
    stall_after: int | None = None    # send this many body bytes, then wait for `release`
    chunk_delay: float = 0.0          # seconds between 16 KiB chunks (slow server)
    ranges: bool = True
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    sent: int = 0
    proxied: bool = False


class FetchServer:
    """Start with .start(); .url(path); .put(path, body) serves/changes a file; .hits logs."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.version = 0
        self.httpd: ThreadingHTTPServer | None = None
        self.port = 0
        self.scheme = "http"

    # -- content ---------------------------------------------------------------------------
    def put(self, path: str, body: bytes, *, etag: bool = True, last_modified: bool = True,
            **kw: Any) -> Resource:
        """Serve body at path; a new body gets a new ETag and a later Last-Modified."""
        with self.lock:
            self.version += 1
            res = Resource(body=body, **kw)
            if etag:
                res.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if last_modified:
                res.last_modified = email.utils.formatdate(BASE_TIME + 3600 * self.version,
                                                           usegmt=True)
            self.resources[path] = res
            return res

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def count(self, path: str | None = None, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for h in self.hits if (path is None or h.path == path)
                       and (status is None or h.status == status))

    def requests(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    # -- life cycle ------------------------------------------------------------------------
    def start(self, port: int = 0, tls: tuple[str, str] | None = None) -> FetchServer:
        """Listen on 127.0.0.1; tls=(certfile, keyfile) serves HTTPS instead."""
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            for res in self.resources.values():
                res.release.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


class _Handler(BaseHTTPRequestHandler):
    owner: FetchServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        srv = self.owner
        path, proxied = self.path, False
        if "://" in path:
            path, proxied = urllib.parse.urlsplit(path).path, True
        hit = Hit(self.command, path, {k.lower(): v for k, v in self.headers.items()},
                  proxied=proxied)
        with srv.lock:
            srv.hits.append(hit)
            res = srv.resources.get(path)
            fail = res is not None and res.fail_left > 0
            if fail:
                res.fail_left -= 1
        if res is None or res.status == 404:
            return self._simple(hit, 404, b"not found\n")
        if fail or res.status >= 500:
            return self._simple(hit, 500, b"server error\n")
        if res.location:
            return self._simple(hit, 302, b"moved\n", [("Location", res.location)])
        h = hit.headers
        validators = [("ETag", res.etag), ("Last-Modified", res.last_modified)]
        validators = [(k, v) for k, v in validators if v]
        if _not_modified(res, h):
            return self._simple(hit, 304, b"", validators)
        body, status, extra = res.body, 200, list(validators)
        start = 0
        rng = h.get("range", "")
        if res.ranges and rng.startswith("bytes=") and rng.endswith("-"):
            if_range = h.get("if-range")
            if if_range is None or if_range in (res.etag, res.last_modified):
                start = int(rng[6:-1])
                if start >= len(body):
                    return self._simple(hit, 416, b"", [("Content-Range", f"bytes */{len(body)}")])
                status = 206
                extra.append(("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}"))
        part = body[start:]
        hit.status = status
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        if res.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if head:
            return
        limit = None
        with srv.lock:
            if res.cut_after is not None and res.cuts_left > 0:
                res.cuts_left -= 1
                limit = res.cut_after
        try:
            if limit is not None:
                self._send(hit, part[:limit], res.chunk_delay)
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if res.stall_after is not None and not res.release.is_set():
                self._send(hit, part[:res.stall_after], res.chunk_delay)
                self.wfile.flush()
                res.release.wait(60)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(hit, part, res.chunk_delay)
        except OSError:
            self.close_connection = True

    def _send(self, hit: Hit, data: bytes, delay: float) -> None:
        step = 16384
        for i in range(0, len(data), step):
            self.wfile.write(data[i:i + step])
            hit.sent += len(data[i:i + step])
            if delay:
                self.wfile.flush()
                time.sleep(delay)

    def _simple(self, hit: Hit, status: int, body: bytes,
                headers: list[tuple[str, str]] | None = None) -> None:
        hit.status = status
        self.send_response(status)
        for k, v in headers or []:
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 304 and self.command != "HEAD":
            self.wfile.write(body)


def _not_modified(res: Resource, h: dict[str, str]) -> bool:
    inm = h.get("if-none-match")
    if inm is not None:
        return res.etag is not None and res.etag in [t.strip() for t in inm.split(",")]
    ims = h.get("if-modified-since")
    if ims and res.last_modified:
        try:
            return (email.utils.parsedate_to_datetime(res.last_modified)
                    <= email.utils.parsedate_to_datetime(ims))
        except (TypeError, ValueError):
            return False
    return False


REPO = Path(__file__).resolve().parents[2]
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY")


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a pkgcache child: empty config, no proxies, repo importable."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS
           and not k.startswith("PKGCACHE_")}
    cfg = tmp / "config.yaml"
    if not cfg.exists():
        cfg.write_text("")
    env["PKGCACHE_CONFIG"] = str(cfg)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


class Runner:
    """Runs `pkgcache --cache-dir <tmp>/cache fetch ...` as a real child process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache_dir = tmp / "cache"

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hooks.cli", "--cache-dir", str(self.cache_dir), *args]

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.cmd(*args), cwd=REPO, env=env or clean_env(self.tmp),
                              capture_output=True, timeout=timeout)

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd(*args), cwd=REPO, env=clean_env(self.tmp), **kw)
