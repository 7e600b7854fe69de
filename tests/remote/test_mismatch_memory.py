"""A digest whose object on a remote did not match is remembered for the run: no process on the
host fetches and rejects the same poisoned object again (apt's seed, method and a later pip run
each asked for it before)."""

from __future__ import annotations

import os

from cache_core.storage import remote

K = "deb:one_1.0_all.deb"


def test_a_poisoned_object_is_fetched_once_per_run(store, make_cache, keypair, tmp_path):
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    data = os.urandom(6000)
    src = tmp_path / "one.deb"
    src.write_bytes(data)
    digest = a.put(K, str(src))
    assert remote.tier(a).drain()["uploaded"] == 1
    store.write(f"cas/{digest}", os.urandom(len(data)))  # same size, other bytes

    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    assert remote.get_object(b, digest) is None
    first = b.stats()["remote"]
    assert first["mismatches"] == 1 and first["bytes_in"] == len(data)
    # the same process asks again (the apt method after the seed): nothing fetched
    assert remote.get_object(b, digest) is None
    assert b.get(K) is None
    b.close()
    # another process on the host (a second PackageCache on the same directory)
    b2 = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    assert remote.get_object(b2, digest) is None
    st = b2.stats()["remote"]
    assert st["mismatches"] == 1 and st["bytes_in"] == len(data) and st["hits"] == 0
    assert (b2.stats()["objects"], b2.stats()["entries"]) == (0, 0)
    # the good object published again under the same digest is not what the memory is for:
    # the remote stays asked for other digests
    other = tmp_path / "two.deb"
    other.write_bytes(os.urandom(3000))
    d2 = a.put("deb:two_1.0_all.deb", str(other))
    assert remote.tier(a).drain()["uploaded"] == 1
    assert remote.get_object(b2, d2) is not None
