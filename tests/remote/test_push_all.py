"""``remote push --all`` sends every object of the cache: keyed ones, and objects stored by
digest only (``sha256:`` keys have no key row), e.g. filled before the remote was configured."""

from __future__ import annotations

import hashlib


def test_push_all_sends_objects_stored_by_digest_only(store, make_cache, tmp_path):
    blobs = [f"digest-only object {i}\n".encode() * 300 for i in range(3)]
    keyed = b"a keyed object\n" * 300
    offline = make_cache("m", [])  # no remote yet: nothing is queued
    for i, data in enumerate(blobs):
        f = tmp_path / f"blob{i}"
        f.write_bytes(data)
        d = hashlib.sha256(data).hexdigest()
        assert offline.put(f"sha256:{d}", str(f)) == d
    (tmp_path / "keyed").write_bytes(keyed)
    offline.put("name:keyed", str(tmp_path / "keyed"))
    offline.close()
    m = make_cache("m", [store.remote(mode="rw")])  # the same cache, now on the fleet
    out = m.remote.push(None, all_keys=True)
    assert out["failed"] == 0 and out["pending"] == 0, out
    for data in [*blobs, keyed]:
        assert store.read(f"cas/{hashlib.sha256(data).hexdigest()}") == data
    m.close()
