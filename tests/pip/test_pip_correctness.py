"""Issue #10: provenance, same result as pip, verification of every file, build dependencies,
hash-locked wheelhouses with an sdist-only package, messages. Real pip and uv, a real index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip.install import install, wheelhouse
from hooks.pip.runner import uv_bin
from tests.support.pip import (
    Index,
    Packages,
    alpha_beta_lock,
    freeze,
    make_backend_sdist,
    make_backend_wheel,
    make_project,
    make_wheel,
    pip_offline_hashed,
    py,
    sha256_of,
    venv_version,
)


def _plain_pip(venv: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", py(venv), "install", "-q",
                    "--no-cache-dir", *args], check=True, capture_output=True)


def test_local_sdist_and_wheel_never_poison_the_index_namespace(
        cache: PackageCache, index: Index, make_venv, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "local"
    local.mkdir()
    # built with a build dependency from the index / needing a dependency from the index: the
    # cache cannot serve them alone, so they go through the online path
    index.add(make_backend_wheel(tmp_path))
    fake_sdist = make_backend_sdist(local, "beta", "99.0")  # named like the index's beta
    fake_wheel = make_wheel(local, "alpha", "99.0", requires=("beta>=1.0",))  # and alpha
    for path in (fake_sdist, fake_wheel):
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, str(path)]) == 0, \
            capfd.readouterr().err
    assert not [e.key for e in cache.keys() if "99.0" in e.key or
                "99.0" in str(e.meta.get("filename", ""))]
    # the same again with --offline: still served only for the same path, never stored
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "--offline", str(fake_wheel)]) == 0
    for offline in ([], ["--offline"]):
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, *offline, "beta"]) == 0
        assert venv_version(v, "beta") == "1.0"  # the index's beta, never the local 99.0
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, *offline, "alpha"]) == 0
        assert venv_version(v, "alpha") == "1.0" and venv_version(v, "beta") == "1.0"


@pytest.mark.parametrize("case", ["unpinned", "upgrade", "pre", "constraint-eager"])
def test_same_versions_as_plain_pip(case: str, cache: PackageCache, index: Index,
                                    make_venv, tmp_path: Path) -> None:
    # the cache holds alpha 1.0 / beta 1.0; the index then gets newer releases
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "alpha"]) == 0
    d = tmp_path / "new"
    d.mkdir()
    index.add(make_wheel(d, "beta", "2.0"))
    index.add(make_wheel(d, "beta", "3.0rc1"))
    index.add(make_wheel(d, "alpha", "1.1", requires=("beta>=1.0",)))
    cons = tmp_path / "c.txt"
    cons.write_text("beta<3\n")
    args = {"unpinned": ["alpha"], "upgrade": ["-U", "alpha"], "pre": ["--pre", "beta"],
            "constraint-eager": ["-U", "--upgrade-strategy", "eager", "-c", str(cons),
                                 "alpha"]}[case]
    twins = []
    for runner in ("plain", "pkgcache"):
        v = make_venv()
        if case in ("upgrade", "constraint-eager"):  # alpha 1.0 + beta 1.0 already installed
            _plain_pip(v, "-i", index.url, "alpha==1.0", "beta==1.0")
        if runner == "plain":
            _plain_pip(v, "-i", index.url, *args)
        else:
            assert install(cache, ["--python", py(v), "-q", "-i", index.url, *args]) == 0
        twins.append(freeze(v))
    assert twins[0] == twins[1]
    assert twins[0]  # something was installed


def _tamper(cache: PackageCache, key: str) -> Path:
    obj = cache.object_path(cache.lookup(key).digest)
    data = bytearray(obj.read_bytes())
    data[-30] ^= 0xFF  # same size: only a hash check can notice
    os.chmod(obj, 0o644)
    obj.write_bytes(bytes(data))
    return obj


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_object_changed_in_place_is_never_installed(installer: str, cache: PackageCache,
                                                    index: Index, packages: Packages,
                                                    make_venv, tmp_path: Path) -> None:
    if installer == "uv" and uv_bin() is None:
        pytest.skip("uv is not installed")
    base = alpha_beta_lock(tmp_path, installer, index.url)
    assert install(cache, ["--python", py(make_venv()), *base]) == 0
    assert install(cache, ["--python", py(make_venv()), *base]) == 0  # stamps recorded
    # a wheelhouse copies: the user's files never share an inode with a cache object
    wh = tmp_path / "wh"
    lock = tmp_path / "lock.txt"  # alpha_beta_lock's
    assert wheelhouse(cache, ["--python", py(make_venv()), "-i", index.url, "-r", str(lock),
                              "-d", str(wh)]) == 0
    for f in wh.glob("*.whl"):
        obj = cache.object_path(sha256_of(f))
        assert os.stat(f).st_ino != os.stat(obj).st_ino
        assert os.stat(obj).st_mode & 0o222 == 0  # objects are read-only
    _tamper(cache, "wheel:beta-1.0-py3-none-any.whl")
    before = cache.stats()["corrupt_detected"]
    index.stop()
    v = make_venv()
    rc = install(cache, ["--python", py(v), "--offline", *base])
    assert rc != 0 and venv_version(v, "beta") is None  # never the tampered bytes
    assert cache.stats()["corrupt_detected"] == before + 1
    assert cache.lookup("wheel:beta-1.0-py3-none-any.whl") is None
    # online: re-fetched from the index, the good bytes
    index.start()
    v = make_venv()
    assert install(cache, ["--python", py(v), *base]) == 0
    assert venv_version(v, "beta") == "1.0"
    assert cache.lookup("wheel:beta-1.0-py3-none-any.whl").digest == sha256_of(packages.beta)


def test_local_project_builds_offline_second_run(cache: PackageCache, index: Index,
                                                 make_venv, tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    index.add(make_backend_wheel(tmp_path))
    proj = make_project(tmp_path / "proj", "myproj", "0.1")
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, str(proj)]) == 0, \
        capfd.readouterr().err
    assert cache.lookup("wheel:pkbackend-1.0-py3-none-any.whl") is not None  # build dependency
    assert not [e for e in cache.keys() if "myproj" in e.key]  # the project itself: never
    index.stop()
    capfd.readouterr()
    for extra in (["--offline"], ["-e"]):
        v = make_venv()
        rc = install(cache, ["--python", py(v), "-i", index.url, *extra, str(proj)])
        err = capfd.readouterr().err
        assert rc == 0, err
        assert venv_version(v, "myproj") == "0.1"


def test_wheelhouse_of_hash_lock_with_sdist_only_package(cache: PackageCache, index: Index,
                                                         packages: Packages, make_venv,
                                                         tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    index.add(make_backend_wheel(tmp_path))
    gamma = index.add(make_backend_sdist(tmp_path, "gamma", "1.0"))
    lock = tmp_path / "lock.txt"
    lock.write_text(f"gamma==1.0 --hash=sha256:{sha256_of(gamma)}\n"
                    f"beta==1.0 --hash=sha256:{sha256_of(packages.beta)}\n")
    wh = tmp_path / "wh"
    assert wheelhouse(cache, ["--python", py(make_venv()), "-i", index.url, "-r", str(lock),
                              "-d", str(wh)]) == 0, capfd.readouterr().err
    names = sorted(p.name for p in wh.iterdir())
    assert "gamma-1.0.tar.gz" in names and "gamma-1.0-py3-none-any.whl" in names
    assert "pkbackend-1.0-py3-none-any.whl" in names  # builds offline from the wheelhouse
    page = (wh / "index.html").read_text()
    assert f"gamma-1.0.tar.gz#sha256={sha256_of(gamma)}" in page
    # plain pip, offline, hash-checking: takes the sdist (its hash is locked) and builds it
    # with the build dependency from the wheelhouse
    index.stop()
    v = make_venv()
    out = pip_offline_hashed(v, wh / "index.html", lock)
    assert out.returncode == 0, out.stderr
    assert venv_version(v, "gamma") == "1.0"
    # and pkgcache itself, offline, with the same lock
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", "-i", index.url, "--require-hashes",
                           "-r", str(lock)]) == 0, capfd.readouterr().err
    assert venv_version(v, "gamma") == "1.0"


def test_messages(cache: PackageCache, index: Index, packages: Packages, make_venv,
                  tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "beta"]) == 0
    capfd.readouterr()
    # only the version is missing
    assert install(cache, ["--python", py(make_venv()), "--offline", "beta==7.0"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["pkgcache: pip: beta: version ==7.0 not in the cache (have 1.0)"], err
    # the index's failure cause is named
    index.stop()
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "alpha"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alpha" in err[0] and "connection refused" in err[0], err
    # -v shows pip's own output too
    assert install(cache, ["--python", py(make_venv()), "-v", "--offline", "nosuchpkg"]) == 1
    err = capfd.readouterr().err
    assert "No matching distribution" in err and "pkgcache: pip: nosuchpkg" in err
    # an 'Ignoring' line (marker) is printed once even when the cache misses first (a hash
    # lock: the cache-only attempt runs for real, then the online one)
    index.start()
    lock = tmp_path / "lock.txt"
    lock.write_text(f"plat==1.0 --hash=sha256:{sha256_of(packages.plat_any)}\n"
                    "alpha==1.0 ; python_version < '3' "
                    f"--hash=sha256:{sha256_of(packages.alpha)}\n")
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "-r", str(lock)]) == 0
    out = capfd.readouterr().out
    assert out.count("Ignoring alpha") == 1, out
    assert venv_version(v, "plat") == "1.0"


def test_version_cached_from_another_index_never_enters_an_online_resolve(
        cache: PackageCache, index: Index, make_venv, tmp_path: Path) -> None:
    # beta 2.0 was cached from another index (e.g. PyPI); this index only has beta 1.0
    other = make_wheel(tmp_path, "beta", "2.0")
    cache.put(f"wheel:{other.name}", str(other),
              meta={"filename": other.name, "sources": ["https://other.example/simple"]})
    twins = []
    for runner in ("plain", "pkgcache"):
        v = make_venv()
        if runner == "plain":
            _plain_pip(v, "-i", index.url, "alpha")
        else:
            assert install(cache, ["--python", py(v), "-i", index.url, "alpha"]) == 0
        twins.append(freeze(v))
    assert twins[0] == twins[1] and "beta==1.0" in twins[1]


def test_no_pip_anywhere_names_how_to_pick_a_target(cache: PackageCache, make_venv,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    from importlib.machinery import PathFinder

    inst = sys.modules["hooks.pip.install"]  # the module (hooks.pip.install is the function)
    real = PathFinder.find_spec
    monkeypatch.setattr(PathFinder, "find_spec",
                        lambda name, *a, **k: None if name == "pip" else real(name, *a, **k))
    monkeypatch.setattr(inst, "_has_pip", lambda python: False)  # a target without pip
    assert install(cache, ["--python", py(make_venv()), "six"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--python" in err[0] and "virtual environment" in err[0], err
