"""Index pages on the fleet (#23): real pip against a PEP 503 index on 127.0.0.1 that counts
every request and the bytes it sends, members on a real nginx WebDAV store.

- one run reads each page once (pip and the driver share the view's read);
- a member with the index up revalidates the pages the fleet shares (If-None-Match -> 304,
  0 page bytes) and still installs what plain pip would when a page changed;
- a page from the store is used only when signed by a trusted key and confirmed by the index;
- a fully pinned or hash-locked set asks the index for nothing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_core.storage.remote.base import record_name
from cache_core.storage.remote.records import Record, encode
from hooks.pip.pages import PIP_ACCEPT, page_key
from tests.support.pip import Index, Packages, make_sdist, make_wheel, py, sha256_of, venv_version

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("fleet_store", ["nginx"], indirect=True)]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    d = tmp_path_factory.mktemp("dists")
    return Packages(dir=d, alpha=make_wheel(d, "alpha", "1.0", requires=("beta>=1.0",)),
                    beta=make_wheel(d, "beta", "1.0"), delta=make_sdist(d, "delta", "1.0"),
                    plat_any=d, plat_other=d, onlyother=d, newpy=d)


def _index(tmp_path: Path, packages: Packages, etag: bool) -> Index:
    files = tmp_path / "index-files"
    files.mkdir()
    idx = Index(files)
    for p in (packages.alpha, packages.beta, packages.delta):
        idx.add(p)
    idx.start()
    assert idx.server is not None
    idx.server.app.pypi_headers = etag  # type: ignore[attr-defined]  # ETag + 304 on pages
    idx.server.app.gzip_pages = etag  # type: ignore[attr-defined]  # and gzip, as pypi.org
    return idx


@pytest.fixture
def index(tmp_path: Path, packages: Packages) -> Iterator[Index]:
    idx = _index(tmp_path, packages, etag=False)
    yield idx
    idx.stop()


@pytest.fixture
def etag_index(tmp_path: Path, packages: Packages) -> Iterator[Index]:
    idx = _index(tmp_path, packages, etag=True)
    yield idx
    idx.stop()


def _pages(index: Index, since: int) -> list:
    """The page requests (GET /simple/<project>/) the index saw after hit number since."""
    assert index.server is not None
    return [h for h in index.server.hits[since:]
            if h.method == "GET" and h.path.startswith("/simple/") and h.path.count("/") == 3]


def _hits(index: Index) -> int:
    assert index.server is not None
    return len(index.server.hits)


def _install_a(fleet, index: Index, make_venv, req: str) -> dict[str, str | None]:
    v = make_venv()
    assert fleet.pip(fleet.a, ["--python", py(v), "-i", index.url, *req.split()]) == 0
    out = fleet.push()
    assert out["pending"] == 0 and out["failed"] == 0, out
    return {n: venv_version(v, n) for n in ("alpha", "beta", "delta")}


def _b_reads_each_page_once(fleet, index, make_venv, capfd, served) -> None:
    """B installs alpha and delta through the fleet, the index up: each page read once, and
    the versions A got."""
    before = _hits(index)
    v = make_venv()
    assert fleet.pip(fleet.b, ["--python", py(v), "-i", index.url, "alpha", "delta"]) == 0, \
        capfd.readouterr().err
    reads = Counter(h.path for h in _pages(index, before))
    assert set(reads) == {"/simple/alpha/", "/simple/beta/", "/simple/delta/"}, reads
    assert max(reads.values()) == 1, reads
    assert {n: venv_version(v, n) for n in served} == served


def test_one_run_reads_each_page_once(fleet, index, make_venv, pip_isolation, capfd):
    """A (cold) and B (the fleet has every file, the index is up, unpinned): each page of the
    index is read once per run, by pip and the driver together (B read each twice before:
    the driver's check of the fleet's listings, then pip)."""
    before = _hits(index)
    served = _install_a(fleet, index, make_venv, "alpha delta")
    reads = Counter(h.path for h in _pages(index, before))
    assert reads and max(reads.values()) == 1, reads
    _b_reads_each_page_once(fleet, index, make_venv, capfd, served)


def test_member_revalidates_the_fleets_pages(fleet, etag_index, make_venv, pip_isolation,
                                             packages, tmp_path, capfd):
    """The index sends ETags: B asks for every page with A's validator and gets 304s (no page
    byte from the index, no file); once a page changes (beta 2.0 published), C gets the new
    page and installs what plain pip installs."""
    index = etag_index
    served = _install_a(fleet, index, make_venv, "alpha delta")
    # A's pages came gzip-compressed, as pip itself asks for them
    assert all(h.headers.get("accept-encoding") == "gzip" for h in _pages(index, 0))
    before = _hits(index)
    v = make_venv()
    assert fleet.pip(fleet.b, ["--python", py(v), "-i", index.url, "alpha", "delta"]) == 0, \
        capfd.readouterr().err
    pages = _pages(index, before)
    assert pages and all(h.status == 304 and "if-none-match" in h.headers for h in pages), \
        [(h.path, h.status) for h in pages]
    assert sum(h.sent for h in index.server.hits[before:]) == 0  # not a byte of page or file
    assert {n: venv_version(v, n) for n in served} == served
    # a changed page: the index answers 200 with it, and pip sees the new version
    index.add(make_wheel(tmp_path, "beta", "2.0"))
    c = fleet.member("c")
    before = _hits(index)
    v = make_venv()
    assert fleet.pip(c, ["--python", py(v), "-i", index.url, "alpha", "delta"]) == 0
    status = {h.path: h.status for h in _pages(index, before)}
    assert status == {"/simple/alpha/": 304, "/simple/beta/": 200, "/simple/delta/": 304}
    assert venv_version(v, "beta") == "2.0" and venv_version(v, "alpha") == "1.0"
    c.close()
    assert "pkgcache" not in capfd.readouterr().err  # silent on success


def test_a_page_from_the_store_is_used_only_signed_and_confirmed(
        fleet, etag_index, make_venv, pip_isolation, packages, tmp_path):
    """An unsigned page record (any writer of the store) carrying the index's real ETag but
    other bytes is never used, even by a member that accepts unsigned records (``trust:
    unsigned``): it downloads the page and installs the genuine files. A page record naming
    another index URL is not used for this one, even signed."""
    index = etag_index
    evil = make_wheel(tmp_path, "alpha", "6.6", requires=("beta>=1.0",))
    url = index.url + "alpha/"
    real = index.server.app.page("alpha")  # type: ignore[union-attr]
    etag = '"' + hashlib.sha256(real).hexdigest()[:32] + '"'
    body = real.replace(b"</body>", f'<a href="http://127.0.0.1:9/{evil.name}#sha256='
                                    f'{sha256_of(evil)}">{evil.name}</a></body>'.encode())
    digest = hashlib.sha256(body).hexdigest()
    fleet.store.write(f"cas/{digest}", body)
    key = page_key(url, PIP_ACCEPT)
    meta = {"url": url, "accept": PIP_ACCEPT, "content_type": "text/html", "etag": etag,
            "last_modified": None}
    fleet.store.write(record_name(key), encode(Record(key, digest, len(body), "pippage", meta),
                                               None))
    u = fleet.member("u", trust="unsigned")
    before = _hits(index)
    v = make_venv()
    assert fleet.pip(u, ["--python", py(v), "-i", index.url, "alpha"]) == 0
    alpha = [h for h in _pages(index, before) if h.path == "/simple/alpha/"]
    assert [h.status for h in alpha] == [200] and "if-none-match" not in alpha[0].headers
    assert venv_version(v, "alpha") == "1.0"
    u.close()
    # signed by the trusted key, but for another index URL: its key is not this page's key,
    # and a record whose URL is not the page's is refused
    from cache_core.storage.remote.records import load_secret_key

    fleet.store.write(record_name(key), encode(
        Record(key, digest, len(body), "pippage", dict(meta, url="http://127.0.0.1:9/simple/alpha/")),
        load_secret_key(fleet.key[0])))
    c = fleet.member("c")
    before = _hits(index)
    v = make_venv()
    assert fleet.pip(c, ["--python", py(v), "-i", index.url, "alpha"]) == 0
    alpha = [h for h in _pages(index, before) if h.path == "/simple/alpha/"]
    assert [h.status for h in alpha] == [200], [(h.status, h.headers) for h in alpha]
    assert venv_version(v, "alpha") == "1.0"
    c.close()


def test_a_pinned_or_hash_locked_set_asks_the_index_for_nothing(
        fleet, index, make_venv, pip_isolation, packages, tmp_path, capfd):
    """The fleet's signed listings name the pinned versions: B installs a fully pinned set with
    no request to the index (before: every page, twice); hash-locked likewise."""
    served = _install_a(fleet, index, make_venv, "alpha delta")
    pinned = tmp_path / "pinned.txt"
    pinned.write_text("alpha==1.0\nbeta==1.0\ndelta==1.0\n")
    locked = tmp_path / "locked.txt"
    locked.write_text(f"alpha==1.0 --hash=sha256:{sha256_of(packages.alpha)}\n"
                      f"beta==1.0 --hash=sha256:{sha256_of(packages.beta)}\n")
    for name, req in (("b", pinned), ("c", locked)):
        m = fleet.b if name == "b" else fleet.member(name)
        before = _hits(index)
        v = make_venv()
        assert fleet.pip(m, ["--python", py(v), "-i", index.url, "-r", str(req)]) == 0, \
            capfd.readouterr().err
        assert index.server.hits[before:] == [], [h.path for h in index.server.hits[before:]]
        assert venv_version(v, "alpha") == served["alpha"] == "1.0"
        if name == "b":
            assert venv_version(v, "delta") == served["delta"]
    # a pinned version the fleet does not hold: pip asks the index, as plain pip does
    a2 = make_wheel(tmp_path, "alpha", "2.0", requires=("beta>=1.0",))
    index.add(a2)
    pinned.write_text("alpha==2.0\nbeta==1.0\n")
    v = make_venv()
    assert fleet.pip(fleet.b, ["--python", py(v), "-i", index.url, "-r", str(pinned)]) == 0
    assert venv_version(v, "alpha") == "2.0"


# -- freshness: the fleet's pip_page_max_age (the index sends no ETag and no Cache-Control) ----
def _writer(fleet, name: str, window: float):
    """A rw member signing with the fleet's key, with this pip_page_max_age."""
    return fleet.member(name, mode="rw", signing_key_file=fleet.key[0], pip_page_max_age=window)


def _run(fleet, member, index: Index, make_venv, capfd) -> tuple[list, dict[str, str | None]]:
    """member installs alpha and delta: (the page requests the index saw, the versions)."""
    before = _hits(index)
    v = make_venv()
    assert fleet.pip(member, ["--python", py(v), "-i", index.url, "alpha", "delta"]) == 0, \
        capfd.readouterr().err
    return _pages(index, before), {n: venv_version(v, n) for n in ("alpha", "beta", "delta")}


def test_a_signed_page_within_the_fleets_window_is_used_without_asking_the_index(
        fleet, index, make_venv, pip_isolation, capfd):
    """With pip_page_max_age set (here 300 s) and an index that sends neither an ETag nor a
    max-age (like the mirror this machine reaches), B uses the pages A signed less than 300 s
    ago: no page and no file asked of the index. With the setting off, C asks the index
    for every page, as plain pip does."""
    a = _writer(fleet, "aw", 300)
    pages, served = _run(fleet, a, index, make_venv, capfd)
    assert {h.path for h in pages} == {"/simple/alpha/", "/simple/beta/", "/simple/delta/"}
    out = fleet.push(a)
    assert out["pending"] == 0 and out["failed"] == 0, out
    before = _hits(index)
    b = fleet.member("bw", pip_page_max_age=300)
    pages, got = _run(fleet, b, index, make_venv, capfd)
    # nothing but the driver's HEAD of the index root (is it up?): no page, no file, 0 bytes
    asked = [(h.method, h.path) for h in index.server.hits[before:]]
    assert pages == [] and set(asked) <= {("HEAD", "/simple/")}, asked
    assert sum(h.sent for h in index.server.hits[before:]) == 0
    assert got == served
    c = fleet.member("cw")  # the setting off (the default)
    pages, got = _run(fleet, c, index, make_venv, capfd)
    reads = Counter(h.path for h in pages)
    assert reads == Counter({"/simple/alpha/": 1, "/simple/beta/": 1, "/simple/delta/": 1}), reads
    assert got == served
    for m in (a, b, c):
        m.close()
    assert "pkgcache" not in capfd.readouterr().err  # silent on success


def test_an_older_or_untrusted_signed_page_is_not_used_without_asking(
        fleet, index, make_venv, pip_isolation, packages, tmp_path, capfd):
    """A page signed longer ago than the window, or signed by a key this member does not trust,
    is not used without asking: the index is asked for every page, and a new version it lists
    (beta 2.0, published after A's run) is what gets installed, as with plain pip."""
    import time

    from cache_core.storage.remote.records import generate_keypair

    a = _writer(fleet, "aw", 300)
    _run(fleet, a, index, make_venv, capfd)
    out = fleet.push(a)
    assert out["pending"] == 0 and out["failed"] == 0, out
    index.add(make_wheel(tmp_path, "beta", "2.0"))
    time.sleep(1.5)
    old = fleet.member("old", pip_page_max_age=1)  # A's pages are > 1 s old now
    _, other_key = generate_keypair("other")
    stranger = fleet.member("stranger", trusted_public_keys=[other_key], pip_page_max_age=300)
    for m in (old, stranger):
        pages, got = _run(fleet, m, index, make_venv, capfd)
        reads = Counter(h.path for h in pages)
        assert reads == Counter({"/simple/alpha/": 1, "/simple/beta/": 1,
                                 "/simple/delta/": 1}), reads
        assert got["beta"] == "2.0" and got["alpha"] == "1.0"
        m.close()
    a.close()


def test_members_reading_a_page_at_the_same_moment_ask_the_index_once(
        fleet, nginx, index, make_venv, pip_isolation):
    """Two rw members (own caches and state dirs, the window off) start together against an
    index that takes 2 s per page: for each page one asks the index (a lease on the page) and
    the other takes its signed copy, which left the index after it asked (what the index would
    have answered it). On the old code every page was asked by both."""
    import subprocess

    from tests.support.cli import popen_cli

    index.server.app.page_delay = 2.0  # type: ignore[union-attr]
    names = ("p1", "p2")
    for n in names:
        # its config: nginx's location with COPY (create-if-absent: leases)
        fleet.member(n, mode="rw", signing_key_file=fleet.key[0], url=nginx.url("dav")).close()
    venvs = [make_venv() for _ in names]
    before = _hits(index)
    procs = [popen_cli("--config", fleet.config(n), "pip", "install", "--python", py(v), "-q",
                       "-i", index.url, "alpha",
                       env={"PKGCACHE_STATE_DIR": str(fleet.state(n)),
                            "PKGCACHE_REMOTE_UPLOAD": "manual"},
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n, v in zip(names, venvs, strict=True)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    reads = Counter(h.path for h in _pages(index, before))
    assert reads == Counter({"/simple/alpha/": 1, "/simple/beta/": 1}), reads
    files = Counter(h.path for h in index.server.hits[before:] if h.path.startswith("/files/"))
    assert files and max(files.values()) == 1, files
    for v in venvs:
        assert venv_version(v, "alpha") == "1.0" and venv_version(v, "beta") == "1.0"


def test_member_reads_the_fleets_pages_at_once(fleet, index, make_venv, pip_isolation, capfd):
    """B (the fleet has every file, the index up, unpinned) asks the index for its projects'
    pages side by side, not one after another as pip does (each page is a round trip to the
    index: plain pip over the internet pays one per project in a row); each still once, and B
    installs what A did."""
    served = _install_a(fleet, index, make_venv, "alpha delta")
    assert index.server is not None
    app = index.server.app
    page, lock, now = app.page, threading.Lock(), [0, 0]  # [in flight, most at once]

    def slow_page(project: str) -> bytes | None:
        with lock:
            now[0] += 1
            now[1] = max(now[1], now[0])
        try:
            time.sleep(0.5)  # an index across the internet
            return page(project)
        finally:
            with lock:
                now[0] -= 1

    app.page = slow_page  # type: ignore[method-assign]
    _b_reads_each_page_once(fleet, index, make_venv, capfd, served)
    assert now[1] >= 2, "the pages were read one at a time"
