"""An untrusted store cannot get a wrong byte served: replaced blobs and forged, unsigned,
untrusted or moved key records all end as counted misses, with nothing ingested."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from cache_core.storage.remote.base import record_name
from cache_core.storage.remote.records import Record, encode, generate_keypair
from tests.support.cli import run_cli
from tests.support.remote import file_store

K1, K2 = "deb:one_1.0_all.deb", "deb:two_1.0_all.deb"


@pytest.fixture
def published(store, make_cache, keypair, tmp_path):
    """Two keys published by a signing writer; returns their (digest, data) pairs."""
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    out = {}
    for key, n in ((K1, 5000), (K2, 7000)):
        data = os.urandom(n)
        p = tmp_path / key.replace(":", "_")
        p.write_bytes(data)
        out[key] = (a.put(key, str(p)), data)
    assert a.remote.tier.drain()["uploaded"] == 2
    return out


def _reader(store, make_cache, keypair, name="b", **extra):
    return make_cache(name, [store.remote(trusted_public_keys=[keypair[1]], **extra)])


def _nothing_ingested(cache) -> None:
    s = cache.stats()
    assert (s["objects"], s["entries"]) == (0, 0)


def test_a_blob_replaced_by_other_bytes_of_the_same_size_is_a_counted_miss(
        store, make_cache, keypair, published, tmp_path):
    digest, data = published[K1]
    store.write(f"cas/{digest}", os.urandom(len(data)))
    b = _reader(store, make_cache, keypair)
    assert b.get(K1) is None
    assert b.remote.get_object(digest) is None
    _nothing_ingested(b)
    st = b.stats()["remote"]
    assert st["mismatches"] == 1 and st["hits"] == 0 and not st["degraded"]  # not fetched twice
    # the CLI: same answer as without a remote, and one warning line at most
    b.close()
    r = run_cli("--config", str(tmp_path / "b.yaml"), "get", K1)
    assert r.returncode == 1 and r.stdout == ""
    assert len([ln for ln in r.stderr.splitlines() if "warning" in ln]) <= 1


def test_a_record_edited_to_point_at_another_digest_fails_its_signature(
        store, make_cache, keypair, published):
    doc = json.loads(store.read(record_name(K1)))
    d2, data2 = published[K2]
    doc.update(sha256=d2, size=len(data2))  # the signature is kept: it no longer verifies
    store.write(record_name(K1), json.dumps(doc).encode())
    b = _reader(store, make_cache, keypair)
    assert b.get(K1) is None
    _nothing_ingested(b)
    assert b.stats()["remote"]["rejected_records"] == 1


def test_an_unsigned_record_is_a_miss_unless_trust_unsigned(store, make_cache, keypair, published):
    d2, data2 = published[K2]
    rec = Record(K1, d2, len(data2), "deb", {})
    store.write(record_name(K1), encode(rec, None))  # unsigned, pointing K1 at K2's bytes
    b = _reader(store, make_cache, keypair)
    assert b.get(K1) is None
    _nothing_ingested(b)
    assert b.stats()["remote"]["rejected_records"] == 1
    # the explicit opt-in accepts it (content still hash-checked): the check above can fail
    u = _reader(store, make_cache, keypair, "u", trust="unsigned")
    path = u.get(K1)
    assert path is not None and Path(path).read_bytes() == data2


def test_a_record_signed_by_an_untrusted_key_is_a_miss(store, make_cache, keypair, published,
                                                       tmp_path):
    from cache_core.storage.remote.records import load_secret_key

    secret, _public = generate_keypair("fleet-test-1")  # same name, other key
    path = tmp_path / "evil.key"
    path.write_text(secret)
    os.chmod(path, 0o600)
    d2, data2 = published[K2]
    store.write(record_name(K1), encode(Record(K1, d2, len(data2), "deb", {}),
                                        load_secret_key(str(path))))
    b = _reader(store, make_cache, keypair)
    assert b.get(K1) is None
    _nothing_ingested(b)
    # and a key name nobody trusts at all
    secret, _ = generate_keypair("stranger")
    path.write_text(secret)
    store.write(record_name(K1), encode(Record(K1, d2, len(data2), "deb", {}),
                                        load_secret_key(str(path))))
    assert b.get(K1) is None
    _nothing_ingested(b)
    assert b.stats()["remote"]["rejected_records"] == 2


def test_a_validly_signed_record_moved_to_another_key_is_a_miss(store, make_cache, keypair,
                                                                published):
    store.write(record_name(K1), store.read(record_name(K2)))  # K2's genuine record at K1's name
    b = _reader(store, make_cache, keypair)
    assert b.get(K1) is None
    _nothing_ingested(b)
    assert b.stats()["remote"]["rejected_records"] == 1
    assert b.get(K2) is not None  # the genuine record still works where it belongs


def test_a_planted_symlink_or_fifo_in_a_shared_directory_is_a_miss(make_cache, tmp_path):
    shared = tmp_path / "shared"
    data = os.urandom(3000)
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    (shared / "cas").mkdir(parents=True)
    genuine = tmp_path / "elsewhere"
    genuine.write_bytes(data)
    (shared / "cas" / digest).symlink_to(genuine)  # even pointing at the right bytes
    fifo_data = os.urandom(10)
    fifo_digest = hashlib.sha256(fifo_data).hexdigest()
    os.mkfifo(shared / "cas" / fifo_digest)
    b = make_cache("b", [{"url": f"file://{shared}"}])
    assert b.get(f"sha256:{digest}") is None
    assert b.get(f"sha256:{fifo_digest}") is None  # returns at once: never blocks on a FIFO
    _nothing_ingested(b)
    r = run_cli("--config", str(tmp_path / "b.yaml"), "remote", "push", "--all")
    assert r.returncode == 3 and "mode: rw" in r.stderr


def test_a_signed_record_cannot_be_relabelled_by_moving_a_key_tail_into_its_kind(
        make_cache, keypair, tmp_path):
    """The signed message has no field boundaries and a key may hold ';': a trusted member's
    record for ``U;<D>;<n>;url`` must not verify as a record ``U -> D`` (the tail in kind)."""
    store = file_store(tmp_path / "shared")
    evil = os.urandom(1234)
    d_evil = hashlib.sha256(evil).hexdigest()
    short = "https://nexus.example/repo/tool.tgz"
    long_key = f"{short};{d_evil};{len(evil)};url"
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    p = tmp_path / "tool.tgz"
    p.write_bytes(os.urandom(3000))
    d_real = a.put(long_key, str(p))
    assert d_real and a.remote.tier.drain()["uploaded"] == 1
    doc = json.loads(store.read(record_name(long_key)))
    assert doc["kind"] == "url"
    doc.update(key=short, sha256=d_evil, size=len(evil),
               kind=f"url;{d_real};{doc['size']};{doc['kind']}")  # the same signed bytes
    store.write(record_name(short), json.dumps(doc).encode())
    store.write(f"cas/{d_evil}", evil)
    b = _reader(store, make_cache, keypair)
    assert b.get(short) is None
    _nothing_ingested(b)
    assert b.stats()["remote"]["rejected_records"] == 1
    assert b.get(long_key) is not None  # the genuine record still verifies


def test_a_record_kind_outside_the_strict_pattern_is_never_signed(keypair):
    from cache_core.errors import RecordError
    from cache_core.storage.remote.records import load_secret_key

    with pytest.raises(RecordError):
        encode(Record("k", "0" * 64, 1, "url;x", {}), load_secret_key(keypair[0]))


def _splits(message: bytes) -> list[tuple[str, str, str, str, str]]:
    """Every way to read a signed message as (key, sha256, size, kind, meta) that decode would
    accept field by field (meta: the canonical JSON of an object)."""
    from cache_core.keys import is_digest
    from cache_core.storage.remote.records import VERSION, valid_kind

    text = message.decode()
    found = []
    for j in (i for i, ch in enumerate(text) if ch == "{" and i and text[i - 1] == ";"):
        try:
            meta = json.loads(text[j:])
        except ValueError:
            continue
        if not isinstance(meta, dict) or \
                json.dumps(meta, sort_keys=True, separators=(",", ":")) != text[j:]:
            continue
        head, _, rest = text[:j - 1].partition(";")
        if head != VERSION:
            continue
        for a in (i for i, ch in enumerate(rest) if ch == ";"):  # key ; digest ; size ; kind
            digest, size_kind = rest[a + 1:a + 65], rest[a + 65:]
            size, sep, kind = size_kind[1:].partition(";")
            if is_digest(digest) and size_kind[:1] == ";" and sep and size.isdigit() \
                    and str(int(size)) == size and valid_kind(kind):
                found.append((rest[:a], digest, size, kind, text[j:]))
    return found


def test_a_signed_message_splits_into_fields_one_way_only():
    """Keys and meta strings made of the message's own punctuation (';', '{', '"', ...), with
    digests, sizes and kinds inside them: each signed message reads back one way only."""
    import random

    rnd = random.Random(7)
    d = hashlib.sha256(b"x").hexdigest()
    bits = [";", "{", "}", '"', ":", ",", "[", "]", "\\", "a", d, "12", "url", '{"k":"',
            f";{d};12;", f";{d};3;url;{{", '"}']  # a forged digest/size/kind inside the key
    for _ in range(3000):
        key = "".join(rnd.choice(bits) for _ in range(rnd.randint(0, 8)))
        meta = {"".join(rnd.choice(bits) for _ in range(rnd.randint(0, 3))):
                rnd.choice(["".join(rnd.choice(bits) for _ in range(rnd.randint(0, 6))), 1, [";"]])
                for _ in range(rnd.randint(0, 3))}
        rec = Record(key, d, rnd.randint(0, 99), rnd.choice(["url", "deb", "apt-index"]), meta,
                     created=rnd.choice([None, 1.5]))
        assert len(_splits(rec.message())) == 1, rec
