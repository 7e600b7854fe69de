"""A co-writer of a shared ``file://`` store against root's uploader and readers: the store's
owner (a real unprivileged account) swaps ``cas/`` and ``ac/`` for symlinks to root-only
directories while root uploads; nothing is ever written or read outside the store."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cache_core import PackageCache
from tests.support.cli import run_cli
from tests.support.remote import write_keypair
from tests.support.user import User

SWAP_DIRS = textwrap.dedent("""
    import os, sys, time
    store, end = sys.argv[1], time.time() + float(sys.argv[2])
    targets = dict(zip(("cas", "ac"), sys.argv[3:5]))
    while not os.path.isdir(os.path.join(store, "cas")) or not os.listdir(os.path.join(store, "cas")):
        if time.time() > end:
            sys.exit(1)
        time.sleep(0.001)
    n = 0
    while time.time() < end:   # swap each real directory for a symlink, again and again
        for kind, victim in targets.items():
            p = os.path.join(store, kind)
            try:
                if not os.path.islink(p):
                    if os.path.isdir(p):
                        os.rename(p, p + ".moved%d" % n)
                    os.symlink(victim, p)
                    n += 1
            except OSError:
                pass
        time.sleep(0.0005)
""")


@pytest.fixture
def store_dir(user: User) -> Iterator[Path]:
    """A store directory owned by the user, in a root-owned 0755 directory under /var/tmp."""
    top = Path(tempfile.mkdtemp(prefix="pkgcache-store22-", dir="/var/tmp"))
    os.chmod(top, 0o755)
    store = top / "store"
    store.mkdir()
    os.chown(store, user.uid, user.gid)
    try:
        yield store
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _root_cache(tmp_path: Path, name: str, store: Path, key: Path, public: str,
                n: int) -> tuple[Path, bytes]:
    """Root's config (rw, signing) and cache holding n objects; (config, one object's bytes)."""
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({"performance": {"cache": {
        "directory": str(tmp_path / name),
        "remote": [{"url": f"file://{store}", "mode": "rw", "signing_key_file": str(key),
                    "trusted_public_keys": [public]}]}}}))
    os.chmod(cfg, 0o600)
    with PackageCache.from_config(str(cfg)) as cache:
        for i in range(n):
            body = b'APT::Update::Pre-Invoke { "id > /tmp/x"; };\n' + os.urandom(300_000)
            src = tmp_path / f"{name}-tool{i}.conf"
            src.write_bytes(body)
            assert cache.put(f"https://example.org/{name}/tool{i}.conf", str(src))
    return cfg, body


def _one_line(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "warning" in ln]) <= 1, r.stderr


@pytest.mark.slow
def test_symlinked_cas_and_ac_during_an_upload_never_write_outside_the_store(
        user: User, store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root pushes 40 objects with signed records while the store's owner keeps replacing cas/
    and ac/ with symlinks to root-only directories; then another root cache pushes into the
    symlinked store; then a reader asks for an object that sits behind the symlink. The
    root-only directories stay empty, each run reports one warning line (no traceback)."""
    monkeypatch.setenv("PKGCACHE_REMOTE_UPLOAD", "manual")  # the pushes below do the upload
    victims = [tmp_path / "etc-apt-conf.d", tmp_path / "root-only"]
    for v in victims:
        v.mkdir(mode=0o700)
    key = tmp_path / "signing.key"
    public = write_keypair(key, "store22-test")
    cfg, _ = _root_cache(tmp_path, "a", store_dir, key, public, 40)
    racer = user.python(SWAP_DIRS, str(store_dir), "60", *map(str, victims), background=True)
    try:
        r = run_cli("--config", str(cfg), "remote", "push", "--all", timeout=120)
    finally:
        racer.kill()
        racer.wait()
    _one_line(r)
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert os.path.islink(store_dir / "cas") and os.path.islink(store_dir / "ac")
    # a second machine's root pushes into the store as the co-writer left it
    cfg_b, body = _root_cache(tmp_path, "b", store_dir, key, public, 3)
    r = run_cli("--config", str(cfg_b), "remote", "push", "--all", timeout=120)
    for v in victims:
        assert os.listdir(v) == [], f"root wrote into {v.name} through a symlinked store dir"
    _one_line(r)
    assert r.returncode == 5 and "symlink" in r.stderr, (r.returncode, r.stderr)
    # a reader never follows the symlinked cas/ either: a counted fault, one warning
    digest = hashlib.sha256(body).hexdigest()
    (victims[0] / digest).write_bytes(body)  # the right bytes, outside the store
    rcfg = tmp_path / "reader.yaml"
    rcfg.write_text(yaml.safe_dump({"performance": {"cache": {
        "directory": str(tmp_path / "reader"),
        "remote": [{"url": f"file://{store_dir}", "trusted_public_keys": [public]}]}}}))
    g = run_cli("--config", str(rcfg), "get", f"sha256:{digest}", "-o", str(tmp_path / "out"))
    assert g.returncode == 1 and not (tmp_path / "out").exists(), g.stderr
    warnings = [ln for ln in g.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "symlink" in warnings[0], g.stderr
