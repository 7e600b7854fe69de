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
