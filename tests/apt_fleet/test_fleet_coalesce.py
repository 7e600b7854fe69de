"""Members that miss the same deb at once download it once (issue 23): the method's helper takes
the store's lease (cache_core/storage/remote/lease.py) on a miss; another member waiting for it
keeps serving apt and takes the deb from the store, by apt's Expected-SHA256, once published.

The real apt-get on each member, a slow origin on 127.0.0.1 (a signed repository), nginx WebDAV
as the store: /dav/ can create-if-absent (COPY with Overwrite: F), /store/ cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.slow

BIG = 2 << 20  # ~2 MiB of incompressible payload


def _big_repo(fleet, delay: float):
    fleet.repo.add("big", "1.0", size=BIG, seed=7)
    fleet.repo.publish()
    deb = fleet.repo.debs["big"]
    fleet.origin.app.delays[deb.name] = delay  # 128 pieces of 16 KiB
    return deb, hashlib.sha256(deb.read_bytes()).hexdigest()


def _members(fleet, loc: str, n: int = 2):
    remote = dict(fleet.remote(), url=fleet.nginx.url(loc))
    servers = [fleet.server(f"m{i}", remotes=[remote]) for i in range(n)]
    for s in servers:
        res = s.apt("update")
        assert res.returncode == 0, res.stdout + res.stderr
    fleet.origin.reset()
    return servers


def _install(server) -> subprocess.Popen[str]:
    return subprocess.Popen(["apt-get", "install", "big"], env=server.env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def _big_requests(fleet, deb) -> int:
    return sum(1 for r in fleet.origin.requests if r.endswith("/" + deb.name))


def test_two_members_missing_the_same_deb_at_once_download_it_once(fleet) -> None:
    deb, _digest = _big_repo(fleet, 0.02)  # ~2.6 s for the whole deb
    servers = _members(fleet, "dav")
    procs = [_install(s) for s in servers]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, out + err
        assert err == "", err  # nothing printed on success
    for s in servers:
        assert s.installed("big") == "1.0"
        assert [p.read_bytes() for p in s.archives.glob("big_*.deb")] == [deb.read_bytes()]
    assert _big_requests(fleet, deb) == 1  # the origin served it once for both members
    leases = fleet.nginx.root / "dav" / "lease"
    assert not leases.exists() or not any(p.is_file() for p in leases.iterdir())  # released


def test_a_holder_killed_with_kill_9_lets_the_other_fall_back_within_the_expiry(fleet) -> None:
    deb, digest = _big_repo(fleet, 2.0)  # the holder's download takes minutes
    a, b = _members(fleet, "dav")
    holder = _install(a)
    lease = fleet.nginx.root / "dav" / "lease" / digest
    deadline = time.monotonic() + 60
    while (not lease.is_file() or not _big_requests(fleet, deb)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lease.is_file() and _big_requests(fleet, deb) == 1
    os.killpg(holder.pid, signal.SIGKILL)  # apt-get, both methods and the helper: no release
    holder.communicate()
    time.sleep(0.3)
    assert lease.is_file()
    fleet.origin.app.delays.clear()  # the origin answers the next member at once
    # the holder's lease, as it would read 117 s after it was taken (the expiry is 120 s)
    lease.write_text(json.dumps({"expires": time.time() + 3}))
    started = time.monotonic()
    res = b.apt("install", "big")
    took = time.monotonic() - started
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == "", res.stderr
    assert b.installed("big") == "1.0"
    assert 2.5 <= took < 3 + 20, took  # waited for the lease, then fell back to the origin
    assert _big_requests(fleet, deb) == 2


def test_a_store_without_conditional_create_means_no_coalescing_and_no_error(fleet) -> None:
    deb, _digest = _big_repo(fleet, 0.005)
    servers = _members(fleet, "store")  # nginx without COPY: no lease can be taken
    procs = [_install(s) for s in servers]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, out + err
        assert err == "", err
    for s in servers:
        assert s.installed("big") == "1.0"
    assert _big_requests(fleet, deb) == 2  # each member downloaded it: no lease, no error


def test_two_apt_runs_on_one_machine_download_a_deb_once(fleet) -> None:
    """Two roots of one machine sharing its cache (chroot builds): the cache's local lock, even
    with a store that cannot hold a lease."""
    deb, _digest = _big_repo(fleet, 0.02)
    a, b = _members(fleet, "store")
    b.config.write_text(a.config.read_text())  # one machine: one cache
    procs = [_install(s) for s in (a, b)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, out + err
        assert err == "", err
    for s in (a, b):
        assert s.installed("big") == "1.0"
    assert _big_requests(fleet, deb) == 1
