"""git's smart HTTP protocol on 127.0.0.1: a threaded HTTP server running `git http-backend` (CGI).

Every request is logged (service, status, bytes sent). ``stall_pack`` makes the next
upload-pack response send some bytes and then hang until released, so a test can kill a
clone half-way through the transfer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class GitHit:
    method: str
    path: str
    query: str
    status: int = 0
    sent: int = 0


class GitHttpServer:
    """Serves every repository under ``root`` at ``http://127.0.0.1:PORT/<name>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: list[GitHit] = []
        self.lock = threading.Lock()
        self.stall_after: int | None = None
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None
        self.port = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def packs(self) -> int:
        """How many upload-pack (object transfer) requests were answered."""
        with self.lock:
            return sum(1 for h in self.hits if h.path.endswith("/git-upload-pack"))

    def start(self) -> GitHttpServer:
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.release.set()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


class _Handler(BaseHTTPRequestHandler):
    owner: GitHttpServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        srv = self.owner
        parts = urllib.parse.urlsplit(self.path)
        hit = GitHit(self.command, parts.path, parts.query)
        with srv.lock:
            srv.hits.append(hit)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(srv.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(parts.path),
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.0",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _dechunk(self.rfile)
            env["CONTENT_LENGTH"] = str(len(body))
        proc = subprocess.run(["git", "http-backend"], input=body, env=env,
                              capture_output=True, check=False)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            if ":" not in line:
                continue
            k, v = line.split(":", 1)
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            else:
                headers.append((k, v.strip()))
        hit.status = status
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        stall = None
        with srv.lock:
            if (parts.path.endswith("/git-upload-pack") and srv.stall_after is not None
                    and len(payload) > srv.stall_after):
                stall, srv.stall_after = srv.stall_after, None
        try:
            if stall is not None:
                self.wfile.write(payload[:stall])
                self.wfile.flush()
                hit.sent = stall
                srv.stalled.set()
                srv.release.wait(60)
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)
            hit.sent = len(payload)
        except OSError:
            pass


def _dechunk(rfile: Any) -> bytes:
    out = b""
    while True:
        size = int(rfile.readline().strip() or b"0", 16)
        if size == 0:
            rfile.readline()
            return out
        out += rfile.read(size)
        rfile.readline()


def make_repo(root: Path, name: str, files: int = 3, size: int = 0) -> Path:
    """A bare repository ``root/name`` with one commit on main (files of random content)."""
    bare = root / name
    work = root / (name + "-work")
    git(["init", "-q", "-b", "main", str(work)])
    for i in range(files):
        (work / f"file{i}.txt").write_bytes(os.urandom(size) if size else f"v1 {i}\n".encode())
    commit(work, "first")
    git(["clone", "-q", "--bare", str(work), str(bare)])
    git(["--git-dir", str(bare), "config", "http.receivepack", "true"])
    git(["-C", str(work), "remote", "add", "origin", str(bare)])
    return bare


def add_commit(root: Path, name: str, text: str) -> str:
    """Commit a change in the work tree of ``name`` and push it to the bare repo; its sha."""
    work = root / (name + "-work")
    (work / "news.txt").write_text(text)
    commit(work, text)
    git(["-C", str(work), "push", "-q", "origin", "main"])
    return git(["-C", str(work), "rev-parse", "HEAD"]).strip()


def commit(work: Path, msg: str) -> None:
    git(["-C", str(work), "add", "-A"])
    git(["-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit",
         "-q", "-m", msg])


def git(args: list[str], cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", HOME=os.environ.get("HOME", "/root"))
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


REPO = Path(__file__).resolve().parents[2]
_DROP = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
         "ALL_PROXY", "NO_PROXY")


def child_env(tmp: Path) -> dict[str, str]:
    """No proxies, no GIT_* or PKGCACHE_* leaking in, a private HOME, an empty config."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP
           and not k.startswith(("GIT_", "PKGCACHE_"))}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    cfg = tmp / "config.yaml"
    if not cfg.exists():
        cfg.write_text("")
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", PKGCACHE_CONFIG=str(cfg),
               PYTHONPATH=str(REPO))
    return env


class GitRunner:
    """Runs `pkgcache --cache-dir <tmp>/cache git ...` as a real child process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cache_dir = tmp / "cache"
        self.bucket = self.cache_dir / "git-v1"

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hooks.cli", "--cache-dir", str(self.cache_dir), *args]

    def __call__(self, *args: str, timeout: float = 120,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = child_env(self.tmp)
        if cwd is not None:
            env["PYTHONPATH"] = str(REPO)
        return subprocess.run(self.cmd(*args), cwd=cwd or REPO, env=env, text=True,
                              capture_output=True, timeout=timeout)

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd(*args), cwd=REPO, env=child_env(self.tmp), **kw)

    def mirrors(self) -> list[Path]:
        return sorted(p for p in self.bucket.iterdir() if not p.name.startswith(".")) \
            if self.bucket.exists() else []

    def leftovers(self) -> list[Path]:
        return sorted(p for p in self.bucket.iterdir() if p.name.startswith(".")) \
            if self.bucket.exists() else []
