"""Security and robustness: traversal keys, planted symlinks, unsafe cache dirs, bad config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache_core import (
    BadKeyError,
    ConfigError,
    PackageCache,
    UnsafeCacheError,
    load_config,
    safe_filename,
)

TRAVERSAL_KEYS = ["../../etc/passwd", "/etc/passwd", "deb:../../../etc/shadow", "..", ".",
                  "sha256:../../x", "wheel:a/../../b.whl", "x/./y", "https://e/../../etc/passwd",
                  "deb:\u2025\u2025/etc", "C:\\windows\\system32"]


def files_outside(root: Path, before: set[Path]) -> set[Path]:
    return {p for p in root.rglob("*")} - before


@pytest.mark.parametrize("key", TRAVERSAL_KEYS)
def test_traversal_keys_stay_inside_cache(cache_dir: Path, tmp_path: Path, key: str):
    src = tmp_path / "payload"
    src.write_bytes(b"payload")
    before = set(tmp_path.rglob("*"))
    cache = PackageCache(str(cache_dir))
    cache.put(key, str(src))
    created = {p for p in files_outside(tmp_path, before) if cache_dir not in p.parents and p != cache_dir}
    assert created == set()
    got = cache.get(key)
    assert got is None or Path(got).parent.parent.parent == cache_dir / "objects-v1"


@pytest.mark.parametrize("key", ["a\0b", "x\x1b[31m", "", "a\u202eb", "\ud800", "k" * 5000])
def test_bad_keys_are_refused(cache_dir: Path, tmp_path: Path, key: str):
    src = tmp_path / "p"
    src.write_bytes(b"p")
    strict = PackageCache(str(cache_dir), strict=True)
    with pytest.raises(BadKeyError):
        strict.put(key, str(src))
    lenient = PackageCache(str(cache_dir))
    assert lenient.put(key, str(src)) is None
    assert lenient.get(key) is None


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_key_is_safe(tmp_path_factory, key: str):
    root = tmp_path_factory.mktemp("fuzz")
    os.chmod(root, 0o755)
    src = root / "src"
    src.write_bytes(b"z")
    cache = PackageCache(str(root / "c"))
    cache.put(key, str(src))
    got = cache.get(key)
    assert got is None or Path(got).read_bytes() == b"z"
    assert {p.name for p in root.iterdir()} <= {"src", "c"}


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "a\0", "x\n", ".pkgcache-1-a.tmp"])
def test_safe_filename_refuses(name: str):
    with pytest.raises(BadKeyError):
        safe_filename(name)


def test_safe_filename_accepts_debian_names():
    assert safe_filename("libc6_2.36-9+deb12u4_amd64.deb") == "libc6_2.36-9+deb12u4_amd64.deb"
    assert safe_filename("bash_5.2%3a15-2_amd64.deb")


def test_planted_symlink_object_is_never_followed(cache_dir: Path, tmp_path: Path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret")
    src = tmp_path / "src"
    src.write_bytes(b"secret")  # same content: even then the link is not served
    cache = PackageCache(str(cache_dir))
    digest = cache.put("k", str(src))
    obj = Path(cache.get("k"))
    obj.unlink()
    obj.symlink_to(victim)
    assert cache.get("k") is None
    assert victim.read_bytes() == b"secret"
    # a put over a planted symlink replaces the link, never writes through it
    cache.put("k", str(src))
    assert not Path(cache.object_path(digest)).is_symlink()
    assert victim.read_bytes() == b"secret"


def test_planted_symlink_shard_dir_refused(cache_dir: Path, tmp_path: Path):
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    cache = PackageCache(str(cache_dir), strict=True)
    digest = cache.calculate_hash(str(src))
    cache.index  # noqa: B018 - create the layout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (cache_dir / "objects-v1" / "sha256" / digest[:2]).symlink_to(elsewhere)
    with pytest.raises(UnsafeCacheError):
        cache.put("k", str(src))
    assert list(elsewhere.iterdir()) == []


def test_world_writable_cache_dir_refused(cache_dir: Path, tmp_path: Path):
    cache_dir.mkdir(mode=0o755)
    os.chmod(cache_dir, 0o777)
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    with pytest.raises(UnsafeCacheError, match="writable by other users"):
        PackageCache(str(cache_dir), strict=True).put("k", str(src))
    lenient = PackageCache(str(cache_dir))
    assert lenient.put("k", str(src)) is None  # fail-open: a warning, no exception
    assert lenient.get("k") is None


@pytest.mark.root  # to chown
def test_cache_dir_owned_by_other_user_refused(cache_dir: Path, tmp_path: Path):
    cache_dir.mkdir(mode=0o755)
    os.chown(cache_dir, 65534, 65534)
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    with pytest.raises(UnsafeCacheError, match="owned by uid 65534"):
        PackageCache(str(cache_dir), strict=True).put("k", str(src))


def test_cache_dir_in_world_writable_parent_without_sticky_refused(tmp_path: Path):
    parent = tmp_path / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    with pytest.raises(UnsafeCacheError, match="other users can write"):
        PackageCache(str(parent / "cache"), strict=True).put("k", str(src))


BAD_CONFIGS = [
    ("performance: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    ("performance:\n  cache:\n    enabled: maybe\n", "performance.cache.enabled: expected true or false"),
    ("performance:\n  cache:\n    max_size_gb: lots\n", "performance.cache.max_size_gb: expected a number"),
    ("performance:\n  cache:\n    max_size_gb: -1\n", "performance.cache.max_size_gb"),
    ("performance:\n  cache:\n    max_sise_gb: 3\n", "performance.cache.max_sise_gb: unknown key"),
    ("performance:\n  cache:\n    directory: 5\n", "performance.cache.directory: expected a directory"),
    ("performance:\n  cache:\n    directory: relative/dir\n", "expected an absolute path"),
    ("performance:\n  cache: yes\n", "performance.cache: expected a mapping"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_names_file_key_and_expectation(tmp_path: Path, text: str, message: str):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(str(cfg))
    assert str(cfg) in str(exc.value) and message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_config_lookup_order_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    a = tmp_path / "a.yaml"
    a.write_text("performance:\n  cache:\n    directory: /srv/a\n    max_size_gb: 2\n")
    b = tmp_path / "b.yaml"
    b.write_text("other_section: {x: 1}\nperformance:\n  cache:\n    directory: /srv/b\n")
    monkeypatch.setenv("PKGCACHE_CONFIG", str(b))
    assert load_config().directory == "/srv/b"
    cfg = load_config(str(a))
    assert cfg.directory == "/srv/a" and cfg.max_size_bytes == 2 * 1024**3
    monkeypatch.setenv("PKGCACHE_DIR", "/srv/env")
    assert load_config(str(a)).directory == "/srv/env"
    assert load_config(str(a), cache_dir="/srv/flag").directory == "/srv/flag"
    monkeypatch.setenv("PKGCACHE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="not found"):
        load_config()


def test_default_directory_for_root_and_users(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from cache_core import config

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert config.default_cache_dir() == "/var/cache/vps-configurator"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.default_cache_dir() == str(tmp_path / ".vps-configurator" / "cache")


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_config_fuzz_never_crashes(tmp_path_factory, text: str):
    from cache_core.config import parse_config

    try:
        cfg = parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml")
    else:
        assert isinstance(cfg.enabled, bool) and cfg.max_size_gb >= 0


def _state_in(monkeypatch, path: Path) -> Path | None:
    """state_dir() for path; the start-up lookup (statepath.locate, which never creates) must
    give the same answer once it exists."""
    from cache_core import statepath
    from cache_core.fs import state_dir

    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(path))
    got = state_dir()
    assert statepath.locate() == (str(got) if got else None)
    return got


def test_the_start_up_lookup_never_creates(tmp_path: Path, monkeypatch):
    from cache_core import statepath

    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path / "not" / "yet"))
    assert statepath.locate() is None
    assert not (tmp_path / "not").exists()


def test_state_dir_checks_every_component_not_only_the_last(tmp_path: Path, monkeypatch):
    """Like ssh's StrictModes: a parent others may write (without the sticky bit) or a symlink
    on the way makes the state dir unusable (None: memos cost time, never trust); it used to
    check the last component alone."""
    base = tmp_path / "chain"
    base.mkdir(0o755)
    os.chmod(base, 0o755)
    assert _state_in(monkeypatch, base / "a" / "state") == base / "a" / "state"
    assert os.stat(base / "a" / "state").st_mode & 0o777 == 0o700
    os.chmod(base / "a", 0o777)  # anyone could rename state away and put their own there
    assert _state_in(monkeypatch, base / "a" / "state") is None
    os.chmod(base / "a", 0o775)
    assert _state_in(monkeypatch, base / "a" / "state") is None
    os.chmod(base / "a", 0o1777)  # sticky, as /tmp: others cannot rename our entries
    assert _state_in(monkeypatch, base / "a" / "state") == base / "a" / "state"
    os.chmod(base / "a", 0o755)
    os.symlink(base / "a", base / "link")  # opened, not followed
    assert _state_in(monkeypatch, base / "link" / "state") is None
    assert _state_in(monkeypatch, base / "missing" / "deep" / "state") == \
        base / "missing" / "deep" / "state"


@pytest.mark.root
def test_state_dir_refuses_a_parent_another_user_owns(tmp_path: Path, monkeypatch):
    base = tmp_path / "owned"
    (base / "state").mkdir(0o700, parents=True)
    os.chmod(base, 0o755)
    assert _state_in(monkeypatch, base / "state") == base / "state"
    os.chown(base, 65534, 65534)  # nobody could swap state for a directory of theirs
    try:
        assert _state_in(monkeypatch, base / "state") is None
    finally:
        os.chown(base, 0, 0)


def test_state_dir_is_refused_when_its_acls_cannot_be_read(tmp_path: Path, monkeypatch):
    """Without /proc/self/fd (a chroot without /proc) no directory's ACL can be read: the state
    dir is refused (unknown is not "no ACL"); it used to be taken as if none had an ACL."""
    base = tmp_path / "noproc"
    base.mkdir(0o755)
    assert _state_in(monkeypatch, base / "state") == base / "state"
    real = os.getxattr

    def no_proc(path, attribute, *args, **kwargs):
        if str(path).startswith("/proc/self/fd/"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path, attribute, *args, **kwargs)

    monkeypatch.setattr(os, "getxattr", no_proc)
    assert _state_in(monkeypatch, base / "state") is None

