"""A real driver (``pkgcache fetch`` with a pinned --sha256) gets the remote tier without any
change: served from the fleet with the origin gone, and unchanged when the remote is broken."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.support import until_stopped
from tests.support.cli import run_cli
from tests.support.http import FaultServer, serve_dir


@pytest.fixture
def origin(tmp_path):
    """A plain HTTP origin on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    for srv in until_stopped(serve_dir(www)):
        yield www, srv.url("")


def test_fetch_with_a_pinned_sha256_is_served_by_the_fleet_with_the_origin_gone(
        origin, make_cache, tmp_path, keypair):
    www, base = origin
    data = os.urandom(100_000)
    (www / "tool.tar.gz").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    shared = tmp_path / "shared"
    shared.mkdir()
    make_cache("a", [{"url": f"file://{shared}", "mode": "rw"}]).close()
    r = run_cli("--config", str(tmp_path / "a.yaml"), "fetch", f"{base}/tool.tar.gz",
                "--sha256", digest, "-o", str(tmp_path / "a.out"))
    assert r.returncode == 0, r.stderr
    r = run_cli("--config", str(tmp_path / "a.yaml"), "remote", "push")
    # a pinned download holds the store's lease and publishes the content at once
    assert r.returncode == 0 and "uploaded 0, already there 1" in r.stdout, r.stdout
    (www / "tool.tar.gz").unlink()  # the origin no longer has it
    make_cache("b", [{"url": f"file://{shared}"}]).close()
    r = run_cli("--config", str(tmp_path / "b.yaml"), "fetch", f"{base}/tool.tar.gz",
                "--sha256", digest, "-o", str(tmp_path / "b.out"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert (tmp_path / "b.out").read_bytes() == data


@pytest.mark.parametrize("mode", ["silent", "500", "truncated"])
def test_fetch_is_unchanged_by_a_broken_remote(origin, make_cache, tmp_path, mode):
    www, base = origin
    data = os.urandom(50_000)
    (www / "f.bin").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    srv = FaultServer(mode, data)
    try:
        make_cache("plain", []).close()
        make_cache("b", [{"url": srv.url(), "mode": "rw", "timeout": 2,
                          "read_timeout": 2}]).close()
        results = {}
        for name in ("plain", "b"):
            t = time.monotonic()
            r = run_cli("--config", str(tmp_path / f"{name}.yaml"), "fetch", f"{base}/f.bin",
                        "--sha256", digest, "-o", str(tmp_path / f"{name}.out"))
            results[name] = (r, time.monotonic() - t)
        (plain, t_plain), (broken, t_broken) = results["plain"], results["b"]
        assert plain.returncode == broken.returncode == 0
        assert (tmp_path / "b.out").read_bytes() == data == (tmp_path / "plain.out").read_bytes()
        # At most one 2 s connect/read timeout (two would cost 4 s); 1.5 s of slack for start-up
        # noise on a loaded 2-core machine.
        assert t_broken < t_plain + 2 + 1.5
        assert len(broken.stderr.splitlines()) <= 1, broken.stderr
        r = run_cli("--config", str(tmp_path / "b.yaml"), "stats", "--json")
        assert '"degraded": true' in r.stdout
    finally:
        srv.stop()
