"""apt's lists on the fleet (issues 21 and 22): index files apt already had join the fleet after
the next `apt-get update`, only Release files apt accepted are kept and published, and an older
or long-unconfirmed Release file from the store is never served (rollback). Real apt-get and gpgv
against a signed repository on 127.0.0.1, nginx WebDAV as the store, one root per member."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time

import pytest
import yaml

from cache_core.storage.remote.base import record_name

PKGS = ("alpha", "gamma")


def _ok(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _apt_lines(res: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith(("W:", "E:"))]


def _set_option(server, name: str, value: object) -> None:
    cfg = yaml.safe_load(server.config.read_text())
    cfg["performance"]["cache"][name] = value
    server.config.write_text(yaml.safe_dump(cfg))


def _lists_release(server) -> bytes:
    (path,) = (server.root / "var/lib/apt/lists").glob("*_InRelease")
    return path.read_bytes()


def _enabled_after_update(fleet, name: str = "a"):
    """A member whose apt had current lists before pkgcache was enabled (method + hooks)."""
    a = fleet.server(name, method=False)
    _ok(a.apt("update"))
    a.install_method()
    a.install_snippet()
    return a


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "xz"])
def test_indexes_on_disk_before_pkgcache_join_the_fleet(fleet, compress: bool) -> None:
    if compress:
        fleet.repo.compress = True
        fleet.repo.publish()
    a = _enabled_after_update(fleet)
    fleet.origin.reset()
    res = a.apt("update")
    _ok(res)
    assert res.stderr == "", res.stderr
    # apt's lists were current: only the Release files came from the origin (issue 21's case)
    assert all(r.rsplit("/", 1)[-1] in ("InRelease", "Release", "Release.gpg")
               for r in fleet.origin.requests), fleet.origin.requests
    packages = (fleet.repo.path / "Packages").read_bytes()
    assert a.cache().exists(f"sha256:{_sha(packages)}")  # apt's lists file, by its digest
    _ok(a.apt("install", *PKGS))
    res = a.drain()
    assert res["failed"] == 0, res
    store = fleet.nginx.root / "store" / "cas"
    assert (store / _sha(packages)).read_bytes() == packages
    (store / _sha(packages)).unlink()  # e.g. a store rebuilt since: `push --all` catches up
    res = a.pkgcache("remote", "push", "--all")
    assert res.returncode == 0, res.stderr
    assert (store / _sha(packages)).read_bytes() == packages
    # B: its own root, cache, state and lists; the origin is gone
    fleet.stop_origin()
    fleet.origin.reset()
    b = fleet.server("b")
    b.install_snippet()
    res = b.apt("update")
    _ok(res)
    assert _apt_lines(res) == [], res.stdout + res.stderr
    assert "serving the cached InRelease" in res.stderr
    assert res.stderr.count("pkgcache:") == 1, res.stderr  # Packages.xz: apt falls back silently
    assert re.search(r"^Get:\d+ \S+ \./ Packages ", res.stdout, re.M), res.stdout
    _ok(b.apt("install", *PKGS))
    assert {n: b.installed(n) for n in ("alpha", "beta", "gamma")} == \
        {"alpha": "1.0-1", "beta": "2:1.0-1", "gamma": "0.5"}
    assert fleet.origin.requests == []
    assert (b.root / "var/lib/pkgcache/releases.json").is_file()  # B's own state dir


def test_an_index_held_compressed_is_not_stored_again_uncompressed(fleet) -> None:
    # the method kept the Packages.xz apt downloaded; the post-update hook does not copy and
    # hash apt's decompressed Packages into the cache as well (issue 24: a member's update)
    fleet.repo.compress = True
    fleet.repo.publish()
    a = fleet.server("a")
    a.install_snippet()
    _ok(a.apt("update"))
    packages = (fleet.repo.path / "Packages").read_bytes()
    xz = (fleet.repo.path / "Packages.xz").read_bytes()
    cache = a.cache()
    assert cache.exists(f"sha256:{_sha(xz)}") and not cache.exists(f"sha256:{_sha(packages)}")
    # another member, the origin gone: the fleet's Packages.xz serves its update
    _ok(a.apt("install", *PKGS))
    assert a.drain()["failed"] == 0
    fleet.stop_origin()
    b = fleet.server("b")
    b.install_snippet()
    res = b.apt("update")
    _ok(res)
    assert _apt_lines(res) == [], res.stdout + res.stderr
    _ok(b.apt("install", *PKGS))


def test_warm_update_stores_nothing_new_and_stays_quiet(fleet) -> None:
    a = _enabled_after_update(fleet)
    _ok(a.apt("update"))
    before = {e.key for e in a.cache().keys("")}
    res = a.apt("update")
    _ok(res)
    assert res.stderr == ""
    assert {e.key for e in a.cache().keys("")} == before


@pytest.mark.parametrize("how", ["stale", "unknown-key", "junk"])
def test_release_apt_refused_is_never_stored_or_published(fleet, rogue_key, how: str) -> None:
    """A hostile (or broken) origin reply to a rw member: its apt refuses it, so neither the
    member's cache nor the store ever holds it; the fleet keeps the last one apt accepted."""
    a = fleet.server("a")
    a.install_snippet()
    _ok(a.apt("update"))
    _ok(a.apt("install", *PKGS))
    good = (fleet.repo.path / "InRelease").read_bytes()
    if how == "stale":
        fleet.repo.valid_until = "Sat, 01 Jan 2000 00:00:00 UTC"
    elif how == "unknown-key":
        fleet.repo.key = rogue_key
    fleet.repo.add("gamma", "0.6", size=6000)
    fleet.repo.publish()
    if how == "junk":
        (fleet.repo.path / "InRelease").write_bytes(os.urandom(700))
    bad = (fleet.repo.path / "InRelease").read_bytes()
    res = a.apt("update")
    assert res.returncode != 0 or _apt_lines(res), res.stdout  # apt on A refused it
    assert _lists_release(a) == good
    assert a.drain()["failed"] == 0
    key = next(e.key for e in a.cache().keys("") if e.key.endswith("/InRelease"))
    assert a.cache().lookup(key).digest.endswith(_sha(good))
    store = fleet.nginx.root / "store"
    assert not (store / "cas" / _sha(bad)).exists()
    assert _sha(bad).encode() not in (store / record_name(key)).read_bytes()
    # a reader with the origin gone gets the good one, and apt takes it
    fleet.stop_origin()
    b = fleet.server("b")
    res = b.apt("update")
    _ok(res)
    assert "serving the cached InRelease" in res.stderr
    assert _lists_release(b) == good
    _ok(b.apt("install", "gamma"))
    assert b.installed("gamma") == "0.5"


def _replay_world(fleet, valid_until: str | None):
    """A keeps v1 (gamma 0.5) then v2 (gamma 0.6) in the store; returns (a, key, v1 record,
    v1 InRelease, v2 InRelease). Valid-Until (an hour ahead) keeps v1 acceptable to apt."""
    if valid_until:
        fleet.repo.valid_until = valid_until
        fleet.repo.publish()
    a = fleet.server("a")
    a.install_snippet()
    _ok(a.apt("update"))
    assert a.drain()["failed"] == 0
    key = next(e.key for e in a.cache().keys("") if e.key.endswith("/InRelease"))
    rec = fleet.nginx.root / "store" / record_name(key)
    v1_record, v1 = rec.read_bytes(), (fleet.repo.path / "InRelease").read_bytes()
    return a, key, rec, v1_record, v1


def _publish_v2(fleet, a) -> bytes:
    time.sleep(1.1)  # a newer Date: (whole seconds)
    fleet.repo.add("gamma", "0.6", size=6000)
    fleet.repo.publish()
    _ok(a.apt("update"))
    _ok(a.apt("install", "gamma"))
    assert a.drain()["failed"] == 0
    return (fleet.repo.path / "InRelease").read_bytes()


VALID = ["Sat, 01 Jan 2050 00:00:00 UTC"]


@pytest.mark.parametrize("valid_until", [None, VALID[0]], ids=["no-valid-until", "valid-until"])
def test_replayed_old_release_refused_by_a_member_that_saw_newer(fleet, valid_until) -> None:
    a, key, rec, v1_record, v1 = _replay_world(fleet, valid_until)
    v2 = _publish_v2(fleet, a)
    b = fleet.server("b")
    b.install_snippet()
    _ok(b.apt("update"))  # origin up: B sees v2
    assert _lists_release(b) == v2
    rec.write_bytes(v1_record)  # the store puts the old signed record back
    fleet.stop_origin()
    for p in (b.cache_dir,):  # B was rebuilt with its state kept (apt lists and state dir)
        subprocess.run(["rm", "-rf", str(p)], check=True)
    res = b.apt("update")
    assert "is not served (older than the one this machine has seen)" in res.stderr, res.stderr
    assert "serving the cached" not in res.stderr
    assert _lists_release(b) == v2  # apt keeps its v2 lists
    assert b.apt("install", "gamma").returncode == 0 and b.installed("gamma") == "0.6"


@pytest.mark.parametrize("valid_until", [None, VALID[0]], ids=["no-valid-until", "valid-until"])
def test_replayed_old_release_refused_by_a_new_member_after_max_age(fleet, valid_until) -> None:
    """A rebuilt member knows nothing: the record's confirmation time (signed) bounds the
    replay. v1 was last confirmed > max age ago; v2 (the control) just now."""
    a, key, rec, v1_record, v1 = _replay_world(fleet, valid_until)
    max_age = 12.0
    time.sleep(max_age + 1)
    v2 = _publish_v2(fleet, a)
    fleet.stop_origin()
    b = fleet.server("b")
    _set_option(b, "apt_release_max_age_days", max_age / 86400)
    t0 = time.time()
    res = b.apt("update")  # control: the current record is served
    _ok(res)
    assert time.time() - t0 < max_age, "too slow for the control; raise max_age"
    assert _lists_release(b) == v2
    c = fleet.server("c")
    _set_option(c, "apt_release_max_age_days", max_age / 86400)
    rec.write_bytes(v1_record)
    res = c.apt("update")
    # refused by the max age, or (these members share the host's state dir, which remembers
    # b's newer record) by the record's creation time: either way never served
    assert re.search(r"InRelease of \S+ is not served \(last confirmed|older than a record "
                     r"already seen", res.stderr), res.stderr
    assert not list((c.root / "var/lib/apt/lists").glob("*_InRelease"))
    assert c.apt("install", "gamma").returncode != 0 and c.installed("gamma") is None


def test_old_release_replayed_by_the_origin_is_never_stored_or_published(fleet) -> None:
    """An origin (or whoever answers for it) replays last week's signed InRelease to a rw
    member: whatever its apt makes of it, the cache and the store keep the newest one."""
    a = fleet.server("a")
    a.install_snippet()
    _ok(a.apt("update"))
    names = ("InRelease", "Release", "Release.gpg", "Packages")
    v1 = {n: (fleet.repo.path / n).read_bytes() for n in names}
    v2 = _publish_v2(fleet, a)
    key = next(e.key for e in a.cache().keys("") if e.key.endswith("/InRelease"))
    for n, data in v1.items():  # the replay, with fresh mtimes (no 304)
        (fleet.repo.path / n).write_bytes(data)
    a.apt("update")
    assert a.drain()["failed"] == 0
    assert a.cache().lookup(key).digest.endswith(_sha(v2))
    rec = (fleet.nginx.root / "store" / record_name(key)).read_bytes()
    assert _sha(v2).encode() in rec and _sha(v1["InRelease"]).encode() not in rec
