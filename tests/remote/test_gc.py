"""``pkgcache remote gc`` and ``remote status --store`` against real stores (file://, S3 with
SigV4; nginx WebDAV cannot list: refused)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time

import pytest

from cache_core.storage.remote import gc
from cache_core.storage.remote.base import record_name
from cache_core.storage.remote.records import Record, decode, encode, load_secret_key
from tests.support.cli import popen_cli, run_cli
from tests.support.remote import file_store, s3_store, write_keypair


@pytest.fixture(params=["file", "s3"])
def lstore(request, tmp_path):
    """A store that can list."""
    if request.param == "file":
        return file_store(tmp_path / "shared")
    return s3_store(request.getfixturevalue("moto_server"), "gc")


def _age(store, tmp_path, seconds: float = 7200) -> float:
    """Make everything in the store old; the grace to pass to gc."""
    if store.kind == "file":
        for d in ("cas", "ac"):
            for n in os.listdir(tmp_path / "shared" / d) if (tmp_path / "shared" / d).exists() else ():
                t = time.time() - seconds
                os.utime(tmp_path / "shared" / d / n, (t, t))
        return 3600
    time.sleep(2.5)  # S3's Last-Modified cannot be set: wait past a short grace
    return 2


def _fill(name, make_cache, store, tmp_path, key_file, pubs, n):
    """A rw member that uploads n keyed objects; {key: bytes}."""
    c = make_cache(name, [store.remote(mode="rw", signing_key_file=key_file,
                                       trusted_public_keys=pubs)])
    out = {}
    for i in range(n):
        f = tmp_path / f"{name}-{i}"
        f.write_bytes(f"{name} object {i}\n".encode() * (200 + i))
        c.put(f"name:{name}{i}", str(f))
        out[f"name:{name}{i}"] = f.read_bytes()
    r = c.remote.push(None, all_keys=True)
    assert r["failed"] == 0, r
    return out


def _orphan(store, i: int) -> tuple[str, int]:
    data = f"orphan {i}\n".encode() * (300 + i)
    h = hashlib.sha256(data).hexdigest()
    store.write(f"cas/{h}", data)
    return h, len(data)


@pytest.fixture
def fleet(lstore, make_cache, tmp_path):
    """Two members (two keys) filled a store; orphans and a dangling record added."""
    pa = write_keypair(tmp_path / "a.key", "fleet-a")
    pb = write_keypair(tmp_path / "b.key", "fleet-b")
    pubs = [pa, pb]
    live = _fill("a", make_cache, lstore, tmp_path, str(tmp_path / "a.key"), pubs, 3)
    live |= _fill("b", make_cache, lstore, tmp_path, str(tmp_path / "b.key"), pubs, 3)
    orphans = dict(_orphan(lstore, i) for i in range(5))
    dangling = encode(Record("name:dangling", "ef" * 32, 5, "name", {}, 1.0),
                      load_secret_key(str(tmp_path / "a.key")))
    lstore.write(record_name("name:dangling"), dangling)
    return {"store": lstore, "pubs": pubs, "live": live, "orphans": orphans}


def _count(backend) -> int:
    """Objects in cas/ (moto's listing may answer 500 while the gc writes: asked again)."""
    from cache_core.errors import RemoteError

    for _ in range(20):
        try:
            return sum(1 for _ in backend.entries("cas"))
        except RemoteError:
            time.sleep(0.05)
    return sum(1 for _ in backend.entries("cas"))


def _expire_gc_lease(store) -> None:
    """Make a (killed) gc's lease on the store as it is once expired, if there is one."""
    if store.read("lease/gc") is not None:
        store.write("lease/gc", json.dumps({"expires": time.time() - 1, "token": "killed",
                                             "holder": "killed:1"}).encode())


def _check_readers(make_cache, store, pubs, live, name):
    c = make_cache(name, [store.remote(trusted_public_keys=pubs)])
    for k, body in live.items():
        path = c.get(k)
        assert path is not None and open(path, "rb").read() == body, k


def test_gc_keeps_live_records_and_deletes_the_rest(fleet, make_cache, tmp_path):
    store, live, orphans = fleet["store"], fleet["live"], fleet["orphans"]
    grace = _age(store, tmp_path)
    cfg = str(tmp_path / "a.yaml")
    r = run_cli("--config", cfg, "remote", "status", "--store", "--json")
    st = json.loads(r.stdout)[0]
    assert st["objects"] == 11 and st["records"] == 7, st
    r = run_cli("--config", cfg, "remote", "gc", "--grace", f"{grace}s", "--max-size", "0",
                "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("would delete cas/") == 5 and "would delete ac/" in r.stdout
    assert all(store.read(f"cas/{h}") is not None for h in orphans)  # dry run: nothing gone
    # a limit the orphans' deletion reaches part way: the oldest go first
    total = st["bytes"]
    first = min(orphans, key=lambda h: orphans[h])  # all equally old: any two of them
    r = run_cli("--config", cfg, "remote", "gc", "--grace", f"{grace}s",
                "--max-size", f"{total - orphans[first] - 1}B", "--json")
    rep = json.loads(r.stdout)[0]
    assert r.returncode == 0 and 1 <= rep["deleted_objects"] < 5, rep
    r = run_cli("--config", cfg, "remote", "gc", "--grace", f"{grace}s", "--max-size", "0",
                "--json")
    rep = json.loads(r.stdout)[0]
    assert rep["over_limit"] and rep["bytes_after"] > 0, rep  # live objects are never deleted
    assert all(store.read(f"cas/{h}") is None for h in orphans)
    assert store.read(record_name("name:dangling")) is None
    _check_readers(make_cache, store, fleet["pubs"], live, "reader")


def test_an_upload_racing_the_gc_survives(fleet, make_cache, tmp_path):
    """A new object (young: grace) and a record written for an OLD unreferenced object during
    the scan (its uploader saw the object there and sent only the record) both survive."""
    store, pubs = fleet["store"], fleet["pubs"]
    grace = _age(store, tmp_path)
    young, _ = _orphan(store, 99)  # uploaded just now, its record not yet written
    old_orphan, rewritten = sorted(fleet["orphans"])[:2]
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=str(tmp_path / "a.key"),
                                      trusted_public_keys=pubs)])
    t = a.remote.tier
    spec = t.specs[0]
    backend = t._backend(spec)
    signer = load_secret_key(str(tmp_path / "a.key"))

    class Racing:
        """The real backend; a member writes a record right after gc listed the records."""

        def __init__(self) -> None:
            self.calls = 0

        def entries(self, kind):
            if kind == "ac":
                self.calls += 1
                if self.calls == 2:  # gc re-lists: an existing record was rewritten meanwhile
                    time.sleep(1.1)  # a new mtime even on a coarse clock
                    store.write(record_name("name:a0"), encode(
                        Record("name:a0", rewritten, fleet["orphans"][rewritten], "name", {},
                               time.time()), signer))
            got = list(backend.entries(kind))
            if kind == "ac" and self.calls == 1:  # gc listed the records: a new one appears
                store.write(record_name("name:late"), encode(
                    Record("name:late", old_orphan, fleet["orphans"][old_orphan], "name", {},
                           time.time()), signer))
            return iter(got)

        def delete(self, name, deadline):
            return backend.delete(name, deadline)

    rep = gc.collect(Racing(), lambda n: t._read_small(spec, n), spec, grace, 0)
    assert store.read(f"cas/{young}") is not None
    assert store.read(f"cas/{old_orphan}") is not None, rep
    assert store.read(f"cas/{rewritten}") is not None, rep
    assert rep["deleted_objects"] == len(fleet["orphans"]) - 2, rep["deleted"]


def test_a_gc_killed_at_random_points_leaves_no_trusted_record_dangling(
        fleet, make_cache, tmp_path):
    """kill -9 while objects are being deleted (at a random count deleted), five times."""
    store, pubs, live = fleet["store"], fleet["pubs"], fleet["live"]
    n = 300 if store.kind == "file" else 60
    rng = random.Random(26)
    t = make_cache("lister", [store.remote(mode="rw")]).remote.tier
    backend = t._backend(t.specs[0])
    killed_at = []
    for attempt in range(5):
        orphans = dict(_orphan(store, i) for i in range(n))  # (again) the garbage
        grace = _age(store, tmp_path)
        start = sum(1 for _ in backend.entries("cas"))
        target = start - rng.randint(1, n - 1)
        p = popen_cli("--config", str(tmp_path / "a.yaml"), "remote", "gc", "--grace",
                      f"{grace}s", "--max-size", "0", stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
        while p.poll() is None and _count(backend) > target:
            time.sleep(0.002)
        p.kill()  # SIGKILL (unless it ended: the objects it put back from trash/ are young on S3)
        p.wait()
        _expire_gc_lease(store)  # the killed gc's lease: as 5 minutes later
        killed_at.append(sum(store.read(f"cas/{h}") is not None for h in orphans))
        for k in live:  # every record a reader trusts points at an object that is there
            data = store.read(record_name(k))
            assert data is not None
            rec = decode(data, k, pubs, False)
            assert store.read(f"cas/{rec.sha256}") is not None, (attempt, k)
        _check_readers(make_cache, store, pubs, live, f"reader{attempt}")
    print(f"garbage objects left when killed (of {n}): {killed_at}")
    assert any(0 < k < n for k in killed_at), killed_at  # killed halfway at least once


def test_a_reader_that_meets_a_deleted_object_falls_back_as_on_a_miss(fleet, make_cache):
    store, pubs, live = fleet["store"], fleet["pubs"], fleet["live"]
    key = next(iter(live))
    rec = decode(store.read(record_name(key)), key, pubs, False)
    t = make_cache("x", [store.remote(mode="rw")]).remote.tier
    backend = t._backend(t.specs[0])
    backend.delete(f"cas/{rec.sha256}", time.monotonic() + 30)
    backend.delete(f"cas/{rec.sha256}", time.monotonic() + 30)  # a missing object is fine
    c = make_cache("c", [store.remote(trusted_public_keys=pubs)])
    assert c.get(key) is None
    assert c.stats()["remote"]["errors"] == 0
    other = next(k for k in live if k != key)
    assert open(c.get(other), "rb").read() == live[other]  # the remote was not tripped


def test_gc_refuses_a_store_that_cannot_list(nginx, make_cache, tmp_path):
    from tests.support.remote import nginx_store

    store = nginx_store(nginx)
    make_cache("w", [store.remote(mode="rw")]).close()
    for args in (["remote", "gc"], ["remote", "gc", "--dry-run"]):
        r = run_cli("--config", str(tmp_path / "w.yaml"), *args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "cannot list" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("--config", str(tmp_path / "w.yaml"), "remote", "status", "--store")
    assert r.returncode == 0 and "cannot list" in r.stdout
    # WebDAV DELETE works (the backend offers it; gc needs a listing too)
    data = b"webdav object\n"
    h = hashlib.sha256(data).hexdigest()
    store.write(f"cas/{h}", data)
    t = make_cache("w", [store.remote(mode="rw")]).remote.tier
    t._backend(t.specs[0]).delete(f"cas/{h}", time.monotonic() + 10)
    assert store.read(f"cas/{h}") is None


def test_gc_keeps_what_a_member_took_within_the_retention_window(fleet, make_cache, tmp_path):
    """Bare objects (fetched by digest, e.g. apt's .debs: no record) a member took from the
    store are kept through its usage list; an expired list goes, with its object."""
    store, pubs, orphans = fleet["store"], fleet["pubs"], fleet["orphans"]
    taken = sorted(orphans)[:2]
    b = make_cache("b", [store.remote(mode="rw", signing_key_file=str(tmp_path / "b.key"),
                                      trusted_public_keys=pubs)])
    for h in taken:
        assert b.remote.get_object(h) is not None
    assert b.remote.push(None)["failed"] == 0  # the usage list goes with the spool
    old_list = b"".join(f"{h}\n".encode() for h in sorted(orphans)[2:])
    lh = hashlib.sha256(old_list).hexdigest()
    store.write(f"cas/{lh}", old_list)
    store.write(record_name("usage:gone:2020-01-01"), encode(
        Record("usage:gone:2020-01-01", lh, len(old_list), "usage", {}, 1.0),
        load_secret_key(str(tmp_path / "a.key"))))
    grace = _age(store, tmp_path)
    r = run_cli("--config", str(tmp_path / "a.yaml"), "remote", "gc", "--grace", f"{grace}s",
                "--max-size", "0", "--json")
    rep = json.loads(r.stdout)[0]
    assert r.returncode == 0 and len(rep["members"]) == 1, rep
    r = run_cli("--config", str(tmp_path / "a.yaml"), "remote", "status", "--store", "--members",
                "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["members"] == rep["members"], r.stdout
    for h in orphans:
        assert (store.read(f"cas/{h}") is not None) == (h in taken), h
    assert store.read(record_name("usage:gone:2020-01-01")) is None
    assert store.read(f"cas/{lh}") is None
    _check_readers(make_cache, store, pubs, fleet["live"], "reader")


def test_an_object_the_uploader_skipped_and_gc_deleted_is_put_back(lstore, make_cache, keypair,
                                                                    tmp_path):
    """The uploader skips cas/X because a HEAD shows it; gc (whose last listing of records came
    before the record) deletes X; then the record is written. The uploader HEADs X again after
    the record and puts it back, so the record never points at nothing."""
    data = b"an object two members share\n" * 400
    h = hashlib.sha256(data).hexdigest()
    lstore.write(f"cas/{h}", data)  # uploaded long ago by another member, no record yet
    grace = _age(lstore, tmp_path)
    src = tmp_path / "raced"
    src.write_bytes(data)
    a = make_cache("a", [lstore.remote(mode="rw", signing_key_file=keypair[0],
                                       trusted_public_keys=[keypair[1]])])
    assert a.put("name:raced", str(src)) == h  # queued (uploads are manual here)
    t = a.remote.tier
    spec = t.specs[0]
    real = t._backend(spec)
    reports = []

    class GcBetweenHeadAndRecord:
        """The real backend; gc runs to the end right after the uploader's first HEAD of X."""

        def __getattr__(self, name):
            return getattr(real, name)

        def head(self, name, deadline):
            size = real.head(name, deadline)
            if name == f"cas/{h}" and not reports:
                reports.append(gc.collect(real, lambda n: t._read_small(spec, n), spec, grace, 0))
            return size

    t._backends[spec.ident] = GcBetweenHeadAndRecord()
    out = t.drain(wait=True)
    assert out["failed"] == 0 and out["pending"] == 0, out
    assert f"cas/{h}" in reports[0]["deleted"], reports  # the race happened
    assert lstore.read(record_name("name:raced")) is not None
    assert lstore.read(f"cas/{h}") == data
    r = make_cache("r", [lstore.remote(trusted_public_keys=[keypair[1]])])
    assert open(r.get("name:raced"), "rb").read() == data


def test_an_uploader_between_gcs_last_listing_and_its_delete_keeps_its_object(
        lstore, make_cache, keypair, tmp_path):
    """The whole upload (HEAD: there, skip; record; HEAD again: still there) runs after gc's
    last listing of records and just before gc removes the object: gc moved it to trash/ first,
    lists the records once more and puts it back."""
    data = b"an object a member is about to name\n" * 400
    h = hashlib.sha256(data).hexdigest()
    lstore.write(f"cas/{h}", data)
    grace = _age(lstore, tmp_path)
    src = tmp_path / "late"
    src.write_bytes(data)
    a = make_cache("a", [lstore.remote(mode="rw", signing_key_file=keypair[0],
                                       trusted_public_keys=[keypair[1]])])
    assert a.put("name:late", str(src)) == h
    g = make_cache("g", [lstore.remote(mode="rw", trusted_public_keys=[keypair[1]])])
    t = g.remote.tier
    spec = t.specs[0]
    real = t._backend(spec)
    uploads = []

    class UploadJustBeforeRemoval:
        def __getattr__(self, name):
            return getattr(real, name)

        def _upload_first(self, name):
            if name == f"cas/{h}" and not uploads:
                uploads.append(a.remote.tier.drain(wait=True))

        def rename(self, src, dst, deadline):
            self._upload_first(src)
            return real.rename(src, dst, deadline)

        def delete(self, name, deadline):
            self._upload_first(name)
            return real.delete(name, deadline)

    rep = gc.collect(UploadJustBeforeRemoval(), lambda n: t._read_small(spec, n), spec, grace, 0)
    assert uploads and uploads[0]["failed"] == 0 and uploads[0]["skipped"] == 1, uploads
    assert lstore.read(record_name("name:late")) is not None
    assert lstore.read(f"cas/{h}") == data, rep
    assert f"cas/{h}" not in rep["deleted"]
    assert lstore.read(f"trash/{h}") is None
    r = make_cache("r", [lstore.remote(trusted_public_keys=[keypair[1]])])
    assert open(r.get("name:late"), "rb").read() == data


class _FaultyAt:
    """The real backend, except that listing ``kind`` raises a store fault from its nth call on
    (and, with bad_rename, renaming trash/<bad_rename> back times out; "*": any of them).
    put_backs counts the attempts to rename out of trash/."""

    def __init__(self, real, kind: str, nth: int, bad_rename: str | None = None) -> None:
        self.real, self.kind, self.nth, self.calls, self.bad = real, kind, nth, 0, bad_rename
        self.put_backs = 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def entries(self, kind):
        from cache_core.errors import RemoteError

        if kind == self.kind:
            self.calls += 1
            if self.calls >= self.nth:
                raise RemoteError("injected: listing failed")
        return self.real.entries(kind)

    def rename(self, src, dst, deadline):
        from cache_core.errors import RemoteTimeout

        if src.startswith("trash/"):
            self.put_backs += 1
            if self.bad in ("*", src[len("trash/"):]):
                raise RemoteTimeout("injected: rename timed out")
        return self.real.rename(src, dst, deadline)


def test_a_killed_gcs_trash_is_put_back_first_by_the_next_gc(lstore, make_cache, keypair,
                                                              tmp_path):
    """A gc killed between condemning an object and putting it back leaves it in trash/ while a
    record names it. The next gc puts trash/ back before it decides anything: a reader finds the
    object again even when that gc then meets a store fault (it used to restore only at its end)."""
    data = b"an object a record names, left in trash by a killed gc\n" * 300
    src = tmp_path / "named"
    src.write_bytes(data)
    a = make_cache("a", [lstore.remote(mode="rw", signing_key_file=keypair[0],
                                       trusted_public_keys=[keypair[1]])])
    h = a.put("name:named", str(src))
    assert a.remote.push(None, all_keys=True)["failed"] == 0
    t = make_cache("g", [lstore.remote(mode="rw", trusted_public_keys=[keypair[1]])]).remote.tier
    spec = t.specs[0]
    real = t._backend(spec)
    real.rename(f"cas/{h}", f"trash/{h}", time.monotonic() + 30)  # what the killed gc left
    # the next gc: its first listing of records fails (the store falters after the restore)
    with pytest.raises(Exception, match="injected"):
        gc.collect(_FaultyAt(real, "ac", 1), lambda n: t._read_small(spec, n), spec, 3600, 0)
    assert lstore.read(f"cas/{h}") == data
    assert lstore.read(f"trash/{h}") is None
    r = make_cache("r", [lstore.remote(trusted_public_keys=[keypair[1]])])
    assert open(r.get("name:named"), "rb").read() == data
    # a dry run changes nothing, but decides as if trash/ were back
    real.rename(f"cas/{h}", f"trash/{h}", time.monotonic() + 30)
    rep = gc.collect(real, lambda n: t._read_small(spec, n), spec, 0, 0, dry_run=True)
    assert f"cas/{h}" not in rep["deleted"] and rep["objects"] == 1, rep
    assert lstore.read(f"trash/{h}") == data


def test_a_store_fault_after_condemning_strands_nothing_in_trash(fleet, make_cache, tmp_path):
    """gc moved the garbage to trash/, then its last listing of records fails: every condemned
    object is put back (gc cannot know that no new record names it) and gc reports the fault."""
    store, orphans = fleet["store"], fleet["orphans"]
    grace = _age(store, tmp_path)
    t = make_cache("g", [store.remote(mode="rw", trusted_public_keys=fleet["pubs"])]).remote.tier
    spec = t.specs[0]
    real = t._backend(spec)
    with pytest.raises(Exception, match="injected"):  # listings: start, re-list, last one
        gc.collect(_FaultyAt(real, "ac", 3), lambda n: t._read_small(spec, n), spec, grace, 0)
    assert not list(real.entries("trash") or ())
    assert all(store.read(f"cas/{h}") is not None for h in orphans)
    # the put-back stops at its first fault (a hung store: one timeout, not one per object);
    # the next gc puts back the rest before anything else
    grace = _age(store, tmp_path)  # S3 put them back by a copy: young again
    faulty = _FaultyAt(real, "ac", 3, "*")
    with pytest.raises(Exception, match="injected"):
        gc.collect(faulty, lambda n: t._read_small(spec, n), spec, grace, 0)
    assert faulty.put_backs == 1, faulty.put_backs  # it used to try every object
    assert sorted(h for h, _, _ in real.entries("trash") or ()) == sorted(orphans)
    assert store.read("lease/gc") is None  # the lease is released on a fault too
    rep = gc.collect(real, lambda n: t._read_small(spec, n), spec, grace, 0)
    assert not list(real.entries("trash") or ())
    # S3 puts back by a copy: the objects are young again and wait one more grace period
    assert rep["deleted_objects"] == (len(orphans) if store.kind == "file" else 0), rep
    _check_readers(make_cache, store, fleet["pubs"], fleet["live"], "reader")


def _condemned_by_a_running_gc(lstore, make_cache, keypair, tmp_path):
    """A store where gc A is running: it holds the gc lease and has moved an object a record
    names to trash/ (about to put it back after its last listing); (tier, spec, h). A's lease is written
    as GcLease writes it."""
    data = b"an object gc A condemned; a record names it\n" * 300
    src = tmp_path / "condemned"
    src.write_bytes(data)
    a = make_cache("a", [lstore.remote(mode="rw", signing_key_file=keypair[0],
                                       trusted_public_keys=[keypair[1]])])
    h = a.put("name:condemned", str(src))
    assert a.remote.push(None, all_keys=True)["failed"] == 0
    t = make_cache("g", [lstore.remote(mode="rw", trusted_public_keys=[keypair[1]])]).remote.tier
    spec = t.specs[0]
    lstore.write("lease/gc", json.dumps({"expires": time.time() + 300, "token": "gc-a",
                                         "holder": "member-a:4242"}).encode())
    t._backend(spec).rename(f"cas/{h}", f"trash/{h}", time.monotonic() + 30)
    return t, spec, h


def test_a_second_gc_while_one_runs_changes_nothing_and_exits_75(lstore, make_cache, keypair,
                                                                   tmp_path):
    """Two members' cron start gc at once: the second finds the first's gc lease and stops with
    one line and exit 75, touching nothing. It used to put back trash/ (assuming a killed gc),
    racing the first: an object could end up deleted under a record (see gc.py)."""
    t, spec, h = _condemned_by_a_running_gc(lstore, make_cache, keypair, tmp_path)
    r = run_cli("--config", str(tmp_path / "g.yaml"), "remote", "gc", "--grace", "0s")
    assert lstore.read(f"trash/{h}") is not None and lstore.read(f"cas/{h}") is None
    assert r.returncode == 75, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "another remote gc is running (member-a:4242" in r.stderr, r.stderr
    # a dry run needs no lease: it changes nothing
    r = run_cli("--config", str(tmp_path / "g.yaml"), "remote", "gc", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert lstore.read(f"trash/{h}") is not None and lstore.read(f"cas/{h}") is None
    # A is done: it put h back and released its lease; the next gc runs
    t._backend(spec).rename(f"trash/{h}", f"cas/{h}", time.monotonic() + 30)
    t._backend(spec).drop_lease("lease/gc", time.monotonic() + 30)
    rep = gc.collect(t._backend(spec), lambda n: t._read_small(spec, n), spec, 3600, 0)
    assert lstore.read(f"cas/{h}") is not None and lstore.read(f"trash/{h}") is None, rep
    assert lstore.read("lease/gc") is None


def test_a_killed_gcs_expired_lease_is_broken_and_its_trash_put_back(lstore, make_cache,
                                                                     keypair, tmp_path):
    """A gc killed with -9 leaves its lease: the next gc waits for nothing once it has expired,
    breaks it, puts back the killed gc's trash/ and releases its own lease at the end."""
    t, spec, h = _condemned_by_a_running_gc(lstore, make_cache, keypair, tmp_path)
    _expire_gc_lease(lstore)  # killed: nothing renewed it for 5 minutes
    rep = gc.collect(t._backend(spec), lambda n: t._read_small(spec, n), spec, 3600, 0)
    assert "error" not in rep and lstore.read(f"cas/{h}") is not None, rep
    assert lstore.read(f"trash/{h}") is None and lstore.read("lease/gc") is None


def test_the_gc_lease_is_renewed_while_gc_runs_and_lost_when_broken(lstore, make_cache,
                                                                      tmp_path):
    """The holder's thread pushes the expiry on (a long gc keeps the store); a holder whose
    lease another gc broke learns it at its next renewal and stops."""
    t = make_cache("g", [lstore.remote(mode="rw")]).remote.tier
    spec = t.specs[0]
    lease = gc.GcLease(t._backend(spec), spec, seconds=2.0, every=0.3)
    assert lease.take() is True
    try:
        first = json.loads(lstore.read(gc.GC_LEASE))["expires"]
        deadline = time.monotonic() + 30
        while json.loads(lstore.read(gc.GC_LEASE))["expires"] <= first:
            assert time.monotonic() < deadline, "never renewed"
            time.sleep(0.1)
        with pytest.raises(gc.GcBusy, match="another remote gc is running"):
            gc.GcLease(t._backend(spec), spec).take()
        lstore.write(gc.GC_LEASE, json.dumps({"expires": time.time() + 60,
                                              "token": "other"}).encode())
        while lease.lost is None:
            assert time.monotonic() < deadline, "never noticed"
            time.sleep(0.1)
        with pytest.raises(gc.GcBusy, match="broke"):
            lease.check()
    finally:
        lease.release()
    assert json.loads(lstore.read(gc.GC_LEASE))["token"] == "other"  # not ours: left alone
