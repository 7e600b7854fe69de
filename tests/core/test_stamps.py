"""cache_core.stamps: an object's stat stamp is recorded only after a full hash found it good,
in the private state dir; a change of its bytes (even with the mtime put back) changes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cache_core import PackageCache, stamps


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PackageCache:
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir(mode=0o700)  # as fs.safety.state_dir makes it for the memos
    return PackageCache(str(tmp_path / "cache"))


def _stamp(cache: PackageCache, digest: str) -> str | None:
    sdir = stamps.stamp_dir(str(cache.root))
    return stamps.read(sdir, digest) if sdir else None


def test_put_records_the_stamp_and_a_change_breaks_it(cache: PackageCache, tmp_path: Path) -> None:
    src = tmp_path / "f.deb"
    src.write_bytes(b"x" * 4096)
    digest = cache.put("deb:f_1_all.deb", str(src))
    assert digest is not None
    obj = cache.object_path(digest)
    assert _stamp(cache, digest) == stamps.of(os.stat(obj))
    st = obj.stat()
    os.chmod(obj, 0o644)
    obj.write_bytes(b"y" * 4096)
    os.chmod(obj, 0o444)
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _stamp(cache, digest) != stamps.of(os.stat(obj))  # same size and mtime: ctime moved
    assert cache.get("deb:f_1_all.deb") is None  # the full hash finds it bad
    assert _stamp(cache, digest) is None  # and its stamp is gone


def test_stamps_live_only_in_a_private_state_dir(cache: PackageCache, tmp_path: Path) -> None:
    state = tmp_path / "state"
    os.chmod(state, 0o755)  # readable by others: not a place for trust
    src = tmp_path / "g"
    src.write_bytes(b"g")
    digest = cache.put("deb:g_1_all.deb", str(src))
    assert digest is not None
    assert stamps.stamp_dir(str(cache.root)) is None
    assert not (state / "stamps").exists()


def test_a_copy_note_holds_only_while_the_copy_is_unchanged(cache: PackageCache,
                                                            tmp_path: Path) -> None:
    src = tmp_path / "h_1_all.deb"
    src.write_bytes(b"h" * 100)
    digest = cache.put("deb:h_1_all.deb", str(src))
    assert digest is not None
    copy = tmp_path / "archives" / "h_1_all.deb"
    copy.parent.mkdir()
    copy.write_bytes(b"h" * 100)
    sdir = stamps.stamp_dir(str(cache.root), create=True)
    assert sdir is not None
    stamps.note_copy(sdir, copy.name, digest, os.stat(copy), hit=True)
    assert cache.placed_copy(str(copy)) == (digest, True)
    st = copy.stat()
    copy.write_bytes(b"H" * 100)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    copy.unlink()
    copy.write_bytes(b"H" * 100)  # another inode
    assert cache.placed_copy(str(copy)) is None


def test_the_cache_pointer_follows_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("performance:\n  cache:\n    enabled: true\n")
    monkeypatch.setenv("PKGCACHE_CONFIG", str(cfg))
    stamps.remember_cache(stamps.config_identity(), str(tmp_path / "cache"))
    assert stamps.selected_cache() == str(tmp_path / "cache")
    cfg.write_text("performance:\n  cache:\n    enabled: false\n")  # the config changed
    assert stamps.selected_cache() is None
    monkeypatch.setenv("PKGCACHE_DIR", str(tmp_path / "other"))
    assert stamps.selected_cache() is None


def test_a_copy_note_is_used_once(cache: PackageCache, tmp_path: Path) -> None:
    src = tmp_path / "n_1_all.deb"
    src.write_bytes(b"n" * 100)
    digest = cache.put("deb:n_1_all.deb", str(src))
    assert digest is not None
    sdir = stamps.stamp_dir(str(cache.root), create=True)
    assert sdir is not None
    copy = tmp_path / "archives" / "n_1_all.deb"
    copy.parent.mkdir()
    copy.write_bytes(b"n" * 100)
    stamps.note_copy(sdir, copy.name, digest, os.stat(copy), hit=True)
    stamps.note_copy(sdir, "gone_1_all.deb", digest, os.stat(copy), hit=True)
    assert cache.placed_copy(str(copy)) == (digest, True)  # the harvest used it
    assert cache.placed_copy(str(copy.parent / "gone_1_all.deb")) is None  # stale: no use
    assert os.listdir(os.path.join(sdir, "copies")) == []  # no note kept forever
    assert cache.placed_copy(str(copy)) is None  # then: hash it


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the store's full hashes (every one goes through store.sha256_fd)."""
    from cache_core.storage.local import store as store_mod

    calls: list[int] = []
    real = store_mod.sha256_fd

    def counted(fd: int) -> tuple[str, int]:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(store_mod, "sha256_fd", counted)
    return calls


@pytest.mark.parametrize("mode", ["copy", "auto"])  # auto: a hardlink on one file system
def test_a_stamped_object_is_handed_out_without_a_hash(cache: PackageCache, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       mode: str) -> None:
    src = tmp_path / "k_1_all.deb"
    src.write_bytes(os.urandom(200_000))
    digest = cache.put("deb:k_1_all.deb", str(src))
    assert digest is not None
    hashes = _count_hashes(monkeypatch)
    for n in range(3):  # a hardlink moves the object's ctime: its new stamp is recorded
        dest = tmp_path / f"out{n}.deb"
        assert cache.materialize_key("deb:k_1_all.deb", str(dest), mode=mode)
        assert dest.read_bytes() == src.read_bytes()
        assert cache.get("deb:k_1_all.deb") == str(cache.object_path(digest))
    assert hashes == []
    stamps.forget(str(cache.root), digest)  # e.g. after a gc: the next read hashes it in full
    for n in range(3):
        assert cache.materialize_key("deb:k_1_all.deb", str(tmp_path / f"again{n}.deb"),
                                     mode=mode)
    assert len(hashes) == 1  # then its stamp holds again


def test_a_changed_object_is_hashed_and_never_handed_out(cache: PackageCache, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "m_1_all.deb"
    src.write_bytes(b"m" * 50_000)
    digest = cache.put("deb:m_1_all.deb", str(src))
    assert digest is not None
    obj = cache.object_path(digest)
    st = obj.stat()
    os.chmod(obj, 0o644)
    obj.write_bytes(b"M" * 50_000)
    os.chmod(obj, 0o444)
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime moved
    hashes = _count_hashes(monkeypatch)
    assert not cache.materialize_key("deb:m_1_all.deb", str(tmp_path / "out.deb"), mode="copy")
    assert not (tmp_path / "out.deb").exists()
    assert len(hashes) >= 1 and cache.get("deb:m_1_all.deb") is None


def test_verify_that_finds_an_object_bad_drops_its_stamp(cache: PackageCache, tmp_path: Path) -> None:
    """Bytes that rot under an unchanged stat (the stamp cannot see that): `pkgcache verify`
    hashes everything, and an object it finds bad is hashed again on its next read even
    without --repair, so it is quarantined, not handed out."""
    src = tmp_path / "r_1_all.deb"
    src.write_bytes(b"r" * 50_000)
    digest = cache.put("deb:r_1_all.deb", str(src))
    assert digest is not None
    obj = cache.object_path(digest)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"R" * 50_000)
    os.chmod(obj, 0o444)
    stamps.record(str(cache.root), digest, os.stat(obj))  # as if the bytes rotted unseen
    assert cache.verify(repair=False)["corrupt"] == [digest]
    assert cache.get("deb:r_1_all.deb") is None


def test_a_new_key_for_an_object_held_stores_no_bytes(cache: PackageCache, tmp_path: Path) -> None:
    """`pkgcache stats` puts / bytes stored count files stored, not names given to an object
    already held (the demo's server 2 read 84 puts of 165.7 MiB for 42 objects of 82.9 MiB)."""
    src = tmp_path / "n_1_all.deb"
    src.write_bytes(b"n" * 3000)
    digest = cache.put("deb:n_1_all.deb", str(src))
    assert digest is not None
    assert cache.alias("deb:other_1_all.deb", digest)
    st = cache.stats()
    assert (st["puts"], st["bytes_stored"]) == (1, 3000)


def _deb_object(cache: PackageCache, tmp_path: Path, name: str, size: int) -> tuple[str, str]:
    """A deb of size bytes put into cache: (its digest, the cache's stamp dir)."""
    src = tmp_path / name
    src.write_bytes(name[:1].encode() * size)
    digest = cache.put(f"deb:{name}", str(src))
    sdir = stamps.stamp_dir(str(cache.root))
    assert digest is not None and sdir is not None
    return digest, sdir


def test_place_copy_hands_out_only_an_object_whose_stamp_holds(cache: PackageCache,
                                                               tmp_path: Path) -> None:
    """stamps.place_copy (the warm apt seed's copy, no hash): the object's bytes when its stamp
    is the one of its last full hash; nothing at dest once the bytes changed (mtime put back)."""
    from cache_core.storage.local.layout import LAYOUT

    assert stamps.OBJECTS == (LAYOUT, "sha256")  # the store's layout, written out for -S readers
    from cache_core.index.migrations import SCHEMA_VERSION
    from cache_core.storage.local.layout import INDEX_NAME

    assert stamps.INDEX == (INDEX_NAME, SCHEMA_VERSION)
    digest, sdir = _deb_object(cache, tmp_path, "p_1_all.deb", 5000)
    out = tmp_path / "archives"
    out.mkdir()
    st = stamps.place_copy(str(cache.root), sdir, digest, 5000, str(out / "p_1_all.deb"))
    assert st is not None and (out / "p_1_all.deb").read_bytes() == b"p" * 5000
    assert (st.st_mode & 0o777, os.stat(out / "p_1_all.deb").st_ino) == (0o644, st.st_ino)
    assert st.st_ino != cache.object_path(digest).stat().st_ino  # a copy, not the object
    assert stamps.place_copy(str(cache.root), sdir, digest, 4999, str(out / "x.deb")) is None
    obj = cache.object_path(digest)
    before = obj.stat()
    os.chmod(obj, 0o644)
    obj.write_bytes(b"q" * 5000)
    os.chmod(obj, 0o444)
    os.utime(obj, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert stamps.place_copy(str(cache.root), sdir, digest, 5000, str(out / "y.deb")) is None
    assert sorted(os.listdir(out)) == ["p_1_all.deb"]  # no temp, no y.deb


def test_place_copy_rehashes_an_object_whose_stamp_moved(cache: PackageCache,
                                                         tmp_path: Path) -> None:
    """rehash: an object whose ctime moved (a hard link to it was removed) is hashed as it is
    copied, placed and stamped anew; one whose bytes changed is not placed."""
    digest, sdir = _deb_object(cache, tmp_path, "r_1_all.deb", 3000)
    obj = cache.object_path(digest)
    os.link(obj, tmp_path / "link")
    os.unlink(tmp_path / "link")  # the object's ctime moved: its stamp no longer holds
    out = tmp_path / "out"
    out.mkdir()
    assert stamps.place_copy(str(cache.root), sdir, digest, 3000, str(out / "a.deb")) is None
    st = stamps.place_copy(str(cache.root), sdir, digest, 3000, str(out / "a.deb"), rehash=True)
    assert st is not None and (out / "a.deb").read_bytes() == b"r" * 3000
    assert stamps.read(sdir, digest) == stamps.of(os.stat(obj))  # stamped anew
    before = obj.stat()
    os.chmod(obj, 0o644)
    obj.write_bytes(b"s" * 3000)
    os.chmod(obj, 0o444)
    os.utime(obj, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert stamps.place_copy(str(cache.root), sdir, digest, 3000, str(out / "b.deb"),
                             rehash=True) is None
    assert sorted(os.listdir(out)) == ["a.deb"]


def test_a_private_write_cut_short_by_the_kernel_is_written_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write may write part of a buffer (a nearly full disk): the rest follows; the file
    the rename names is never a cut one."""
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    text = "".join(f"line {i}\n" for i in range(500))
    assert stamps.write_private(str(tmp_path / "memo"), text)
    assert (tmp_path / "memo").read_text() == text


def test_a_killed_copys_temps_neither_block_nor_stay(cache: PackageCache, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy killed mid-way (kill -9) leaves .pkgcache-PID-N.part in apt's archives: a
    later process given that pid (a container's fixed pid sequence) still places, and once
    the temp's pid is gone and a minute has passed, the next sweep removes it (a live pid's
    and a fresh one stay)."""
    import itertools
    import subprocess

    digest, sdir = _deb_object(cache, tmp_path, "p_1_all.deb", 5000)
    out = tmp_path / "archives"
    out.mkdir()
    monkeypatch.setattr(stamps, "_n", itertools.count(1))
    for n in (1, 2, 3):  # the names this process would take first
        (out / f".pkgcache-{os.getpid()}-{n}.part").write_bytes(b"cut")
    assert stamps.place_copy(str(cache.root), sdir, digest, 5000, str(out / "p_1_all.deb"))
    assert (out / "p_1_all.deb").read_bytes() == b"p" * 5000
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid no process has now
    old, fresh = out / f".pkgcache-{gone.pid}-1.part", out / f".pkgcache-{gone.pid}-2.part"
    for p in (old, fresh):
        p.write_bytes(b"cut")
    os.utime(old, (1, 1))
    dfd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert stamps.sweep_dead_temps(dfd) == 1
    finally:
        os.close(dfd)
    assert not old.exists() and fresh.exists() and (out / f".pkgcache-{os.getpid()}-1.part").exists()


def test_the_index_schema_is_read_from_the_files_header(cache: PackageCache) -> None:
    """The apt fast paths (no SQLite loaded) use a cache only while its index is at this
    pkgcache's schema: a newer release's index, or one whose header a write-ahead log may
    still change, and they leave the cache to the full hooks."""
    import sqlite3

    root = str(cache.root)
    src = Path(root).parent / "f.deb"
    src.write_bytes(b"f" * 100)
    assert cache.put("deb:f_1_all.deb", str(src)) is not None
    cache.close()
    assert stamps.index_known(root)
    db = os.path.join(root, stamps.INDEX[0])
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={stamps.INDEX[1] + 1}")
    conn.commit()
    conn.close()
    assert not stamps.index_known(root)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={stamps.INDEX[1]}")
    conn.commit()
    conn.close()
    assert stamps.index_known(root)
    Path(db + "-wal").write_bytes(b"x")
    assert not stamps.index_known(root)
