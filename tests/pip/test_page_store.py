"""hooks/pip/pages.py: which index pages are kept, and which kept page a run may revalidate."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from cache_core import PackageCache
from hooks.pip.pages import PIP_ACCEPT, Pages, page_key, shareable
from hooks.pip.trust import Trust

URL = "https://index.example/simple/alpha/"
BODY = b"<a href='/f/alpha-1.0-py3-none-any.whl#sha256=" + b"0" * 64 + b"'>alpha</a>"


def _pages(cache: PackageCache) -> Pages:
    return Pages(cache, Trust(cache.root), frozenset())


def _save(cache: PackageCache, url: str, headers: dict[str, str]) -> None:
    """One run keeps a page the index sent with these headers."""
    pages = _pages(cache)
    pages.save(url, PIP_ACCEPT, BODY, headers, None)
    pages.trust.save()


@pytest.mark.parametrize("url, ok", [
    (URL, True),
    ("http://127.0.0.1:8080/simple/alpha/", True),
    ("https://user:secret@index.example/simple/alpha/", False),
    ("https://token@index.example/simple/alpha/", False),
    ("https://index.example/simple/alpha/?token=x", False),
    ("file:///srv/simple/alpha/", False),
])
def test_only_pages_of_indexes_without_credentials_are_kept(url: str, ok: bool,
                                                            cache: PackageCache) -> None:
    assert shareable(url) is ok
    _save(cache, url, {"ETag": '"v1"', "Content-Type": "text/html"})
    assert bool(cache.keys("pippage:")) is ok
    held = _pages(cache).held(url, PIP_ACCEPT)  # a later run
    assert (held is not None) is ok
    if ok:
        assert held is not None and held.body == BODY
        assert held.conditions() == {"If-None-Match": '"v1"'}


def test_a_page_without_an_etag_is_not_kept(cache: PackageCache) -> None:
    _save(cache, URL, {"Content-Type": "text/html"})
    assert cache.keys("pippage:") == []
    # a date names no bytes: a 304 to If-Modified-Since could confirm another mirror's page
    _save(cache, URL, {"Last-Modified": "Sun, 06 Dec 2026 05:00:00 GMT"})
    assert cache.keys("pippage:") == []
    _save(cache, URL, {"ETag": '"v1"', "Last-Modified": "Sun, 06 Dec 2026 05:00:00 GMT"})
    held = _pages(cache).held(URL, PIP_ACCEPT)
    assert held is not None
    assert held.conditions() == {"If-None-Match": '"v1"'}


def test_a_kept_page_is_used_only_for_its_own_url_and_accept_and_if_this_machine_kept_it(
        cache: PackageCache) -> None:
    _save(cache, URL, {"ETag": '"v1"'})
    assert _pages(cache).held(URL, PIP_ACCEPT) is not None
    assert _pages(cache).held(URL, "text/html") is None
    assert _pages(cache).held(URL.replace("alpha", "beta"), PIP_ACCEPT) is None
    # another writer of the cache files a page under the key of another URL's page: its meta
    # names its own URL, and this machine never vouched for it
    other = "https://index.example/simple/beta/"
    with tempfile.NamedTemporaryFile() as fh:
        fh.write(b"evil")
        fh.flush()
        cache.put(page_key(other, PIP_ACCEPT), fh.name, kind="pippage",
                  meta={"url": other, "accept": PIP_ACCEPT, "etag": '"v1"'})
    assert _pages(cache).held(other, PIP_ACCEPT) is None
    # ... or re-points this page's key at other bytes
    with tempfile.NamedTemporaryFile() as fh:
        fh.write(b"evil")
        fh.flush()
        cache.put(page_key(URL, PIP_ACCEPT), fh.name, kind="pippage",
                  meta={"url": URL, "accept": PIP_ACCEPT, "etag": '"v1"'})
    assert _pages(cache).held(URL, PIP_ACCEPT) is None


def test_a_gzip_page_with_more_after_its_first_member_is_refused_not_cut_short() -> None:
    import gzip

    from hooks.pip.view import _decoded

    one = gzip.compress(b"<a href='alpha-1.0.tar.gz'>")
    assert _decoded(one, "gzip") == b"<a href='alpha-1.0.tar.gz'>"
    assert _decoded(one + gzip.compress(b"<a href='alpha-2.0.tar.gz'>"), "gzip") is None
    assert _decoded(one + b"junk", "gzip") is None


def test_an_index_max_age_makes_a_page_fresh_unless_the_asker_revalidates(
        cache: PackageCache) -> None:
    """A page the index sent with ``Cache-Control: max-age`` (and no ETag) is kept and used
    without asking while younger than max-age less its Age, unless the asker wants it
    revalidated (pip < 26.2 sends max-age=0); no-store, private and no-cache pages are not
    used while fresh. Without the fleet's window, nothing else is fresh."""
    _save(cache, URL, {"Cache-Control": "max-age=600, public", "Age": "590"})
    held = _pages(cache).held(URL, PIP_ACCEPT)
    assert held is not None and held.conditions() == {}
    assert held.fresh(revalidate=False) == "index"
    assert held.fresh(revalidate=True) is None
    assert held.fresh(revalidate=False, now=held.meta["fetched"] + 601) is None  # Age counted
    import time

    assert held.meta["fetched"] <= time.time() - 589
    for control in ("no-store", "private, max-age=600"):
        other = URL.replace("alpha", control.split(",")[0])
        _save(cache, other, {"Cache-Control": control})
        assert _pages(cache).held(other, PIP_ACCEPT) is None
    nc = URL.replace("alpha", "nc")
    _save(cache, nc, {"Cache-Control": "no-cache, max-age=600", "ETag": '"e"'})
    held = _pages(cache).held(nc, PIP_ACCEPT)
    assert held is not None and held.fresh(revalidate=False) is None  # revalidated only


def test_wants_revalidation() -> None:
    from hooks.pip.pages import wants_revalidation

    assert wants_revalidation("max-age=0") and wants_revalidation("no-cache")
    assert not wants_revalidation(None) and not wants_revalidation("max-age=600")


class _Fleet:
    """A fleet store holding one signed page record (what get_record answers), for Pages."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.rec = tmp, None
        self.reads = 0

    def page_max_age(self) -> float:
        return 0.0

    def put(self, body: bytes, fetched: float) -> None:
        import hashlib

        digest = hashlib.sha256(body).hexdigest()
        (self.tmp / digest).write_bytes(body)
        self.rec = SimpleNamespace(signer="k1", sha256=digest, size=len(body), meta={
            "url": URL, "accept": PIP_ACCEPT, "etag": f'"{digest[:8]}"', "fetched": fetched})

    def get_record(self, key: str) -> object:
        self.reads += 1
        return self.rec

    def bring_object(self, digest: str, size: int | None = None) -> str:
        return str(self.tmp / digest)


class _WithFleet:
    def __init__(self, cache: PackageCache, fleet: _Fleet) -> None:
        self._cache, self.remote = cache, fleet

    def __getattr__(self, name: str) -> object:
        return getattr(self._cache, name)


def test_a_waiter_takes_only_a_record_newer_than_the_one_it_saw_before_waiting(
        cache: PackageCache, tmp_path: Path) -> None:
    """A member that waited on another's page lease takes the fleet's copy only if the record
    changed while it waited (the holder published it): never judged by comparing its clock with
    the holder's "fetched" (an old record from a clock 50 s ahead looked "after I asked")."""
    import time

    fleet = _Fleet(tmp_path)
    fleet.put(BODY, time.time() + 50)  # an old read, by a member whose clock is 50 s ahead
    pages = Pages(_WithFleet(cache, fleet), Trust(cache.root), frozenset({"k1"}))  # type: ignore[arg-type]
    assert pages.late(URL, PIP_ACCEPT) is None  # never read before waiting: nothing to compare
    assert pages.held(URL, PIP_ACCEPT) is not None  # read before taking (waiting on) the lease
    assert pages.late(URL, PIP_ACCEPT) is None  # the holder published nothing: ask the index
    fleet.put(BODY + b"<a>new</a>", time.time() - 30)  # the holder's page (its clock behind)
    late = pages.late(URL, PIP_ACCEPT)
    assert late is not None and late.body == BODY + b"<a>new</a>"


def test_a_304_makes_a_kept_page_new(cache: PackageCache) -> None:
    """The index confirmed a kept page just now: its "fetched" is now (the record a holder
    publishes for members waiting on its lease, who take only a newer record)."""
    _save(cache, URL, {"ETag": '"v1"', "Age": "500"})
    pages = _pages(cache)
    held = pages.held(URL, PIP_ACCEPT)
    assert held is not None
    old = held.meta["fetched"]
    pages.revalidated(held)
    entry = cache.lookup(page_key(URL, PIP_ACCEPT))
    assert entry is not None and entry.meta["fetched"] >= old + 499
    assert _pages(cache).held(URL, PIP_ACCEPT) is not None  # still vouched for here
