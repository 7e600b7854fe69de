"""apt on the fleet (issue 14): the real apt-get and gpgv against a signed local repository
(key made with gpg here), a WebDAV remote (nginx on 127.0.0.1) and pkgcache's http method."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest

from tests.support.fleet import served_bytes

PKGS = ("alpha", "gamma")


def _ok(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"


def _provision(server) -> None:
    _ok(server.apt("update"))
    _ok(server.apt("install", *PKGS))


def _seeded_fleet(fleet):
    """Server A installs through the method (harvest) and uploads to the remote; its
    post-update hook keeps the InRelease apt accepted (the method never keeps one)."""
    a = fleet.server("a")
    a.install_snippet()
    _provision(a)
    assert a.installed("alpha") == "1.0-1" and a.installed("beta") == "2:1.0-1"
    res = a.drain()
    assert res["failed"] == 0 and res["uploaded"] >= 5, res  # 3 debs, Packages, InRelease
    return a


def test_server_a_harvests_and_uploads(fleet) -> None:
    a = _seeded_fleet(fleet)
    debs = fleet.origin.deb_requests()
    assert len(debs) == 3  # A's debs came from the origin ...
    store = fleet.nginx.root / "store" / "cas"
    for name in ("alpha", "beta", "gamma"):  # ... and are in the remote, by their index digest
        deb = fleet.repo.debs[name]
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        assert (store / digest).read_bytes() == deb.read_bytes()
    status = a.pkgcache("apt", "status")
    assert re.search(r"^method\s+active", status.stdout, re.M), status.stdout
    assert re.search(r"origin [1-9]", status.stdout), status.stdout


def test_server_b_installs_from_the_fleet_alone(fleet) -> None:
    _seeded_fleet(fleet)
    fleet.stop_origin()
    fleet.origin.reset()
    b = fleet.server("b")  # fresh root, empty local cache
    assert not b.cache_dir.exists() or not any(b.cache().keys("deb:"))
    res = b.apt("update")
    _ok(res)
    assert "unreachable; serving the cached InRelease" in res.stderr
    assert res.stderr.count("pkgcache:") == 1, res.stderr  # one line says so, nothing else
    assert not [ln for ln in res.stdout.splitlines() if ln.startswith(("W:", "E:"))], res.stdout
    res = b.apt("install", *PKGS)
    _ok(res)
    for name, ver in (("alpha", "1.0-1"), ("beta", "2:1.0-1"), ("gamma", "0.5")):
        assert b.installed(name) == ver
    assert fleet.origin.requests == []  # nothing from B reached the origin
    status = b.pkgcache("apt", "status").stdout
    assert re.search(r"remote 3 \(", status), status
    assert "release fallback 0" in status  # the install run needed no Release file


def test_origin_up_b_fetches_only_release_files_from_origin(fleet) -> None:
    _seeded_fleet(fleet)
    fleet.origin.reset()
    b = fleet.server("b")
    for step in (("update",), ("install", *PKGS)):
        res = b.apt(*step)
        _ok(res)
        assert res.stderr == "", res.stderr  # the method prints nothing on success
    assert b.installed("alpha") == "1.0-1"
    got = [r for r in fleet.origin.requests]
    assert got and all(r.rsplit("/", 1)[-1] in ("InRelease", "Release", "Release.gpg")
                       for r in got), got
    sent = served_bytes(fleet.repo.path, got)
    assert sent == (fleet.repo.path / "InRelease").stat().st_size
    packages = (fleet.repo.path / "Packages").stat().st_size
    debs = sum(p.stat().st_size for p in fleet.repo.debs.values())
    assert sent < packages + debs


def test_without_method_apt_downloads_everything(fleet) -> None:
    """The control for the test above: the counter does see what a plain apt fetches."""
    _seeded_fleet(fleet)
    fleet.origin.reset()
    b = fleet.server("b", method=False)
    _provision(b)
    assert len(fleet.origin.deb_requests()) == 3
    assert "/./Packages" in fleet.origin.requests


@pytest.mark.parametrize("origin_up", [True, False])
def test_remote_with_other_bytes_for_a_digest(fleet, origin_up: bool) -> None:
    _seeded_fleet(fleet)
    deb = fleet.repo.debs["beta"]
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    obj = fleet.nginx.root / "store" / "cas" / digest
    evil = bytearray(obj.read_bytes())
    evil[-100] ^= 0xFF  # same size, other bytes
    obj.write_bytes(bytes(evil))
    b = fleet.server("b")
    _ok(b.apt("update"))
    fleet.origin.reset()
    if not origin_up:
        fleet.stop_origin()
    res = b.apt("install", *PKGS)
    if origin_up:  # the fleet's bad copy was refused; apt got beta from the origin
        _ok(res)
        assert fleet.origin.deb_requests() == ["/./" + deb.name]
        assert b.installed("beta") == "2:1.0-1"
        assert [p.read_bytes() for p in b.archives.glob("beta_*.deb")] == [deb.read_bytes()]
    else:  # as from an unreachable origin: apt fails to fetch beta, installs nothing
        assert res.returncode != 0
        assert "Failed to fetch" in res.stdout + res.stderr
        assert b.installed("beta") is None and b.installed("alpha") is None
    for p in b.archives.glob("beta_*.deb"):
        assert p.read_bytes() == deb.read_bytes()


# A bad Release file from the origin never reaches the fleet: tests/apt_fleet/test_fleet_lists.py


def test_seed_fetches_the_plan_from_the_fleet_in_parallel(fleet) -> None:
    _seeded_fleet(fleet)
    b = fleet.server("b")
    _ok(b.apt("update"))
    before = fleet.nginx.requests("GET", "/cas/")
    res = b.pkgcache("apt", "seed", *PKGS)
    assert res.returncode == 0, res.stderr
    assert "seeded 3 .deb(s)" in res.stdout, res.stdout
    assert fleet.nginx.requests("GET", "/cas/") - before == 3
    fleet.origin.reset()
    res = b.apt("install", *PKGS)
    _ok(res)
    assert "Need to get 0 B" in res.stdout
    assert fleet.origin.deb_requests() == []
    status = b.pkgcache("apt", "status").stdout
    assert "3 fetched from the fleet" in status, status


def test_status_without_method(fleet) -> None:
    b = fleet.server("b", method=False)
    out = b.pkgcache("apt", "status").stdout
    assert re.search(r"^method\s+NOT active", out, re.M), out
    assert re.search(r"^last run\s+never", out, re.M), out


def test_pre_install_hook_fetches_from_the_fleet(fleet) -> None:
    """With the hooks too, a plain `apt-get install` on B gets its debs from the fleet before apt
    looks at archives: `Need to get 0 B`, no deb from the origin, no method download."""
    _seeded_fleet(fleet)
    b = fleet.server("b")
    b.install_snippet()
    _ok(b.apt("update"))
    fleet.origin.reset()
    res = b.apt("install", *PKGS)
    _ok(res)
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert res.stderr == "", res.stderr  # hooks and method print nothing on success
    assert fleet.origin.deb_requests() == []
    _installed = {n: b.installed(n) for n in ("alpha", "beta", "gamma")}
    assert _installed == {"alpha": "1.0-1", "beta": "2:1.0-1", "gamma": "0.5"}
    status = b.pkgcache("apt", "status").stdout
    assert "3 fetched from the fleet" in status, status


def test_a_huge_body_for_a_digest_is_read_only_to_the_size_apt_expects(fleet) -> None:
    """The store answers beta's digest with 64 MiB of junk (beta is 200 kB): every read stops
    near apt's expected size (the index's Size), apt gets beta from the origin."""
    _seeded_fleet(fleet)
    deb = fleet.repo.debs["beta"]
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    (fleet.nginx.root / "store" / "cas" / digest).write_bytes(b"\0" * (64 << 20))
    b = fleet.server("b")
    _ok(b.apt("update"))
    _ok(b.apt("install", *PKGS))
    assert b.installed("beta") == "2:1.0-1"
    sent = [int(m.group(1)) for m in re.finditer(
        rf'"GET /store/cas/{digest} HTTP/1\.1" 200 (\d+)', fleet.nginx.access_log.read_text())]
    assert sent, "the fleet was never asked for beta"
    assert max(sent) < 24 << 20, sent  # stopped near 200 kB (+ the socket buffers), not 64 MiB
