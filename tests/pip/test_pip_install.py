"""End-to-end: real pip, a real index on 127.0.0.1 that counts requests, a real cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip.install import install
from hooks.pip.store import WheelStore
from hooks.pip.target import probe
from tests.support.cli import popen_cli
from tests.support.pip import Index, Packages, make_wheel, pins_all, py, sha256_of, venv_version


def test_first_install_fills_cache_second_is_offline(cache: PackageCache, index: Index,
                                                     make_venv, pip_isolation: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    v1 = make_venv()
    rc = install(cache, ["--python", py(v1), "--index-url", index.url, "alpha", "delta"])
    assert rc == 0, capfd.readouterr().err
    assert venv_version(v1, "alpha") == "1.0" and venv_version(v1, "beta") == "1.0"
    assert venv_version(v1, "delta") == "1.0"
    first = len(index.requests)
    assert first > 0
    keys = {e.key for e in cache.keys()}
    assert {"wheel:alpha-1.0-py3-none-any.whl", "wheel:beta-1.0-py3-none-any.whl",
            "sdist:delta-1.0.tar.gz"} <= keys
    target = probe(py(v1))
    sdist_sha = cache.lookup("sdist:delta-1.0.tar.gz").digest
    assert f"built:{sdist_sha}:{target.fingerprint}" in keys
    assert pip_isolation.read_text().count("delta ") == 1  # built exactly once

    capfd.readouterr()
    # Second install into a fresh venv with the index stopped: no request, no build, and one
    # line naming the cause.
    index.stop()
    v2 = make_venv()
    rc = install(cache, ["--python", py(v2), "--index-url", index.url, "alpha", "delta"])
    err = capfd.readouterr().err
    assert rc == 0, err
    assert len(index.requests) == first
    assert venv_version(v2, "alpha") == "1.0" and venv_version(v2, "delta") == "1.0"
    assert pip_isolation.read_text().count("delta ") == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "unreachable (connection refused)" in lines[0], lines
    # Fully pinned, everything cached: silent, no request.
    v3 = make_venv()
    rc = install(cache, ["--python", py(v3), "--index-url", index.url, "alpha==1.0",
                         "beta==1.0", "delta==1.0"])
    assert rc == 0 and capfd.readouterr().err == ""


def test_pinned_lock_makes_zero_requests_with_index_running(cache: PackageCache, index: Index,
                                                           packages: Packages, make_venv,
                                                           tmp_path: Path,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "alpha"]) == 0
    before = len(index.requests)
    capfd.readouterr()
    # unpinned: resolved against the index (like pip), but no file downloaded again; silent
    assert install(cache, ["--python", py(make_venv()), "-q", "-i", index.url, "alpha"]) == 0
    assert capfd.readouterr() == ("", "")
    assert len(index.requests) > before
    assert not [r for r in index.requests[before:] if r.startswith("/files/")]
    # a pip-compile style lock (== and hashes, every dependency listed): no request at all
    lock = tmp_path / "lock.txt"
    lock.write_text(f"alpha==1.0 \\\n    --hash=sha256:{sha256_of(packages.alpha)}\n"
                    f"beta==1.0 \\\n    --hash=sha256:{sha256_of(packages.beta)}\n"
                    "    # via alpha\n")
    plain_lock = tmp_path / "plain-lock.txt"
    plain_lock.write_text("alpha==1.0\nbeta==1.0\n")
    before = len(index.requests)
    for req in (lock, plain_lock):
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, "-r", str(req)]) == 0
        assert venv_version(v, "beta") == "1.0"
    assert index.requests[before:] == []
    # pinned at the top but a dependency left open: resolved online like pip
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "alpha==1.0"]) == 0
    assert len(index.requests) > before


def test_require_hashes_online_then_offline(cache: PackageCache, index: Index, packages: Packages,
                                           make_venv, tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    req = tmp_path / "req.txt"
    req.write_text(f"alpha==1.0 --hash=sha256:{sha256_of(packages.alpha)}\n"
                   f"beta==1.0 --hash=sha256:{sha256_of(packages.beta)}\n")
    v1 = make_venv()
    assert install(cache, ["--python", py(v1), "-i", index.url, "--require-hashes",
                           "-r", str(req)]) == 0, capfd.readouterr().err
    index.stop()
    v2 = make_venv()
    assert install(cache, ["--python", py(v2), "-i", index.url, "--require-hashes",
                           "-r", str(req)]) == 0, capfd.readouterr().err
    assert venv_version(v2, "alpha") == "1.0"
    # A wrong hash must fail (and install nothing), offline as well.
    bad = tmp_path / "bad.txt"
    bad.write_text(f"alpha==1.0 --hash=sha256:{'0' * 64}\n"
                   f"beta==1.0 --hash=sha256:{sha256_of(packages.beta)}\n")
    v3 = make_venv()
    capfd.readouterr()
    assert install(cache, ["--python", py(v3), "-i", index.url, "-r", str(bad)]) != 0
    assert venv_version(v3, "alpha") is None
    assert "HASHES" in capfd.readouterr().err


def test_other_platform_wheel_never_chosen(cache: PackageCache, index: Index, packages: Packages,
                                           make_venv, capfd: pytest.CaptureFixture[str]) -> None:
    # The cache holds plat 2.0 for another machine; the index offers it too.
    cache.put(f"wheel:{packages.plat_other.name}", str(packages.plat_other),
              meta={"filename": packages.plat_other.name})
    v1 = make_venv()
    assert install(cache, ["--python", py(v1), "-i", index.url, "plat"]) == 0
    assert venv_version(v1, "plat") == "1.0"
    store = WheelStore(cache)
    names = {c.filename for c in store.candidates(probe(py(v1)), pins_all(cache))}
    assert packages.plat_other.name not in names and packages.plat_any.name in names
    # Offline, asking for the other-platform version names the reason.
    capfd.readouterr()
    assert install(cache, ["--python", py(make_venv()), "--offline", "plat==2.0"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plat" in err[0] and "incompatible tags" in err[0], err


def test_missing_package_clear_error(cache: PackageCache, index: Index, make_venv,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    venv = make_venv()
    assert install(cache, ["--python", py(venv), "-i", index.url, "nosuchpkg"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["pkgcache: pip: nosuchpkg: not found in the cache or on the index"], err
    assert install(cache, ["--python", py(venv), "--offline", "nosuchpkg"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["pkgcache: pip: nosuchpkg: not found in the cache (offline)"], err


def test_only_incompatible_wheel_on_index(cache: PackageCache, index: Index, make_venv,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "onlyother"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onlyother" in err[0] and "incompatible tags" in err[0], err


def test_only_sdist_cached_offline(cache: PackageCache, index: Index, packages: Packages,
                                   make_venv, capfd: pytest.CaptureFixture[str]) -> None:
    # Another fingerprint built delta: its wheel must not be served here.
    cache.put("sdist:delta-1.0.tar.gz", str(packages.delta), meta={"filename": "delta-1.0.tar.gz"})
    fake = packages.dir / "delta-1.0-cp39-cp39-linux_x86_64.whl"
    if not fake.exists():
        fake.write_bytes(packages.beta.read_bytes())
    cache.put(f"built:{sha256_of(packages.delta)}:cp39-cp39-x86_64-glibc2.17-centos7", str(fake),
              meta={"filename": fake.name})
    index.stop()
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "delta"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "delta" in err[0] and "only an sdist" in err[0], err


def test_unpinned_gets_the_index_version_pinned_the_cached(cache: PackageCache, index: Index, make_venv,
                                   tmp_path: Path) -> None:

    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "beta"]) == 0
    index.add(make_wheel(tmp_path, "beta", "2.0"))
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "beta"]) == 0
    assert venv_version(v, "beta") == "2.0"  # unpinned and online: pip's choice, not the cache's
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "beta==1.0"]) == 0
    assert venv_version(v, "beta") == "1.0"


def test_disabled_cache_is_plain_pip(tmp_path: Path, index: Index, make_venv,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    off = PackageCache(str(tmp_path / "off"), enabled=False)
    v = make_venv()
    assert install(off, ["--python", py(v), "-i", index.url, "alpha"]) == 0
    assert venv_version(v, "alpha") == "1.0"
    assert install(off, ["--python", py(v), "-i", index.url, "nosuchpkg"]) == 1
    assert "No matching distribution" in capfd.readouterr().err
    assert not (tmp_path / "off").exists()
    assert install(off, ["--python", py(v), "--no-such-pip-option"]) == 2


def test_cache_fault_falls_back_to_plain_pip(tmp_path: Path, index: Index, make_venv,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    broken = PackageCache(str(blocker / "cache"), strict=True)
    v = make_venv()
    assert install(broken, ["--python", py(v), "-i", index.url, "alpha"]) == 0
    assert venv_version(v, "alpha") == "1.0"
    warnings = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("pkgcache")]
    assert len(warnings) == 1 and "plain pip" in warnings[0], warnings


def test_corrupt_cached_wheel_is_never_installed(cache: PackageCache, index: Index,
                                                 packages: Packages, make_venv) -> None:
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "alpha"]) == 0
    entry = cache.lookup("wheel:beta-1.0-py3-none-any.whl")
    obj = cache.object_path(entry.digest)
    size = obj.stat().st_size
    obj.chmod(0o644)
    obj.write_bytes(b"\0" * size)  # same size: only a hash check can notice
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, "alpha"]) == 0
    assert venv_version(v, "beta") == "1.0"  # re-fetched from the index, not the bad bytes
    entry = cache.lookup("wheel:beta-1.0-py3-none-any.whl")
    assert entry is not None and entry.digest == sha256_of(packages.beta)
    assert cache.get("wheel:beta-1.0-py3-none-any.whl") is not None


def test_user_find_links_dir_is_cached(cache: PackageCache, packages: Packages, make_venv,
                                       tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    for p in (packages.alpha, packages.beta):
        (local / p.name).write_bytes(p.read_bytes())
    args = ["--no-index", "--find-links", str(local), "alpha"]
    assert install(cache, ["--python", py(make_venv()), *args]) == 0
    for p in local.iterdir():
        p.unlink()
    v = make_venv()
    assert install(cache, ["--python", py(v), *args]) == 0
    assert venv_version(v, "beta") == "1.0"


def test_concurrent_installs_share_one_cache(tmp_path: Path, index: Index, make_venv,
                                             pip_isolation: Path) -> None:
    import os
    import subprocess

    from tests.support import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO))
    venvs = [make_venv(), make_venv()]
    # The cache exists already (two first-ever opens racing is cache_core's matter): what is
    # tested is two installs filling one cache at once.
    pre = PackageCache(str(tmp_path / "shared"))
    pre.bucket("pip-v1")  # creates the cache and its index
    pre.close()
    procs = [popen_cli("pip", "install", "--python", py(v), "-q", "-i", index.url, "alpha",
                       "delta", cache_dir=tmp_path / "shared", base=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for v in venvs]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(out == ("", "") for out in outs), outs
    for v in venvs:
        assert venv_version(v, "alpha") == "1.0" and venv_version(v, "delta") == "1.0"
    shared = PackageCache(str(tmp_path / "shared"))
    assert len([e for e in shared.keys("wheel:") if e.key.startswith("wheel:beta-")]) == 1
    assert len(shared.keys("built:")) == 1
    shared.close()


def test_hash_of_an_sdist_still_installs(cache: PackageCache, index: Index, packages: Packages,
                                         make_venv, tmp_path: Path,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    # A wheel built here can never match the sdist's hash: pip must build the sdist itself.
    req = tmp_path / "req.txt"
    req.write_text(f"delta==1.0 --hash=sha256:{sha256_of(packages.delta)}\n")
    for _ in range(2):
        v = make_venv()
        assert install(cache, ["--python", py(v), "-i", index.url, "-r", str(req)]) == 0
        assert venv_version(v, "delta") == "1.0"
        if _ == 0:
            index.stop()  # the second run: the cached sdist, built offline under its hash
    assert not [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("pkgcache")]


@pytest.mark.parametrize("spelling", ["--report", "--report=", "--rep"])
def test_a_users_report_keeps_the_cache_in_use(
        spelling: str, cache: PackageCache, index: Index, make_venv, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """``--report FILE`` of the user's: pkgcache's own resolves drop it (pip keeps the last
    report given, so theirs left pkgcache's unwritten and the cache unused on every pinned
    run); the install still writes the user's report, and an online run caches what it names."""
    import json

    def report_args(name: str) -> list[str]:
        path = str(tmp_path / name)
        return [spelling + path] if spelling.endswith("=") else [spelling, path]

    pins = ["alpha==1.0", "beta==1.0"]
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, *pins]) == 0
    before = len(index.requests)
    capfd.readouterr()
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, *report_args("r1.json"),
                           *pins]) == 0
    assert venv_version(v, "alpha") == "1.0" and venv_version(v, "beta") == "1.0"
    assert capfd.readouterr().err == ""  # no "cache not used"
    assert len(index.requests) == before  # pinned and cached: no request at all
    report = json.loads((tmp_path / "r1.json").read_text())
    assert sorted(i["metadata"]["name"] for i in report["install"]) == ["alpha", "beta"]
    # online (unpinned): pip writes the user's report, pkgcache caches what it names
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, *report_args("r2.json"),
                           "plat"]) == 0
    assert "wheel:plat-1.0-py3-none-any.whl" in {e.key for e in cache.keys()}
    report = json.loads((tmp_path / "r2.json").read_text())
    assert [i["metadata"]["name"] for i in report["install"]] == ["plat"]
    # a report in a directory others can write may be forged (it names what to cache): unread
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (tmp_path / "more").mkdir()
    index.add(make_wheel(tmp_path / "more", "epsilon", "1.0"))
    v = make_venv()
    assert install(cache, ["--python", py(v), "-i", index.url, *report_args("shared/r3.json"),
                           "epsilon"]) == 0
    assert venv_version(v, "epsilon") == "1.0" and (shared / "r3.json").is_file()
    assert "wheel:epsilon-1.0-py3-none-any.whl" not in {e.key for e in cache.keys()}
