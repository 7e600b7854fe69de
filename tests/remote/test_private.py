"""Private stays on this machine: downloads behind credentials (``fetch-private:`` keys, 0400)
are never pushed, uploaded or pulled by ``--all``, and a private object taken from a store is
never stored with wider access than its origin machine gave it."""

from __future__ import annotations

import hashlib
import json
import os
import stat

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
    for srv in until_stopped(serve_dir(www)):
        yield www, srv.url("")


def _mode(cache, digest: str) -> int:
    return stat.S_IMODE(os.stat(cache.object_path(digest)).st_mode)


def test_push_all_and_the_uploader_never_move_a_private_download(origin, store, make_cache,
                                                                  keypair, tmp_path):
    """Root fetches one URL with a token and one without, then `remote push --all`: only the
    public one reaches the store (content and record); an old spool entry for the private one
    is dropped by the uploader unsent."""
    www, base = origin
    secret, public = b"secret body " + os.urandom(2000), b"public body " + os.urandom(2000)
    (www / "secret.bin").write_bytes(secret)
    (www / "public.bin").write_bytes(public)
    make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])]).close()
    cfg = str(tmp_path / "a.yaml")
    for name in ("secret.bin?token=hunter2-token", "public.bin"):
        r = run_cli("--config", cfg, "fetch", f"{base}/{name}", "-o", str(tmp_path / "out"),
                    env={"PKGCACHE_REMOTE_UPLOAD": "manual"})
        assert r.returncode == 0, r.stderr
    sd, pd = hashlib.sha256(secret).hexdigest(), hashlib.sha256(public).hexdigest()
    r = run_cli("--config", cfg, "remote", "push", "--all", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    pushed = store.read(f"cas/{sd}") is not None
    assert not pushed, "a private download was pushed"
    assert (report["uploaded"], report["private"]) == (1, 1), report
    assert store.read(f"cas/{pd}") == public
    a = make_cache("a", [store.remote(mode="rw", signing_key_file=keypair[0])])
    [entry] = a.keys("fetch-private:")
    assert store.read(record_name(entry.key)) is None
    assert a.index.is_private(sd) and not a.index.is_private(pd) and _mode(a, sd) == 0o400
    # a spool entry written before the object was known private: the uploader drops it unsent
    t = a.remote.tier
    (t.spool_dir / "0-old.json").write_text(json.dumps({"key": entry.key, "sha256": sd}))
    assert t.drain()["pending"] == 0
    assert store.read(f"cas/{sd}") is None and store.read(record_name(entry.key)) is None


def test_pull_all_leaves_private_records_and_a_pulled_private_object_stays_0400(
        store, make_cache, keypair, tmp_path):
    """A store holding a private download (as an older pkgcache's push --all left it) and a
    public one: `pull --all` takes only the public one; asking for the private key itself (the
    same credentialed URL on this member) stores it 0400 and private."""
    if store.kind == "nginx":
        pytest.skip("a WebDAV store cannot list: no pull --all")
    signer = load_secret_key(keypair[0])
    objs = {}
    for key in ("fetch-private:" + "ab" * 32, "https://example.org/public.bin"):
        data = os.urandom(3000)
        digest = hashlib.sha256(data).hexdigest()
        store.write(f"cas/{digest}", data)
        store.write(record_name(key), encode(Record(key, digest, len(data), "url", {}), signer))
        objs[key] = digest
    priv_key, pub_key = list(objs)
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    b.close()
    r = run_cli("--config", str(tmp_path / "b.yaml"), "remote", "pull", "--all")
    assert r.returncode == 0, r.stdout + r.stderr
    b = make_cache("b", [store.remote(trusted_public_keys=[keypair[1]])])
    assert b.lookup(pub_key) is not None
    assert b.lookup(priv_key) is None and not b.exists(f"sha256:{objs[priv_key]}"), \
        "pull --all took a private download"
    assert b.get(priv_key) is not None  # this member asks for that very key
    assert _mode(b, objs[priv_key]) == 0o400 and b.index.is_private(objs[priv_key])
