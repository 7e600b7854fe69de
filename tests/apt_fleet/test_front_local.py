"""The method's front serves a local hit itself (issue 24): by the object's stat stamp from its
last full hash, with no helper process, no python-apt and no hashing; an object changed since
(same size, mtime put back), a symlink or a FIFO is never served from the front: the helper
hashes it, quarantines it, and apt downloads the deb. Real apt-get against the signed repo."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

PKGS = ("alpha", "gamma")
# What starting a helper (or hashing, or python-apt) costs the front: none of it on a hit.
pytestmark = [pytest.mark.slow, pytest.mark.root]
HELPER_IMPORTS = {"subprocess", "socket", "json", "hashlib", "apt_pkg", "sqlite3"}


def _ok(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"


def _server(fleet, tmp_path: Path):
    """A server without a remote whose front logs what it imports (-X importtime)."""
    s = fleet.server("a", remotes=[])
    cfg = yaml.safe_load(s.config.read_text())
    cfg["performance"]["cache"]["apt_front_only"] = True  # the seed left to the front
    s.config.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "front-imports.log"
    s.write_method(f'exec "{s.python}" -I -S -X importtime "{s.code}/hooks/apt/method.py" '
                   f'"${{0##*/}}" 2>>"{log}"  # hooks.apt.method\n')
    s.install_snippet()
    _ok(s.apt("update"))
    _ok(s.apt("install", *PKGS))  # cold: the origin's debs are kept (and stamped)
    return s, log


def _reprovision(s, log: Path) -> subprocess.CompletedProcess[str]:
    """Remove the packages and the debs, then install again (warm)."""
    _ok(s.apt("purge", "alpha", "beta", "gamma"))
    _ok(s.apt("clean"))
    log.write_text("")
    res = s.apt("install", *PKGS)
    _ok(res)
    return res


def _imports(log: Path) -> set[str]:
    return {line.split("|")[-1].strip().split(".")[0]
            for line in log.read_text().splitlines() if line.startswith("import time:")}


def _object(s, name: str) -> Path:
    digest = hashlib.sha256(s.fleet_deb(name).read_bytes()).hexdigest()
    return s.cache_dir / "objects-v1" / "sha256" / digest[:2] / digest


@pytest.fixture
def served(fleet, tmp_path: Path):
    s, log = _server(fleet, tmp_path)
    s.fleet_deb = lambda name: fleet.repo.debs[name]
    return fleet, s, log


def test_a_warm_install_is_served_by_the_front_alone(served) -> None:
    fleet, s, log = served
    before = len(fleet.origin.deb_requests())
    res = _reprovision(s, log)
    assert len(fleet.origin.deb_requests()) == before  # every deb from the cache
    assert s.installed("alpha") == "1.0-1" and s.installed("beta") == "2:1.0-1"
    imported = _imports(log)
    assert imported, "apt started no method for the debs (placed before its download phase?)"
    assert not imported & HELPER_IMPORTS, sorted(imported & HELPER_IMPORTS)
    assert "pkgcache" not in res.stderr and not res.stderr.strip(), res.stderr
    for name in ("alpha", "beta", "gamma"):  # the bytes apt installed are the index's
        deb = next(s.archives.glob(f"{name}_*.deb"))
        assert deb.read_bytes() == fleet.repo.debs[name].read_bytes()
        assert deb.stat().st_ino != _object(s, name).stat().st_ino  # a copy, never a link
    status = s.pkgcache("apt", "status")
    assert re.search(r"local 3\b", status.stdout), status.stdout


def test_by_default_the_debs_are_placed_before_apts_download_phase(fleet, tmp_path: Path) -> None:
    """Without apt_front_only, the pre-install seed places the cached debs: apt says "Need to
    get 0 B" (the docs' promise) and no deb is asked of the origin."""
    s = fleet.server("b", remotes=[])
    s.install_snippet()
    _ok(s.apt("update"))
    _ok(s.apt("install", *PKGS))
    _ok(s.apt("purge", "alpha", "beta", "gamma"))
    _ok(s.apt("clean"))
    before = len(fleet.origin.deb_requests())
    res = s.apt("install", *PKGS)
    _ok(res)
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert len(fleet.origin.deb_requests()) == before


def _changed_same_size(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    os.chmod(path, st.st_mode & 0o777)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back; ctime moves


def test_an_object_changed_on_disk_is_not_served(served) -> None:
    fleet, s, log = served
    obj = _object(s, "gamma")
    _changed_same_size(obj)
    before = fleet.origin.deb_requests()
    _reprovision(s, log)
    after = fleet.origin.deb_requests()[len(before):]
    assert [r for r in after if "gamma" in r], after  # apt downloaded it
    assert not [r for r in after if "alpha" in r], after
    deb = next(s.archives.glob("gamma_*.deb"))
    assert deb.read_bytes() == fleet.repo.debs["gamma"].read_bytes()
    assert "subprocess" in _imports(log)  # the front asked the helper, which hashed it


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_an_object_replaced_by_a_link_or_fifo_is_not_followed(served, tmp_path: Path,
                                                              kind: str) -> None:
    fleet, s, log = served
    obj = _object(s, "gamma")
    good = tmp_path / "good.deb"
    good.write_bytes(obj.read_bytes())
    obj.unlink()
    if kind == "symlink":
        obj.symlink_to(good)  # even the right bytes: never through a link in the cache
    else:
        os.mkfifo(obj)
    before = fleet.origin.deb_requests()
    _reprovision(s, log)  # a FIFO never blocks it (apt's own timeout: 300 s)
    after = fleet.origin.deb_requests()[len(before):]
    assert [r for r in after if "gamma" in r], after
    deb = next(s.archives.glob("gamma_*.deb"))
    assert deb.read_bytes() == fleet.repo.debs["gamma"].read_bytes()
    assert not obj.is_symlink() and not obj.is_fifo()  # quarantined by the helper
    assert good.read_bytes() == fleet.repo.debs["gamma"].read_bytes()  # never written through
