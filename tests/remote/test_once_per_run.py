"""Once per run: a digest whose object on a remote did not match is remembered (no process on the
host fetches and rejects the same poisoned object again: apt's seed, method and a later pip run
each asked for it before), and a deb the fleet brings in is one hit when it is served (the
prefetch and the seed's placing counted two)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from hooks.apt.fleet import prefetch

K = "deb:one_1.0_all.deb"


def test_a_poisoned_object_is_fetched_once_per_run(store, make_cache, keypair, tmp_path):
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    data = os.urandom(6000)
    src = tmp_path / "one.deb"
    src.write_bytes(data)
    digest = a.put(K, str(src))
    assert a.remote.tier.drain()["uploaded"] == 1
    store.write(f"cas/{digest}", os.urandom(len(data)))  # same size, other bytes

    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    assert b.remote.get_object(digest) is None
    first = b.stats()["remote"]
    assert first["mismatches"] == 1 and first["bytes_in"] == len(data)
    # the same process asks again (the apt method after the seed): nothing fetched
    assert b.remote.get_object(digest) is None
    assert b.get(K) is None
    b.close()
    # another process on the host (a second PackageCache on the same directory)
    b2 = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    assert b2.remote.get_object(digest) is None
    st = b2.stats()["remote"]
    assert st["mismatches"] == 1 and st["bytes_in"] == len(data) and st["hits"] == 0
    assert (b2.stats()["objects"], b2.stats()["entries"]) == (0, 0)
    # the good object published again under the same digest is not what the memory is for:
    # the remote stays asked for other digests
    other = tmp_path / "two.deb"
    other.write_bytes(os.urandom(3000))
    d2 = a.put("deb:two_1.0_all.deb", str(other))
    assert a.remote.tier.drain()["uploaded"] == 1
    assert b2.remote.get_object(d2) is not None


def test_a_deb_from_the_fleet_is_one_hit_when_served(store, make_cache, keypair, tmp_path):
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    data = os.urandom(5000)
    src = tmp_path / "hello_1.0_all.deb"
    src.write_bytes(data)
    digest = a.put("deb:hello_1.0_all.deb", str(src))
    assert a.remote.tier.drain()["uploaded"] == 1

    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    want = SimpleNamespace(fname="hello_1.0_all.deb", sha256=digest, size=len(data))
    assert prefetch(b, [want]) == (1, len(data))  # the seed's prefetch: brought in, not served
    assert b.stats()["hits"] == 0
    dest = tmp_path / "archives"
    dest.mkdir()
    assert b.materialize_key("deb:hello_1.0_all.deb", str(dest / want.fname), sha256=digest)
    st = b.stats()
    assert st["hits"] == 1 and st["misses"] == 0, st
    assert st["remote"]["hits"] == 1


def test_an_object_from_the_fleet_is_hashed_once(store, make_cache, keypair, tmp_path, monkeypatch):
    """Brought in from a remote (the apt seed's prefetch, the method's serve): hashed as it is
    written, never read again to verify it (the seed's placing hashes the copy it hands out);
    an object changed after that is hashed again, and refused."""
    from cache_core.storage.local import store as local_store

    (tmp_path / "state").mkdir(mode=0o700)  # the private state dir, as fs.safety.state_dir makes it
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    digests = []
    for n in (1, 2, 3):
        src = tmp_path / f"p{n}_1.0_all.deb"
        src.write_bytes(os.urandom(4000 * n))
        digests.append(a.put(f"deb:{src.name}", str(src)))
    assert a.remote.tier.drain()["uploaded"] == 3

    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    hashed = []
    real = local_store.sha256_fd
    monkeypatch.setattr(local_store, "sha256_fd", lambda fd: hashed.append(fd) or real(fd))
    assert b.remote.bring_object(digests[0], size=4000) is not None  # the seed's prefetch
    assert b.remote.get_object(digests[1]) is not None  # the method's serve (read-through)
    assert hashed == []
    assert b.stats()["remote"]["hits"] == 2

    # the same object changed after it was brought in: its stamp no longer matches
    assert b.remote.bring_object(digests[2], size=12000) is not None
    obj = b.object_path(digests[2])
    os.chmod(obj, 0o644)
    obj.write_bytes(os.urandom(12000))
    os.chmod(obj, 0o444)
    assert not b.store.stamped(digests[2], os.lstat(obj))
    assert b.get(f"sha256:{digests[2]}") is None  # hashed, found bad
    assert len(hashed) == 1
