"""Signed records carry a creation time and a member refuses a record older than one it has
already seen for that key: a store that puts back an old (validly signed) URL record cannot roll
``pkgcache fetch`` back while the origin is down."""

from __future__ import annotations

import pytest

from cache_core.storage.remote.base import record_name
from cache_core.storage.remote.records import Record, encode, load_secret_key
from tests.support import until_stopped
from tests.support.cli import run_cli
from tests.support.http import serve_dir


@pytest.fixture
def origin(tmp_path):
    """A plain HTTP origin on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    yield from until_stopped(serve_dir(www))


def test_a_replayed_older_record_is_refused_by_a_member_that_saw_a_newer_one(
        origin, store, make_cache, keypair, tmp_path):
    www = tmp_path / "www"
    url_path = "tool.conf"
    signer = {"signing_key_file": keypair[0], "mode": "rw"}
    make_cache("a", [store.remote(**signer)]).close()
    for name in ("b", "b2"):
        make_cache(name, [store.remote(trusted_public_keys=[keypair[1]])]).close()
    old_record = None
    url = origin.url("/" + url_path)
    for version in (b"version = 1.0 (vulnerable)\n", b"version = 1.1 (the fix)\n"):
        (www / url_path).write_bytes(version)
        r = run_cli("--config", str(tmp_path / "a.yaml"), "fetch", url, "--refresh",
                    "-o", str(tmp_path / "a.out"))
        assert r.returncode == 0 and (tmp_path / "a.out").read_bytes() == version, r.stderr
        r = run_cli("--config", str(tmp_path / "a.yaml"), "remote", "push", "--all")
        assert r.returncode == 0, r.stdout + r.stderr
        old_record = old_record or store.read(record_name(url))
    assert store.read(record_name(url)) != old_record
    origin.stop()  # the origin goes down
    r = run_cli("--config", str(tmp_path / "b.yaml"), "fetch", url, "-o", str(tmp_path / "b.out"))
    assert r.returncode == 0 and (tmp_path / "b.out").read_bytes() == b"version = 1.1 (the fix)\n"
    store.write(record_name(url), old_record)  # the store replays the older, validly signed one
    # the member is rebuilt with an empty cache (its state dir, like /var/lib/pkgcache, is kept)
    r = run_cli("--config", str(tmp_path / "b2.yaml"), "fetch", url, "-o", str(tmp_path / "b2.out"))
    served = (tmp_path / "b2.out").read_bytes() if (tmp_path / "b2.out").exists() else b""
    assert b"1.0" not in served, "an old record rolled the member back"
    assert r.returncode != 0 and "Traceback" not in r.stderr
    b2 = make_cache("b2", [store.remote(trusted_public_keys=[keypair[1]])])
    assert b2.stats()["remote"]["rejected_records"] == 1


def test_records_without_a_time_still_work_until_a_timed_one_was_seen(store, make_cache, keypair):
    """Records written by an older pkgcache (no time) are accepted as before, unless this member
    has already accepted a timed record for the key."""
    signer = load_secret_key(keypair[0])
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    digest = "ab" * 32
    store.write(record_name("k:old"), encode(Record("k:old", digest, 1, "name", {}), signer))
    rec = b.remote.get_record("k:old")
    assert rec is not None and rec.created is None and rec.meta == {}
    store.write(record_name("k:new"), encode(Record("k:new", digest, 1, "name", {"x": 1},
                                                    created=1000.5), signer))
    rec = b.remote.get_record("k:new")
    assert rec is not None and rec.created == 1000.5 and rec.meta == {"x": 1}
    store.write(record_name("k:new"), encode(Record("k:new", digest, 1, "name", {}), signer))
    assert b.remote.get_record("k:new") is None  # untimed after a timed one: refused
