"""The uv backend's start-up (issue 12): a warm install imports only what it needs.
Timings live in bench/scenarios/startup.py (--uv); these tests check the imports and the
packaging-free wheel-name checks that decide them. Real uv, a real index on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from cache_core import PackageCache
from hooks.pip.install import install
from hooks.pip.runner import uv_bin
from hooks.pip.store import canonical_name, check_filename, project_of, wheel_tags
from hooks.pip.target import probe
from tests.support.cli import probe_imports
from tests.support.pip import Index, venv_version

NAMES = [
    "alpha-1.0-py3-none-any.whl",
    "Alpha_Beta-2.0.post1-py2.py3-none-any.whl",
    "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "pyyaml-6.0.4-CP311-cp311-MANYLINUX2014_x86_64.whl",
    "foo-1.0-1-py3-none-any.whl",            # build tag
    "foo-1.0-1abc-py3-none-any.whl",
    "foo-1.0-abc-py3-none-any.whl",          # build tag must start with a digit
    "foo-notaversion-py3-none-any.whl",      # bad version
    "foo__bar-1.0-py3-none-any.whl",         # "__" in the name part
    "foo bar-1.0-py3-none-any.whl",          # space in the name part
    "foo-1.0-py3-none.whl",                  # too few parts
    "foo-1.0-1-2-py3-none-any.whl",          # too many parts
    "foo-1.0-py3-none-any.zip",
    "foo-1.0.tar.gz",
    "café-1.0-py3-none-any.whl",
]


def _packaging_tags(name: str) -> frozenset[str] | None:
    try:
        return frozenset(str(t) for t in parse_wheel_filename(name)[3])
    except (InvalidWheelFilename, InvalidVersion):
        return None


@pytest.mark.parametrize("name", NAMES)
def test_wheel_name_checks_agree_with_packaging(name: str) -> None:
    """wheel_tags/project_of/check_filename accept exactly the names packaging parses, with
    the same tags (they no longer import packaging.utils on the uv path)."""
    want = _packaging_tags(name)
    assert wheel_tags(name) == want
    if name.endswith(".whl"):
        assert project_of(name) == (None if want is None else str(parse_wheel_filename(name)[0]))
        if want is None:
            with pytest.raises(ValueError):
                check_filename(name)
        else:
            assert check_filename(name) == name


@pytest.mark.parametrize("name", ["Foo", "foo_bar", "Foo.Bar-baz", "a__b..c--d", "Ärger_X",
                                  "pydantic-core", "zope.interface", ""])
def test_canonical_name_is_packagings(name: str) -> None:
    from packaging.utils import canonicalize_name

    assert canonical_name(name) == str(canonicalize_name(name))


def test_target_tag_rank_matches_wheel_tags(tmp_path: Path) -> None:
    """The target's supported tags and a wheel's tags are compared as the same strings."""
    target = probe(sys.executable)
    assert target.supports(wheel_tags("x-1.0-py3-none-any.whl") or frozenset())
    native = target.tags[0]  # the interpreter's most specific tag, e.g. cp311-cp311-manylinux_…
    assert target.supports(wheel_tags(f"x-1.0-{native.upper()}.whl") or frozenset())
    assert not target.supports(wheel_tags("x-1.0-cp27-cp27m-win32.whl") or frozenset())
    assert target.tag_rank[native] == 0


@pytest.mark.skipif(uv_bin() is None, reason="uv is not installed")
def test_warm_uv_install_imports_no_fleet_and_no_packaging_utils(
        cache: PackageCache, index: Index, make_venv, capfd: pytest.CaptureFixture[str]) -> None:
    """A warm uv install with the index unreachable (the bench's case) still installs from the
    cache, without importing the fleet driver (no remote tier), packaging.utils/tags or
    packaging.requirements (the request is not pinned)."""
    v1 = make_venv()
    assert install(cache, ["--python", str(v1 / "bin" / "python"), "--installer", "uv",
                           "-i", index.url, "alpha"]) == 0, capfd.readouterr().err
    index.stop()
    v2 = make_venv()
    args = ["--cache-dir", str(cache.root), "pip", "install", "--python",
            str(v2 / "bin" / "python"), "--installer", "uv", "-q", "-i", index.url, "alpha"]
    code, mods, err = probe_imports(*args, timeout=300)
    assert code == 0, err
    assert venv_version(v2, "alpha") == "1.0" and venv_version(v2, "beta") == "1.0"
    assert "installed from the cache" in err  # the index was unreachable
    assert "hooks.pip.install" in mods  # the probe saw the driver run
    # nor the view and its HTTP server (online runs only), nor traceback (importlib.util's
    # find_spec runs setuptools' distutils hack), nor html (pages for pip only)
    heavy = {"hooks.pip.fleet", "packaging.utils", "packaging.tags", "packaging.requirements",
             "cache_core.storage.remote", "hooks.pip.view", "http.server", "traceback", "html"}
    assert not heavy & set(mods), heavy & set(mods)


def test_warm_pip_install_reads_its_report_without_packaging_utils(
        cache: PackageCache, index: Index, make_venv, capfd: pytest.CaptureFixture[str]) -> None:
    """The pip backend's warm run (index unreachable) reads pip's report for the LRU times
    without packaging.utils (and packaging.tags, logging, sysconfig behind it)."""
    assert install(cache, ["--python", str(make_venv() / "bin" / "python"), "-i", index.url,
                           "alpha"]) == 0, capfd.readouterr().err
    index.stop()
    v2 = make_venv()
    code, mods, err = probe_imports("--cache-dir", str(cache.root), "pip", "install", "--python",
                                    str(v2 / "bin" / "python"), "-q", "-i", index.url, "alpha",
                                    timeout=300)
    assert code == 0 and "installed from the cache" in err, err
    assert venv_version(v2, "alpha") == "1.0" and "hooks.pip.install" in mods
    heavy = {"packaging.utils", "packaging.tags", "hooks.pip.view", "http.server", "traceback"}
    assert not heavy & set(mods), heavy & set(mods)


def test_offline_index_probe_loads_no_tls_or_urllib() -> None:
    """With the index's host unresolvable (the network gone) and no proxy, the probe answers
    with the socket module alone: no urllib.request, ssl, http.client or email on a warm run."""
    code = """import json, os, sys
for k in [k for k in os.environ if k.lower().endswith("_proxy")]:
    del os.environ[k]
sys.path.insert(0, {repo!r})
before = set(sys.modules)
from hooks.pip import build
print(json.dumps([build.probe_index("http://no-such-host.invalid/simple/"),
                  sorted(set(sys.modules) - before)]))
"""
    import json
    import subprocess

    from tests.support import REPO

    out = subprocess.run([sys.executable, "-c", code.format(repo=str(REPO))],
                         capture_output=True, text=True, check=True).stdout
    cause, mods = json.loads(out)
    assert cause.startswith("name resolution failed"), cause
    heavy = {"urllib.request", "ssl", "http.client", "email", "hooks.common.http"}
    assert not heavy & set(mods), heavy & set(mods)


_ENTRY = """import atexit, sys
sys.path.insert(0, {repo!r})
atexit.register(lambda: print("TEARDOWN", file=sys.stderr))
from hooks.cli import main
sys.exit(main())
"""


def test_pip_install_as_the_program_skips_the_teardown_and_keeps_output_and_code(
        cache: PackageCache, index: Index, make_venv, tmp_path: Path) -> None:
    """Run as the program, a pip install exits without the interpreter's teardown (no atexit
    handler runs) once the cache is closed; its output and exit code are pip's. Another
    command, and a pip install called as a function, end normally."""
    import subprocess

    from tests.support import REPO
    from tests.support.cli import child_env

    entry = tmp_path / "entry.py"
    entry.write_text(_ENTRY.format(repo=str(REPO)))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(entry), "--cache-dir", str(cache.root), *args],
                              capture_output=True, text=True, env=child_env(None, None),
                              timeout=300)

    v = make_venv()
    r = run("pip", "install", "--python", str(v / "bin" / "python"), "-i", index.url, "alpha")
    assert r.returncode == 0 and "TEARDOWN" not in r.stderr, r.stderr
    assert "Successfully installed alpha-1.0 beta-1.0" in r.stdout, r.stdout
    assert venv_version(v, "alpha") == "1.0"
    r = run("pip", "install", "--python", str(v / "bin" / "python"), "-i", index.url, "--offline",
            "no-such-project")
    assert r.returncode == 1 and "TEARDOWN" not in r.stderr, r.stderr
    assert "no-such-project" in r.stderr and "Traceback" not in r.stderr
    r = run("stats")
    assert r.returncode == 0 and "TEARDOWN" in r.stderr


# -- the warm path's memo (hooks/pip/fast.py): keys and checks, without pip ---------------------
def _venv(root: Path, name: str, python: str = sys.executable, system: bool = False) -> Path:
    """A venv as the memo key sees one: bin/python and pyvenv.cfg (with its own command line)."""
    v = root / name
    (v / "bin").mkdir(parents=True)
    (v / "bin" / "python").symlink_to(python)
    (v / "pyvenv.cfg").write_text(f"home = {Path(python).parent}\ninclude-system-site-packages "
                                  f"= {str(system).lower()}\ncommand = {python} -m venv {v}\n")
    return v


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(d))
    monkeypatch.delenv("PKGCACHE_NO_FAST_PATH", raising=False)
    monkeypatch.delenv("PKGCACHE_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return d


def test_memo_key_is_the_interpreter_and_every_input_but_not_the_venv_path(
        tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two fresh venvs of one interpreter share a memo (a re-provisioned server's new venv);
    any other argument, the environment, the working directory, the venv's settings or
    another interpreter make another key; --refresh, -v and --help never use one."""
    from hooks.pip import fast

    g = {"config": None, "cache_dir": str(tmp_path / "cache"), "quiet": False}
    args = ["--installer", "uv", "-q", "--offline", "-r", "req.txt"]

    def key(venv: Path, *extra: str, glob: dict | None = None) -> str | None:
        k = fast.key_for(glob or g, ["--python", str(venv), *args, *extra])
        return k.digest if k is not None else None

    v1, v2 = _venv(tmp_path, "v1"), _venv(tmp_path, "v2")
    base = key(v1)
    assert base is not None and key(v2) == base
    assert fast.key_for(g, ["--python", str(v2), *args]).python == str(v2 / "bin" / "python")
    others = {key(v1, "--no-deps"), key(v1, glob={**g, "cache_dir": str(tmp_path / "c2")}),
              key(_venv(tmp_path, "v3", system=True)), key(_venv(tmp_path, "v4", "/bin/sh"))}
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    others.add(key(v1))
    monkeypatch.delenv("PIP_INDEX_URL")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    others.add(key(v1))
    monkeypatch.chdir(tmp_path)
    assert key(v1) == base and base not in others and None not in others and len(others) == 6
    for flag in ("--refresh", "-v", "-vv", "--help"):
        assert key(v1, flag) is None
    monkeypatch.setenv("PKGCACHE_NO_FAST_PATH", "1")
    assert key(v1) is None


def _memo(key, rows: list[list[str]]) -> None:  # type: ignore[no-untyped-def]
    import time

    from hooks.pip import fast

    os.makedirs(os.path.dirname(key.path()), mode=0o700, exist_ok=True)
    lines = [[fast.FORMAT, key.digest], ["created", repr(time.time())], ["mode", "offline"],
             ["installer", "uv"], *rows, ["env", "PKGCACHE_T", "x"], ["envdefault"], ["end"]]
    with open(key.path(), "w", encoding="utf-8") as fh:
        fh.write("\n".join("\t".join(r) for r in lines) + "\n")
    os.chmod(key.path(), 0o600)


_RUN = """import json, sys
sys.path.insert(0, {repo!r})
before = set(sys.modules)
from hooks.cli import main
code = main({args!r})
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + json.dumps([code, sorted(set(sys.modules) - before)]) + "\\n")
"""


def test_memo_replay_loads_no_sqlite_and_refuses_a_changed_object(
        tmp_path: Path, state: Path) -> None:
    """A valid memo runs its command with nothing but os/sys-level modules (no sqlite3, yaml,
    json, subprocess, driver) and shows its output; an offered object whose stamp changed since
    its last full hash, or a planted file in the offered directory, leaves the run to the
    driver (here: no cache at all, so the driver's error)."""
    import json
    import subprocess

    from hooks.pip import fast
    from tests.support import REPO

    v = _venv(tmp_path, "v1")
    flat = tmp_path / "flat"
    flat.mkdir()
    obj = tmp_path / "obj.whl"
    obj.write_bytes(b"wheel bytes")
    (flat / "x-1.0-py3-none-any.whl").symlink_to(obj)
    argv = ["--cache-dir", str(tmp_path / "cache"), "pip", "install", "--python", str(v),
            "--installer", "uv", "--offline", "x"]
    key = fast.key_for({"config": None, "cache_dir": str(tmp_path / "cache"), "quiet": False},
                       argv[2 + 2:])
    assert key is not None
    req = tmp_path / "req.txt"
    req.write_text("x\n")
    _memo(key, [["stamp", str(req), fast.stamp(str(req))], ["listing", str(flat)],
                ["link", str(flat / "x-1.0-py3-none-any.whl"), str(obj),
                 fast.stamp(str(obj), follow=False)],
                ["cmd", "/bin/sh", "-c", 'echo "served $PKGCACHE_T"; echo note >&2']])

    def run() -> tuple[int, list[str], str, str]:
        p = subprocess.run([sys.executable, "-I", "-c", _RUN.format(repo=str(REPO), args=argv)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
        err, _, tail = p.stderr.partition("\nMODULES ")
        code, mods = json.loads(tail)
        return code, mods, p.stdout, err

    code, mods, out, err = run()
    assert (code, out, err.strip()) == (0, "served x\n", "note")
    heavy = {"sqlite3", "yaml", "json", "subprocess", "hooks.pip.install", "cache_core.api",
             "packaging", "re", "hashlib"}
    assert not heavy & set(mods), heavy & set(mods)
    os.utime(obj)  # the same bytes, a new stamp: not the file hashed last time
    code, mods, out, err = run()
    assert "served" not in out and "sqlite3" in mods
    _memo(key, [["listing", str(flat)], ["link", str(flat / "x-1.0-py3-none-any.whl"), str(obj),
                                         fast.stamp(str(obj), follow=False)],
                ["cmd", "/bin/sh", "-c", "echo served"]])
    assert run()[2] == "served\n"
    (flat / "y-1.0-py3-none-any.whl").symlink_to(obj)  # planted beside the offered files
    code, mods, out, err = run()
    assert "served" not in out and "sqlite3" in mods


def test_memo_state_dir_must_be_private_all_the_way(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm path reads its memos (commands it runs) only from a state dir that
    cache_core.fs.safety.state_dir would also accept: every directory on the way writable by
    no one else, none a symlink; it never creates one."""
    from cache_core import state_dir, state_path

    parent = tmp_path / "shared"
    parent.mkdir()
    d = parent / "state"
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(d))
    assert state_path() is None and not d.exists()  # not created
    d.mkdir(mode=0o700)
    os.chmod(parent, 0o777)  # another user could swap "state" for their own directory
    assert state_path() is None and state_dir() is None
    os.chmod(parent, 0o755)
    assert state_path() == str(d) and state_dir() == d
    os.chmod(d, 0o750)
    assert state_path() is None
    os.chmod(d, 0o700)
    (tmp_path / "link").symlink_to(parent)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(tmp_path / "link" / "state"))
    assert state_path() is None
