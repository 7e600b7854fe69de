"""What reaches dpkg: a local user's .deb, a shared cache's index and memos, time limits.

Real parts throughout: apt-get/dpkg in a sandbox root with the shipped snippet, a repository on
127.0.0.1, a real unprivileged user (setpriv) racing root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.support import PY, REPO
from tests.support.apt import Lab, build_deb
from tests.support.cli import run_cli
from tests.support.user import User


def payload_of(deb: Path, name: str, work: Path) -> bytes:
    """The payload file a test deb installs (unpacked with dpkg-deb)."""
    out = work / f"x-{deb.stem}-{hashlib.sha256(deb.read_bytes()).hexdigest()[:8]}"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    return (out / "usr/share/pkgcache-test" / name / "payload.bin").read_bytes()


def installed_payload(lab: Lab, name: str) -> bytes:
    return (lab.sb.root / "usr/share/pkgcache-test" / name / "payload.bin").read_bytes()


def objects(cache_dir: Path) -> list[Path]:
    base = cache_dir / "objects-v1" / "sha256"
    return [p for shard in base.iterdir() for p in shard.iterdir()] if base.is_dir() else []


def assert_ownership_invariant(cache_dir: Path, foreign: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    """Every object: a regular file owned by root, 0444 (0400 if private), not a foreign inode."""
    for obj in objects(cache_dir):
        st = os.lstat(obj)
        assert stat.S_ISREG(st.st_mode), obj
        assert st.st_uid == 0, f"{obj.name[:12]} owned by uid {st.st_uid}"
        assert stat.S_IMODE(st.st_mode) in (0o444, 0o400), oct(st.st_mode)
        assert st.st_ino not in foreign, f"{obj.name[:12]} is a user's own inode"


def reinstall(lab: Lab, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Purge, wipe archives, install again: what re-provisioning does."""
    lab.sb.apt("purge", name, check=True)
    lab.sb.apt("clean", check=True)
    return lab.sb.apt("install", name, *args)


REWRITER = textwrap.dedent("""
    import os, sys, time
    target, evil, good = sys.argv[1:4]
    evil_b, good_b = open(evil, "rb").read(), open(good, "rb").read()
    end = time.time() + float(sys.argv[4])
    while time.time() < end:
        for data in (evil_b, good_b):
            try:
                with open(target, "r+b") as f:   # in place: same inode, same size
                    f.write(data)
            except OSError:
                pass
""")


def test_local_deb_is_copied_never_linked_and_rewrites_never_reach_dpkg(
        lab: Lab, user: User, tmp_path: Path) -> None:
    """Finding 1: `apt-get install ./vendortool.deb` from a user's directory must not make the
    user's inode a cache object; rewriting it in place during later seeds changes nothing."""
    (tmp_path / "good").mkdir()
    (tmp_path / "evil").mkdir()
    good = build_deb(tmp_path / "good", "vendortool", "1.0", size=40000, seed=1)
    evil = build_deb(tmp_path / "evil", "vendortool", "1.0", size=40000, seed=2)
    assert good.stat().st_size == evil.stat().st_size
    home = user.dir("dl")
    local = home / good.name
    for src, dst in ((good, local), (good, home / "good.deb"), (evil, home / "evil.deb")):
        shutil.copy(src, dst)
        os.chown(dst, user.uid, user.gid)
    shutil.copy(good, lab.repo.path / good.name)  # the vendor's deb is also in a configured index
    lab.repo.publish()
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", str(local), check=True)

    assert lab.cache().lookup("deb:vendortool_1.0_all.deb") is not None  # matched the index
    assert_ownership_invariant(lab.cache_dir, {os.stat(local).st_ino})
    want = payload_of(good, "vendortool", tmp_path)
    racer = user.python(REWRITER, str(local), str(home / "evil.deb"), str(home / "good.deb"),
                        "120", background=True)
    try:
        for _ in range(3):
            res = reinstall(lab, "vendortool")
            assert res.returncode == 0, res.stdout + res.stderr
            assert installed_payload(lab, "vendortool") == want
            assert "Need to get 0 B" in res.stdout  # seeded from the (root-owned) cache copy
    finally:
        racer.kill()
        racer.wait()
    assert_ownership_invariant(lab.cache_dir, {os.stat(local).st_ino})


def test_local_deb_no_index_vouches_for_is_not_stored_under_its_name(
        lab: Lab, user: User, tmp_path: Path) -> None:
    """A local deb whose bytes match no index record gets no deb: key (it could later shadow
    the real package of that name and version)."""
    (tmp_path / "own").mkdir()
    deb = build_deb(tmp_path / "own", "alpha", "1.0-1+local", size=30000, seed=7)
    local = user.dir("own") / deb.name
    shutil.copy(deb, local)
    os.chown(local, user.uid, user.gid)
    lab.sb.apt("update", check=True)
    res = lab.sb.apt("install", str(local))
    assert res.returncode == 0, res.stderr
    assert lab.sb.installed("alpha") == "1.0-1+local"
    assert lab.cache().keys("deb:") == []
    assert objects(lab.cache_dir) == []
    assert [ln for ln in res.stderr.splitlines() if "pkgcache" in ln] == []


def test_seed_plan_lives_in_a_root_only_state_dir(lab: Lab) -> None:
    """Finding 2: the memo that decides what reaches dpkg is not in the (shareable) cache."""
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.sb.apt("purge", "alpha", check=True)
    lab.sb.apt("clean", check=True)
    lab.sb.apt("update", check=True)  # post-update plans
    assert not list(lab.cache_dir.rglob("seedplan*"))
    plan = lab.sb.root / "var/lib/pkgcache/seedplan.json"
    st, dst = os.lstat(plan), os.lstat(plan.parent)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    assert dst.st_uid == 0 and stat.S_IMODE(dst.st_mode) == 0o700
    assert "alpha_1.0-1_all.deb" in json.loads(plan.read_text())["entries"]


def _fingerprint(lab: Lab) -> str:
    env = dict(lab.sb.env(), PYTHONPATH=str(REPO))
    return subprocess.run([PY, "-c", "from hooks.apt.aptenv import AptPaths; "
                           "print(AptPaths.load().index_fingerprint())"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


def _tamper(path: Path, evil: dict[str, tuple[str, int]], lab: Lab) -> None:
    """Edit one non-object file the way a co-writer of a shared cache would."""
    if path.name == "index-v1.sqlite":
        con = sqlite3.connect(path)
        for kind, (digest, size) in evil.items():
            con.execute("UPDATE keys SET digest = ?, size = ? WHERE kind = ?", (digest, size, kind))
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
    elif path.suffix == ".json":
        text = path.read_text(errors="replace")
        digest, size = evil["deb"]
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if isinstance(data, dict) and "entries" in data:
            data["entries"] = {k: [digest, size] for k in data["entries"]}
            path.write_text(json.dumps(data))
        else:
            import re

            path.write_text(re.sub(r"[0-9a-f]{64}", digest, text))
    else:
        path.write_bytes(b"edited by a co-writer\n")


@pytest.mark.slow
def test_editing_any_non_object_file_gets_no_wrong_byte_to_dpkg_or_fetch(
        lab: Lab, fetch_server, tmp_path: Path) -> None:
    """Finding 2 and the "edit every file" rule: the index, the apt bucket's JSON (and a seed
    plan planted where older versions kept it), locks, the tag: edited one at a time, then a
    re-provision installs the real deb and `pkgcache fetch` writes the real bytes."""
    (tmp_path / "evil").mkdir()
    evil_deb = build_deb(tmp_path / "evil", "alpha", "1.0-1", size=30000, seed=99)
    good_deb = lab.repo.debs["alpha"]
    assert evil_deb.stat().st_size == good_deb.stat().st_size
    want = payload_of(good_deb, "alpha", tmp_path)
    good_body, evil_body = os.urandom(50_000), os.urandom(50_000)
    fetch_server.put("/tool.tar.gz", good_body)
    url = fetch_server.url("/tool.tar.gz")
    good_sha = hashlib.sha256(good_body).hexdigest()
    cdir = ["--cache-dir", str(lab.cache_dir)]

    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    dest = tmp_path / "dest.bin"
    assert run_cli(*cdir, "fetch", url, "-o", str(dest)).returncode == 0
    (tmp_path / "evil.bin").write_bytes(evil_body)
    evil = {"deb": (hashlib.sha256(evil_deb.read_bytes()).hexdigest(), evil_deb.stat().st_size),
            "url": (hashlib.sha256(evil_body).hexdigest(), len(evil_body))}
    for name, digest in (("deb", evil["deb"][0]), ("url", evil["url"][0])):
        src = evil_deb if name == "deb" else tmp_path / "evil.bin"
        assert run_cli(*cdir, "put", f"sha256:{digest}", str(src)).returncode == 0
    old_plan = lab.cache_dir / "apt" / "seedplan.json"
    old_plan.parent.mkdir(exist_ok=True)
    old_plan.write_text(json.dumps({"fingerprint": _fingerprint(lab), "entries": {}}))
    con = sqlite3.connect(lab.cache_dir / "index-v1.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()

    files = sorted((p for p in lab.cache_dir.rglob("*")
                    if p.is_file() and "objects-v1" not in p.parts and "quarantine" not in p.parts),
                   key=lambda p: (p.name != "index-v1.sqlite", p.suffix != ".json", str(p)))
    assert files[0].name == "index-v1.sqlite" and old_plan in files
    for path in files:
        _tamper(path, evil, lab)
        res = reinstall(lab, "alpha")
        assert res.returncode == 0, f"{path}: {res.stdout}{res.stderr}"
        assert installed_payload(lab, "alpha") == want, f"wrong deb installed after editing {path}"
        for extra in ([], ["--sha256", good_sha]):
            dest.unlink(missing_ok=True)
            r = run_cli(*cdir, "fetch", url, "-o", str(dest), *extra)
            assert r.returncode == 0, f"{path}: {r.stderr}"
            assert dest.read_bytes() == good_body, f"wrong fetch bytes after editing {path}"


def test_fifo_in_place_of_an_object_never_hangs_apt(lab: Lab, tmp_path: Path) -> None:
    """Finding 6: a FIFO where an object belongs: apt-get, `apt seed` and `get -o` finish."""
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    [obj] = objects(lab.cache_dir)
    obj.unlink()
    os.mkfifo(obj)
    lab.sb.apt("purge", "alpha", check=True)
    lab.sb.apt("clean", check=True)
    t0 = time.monotonic()
    res = lab.sb.apt("install", "alpha")
    took = time.monotonic() - t0
    assert res.returncode == 0 and lab.sb.installed("alpha") == "1.0-1", res.stderr
    assert took < 60 + 5, took   # the documented pre-install limit, plus a few seconds
    if not os.path.lexists(obj):
        os.mkfifo(obj)
    lab.sb.apt("clean", check=True)
    for args in (("apt", "seed", "alpha"), ("get", "deb:alpha_1.0-1_all.deb", "-o",
                                             str(tmp_path / "out.deb"))):
        t0 = time.monotonic()
        r = subprocess.run([str(lab.sb.pkgcache_bin), *args], env=lab.sb.env(), capture_output=True,
                           text=True, timeout=60)
        assert time.monotonic() - t0 < 30 and "Traceback" not in r.stderr, r.stderr


HOLD = textwrap.dedent("""
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
    con.execute("BEGIN IMMEDIATE")
    print("held", flush=True)
    time.sleep(1500)
""")


def test_index_held_by_another_writer_apt_finishes_in_time(lab: Lab, tmp_path: Path) -> None:
    """Finding 6: another process holds the index's write lock for 1500 s; apt-get still
    finishes well within the documented hook limit (60 s), with at most one line per hook.
    Several packages: each put used to wait the full 30 s busy timeout again."""
    names = ["alpha", "beta", "gamma", "delta"]
    for name in names[1:]:
        lab.repo.add(name, "1.0", size=20000)
    lab.repo.publish()
    lab.sb.apt("update", check=True)
    lab.sb.apt("install", "alpha", check=True)
    lab.sb.apt("purge", "alpha", check=True)
    lab.sb.apt("clean", check=True)
    script = tmp_path / "hold.py"
    script.write_text(HOLD)
    holder = subprocess.Popen([PY, str(script), str(lab.cache_dir / "index-v1.sqlite")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        res = lab.sb.apt("install", *names)
        took = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 0 and lab.sb.installed("delta") == "1.0", res.stderr
    assert took < 30, took   # hooks wait at most 5 s for the index, then go on without it
    lines = [ln for ln in res.stderr.splitlines() if "pkgcache" in ln]
    assert len(lines) <= 2 and all(ln.startswith("pkgcache: warning: ") for ln in lines), lines


def _fault(tmp_path: Path, code: str) -> str:
    d = tmp_path / "fault"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(textwrap.dedent(code))
    return str(d)


def test_time_limit_is_not_swallowed_by_fail_open_handlers(lab: Lab, tmp_path: Path) -> None:
    """Finding 6: the timeout raised inside a cache call must end the hook, not be caught by
    the core's fail-open `except Exception` (which would let the next slow call run)."""
    lab.repo.add("beta", "1.0", size=20000)
    lab.repo.add("gamma", "1.0", size=20000)
    lab.repo.publish()
    path = _fault(tmp_path, """
        import time
        import cache_core.api as c
        import hooks.apt.hook as h
        h.TIME_LIMIT = dict(h.TIME_LIMIT, harvest=1)
        def slow_put(self, *a, **k):
            time.sleep(20)
        c.PackageCache._ingest = slow_put
    """)
    lab.sb.write_pkgcache_wrapper(pythonpath=path)
    lab.sb.apt("update", check=True)
    t0 = time.monotonic()
    res = lab.sb.apt("install", "alpha", "beta", "gamma")
    took = time.monotonic() - t0
    assert res.returncode == 0 and lab.sb.installed("gamma") == "1.0", res.stderr
    assert took < 15, took  # one put interrupted at 1 s, not three 20 s puts
    lines = [ln for ln in res.stderr.splitlines() if "pkgcache" in ln]
    assert lines == ["pkgcache: warning: apt harvest stopped after 1 s; apt continues without it"]


def test_watchdog_ends_a_hook_stuck_where_no_signal_arrives(lab: Lab, tmp_path: Path) -> None:
    """Finding 6, last resort: a hook stuck with SIGALRM blocked (as in a long C call) still
    ends at limit + grace with exit 0 and one line; apt goes on."""
    path = _fault(tmp_path, """
        import signal, time
        import hooks.apt.hook as h
        h.TIME_LIMIT = dict(h.TIME_LIMIT, harvest=2)
        def stuck(*a, **k):
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
            time.sleep(60)
        import hooks.apt.harvest as hv
        hv.harvest = stuck
    """)
    lab.sb.write_pkgcache_wrapper(pythonpath=path)
    lab.sb.apt("update", check=True)
    t0 = time.monotonic()
    res = lab.sb.apt("install", "alpha")
    took = time.monotonic() - t0
    assert res.returncode == 0 and lab.sb.installed("alpha") == "1.0-1", res.stderr
    assert took < 2 + 5 + 10, took
    lines = [ln for ln in res.stderr.splitlines() if "pkgcache" in ln]
    assert lines == ["pkgcache: warning: apt harvest stopped after 2 s; apt continues without it"]
