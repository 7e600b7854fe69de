"""Issue 24 (warm apt): with a remembered answer (hooks/apt/fastseed.py) the pre-install hook
and the harvest load no python-apt, YAML, SQLite or JSON: checked in the hook processes of real
apt-get runs (``python -X importtime``). The first re-provision after a cold install already
has that answer, and a changed object is never placed by the fast path."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from tests.support.apt import Lab, hook_imports

HEAVY = {"apt_pkg", "apt", "yaml", "sqlite3", "_sqlite3", "json"}
ALPHA, BETA = "alpha_1.0-1_all.deb", "beta_2%3a1.0-1_amd64.deb"


def wait_for_memo(lab: Lab, timeout: float = 30.0) -> None:
    """Until the sandbox's state dir holds a remembered answer (the cold run's child)."""
    from hooks.apt import fastseed

    path = str(lab.sb.root / "var/lib/pkgcache" / fastseed.NAME)
    end = time.monotonic() + timeout
    while not fastseed.read_memo(path):
        assert time.monotonic() < end, "the cold run remembered no answer"
        time.sleep(0.05)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def debs_in_archives(tmp_path: Path, monkeypatch, alpha: bytes, beta: bytes
                     ) -> tuple[Path, Path, Path]:
    """A private state dir (PKGCACHE_STATE_DIR) and an archives dir holding alpha's and beta's
    debs with these bytes: (archives, alpha, beta)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    archives = tmp_path / "archives"
    archives.mkdir()
    a, b = archives / ALPHA, archives / BETA
    a.write_bytes(alpha)
    b.write_bytes(beta)
    return archives, a, b


def info_stream(*paths: Path) -> bytes:
    """A Pre-Install-Pkgs info stream (version 3) installing the debs at paths."""
    lines = [f"{p.name.split('_')[0]} - - none < 1 amd64 none {p}" for p in paths]
    return ("VERSION 3\nAPT::Architecture=amd64\n\n" + "\n".join(lines) + "\n").encode()


def check_fast_run(lab: Lab, log: Path) -> None:
    res = lab.sb.apt("install", "alpha", check=True)
    assert "Need to get 0 B" in res.stdout, res.stdout
    assert lab.server.deb_requests() == []
    assert lab.sb.installed("alpha") == "1.0-1" and lab.sb.installed("beta") == "2:1.0-1"
    pre, harvest = hook_imports(log, "pre-install"), hook_imports(log, "harvest")
    assert len(pre) == 1 and len(harvest) == 1, (pre, harvest)
    assert pre[0] & HEAVY == set(), pre[0] & HEAVY
    assert harvest[0] & HEAVY == set(), harvest[0] & HEAVY
    assert sha(lab.sb.archives / ALPHA) == sha(lab.repo.debs["alpha"])
    assert sha(lab.sb.archives / BETA) == sha(lab.repo.debs["beta"])
    st = lab.status()  # what the fast hooks did, folded in
    last = st["last_seed"]
    assert (last["remembered"], last["placed"], last["trigger"]) == (True, 2, "pre-install"), last
    assert (st["last_harvest"]["already"], st["last_harvest"]["stored"]) == (2, 0)


def test_a_remembered_answer_loads_no_python_apt_yaml_sqlite_or_json(lab: Lab,
                                                                    tmp_path: Path) -> None:
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)  # cold: the cache fills
    lab.reprovision()
    lab.sb.apt("install", "alpha", check=True)  # warm: the answer for this dpkg state
    lab.reprovision()
    hits = {e.key: e.hits for e in lab.cache().keys("deb:")}
    lab.sb.trace_hooks(tmp_path / "log")
    check_fast_run(lab, tmp_path / "log")
    after = {e.key: e.hits for e in lab.cache().keys("deb:")}
    assert after == {k: v + 1 for k, v in hits.items()}, (hits, after)  # counted, LRU-used


def test_the_first_reprovision_after_a_cold_install_is_answered_from_memory(
        lab: Lab, tmp_path: Path) -> None:
    """A fresh root from the same image (dpkg's state as before the cold install, archives
    empty): its first install needs no python-apt, the cold run remembered the answer (a
    child of its pre-install hook found it while apt downloaded)."""
    lab.sb.apt("update", check=True)
    dpkg = lab.sb.root / "var/lib/dpkg/status"
    ext = lab.sb.root / "var/lib/apt/extended_states"
    image = {p: p.read_bytes() if p.exists() else None for p in (dpkg, ext)}
    lab.sb.apt("install", "alpha", check=True)  # cold, empty cache
    wait_for_memo(lab)  # found beside the download by a child apt does not wait for
    lab.sb.apt("clean", check=True)
    for path, data in image.items():  # re-provisioned from the image
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)
    lab.server.reset()
    lab.sb.trace_hooks(tmp_path / "log")
    check_fast_run(lab, tmp_path / "log")


def test_a_changed_object_is_never_placed_by_the_fast_path(lab: Lab, tmp_path: Path) -> None:
    """The object's bytes change (its mtime put back): the fast path hashes it as it copies
    and places nothing, the full seed quarantines it (one warning), apt downloads the deb: the
    right bytes reach dpkg."""
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.reprovision()
    lab.sb.apt("install", "alpha", check=True)
    lab.reprovision()
    obj = Path(lab.cache().local_path(f"deb:{ALPHA}") or "")
    st = obj.stat()
    os.chmod(obj, 0o644)
    obj.write_bytes(b"\0" * st.st_size)
    os.chmod(obj, 0o444)
    os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = lab.sb.apt("install", "alpha", check=True)
    said = [ln for ln in (res.stdout + res.stderr).splitlines() if "pkgcache" in ln]
    assert len(said) == 1 and "quarantined" in said[0], said  # one short warning at most
    assert lab.server.deb_requests() == ["/./alpha_1.0-1_all.deb"]
    assert lab.sb.installed("alpha") == "1.0-1"
    assert sha(lab.sb.archives / ALPHA) == sha(lab.repo.debs["alpha"])


def test_the_record_of_an_older_pkgcaches_placements_is_read_until_replaced(
        tmp_path: Path, monkeypatch) -> None:
    """An upgrade from the JSON record (placed.json): its placements are still checked (and
    dropped when stale) until the seed writes its own record."""
    from hooks.apt.aptenv import AptPaths, write_trusted
    from hooks.apt.seed import load_placed, save_placed

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    paths = AptPaths(archives=tmp_path, lists=tmp_path, status=tmp_path / "status",
                     parts=tmp_path, watch=(), policy="")
    old = {"a_1_all.deb": ["1" * 64, 5, 6, 7]}
    assert write_trusted(paths, "placed.json", {"debs": old})
    assert load_placed(paths) == old
    save_placed(paths, {"b_1_all.deb": ["2" * 64, 1, 2, 3]})
    assert load_placed(paths) == {"b_1_all.deb": ["2" * 64, 1, 2, 3]}


def test_the_harvest_ends_early_only_for_debs_this_runs_seed_checked(tmp_path: Path,
                                                                     monkeypatch) -> None:
    """fastseed.harvest_is_done: every deb of the info stream must be in this apt run's note
    with its stamp; a deb apt downloaded (not in the note), a changed one, another run's note
    or a deb outside archives means the full harvest."""
    from hooks.apt import fastseed

    archives, a, b = debs_in_archives(tmp_path, monkeypatch, b"a", b"b")

    me = os.getpid()
    fastseed.write_run_note(me, str(archives), str(tmp_path / "cache"),
                            {ALPHA: fastseed.stamp_of(a.stat())})
    assert fastseed.harvest_is_done(info_stream(a), me) is True
    assert fastseed.harvest_is_done(info_stream(a, b), me) is False  # apt downloaded beta
    assert fastseed.harvest_is_done(info_stream(a), os.getppid()) is False  # another run's note
    other = tmp_path / ALPHA
    other.write_bytes(b"a")
    assert fastseed.harvest_is_done(info_stream(other), me) is False  # not in archives
    a.write_bytes(b"x")  # replaced since the seed checked it
    assert fastseed.harvest_is_done(info_stream(a), me) is False


def test_a_remembered_answer_is_not_used_once_apts_config_or_pinning_changed(lab: Lab) -> None:
    """The answer is apt's for one configuration: a new apt.conf.d file or a pin (here ones
    that change nothing apt installs) and the full seed answers again, then remembers anew."""
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.reprovision()

    def remembered() -> bool:
        lab.sb.apt("install", "alpha", check=True)
        assert lab.server.deb_requests() == [], lab.server.deb_requests()  # from the cache
        assert sha(lab.sb.archives / ALPHA) == sha(lab.repo.debs["alpha"])
        used = lab.status()["last_seed"].get("remembered") is True
        lab.reprovision()
        return used

    remembered()  # the first warm run: answered by the full seed, or remembered by the cold run
    assert remembered()
    (lab.sb.parts / "99local").write_text('Acquire::Retries "1";\n')
    assert not remembered() and remembered()
    prefs = lab.sb.root / "etc/apt/preferences.d"
    prefs.mkdir(parents=True, exist_ok=True)
    (prefs / "alpha").write_text("Package: alpha\nPin: version 1.0-1\nPin-Priority: 600\n")
    assert not remembered() and remembered()


def test_a_placed_deb_whose_object_the_size_cap_took_is_stored_again(lab: Lab) -> None:
    """Debs the seed placed are still in archives (no `apt-get clean`) but the size cap took
    their objects: the fast path does not vouch for them (its harvest would end at once), the
    full hooks run and the cache holds the debs again."""
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.reprovision()
    lab.sb.apt("install", "alpha", check=True)  # warm: the answer for this dpkg state
    lab.sb.apt("purge", "alpha", "beta", check=True)  # the placed copies stay in archives
    cache = lab.cache()
    cache.gc(max_size_bytes=1)
    assert cache.local_path(f"deb:{ALPHA}") is None
    cache.close()
    lab.sb.apt("install", "alpha", check=True)
    assert lab.server.deb_requests() == []  # apt used the copies in archives
    got = lab.cache().local_path(f"deb:{ALPHA}")
    assert got is not None and sha(Path(got)) == sha(lab.repo.debs["alpha"])


def test_the_harvest_ends_early_for_debs_the_method_stored_under_their_names(
        tmp_path: Path, monkeypatch) -> None:
    """fastseed.harvest_is_done: a deb apt downloaded through pkgcache's method (not in the run
    note) counts as stored by the helper's copy note while it keeps that stamp and the cache
    holds its object; a copy the method placed (served by digest: the deb may have no name in
    the cache) means the full harvest; notes are used only when the whole run is done."""
    from cache_core import PackageCache, stamps
    from hooks.apt import fastseed

    archives, a, b = debs_in_archives(tmp_path, monkeypatch, b"alpha" * 100, b"beta" * 100)
    root = str(tmp_path / "cache")
    with PackageCache(root) as cache:
        da = cache.put(f"deb:{ALPHA}", str(a), link=False)
        db = cache.put(f"deb:{BETA}", str(b), link=False)
    assert da and db
    sdir = stamps.stamp_dir(root, create=True)
    assert sdir is not None

    def notes() -> set[str]:
        return {p.name for p in Path(sdir, "copies").glob("*")}

    me = os.getpid()
    fastseed.write_run_note(me, str(archives), root, {})  # a cold run: the seed placed nothing
    assert fastseed.harvest_is_done(info_stream(a, b), me) is False  # no copy notes: the full harvest
    stamps.note_copy(sdir, ALPHA, da, a.stat(), hit=False)
    assert fastseed.harvest_is_done(info_stream(a, b), me) is False  # beta: no note
    assert notes() == {ALPHA}  # kept for the full harvest
    stamps.note_copy(sdir, BETA, db, b.stat(), hit=True)
    assert fastseed.harvest_is_done(info_stream(a, b), me) is False  # placed by digest: full harvest
    stamps.note_copy(sdir, BETA, db, b.stat(), hit=False)
    with PackageCache(root) as cache:
        cache.object_path(db).unlink()  # the object went (the size cap, a repair)
    assert fastseed.harvest_is_done(info_stream(a, b), me) is False
    with PackageCache(root) as cache:
        assert cache.put(f"deb:{BETA}", str(b), link=False) == db
    assert fastseed.harvest_is_done(info_stream(a, b), me) is True
    assert notes() == set()  # used
    # a mixed run: alpha placed by the seed (run note), beta stored by the method
    fastseed.write_run_note(me, str(archives), root, {ALPHA: fastseed.stamp_of(a.stat())})
    stamps.note_copy(sdir, ALPHA, da, a.stat(), hit=False)  # a stale note of alpha: dropped
    stamps.note_copy(sdir, BETA, db, b.stat(), hit=False)
    assert fastseed.harvest_is_done(info_stream(a, b), me) is True
    assert notes() == set()
    stamps.note_copy(sdir, BETA, db, b.stat(), hit=False)
    b.write_bytes(b"other" * 100)  # replaced since the method stored it
    assert fastseed.harvest_is_done(info_stream(a, b), me) is False
