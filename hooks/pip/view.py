"""A local view of the user's indexes on 127.0.0.1: pip reads through it, pkgcache keeps the bytes.

pip (and the resolve before a uv install) reads each index page through this view, which fetches
the page from the user's index and points its file links back at the view. Each file pip then
downloads is streamed to pip and, in the same pass, written to this run's download directory and
checked against the index's SHA-256: the driver caches those bytes instead of downloading the file
a second time. Pages and files are relayed unchanged otherwise (status, type, metadata files), so
pip resolves exactly as it would against the index. Only this process can use the view: it listens
on 127.0.0.1 under a random path, and it lives for one run. Each page is read from the index once
per run (pip and the driver share it), and revalidated rather than downloaded when this machine
or the fleet keeps a copy (pages.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import http.client
import json
import os
import re
import secrets
import shutil
import threading
import urllib.error
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hooks.common import http as client

from . import options
from .pages import PIP_ACCEPT, wants_revalidation

if TYPE_CHECKING:
    from .pages import Held, Pages

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
_BASE = re.compile(r"""<base\b[^>]*?\bhref\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_JSON = "application/vnd.pypi.simple.v1+json"
_FRAG_SHA256 = re.compile(r"(?:^|&)sha256=([0-9a-f]{64})(?:&|$)")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PAGE_LIMIT = 64 << 20
_VALUE_OPTS = ("-i", "--index-url", "--extra-index-url")
TROUBLE = {401, 403, 407, 500, 502, 503, 504}  # answers pip might handle better itself


def usable(pip_args: list[str]) -> bool:
    """True if pip may read this request's indexes through the view: http(s) indexes without
    credentials in their URLs only, not with --no-index, nor when pip reaches them in ways the
    view cannot (client certificates, --trusted-host, --proxy, a keyring provider, a netrc file)."""
    head = pip_args[:pip_args.index("--")] if "--" in pip_args else pip_args
    if any(a == "--no-index" or a.startswith("--keyring-provider") for a in head) or \
            options.own_network(pip_args) is not None:
        return False
    if os.path.exists(os.environ.get("NETRC") or os.path.expanduser("~/.netrc")):
        return False  # credentials or a route only pip knows
    extras = [] if options.has_extra_index(pip_args) else options.extra_index_urls()
    urls = (options.index_url(pip_args), *_cli_extras(pip_args), *extras)
    # an index behind credentials in its URL (user:password@, a token in the query) is read by
    # pip itself: the view's URL stands on pip's command line, which other local users can read,
    # and would let them through to that index for the run
    return all(u.startswith(("http://", "https://")) and not _credentialed(u) for u in urls)


def _credentialed(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return "@" in parts.netloc or bool(parts.query)


def _segment(url: str) -> str:
    """The last path segment of a file's URL: the name the view serves it under."""
    return urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1] or "file"


def _quiet(request: object, client_address: object) -> None:
    """No traceback on stderr for a client that went away."""


class View:
    """The view of one run's indexes (index_url first, then the extra indexes)."""

    def __init__(self, pip_args: list[str], dl: Path, cafile: str | None = None) -> None:
        extras = [] if options.has_extra_index(pip_args) else options.extra_index_urls()
        self.indexes = [options.index_url(pip_args), *_cli_extras(pip_args), *extras]
        self._env_extras = extras
        self.dl = dl
        self.cafile = cafile
        self.files: list[str] = []           # upstream file URLs (no fragment), by number
        self._by_url: dict[str, int] = {}
        self.hashes: dict[int, str] = {}     # the index's SHA-256 of file n (its #sha256=)
        self.fetched: dict[str, Path] = {}   # file name -> its complete, checked download
        self.trouble = False                 # the index answered the view with an error pip
        # might have handled itself (auth, 5xx, unreachable): the caller retries without the view
        self._lock = threading.Lock()
        self._file_locks: dict[int, threading.Lock] = {}
        self._pages: dict[tuple[str, str], tuple[str, bytes, str, bytes] | int] = {}
        # (url, Accept) -> (type, body, base, body rewritten for pip), or 404
        self._page_locks: dict[tuple[str, str], threading.Lock] = {}
        self._confirmed: dict[str, str] = {}  # page URL -> final URL of its 304
        self._by_max_age: set[tuple[str, str]] = set()  # (url, Accept) of pages used within
        # the index's max-age this run
        self.refresh = False  # set by the driver (--refresh): every page is asked of the index
        self.fresh_pages = 0  # pages used while fresh, with no request to the index
        self.coalesced_pages = 0  # pages another member read at the same moment
        # page leases this run holds, to publish and release: one publisher thread (a queue);
        # close() waits for it until publish_wait, then releases every lease still held
        self._leases: list[tuple[Any, str, str]] = []
        # pages read under a lease, kept in the cache by the publisher (off the reader's path):
        # (url, Accept) -> (body, headers, the held copy, base)
        self._unsaved: dict[tuple[str, str], tuple[bytes, Any, Held | None, str]] = {}
        self._publisher: threading.Thread | None = None
        self._closing = False
        self.publish_wait = 15.0  # set by the driver: the remote's timeout
        # set by the driver: pages kept in the cache and shared by the fleet (pages.py)
        self.shared: Pages | None = None
        self._secret = secrets.token_urlsafe(18)
        # set by the driver when the cache has a remote tier: coalesce(sha256, present) is a
        # lease (cache_core's download_lease; present=False: a page's, no object to look for)
        # and keep(path, sha256) stores a download in the cache
        self.coalesce: Callable[..., AbstractContextManager[Any]] | None = None
        self.keep: Callable[[Path, str], object] | None = None
        view = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                try:
                    view.handle(self)
                except Exception:  # noqa: BLE001 - a fault of the view: pip runs without it
                    view.trouble = True
                    with contextlib.suppress(Exception):
                        self.send_error(502)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = _quiet  # type: ignore[method-assign]  # no tracebacks
        self.prefix = f"http://127.0.0.1:{self._server.server_port}/{self._secret}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving (the downloads stay until the run's scratch directory goes); the pages
        this run holds leases on are published and their leases released first."""
        publisher = self._publisher
        if publisher is not None:
            publisher.join(self.publish_wait)
        with self._lock:
            self._closing = True
            left, self._leases = self._leases, []
        for cm, _, _ in left:  # not published in time: released all the same
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
        self._server.shutdown()
        self._server.server_close()

    # -- what pip is given ---------------------------------------------------------------------
    def index(self, i: int) -> str:
        """The view URL of index number i."""
        return f"{self.prefix}{i}/"

    def args(self, pip_args: list[str]) -> list[str]:
        """pip_args with every index URL replaced by its view (extra indexes from pip's
        environment or config are named on the command line, where they mean the same)."""
        out: list[str] = []
        n = 1
        seen_index = False
        args = iter(pip_args)
        for arg in args:
            if arg == "--":
                out.append(arg)
                out.extend(args)
                break
            name, _ = _split(arg, args)
            if name in ("-i", "--index-url"):
                out += ["--index-url", self.index(0)]
                seen_index = True
            elif name == "--extra-index-url":
                out += ["--extra-index-url", self.index(n)]
                n += 1
            else:
                out.append(arg)
        head = [] if seen_index else ["--index-url", self.index(0)]
        for _ in self._env_extras:
            head += ["--extra-index-url", self.index(n)]
            n += 1
        return [*head, *out]

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """pip's environment: the view is never reached through a proxy."""
        env = dict(env)
        for var in ("no_proxy", "NO_PROXY"):
            env[var] = ",".join(v for v in (env.get(var, ""), "127.0.0.1") if v)
        return env

    def unview(self, text: str) -> str:
        """text with every view URL replaced by the user's URL (credentials hidden)."""
        if self.prefix not in text:
            return text
        pat = re.escape(self.prefix) + r"(f/(\d+)/[^\s/'\"<>#]*|(\d+)/)"

        def back(m: re.Match[str]) -> str:
            if m.group(2) is not None:
                n = int(m.group(2))
                return client.redact(self.files[n]) if n < len(self.files) else m.group(0)
            i = int(m.group(3))
            return client.redact(self.indexes[i]) if i < len(self.indexes) else m.group(0)

        return re.sub(pat, back, text)

    def upstream(self, url: str) -> str:
        """The user's URL behind a view URL (unchanged if it is not one)."""
        return self.unview(url.split("#", 1)[0]) if url.startswith(self.prefix) else url

    # -- serving -------------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler) -> None:
        """Answer one GET from pip."""
        path = urllib.parse.urlsplit(h.path).path
        if not path.startswith(f"/{self._secret}/"):
            return h.send_error(404)
        rest = path[len(self._secret) + 2:]
        m = re.fullmatch(r"f/(\d+)/([^/]+)", rest)
        try:
            if m is not None:
                n, name = int(m.group(1)), urllib.parse.unquote(m.group(2))
                if n >= len(self.files):
                    return h.send_error(404)
                # the name is file n's own (as _register wrote the link), never the asker's:
                # whoever reads the view's URL off pip's command line cannot file other bytes
                # under a name pip will ask for
                own = _segment(self.files[n])
                if name == own + ".metadata" and not own.endswith(".metadata"):
                    return self._relay(h, self.files[n] + ".metadata")
                if name != own:
                    return h.send_error(404)
                return self._file(h, n, own)
            i, _, sub = rest.partition("/")
            if not i.isdigit() or int(i) >= len(self.indexes):
                return h.send_error(404)
            top = _slash(self.indexes[int(i)])
            url = urllib.parse.urljoin(top, sub)
            if not url.startswith(top):  # pages of the user's indexes only, never another host
                return h.send_error(404)
            return self._page(h, url)
        except (BrokenPipeError, ConnectionResetError):
            return None

    def _open(self, url: str, accept: str = "*/*", headers: dict[str, str] | None = None
              ) -> http.client.HTTPResponse | int:
        """The upstream response, or the HTTP status of its failure (0: no answer); a 304 (to
        conditional headers) sets self._confirmed[url] to the final URL (redirects followed)."""
        try:
            return client.opener(self.cafile).open(
                client.request(url, {"Accept": accept, **(headers or {})}),
                timeout=client.DEFAULT_TIMEOUT)
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(Exception):
                exc.close()
            if exc.code == 304:
                self._confirmed[url] = str(exc.url or url)
            return exc.code
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            return 0

    def _fail(self, h: BaseHTTPRequestHandler, status: int) -> None:
        if status in TROUBLE or status == 0:
            self.trouble = True
        # never ask pip for credentials for the view (pip then runs again without it)
        h.send_error(502 if status in (0, 401, 407) else status)

    def _page(self, h: BaseHTTPRequestHandler, url: str) -> None:
        """A project's page, read from the index once per run (pip's resolves, its build
        environments and the driver's resolves of build dependencies all read the same)."""
        memo = self._read_page(url, h.headers.get("Accept") or "text/html",
                               wants_revalidation(h.headers.get("Cache-Control")))
        if isinstance(memo, int):
            return self._fail(h, memo)
        ctype, body = memo[0], memo[3]
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def read_page(self, url: str) -> tuple[str, bytes, str] | None:
        """(content type, body, base URL) of a page of the user's indexes as pip asks for it
        (the driver reads the page pip then reads: one download), None if it cannot be read."""
        memo = self._read_page(url, PIP_ACCEPT)
        return None if isinstance(memo, int) else memo[:3]

    def _read_page(self, url: str, accept: str, revalidate: bool = False
                   ) -> tuple[str, bytes, str, bytes] | int:
        """The page (type, body, base, body for pip), or the status of its failure; memoised
        for the run; a kept or shared copy (pages.py) is used while fresh, else revalidated.
        revalidate: the asker wants the index asked (pip < 26.2 asks so for every page)."""
        with self._lock:
            lock = self._page_locks.setdefault((url, accept), threading.Lock())
        revalidate = revalidate or self.refresh  # (--refresh: not even the fleet's window)
        with lock:
            got = self._pages.get((url, accept))
            if got is not None and not (revalidate and (url, accept) in self._by_max_age):
                return got
            held = None
            if self.shared is not None:
                with contextlib.suppress(Exception):  # (a fault there: the page is downloaded)
                    held = self.shared.held(url, accept, revalidate)
            fresh = held.fresh(revalidate) if held is not None and not self.refresh else None
            self._by_max_age.discard((url, accept))
            if held is not None and fresh is not None and self.shared is not None:
                with contextlib.suppress(Exception):  # kept here as the index sent it
                    self.shared.confirm(held)
                if fresh == "index":
                    self._by_max_age.add((url, accept))
                self.fresh_pages += 1
                ctype, body, base = held.ctype, held.body, str(held.meta.get("base") or url)
                got = self._pages[(url, accept)] = (ctype, body, base,
                                                    self._rewrite(body, ctype, base))
                return got
            cm, lease = self._take_page_lease(url, accept)
            held_lease = lease is not None and bool(lease.held)
            memo: tuple[str, bytes, str, bytes] | int = 0
            try:
                if lease is not None and not held_lease and self.shared is not None:
                    # another member was reading this page at this moment: its signed copy,
                    # if its record is newer than the one held() saw before waiting (it left
                    # the index while this run waited: as the index would answer)
                    late = None
                    with contextlib.suppress(Exception):
                        late = self.shared.late(url, accept)
                    if late is not None:
                        with contextlib.suppress(Exception):
                            self.shared.confirm(late)
                        self.coalesced_pages += 1
                        ctype, body = late.ctype, late.body
                        base = str(late.meta.get("base") or url)
                        memo = self._pages[(url, accept)] = (ctype, body, base,
                                                             self._rewrite(body, ctype, base))
                        return memo
                memo = self._fetch_page(url, accept, held, held_lease)
                return memo
            finally:
                self._end_page_lease(cm, url, accept, held_lease and not isinstance(memo, int))

    def _take_page_lease(self, url: str, accept: str) -> tuple[Any, Any]:
        """(its context, the lease) on this page: members reading it at the same moment, one
        asks the index; (None, None) where there is none (no fleet, a page never shared)."""
        from .pages import page_key, shareable

        if self.coalesce is None or self.shared is None or not shareable(url):
            return None, None
        try:
            cm = self.coalesce(page_key(url, accept).split(":", 1)[1], present=False)
            return cm, cm.__enter__()
        except Exception:  # noqa: BLE001 - no lease: this member asks the index itself
            return None, None

    def _end_page_lease(self, cm: Any, url: str, accept: str, publish: bool) -> None:
        """Release a page lease; a holder's lease is first published by the publisher thread
        (pip has its page meanwhile; close() waits for it, then releases what is left)."""
        if cm is None:
            return
        if not publish:
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
            return
        with self._lock:
            if not self._closing:
                self._leases.append((cm, url, accept))
                if self._publisher is None or not self._publisher.is_alive():
                    self._publisher = threading.Thread(target=self._publish, daemon=True)
                    self._publisher.start()
                return
        with contextlib.suppress(Exception):
            cm.__exit__(None, None, None)

    def _publish(self) -> None:
        """The publisher: each held page lease in turn, its page published, then released."""
        while True:
            with self._lock:
                if self._closing or not self._leases:
                    self._publisher = None
                    return
                cm, url, accept = self._leases[0]
            if self.shared is not None:
                with self._lock:
                    unsaved = self._unsaved.pop((url, accept), None)
                with contextlib.suppress(Exception):
                    if unsaved is not None:
                        body, headers, held, base = unsaved
                        self.shared.save(url, accept, body, headers, held, base, keep=True)
                    self.shared.publish(url, accept)
            with self._lock:  # (close() may have released it meanwhile)
                mine = bool(self._leases) and self._leases[0][0] is cm
                if mine:
                    self._leases.pop(0)
            if mine:
                with contextlib.suppress(Exception):
                    cm.__exit__(None, None, None)

    def _fetch_page(self, url: str, accept: str, held: Held | None, publish: bool
                    ) -> tuple[str, bytes, str, bytes] | int:
        """Ask the index for the page (revalidating held when it has an ETag); publish: this
        run holds the page's lease (the page is kept, to be published)."""
        # compressed as pip asks for it (requests sends gzip too; PyPI's pages shrink ~5x)
        resp = self._open(url, accept, {"Accept-Encoding": "gzip",
                                        **(held.conditions() if held is not None else {})})
        if resp == 304 and held is not None and self.shared is not None:
            with contextlib.suppress(Exception):  # the index confirmed the copy's validator now
                self.shared.revalidated(held)
            ctype, body, base = held.ctype, held.body, self._confirmed.pop(url, url)
        elif isinstance(resp, int):
            if resp == 404:
                self._pages[(url, accept)] = 404
            return resp
        else:
            with resp:
                plain = _decoded(resp.read(_PAGE_LIMIT), resp.headers.get("Content-Encoding"))
                if plain is None:
                    return 0
                body = plain
                ctype = resp.headers.get("Content-Type", "text/html")
                base = resp.geturl()
                if self.shared is not None and publish:  # kept by the publisher, then shared
                    with self._lock:
                        self._unsaved[(url, accept)] = (body, resp.headers, held, base)
                elif self.shared is not None:
                    with contextlib.suppress(Exception):  # (keeping it is only a saving)
                        self.shared.save(url, accept, body, resp.headers, held, base)
        memo = self._pages[(url, accept)] = (ctype, body, base,
                                             self._rewrite(body, ctype, base))
        return memo

    def _register(self, urls: list[str], wants: list[str | None] | None = None) -> list[str]:
        """The view URLs for file URLs (absolute, fragment kept), registered under one hold of
        the lock (a page lists thousands: one hold each made the look-up threads queue on it);
        a file's SHA-256 from the first page that names it, by its fragment, else wants."""
        split = [url.partition("#")[::2] for url in urls]
        ns = []
        with self._lock:
            for i, (bare, frag) in enumerate(split):
                n = self._by_url.get(bare)
                if n is None:
                    n = self._by_url[bare] = len(self.files)
                    self.files.append(bare)
                if (m := _FRAG_SHA256.search(frag)) is not None:
                    self.hashes.setdefault(n, m.group(1))
                if wants is not None and wants[i] is not None:
                    self.hashes.setdefault(n, str(wants[i]))
                ns.append(n)
        return [f"{self.prefix}f/{n}/{_segment(bare)}" + (f"#{frag}" if frag else "")
                for n, (bare, frag) in zip(ns, split, strict=True)]

    def _rewrite(self, body: bytes, ctype: str, base: str) -> bytes:
        if ctype.split(";", 1)[0].strip() == _JSON:
            try:
                data = json.loads(body)
                files = [f for f in data.get("files") or []
                         if isinstance(f, dict) and isinstance(f.get("url"), str)]
                wants: list[str | None] = []
                for f in files:
                    want = (f.get("hashes") or {}).get("sha256")
                    wants.append(want if isinstance(want, str) and _HEX64.fullmatch(want)
                                 else None)
                urls = [urllib.parse.urljoin(base, f["url"]) for f in files]
                for f, view_url in zip(files, self._register(urls, wants), strict=True):
                    f["url"] = view_url
                return json.dumps(data).encode()
            except (ValueError, AttributeError, TypeError):
                return body
        text = body.decode("utf-8", "surrogateescape")
        if (b := _BASE.search(text)) is not None:
            base = urllib.parse.urljoin(base, html.unescape(b.group(2)))
        found: dict[int, str] = {}  # match start -> its absolute file URL
        for m in _HREF.finditer(text):
            url = urllib.parse.urljoin(base, html.unescape(m.group(3)))
            if url.startswith(("http://", "https://")):
                found[m.start()] = url
        views = dict(zip(found, self._register(list(found.values())), strict=True))

        def link(m: re.Match[str]) -> str:
            view_url = views.get(m.start())
            if view_url is None:
                return m.group(0)
            return f"{m.group(1)}{m.group(2)}{html.escape(view_url)}{m.group(2)}"

        return _HREF.sub(link, text).encode("utf-8", "surrogateescape")

    def _relay(self, h: BaseHTTPRequestHandler, url: str) -> None:
        resp = self._open(url)
        if isinstance(resp, int):
            return self._fail(h, resp)
        with resp:
            h.send_response(200)
            for k in ("Content-Type", "Content-Length"):
                if resp.headers.get(k):
                    h.send_header(k, resp.headers[k])
            h.end_headers()
            while chunk := resp.read1(client.CHUNK):
                h.wfile.write(chunk)

    def _file(self, h: BaseHTTPRequestHandler, n: int, name: str) -> None:
        """Stream file n to pip, keeping a checked copy; a second request reads the copy."""
        with self._lock:
            lock = self._file_locks.setdefault(n, threading.Lock())
        with lock:
            done = self.fetched.get(name)
            if done is not None and done.is_file():
                return self._send_file(h, done)
            want = self.hashes.get(n)
            if want is None or self.coalesce is None or not _safe(name):
                return self._download(h, n, name)
            with self.coalesce(want) as lease:  # members missing it at once: one downloads
                if lease.path is not None and self._adopt(Path(lease.path), name):
                    return self._send_file(h, self.fetched[name])
                self._download(h, n, name)
                done = self.fetched.get(name)
                if lease.held and done is not None and self.keep is not None:
                    with contextlib.suppress(Exception):  # (then the others download too)
                        self.keep(done, want)  # in the cache, so the lease publishes it

    def _download(self, h: BaseHTTPRequestHandler, n: int, name: str) -> None:
        resp = self._open(self.files[n])
        if isinstance(resp, int):
            return self._fail(h, resp)
        with resp:
            self._tee(h, resp, n, name)
        return None

    def _adopt(self, src: Path, name: str) -> bool:
        """A copy of the object another member delivered, as this run's download of name."""
        tmp = self.dl / f".view-adopt-{secrets.token_hex(6)}.tmp"
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, self.dl / name)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        self.fetched[name] = self.dl / name
        return True

    def _tee(self, h: BaseHTTPRequestHandler, resp: http.client.HTTPResponse, n: int,
             name: str) -> None:
        length = resp.headers.get("Content-Length")
        h.send_response(200)
        h.send_header("Content-Type", resp.headers.get("Content-Type", "application/octet-stream"))
        if length and length.isdigit():
            h.send_header("Content-Length", length)
        h.end_headers()
        keep = _safe(name)
        tmp = self.dl / f".view-{n}-{secrets.token_hex(6)}.tmp"
        out = open(tmp, "xb") if keep else None
        digest, size, reader_gone, ok = hashlib.sha256(), 0, False, False
        try:
            while True:
                try:
                    chunk = resp.read1(client.CHUNK)
                except (http.client.HTTPException, OSError):
                    break
                if not chunk:
                    ok = not (length and length.isdigit() and int(length) != size)
                    break
                digest.update(chunk)
                size += len(chunk)
                if out is not None:
                    out.write(chunk)
                if not reader_gone:  # pip gone (timeout): finish the copy for its retry
                    try:
                        h.wfile.write(chunk)
                    except OSError:
                        reader_gone = True
        finally:
            if out is not None:
                out.close()
        want = self.hashes.get(n)
        if keep and ok and (want is None or digest.hexdigest() == want):
            os.replace(tmp, self.dl / name)
            self.fetched[name] = self.dl / name
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()

    @staticmethod
    def _send_file(h: BaseHTTPRequestHandler, path: Path) -> None:
        with open(path, "rb") as f:
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
            h.end_headers()
            while chunk := f.read(client.CHUNK):
                h.wfile.write(chunk)


def _decoded(body: bytes, encoding: str | None) -> bytes | None:
    """A page's bytes without its Content-Encoding (gzip or none; None if it cannot be read)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("identity", ""):
        return body
    if enc not in ("gzip", "x-gzip"):
        return None
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = d.decompress(body, _PAGE_LIMIT)
        # one member, nothing after it (else a page could be cut short without an error)
        return out if d.eof and not d.unconsumed_tail and not d.unused_data else None
    except zlib.error:
        return None


def _safe(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _split(arg: str, args: Iterator[str]) -> tuple[str | None, str | None]:
    """(option name, value) for an index option (value taken from args when separate);
    (None, None) for any other argument."""
    for opt in _VALUE_OPTS:
        if arg == opt:
            return opt, next(args, None)
        if opt.startswith("--") and arg.startswith(opt + "="):
            return opt, arg.split("=", 1)[1]
    if arg.startswith("-i") and not arg.startswith("--") and len(arg) > 2:
        return "-i", arg[2:]
    return None, None


def _cli_extras(pip_args: list[str]) -> list[str]:
    out: list[str] = []
    args = iter(pip_args)
    for arg in args:
        if arg == "--":
            break
        name, value = _split(arg, args)
        if name == "--extra-index-url" and value:
            out.append(value)
    return out
