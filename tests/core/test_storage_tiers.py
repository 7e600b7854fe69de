"""The storage seam: Storage holds an ordered list of tiers (the local store first) and treats any
later Tier alike: read-through only with bytes that hash to the claim, write-behind after a put.
The third-party tier here is an in-memory stand-in; the second LocalStore is the real store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cache_core import PackageCache
from cache_core.storage import LocalStore, Located, Sink, Storage, Tier

KEY = "deb:hello_2.10-3_amd64.deb"
DATA = b"hello from the fleet\n" * 100
DIGEST = hashlib.sha256(DATA).hexdigest()


class MemoryTier:
    """A Tier in a dict: key -> digest, digest -> bytes (tests tamper with both)."""

    name = "memory"

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.objects: dict[str, bytes] = {}
        self.claim_digest: str | None = None  # lie about the digest in the claim
        self.fetched = 0  # objects whose bytes were written into a sink

    def fetch(self, key: str, sink: Sink) -> Located | None:
        digest = key.removeprefix("sha256:") if key.startswith("sha256:") else self.keys.get(key)
        if digest is None or digest not in self.objects:
            return None
        claim = Located(self.claim_digest or digest, None, "deb", {"from": "memory"})
        if not sink.begin(claim):
            return claim
        self.fetched += 1
        sink.write(self.objects[digest])
        return claim

    def store(self, key: str, digest: str, source: str) -> bool:
        self.objects[digest] = Path(source).read_bytes()
        self.keys[key] = digest
        return True

    def stats(self) -> dict[str, object]:
        return {"objects": len(self.objects)}

    def zero(self) -> None:
        self.fetched = 0


def with_tiers(cache: PackageCache, *later: Tier) -> PackageCache:
    cache.storage = Storage(cache.store, lambda: list(later))
    return cache


def objects(cache: PackageCache) -> list[str]:
    return [p.name for p in cache.objects_dir.rglob("*") if p.is_file()]


@pytest.fixture
def mem() -> MemoryTier:
    return MemoryTier()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "hello.deb"
    path.write_bytes(DATA)
    return path


def test_write_behind_reaches_a_later_tier_and_read_through_comes_back(
        tmp_path: Path, mem: MemoryTier, src: Path):
    a = with_tiers(PackageCache(str(tmp_path / "a")), mem)
    assert a.put(KEY, str(src)) == DIGEST
    assert mem.keys == {KEY: DIGEST} and mem.objects[DIGEST] == DATA  # write-behind

    b = with_tiers(PackageCache(str(tmp_path / "b")), mem)
    path = b.get(KEY)
    assert path is not None and Path(path).read_bytes() == DATA
    assert b.lookup(KEY).meta == {"from": "memory"}  # the claim's kind/meta are recorded
    assert oct(os.stat(path).st_mode & 0o777) == "0o444"
    assert b.get(KEY) == path and mem.fetched == 1  # now local: the tier is not asked again
    st = b.stats()
    assert (st["hits"], st["misses"], st["memory"]) == (2, 0, {"objects": 1})
    b.zero_stats()  # reaches every later tier
    assert mem.fetched == 0 and b.stats()["hits"] == 0


def test_private_put_never_leaves_the_machine(tmp_path: Path, mem: MemoryTier, src: Path):
    a = with_tiers(PackageCache(str(tmp_path / "a")), mem)
    assert a.put(KEY, str(src), private=True) == DIGEST
    assert mem.objects == {}


def test_a_lying_tier_is_a_counted_miss(tmp_path: Path, mem: MemoryTier,
                                        capsys: pytest.CaptureFixture[str]):
    mem.keys[KEY] = DIGEST
    mem.objects[DIGEST] = b"evil" + DATA[4:]  # same size, wrong bytes
    b = with_tiers(PackageCache(str(tmp_path / "b")), mem)
    assert b.get(KEY) is None
    assert b.storage.rejected == {"memory": 1}
    assert b.stats()["misses"] == 1 and b.lookup(KEY) is None
    assert objects(b) == [] and os.listdir(b.tmp_dir) == []  # nothing published, no temp left
    assert "memory tier: object" in capsys.readouterr().err


def test_a_claim_that_is_not_the_content_key_is_refused(tmp_path: Path, mem: MemoryTier):
    """The bytes hash to the claim, but the claim is not the digest the key names."""
    other = b"other content"
    other_digest = hashlib.sha256(other).hexdigest()
    mem.objects[DIGEST] = other
    mem.claim_digest = other_digest
    b = with_tiers(PackageCache(str(tmp_path / "b")), mem)
    assert b.get(f"sha256:{DIGEST}") is None
    assert b.storage.rejected == {"memory": 1} and objects(b) == []


def test_the_first_tier_that_has_it_serves_it(tmp_path: Path, src: Path):
    empty, full, unused = MemoryTier(), MemoryTier(), MemoryTier()
    full.keys[KEY] = DIGEST
    full.objects[DIGEST] = DATA
    unused.keys[KEY] = DIGEST
    unused.objects[DIGEST] = DATA
    b = with_tiers(PackageCache(str(tmp_path / "b")), empty, full, unused)
    assert b.get(KEY) is not None
    assert (empty.fetched, full.fetched, unused.fetched) == (0, 1, 0)


def test_a_tier_naming_content_we_hold_moves_no_bytes(tmp_path: Path, mem: MemoryTier,
                                                      src: Path):
    b = with_tiers(PackageCache(str(tmp_path / "b")), mem)
    assert b.put("deb:other-name.deb", str(src)) == DIGEST
    mem.objects.clear()
    mem.keys[KEY] = DIGEST
    mem.objects[DIGEST] = b"never read"
    path = b.get(KEY)
    assert path is not None and Path(path).read_bytes() == DATA and mem.fetched == 0


def test_a_tier_fault_is_a_miss_and_one_warning(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]):
    class Broken(MemoryTier):
        def fetch(self, key: str, sink: Sink) -> Located | None:
            sink.begin(Located(DIGEST))
            sink.write(b"partial")
            raise OSError(28, "No space left on device")

    b = with_tiers(PackageCache(str(tmp_path / "b"), strict=True), Broken())
    assert b.get(KEY) is None and b.get(KEY) is None
    assert capsys.readouterr().err == \
        "pkgcache: warning: remote tier unavailable (No space left on device)\n"
    assert os.listdir(b.tmp_dir) == []


def test_a_second_local_store_is_a_tier_too(tmp_path: Path, src: Path):
    """LocalStore implements Tier: a real store on another directory (a shared disk) serves
    reads and takes write-behind; its corrupt object is refused and quarantined there."""
    shared = PackageCache(str(tmp_path / "shared"))
    shared.open()
    a = with_tiers(PackageCache(str(tmp_path / "a")), shared.store)
    assert a.put(KEY, str(src)) == DIGEST
    assert shared.lookup(KEY).digest == DIGEST and objects(shared) == [DIGEST]  # write-behind

    b = with_tiers(PackageCache(str(tmp_path / "b")), shared.store)
    assert Path(b.get(KEY)).read_bytes() == DATA
    assert b.stats()["local"]["entries"] == 1

    obj = shared.object_path(DIGEST)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"evil" + DATA[4:])
    c = with_tiers(PackageCache(str(tmp_path / "c")), shared.store)
    assert c.get(KEY) is None and c.storage.rejected == {"local": 1}
    assert objects(shared) == [] and len(os.listdir(shared.quarantine_dir)) == 1


def test_the_local_store_and_the_remote_tier_have_every_tier_member():
    from cache_core.storage.remote import RemoteTier

    members = ("name", "fetch", "store", "stats", "zero")
    for cls in (LocalStore, RemoteTier, MemoryTier):
        assert all(hasattr(cls, m) for m in members), cls
