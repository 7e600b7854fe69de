"""apt on the fleet (issue 14): real apt-get + gpgv against a signed local repository, a WebDAV
remote on 127.0.0.1 and pkgcache's http method."""

from __future__ import annotations


def _ok(res) -> None:  # noqa: ANN001
    assert res.returncode == 0, f"rc={res.returncode}\n{res.stdout}\n{res.stderr}"


def test_server_b_installs_from_the_fleet_alone(fleet) -> None:  # noqa: ANN001
    a = fleet.server("a")
    _ok(a.apt("update"))
    _ok(a.apt("install", "alpha", "gamma"))
    assert a.installed("alpha") == "1.0-1"
    assert a.pkgcache("apt", "status").returncode == 0
    print(a.pkgcache("apt", "status").stdout)
    print(a.drain())
    fleet.origin.reset()
    b = fleet.server("b")
    fleet.stop_origin()
    res = b.apt("update")
    print(res.stdout, res.stderr)
    _ok(res)
    res = b.apt("install", "alpha", "gamma")
    print(res.stdout, res.stderr)
    _ok(res)
    assert b.installed("alpha") == "1.0-1"
    assert fleet.origin.requests == []
