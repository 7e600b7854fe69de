"""Index pages kept in the cache and shared by the fleet.

The view (view.py) reads each page of the user's indexes once per run. A page this machine
holds, or one a trusted fleet key signed (``pippage:`` record), is asked for with its ETag
(``If-None-Match``; a Last-Modified date alone does not name bytes): the index answers 304 and
sends no page. A page from the store is untrusted content: it is used only when the index
confirms its validator with a 304 *and* it is this machine's own (vouched in its private trust
record) or signed by a trusted key (the 304 confirms the validator, the signature binds the bytes
to it). It is never used for another URL or another ``Accept``.

Freshness (the signed meta names when the page left the index, less its ``Age``): such a page is
used without asking the index while it is fresh, as an HTTP cache does -
- for the index's own ``Cache-Control: max-age`` (pypi.org: 600 s), unless the asker wants it
  revalidated (pip < 26.2 asks every page with ``max-age=0``; pip >= 26.2 and uv honour it);
- for the fleet's explicit ``pip_page_max_age`` (remote config; default 0: off), whatever the
  asker says: an administrator's choice of staleness for a fleet that starts together.
With neither, every page is asked of the index, as plain pip does. Pages of an index URL with
credentials (``user@``, a query) are neither kept nor shared; ``no-store``/``private`` pages are
not kept; a page with no ETag and no freshness is not kept (it could serve nothing).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .trust import KEY, Trust

if TYPE_CHECKING:
    from cache_core import PackageCache

PAGE = "pippage:"
MAX_PAGE = 64 << 20
# what pip >= 22.2 asks an index for (pip's index/collector.py): the driver asks the same, so
# pip's own request finds the page the driver read
PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
              "text/html; q=0.01")


def shareable(url: str) -> bool:
    """May this page URL be kept and shared? (http(s), no credentials, no query)"""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and "@" not in parts.netloc and not parts.query


def page_key(url: str, accept: str) -> str:
    """The cache key of one page: its URL and the Accept it was asked with."""
    return PAGE + hashlib.sha256(f"{url}\n{accept}".encode()).hexdigest()


@dataclass
class Held:
    """A page this run may revalidate instead of downloading."""

    key: str
    digest: str
    body: bytes
    meta: dict[str, Any]
    groups: list[list[str]]  # the vouch it earns once the index confirms it
    local: bool
    window: float = 0.0  # the fleet's pip_page_max_age (seconds; 0: off)

    @property
    def ctype(self) -> str:
        """The page's Content-Type as the index sent it."""
        return str(self.meta.get("content_type") or "text/html")

    def fresh(self, revalidate: bool, now: float | None = None) -> str | None:
        """Why this page may be used without asking the index ("fleet": within the fleet's
        window, "index": within the index's max-age and the asker does not want it revalidated),
        or None."""
        fetched = self.meta.get("fetched")
        if not isinstance(fetched, (int, float)) or isinstance(fetched, bool):
            return None
        age = (time.time() if now is None else now) - fetched
        if age < -60:  # from the future (a clock far off): never fresh
            return None
        if age < self.window:
            return "fleet"
        max_age = self.meta.get("max_age")
        if not revalidate and isinstance(max_age, int) and age < max_age:
            return "index"
        return None

    def conditions(self) -> dict[str, str]:
        """The conditional request headers for this page's validators."""
        # the ETag only: a 304 to If-Modified-Since says "not changed since", not "these bytes"
        # (two mirrors behind one URL, a restore with older times)
        etag = self.meta.get("etag")
        return {"If-None-Match": etag} if isinstance(etag, str) else {}


class Pages:
    """The pages of one run's indexes in this cache and on the fleet's store."""

    def __init__(self, cache: PackageCache, trust: Trust, keys: frozenset[str]) -> None:
        self.cache = cache
        self.trust = trust
        self.keys = keys  # the fleet keys this machine trusts
        remote = cache.remote
        self.window = remote.page_max_age() if remote is not None else 0.0
        # page key -> the fleet's record for it as held() last read it ((sha256, fetched), or
        # None: none): a member that waited on another's lease takes only a newer one (late())
        self._seen: dict[str, tuple[str, Any] | None] = {}

    def held(self, url: str, accept: str, revalidate: bool = False) -> Held | None:
        """The page for url and accept this machine may use while fresh or revalidate (its
        own first; the fleet's when that one is fresh and its own is not), or None."""
        if not shareable(url):
            return None
        key = page_key(url, accept)
        self._seen.pop(key, None)
        own = None
        entry = self.cache.lookup(key)
        if entry is not None and self._same(entry.meta, url, accept) and \
                self.trust.holds(key, entry.digest, self.keys):
            body = self._read(self.cache.get(key, count=False), entry.digest)
            if body is not None:
                own = Held(key, entry.digest, body, dict(entry.meta or {}), [], True, self.window)
                if own.fresh(revalidate):
                    return own
        # of use: fresh, or (this machine has none) an ETag to revalidate
        theirs = self._theirs(key, url, accept, lambda h: h.fresh(revalidate) is not None or (
            own is None and bool(h.conditions())))
        return theirs if own is None or (theirs is not None and theirs.fresh(revalidate)) \
            else own

    def late(self, url: str, accept: str) -> Held | None:
        """The fleet's signed page for url and accept if its record changed since held() read
        it (before this member waited on another's lease: that member left it), else None.
        (No clocks compared: another machine's "fetched" says nothing about this one's.)"""
        key = page_key(url, accept)
        if not shareable(url) or key not in self._seen:
            return None
        before = self._seen[key]
        return self._theirs(key, url, accept, lambda h: before != (h.digest, h.meta.get("fetched")))

    def _theirs(self, key: str, url: str, accept: str, use: Callable[[Held], bool]
                ) -> Held | None:
        """The fleet's page for url and accept, signed by a key this machine trusts, if use()
        says its record is of use (its bytes are fetched only then), or None."""
        fleet = self.cache.remote
        if fleet is None:
            return None
        rec = fleet.get_record(key)
        self._seen[key] = None if rec is None else (
            rec.sha256, rec.meta.get("fetched") if isinstance(rec.meta, dict) else None)
        if rec is None or not rec.signer or rec.signer not in self.keys or \
                not self._same(rec.meta, url, accept) or rec.size > MAX_PAGE:
            return None  # unsigned (or no longer trusted) pages are never used
        held = Held(key, rec.sha256, b"", dict(rec.meta or {}), [[url, KEY + rec.signer]],
                    False, self.window)
        if not use(held):
            return None
        body = self._read(fleet.bring_object(rec.sha256, size=rec.size), rec.sha256)
        if body is None:
            return None
        held.body = body
        return held

    def confirm(self, held: Held) -> None:
        """The index confirmed held (a 304, or a fresh copy used): keep it here (for the next
        run)."""
        if held.local:
            return
        if self.cache.alias(held.key, held.digest, kind="pippage", meta=held.meta):
            self.trust.vouch(held.key, held.digest, held.groups)

    def revalidated(self, held: Held) -> None:
        """The index answered 304 for held's validators just now: kept here as a page that
        left the index now (a new ``fetched``), the record publish() shares (waiters on this
        member's lease take only a record newer than the one they saw)."""
        meta = {**held.meta, "fetched": round(time.time(), 3)}
        if self.cache.alias(held.key, held.digest, kind="pippage", meta=meta):
            held.meta = meta
            if not held.local:
                self.trust.vouch(held.key, held.digest, held.groups)

    def save(self, url: str, accept: str, body: bytes, headers: Any, held: Held | None,
             base: str | None = None, keep: bool = False) -> None:
        """Keep a page the index sent (and share it when this member writes to the fleet);
        keep: even without a validator or freshness (members wait on this member's lease for
        it: publish() then uploads it at once)."""
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        control = cache_control(headers.get("Cache-Control"))
        if not shareable(url) or len(body) > MAX_PAGE or "no-store" in control or \
                "private" in control:
            return
        max_age = None if "no-cache" in control else control.get("max-age")
        if not etag and not max_age and not self.window and not keep:
            return  # could neither be revalidated nor used while fresh
        key = page_key(url, accept)
        digest = hashlib.sha256(body).hexdigest()
        meta = {"url": url, "accept": accept, "content_type": headers.get("Content-Type"),
                "etag": etag, "last_modified": modified, "max_age": max_age,
                "fetched": round(time.time() - _age(headers.get("Age")), 3)}
        if base and base != url:  # redirected: the page's links are relative to where it ended
            meta["base"] = base
        if held is not None and held.digest == digest and not max_age and not self.window and \
                not keep and \
                {k: v for k, v in held.meta.items() if k != "fetched"} == \
                {k: v for k, v in meta.items() if k != "fetched"}:
            return self.confirm(held)  # a 200 with the same page, no freshness: nothing new
        with tempfile.TemporaryFile(dir=str(self.cache.bucket("pip-v1"))) as fh:
            fh.write(body)
            fh.flush()
            if self.cache.put(key, fh.fileno(), sha256=digest, kind="pippage",
                              meta=meta) is not None:
                self.trust.vouch(key, digest, [[url]])
        return None

    def publish(self, url: str, accept: str) -> bool:
        """Upload the kept page for url and accept (signed record and bytes) to the fleet now."""
        remote = self.cache.remote
        return remote is not None and remote.publish_now(page_key(url, accept))

    @staticmethod
    def _same(meta: Any, url: str, accept: str) -> bool:
        return isinstance(meta, dict) and meta.get("url") == url and meta.get("accept") == accept

    @staticmethod
    def _read(path: str | None, digest: str) -> bytes | None:
        if path is None:
            return None
        try:
            with open(path, "rb") as fh:
                body = fh.read(MAX_PAGE + 1)
        except OSError:
            return None
        return body if hashlib.sha256(body).hexdigest() == digest else None


def cache_control(value: str | None) -> dict[str, int | None]:
    """The directives of a Cache-Control header (lower case; max-age as an int, else None)."""
    out: dict[str, int | None] = {}
    for part in (value or "").split(","):
        name, _, arg = part.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        arg = arg.strip().strip('"')
        out[name] = int(arg) if re.fullmatch(r"\d{1,9}", arg) else None
    return out


def wants_revalidation(value: str | None) -> bool:
    """Does a request's Cache-Control ask for a revalidated answer (max-age=0, no-cache)?"""
    c = cache_control(value)
    return "no-cache" in c or c.get("max-age") == 0


def _age(value: str | None) -> float:
    return float(value) if value and value.strip().isdigit() else 0.0
