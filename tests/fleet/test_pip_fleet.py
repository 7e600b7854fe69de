"""`pkgcache pip install` on the fleet: server A installs from a real PEP 503 index on
127.0.0.1, server B installs the same requirements from the fleet (WebDAV or S3): with the index
stopped (0 requests, same versions), with it running (pages only, no file), hash-locked (nothing
at all); a poisoned listing never gets a wrong file installed. Every member has its own cache
and its own private state dir (fleet.pip / fleet.cli): what B is offered, it vouched for
itself, on the strength of A's signed records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_core.storage.remote.base import record_name
from cache_core.storage.remote.records import Record, encode, load_secret_key
from tests.support.pip import Index, Packages, make_sdist, make_wheel, py, sha256_of, venv_version

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    d = tmp_path_factory.mktemp("dists")
    return Packages(dir=d, alpha=make_wheel(d, "alpha", "1.0", requires=("beta>=1.0",)),
                    beta=make_wheel(d, "beta", "1.0"), delta=make_sdist(d, "delta", "1.0"),
                    plat_any=d, plat_other=d, onlyother=d, newpy=d)


@pytest.fixture
def index(tmp_path: Path, packages: Packages) -> Iterator[Index]:
    files = tmp_path / "index-files"
    files.mkdir()
    idx = Index(files)
    for p in (packages.alpha, packages.beta, packages.delta):
        idx.add(p)
    idx.start()
    yield idx
    idx.stop()



@pytest.fixture
def reqs(tmp_path: Path, packages: Packages) -> tuple[Path, Path]:
    """req.txt (a wheel with a dependency and an sdist-only package) and its hash-locked form."""
    req = tmp_path / "req.txt"
    req.write_text("alpha\ndelta\n")
    locked = tmp_path / "locked.txt"
    locked.write_text(f"alpha==1.0 --hash=sha256:{sha256_of(packages.alpha)}\n"
                      f"beta==1.0 --hash=sha256:{sha256_of(packages.beta)}\n")
    return req, locked


@pytest.fixture
def served_a(fleet, index, make_venv, reqs, pip_isolation):
    """Server A installed req.txt from the index and uploaded what it cached."""
    v = make_venv()
    assert fleet.pip(fleet.a, ["--python", py(v), "-i", index.url, "-r", str(reqs[0])]) == 0
    out = fleet.push()
    assert out["pending"] == 0 and out["failed"] == 0, out
    assert pip_isolation.read_text().count("delta ") == 1
    return {n: venv_version(v, n) for n in ("alpha", "beta", "delta")}


def test_index_stopped_b_installs_the_same_versions_from_the_fleet(
        fleet, index, served_a, make_venv, reqs, pip_isolation, capfd):
    before = len(index.requests)
    index.stop()
    v = make_venv()
    rc = fleet.pip(fleet.b, ["--python", py(v), "-i", index.url, "-r", str(reqs[0])])
    assert rc == 0, capfd.readouterr().err
    assert len(index.requests) == before
    assert {n: venv_version(v, n) for n in served_a} == served_a
    assert pip_isolation.read_text().count("delta ") == 1  # A's built wheel, not rebuilt on B
    assert fleet.b.stats()["hits"] == len(served_a)  # one hit per file served, not two
    # and the hash-locked variant on a third member, index still stopped
    c = fleet.member("c")
    v = make_venv()
    assert fleet.pip(c, ["--python", py(v), "-i", index.url, "-r", str(reqs[1])]) == 0
    assert venv_version(v, "alpha") == served_a["alpha"]
    c.close()


def test_index_running_b_fetches_no_file_from_it(fleet, index, served_a, make_venv, reqs,
                                                 pip_isolation, capfd):
    before = len(index.requests)
    v = make_venv()
    rc = fleet.pip(fleet.b, ["--python", py(v), "-i", index.url, "-r", str(reqs[0])])
    assert rc == 0, capfd.readouterr().err
    new = index.requests[before:]
    assert new and not [p for p in new if "/files/" in p], new  # pages (and the probe) only
    assert {n: venv_version(v, n) for n in served_a} == served_a
    assert pip_isolation.read_text().count("delta ") == 1
    # hash-locked on a fresh member: not even a page
    c = fleet.member("c")
    before = len(index.requests)
    v = make_venv()
    assert fleet.pip(c, ["--python", py(v), "-i", index.url, "-r", str(reqs[1])]) == 0
    assert index.requests[before:] == []
    assert venv_version(v, "alpha") == "1.0" and venv_version(v, "beta") == "1.0"
    c.close()
    assert "pkgcache" not in capfd.readouterr().err  # silent on success


def test_index_running_b_with_its_own_state_dir_fetches_no_file(
        fleet, index, served_a, make_venv, reqs, pip_isolation, tmp_path, capfd):
    """A real member B has its own private state dir (trust record): what it takes from the
    fleet because the index lists it with the same SHA-256 must be offered to pip all the same
    (found by the fleet demo: B downloaded every wheel again from the index)."""
    if fleet.store.kind != "nginx":
        pytest.skip("the trust record is the same for every backend; one is enough (CI time)")
    pinned = tmp_path / "pinned.txt"
    pinned.write_text("alpha==1.0\nbeta==1.0\n")
    for req in (pinned, reqs[0]):  # fully pinned (not hash-locked), then unpinned
        b = fleet.member(f"b-{req.stem}")
        before = len(index.requests)
        v = make_venv()
        rc = fleet.pip(b, ["--python", py(v), "-i", index.url, "-r", str(req)])
        assert rc == 0, capfd.readouterr().err
        new = index.requests[before:]
        assert not [p for p in new if "/files/" in p and ".whl" in p], (req.name, new)
        # fully pinned: from the fleet's signed listings, not even a page (test_pip_pages)
        assert (new == []) if req is pinned else bool(new), (req.name, new)
        assert venv_version(v, "alpha") == served_a["alpha"]
        b.close()


def _put_listing(fleet, project: str, files: dict, signed: bool) -> None:
    """Write a listing straight into the store as a hostile writer would: the next version of
    the shared set ``piplist:<project>`` (content + record) and the hint naming it."""
    import hashlib

    key = f"piplist:{project}"
    n = 1
    while fleet.store.read(record_name(f"{key}#{n}")) is not None:
        n += 1
    body = json.dumps({"set": key, "items": [{"filename": k, **v} for k, v in files.items()]}
                      ).encode()
    digest = hashlib.sha256(body).hexdigest()
    fleet.store.write(f"cas/{digest}", body)
    signer = load_secret_key(fleet.key[0]) if signed else None
    fleet.store.write(record_name(f"{key}#{n}"), encode(
        Record(f"{key}#{n}", digest, len(body), "setv", {}), signer))
    fleet.store.write(record_name(key), encode(
        Record(key, digest, len(body), "sethead", {"head": n}), signer))


def test_a_poisoned_listing_never_gets_a_wrong_file_installed(
        fleet, index, served_a, make_venv, reqs, packages, capfd):
    index.stop()
    # a trusted but wrong listing: alpha's wheel name -> beta's (genuine) bytes
    _put_listing(fleet, "alpha", {packages.alpha.name: {"sha256": sha256_of(packages.beta)}},
                 signed=True)
    # an unsigned listing naming a wheel that exists nowhere else
    evil = make_wheel(packages.dir.parent, "gamma", "6.6")
    fleet.store.write(f"cas/{sha256_of(evil)}", evil.read_bytes())
    _put_listing(fleet, "gamma", {evil.name: {"sha256": sha256_of(evil)}}, signed=False)
    v = make_venv()
    rc = fleet.pip(fleet.b, ["--python", py(v), "-i", index.url, "alpha", "gamma"])
    assert rc != 0
    assert venv_version(v, "alpha") is None and venv_version(v, "beta") is None
    assert venv_version(v, "gamma") is None
    keys = {e.key for e in fleet.b.keys()}
    assert f"wheel:{packages.alpha.name}" not in keys and f"wheel:{evil.name}" not in keys
    st = fleet.b.stats()["remote"]
    assert st["rejected_records"] >= 1
    # control: the genuine, signed listing of beta is used in the same situation
    assert fleet.pip(fleet.b, ["--python", py(v), "-i", index.url, "beta"]) == 0
    assert venv_version(v, "beta") == "1.0"


def test_two_writers_merge_their_listings(fleet, index, packages, make_venv,
                                          pip_isolation, tmp_path):
    """A lists alpha 1.0; W (another signing writer) adds alpha 2.0: the listing has both."""
    a2 = make_wheel(tmp_path, "alpha", "2.0", requires=("beta>=1.0",))
    v = make_venv()
    assert fleet.pip(fleet.a, ["--python", py(v), "-i", index.url, "alpha==1.0"]) == 0
    fleet.push()
    index.add(a2)
    w = fleet.member("w", mode="rw", signing_key_file=fleet.key[0])
    assert fleet.pip(w, ["--python", py(make_venv()), "-i", index.url, "alpha==2.0"]) == 0
    fleet.push(w)
    w.close()
    from hooks.pip.fleet import read_listing

    names = set(read_listing(fleet.b, "alpha"))
    assert names == {packages.alpha.name, a2.name}
    assert fleet.b.remote.get_record("piplist:beta") is not None


def test_remote_pull_pip_prewarms_b_for_an_offline_install(fleet, index, served_a, make_venv,
                                                           reqs, pip_isolation, tmp_path):
    index.stop()
    before = len(index.requests)
    fleet.b.close()
    v = make_venv()
    r = fleet.cli("b", "remote", "pull", "--pip", "-r", str(reqs[0]), "--python", str(v))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pip: pulled 3, not found 0" in r.stdout, r.stdout  # alpha, beta, delta's wheel
    # offline, with the same index configured as A had (a file is offered only to requests
    # that read the source A took it from)
    r = fleet.cli("b", "pip", "install", "--python", str(v), "--offline", "-i", index.url,
                  "-r", str(reqs[0]))
    assert r.returncode == 0, r.stderr
    assert {n: venv_version(v, n) for n in served_a} == served_a
    assert len(index.requests) == before
    # a hash-locked file is pulled by its hashes; an unknown name is reported
    r = fleet.cli("b", "remote", "pull", "--pip", "-r", str(reqs[1]))
    assert r.returncode == 0 and "pip: pulled 2, not found 0" in r.stdout, r.stdout + r.stderr
    missing = tmp_path / "missing.txt"
    missing.write_text("no-such-project\n")
    r = fleet.cli("b", "remote", "pull", "--pip", "-r", str(missing))
    assert r.returncode == 1 and "no-such-project" in r.stdout


def test_b_vouches_bound_to_the_fleet_key_and_never_for_an_unsigned_remote(
        fleet, index, served_a, make_venv, reqs, pip_isolation, capfd):
    """B's own trust record vouches for A's files bound to A's key: once B's config stops
    trusting that key, the files it took are no longer offered; a member reading the same
    store with ``trust: unsigned`` and no keys vouches for nothing (hash locks still work)."""
    from cache_core.storage.remote.records import generate_keypair

    if fleet.store.kind != "nginx":
        pytest.skip("the trust record is the same for every backend; one is enough (CI time)")
    index.stop()
    args = ["-i", index.url, "-r", str(reqs[0])]
    v = make_venv()
    assert fleet.pip(fleet.b, ["--python", py(v), *args]) == 0, capfd.readouterr().err
    fleet.b.close()
    _, other = generate_keypair("someone-else")
    b = fleet.member("b", trusted_public_keys=[other])  # same cache and state, other key
    v = make_venv()
    assert fleet.pip(b, ["--python", py(v), *args]) != 0
    assert venv_version(v, "alpha") is None
    b.close()
    u = fleet.member("u", trust="unsigned", trusted_public_keys=[])
    v = make_venv()
    assert fleet.pip(u, ["--python", py(v), *args]) != 0
    assert venv_version(v, "alpha") is None
    v = make_venv()
    assert fleet.pip(u, ["--python", py(v), "-i", index.url, "-r", str(reqs[1])]) == 0
    assert venv_version(v, "alpha") == "1.0"
    u.close()
