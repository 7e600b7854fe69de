"""Property tests (hypothesis): keys and URLs never collide or leave the cache, safe file names
stay one plain entry of their directory, structured config files parse or fail with the file's
name, and the apt hook's protocol-v3 input -- well-formed, mutated or garbage -- never makes the
hook raise, touch a file outside the cache, or print/store apt's configuration section.
(The core's own random-text key and config fuzzing is in tests/core/test_safety.py.)"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
import threading
import unicodedata
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cache_core.errors as core_errors
from cache_core import PackageCache
from cache_core.errors import BadKeyError, ConfigError
from cache_core.keys import safe_filename
from hooks.apt import hook
from hooks.apt.harvest import parse_info
from hooks.apt.naming import archive_name, is_safe_name

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fresh_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="pkgcache-prop-"))
    os.chmod(d, 0o755)
    return d


def tree(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, mode, size, mtime and content digest."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            digest = ""
            if stat.S_ISREG(st_.st_mode):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[os.path.relpath(p, root)] = (stat.S_IFMT(st_.st_mode), stat.S_IMODE(st_.st_mode),
                                             st_.st_size, st_.st_mtime_ns, digest)
    return out


# -- keys and URLs ---------------------------------------------------------------------------------
SEGMENT = st.one_of(st.sampled_from(["..", ".", "", "%2e%2e", "..%2f", "~", "/", "\\", "a b",
                                     "\u212b", "A\u030a", "\u00c5", "x" * 80]),
                    st.text(min_size=1, max_size=12))
KIND = st.sampled_from(["deb", "wheel", "sdist", "built", "url", "git", "sha256x", "Deb", "a-b"])
KEY = st.one_of(
    st.builds(lambda k, parts: f"{k}:{'/'.join(parts)}", KIND, st.lists(SEGMENT, max_size=5)),
    st.builds(lambda scheme, host, parts, q: f"{scheme}://{host}/{'/'.join(parts)}{q}",
              st.sampled_from(["http", "https", "file", "ftp", "HTTP", "s3"]),
              st.sampled_from(["deb.debian.org", "127.0.0.1:8080", "[::1]", "user:pw@host", ""]),
              st.lists(SEGMENT, max_size=6),
              st.sampled_from(["", "?a=1&b=../../x", "#frag", "?%00", "?" + "q" * 300])),
)


def _norm(key: str) -> str | None:
    from cache_core.keys import normalize_key

    try:
        return normalize_key(key)
    except BadKeyError:
        return None


@given(st.lists(KEY, min_size=1, max_size=6))
@SETTINGS
def test_keys_and_urls_round_trip_without_collisions(keys: list[str]) -> None:
    """Each accepted key gets back exactly its own content; nothing is written outside."""
    root = fresh_dir()
    try:
        cache = PackageCache(str(root / "c"))
        expected: dict[str, bytes] = {}
        for i, key in enumerate(keys):
            src = root / "src"
            data = f"{i}:{key}".encode("utf-8", "surrogatepass")
            src.write_bytes(data)
            digest = cache.cache_file(key, str(src)) if "://" in key else cache.put(key, str(src))
            norm = _norm(key)
            if norm is None or norm.startswith("sha256:"):
                continue
            assert digest == hashlib.sha256(data).hexdigest()
            expected[norm] = data
        for key in keys:
            norm = _norm(key)
            if norm in expected:
                got = cache.get_cached_file(key)
                assert got is not None and Path(got).read_bytes() == expected[norm]
                # the NFD spelling of a key names the same entry
                assert cache.exists(unicodedata.normalize("NFD", key))
        assert {e.key for e in cache.keys()} == set(expected)
        cache.close()
        assert {p.name for p in root.iterdir()} <= {"src", "c"}
    finally:
        import shutil

        shutil.rmtree(root)


# -- file names ------------------------------------------------------------------------------------
NAME = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b: a + b, st.sampled_from(["..", ".", "/", "a/", "\\", ".pkgcache-1-x",
                                                   "x\u202e", "\u00e9", "e\u0301", "%2f"]),
              st.text(max_size=10)),
    st.builds(archive_name, st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=10),
              st.sampled_from(["amd64", "all", "a/b", ".."])),
)


def _core_accepts(name: str) -> bool:
    try:
        safe_filename(name)
    except BadKeyError:
        return False
    return True


@given(NAME, st.sampled_from(["core", "apt"]))
@settings(max_examples=300, deadline=None)
def test_accepted_file_names_are_one_plain_entry(name: str, check: str) -> None:
    """A name accepted by cache_core.safe_filename (or the apt driver's is_safe_name) creates
    exactly one new entry, named name, in the directory it is joined to."""
    if not (_core_accepts(name) if check == "core" else is_safe_name(name)):
        return
    d = fresh_dir()
    try:
        inner = d / "inner"
        inner.mkdir()
        fd = os.open(os.path.join(inner, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
        os.close(fd)
        assert os.listdir(inner) == [name] and os.listdir(d) == ["inner"]
    except OSError as exc:
        assert exc.errno == 36, exc  # ENAMETOOLONG is the only acceptable refusal here
    finally:
        import shutil

        shutil.rmtree(d)


# -- config files ----------------------------------------------------------------------------------
ANY = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                st.text(max_size=20), st.lists(st.integers(), max_size=2))
CACHE_SECTION = st.dictionaries(
    st.sampled_from(["enabled", "directory", "max_size_gb", "pip_installer", "unknown", "Enabled"]),
    ANY, max_size=5)
CONFIG_DOC = st.one_of(
    st.builds(lambda c: {"performance": {"cache": c}}, CACHE_SECTION),
    st.builds(lambda c, extra: {"performance": {"cache": c, **extra}}, CACHE_SECTION,
              st.dictionaries(st.text(max_size=5), ANY, max_size=2)),
    st.builds(lambda c: {"performance": c}, ANY),
    ANY,
)


@given(CONFIG_DOC)
@settings(max_examples=300, deadline=None)
def test_structured_config_files(doc: object) -> None:
    """Any YAML document: a config whose values are the file's, or a ConfigError naming the file."""
    from cache_core.config import parse_config

    text = yaml.safe_dump(doc)
    try:
        cfg = parse_config(text, "/etc/pkgcache/fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("/etc/pkgcache/fuzz.yaml"), exc
        assert "\n" not in str(exc).strip()
        return
    section = (doc or {}).get("performance", {}) if isinstance(doc, dict) else {}
    section = section.get("cache", {}) if isinstance(section, dict) else {}
    section = section if isinstance(section, dict) else {}
    assert isinstance(cfg.enabled, bool) and cfg.max_size_gb >= 0
    if "enabled" in section:
        assert cfg.enabled is section["enabled"]
    if "max_size_gb" in section:
        assert cfg.max_size_gb == section["max_size_gb"]
    if "directory" in section:
        assert cfg.directory.endswith(section["directory"].strip().rstrip("/")) or \
            os.path.expanduser(section["directory"].strip()) == cfg.directory


# -- the apt hook's protocol-v3 input ---------------------------------------------------------------
SECRET = "s3cr3t-proxy-pw"
CONFIG_LINES = [
    "APT::Architecture=amd64",
    f"Acquire::http::Proxy=http://user:{SECRET}@proxy:3128/",
    f"Acquire::https::Proxy::deb.example=http://u:{SECRET}@p/",
    "Dir::Cache::archives=/var/cache/apt/archives/",
    "DPkg::Pre-Install-Pkgs::=/usr/sbin/dpkg-preconfigure%20--apt%20||%20true",
    f"Binary::apt::{SECRET}=1",
]


class HookWorld:
    """Debs apt would name, plus victim files outside the cache the input may point at."""

    def __init__(self) -> None:
        self.root = fresh_dir()
        self.archives = self.root / "archives"
        self.victims = self.root / "victims"
        self.archives.mkdir()
        self.victims.mkdir()
        self.debs = []
        for i, (name, version, arch) in enumerate([("hello", "2.10-3", "amd64"),
                                                   ("xxd", "2:9.0-2", "amd64"),
                                                   ("data", "1.0", "all")]):
            p = self.archives / archive_name(name, version, arch)
            p.write_bytes(os.urandom(100 + i))
            self.debs.append((name, version, arch, p))
        (self.victims / "shadow_1_all.deb").write_text("root:$6$not-a-deb\n")
        (self.victims / "shadow_1_all.deb").chmod(0o600)
        (self.victims / "dir_1_all.deb").mkdir()
        (self.victims / "link_1_all.deb").symlink_to(self.victims / "shadow_1_all.deb")
        os.mkfifo(self.victims / "fifo_1_all.deb")
        self.paths = [str(p) for *_, p in self.debs] + [
            str(self.victims / n) for n in ("shadow_1_all.deb", "dir_1_all.deb",
                                            "link_1_all.deb", "fifo_1_all.deb", "none_1_all.deb")
        ] + [str(self.archives / ".." / "victims" / "shadow_1_all.deb"), "relative_1_all.deb",
             "/dev/null.deb", "/proc/self/environ.deb", "**CONFIGURE**", "**REMOVE**"]
        self.cache_dir = self.root / "cache"
        # harvest keeps debs from apt's own archives dir only: point apt's config at ours
        self.apt_conf = self.root / "apt.conf"
        self.apt_conf.write_text(f'Dir::Cache::archives "{self.archives}/";\n')


@st.composite
def v3_block(draw: st.DrawFn, world: HookWorld) -> bytes:
    lines = [draw(st.sampled_from(["VERSION 3", "VERSION 2", "VERSION 1", "VERSION x",
                                   "VERSION 99", "VERSION", "VERSION 3 extra"]))]
    lines += draw(st.lists(st.sampled_from(CONFIG_LINES), max_size=6))
    lines.append("")
    for _ in range(draw(st.integers(0, 6))):
        name, version, arch, _ = draw(st.sampled_from(world.debs))
        path = draw(st.sampled_from(world.paths))
        fields = [draw(st.sampled_from([name, "", "..", "a/b", "x y"])), "-", "-", "none", "<",
                  draw(st.sampled_from([version, "", "1:..", "/etc"])),
                  draw(st.sampled_from([arch, "", "../..", "amd64 x"])), "none", path]
        if draw(st.booleans()):
            del fields[draw(st.integers(0, len(fields) - 1))]
        lines.append(" ".join(fields))
    data = "\n".join(lines).encode("utf-8") + draw(st.sampled_from([b"\n", b"", b"\r\n"]))
    mutation = draw(st.sampled_from(["none", "none", "truncate", "garbage", "insert", "nul"]))
    if mutation == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif mutation == "garbage":
        data = draw(st.binary(max_size=300))
    elif mutation == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]
    elif mutation == "nul":
        data = data.replace(b"/", b"/\0", 1)
    return data


def run_hook(world: HookWorld, data: bytes) -> tuple[int, str, str]:
    """`pkgcache apt hook harvest` in-process with `data` on its info fd."""
    r, w = os.pipe()

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), os.fdopen(w, "wb") as f:
            f.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    saved = core_errors.warn, os.environ.get("APT_HOOK_INFO_FD")
    saved_conf = os.environ.get("APT_CONFIG")
    os.environ["APT_HOOK_INFO_FD"] = str(r)
    os.environ["APT_CONFIG"] = str(world.apt_conf)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = hook.run("harvest", lambda: PackageCache(str(world.cache_dir)))
    finally:
        core_errors.warn = saved[0]
        hook._said.clear()
        if saved_conf is None:
            os.environ.pop("APT_CONFIG", None)
        else:
            os.environ["APT_CONFIG"] = saved_conf
        if saved[1] is None:
            os.environ.pop("APT_HOOK_INFO_FD", None)
        else:
            os.environ["APT_HOOK_INFO_FD"] = saved[1]
        feeder.join()
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def hook_world() -> HookWorld:
    world = HookWorld()
    yield world
    import shutil

    shutil.rmtree(world.root)


@pytest.mark.root  # the apt hook works for root only (others: untouched and silent)
def test_apt_hook_harness_harvests_a_well_formed_block(hook_world: HookWorld) -> None:
    """The fuzz harness below really drives the harvest: a clean v3 block stores every deb."""
    lines = ["VERSION 3", *CONFIG_LINES, ""]
    lines += [f"{n} - - none < {v} {a} none {p}" for n, v, a, p in hook_world.debs]
    rc, out, err = run_hook(hook_world, ("\n".join(lines) + "\n").encode())
    assert (rc, out, err) == (0, "", "")
    with PackageCache(str(hook_world.cache_dir)) as c:
        assert {e.key for e in c.keys("deb:")} >= {"deb:" + p.name for *_, p in hook_world.debs}


@pytest.mark.root
@given(st.data())
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_apt_hook_v3_input_fuzz(hook_world: HookWorld, data: st.DataObject) -> None:
    world = hook_world
    block = data.draw(v3_block(world))
    before = tree(world.root / "victims"), tree(world.archives)
    parsed = parse_info(io.StringIO(block.decode("utf-8", "surrogateescape")))  # never raises
    assert all(a.path for a in parsed)
    rc, out, err = run_hook(world, block)
    assert rc == 0 and out == ""
    assert len(err.splitlines()) <= 1 and "Traceback" not in err, err
    assert SECRET not in out + err
    assert (tree(world.root / "victims"), tree(world.archives)) == before
    assert {p.name for p in world.root.iterdir()} <= {"archives", "victims", "cache", "apt.conf"}
    if world.cache_dir.exists():
        for dirpath, _, filenames in os.walk(world.cache_dir):
            for name in filenames:
                p = Path(dirpath, name)
                if p.is_file() and not p.is_symlink():
                    assert SECRET.encode() not in p.read_bytes(), p
        # what was stored is a regular file the input named (apt is trusted for paths; seeding
        # checks apt's index SHA256), under a plain archive name
        files = [p for *_, p in world.debs] + [world.root / "victims" / "shadow_1_all.deb"]
        contents = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
        with PackageCache(str(world.cache_dir)) as c:
            for e in c.keys("deb:"):
                assert e.digest in contents and is_safe_name(e.key[4:]), (e.key, block)
