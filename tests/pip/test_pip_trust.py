"""Issue #17 (pip trust gap) and #11 item 7 (pip counters): the cache dir is content, not
authority. A co-writer of a shared cache re-points keys or edits stamps; nothing it planted is
installed. Real pip and uv against the local PEP 503 index on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cache_core import PackageCache
from hooks.pip.install import install
from hooks.pip.runner import uv_bin
from hooks.pip.trust import file_name
from tests.support.pip import Index, Packages, alpha_beta_lock, make_wheel, py, sha256_of

BETA = "beta-1.0-py3-none-any.whl"



def _evil_beta(tmp_path: Path) -> Path:
    """A wheel named exactly like the index's beta 1.0, with other bytes (its 'TAG' differs)."""
    d = tmp_path / "evil"
    d.mkdir(exist_ok=True)
    good = make_wheel(d, "beta", "1.0", "py3-none-any")
    # same file name, other content: rebuild with a marker in a second dir and rename
    other = tmp_path / "evil2"
    other.mkdir(exist_ok=True)
    bad = make_wheel(other, "beta", "1.0", "py2.py3-none-any")
    out = d / "x" / BETA
    out.parent.mkdir(exist_ok=True)
    shutil.copyfile(bad, out)
    assert sha256_of(out) != sha256_of(good)
    return out


def _tag(venv: Path) -> str | None:
    """TAG recorded in the installed beta package (py3-none-any for the index's)."""
    for init in venv.glob("lib/python*/site-packages/beta/__init__.py"):
        for line in init.read_text().splitlines():
            if line.startswith("TAG = "):
                return line.split('"')[1]
    return None


def _repoint(cache: PackageCache, key: str, path: Path) -> None:
    """What a co-writer can do in a shared cache: store other bytes under their true digest and
    point the key at them (index-v1.sqlite is content like any other file of the cache)."""
    cache.put(key, str(path), meta=cache.lookup(key).meta if cache.lookup(key) else {})


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_repointed_wheel_key_never_installed(installer: str, cache: PackageCache, index: Index,
                                             packages: Packages, make_venv, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    if installer == "uv" and uv_bin() is None:
        pytest.skip("uv is not installed")
    base = alpha_beta_lock(tmp_path, installer, index.url)
    assert install(cache, ["--python", py(make_venv()), *base]) == 0
    index.requests.clear()
    v = make_venv()
    assert install(cache, ["--python", py(v), *base]) == 0  # the honest path
    assert index.requests == [] and _tag(v) == "py3-none-any"
    _repoint(cache, f"wheel:{BETA}", _evil_beta(tmp_path))
    # offline: the re-pointed key is not offered; one line says why
    capfd.readouterr()
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", *base]) != 0
    assert _tag(v) is None
    err = capfd.readouterr().err
    assert "never vouched" in err, err
    # online, pinned: the index's bytes (downloaded again), never the planted ones
    v = make_venv()
    assert install(cache, ["--python", py(v), *base]) == 0
    assert _tag(v) == "py3-none-any"
    assert any(BETA in r for r in index.requests)
    # online, unpinned
    v = make_venv()
    assert install(cache, ["--python", py(v), "--installer", installer, "-i", index.url,
                           "alpha"]) == 0
    assert _tag(v) == "py3-none-any"


def test_repointed_built_key_never_installed(cache: PackageCache, index: Index,
                                             packages: Packages, make_venv,
                                             tmp_path: Path) -> None:
    assert install(cache, ["--python", py(make_venv()), "-i", index.url, "delta==1.0"]) == 0
    built = [e for e in cache.keys("built:")]
    assert len(built) == 1
    entry = built[0]
    fname = entry.meta["filename"]
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    evil = make_wheel(evil_dir, "delta", "1.0", fname.split("-", 2)[2][:-4])
    assert evil.name == fname and sha256_of(evil) != entry.digest
    cache.put(entry.key, str(evil), meta=entry.meta)
    index.stop()
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", "delta==1.0"]) != 0
    init = list(v.glob("lib/python*/site-packages/delta/__init__.py"))
    assert init == []  # not the planted wheel (the honest one was never vouched away)


def test_edited_stamps_with_same_size_object_never_installed(cache: PackageCache, index: Index,
                                                             packages: Packages, make_venv,
                                                             tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("alpha==1.0\nbeta==1.0\n")
    base = ["-i", index.url, "-r", str(lock)]
    assert install(cache, ["--python", py(make_venv()), *base]) == 0
    assert install(cache, ["--python", py(make_venv()), *base]) == 0  # stamps recorded
    digest = cache.lookup(f"wheel:{BETA}").digest
    obj = cache.object_path(digest)
    data = bytearray(obj.read_bytes())
    data[-30] ^= 0xFF  # same size
    os.chmod(obj, 0o644)
    obj.write_bytes(bytes(data))
    st = os.lstat(obj)
    # the co-writer also writes stamps matching the replaced object where pkgcache used to
    # read them (the cache dir) and anywhere else in the pip bucket
    stamps = {digest: [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]}
    (Path(cache.bucket("pip-v1")) / "stamps.json").write_text(json.dumps(stamps))
    before = cache.stats()["corrupt_detected"]
    index.stop()
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", *base]) != 0
    assert not list(v.glob("lib/python*/site-packages/beta/__init__.py"))
    assert cache.stats()["corrupt_detected"] == before + 1
    # the trusted stamps live in the private state dir, 0600
    trust = Path(os.environ["PKGCACHE_STATE_DIR"]) / file_name(cache.root)
    assert trust.is_file() and os.stat(trust).st_mode & 0o077 == 0


def test_hash_pinned_lock_uses_a_shared_cache_it_never_vouched(cache: PackageCache, index: Index,
                                                               packages: Packages, make_venv,
                                                               tmp_path: Path) -> None:
    # another machine filled the shared cache: this one has no vouches (fresh state dir)
    for p in (packages.alpha, packages.beta):
        cache.put(f"wheel:{p.name}", str(p), meta={"filename": p.name})
    index.stop()
    lock = tmp_path / "lock.txt"
    lock.write_text(f"alpha==1.0 --hash=sha256:{sha256_of(packages.alpha)}\n"
                    f"beta==1.0 --hash=sha256:{sha256_of(packages.beta)}\n")
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", "-r", str(lock)]) == 0
    assert _tag(v) == "py3-none-any"
    # without hashes, the same unvouched files are not offered
    v = make_venv()
    assert install(cache, ["--python", py(v), "--offline", "alpha==1.0", "beta==1.0"]) != 0


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_pip_counts_misses_cold_and_hits_warm(installer: str, cache: PackageCache, index: Index,
                                              make_venv) -> None:
    if installer == "uv" and uv_bin() is None:
        pytest.skip("uv is not installed")
    s0 = cache.stats()
    # unpinned: resolved online (pip: the cache's tree; uv: pip's resolve, uv installs)
    args = ["--installer", installer, "-i", index.url, "alpha"]
    assert install(cache, ["--python", py(make_venv()), *args]) == 0
    s1 = cache.stats()
    assert (s1["misses"] - s0["misses"], s1["hits"] - s0["hits"]) == (2, 0), s1
    assert install(cache, ["--python", py(make_venv()), *args]) == 0
    s2 = cache.stats()
    assert (s2["misses"] - s1["misses"], s2["hits"] - s1["hits"]) == (0, 2), s2


def test_one_trust_record_per_cache_and_the_host_wide_one_migrated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two caches on one host keep their own vouches (one no longer overwrites the other's);
    the old host-wide pip-trust.json is read once (its stamps, cache_core.stamps' now, are
    dropped)."""
    from hooks.pip.trust import LEGACY_FILE, Trust

    state = tmp_path / "st"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    a, b, d1, d2 = "wheel:a-1.0-py3-none-any.whl", "built:x:fp", "1" * 64, "2" * 64
    legacy = state / LEGACY_FILE
    legacy.write_text(json.dumps({"keys": {a: [d1, ["https://pypi.org/simple"]]},
                                  "stamps": {d1: [1, 2, 3, 4]}}))
    legacy.chmod(0o600)
    c1, c2 = tmp_path / "c1", tmp_path / "c2"
    t1 = Trust(c1)
    assert t1.get(a) == [d1, [["https://pypi.org/simple"]]]
    t1.vouch(b, d1, [["https://pypi.org/simple"]])
    t1.save()
    t2 = Trust(c2)
    assert t2.vouched(a, d1) and not t2.vouched(b, d1)  # migrated, but not c1's new vouch
    t2.vouch(b, d2, [["https://pypi.org/simple"]])
    t2.save()
    t1 = Trust(c1)
    assert t1.vouched(b, d1) and not t1.vouched(b, d2)  # c2 changed nothing here
    assert Trust(c2).vouched(b, d2) and not Trust(c2).vouched(b, d1)
    assert "stamps" not in json.loads(next(state.glob("pip-trust-*.json")).read_text())
    files = sorted(p.name for p in state.glob("pip-trust-*.json"))
    assert len(files) == 2 and all(os.stat(state / f).st_mode & 0o077 == 0 for f in files)
    legacy.unlink()
    assert Trust(c1).vouched(b, d1)  # no longer needs the old file
