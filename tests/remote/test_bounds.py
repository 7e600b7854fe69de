"""A hostile store's body is bounded by the size the caller knows, and objects that do not match
count toward the breaker: a lying store costs a run a few objects' worth of bytes, not GiBs."""

from __future__ import annotations

import hashlib
import os


def test_a_body_is_read_no_further_than_the_size_the_caller_knows(store, make_cache):
    """apt knows each deb's size from its signed index: 100 kB wanted, the store sends 12 MB of
    junk under that digest: the read stops just past 100 kB, a counted mismatch."""
    real = os.urandom(100_000)
    digest = hashlib.sha256(real).hexdigest()
    store.write(f"cas/{digest}", os.urandom(12 * 1024 * 1024))
    b = make_cache("b", [store.remote()])
    assert b.remote.get_object(digest, size=len(real)) is None
    st = b.stats()["remote"]
    assert st["mismatches"] == 1 and st["bytes_in"] <= len(real) + (1 << 20), st
    assert (b.stats()["objects"], st["degraded"]) == (0, False)
    # the genuine bytes of the right size are taken (by another member: b remembers the
    # mismatched digest for a while and does not ask the store for it again, tests/remote/
    # test_once_per_run.py)
    store.write(f"cas/{digest}", real)
    path = make_cache("c", [store.remote()]).remote.get_object(digest, size=len(real))
    assert path is not None and open(path, "rb").read() == real


def test_objects_that_do_not_match_open_the_breaker(store, make_cache, tmp_path):
    """Three objects replaced by other bytes in one run: the shared breaker opens and the
    remote is not asked for a fourth."""
    good = os.urandom(5000)
    good_digest = hashlib.sha256(good).hexdigest()
    store.write(f"cas/{good_digest}", good)
    digests = []
    for _ in range(3):
        data = os.urandom(5000)
        digests.append(hashlib.sha256(data).hexdigest())
        store.write(f"cas/{digests[-1]}", os.urandom(5000))
    b = make_cache("b", [store.remote()])
    for d in digests:
        assert b.remote.get_object(d) is None
    st = b.stats()["remote"]
    assert st["mismatches"] == 3 and st["degraded"], st
    assert b.remote.get_object(good_digest) is None  # not asked: the breaker is open
    assert b.stats()["remote"]["hits"] == 0
