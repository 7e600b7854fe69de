"""PackageCache: the original checklist, dedupe, integrity, keys, disabled mode."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import pytest

from cache_core import PackageCache, materialize
from tests.support import until_stopped
from tests.support.http import serve_dir


@pytest.fixture
def server(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; it logs every request."""
    docroot = tmp_path / "www"
    docroot.mkdir()
    for srv in until_stopped(serve_dir(docroot)):
        yield docroot, srv.url(""), srv


def download_through(cache: PackageCache, url: str, tmp: Path) -> str:
    """The original spec's flow: serve from the cache, else download once and cache."""
    hit = cache.get_cached_file(url)
    if hit:
        return hit
    dest = tmp / "download.part"
    with urllib.request.urlopen(url) as resp, open(dest, "wb") as out:
        out.write(resp.read())
    cache.cache_file(url, str(dest))
    return cache.get_cached_file(url) or str(dest)


def test_file_downloaded_once_then_served_locally(server, cache_dir: Path, tmp_path: Path):
    docroot, base, srv = server
    (docroot / "pkg.tar.gz").write_bytes(os.urandom(200_000))
    cache = PackageCache(str(cache_dir))
    url = f"{base}/pkg.tar.gz"
    first = download_through(cache, url, tmp_path)
    second = download_through(cache, url, tmp_path)
    assert srv.count("/pkg.tar.gz", method="GET") == 1
    assert first == second and second.startswith(str(cache_dir))
    assert Path(second).read_bytes() == (docroot / "pkg.tar.gz").read_bytes()


@pytest.mark.parametrize("how", ["same_size_flip", "append", "truncate", "delete", "replace_by_symlink"])
def test_modified_cached_file_is_not_returned(cache_dir: Path, tmp_path: Path, how: str):
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(100_000))
    cache = PackageCache(str(cache_dir))
    cache.cache_file("https://example.org/f.bin", str(src))
    path = Path(cache.get_cached_file("https://example.org/f.bin"))
    os.chmod(path, 0o644)
    if how == "same_size_flip":
        data = bytearray(path.read_bytes())
        data[50_000] ^= 0x01
        path.write_bytes(bytes(data))
        assert path.stat().st_size == src.stat().st_size
    elif how == "append":
        with open(path, "ab") as fh:
            fh.write(b"x")
    elif how == "truncate":
        os.truncate(path, 10)
    elif how == "delete":
        path.unlink()
    else:
        path.unlink()
        path.symlink_to(src)  # same content, but a planted link is never followed
    assert cache.get_cached_file("https://example.org/f.bin") is None
    assert not cache.exists("https://example.org/f.bin")
    # a fresh put repairs it
    cache.cache_file("https://example.org/f.bin", str(src))
    assert Path(cache.get_cached_file("https://example.org/f.bin")).read_bytes() == src.read_bytes()
    s = cache.stats()
    assert s["corrupt_detected"] + s["stale_detected"] == 1


def test_source_left_untouched_and_object_read_only(cache_dir: Path, tmp_path: Path):
    src = tmp_path / "a"
    src.write_bytes(b"abc")
    mode = src.stat().st_mode
    cache = PackageCache(str(cache_dir))
    digest = cache.put("deb:a_1_all.deb", str(src))
    assert digest == hashlib.sha256(b"abc").hexdigest() == cache.calculate_hash(str(src))
    assert src.read_bytes() == b"abc" and src.stat().st_mode == mode
    assert src.stat().st_nlink == 1
    obj = Path(cache.get("deb:a_1_all.deb"))
    assert obj.stat().st_mode & 0o777 == 0o444
    assert obj.name == digest and obj.parent.parent.parent.name == "objects-v1"
    assert (cache_dir / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")


def test_dedupe_many_keys_one_object(cache_dir: Path, tmp_path: Path):
    cache = PackageCache(str(cache_dir))
    blob = os.urandom(50_000)
    for i in range(5):
        p = tmp_path / f"copy{i}"
        p.write_bytes(blob)
        cache.put(f"https://mirror{i}.example/x.whl", str(p))
    cache.put("wheel:x-1.0-py3-none-any.whl", str(tmp_path / "copy0"))
    s = cache.stats()
    assert s["entries"] == 6 and s["objects"] == 1 and s["size_bytes"] == len(blob)
    digest = hashlib.sha256(blob).hexdigest()
    assert cache.get(f"sha256:{digest}") == cache.get("https://mirror3.example/x.whl")


def test_put_with_wrong_expected_digest_stores_nothing(cache_dir: Path, tmp_path: Path):
    p = tmp_path / "f"
    p.write_bytes(b"payload")
    cache = PackageCache(str(cache_dir))
    assert cache.put("k", str(p), sha256="0" * 64) is None
    assert cache.put(f"sha256:{'1' * 64}", str(p)) is None
    assert not cache.exists("k")
    assert cache.stats()["objects"] == 0
    assert os.listdir(cache_dir / "tmp") == []


def test_disabled_cache_is_a_pass_through_miss(cache_dir: Path, tmp_path: Path):
    p = tmp_path / "f"
    p.write_bytes(b"x")
    cache = PackageCache(str(cache_dir), enabled=False)
    assert cache.cache_file("https://e/x", str(p)) is None
    assert cache.get_cached_file("https://e/x") is None
    assert not cache.exists("https://e/x")
    assert not cache_dir.exists()


def test_disabled_via_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"performance:\n  cache:\n    enabled: false\n    directory: {tmp_path / 'cc'}\n")
    p = tmp_path / "f"
    p.write_bytes(b"x")
    cache = PackageCache.from_config(str(cfg))
    assert not cache.enabled
    assert cache.put("https://e/x", str(p)) is None and cache.get("https://e/x") is None
    monkeypatch.setenv("PKGCACHE_DISABLE", "1")
    cfg.write_text(f"performance:\n  cache:\n    directory: {tmp_path / 'cc'}\n")
    assert not PackageCache.from_config(str(cfg)).enabled


def test_materialize_key_modes_and_extra_digest(cache_dir: Path, tmp_path: Path):
    src = tmp_path / "s"
    src.write_bytes(os.urandom(10_000))
    cache = PackageCache(str(cache_dir))
    digest = cache.put("deb:s_1_all.deb", str(src))
    out = tmp_path / "out"
    out.mkdir()
    assert cache.materialize_key("deb:s_1_all.deb", str(out / "a"), mode="copy")
    assert (out / "a").read_bytes() == src.read_bytes() and (out / "a").stat().st_nlink == 1
    assert cache.materialize_key("deb:s_1_all.deb", str(out / "b"), mode="auto", sha256=digest)
    assert (out / "b").read_bytes() == src.read_bytes()
    assert not cache.materialize_key("deb:s_1_all.deb", str(out / "c"), sha256="f" * 64)
    assert not (out / "c").exists()
    assert sorted(os.listdir(out)) == ["a", "b"]  # no temp left behind


def test_materialize_function_falls_back_to_copy_across_filesystems(tmp_path: Path):
    src = tmp_path / "src"
    src.write_bytes(b"data")
    dest_dir = Path("/dev/shm") / f"pkgcache-test-{os.getpid()}"
    dest_dir.mkdir(exist_ok=True)
    try:
        method = materialize(src, dest_dir / "x", mode="auto")
        if os.stat(dest_dir).st_dev != os.stat(tmp_path).st_dev:
            assert method == "copy"
        assert (dest_dir / "x").read_bytes() == b"data"
        assert materialize(src, tmp_path / "y", mode="auto") in ("reflink", "hardlink")
    finally:
        for f in dest_dir.iterdir():
            f.unlink()
        dest_dir.rmdir()


def test_alias_meta_and_listing(cache_dir: Path, tmp_path: Path):
    p = tmp_path / "f"
    p.write_bytes(b"1234")
    cache = PackageCache(str(cache_dir))
    d = cache.put("https://e/f", str(p), meta={"etag": '"abc"'})
    assert cache.alias("wheel:f-1-py3-none-any.whl", d)
    assert not cache.alias("wheel:g-1-py3-none-any.whl", "e" * 64)
    assert cache.lookup("https://e/f").meta == {"etag": '"abc"'}
    cache.set_meta("https://e/f", {"etag": '"def"'})
    assert cache.lookup("https://e/f").meta["etag"] == '"def"'
    assert [e.key for e in cache.keys("wheel:")] == ["wheel:f-1-py3-none-any.whl"]
    assert cache.lookup("wheel:f-1-py3-none-any.whl").kind == "wheel"


def test_hits_do_not_write_until_flush(cache_dir: Path, tmp_path: Path):
    p = tmp_path / "f"
    p.write_bytes(b"1234")
    cache = PackageCache(str(cache_dir))
    cache.put("k", str(p))
    other = PackageCache(str(cache_dir))
    for _ in range(10):
        assert cache.get("k")
    assert other.stats()["hits"] == 0  # batched in the first process
    cache.close()
    assert other.stats()["hits"] == 10
    assert other.lookup("k").hits == 10


def _swap_placed_temps(monkeypatch, out: Path, theirs: Path) -> None:
    """Once a temp in out is placed (copied, or hardlinked), another party that can write out
    swaps it for theirs (reflink made unavailable, so both ways are taken)."""
    from cache_core.fs import TMP_PREFIX, place

    def swap() -> None:
        [tmp] = [n for n in os.listdir(out) if n.startswith(TMP_PREFIX)]
        os.rename(out / tmp, theirs.parent / f"moved-{tmp}")
        os.link(theirs, out / tmp)

    def no_reflink(src_fd: int, dst_fd: int) -> None:
        raise OSError(95, "no reflink here")

    real_copy, real_link = place.copy_fd, place.link_verified

    def copy_then_swap(src_fd: int, dst_fd: int) -> None:
        real_copy(src_fd, dst_fd)
        swap()

    def link_then_swap(*args: object) -> bool:
        ok = real_link(*args)  # type: ignore[arg-type]
        if ok:
            swap()
        return ok

    monkeypatch.setattr(place, "_reflink", no_reflink)
    monkeypatch.setattr(place, "copy_fd", copy_then_swap)
    monkeypatch.setattr(place, "link_verified", link_then_swap)


@pytest.mark.parametrize("mode", ["copy", "auto"])
def test_materialize_checks_the_file_it_placed_not_one_swapped_in(tmp_path: Path, monkeypatch,
                                                                   mode: str):
    """The temp is swapped for another party's file once placed: materialize fails rather than
    report success with their file at DEST (it re-opened the temp by path and checked that)."""
    from cache_core.fs import TMP_PREFIX

    src = tmp_path / "src"
    src.write_bytes(b"ours\n" * 1000)
    theirs = tmp_path / "theirs"
    theirs.write_bytes(b"theirs\n")
    out = tmp_path / "out"
    out.mkdir()
    _swap_placed_temps(monkeypatch, out, theirs)
    with pytest.raises(OSError):
        materialize(src, out / "dest", mode=mode)
    assert not [n for n in os.listdir(out) if n.startswith(TMP_PREFIX)]


@pytest.mark.parametrize("mode", ["copy", "auto"])
def test_materialize_key_refuses_a_swapped_temp_even_with_the_right_bytes(
        cache_dir: Path, tmp_path: Path, monkeypatch, mode: str):
    """The store hashes what it placed and checks DEST after the rename: both through the
    descriptor it placed by. A swapped-in copy with the right bytes (the other party's own, still
    theirs to change) is refused: it used to pass the hash and the check by a re-open."""
    src = tmp_path / "src"
    src.write_bytes(os.urandom(20_000))
    cache = PackageCache(str(cache_dir))
    cache.put("deb:s_1_all.deb", str(src))
    theirs = tmp_path / "theirs"
    theirs.write_bytes(src.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    _swap_placed_temps(monkeypatch, out, theirs)
    from cache_core import set_warning_handler

    warned: list[str] = []
    set_warning_handler(warned.append)
    try:
        assert not cache.materialize_key("deb:s_1_all.deb", str(out / "dest"), mode=mode)
    finally:
        set_warning_handler(None)
    assert len(warned) == 1 and "changed during the write" in warned[0], warned
