"""The remote tier against real stores on 127.0.0.1: nginx WebDAV, moto S3 (SigV4 enforced) and
a shared directory. Put on one cache, get on another empty one with the origin gone; HEAD before
PUT; the spool survives kill -9 of the uploader."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache_core.storage.remote.base import record_name
from tests.support import REPO

KEY = "deb:hello_2.10-3_amd64.deb"


def blob(tmp_path: Path, n: int = 300_000, name: str = "blob.deb") -> tuple[Path, bytes]:
    data = os.urandom(n)
    p = tmp_path / name
    p.write_bytes(data)
    return p, data


def test_put_on_one_cache_get_on_an_empty_one_with_the_origin_gone(store, make_cache, keypair,
                                                                   tmp_path):
    src, data = blob(tmp_path)
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    digest = a.put(KEY, str(src))
    assert a.remote.tier.spool_count() == 1
    r = a.remote.tier.drain()
    assert r == {"uploaded": 1, "skipped": 0, "failed": 0, "pending": 0}
    assert store.read(f"cas/{digest}") == data
    src.unlink()  # the origin is gone, and so is cache A
    a.close()
    shutil.rmtree(tmp_path / "a")

    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    path = b.get(KEY)
    assert path is not None and Path(path).read_bytes() == data
    assert b.lookup(KEY).digest == digest and b.lookup(KEY).kind == "deb"
    st = b.stats()["remote"]
    assert (st["hits"], st["bytes_in"], st["degraded"]) == (1, len(data), False)
    assert b.get(KEY) == path  # now a local hit: the remote is not asked again
    assert b.stats()["remote"]["hits"] == 1

    # By digest, no record needed (the caller holds the digest from a signed source).
    c = make_cache("c", [store.remote()])  # trusts no key
    assert c.get(KEY) is None  # the record is signed, but not by a key c trusts
    got = c.remote.get_object(digest, key="deb:other-name.deb")
    assert got is not None and Path(got).read_bytes() == data
    assert c.lookup("deb:other-name.deb").digest == digest


def test_head_before_put_skips_an_object_already_there(store, make_cache, keypair, tmp_path, request):
    src, data = blob(tmp_path)
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    digest = a.put(KEY, str(src))
    assert a.remote.tier.drain()["uploaded"] == 1
    before = os.stat(tmp_path / "shared" / "cas" / digest).st_mtime_ns if store.kind == "file" else 0

    a2 = make_cache("a2", [store.remote(mode="rw", signing_key_file=keypair[0])])
    a2.put(KEY, str(src))
    r = a2.remote.tier.drain()
    assert (r["uploaded"], r["skipped"], r["failed"]) == (0, 1, 0)
    assert a2.stats()["remote"]["upload_skipped"] == 1
    if store.kind == "nginx":
        ng = request.getfixturevalue("nginx")
        # a2's HEAD before it skips, and again after its record (a gc may delete in between)
        assert ng.requests("PUT", "/cas/") == 1 and ng.requests("HEAD", "/cas/") == 3
    if store.kind == "file":
        assert os.stat(tmp_path / "shared" / "cas" / digest).st_mtime_ns == before
    assert store.read(f"cas/{digest}") == data


def test_spool_survives_kill_9_of_the_uploader_and_drains_later(store, make_cache, keypair,
                                                                tmp_path):
    src, data = blob(tmp_path, 24 * 1024 * 1024)
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    digest = a.put(KEY, str(src))
    t = a.remote.tier
    assert t.spool_count() == 1
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "cache_core.storage.remote.uploader",
                             "--cache-dir", str(a.root), "--config", str(tmp_path / "a.yaml")],
                            env=env)
    end = time.monotonic() + 20
    while not t.uploader_running() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.002)
    assert proc.poll() is None, "the uploader finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not t.uploader_running()  # the lock died with it
    remote_copy = store.read(f"cas/{digest}")
    # Never a partial object under the content's name; the entry stays until the upload is done.
    assert remote_copy in (None, data)
    if remote_copy is None:
        assert t.spool_count() == 1
    r = t.drain()
    assert (r["failed"], r["pending"]) == (0, 0) and t.spool_count() == 0
    assert store.read(f"cas/{digest}") == data
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    path = b.get(KEY)
    assert path is not None and Path(path).read_bytes() == data


def test_background_uploader_drains_the_spool_by_itself(store, make_cache, keypair, tmp_path,
                                                        monkeypatch):
    monkeypatch.delenv("PKGCACHE_REMOTE_UPLOAD")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    src, data = blob(tmp_path)
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    started = time.monotonic()
    digest = a.put(KEY, str(src))
    assert time.monotonic() - started < 2  # the put never waits for the upload
    end = time.monotonic() + 30
    while time.monotonic() < end and (store.read(f"cas/{digest}") is None
                                      or store.read(record_name(KEY)) is None
                                      or a.remote.tier.spool_count()):
        time.sleep(0.1)
    assert store.read(f"cas/{digest}") == data
    assert a.remote.tier.spool_count() == 0


def test_push_all_and_pull_keys_through_the_cli(store, make_cache, keypair, tmp_path):
    from tests.support.cli import run_cli

    srcs = [blob(tmp_path, 1000 + i, f"f{i}") for i in range(3)]
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    for i, (p, _) in enumerate(srcs):
        a.put(f"wheel:pkg{i}-1.0-py3-none-any.whl", str(p))
    a.close()
    # the spool already holds them; --all queues them again: HEAD makes the second pass cheap
    r = run_cli("--config", str(tmp_path / "a.yaml"), "remote", "push", "--all")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("uploaded 3,") and r.stderr == ""
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    b.close()
    keys = [f"wheel:pkg{i}-1.0-py3-none-any.whl" for i in range(3)]
    r = run_cli("--config", str(tmp_path / "b.yaml"), "remote", "pull", *keys, "wheel:absent")
    assert r.returncode == 1 and "pulled 3, already here 0, not found 1" in r.stdout
    if store.kind != "nginx":  # listable stores: pull --all into a third cache
        make_cache("c", [store.remote(trusted_public_keys=[keypair[1]])]).close()
        r = run_cli("--config", str(tmp_path / "c.yaml"), "remote", "pull", "--all")
        assert r.returncode == 0 and "pulled 3," in r.stdout, r.stdout + r.stderr
    r = run_cli("--config", str(tmp_path / "b.yaml"), "remote", "status", "--json")
    assert r.returncode == 0 and '"hits": 3' in r.stdout


def test_put_record_and_get_record_for_the_fleet_drivers(store, make_cache, keypair, tmp_path):
    src, _ = blob(tmp_path, 5000)
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    digest = a.put("wheel:demo-1.0-py3-none-any.whl", str(src), meta={"etag": "x1"})
    a.remote.tier.drain()  # the put's own queue entry
    assert a.remote.put_record("wheel:demo-1.0-py3-none-any.whl") is True
    assert a.remote.tier.drain()["pending"] == 0
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    rec = b.remote.get_record("wheel:demo-1.0-py3-none-any.whl")
    assert rec is not None and (rec.sha256, rec.size, rec.kind, rec.meta) == (
        digest, 5000, "wheel", {"etag": "x1"})
    assert b.remote.get_record("wheel:absent-1.0-py3-none-any.whl") is None
    untrusting = make_cache("u", [store.remote()])
    assert untrusting.remote.get_record("wheel:demo-1.0-py3-none-any.whl") is None


def test_the_upload_queue_is_bounded(store, make_cache, keypair, tmp_path):
    a = make_cache("a", [store.remote(mode="rw", spool_max=2)])
    for i in range(4):
        src, _ = blob(tmp_path, 100 + i, f"q{i}")
        a.put(f"deb:q{i}.deb", str(src))
    t = a.remote.tier
    assert t.spool_count() == 2 and a.stats()["remote"]["dropped"] == 2
    assert t.drain()["uploaded"] == 2
    assert a.remote.push([], all_keys=True)["uploaded"] == 2  # the dropped ones catch up


def test_s3_if_none_match_never_overwrites_content(moto_server):
    import hashlib
    import io

    from cache_core.storage.remote.base import make_backend
    from cache_core.storage.remote.config import parse_remotes

    spec = parse_remotes([moto_server.remote(url=f"s3://fleet/inm{os.getpid()}", mode="rw")],
                         "test")[0]
    b = make_backend(spec)
    data = b"genuine" * 1000
    name = f"cas/{hashlib.sha256(data).hexdigest()}"
    end = time.monotonic() + 10
    b.put(name, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest(), end,
          if_none_match=True)
    other = b"x" * len(data)
    b.put(name, io.BytesIO(other), len(other), hashlib.sha256(other).hexdigest(), end,
          if_none_match=True)  # 412 from the store: not an error, and nothing replaced
    assert b"".join(b.get(name, end)) == data


def test_s3_create_if_absent_has_one_winner_among_writers_at_once(moto_server):
    """The tests' S3 answers like S3: of many PUTs with If-None-Match: * of one key sent at
    once, exactly one creates it (tests.support.moto_atomic; plain moto lets several win)."""
    import threading

    from cache_core.storage.remote.base import make_backend
    from cache_core.storage.remote.config import parse_remotes

    spec = parse_remotes([moto_server.remote(url=f"s3://fleet/once{os.getpid()}", mode="rw")],
                         "test")[0]
    writers = 12
    for trial in range(40):
        gate = threading.Barrier(writers)
        won: list[bool | None] = []

        def create(i: int, trial: int = trial, gate: threading.Barrier = gate,
                   won: list[bool | None] = won) -> None:
            b = make_backend(spec)
            gate.wait()
            won.append(b.create_lease(f"lease/t{trial}", b"w%d" % i, time.monotonic() + 30))

        threads = [threading.Thread(target=create, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won, key=str) == [False] * (writers - 1) + [True], (trial, won)


def test_a_file_store_read_ends_at_the_object_deadline(tmp_path):
    """The deadline is checked per chunk: a slow share (NFS) ends at the object budget."""
    from cache_core.errors import RemoteTimeout
    from cache_core.storage.remote.base import make_backend
    from cache_core.storage.remote.config import parse_remotes
    from tests.support.remote import file_store

    store = file_store(tmp_path / "shared")
    data = os.urandom(4 << 20)  # four chunks
    digest = hashlib.sha256(data).hexdigest()
    store.write(f"cas/{digest}", data)
    backend = make_backend(parse_remotes([store.remote()], "test")[0])
    body = backend.get(f"cas/{digest}", time.monotonic() + 0.3)
    got = [next(body)]
    time.sleep(0.4)  # the consumer (or the share) is slow: the budget runs out
    with pytest.raises(RemoteTimeout):
        got += list(body)
    assert len(got) == 1
    assert b"".join(backend.get(f"cas/{digest}", time.monotonic() + 30)) == data
