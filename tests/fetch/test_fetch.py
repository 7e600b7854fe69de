"""`pkgcache fetch` against a real HTTP server on 127.0.0.1 (requests are counted)."""

from __future__ import annotations

import hashlib
import os
import pty
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cache_core import PackageCache
from hooks.fetch.download import FetchError, fetch, url_hash
from tests.support.cli import Runner
from tests.support.env import clean_env
from tests.support.http import FetchServer
from tests.support.mounts import Mounts

BODY = os.urandom(300_000)
FAST = ("--retry-delay", "0.01")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_keys(run: Runner) -> list[str]:
    cache = PackageCache(str(run.cache_dir))
    try:
        return [e.key for e in cache.keys()]
    finally:
        cache.close()


def object_files(run: Runner) -> list[Path]:
    return [p for p in (run.cache_dir / "objects-v1").rglob("*") if p.is_file()]


def partial_files(run: Runner) -> list[Path]:
    bucket = run.cache_dir / "fetch-v1"
    return list(bucket.iterdir()) if bucket.exists() else []


def test_one_full_download_per_change(server: FetchServer, run: Runner, tmp_path: Path) -> None:
    server.put("/f.tar.gz", BODY)
    dest = tmp_path / "out.tar.gz"
    for _ in range(3):
        r = run("fetch", server.url("/f.tar.gz"), "-o", str(dest))
        assert r.returncode == 0, r.stderr
        assert r.stderr == b"" and r.stdout == b""   # silent on success
        assert dest.read_bytes() == BODY
    assert server.count("/f.tar.gz", 200) == 1
    assert server.count("/f.tar.gz", 304) == 2
    etag = server.resources["/f.tar.gz"].etag
    assert all(h.headers.get("if-none-match") == etag for h in server.requests("/f.tar.gz")[1:])

    new = os.urandom(200_000)
    server.put("/f.tar.gz", new)        # the file changes upstream
    for _ in range(2):
        assert run("fetch", server.url("/f.tar.gz"), "-o", str(dest)).returncode == 0
        assert dest.read_bytes() == new
    assert server.count("/f.tar.gz", 200) == 2       # one full download per change
    assert server.count("/f.tar.gz", 304) == 3
    assert cache_keys(run) == [server.url("/f.tar.gz")]


def test_last_modified_only_revalidates(server: FetchServer, run: Runner, tmp_path: Path) -> None:
    server.put("/lm", BODY, etag=False)
    dest = tmp_path / "lm"
    assert run("fetch", server.url("/lm"), "-o", str(dest)).returncode == 0
    assert run("fetch", server.url("/lm"), "-o", str(dest)).returncode == 0
    second = server.requests("/lm")[1]
    assert second.headers["if-modified-since"] == server.resources["/lm"].last_modified
    assert second.status == 304 and server.count("/lm", 200) == 1


def test_offline_serves_cached_copy_with_server_stopped(server: FetchServer, run: Runner,
                                                        tmp_path: Path) -> None:
    server.put("/tool.sh", BODY)
    url = server.url("/tool.sh")
    assert run("fetch", url, "-o", str(tmp_path / "a")).returncode == 0
    server.stop()
    r = run("fetch", url, "-o", str(tmp_path / "b"), "--offline")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b").read_bytes() == BODY
    assert r.stderr.decode().count("\n") == 1 and "warning" in r.stderr.decode()
    # Not --offline, but the server is unreachable: the cached copy, one warning, exit 0.
    r = run("fetch", url, "-o", str(tmp_path / "c"), *FAST)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c").read_bytes() == BODY
    assert r.stderr.decode().count("\n") == 1 and "cannot reach server" in r.stderr.decode()
    # Offline miss: exit 1 (miss), nothing written.
    r = run("fetch", server.url("/other"), "-o", str(tmp_path / "d"), "--offline")
    assert r.returncode == 1 and not (tmp_path / "d").exists()


def test_unreachable_without_cached_copy_fails_5(server: FetchServer, run: Runner,
                                                 tmp_path: Path) -> None:
    url = server.url("/x")
    server.stop()
    r = run("fetch", url, "-o", str(tmp_path / "x"), "--retries", "1", *FAST)
    assert r.returncode == 5
    assert r.stderr.decode().startswith("pkgcache: fetch: cannot reach server")
    assert r.stderr.decode().count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_pinned_hit_touches_no_network(server: FetchServer, run: Runner, tmp_path: Path) -> None:
    server.put("/pinned", BODY)
    url = server.url("/pinned")
    assert run("fetch", url, "-o", str(tmp_path / "a"), "--sha256", sha(BODY)).returncode == 0
    n = server.count()
    server.stop()
    r = run("fetch", url, "-o", str(tmp_path / "b"), "--sha256", sha(BODY).upper())
    assert r.returncode == 0 and r.stderr == b""      # no warning: nothing was even tried
    assert (tmp_path / "b").read_bytes() == BODY
    assert server.count() == n


def test_wrong_sha256_fails_and_caches_nothing(server: FetchServer, run: Runner,
                                               tmp_path: Path) -> None:
    server.put("/evil", BODY)
    dest = tmp_path / "evil"
    dest.write_bytes(b"previous")
    r = run("fetch", server.url("/evil"), "-o", str(dest), "--sha256", "0" * 64)
    assert r.returncode == 1
    assert b"SHA-256 mismatch" in r.stderr and r.stderr.count(b"\n") == 1
    assert dest.read_bytes() == b"previous"          # DEST untouched
    assert cache_keys(run) == [] and object_files(run) == [] and partial_files(run) == []
    # A later offline fetch has nothing to serve; the right pin works online.
    assert run("fetch", server.url("/evil"), "-o", str(dest), "--offline").returncode == 1
    assert run("fetch", server.url("/evil"), "-o", str(dest), "--sha256", sha(BODY)).returncode == 0
    assert dest.read_bytes() == BODY


def test_bad_sha256_argument_is_usage_error(run: Runner, tmp_path: Path) -> None:
    r = run("fetch", "http://127.0.0.1:9/x", "-o", str(tmp_path / "x"), "--sha256", "abc")
    assert r.returncode == 2
    r = run("fetch", "file:///etc/passwd", "-o", str(tmp_path / "x"))
    assert r.returncode == 2 and not (tmp_path / "x").exists()


def test_connection_cut_mid_body_resumes_with_range(server: FetchServer, run: Runner,
                                                    tmp_path: Path) -> None:
    server.put("/big", BODY, cut_after=100_000, cuts_left=1)
    dest = tmp_path / "big"
    r = run("fetch", server.url("/big"), "-o", str(dest), *FAST)
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == BODY
    first, second = server.requests("/big")
    assert first.status == 200 and first.sent == 100_000
    assert second.headers["range"] == "bytes=100000-"
    assert second.headers["if-range"] == server.resources["/big"].etag
    assert second.status == 206 and second.sent == len(BODY) - 100_000
    assert partial_files(run) == []


def test_killed_download_resumes_next_run(server: FetchServer, run: Runner,
                                          tmp_path: Path) -> None:
    res = server.put("/iso", BODY, stall_after=120_000)
    dest = tmp_path / "iso"
    proc = run.popen("fetch", server.url("/iso"), "-o", str(dest), stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    part = run.cache_dir / "fetch-v1" / f"{url_hash(server.url('/iso'))}.part"
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size == 120_000):
        assert time.monotonic() < deadline, "the partial download never appeared"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    res.release.set()
    assert not dest.exists() and cache_keys(run) == []
    r = run("fetch", server.url("/iso"), "-o", str(dest), "--sha256", sha(BODY))
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == BODY
    second = server.requests("/iso")[1]
    assert second.headers["range"] == "bytes=120000-" and second.status == 206
    assert second.sent == len(BODY) - 120_000
    assert server.count("/iso") == 2


def test_resume_after_upstream_change_restarts(server: FetchServer, run: Runner,
                                               tmp_path: Path) -> None:
    server.put("/chg", BODY, cut_after=50_000, cuts_left=1)
    r = run("fetch", server.url("/chg"), "-o", str(tmp_path / "x"), "--retries", "0")
    assert r.returncode == 5 and len(partial_files(run)) == 2     # kept for resuming
    new = os.urandom(150_000)
    server.put("/chg", new)              # If-Range no longer matches: full body, not a splice
    r = run("fetch", server.url("/chg"), "-o", str(tmp_path / "x"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x").read_bytes() == new
    last = server.requests("/chg")[-1]
    assert last.headers.get("range") == "bytes=50000-" and last.status == 200


def test_redirect_followed_and_revalidated(server: FetchServer, run: Runner,
                                           tmp_path: Path) -> None:
    server.put("/real", BODY)
    server.put("/latest", b"", location=server.url("/real"))
    dest = tmp_path / "r"
    assert run("fetch", server.url("/latest"), "-o", str(dest)).returncode == 0
    assert dest.read_bytes() == BODY
    assert run("fetch", server.url("/latest"), "-o", str(dest)).returncode == 0
    assert server.count("/latest", 302) == 2
    assert server.count("/real", 200) == 1 and server.count("/real", 304) == 1


def test_404_is_a_failure_like_curl_f(server: FetchServer, run: Runner, tmp_path: Path) -> None:
    dest = tmp_path / "nope"
    dest.write_bytes(b"old")
    r = run("fetch", server.url("/nope"), "-o", str(dest), *FAST)
    assert r.returncode == 5
    assert r.stderr.decode() == f"pkgcache: fetch: HTTP 404 Not Found: {server.url('/nope')}\n"
    assert dest.read_bytes() == b"old" and server.count("/nope") == 1   # no retry on 404
    assert cache_keys(run) == []


def test_500_is_retried_with_backoff(server: FetchServer, run: Runner, tmp_path: Path) -> None:
    server.put("/flaky", BODY, fail_left=2)
    r = run("fetch", server.url("/flaky"), "-o", str(tmp_path / "f"), *FAST)
    assert r.returncode == 0 and r.stderr == b""
    assert server.count("/flaky", 500) == 2 and server.count("/flaky", 200) == 1
    server.put("/down", BODY, status=500)
    r = run("fetch", server.url("/down"), "-o", str(tmp_path / "d"), "--retries", "2", *FAST)
    assert r.returncode == 5 and b"HTTP 500 (after 3 attempts)" in r.stderr
    assert server.count("/down") == 3 and not (tmp_path / "d").exists()


def test_500_with_cached_copy_serves_it_with_warning(server: FetchServer, run: Runner,
                                                     tmp_path: Path) -> None:
    server.put("/s", BODY)
    assert run("fetch", server.url("/s"), "-o", str(tmp_path / "a")).returncode == 0
    server.resources["/s"].status = 500
    r = run("fetch", server.url("/s"), "-o", str(tmp_path / "b"), "--retries", "1", *FAST)
    assert r.returncode == 0 and (tmp_path / "b").read_bytes() == BODY
    assert b"warning" in r.stderr and r.stderr.count(b"\n") == 1


def test_concurrent_fetches_download_once(server: FetchServer, run: Runner,
                                          tmp_path: Path) -> None:
    server.put("/slow", BODY, chunk_delay=0.02)      # ~0.4 s per download
    procs = [run.popen("fetch", server.url("/slow"), "-o", str(tmp_path / f"o{i}"),
                       stderr=subprocess.PIPE) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    for i in range(4):
        assert (tmp_path / f"o{i}").read_bytes() == BODY
    assert server.count("/slow", 200) == 1
    assert server.count("/slow") <= 4


def test_stdout_when_no_output(server: FetchServer, run: Runner) -> None:
    server.put("/install.sh", b"#!/bin/sh\necho hi\n")
    r = run("fetch", server.url("/install.sh"))
    assert r.returncode == 0 and r.stdout == b"#!/bin/sh\necho hi\n" and r.stderr == b""


def test_http_proxy_and_no_proxy_are_honoured(server: FetchServer, run: Runner,
                                              tmp_path: Path) -> None:
    server.put("/p", BODY)
    env = clean_env(tmp_path, http_proxy=f"http://127.0.0.1:{server.port}")
    r = run("fetch", "http://pkgcache-test.invalid/p", "-o", str(tmp_path / "p"), env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p").read_bytes() == BODY
    assert server.requests("/p")[0].proxied
    # A dead proxy plus no_proxy for the host: direct connection.
    env = clean_env(tmp_path, http_proxy="http://127.0.0.1:9", no_proxy="127.0.0.1")
    r = run("fetch", server.url("/p"), "-o", str(tmp_path / "q"), env=env)
    assert r.returncode == 0, r.stderr
    assert not server.requests("/p")[-1].proxied


def test_progress_bar_only_on_a_terminal(server: FetchServer, run: Runner,
                                         tmp_path: Path) -> None:
    server.put("/bar", BODY)
    master, slave = pty.openpty()
    try:
        p = run.popen("fetch", server.url("/bar"), "-o", str(tmp_path / "t"), stderr=slave)
        p.wait(timeout=60)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert p.returncode == 0
    assert b"100%" in out
    r = run("fetch", server.url("/bar"), "-o", str(tmp_path / "u"), "--refresh")
    assert r.returncode == 0 and r.stderr == b""     # not a terminal: nothing


def test_refresh_downloads_again(server: FetchServer, run: Runner, tmp_path: Path) -> None:
    server.put("/r", BODY)
    assert run("fetch", server.url("/r"), "-o", str(tmp_path / "a")).returncode == 0
    assert run("fetch", server.url("/r"), "-o", str(tmp_path / "a"), "--refresh").returncode == 0
    second = server.requests("/r")[1]
    assert "if-none-match" not in second.headers and second.status == 200


def test_python_api(server: FetchServer, tmp_path: Path) -> None:
    server.put("/api", BODY)
    cache = PackageCache(str(tmp_path / "cache"))
    res = fetch(cache, server.url("/api"), tmp_path / "a", sha256=sha(BODY))
    assert (res.source, res.sha256, res.size) == ("downloaded", sha(BODY), len(BODY))
    res = fetch(cache, server.url("/api"), tmp_path / "b")
    assert res.source == "revalidated" and (tmp_path / "b").read_bytes() == BODY
    assert cache.get(server.url("/api")) is not None
    res = fetch(cache, server.url("/api"), str(tmp_path / "e"), sha256=sha(BODY))  # a str dest
    assert res.source == "cache" and (tmp_path / "e").read_bytes() == BODY
    with pytest.raises(FetchError) as err:
        fetch(cache, server.url("/missing"), tmp_path / "c")
    assert err.value.exit_code == 5
    # A disabled cache still downloads (plain curl behaviour), storing nothing.
    off = PackageCache(str(tmp_path / "off"), enabled=False)
    assert fetch(off, server.url("/api"), tmp_path / "d").source == "downloaded"
    assert not (tmp_path / "off").exists()
    cache.close()


def test_corrupt_cached_object_is_downloaded_again(server: FetchServer, run: Runner,
                                                   tmp_path: Path) -> None:
    server.put("/c", BODY)
    assert run("fetch", server.url("/c"), "-o", str(tmp_path / "a")).returncode == 0
    (obj,) = object_files(run)
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as f:
        f.write(b"X")                    # bit rot in the cache
    r = run("fetch", server.url("/c"), "-o", str(tmp_path / "b"))
    assert r.returncode == 0
    assert (tmp_path / "b").read_bytes() == BODY
    assert server.count("/c", 200) == 2


def test_https_uses_the_system_ca_bundle(run: Runner, tmp_path: Path) -> None:
    """A self-signed server is refused with the system CAs and accepted via SSL_CERT_FILE."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    srv = FetchServer(tls=(str(cert), str(key))).start()
    try:
        srv.put("/s", BODY)
        env = clean_env(tmp_path, SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt")
        r = run("fetch", srv.url("/s"), "-o", str(tmp_path / "a"), "--retries", "0", env=env)
        assert r.returncode == 5 and b"certificate verification failed" in r.stderr
        assert not (tmp_path / "a").exists() and srv.count("/s") == 0
        env = clean_env(tmp_path, SSL_CERT_FILE=str(cert))
        r = run("fetch", srv.url("/s"), "-o", str(tmp_path / "a"), env=env)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "a").read_bytes() == BODY
    finally:
        srv.stop()


def test_unusable_cache_still_downloads_with_one_warning(server: FetchServer, run: Runner,
                                                         tmp_path: Path) -> None:
    server.put("/u", BODY)
    run.cache_dir.write_text("not a directory")
    r = run("fetch", server.url("/u"), "-o", str(tmp_path / "u"))
    assert r.returncode == 0 and (tmp_path / "u").read_bytes() == BODY
    assert r.stderr.count(b"\n") == 1 and r.stderr.startswith(b"pkgcache: warning: cache unavail")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pkgcache")] == []
    r = run("fetch", server.url("/u"), "-o", str(tmp_path / "v"), env=clean_env(
        tmp_path, PKGCACHE_DISABLE="1"))
    assert r.returncode == 0 and r.stderr == b"" and (tmp_path / "v").read_bytes() == BODY


@pytest.mark.root  # to mount a tmpfs
def test_full_cache_disk_still_downloads(server: FetchServer, run: Runner, tmp_path: Path,
                                         mounts: Mounts) -> None:
    """The cache lives on a 1 MiB tmpfs; a 3 MB download goes around it with one warning."""
    big = os.urandom(3_000_000)
    server.put("/huge", big)
    mnt = mounts.tmpfs("small", "1m")
    small = Runner(tmp_path)
    small.cache_dir = mnt / "cache"
    r = small("fetch", server.url("/huge"), "-o", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "h").read_bytes() == big
    assert r.stderr.count(b"\n") == 1 and b"cannot write into the cache" in r.stderr
    assert server.count("/huge") == 2            # the retry outside the cache
    assert not (mnt / "cache" / "fetch-v1" / f"{url_hash(server.url('/huge'))}.part").exists()


def test_stats_count_a_miss_per_cold_download_and_a_hit_per_serve(
        server: FetchServer, run: Runner, tmp_path: Path) -> None:
    server.put("/a.bin", BODY)
    server.put("/b.bin", BODY[:1000])
    dest = tmp_path / "out"
    assert run("fetch", server.url("/a.bin"), "-o", str(dest)).returncode == 0
    assert run("fetch", server.url("/b.bin"), "-o", str(dest), "--sha256",
               sha(BODY[:1000])).returncode == 0
    assert run("fetch", server.url("/a.bin"), "-o", str(dest)).returncode == 0   # 304: a hit
    assert run("fetch", server.url("/b.bin"), "-o", str(dest), "--sha256",
               sha(BODY[:1000])).returncode == 0                                 # pinned: a hit
    cache = PackageCache(str(run.cache_dir))
    try:
        s = cache.stats()
    finally:
        cache.close()
    assert (s["misses"], s["hits"]) == (2, 2)
    assert s["bytes_served"] == len(BODY) + 1000


@pytest.mark.parametrize("how", ["download", "cache-hit", "no-cache"])
def test_dest_directory_swapped_after_the_start_is_not_followed(
        server: FetchServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """DEST's directory is opened once: a user who can write its parent and puts a symlink to a
    root-only directory in its place once fetch has started (a download or a cache hit) does not
    move the file there; it lands in the directory DEST named at the start."""
    from hooks.fetch import download

    server.put("/f", BODY)
    cache = None if how == "no-cache" else PackageCache(str(tmp_path / "cache"))
    if how == "cache-hit":
        assert fetch(cache, server.url("/f"), tmp_path / "warm", sha256=sha(BODY)).source \
            == "downloaded"
    parent = tmp_path / "home"  # the user's
    (parent / "dir").mkdir(parents=True)
    root_only = tmp_path / "etc"
    root_only.mkdir(mode=0o700)
    real = download._fetch

    def swapped(*args: Any, **kw: Any) -> Any:
        os.rename(parent / "dir", parent / "was-dir")
        os.symlink(root_only, parent / "dir")
        return real(*args, **kw)

    monkeypatch.setattr(download, "_fetch", swapped)
    res = fetch(cache, server.url("/f"), parent / "dir" / "file", sha256=sha(BODY))
    assert res.source == ("cache" if how == "cache-hit" else "downloaded")
    assert res.dest == str(parent / "dir" / "file")
    assert os.listdir(root_only) == []
    assert (parent / "was-dir" / "file").read_bytes() == BODY
    assert os.listdir(parent / "was-dir") == ["file"]  # no temp left behind
    if cache is not None:
        cache.close()
