"""The fleet member's step before pip (``fleet.index_verified``) with many projects: every
wheel the fleet holds that the index lists with the same SHA-256 is taken (its key, its link in
the pip view, this member's vouch from the index it read), dependencies found through the
wheels' metadata, no file downloaded from the index; the wheels' keys are recorded in one index
transaction, each listing read in two store requests (nginx's access log)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cache_core.index import Index as SqlIndex
from hooks.common import http
from hooks.pip import fleet
from hooks.pip.options import token
from hooks.pip.store import Artifact, WheelStore
from hooks.pip.target import probe
from tests.fleet.conftest import Fleet
from tests.support.pip import Index, make_wheel, same_name_other_bytes, sha256_of
from tests.support.remote import nginx_store

PROJECTS = 16


@pytest.fixture
def many(tmp_path: Path, nginx, make_cache, keypair, monkeypatch: pytest.MonkeyPatch):
    """(fleet, index, wheels): A cached PROJECTS wheels (proj<2k> requires proj<2k+1>) from the
    index and published them; the index serves them all."""
    monkeypatch.setenv("PKGCACHE_REMOTE_UPLOAD", "manual")  # no uploader racing the count
    fl = Fleet(nginx_store(nginx), make_cache, keypair, tmp_path)
    files = tmp_path / "index-files"
    files.mkdir()
    wheels = [make_wheel(files, f"proj{i}", "1.0",
                         requires=(f"proj{i + 1}>=1.0",) if i % 2 == 0 else ())
              for i in range(PROJECTS)]
    idx = Index(files)
    idx.start()
    arts = []
    with fl.on("a"):
        for w in wheels:
            digest = fl.a.put(f"wheel:{w.name}", str(w), sha256=sha256_of(w))
            arts.append(Artifact(name=w.name.split("-")[0], version="1.0", url=idx.url + w.name,
                                 filename=w.name, sha256=digest, requires_python=None,
                                 yanked=False, is_direct=False))
        fleet.publish(fl.a, arts)
    out = fl.push()
    assert out["failed"] == 0 and out["pending"] == 0, out
    yield fl, idx, wheels
    idx.stop()
    fl.a.close()
    fl.b.close()


def test_index_verified_takes_every_wheel_and_records_them_in_one_transaction(
        many, nginx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fl, idx, wheels = many
    req = tmp_path / "req.txt"
    req.write_text("".join(f"proj{i}\n" for i in range(0, PROJECTS, 2)))  # deps found by B
    writes: list[int] = []  # index transactions that record wheel keys
    real_add, real_add_keys = SqlIndex.add, getattr(SqlIndex, "add_keys", None)

    def add(self, key, *args, **kw):
        if key.startswith("wheel:"):
            writes.append(1)
        return real_add(self, key, *args, **kw)

    def add_keys(self, rows):
        if any(r[0].startswith("wheel:") for r in rows):
            writes.append(len(rows))
        assert real_add_keys is not None
        return real_add_keys(self, rows)

    monkeypatch.setattr(SqlIndex, "add", add)
    monkeypatch.setattr(SqlIndex, "add_keys", add_keys, raising=False)
    requests_before = nginx.requests("GET") + nginx.requests("HEAD")
    with fl.on("b"):
        store = WheelStore(fl.b)
        target = probe(sys.executable, tmp_path / "targets")
        taken = fleet.index_verified(fl.b, store, target, ["-i", idx.url, "-r", str(req)])
        store.save_trust()
    assert taken == PROJECTS
    assert len(writes) == 1, writes  # one per wheel before
    for w in wheels:
        entry = fl.b.lookup(f"wheel:{w.name}")
        assert entry is not None and entry.digest == sha256_of(w)
        link = store.files / entry.digest / w.name
        assert link.is_symlink() and link.read_bytes() == w.read_bytes()
        vouch = store.trust.get(entry.key)
        assert vouch is not None and vouch[0] == entry.digest
        assert [token(idx.url)] in vouch[1]  # from the index B read, not A's word alone
    assert not [r for r in idx.requests if r.endswith(".whl")]  # no file from the index
    used = nginx.requests("GET") + nginx.requests("HEAD") - requests_before
    assert used == 3 * PROJECTS, used  # per project: the listing (2), the wheel (1); 6 before


def test_index_verified_reads_the_index_pip_conf_names_not_pypi(
        nginx, make_cache, keypair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dependency confusion: A cached and published ``internal`` from index A (PyPI's part in
    the story); B's pip.conf names index B, whose ``internal`` is another file of that name.
    B must read B's page (pip.conf), so A's wheel is neither taken nor vouched for B's source;
    a wheel B's own index lists with the same SHA-256 is."""
    monkeypatch.setenv("PKGCACHE_REMOTE_UPLOAD", "manual")
    fl = Fleet(nginx_store(nginx), make_cache, keypair, tmp_path)
    a_files, b_files = tmp_path / "a-files", tmp_path / "b-files"
    a_files.mkdir()
    b_files.mkdir()
    public = make_wheel(a_files, "internal", "1.0")
    shared = make_wheel(a_files, "shared", "1.0")
    (b_files / shared.name).write_bytes(shared.read_bytes())  # B lists the very same file
    mine = same_name_other_bytes(b_files, "internal", "1.0")
    assert mine.name == public.name and sha256_of(mine) != sha256_of(public)
    idx_a, idx_b = Index(a_files), Index(b_files)
    idx_a.start()
    idx_b.start()
    try:
        with fl.on("a"):
            arts = [Artifact(name=w.name.split("-")[0], version="1.0", url=idx_a.url + w.name,
                             filename=w.name, sha256=fl.a.put(f"wheel:{w.name}", str(w),
                                                              sha256=sha256_of(w)),
                             requires_python=None, yanked=False, is_direct=False)
                    for w in (public, shared)]
            fleet.publish(fl.a, arts)
        assert fl.push()["failed"] == 0
        conf = tmp_path / "pip.conf"
        conf.write_text(f"[global]\nindex-url = {idx_b.url}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
        assert fleet.index_urls(["internal"]) == [idx_b.url]
        read: list[str] = []

        def reader(url: str) -> tuple[str, bytes, str] | None:
            """Pages as pip reads them; "PyPI" is index A here (no traffic leaves loopback)."""
            read.append(url)
            real = url.replace("https://pypi.org/simple/", idx_a.url)
            status, final, body = http.get(real, accept="text/html", timeout=10)
            return ("text/html", body, final) if status == 200 else None

        with fl.on("b"):
            store = WheelStore(fl.b)
            target = probe(sys.executable, tmp_path / "targets")
            taken = fleet.index_verified(fl.b, store, target, ["internal", "shared"],
                                         read=reader)
            store.save_trust()
        assert read and all(u.startswith(idx_b.url) for u in read), read
        assert taken == 1
        assert fl.b.lookup(f"wheel:{public.name}") is None
        entry = fl.b.lookup(f"wheel:{shared.name}")
        assert entry is not None and entry.digest == sha256_of(shared)
        assert store.trust.get(entry.key)[1] == [[token(idx_b.url)]]
    finally:
        idx_a.stop()
        idx_b.stop()
        fl.a.close()
        fl.b.close()
