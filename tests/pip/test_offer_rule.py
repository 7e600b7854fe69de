"""Property (issue #22 item 3): random requests (sources, hash pins, online/offline, trusted fleet
keys) against a cache filled from random sources never offer a file that did not come from one
of the request's own sources (unless the request pins its very digest). Drives the real
attribution (options.origin), trust record (Trust.vouch, the fleet's bound vouches) and offer
rule (trust.may_offer) with a model of the cache's keys; no network, no root, no pip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hooks.pip import options, trust
from hooks.pip.fleet import bound

INDEXES = ("https://pypi.org/simple/", "https://private.example/simple/",
           "http://127.0.0.1:9/simple/")
FILES = ("six-1.0-py3-none-any.whl", "tabulate-0.9-py3-none-any.whl")
KEYS = ("fleet-1:AAAA", "fleet-2:BBBB")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ...]]:
    """Find-links locations: our directory, one anyone can write (recorded as such), and a
    local links page (which can name a file anywhere)."""
    base = tmp_path_factory.mktemp("offer")
    ours, shared, page = base / "dist", base / "shared", base / "links.html"
    ours.mkdir()
    shared.mkdir()
    os.chmod(shared, 0o777)
    page.write_text("<html></html>\n")
    state = base / "state"
    state.mkdir(mode=0o700)
    old = os.environ.get("PKGCACHE_STATE_DIR")
    os.environ["PKGCACHE_STATE_DIR"] = str(state)  # an empty private trust dir, never saved
    yield str(ours), str(shared), str(page)
    if old is None:
        os.environ.pop("PKGCACHE_STATE_DIR", None)
    else:
        os.environ["PKGCACHE_STATE_DIR"] = old


def _args(sources: frozenset[str], dirs: tuple[str, ...]) -> list[str]:
    """pip arguments reading exactly these sources (an index name or a directory)."""
    idx = [s for s in INDEXES if s in sources]
    args = ["--no-index"] if not idx else ["-i", idx[0]]
    for extra in idx[1:]:
        args += ["--extra-index-url", extra]
    for d in dirs:
        if d in sources:
            args += ["--find-links", d]
    return [*args, "six"]


def _url(source: str, filename: str, foreign_host: bool) -> str:
    """Where pip's report says the file came from: a directory's file, or an index's file on
    its own host or on another one (like files.pythonhosted.org for PyPI)."""
    if source.startswith("http"):
        host = "https://files.example.net" if foreign_host else source.rsplit("/simple", 1)[0]
        return f"{host}/files/{filename}"
    if source.endswith(".html"):  # a page names a URL anywhere, or a file anywhere
        return (f"https://files.example.net/files/{filename}" if foreign_host
                else Path(source).parent.with_name("elsewhere").joinpath(filename).as_uri())
    return Path(source, filename).as_uri()


def _sources(dirs: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(INDEXES + dirs), min_size=1, max_size=4)


@st.composite
def _fill(draw: st.DrawFn, dirs: tuple[str, ...]) -> tuple:
    req = draw(_sources(dirs))
    source = draw(st.sampled_from(sorted(req)))
    # a few digests per file name: two sources may publish the same bytes, or other ones
    return (req, source, draw(st.sampled_from(FILES)), draw(st.integers(0, 2)),
            draw(st.booleans()), draw(st.sampled_from((None, *KEYS))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_request_is_offered_a_file_from_outside_its_sources(dirs, data) -> None:
    fills = data.draw(st.lists(_fill(dirs), min_size=1, max_size=8))
    cache: dict[str, str] = {}                      # key -> digest (the last put wins)
    truth: dict[str, set[str]] = {}                 # digest -> the sources that gave it
    t = trust.Trust()
    for req, source, filename, n, foreign, signer in fills:
        digest = f"{filename}:{n}:{source if n == 2 else ''}"  # n == 2: this source's own bytes
        truth.setdefault(digest, set()).add(source)
        key = f"wheel:{filename}"
        args = _args(req, dirs)
        group = options.origin(_url(source, filename, foreign), args)
        if signer is None:                          # this machine downloaded it
            cache[key] = digest
            if group:
                t.vouch(key, digest, [group])
        else:                                       # another member did; its signed record
            cache[key] = digest
            t.vouch(key, digest, bound([group] if group else [], signer))
    req_sources = data.draw(_sources(dirs))
    online = data.draw(st.booleans())
    pins = data.draw(st.frozensets(st.sampled_from(sorted(set(cache.values())))))
    hashed = data.draw(st.booleans())
    keys = data.draw(st.frozensets(st.sampled_from(KEYS)))
    tokens = frozenset(options.sources(_args(req_sources, dirs)))
    # what install.py asks: online, the cache's tree never offers for a pinned digest alone
    request = trust.Request(tokens, pins if hashed and not online else None, keys)
    for key, digest in cache.items():
        if trust.may_offer(digest, t.get(key), request):
            pinned = request.hashes is not None and digest in request.hashes
            assert pinned or truth[digest] & req_sources, (key, digest, truth[digest],
                                                            req_sources, t.get(key))


def test_a_directory_others_can_write_vouches_only_for_itself(dirs) -> None:
    """Examples the property relies on: tokens and groups as recorded."""
    ours, shared, page = dirs
    assert options.token(shared).endswith("#user=-1") and "#" not in options.token(ours)
    args = ["-i", INDEXES[0], "--find-links", shared, "six"]
    assert options.origin(Path(shared, FILES[0]).as_uri(), args) == [options.token(shared)]
    assert options.origin(f"https://pypi.org/files/{FILES[0]}", args) == ["https://pypi.org/simple"]
    both = ["-i", INDEXES[0], "--extra-index-url", INDEXES[1], "six"]
    assert options.origin(f"https://files.example.net/{FILES[0]}", both) == sorted(
        options.token(i) for i in INDEXES[:2])  # which index is unknown: both are required
    # a local links page can name a file on any host: it is required of later requests too
    assert options.origin(f"https://files.example.net/{FILES[0]}", args[:2] + [
        "--find-links", page, "six"]) == sorted([options.token(page), "https://pypi.org/simple"])
    vouch = ["d", [[options.token(shared)]]]
    assert not trust.may_offer("d", vouch, trust.Request(frozenset({"https://pypi.org/simple"})))
    assert trust.may_offer("d", vouch, trust.Request(frozenset({options.token(shared)})))
    fleet = ["d", bound([["https://pypi.org/simple"]], KEYS[0])]
    req = trust.Request(frozenset({"https://pypi.org/simple"}))
    assert not trust.may_offer("d", fleet, req)  # the key is not trusted
    assert trust.may_offer("d", fleet, trust.Request(req.sources, None, frozenset(KEYS[:1])))
    assert bound([["https://pypi.org/simple"]], None) == []  # unsigned: never vouches
