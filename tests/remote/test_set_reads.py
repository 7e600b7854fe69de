"""Reading a shared set (``piplist:``): a signed hint naming its version's items lets a reader
take the set in two store requests (the hint, one HEAD for a newer version) instead of five; a
hint that lags, is signed by a key the reader does not trust or replays an older head is never
taken alone. On nginx WebDAV, counted in its access log."""

from __future__ import annotations

import time
from pathlib import Path

from cache_core.storage.remote.base import record_name
from cache_core.storage.remote.records import Record, encode, load_secret_key
from cache_core.storage.remote.sets import digest, encode_items, version_key
from tests.support.remote import nginx_store, write_keypair

KEY = "piplist:proj"


def _writer_and_reader(make_cache, nginx, keypair):
    store = nginx_store(nginx)
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0],
                                      trusted_public_keys=[keypair[1]])])
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    return store, a, b


def _add(cache, items: list[dict]) -> None:
    assert cache.remote.add_to_set(KEY, items)
    out = cache.remote.tier.drain(wait=True)
    assert out["failed"] == 0 and out["pending"] == 0, out


def _requests(nginx) -> int:
    return nginx.requests("GET") + nginx.requests("HEAD")


def test_a_reader_takes_a_set_in_two_store_requests(make_cache, nginx, keypair) -> None:
    _, a, b = _writer_and_reader(make_cache, nginx, keypair)
    _add(a, [{"filename": "proj-1.0-py3-none-any.whl", "sha256": "1" * 64}])
    _add(a, [{"filename": "proj-2.0-py3-none-any.whl", "sha256": "2" * 64}])
    before = _requests(nginx)
    items, signer = b.remote.read_set(KEY)
    assert signer == keypair[1]
    assert sorted(i["filename"] for i in items) == ["proj-1.0-py3-none-any.whl",
                                                    "proj-2.0-py3-none-any.whl"]
    assert _requests(nginx) - before == 2  # the hint, a HEAD for version 3 (5 before)


def test_a_hint_that_lags_is_not_taken_alone(make_cache, nginx, keypair) -> None:
    store, a, b = _writer_and_reader(make_cache, nginx, keypair)
    _add(a, [{"filename": "proj-1.0-py3-none-any.whl", "sha256": "1" * 64}])
    old_hint = store.read(record_name(KEY))
    _add(a, [{"filename": "proj-2.0-py3-none-any.whl", "sha256": "2" * 64}])
    assert old_hint is not None
    store.write(record_name(KEY), old_hint)  # another writer's older hint landed last
    items, _ = b.remote.read_set(KEY)
    assert len(items) == 2  # version 2, found by walking up from the hint


def test_a_hint_signed_by_an_untrusted_key_names_nothing(make_cache, nginx, keypair,
                                                         tmp_path: Path) -> None:
    store, a, b = _writer_and_reader(make_cache, nginx, keypair)
    _add(a, [{"filename": "proj-1.0-py3-none-any.whl", "sha256": "1" * 64}])
    write_keypair(tmp_path / "other.key", "other-1")
    bogus = [{"filename": "proj-6.6-py3-none-any.whl", "sha256": "6" * 64}]
    body = encode_items(KEY, bogus)
    forged = encode(Record(KEY, digest(body), len(body), "sethead",
                           {"head": 1, "items": bogus}, created=time.time()),
                    load_secret_key(str(tmp_path / "other.key")))
    store.write(record_name(KEY), forged)
    items, signer = b.remote.read_set(KEY)
    assert signer == keypair[1]
    assert [i["filename"] for i in items] == ["proj-1.0-py3-none-any.whl"]


def test_a_replayed_older_hint_is_refused_as_an_older_version_is(make_cache, nginx,
                                                                  keypair) -> None:
    store, a, b = _writer_and_reader(make_cache, nginx, keypair)
    _add(a, [{"filename": "proj-1.0-py3-none-any.whl", "sha256": "1" * 64}])
    old_hint = store.read(record_name(KEY))
    _add(a, [{"filename": "proj-2.0-py3-none-any.whl", "sha256": "2" * 64}])
    assert len(b.remote.read_set(KEY)[0]) == 2  # B saw version 2
    assert old_hint is not None
    # the store rolled back: version 2 gone, version 1's hint put back
    (nginx.root / "store" / record_name(version_key(KEY, 2))).unlink()
    store.write(record_name(KEY), old_hint)
    items, _ = b.remote.read_set(KEY)
    assert items == []  # refused (one warning), never the older set


def test_a_late_hint_replayed_after_a_rollback_is_refused(make_cache, nginx, keypair) -> None:
    """Writer A made version 1 and stalled; B made version 2; A's hint for version 1 landed
    last. A reader walked up to version 2. The store then drops version 2: A's genuine hint
    is refused, as version 1 itself would be (the hint carries its version's time)."""
    from cache_core.storage.remote.records import decode

    store, a, b = _writer_and_reader(make_cache, nginx, keypair)
    _add(a, [{"filename": "proj-1.0-py3-none-any.whl", "sha256": "1" * 64}])
    hint1 = store.read(record_name(KEY))
    v1 = store.read(record_name(version_key(KEY, 1)))
    assert hint1 is not None and v1 is not None
    trusted = [keypair[1]]
    assert decode(hint1, KEY, trusted, False).created == \
        decode(v1, version_key(KEY, 1), trusted, False).created
    _add(a, [{"filename": "proj-2.0-py3-none-any.whl", "sha256": "2" * 64}])  # "B"
    store.write(record_name(KEY), hint1)  # A's hint lands last
    assert len(b.remote.read_set(KEY)[0]) == 2  # the reader walks up to version 2
    (nginx.root / "store" / record_name(version_key(KEY, 2))).unlink()
    items, _ = b.remote.read_set(KEY)
    assert items == []  # refused (one warning), never version 1's set
