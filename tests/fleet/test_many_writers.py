"""Many writers: 8 ``rw`` members publish different files of one project at the same instant and
a reader sees every one of them (``piplist:`` is a shared set of signed versions, created only if
absent: O_EXCL on file://, COPY + Overwrite: F on nginx WebDAV, If-None-Match: * on moto S3).

Each writer is its own process with its own cache, config and state dir; all publish first, then
upload at once (a file barrier). Before shared sets, each writer merged the remote listing it read
(empty) with its own and the last upload won: 1 entry of 8.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache_core.storage.remote import gc
from tests.support import REPO
from tests.support.pip import make_wheel
from tests.support.remote import dir_store, file_store, s3_store

pytestmark = pytest.mark.slow

WRITERS = 8

WRITER = r"""
import json, os, sys, time
from cache_core import PackageCache
from hooks.pip.fleet import publish
from hooks.pip.store import Artifact

cfg, wheel, go, ready = sys.argv[1:5]
name = os.path.basename(wheel)
with PackageCache.from_config(cfg) as cache:
    digest = cache.put(f"wheel:{name}", wheel)
    art = Artifact(name="proj", version=name.split("-")[1], url="https://i.example/" + name,
                   filename=name, sha256=digest, requires_python=None, yanked=False,
                   is_direct=False)
    publish(cache, [art])
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    out = cache.remote.tier.drain(wait=True)
print(json.dumps(out))
"""


@pytest.fixture(params=["file", "nginx", "s3"])
def wstore(request: pytest.FixtureRequest, tmp_path: Path):
    """A store that can create-if-absent: file://, nginx WebDAV with COPY, moto S3 (SigV4)."""
    if request.param == "file":
        return file_store(tmp_path / "shared")
    if request.param == "nginx":
        ng = request.getfixturevalue("nginx")
        return dir_store("nginx", ng.root / "dav", ng.url("dav"))
    return s3_store(request.getfixturevalue("moto_server"), "w")


def _writers_at_once(make_cache, store, keypair, tmp_path: Path, tag: str, versions: list[str]
                     ) -> list[str]:
    """WRITERS members each publish proj-<version> and upload at the same instant; the names."""
    go = tmp_path / f"go-{tag}"
    procs, names = [], []
    for i, version in enumerate(versions):
        member = f"{tag}{i}"
        make_cache(member, [store.remote(mode="rw", signing_key_file=keypair[0],
                                         trusted_public_keys=[keypair[1]])]).close()
        state = tmp_path / f"{member}.state"
        state.mkdir(mode=0o700)
        dist = tmp_path / f"{member}-dist"
        dist.mkdir()
        wheel = make_wheel(dist, "proj", version)
        names.append(wheel.name)
        env = dict(os.environ, PKGCACHE_STATE_DIR=str(state), PKGCACHE_REMOTE_UPLOAD="manual",
                   PYTHONPATH=str(REPO))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / f"{member}.yaml"), str(wheel), str(go),
             str(tmp_path / f"ready-{member}")], env=env, cwd=str(tmp_path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    end = time.monotonic() + 120
    while not all((tmp_path / f"ready-{tag}{i}").exists() for i in range(len(versions))):
        assert time.monotonic() < end and all(p.poll() is None for p in procs), \
            [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.touch()  # every writer uploads now
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["failed"] == 0 and result["pending"] == 0, (result, err)
    return names


def _listing(make_cache, store, keypair, tmp_path: Path, name: str) -> set[str]:
    from hooks.pip.fleet import read_listing

    os.environ["PKGCACHE_STATE_DIR"] = str(tmp_path / f"{name}.state")
    os.makedirs(os.environ["PKGCACHE_STATE_DIR"], mode=0o700, exist_ok=True)
    reader = make_cache(name, [store.remote(trusted_public_keys=[keypair[1]])])
    try:
        return set(read_listing(reader, "proj"))
    finally:
        reader.close()


def test_eight_writers_at_the_same_instant_lose_no_entry(wstore, make_cache, keypair, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path))
    names = _writers_at_once(make_cache, wstore, keypair, tmp_path, "w",
                             [f"1.{i}" for i in range(WRITERS)])
    assert _listing(make_cache, wstore, keypair, tmp_path, "reader") == set(names)
    # a second round on top of the first: the union grows, nothing is dropped
    more = _writers_at_once(make_cache, wstore, keypair, tmp_path, "x",
                            [f"2.{i}" for i in range(3)])
    assert _listing(make_cache, wstore, keypair, tmp_path, "reader2") == set(names) | set(more)


def test_gc_keeps_the_shared_sets_head_and_what_it_names(make_cache, keypair, tmp_path,
                                                        monkeypatch):
    """``remote gc`` keeps the newest versions of a shared set (and the objects they name) and
    deletes old versions far below the head; a reader still sees every entry."""
    from cache_core.storage.remote.base import record_name
    from tests.support.cli import run_cli

    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path))
    store = file_store(tmp_path / "shared")
    w = make_cache("solo", [store.remote(mode="rw", signing_key_file=keypair[0],
                                         trusted_public_keys=[keypair[1]])])
    t = w.remote.tier
    n = 24
    for i in range(n):  # one version each
        assert w.remote.add_to_set("set:demo", [{"i": i}])
        assert t.drain(wait=True)["failed"] == 0
    w.close()
    ac = tmp_path / "shared" / "ac"
    assert (ac / record_name(f"set:demo#{n}")[3:]).exists()
    old = time.time() - 7200
    for d in ("cas", "ac"):
        for f in (tmp_path / "shared" / d).iterdir():
            os.utime(f, (old, old))
    r = run_cli("--config", str(tmp_path / "solo.yaml"), "remote", "gc", "--grace", "3600s",
                "--max-size", "0", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)[0]
    gone = {f"set:demo#{m}" for m in range(1, n - gc.SET_KEEP)}
    assert rep["deleted_records"] == len(gone), rep
    for m in range(1, n + 1):
        assert (ac / record_name(f"set:demo#{m}")[3:]).exists() == (f"set:demo#{m}" not in gone)
    reader = make_cache("r", [store.remote(trusted_public_keys=[keypair[1]])])
    items, signer = reader.remote.read_set("set:demo")
    assert sorted(x["i"] for x in items) == list(range(n)) and signer == keypair[1]
    st = reader.stats()["remote"]
    assert (st["records"], st["hits"]) == (1, 0)  # a set read is not an object hit
    assert reader.remote.pull(None, all_keys=True)["missing"] == 0  # versions: not keys
    assert not [e.key for e in reader.keys("set:")]
    reader.close()


def test_a_replayed_head_is_refused_and_a_refilled_store_is_not(make_cache, keypair, tmp_path,
                                                                monkeypatch):
    """A reader that saw version 2 refuses version 1 served again (the store hid the head); a
    store emptied and filled again (version 1 with a newer creation time) is read."""
    import shutil

    from cache_core.storage.remote.base import record_name

    (tmp_path / "state").mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path / "state"))
    store = file_store(tmp_path / "shared")
    w = make_cache("w", [store.remote(mode="rw", signing_key_file=keypair[0],
                                      trusted_public_keys=[keypair[1]])])
    reader = make_cache("r", [store.remote(trusted_public_keys=[keypair[1]])])
    ac = tmp_path / "shared" / "ac"
    for i in (1, 2):
        w.remote.add_to_set("set:r", [{"i": i}])
        assert w.remote.tier.drain(wait=True)["failed"] == 0
        if i == 1:
            v1, hint1 = (ac / record_name("set:r#1")[3:]).read_bytes(), \
                (ac / record_name("set:r")[3:]).read_bytes()
    assert len(reader.remote.read_set("set:r")[0]) == 2
    (ac / record_name("set:r#2")[3:]).unlink()  # the store hides the head
    (ac / record_name("set:r")[3:]).write_bytes(hint1)
    assert (ac / record_name("set:r#1")[3:]).read_bytes() == v1
    assert reader.remote.read_set("set:r") == ([], None)
    assert reader.stats()["remote"]["rejected_records"] >= 1
    shutil.rmtree(tmp_path / "shared")  # emptied; a writer starts again
    (tmp_path / "shared").mkdir()
    w2 = make_cache("w2", [store.remote(mode="rw", signing_key_file=keypair[0],
                                        trusted_public_keys=[keypair[1]])])
    w2.remote.add_to_set("set:r", [{"i": 3}])
    assert w2.remote.tier.drain(wait=True)["failed"] == 0
    assert reader.remote.read_set("set:r")[0] == [{"i": 3}]
    for c in (w, w2, reader):
        c.close()
