"""Members that miss the same content at once download it once: a lease beside the content on the
store itself (O_EXCL in a directory, COPY + Overwrite: F on nginx WebDAV, If-None-Match: * on S3).

Each member is its own pkgcache process with its own cache; the origin is a slow server on
127.0.0.1 that counts requests.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cache_core.storage.remote import lease as lease_mod
from tests.support import until_stopped
from tests.support.cli import popen_cli, run_cli
from tests.support.http import FetchServer
from tests.support.remote import dir_store, file_store, nginx_store, s3_store

pytestmark = pytest.mark.slow

SIZE = 1 << 20  # 64 chunks of 16 KiB


@pytest.fixture
def slow_origin():
    yield from until_stopped(FetchServer().start())


@pytest.fixture(params=["file", "nginx-copy", "s3"])
def lease_store(request: pytest.FixtureRequest, tmp_path: Path):
    """A store that can create-if-absent."""
    if request.param == "file":
        return file_store(tmp_path / "shared")
    if request.param == "nginx-copy":
        ng = request.getfixturevalue("nginx")
        return dir_store("nginx", ng.root / "dav", ng.url("dav"))
    return s3_store(request.getfixturevalue("moto_server"))


def _members(make_cache, store, n: int) -> list[str]:
    names = [f"m{i}" for i in range(n)]
    for name in names:
        make_cache(name, [store.remote(mode="rw")]).close()
    return names


def _fetch(tmp_path: Path, name: str, url: str, digest: str) -> subprocess.Popen[str]:
    return popen_cli("--config", str(tmp_path / f"{name}.yaml"), "fetch", url, "--sha256", digest,
                     "-o", str(tmp_path / f"{name}.out"), stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)


def test_two_members_missing_the_same_file_at_once_download_it_once(
        lease_store, make_cache, slow_origin, tmp_path):
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    slow_origin.put("/big.bin", data, chunk_delay=0.02)  # ~1.3 s for the whole file
    names = _members(make_cache, lease_store, 3)
    procs = [_fetch(tmp_path, n, slow_origin.url("/big.bin"), digest) for n in names]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert err == "", err
    for n in names:
        assert (tmp_path / f"{n}.out").read_bytes() == data
    assert slow_origin.count("/big.bin") == 1  # the origin served it once for three members


def test_a_holder_killed_with_kill_9_lets_the_others_fall_back_within_the_expiry(
        make_cache, slow_origin, tmp_path, monkeypatch):
    store = file_store(tmp_path / "shared")
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    res = slow_origin.put("/big.bin", data, stall_after=16384)  # the holder's download hangs
    names = _members(make_cache, store, 2)
    holder = _fetch(tmp_path, names[0], slow_origin.url("/big.bin"), digest)
    lease_file = tmp_path / "shared" / "lease" / digest
    deadline = time.monotonic() + 30
    while not lease_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lease_file.exists()
    while slow_origin.count("/big.bin") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(holder.pid, signal.SIGKILL)
    holder.communicate()
    res.stall_after = None  # the origin answers the next member in full
    res.release.set()
    # a lease that expires in 3 s (the holder's own, rewritten as it would read after 117 s)
    lease_file.write_text(f'{{"expires": {time.time() + 3}}}')
    started = time.monotonic()
    waiter = _fetch(tmp_path, names[1], slow_origin.url("/big.bin"), digest)
    _, err = waiter.communicate(timeout=120)
    took = time.monotonic() - started
    assert waiter.returncode == 0, err
    assert (tmp_path / f"{names[1]}.out").read_bytes() == data
    assert 2.5 <= took < 3 + 15, took  # waited for the lease, then fell back to the origin
    assert slow_origin.count("/big.bin") == 2


def test_a_store_without_conditional_create_means_no_coalescing_and_no_error(
        nginx, make_cache, slow_origin, tmp_path):
    store = nginx_store(nginx)  # dav_methods PUT DELETE: COPY answers 405
    data = os.urandom(SIZE // 4)
    digest = hashlib.sha256(data).hexdigest()
    slow_origin.put("/f.bin", data, chunk_delay=0.02)
    names = _members(make_cache, store, 2)
    procs = [_fetch(tmp_path, n, slow_origin.url("/f.bin"), digest) for n in names]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 and err == "", err
    assert slow_origin.count("/f.bin") == 2  # each member downloaded: no lease, no error
    r = run_cli("--config", str(tmp_path / f"{names[0]}.yaml"), "remote", "status")
    assert r.returncode == 0


def test_lease_names_stay_in_the_layout() -> None:
    assert lease_mod.lease_name("a" * 64) == "lease/" + "a" * 64
    with pytest.raises(ValueError):
        lease_mod.lease_name("../etc/passwd")


def test_two_processes_of_one_machine_fetching_the_same_content_download_it_once(
        nginx, make_cache, slow_origin, tmp_path):
    """Two URLs with the same pinned content, fetched at once into one cache: the local lock
    (the store here cannot hold a lease: nginx without COPY)."""
    store = nginx_store(nginx)
    data = os.urandom(SIZE // 2)
    digest = hashlib.sha256(data).hexdigest()
    for path in ("/a.bin", "/b.bin"):
        slow_origin.put(path, data, chunk_delay=0.02)
    make_cache("m", [store.remote(mode="rw")]).close()
    procs = [popen_cli("--config", str(tmp_path / "m.yaml"), "fetch", slow_origin.url(path),
                       "--sha256", digest, "-o", str(tmp_path / f"out{i}"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, path in enumerate(("/a.bin", "/b.bin"))]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 and err == "", err
    assert (tmp_path / "out0").read_bytes() == data == (tmp_path / "out1").read_bytes()
    assert slow_origin.count("/a.bin") + slow_origin.count("/b.bin") == 1


class _LeaseFaults:
    """The real backend, except that reading a lease (and, with heads, a HEAD) is a store
    fault: a 5xx or a dead connection, not a clean "held" or "gone". Counts both."""

    def __init__(self, real, heads: bool = False) -> None:
        self.real, self.heads, self.reads, self.head_calls = real, heads, 0, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def read_lease(self, name, deadline):
        from cache_core.errors import RemoteError

        self.reads += 1
        raise RemoteError("GET answered HTTP 503")

    def head(self, name, deadline):
        from cache_core.errors import RemoteError

        self.head_calls += 1
        if self.heads:
            raise RemoteError("HEAD answered HTTP 503")
        return self.real.head(name, deadline)


def _held_elsewhere(make_cache, tmp_path: Path):
    """A member whose store holds another member's live lease on a digest; (cache, digest)."""
    store = file_store(tmp_path / "shared")
    digest = hashlib.sha256(b"held elsewhere").hexdigest()
    other = make_cache("other", [store.remote(mode="rw")])
    t = other.remote.tier
    assert lease_mod._take(t, t.specs[0], digest, 60) is True
    return make_cache("me", [store.remote(mode="rw")]), digest


def test_a_lease_fault_is_no_coalescing_not_busy(make_cache, tmp_path):
    """With wait=0 (apt's method), a lease another member holds is busy; a store fault while
    reading it means no coalescing (download now, one warning, the remote off for the run), not
    busy: apt's method held such a request up to its DEFER_LIMIT (150 s)."""
    from cache_core import set_warning_handler

    me, digest = _held_elsewhere(make_cache, tmp_path)
    with me.remote.download_lease(digest, wait=0) as lease:
        assert lease.busy and lease.path is None and not lease.held  # a live lease: busy
    t = me.remote.tier
    faulty = _LeaseFaults(t.backend(t.specs[0]))
    t._backends[t.specs[0].ident] = faulty
    warned: list[str] = []
    set_warning_handler(warned.append)
    try:
        with me.remote.download_lease(digest, wait=0) as lease:
            assert not lease.busy and lease.path is None and not lease.held
        with me.remote.download_lease(digest, wait=0) as lease:  # the remote is off now
            assert not lease.busy and lease.path is None
    finally:
        set_warning_handler(None)
    assert faulty.reads == 1 and len(warned) == 1 and "503" in warned[0], warned
    assert faulty.head_calls == 0  # wait=0 reads the lease only


@pytest.mark.parametrize("heads", [False, True])
def test_a_lease_fault_ends_the_wait_at_once(make_cache, tmp_path, heads: bool):
    """A waiter (fetch, pip: wait given) whose store faults while it polls (its HEAD of the
    content, or its read of the lease) goes to the origin at once: one poll, not one per
    backoff step until its wait ran out (the lease's 120 s by default)."""
    me, digest = _held_elsewhere(make_cache, tmp_path)
    t = me.remote.tier
    faulty = _LeaseFaults(t.backend(t.specs[0]), heads)
    t._backends[t.specs[0].ident] = faulty
    with me.remote.download_lease(digest, wait=20) as lease:
        assert lease.path is None and not lease.held and not lease.busy
    # one poll: its HEAD (the fault, with heads) and else its lease read (the fault)
    assert (faulty.head_calls, faulty.reads) == (1, 0 if heads else 1)
    assert not t.usable(t.specs[0])  # the fault tripped the remote


def test_a_local_lock_fault_is_no_coalescing_not_busy(make_cache, tmp_path, monkeypatch):
    """The local lock that coalesces this machine's processes fails (not a timeout): no
    coalescing; only another process holding it (a timeout, with wait=0) is busy."""
    from cache_core.errors import LockTimeout

    me, digest = _held_elsewhere(make_cache, tmp_path)
    local = me.remote.tier.local

    def failing(name, timeout):
        raise OSError(28, "No space left on device")

    def held(name, timeout):
        raise LockTimeout("held by another process")

    monkeypatch.setattr(local, "lock", held)
    with me.remote.download_lease(digest, wait=0) as lease:
        assert lease.busy and lease.path is None
    monkeypatch.setattr(local, "lock", failing)
    with me.remote.download_lease(digest, wait=0) as lease:
        assert not lease.busy and lease.path is None and not lease.held


@pytest.mark.parametrize("status", ["503", "401", "403"])
@pytest.mark.parametrize("kind", ["http", "s3"])
def test_a_store_fault_taking_a_lease_is_warned_and_trips_the_remote(make_cache, tmp_path,
                                                                      kind: str, status: str):
    """A 5xx, 401 or 403 answering the create-if-absent is a store fault (one warning, the
    remote off for the run, the shared breaker), not "this store cannot create-if-absent": it
    used to be neither warned nor counted."""
    from cache_core import set_warning_handler
    from tests.support.http import FaultServer

    srv = FaultServer(status)
    try:
        entry: dict[str, object] = {"url": srv.url(), "mode": "rw"}
        if kind == "s3":
            entry = {"url": "s3://fleet/p", "endpoint": srv.url(""), "region": "us-east-1",
                     "access_key_id": "AKIATEST", "secret_access_key": "secret", "mode": "rw"}
        me = make_cache("me", [entry])
        t = me.remote.tier
        warned: list[str] = []
        set_warning_handler(warned.append)
        try:
            digest = hashlib.sha256(b"a lease on a faulty store").hexdigest()
            assert lease_mod._take(t, t.specs[0], digest, 60) is None  # no coalescing
        finally:
            set_warning_handler(None)
        assert len(warned) == 1 and status in warned[0], warned
        assert not t.usable(t.specs[0]) and me.stats()["remote"]["errors"] == 1
    finally:
        srv.stop()


class _Heads:
    """The real backend, counting its HEADs."""

    def __init__(self, real) -> None:
        self.real, self.head_calls = real, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def head(self, name, deadline):
        self.head_calls += 1
        return self.real.head(name, deadline)


def test_a_lease_on_a_name_never_looks_for_its_object(make_cache, tmp_path):
    """present=False (a pip page's lease: its digest names no object): neither the holder nor a
    waiter HEADs ``cas/<digest>``, which never exists (one wasted store request per page)."""
    me, digest = _held_elsewhere(make_cache, tmp_path)
    t = me.remote.tier
    counting = _Heads(t.backend(t.specs[0]))
    t._backends[t.specs[0].ident] = counting
    with me.remote.download_lease(digest, wait=0.3, present=False) as lease:  # held elsewhere
        assert lease.path is None and not lease.held
    mine = hashlib.sha256(b"a page of mine").hexdigest()
    with me.remote.download_lease(mine, present=False) as lease:
        assert lease.held and lease.path is None
    assert counting.head_calls == 0
    with me.remote.download_lease(hashlib.sha256(b"an object").hexdigest()) as lease:
        assert lease.held
    assert counting.head_calls == 1  # (an object's lease looks whether it was delivered)
