"""The uv backend's start-up (issue 12): a warm install imports only what it needs.
Timings live in bench/scenarios/startup.py (--uv); these tests check the imports and the
packaging-free wheel-name checks that decide them. Real uv, a real index on 127.0.0.1."""

from __future__ import annotations

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
