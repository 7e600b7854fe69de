"""Key rotation: several trusted keys (even under one name), ``revoked_public_keys`` and
``pkgcache remote resign`` against real stores."""

from __future__ import annotations

import json

import pytest

from cache_core.storage.remote.base import record_name
from cache_core.storage.remote.records import (
    Record,
    RecordError,
    decode,
    encode,
    load_secret_key,
)
from tests.support.cli import run_cli
from tests.support.remote import write_keypair


@pytest.fixture
def keys(tmp_path):
    """Two keys with the SAME name, different bytes: (old secret, old public, new secret, new
    public)."""
    old = write_keypair(tmp_path / "old.key", "fleet")
    new = write_keypair(tmp_path / "new.key", "fleet")
    return str(tmp_path / "old.key"), old, str(tmp_path / "new.key"), new


def _sig_name_ok(data: bytes, key: str, pub: str) -> bool:
    try:
        decode(data, key, [pub], False)
        return True
    except RecordError:
        return False


def test_two_trusted_keys_with_one_name_both_verify(keys):
    """Today the first trusted key with the record's name decides: a record by the other one
    is refused."""
    old_sk, old_pub, new_sk, new_pub = keys
    rec = Record("k:1", "ab" * 32, 3, "name", {}, 1.0)
    for sk in (old_sk, new_sk):
        data = encode(rec, load_secret_key(sk))
        for order in ([old_pub, new_pub], [new_pub, old_pub]):
            assert decode(data, "k:1", order, False).sha256 == "ab" * 32
    data = encode(rec, load_secret_key(old_sk))
    with pytest.raises(RecordError, match="revoked"):
        decode(data, "k:1", [old_pub, new_pub], False, [old_pub])
    assert decode(data, "k:1", [new_pub], True, [old_pub]).key == "k:1"  # trust: unsigned
    with pytest.raises(RecordError, match="does not verify"):
        decode(data, "k:1", [new_pub], False)


def test_rotation_resign_then_revoke(store, make_cache, keys, tmp_path):
    old_sk, old_pub, new_sk, new_pub = keys
    both = [old_pub, new_pub]
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=old_sk,
                                      trusted_public_keys=both)])
    payload = {}
    for i in range(3):
        f = tmp_path / f"obj{i}"
        f.write_bytes(f"object {i}\n".encode() * 50)
        a.put(f"name:obj{i}", str(f))
        payload[f"name:obj{i}"] = f.read_bytes()
    r = a.remote.push(None, all_keys=True)
    assert r["failed"] == 0 and r["uploaded"] >= 3, r
    old_records = {k: store.read(record_name(k)) for k in payload}
    assert all(_sig_name_ok(d, k, old_pub) for k, d in old_records.items())
    # a record signed by an untrusted key stays as it is (never re-signed)
    stranger = write_keypair(tmp_path / "stranger.key", "other")
    alien = encode(Record("name:alien", "cd" * 32, 1, "name", {}, 2.0),
                   load_secret_key(str(tmp_path / "stranger.key")))
    store.write(record_name("name:alien"), alien)

    r = run_cli("--config", str(tmp_path / "a.yaml"), "remote", "resign",
                "--secret-file", new_sk, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    row = json.loads(r.stdout)[0]
    listed = store.kind != "nginx"  # the HTTP backend cannot list: this member's keys only
    assert row["resigned"] == 3 and row["listed"] == listed, row
    assert row["unverified"] == (1 if listed else 0), row
    new_records = {k: store.read(record_name(k)) for k in payload}
    for k, data in new_records.items():
        assert data != old_records[k] and _sig_name_ok(data, k, new_pub)
        assert not _sig_name_ok(data, k, old_pub)
    assert store.read(record_name("name:alien")) == alien and stranger
    r = run_cli("--config", str(tmp_path / "a.yaml"), "remote", "resign",
                "--secret-file", new_sk, "--json")
    assert json.loads(r.stdout)[0]["already"] == 3, r.stdout

    # the old key is revoked: a member accepts the new records ...
    c = make_cache("c", [store.remote(trusted_public_keys=both, revoked_public_keys=[old_pub])])
    for k, body in payload.items():
        path = c.get(k)
        assert path is not None and open(path, "rb").read() == body
    # ... and rejects an old one put back (it falls back as on a miss)
    store.write(record_name("name:obj0"), old_records["name:obj0"])
    d = make_cache("d", [store.remote(trusted_public_keys=both, revoked_public_keys=[old_pub])])
    assert d.remote.get_record("name:obj0") is None
    assert d.get("name:obj0") is None
    assert d.remote.get_record("name:obj1") is not None


def test_a_writer_whose_key_is_revoked_uploads_no_records(store, make_cache, keys, tmp_path):
    old_sk, old_pub, _, new_pub = keys
    w = make_cache("w", [store.remote(mode="rw", signing_key_file=old_sk,
                                      trusted_public_keys=[new_pub],
                                      revoked_public_keys=[old_pub])])
    f = tmp_path / "blob"
    f.write_bytes(b"x" * 100)
    w.put("name:blob", str(f))
    r = run_cli("--config", str(tmp_path / "w.yaml"), "remote", "push", "--all")
    assert r.returncode == 0, r.stderr
    assert store.read(record_name("name:blob")) is None
    assert r.stderr.count("revoked") == 1, r.stderr
    r = run_cli("--config", str(tmp_path / "w.yaml"), "remote", "status")
    assert "revoked_public_keys" in r.stderr, r.stderr
    r = run_cli("--config", str(tmp_path / "w.yaml"), "remote", "resign", "--secret-file", old_sk)
    assert r.returncode == 2 and "revoked" in r.stderr and "Traceback" not in r.stderr
