"""A PEP 503 index on 127.0.0.1 over a wheelhouse, with PyPI's cache headers (bench only).

The PyPI mirror reachable here sends no Cache-Control, so pip's HTTP cache never fills from it and
a "warm pip" would download every file again (shared/notes/pip.md §1.1). This index serves the
same files the way pypi.org does: project pages ``Cache-Control: max-age=600`` with an ETag (304 on
a match), files ``max-age=365000000, immutable``. pip caches http:// only for a --trusted-host.
It counts the requests and the bytes it sends.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAGE_CACHE = "max-age=600, public"
FILE_CACHE = "max-age=365000000, immutable, public"


def project(filename: str) -> str:
    """The PEP 503 normalized project name of a wheel or sdist file name."""
    stem = filename.split("-")[0] if filename.endswith(".whl") else filename.rsplit("-", 1)[0]
    return re.sub(r"[-_.]+", "-", stem).lower()


class Index:
    """Serves directory `wheelhouse` at ``.url`` (``http://127.0.0.1:PORT/simple``) in a thread."""

    def __init__(self, wheelhouse: Path) -> None:
        self.files = {p.name: p for p in sorted(wheelhouse.iterdir()) if p.is_file()}
        self.pages: dict[str, bytes] = {}
        for name, path in self.files.items():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            link = f'<a href="/files/{name}#sha256={digest}">{name}</a><br>\n'
            self.pages[project(name)] = self.pages.get(project(name), b"") + link.encode()
        self.requests = 0
        self.sent = 0
        self.lock = threading.Lock()
        index = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                """A project page, a file, or 404."""
                with index.lock:
                    index.requests += 1
                m = re.fullmatch(r"/simple/([^/]+)/?", self.path)
                if m and m.group(1) in index.pages:
                    body = b"<!DOCTYPE html><html><body>\n" + index.pages[m.group(1)] + b"</body></html>\n"
                    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                    if self.headers.get("If-None-Match") == etag:
                        self.send_response(304)
                        self.send_header("ETag", etag)
                        self.send_header("Cache-Control", PAGE_CACHE)
                        self.end_headers()
                        return
                    self.reply(body, "text/html", PAGE_CACHE, etag)
                    return
                f = re.fullmatch(r"/files/([^/]+)", self.path)
                if f and f.group(1) in index.files:
                    self.reply(index.files[f.group(1)].read_bytes(), "application/octet-stream",
                               FILE_CACHE)
                    return
                self.send_error(404)

            def reply(self, body: bytes, ctype: str, cache: str, etag: str | None = None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache)
                if etag:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)
                with index.lock:
                    index.sent += len(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> tuple[int, int]:
        """(requests, bytes sent) since the last reset; start counting from zero."""
        with self.lock:
            out = (self.requests, self.sent)
            self.requests = self.sent = 0
        return out

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
