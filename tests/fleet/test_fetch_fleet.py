"""`pkgcache fetch` on the fleet: server A fetched, server B fetches with the origin stopped
(pinned: by cas/<sha256>; unpinned: only with a record signed by a trusted key) and, with the
origin up, revalidates the fleet's copy (304) instead of downloading it."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.http import DirServer


class Origin(DirServer):
    """An HTTP origin on 127.0.0.1 serving www (Last-Modified, If-Modified-Since -> 304);
    ``.codes`` lists its answers."""

    def __init__(self, www: Path) -> None:
        super().__init__(www)
        self.www = www
        self.start()

    def url(self, name: str = "") -> str:
        """The URL of file name."""
        return super().url(f"/{name}")


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    www = tmp_path / "www"
    www.mkdir()
    o = Origin(www)
    yield o
    o.stop()


def _fetch(cfg: str, url: str, out: Path, *extra: str):
    """pkgcache fetch as the server whose config is cfg, with that server's own local state
    (the digests it downloaded itself are remembered there, never in the cache)."""
    state = Path(cfg).with_suffix(".state")
    state.mkdir(mode=0o700, exist_ok=True)
    return run_cli("--config", cfg, "fetch", url, "-o", str(out), *extra,
                   env={"PKGCACHE_STATE_DIR": str(state)})


@pytest.fixture
def published(fleet, origin, tmp_path):
    """A fetched tool.tar.gz (unpinned) and pinned.bin (pinned) and pushed them."""
    data = {n: os.urandom(80_000) for n in ("tool.tar.gz", "pinned.bin")}
    for n, d in data.items():
        (origin.www / n).write_bytes(d)
    fleet.a.close()
    r = _fetch(fleet.config("a"), origin.url("tool.tar.gz"), tmp_path / "a1")
    assert r.returncode == 0, r.stderr
    digest = hashlib.sha256(data["pinned.bin"]).hexdigest()
    r = _fetch(fleet.config("a"), origin.url("pinned.bin"), tmp_path / "a2", "--sha256", digest)
    assert r.returncode == 0, r.stderr
    r = run_cli("--config", fleet.config("a"), "remote", "push")
    # both are in the store: uploaded now, or already (a pinned fetch coalesced through a lease
    # publishes while it downloads, where the store can create-if-absent: S3)
    m = re.search(r"uploaded (\d+), already there (\d+)", r.stdout)
    assert r.returncode == 0 and m and int(m[1]) + int(m[2]) == 2, r.stdout + r.stderr
    return data, digest


def test_origin_stopped_pinned_and_signed_unpinned_are_served_from_the_fleet(
        fleet, origin, published, tmp_path):
    data, digest = published
    origin.stop()
    fleet.b.close()
    r = _fetch(fleet.config("b"), origin.url("pinned.bin"), tmp_path / "b1", "--sha256", digest)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert (tmp_path / "b1").read_bytes() == data["pinned.bin"]
    r = _fetch(fleet.config("b"), origin.url("tool.tar.gz"), tmp_path / "b2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b2").read_bytes() == data["tool.tar.gz"]
    assert len(r.stderr.splitlines()) == 1 and "cached copy" in r.stderr  # not revalidated


def test_a_record_signed_by_an_untrusted_key_is_a_miss(fleet, origin, published, tmp_path):
    from cache_core.storage.remote.records import generate_keypair

    data, digest = published
    origin.stop()
    _, other = generate_keypair("someone-else")
    fleet.member("c", trusted_public_keys=[other]).close()
    r = _fetch(fleet.config("c"), origin.url("tool.tar.gz"), tmp_path / "c1")
    assert r.returncode == 5 and not (tmp_path / "c1").exists(), r.stderr
    # content by digest needs no record: the pinned fetch still works for this member
    r = _fetch(fleet.config("c"), origin.url("pinned.bin"), tmp_path / "c2", "--sha256", digest)
    assert r.returncode == 0 and (tmp_path / "c2").read_bytes() == data["pinned.bin"]


def test_an_unsigned_record_is_a_miss(fleet, origin, tmp_path):
    (origin.www / "u.bin").write_bytes(os.urandom(5000))
    w = fleet.member("w", mode="rw")  # a writer without a signing key: records go up unsigned
    w.close()
    assert _fetch(fleet.config("w"), origin.url("u.bin"), tmp_path / "w1").returncode == 0
    r = run_cli("--config", fleet.config("w"), "remote", "push")
    assert r.returncode == 0 and "uploaded 1" in r.stdout, r.stdout + r.stderr
    origin.stop()
    fleet.b.close()
    r = _fetch(fleet.config("b"), origin.url("u.bin"), tmp_path / "b1")
    assert r.returncode == 5 and not (tmp_path / "b1").exists()


def test_origin_up_the_fleet_copy_is_revalidated_not_downloaded(fleet, origin, published,
                                                                tmp_path):
    data, _ = published
    fleet.b.close()
    before = list(origin.codes)
    r = _fetch(fleet.config("b"), origin.url("tool.tar.gz"), tmp_path / "b1")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert (tmp_path / "b1").read_bytes() == data["tool.tar.gz"]
    assert origin.codes[len(before):] == [304]
    # the origin changed the file: B downloads the new one, never serves the fleet's old copy
    new = os.urandom(60_000)
    (origin.www / "tool.tar.gz").write_bytes(new)
    os.utime(origin.www / "tool.tar.gz", (2_000_000_000, 2_000_000_000))
    fleet.member("d").close()
    r = _fetch(fleet.config("d"), origin.url("tool.tar.gz"), tmp_path / "d1")
    assert r.returncode == 0 and (tmp_path / "d1").read_bytes() == new


def test_a_fleet_vouch_is_bound_to_its_key(fleet, origin, published, tmp_path):
    """B remembers the fleet's digest in its own state, bound to A's key: once B no longer
    trusts that key, the copy it took is not served with the origin down."""
    from cache_core.storage.remote.records import generate_keypair

    data, _ = published
    origin.stop()
    fleet.b.close()
    r = _fetch(fleet.config("b"), origin.url("tool.tar.gz"), tmp_path / "b1")
    assert r.returncode == 0 and (tmp_path / "b1").read_bytes() == data["tool.tar.gz"]
    _, other = generate_keypair("someone-else")
    fleet.member("b", trusted_public_keys=[other]).close()  # B's config now trusts another key
    r = _fetch(fleet.config("b"), origin.url("tool.tar.gz"), tmp_path / "b2")
    assert r.returncode == 5 and not (tmp_path / "b2").exists(), r.stderr


def test_a_trust_unsigned_remote_never_vouches(fleet, origin, tmp_path):
    """A record accepted only because the remote says ``trust: unsigned`` is cached but never
    remembered as this machine's word: with the origin down its copy is not served."""
    (origin.www / "u.bin").write_bytes(os.urandom(5000))
    w = fleet.member("w", mode="rw")  # a writer without a signing key: records go up unsigned
    w.close()
    assert _fetch(fleet.config("w"), origin.url("u.bin"), tmp_path / "w1").returncode == 0
    r = run_cli("--config", fleet.config("w"), "remote", "push")
    assert r.returncode == 0 and "uploaded 1" in r.stdout, r.stdout + r.stderr
    fleet.member("u", trust="unsigned").close()
    # origin up: the copy is fetched again from the origin (never trusted on the record alone)
    r = _fetch(fleet.config("u"), origin.url("u.bin"), tmp_path / "u1")
    assert r.returncode == 0 and (tmp_path / "u1").read_bytes() == (origin.www / "u.bin").read_bytes()
    fleet.member("v", trust="unsigned").close()
    origin.stop()
    r = _fetch(fleet.config("v"), origin.url("u.bin"), tmp_path / "v1")
    assert r.returncode == 5 and not (tmp_path / "v1").exists(), r.stderr
