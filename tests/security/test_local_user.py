"""A local user against root's pkgcache: planted symlinks and FIFOs, swapped temp files, shared
groups and ACLs, secrets in URLs. The attacker is a real account (useradd) running as itself
via setpriv; root runs the real CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from cache_core import PackageCache, UnsafeCacheError
from tests.support import PY, REPO
from tests.support.apt import build_deb
from tests.support.cli import popen_cli, run_cli
from tests.support.user import User

# -- finding 3: fetch's temp files in a directory the user can write ---------------------------
SWAPPER = textwrap.dedent("""
    import os, sys, time
    d, victim = sys.argv[1], sys.argv[2]
    end = time.time() + float(sys.argv[3])
    n = 0
    while time.time() < end:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if not name.startswith(".pkgcache"):
                continue
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
                if os.path.isdir(p) and st.st_uid != os.getuid():
                    # older layout: a temp dir holding download.part
                    os.rename(p, p + ".moved%d" % n)
                    os.mkdir(p)
                    os.symlink(victim, os.path.join(p, "download.part"))
                elif not os.path.islink(p) and st.st_uid != os.getuid():
                    tmp = os.path.join(d, "planted%d" % n)
                    os.symlink(victim, tmp)
                    os.rename(tmp, p)      # our symlink now has root's temp name
                n += 1
            except OSError:
                pass
""")


@pytest.mark.slow
def test_fetch_temp_swap_never_touches_a_victim_file(user: User, fetch_server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 3: root fetches into a directory the user can write (cache disabled) while the
    user keeps swapping root's temp entries for symlinks to a root-only file: >= 10 rounds."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"root only\n")
    os.chmod(victim, 0o600)
    body = os.urandom(600_000)
    fetch_server.put("/big.bin", body, chunk_delay=0.01)
    dl = user.dir("downloads")
    racer = user.python(SWAPPER, str(dl), str(victim), "300", background=True)
    try:
        for i in range(12):
            dest = dl / f"file{i}.bin"
            res = run_cli("fetch", fetch_server.url("/big.bin"), "-o", str(dest), "--retries", "0",
                      env={"PKGCACHE_DISABLE": "1"})
            assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) <= 1, res.stderr
            st = os.stat(victim)
            assert stat.S_IMODE(st.st_mode) == 0o600, f"round {i}: victim chmod'ed"
            assert victim.read_bytes() == b"root only\n"
    finally:
        racer.kill()
        racer.wait()


# -- finding 4: harvest of a path the user controls ---------------------------------------------
TOGGLER = textwrap.dedent("""
    import os, sys, time
    path, good, secret = sys.argv[1:4]
    end = time.time() + float(sys.argv[4])
    data = open(good, "rb").read()
    n = 0
    while time.time() < end:
        n += 1
        tmp = path + ".new"
        try:
            if n % 3 == 0:
                os.symlink(secret, tmp)
            elif n % 3 == 1:
                with open(tmp, "wb") as f:
                    f.write(data)
            else:
                os.mkfifo(tmp)
            os.rename(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
""")


@pytest.mark.slow
def test_harvest_symlink_swap_race_never_stores_a_root_only_file(user: User,
                                                                 tmp_path: Path) -> None:
    """Finding 4: the user flips ~/race/x.deb between a deb, a symlink to a root-only file and a
    FIFO while root harvests it 300 times: no object ever holds the secret, nothing blocks."""
    from hooks.apt.harvest import Action, harvest

    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:$6$secret-hash:19000:0:99999:7:::\n" * 50)
    os.chmod(secret, 0o600)
    (tmp_path / "b").mkdir()
    deb = build_deb(tmp_path / "b", "racy", "1.0", size=5000)
    race = user.dir("race")
    good = race / "good.deb"
    shutil.copy(deb, good)
    os.chown(good, user.uid, user.gid)
    target = race / "racy_1.0_all.deb"
    index_sha = hashlib.sha256(deb.read_bytes()).hexdigest()
    cache = PackageCache(str(tmp_path / "cache"))
    toggler = user.python(TOGGLER, str(target), str(good), str(secret), "600", background=True)
    try:
        time.sleep(0.3)
        archives = tmp_path / "archives"
        archives.mkdir()
        for _ in range(300):
            cache.index.drop_key("deb:racy_1.0_all.deb")
            harvest(cache, [Action("racy", "1.0", "all", str(target))], archives=archives,
                    lookup=lambda a: index_sha)
    finally:
        toggler.kill()
        toggler.wait()
    secret_bytes = secret.read_bytes()
    objs = list((tmp_path / "cache/objects-v1/sha256").glob("*/*"))
    for obj in objs:
        assert obj.read_bytes() != secret_bytes
        st = os.lstat(obj)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o444
        assert obj.read_bytes() == deb.read_bytes()
    cache.close()


def test_harvest_skips_one_bad_action_line_not_the_run(tmp_path: Path) -> None:
    """LOW: a non-UTF-8 action line skips that package only."""
    from hooks.apt.harvest import harvest, read_info_fd

    archives = tmp_path / "archives"
    archives.mkdir()
    lines = [b"VERSION 3", b"APT::Architecture=amd64", b""]
    for name in ("one", "two"):
        deb = build_deb(archives, name, "1.0", size=3000)
        lines.append(f"{name} - - none - 1.0 all < {deb}".encode())
    lines.insert(3, b"bad\xff - - none - 1.0 all < " + str(archives).encode() + b"/bad\xff.deb")
    rfd, wfd = os.pipe()
    os.write(wfd, b"\n".join(lines) + b"\n")
    os.close(wfd)
    actions = read_info_fd(rfd)
    cache = PackageCache(str(tmp_path / "cache"))
    rep = harvest(cache, actions, archives=archives)
    assert rep.stored == 2, rep
    assert {e.key for e in cache.keys("deb:")} == {"deb:one_1.0_all.deb", "deb:two_1.0_all.deb"}
    cache.close()


# -- finding 5: cache directory safety ---------------------------------------------------------
def _acl(entries: list[tuple[int, int, int]]) -> bytes:
    """A posix_acl_access xattr value: version 2, then (tag, perm, id) entries."""
    out = (2).to_bytes(4, "little")
    for tag, perm, ident in entries:
        out += tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + \
            (ident & 0xFFFFFFFF).to_bytes(4, "little")
    return out


def test_group_writable_cache_with_our_own_group_is_refused(user: User, tmp_path: Path) -> None:
    """Finding 5: group write was accepted when the group is ours; a member of that group then
    swapped the index. Any group or other write is refused now (exit 4, one line)."""
    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o2775)  # group root (ours)
    res = run_cli("--cache-dir", str(root), "get", "tool:v1")
    assert res.returncode == 4 and "writable by other users" in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1


def test_acl_granting_another_user_write_is_refused(user: User, public_dir: Path) -> None:
    """Finding 5: an ACL entry user:<other>:rwx on the cache dir (mode bits looked like 0775
    with our own group) is refused; the user really could write there."""
    root = public_dir / "acl"
    (public_dir / "f").write_bytes(b"x")
    assert run_cli("--cache-dir", str(root), "put", "k", str(public_dir / "f")).returncode == 0
    try:
        os.setxattr(root, "system.posix_acl_access",
                    _acl([(0x01, 7, -1), (0x02, 7, user.uid), (0x04, 5, -1), (0x10, 7, -1),
                          (0x20, 5, -1)]))
    except OSError as exc:
        pytest.skip(f"no POSIX ACLs here: {exc}")
    probe = user.run("touch", str(root / "planted"))
    assert probe.returncode == 0, probe.stderr   # the ACL is real: the user can write
    res = run_cli("--cache-dir", str(root), "ls")
    assert res.returncode == 4 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "writable by other users" in res.stderr or "ACL" in res.stderr, res.stderr
    from cache_core.fs import acl_grants_write

    assert acl_grants_write(str(root))


@pytest.mark.parametrize("sub", ["objects-v1/sha256", "tmp", "locks", "quarantine"])
def test_world_writable_subdirectory_is_refused(sub: str, tmp_path: Path) -> None:
    """Finding 5: a world-writable objects/tmp/locks/quarantine dir lets users break puts."""
    root = tmp_path / "c"
    src = tmp_path / "f"
    src.write_bytes(b"x")
    assert run_cli("--cache-dir", str(root), "put", "k", str(src)).returncode == 0
    os.chmod(root / sub, 0o777)
    res = run_cli("--cache-dir", str(root), "put", "k2", str(src))
    assert res.returncode == 4 and "writable by other users" in res.stderr, res.stderr


def test_cache_is_not_created_in_a_foreign_non_empty_dir(tmp_path: Path) -> None:
    """Finding 5: a cache is never created inside a non-empty directory that is not already a
    pkgcache cache."""
    d = tmp_path / "project"
    d.mkdir()
    (d / "README").write_text("mine\n")
    res = run_cli("--cache-dir", str(d), "stats")
    res = run_cli("--cache-dir", str(d), "put", "k", str(d / "README"))
    assert res.returncode == 4 and "CACHEDIR.TAG" in res.stderr, res.stderr
    assert sorted(os.listdir(d)) == ["README"]


def test_cache_is_not_created_in_a_system_directory(tmp_path: Path) -> None:
    """Finding 5: `directory: '~root/../../etc'` must not create a cache tree inside /etc."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("performance:\n  cache:\n    directory: '~root/../../etc'\n")
    before = set(os.listdir("/etc"))
    src = tmp_path / "f"
    src.write_bytes(b"x")
    try:
        res = run_cli("--config", str(cfg), "put", "k", str(src), env={"PKGCACHE_CONFIG": str(cfg)})
        assert res.returncode == 4 and "system directory" in res.stderr, res.stderr
    finally:
        for name in set(os.listdir("/etc")) - before:  # an old build created its tree here
            p = Path("/etc") / name
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    assert set(os.listdir("/etc")) - before == set()


def test_planted_index_fifo_or_foreign_index_is_refused(user: User, tmp_path: Path) -> None:
    """The index (and WAL/SHM) must be our own regular file: a FIFO never blocks us."""
    root = tmp_path / "c"
    (tmp_path / "f").write_bytes(b"x")
    assert run_cli("--cache-dir", str(root), "put", "k", str(tmp_path / "f")).returncode == 0
    for name in ("index-v1.sqlite-wal", "index-v1.sqlite-shm"):
        (root / name).unlink(missing_ok=True)
    os.mkfifo(root / "index-v1.sqlite-wal")
    res = run_cli("--cache-dir", str(root), "ls", timeout=30)
    assert res.returncode == 4 and "not a regular file" in res.stderr, res.stderr
    with pytest.raises(UnsafeCacheError):
        PackageCache(str(root), strict=True).index  # noqa: B018


# -- finding 7: secrets ------------------------------------------------------------------------
def test_download_secrets_stay_private(user: User, fetch_server, public_dir: Path,
                                       tmp_path: Path) -> None:
    """Finding 7: a URL with a token: key hashed, object owner-only, index owner-only; the user
    finds neither the token nor the content anywhere it can read; ls/stats/errors hide it."""
    body = b"PRIVATE-CONTENT-" + os.urandom(16).hex().encode()
    root = public_dir / "cache"
    token = "SEKRET" + os.urandom(6).hex()
    fetch_server.put("/Packages", body)
    fetch_server.put(f"/Packages?access_token={token}", body)  # the server sees the query too
    url = fetch_server.url(f"/Packages?access_token={token}")
    dest = tmp_path / "out"
    res = run_cli("--cache-dir", str(root), "fetch", url, "-o", str(dest))
    assert res.returncode == 0, res.stderr
    auth = fetch_server.url("/Packages").replace("http://", f"http://bob:{token}@")
    assert run_cli("--cache-dir", str(root), "fetch", auth, "-o", str(dest)).returncode == 0
    for args in (("ls",), ("ls", "--json"), ("stats", "--json"), ("verify",)):
        out = run_cli("--cache-dir", str(root), *args)
        assert token not in out.stdout + out.stderr
    bad = run_cli("--cache-dir", str(root), "fetch", fetch_server.url("/nope") + f"?token={token}",
              "-o", str(dest), "--retries", "0")
    assert bad.returncode != 0 and token not in bad.stderr and "REDACTED" in bad.stderr, bad.stderr
    # Everything the local user can read in the cache: no token, no content.
    spy = user.python(textwrap.dedent("""
        import os, sys
        found = []
        for base, dirs, files in os.walk(sys.argv[1]):
            for f in files:
                p = os.path.join(base, f)
                try:
                    data = open(p, "rb").read()
                except OSError:
                    continue
                if sys.argv[2].encode() in data or sys.argv[3].encode() in data:
                    found.append(p)
        print("\\n".join(found))
    """), str(root), token, body.decode())
    assert spy.returncode == 0 and spy.stdout.strip() == "", spy.stdout + spy.stderr
    readable = user.run("ls", "-R", str(root))
    assert readable.returncode == 0 and "objects-v1" in readable.stdout  # the walk saw the cache
    privates = [e for e in PackageCache(str(root)).keys() if token in e.key]
    assert privates == []


# -- LOW items ---------------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text("\n".join(levels) + "\nperformance:\n  cache:\n    max_size_gb: *a9\n")
    t0 = time.monotonic()
    res = run_cli("--config", str(cfg), "stats", timeout=60)
    assert res.returncode == 3 and time.monotonic() - t0 < 10, res.stderr
    assert len(res.stderr) < 300, res.stderr[:300]
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000 + "\n")
    res = run_cli("--config", str(deep), "stats", timeout=60)
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr


def test_error_message_never_formats_a_huge_value(tmp_path: Path) -> None:
    cfg = tmp_path / "big.yaml"
    cfg.write_text("a: &a [" + ", ".join(["yyyyyyyyyy"] * 40) + "]\n"
                   "performance:\n  cache:\n    max_size_gb: [*a, *a, *a, *a, *a, *a]\n")
    res = run_cli("--config", str(cfg), "stats")
    assert res.returncode == 3 and len(res.stderr) < 300, res.stderr


@pytest.mark.parametrize("key", ["\U0010ffff", "\udcff", "a\x07"])
def test_odd_keys_exit_2(key: str, tmp_path: Path) -> None:
    for args in (("ls", key), ("get", key), ("exists", key)):
        res = run_cli("--cache-dir", str(tmp_path / "c"), *args)
        assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, (args, res.stderr)


def test_get_into_a_missing_directory_says_so(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    c = ["--cache-dir", str(tmp_path / "c")]
    assert run_cli(*c, "put", "k", str(src)).returncode == 0
    res = run_cli(*c, "get", "k", "-o", str(tmp_path / "missing" / "x"))
    assert res.returncode == 2 and "no such directory" in res.stderr, res.stderr
    assert "not in the cache" not in res.stderr


def test_full_file_system_exits_4_with_one_line(tmp_path: Path) -> None:
    where = tmp_path / "small"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pkgcache-sec", str(where)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount tmpfs")
    try:
        src = tmp_path / "big"
        codes = []
        for i in range(6):
            src.write_bytes(os.urandom(300_000))
            r = run_cli("--cache-dir", str(where / "c"), "put", f"k{i}", str(src))
            codes.append(r.returncode)
            assert r.returncode in (0, 4), r.stderr
            assert "internal error" not in r.stderr and len(r.stderr.splitlines()) <= 1, r.stderr
        assert 4 in codes
        filler = where / "filler"
        with open(filler, "wb") as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        for args in (("stats", "--zero"), ("put", "z", str(src)), ("gc", "--max-size", "1")):
            r = run_cli("--cache-dir", str(where / "c"), *args)
            assert r.returncode in (0, 4) and "internal error" not in r.stderr, (args, r.stderr)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


PUTTER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, sys.argv[2])
    from cache_core import PackageCache
    c = PackageCache(sys.argv[1], fsync=False)
    end = time.time() + float(sys.argv[3])
    i = 0
    src = sys.argv[1] + f"-src{os.getpid()}"
    with open(src, "wb") as f:
        f.write(os.urandom(2 << 20))  # big enough that temps exist while verify lists tmp/
    while time.time() < end:
        i += 1
        c.put(f"k{i % 50}", src)  # same bytes: a temp made and renamed over the object
""")


@pytest.mark.slow
def test_verify_repair_tolerates_concurrent_puts(tmp_path: Path) -> None:
    root = tmp_path / "c"
    script = tmp_path / "putter.py"
    script.write_text(PUTTER)
    assert run_cli("--cache-dir", str(root), "stats").returncode == 1  # no cache there yet
    putters = [subprocess.Popen([PY, str(script), str(root), str(REPO), "120"])
               for _ in range(4)]
    try:
        time.sleep(1)
        for _ in range(20):
            r = run_cli("--cache-dir", str(root), "verify", "--repair")
            assert r.returncode == 0, r.stderr
    finally:
        for p in putters:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_kill_9_during_gc_never_leaves_a_row_without_its_file(tmp_path: Path) -> None:
    import random
    import sqlite3

    root = tmp_path / "c"

    def fill(tag: str, n: int) -> None:
        c = PackageCache(str(root), fsync=False)
        for i in range(n):
            src = tmp_path / "s"
            src.write_bytes(os.urandom(100) + f"{tag}-{i}".encode())
            c.put(f"{tag}-{i}", str(src))
        c.close()

    fill("a", 1500)
    rnd = random.Random(5)
    for _round in range(40):
        p = popen_cli("--cache-dir", str(root), "gc", "--max-size", "1b",
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.2, 1.2))
        p.kill()
        p.wait()
        con = sqlite3.connect(root / "index-v1.sqlite")
        rows = [d for (d,) in con.execute("SELECT digest FROM objects")]
        con.close()
        for d in rows:
            assert (root / "objects-v1/sha256" / d[:2] / d).exists(), f"row without file {d}"
        if len(rows) < 500:  # refill so later rounds still have something to evict
            fill(f"r{_round}", 1000)
