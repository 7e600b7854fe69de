#!/usr/bin/env python3
"""Remote tier benchmark: a get through each backend on loopback beside raw curl of the same
object, and the overhead a configured remote adds to a warm local hit (target: none measurable).

Run (as root, in the test venv: nginx-light from Debian, moto from tests/requirements-test.txt):
    .venv/bin/python -m bench.scenarios.remote_get [--size-mb 64] [--reps 5] [--json OUT]
A remote get = signed record GET + content GET streamed through SHA-256 into the store + the
verified hit that returns it; curl = the same content GET written to a file on the same disk.
--objects N: also N objects of ~1.8 MB (apt's set: 42 debs, 77 MB) brought by apt's prefetch
(hooks/apt/fleet.py: 4 at a time, one batch) beside one kept-alive connection that GETs, hashes
and fsyncs each in turn (the raw limit of a sequential fetch).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.lib.setup import REPO, manual_uploads
from bench.lib.stats import median_time as median
from cache_core import PackageCache
from tests.support.remote import Moto, Nginx, write_keypair

KEY = "deb:bench_1.0_amd64.deb"


def make(work: Path, name: str, remotes: list[dict]) -> PackageCache:
    """A cache named name in work whose config lists remotes."""
    cfg = work / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({"performance": {"cache": {"directory": str(work / name),
                                                             "max_size_gb": 0,
                                                             "remote": remotes}}}))
    cfg.chmod(0o600)  # inline S3 keys: only in a file nobody else can read
    return PackageCache.from_config(str(cfg))


def bench_backend(work: Path, name: str, rw: dict, curl: list[str], src: Path, digest: str,
                  secret_file: str, public: str, reps: int) -> dict:
    """One backend: remote get vs curl of the same object (median seconds)."""
    rw = dict(rw, read_timeout=30)  # a loaded 2-core machine: never let the bench trip a breaker
    a = make(work, f"{name}-a", [dict(rw, mode="rw", signing_key_file=secret_file)])
    a.put(KEY, str(src))
    a.remote.tier.drain(wait=True)
    a.close()
    times = []
    for i in range(reps + 1):  # the first run warms the page cache and the server
        b = make(work, f"{name}-b{i}", [dict(rw, trusted_public_keys=[public])])
        b.stats()  # create the empty cache (index, directories) outside the timing
        t = time.perf_counter()
        assert b.get(KEY) is not None
        times.append(time.perf_counter() - t)
        b.close()
        shutil.rmtree(work / f"{name}-b{i}")
    t_remote = statistics.median(times[1:])

    out = work / "curl.out"

    def get_curl() -> None:
        subprocess.run([*curl, "-o", str(out)], check=True)
        out.unlink()

    def get_curl_verified() -> None:  # what a careful script does: download, then sha256sum
        subprocess.run([*curl, "-o", str(out)], check=True)
        subprocess.run(["sha256sum", str(out)], check=True, stdout=subprocess.DEVNULL)
        out.unlink()

    get_curl()
    t_curl = median(get_curl, reps)
    t_curl_v = median(get_curl_verified, reps)
    size = src.stat().st_size
    return {"remote_s": round(t_remote, 4), "curl_s": round(t_curl, 4),
            "ratio_remote_over_curl": round(t_remote / t_curl, 2),
            "curl_sha256sum_s": round(t_curl_v, 4),
            "ratio_remote_over_curl_sha256sum": round(t_remote / t_curl_v, 2),
            "remote_MBps": round(size / t_remote / 1e6, 1), "curl_MBps": round(size / t_curl / 1e6, 1)}


def warm_hit_overhead(work: Path, rw: dict, n: int = 3000) -> dict:
    """What a configured remote adds to n warm local hits."""
    src = work / "small"
    src.write_bytes(os.urandom(4096))
    plain = make(work, "hit", [])
    plain.put("deb:small.deb", str(src))
    plain.close()
    with_remote = make(work, "hit", [rw])  # same directory, a remote configured
    plain = make(work, "hit", [])

    def loop(c: PackageCache) -> float:
        t = time.perf_counter()
        for _ in range(n):
            assert c.get("deb:small.deb") is not None
        return (time.perf_counter() - t) / n * 1e6

    rows = {"plain": [], "remote": []}
    for _ in range(5):
        rows["plain"].append(loop(plain))
        rows["remote"].append(loop(with_remote))
    p, r = statistics.median(rows["plain"]), statistics.median(rows["remote"])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cli: dict[str, list[float]] = {"plain": [], "remote": []}
    for _ in range(15):  # alternate, so background load hits both alike
        for label, cfg in (("plain", []), ("remote", [rw])):
            make(work, "hit", cfg).close()
            cmd = [sys.executable, "-m", "hooks.cli", "--config", str(work / "hit.yaml"), "get",
                   "deb:small.deb"]
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            cli[label].append(time.perf_counter() - t)
    cli_med = {k: statistics.median(v) for k, v in cli.items()}
    return {"hit_us_plain": round(p, 1), "hit_us_with_remote": round(r, 1),
            "hit_overhead_pct": round((r - p) / p * 100, 1),
            "cli_get_ms_plain": round(cli_med["plain"] * 1000, 1),
            "cli_get_ms_with_remote": round(cli_med["remote"] * 1000, 1)}


def many_objects(work: Path, ng: Nginx, n: int, reps: int) -> dict:
    """n objects from nginx into a fresh cache by apt's prefetch, against raw sequential GETs
    over one connection (each hashed and fsynced), interleaved; medians in seconds."""
    import hashlib
    import http.client
    import types

    from hooks.apt import fleet

    wants = []
    for i in range(n):
        data = os.urandom(1_830_000 + i * 1000)
        digest = hashlib.sha256(data).hexdigest()
        (ng.root / "store" / "cas").mkdir(parents=True, exist_ok=True)
        (ng.root / "store" / "cas" / digest).write_bytes(data)
        wants.append(types.SimpleNamespace(fname=f"p{i}_1_amd64.deb", sha256=digest, size=len(data)))

    def raw() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ng.port)
        out = work / "raw"
        out.mkdir(exist_ok=True)
        for w in wants:
            conn.request("GET", f"/store/cas/{w.sha256}")
            resp, h = conn.getresponse(), hashlib.sha256()
            with open(out / w.sha256, "wb") as f:
                while chunk := resp.read1(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
                resp.read()
                f.flush()
                os.fsync(f.fileno())
            assert h.hexdigest() == w.sha256
        conn.close()
        shutil.rmtree(out)

    def prefetch(k: int) -> float:
        c = make(work, f"many-{k}", [{"url": ng.url(), "read_timeout": 30}])
        c.stats()
        t = time.perf_counter()
        assert fleet.prefetch(c, wants)[0] == n
        took = time.perf_counter() - t
        c.close()
        shutil.rmtree(work / f"many-{k}")
        return took

    raw()  # warms the page cache and the server
    raws, ours = [], []
    for k in range(reps):
        os.sync()
        t = time.perf_counter()
        raw()
        raws.append(time.perf_counter() - t)
        os.sync()
        ours.append(prefetch(k))
    r, o = statistics.median(raws), statistics.median(ours)
    return {"objects": n, "mb": round(sum(w.size for w in wants) / 1e6, 1),
            "prefetch_s": round(o, 3), "raw_sequential_s": round(r, 3),
            "ratio_prefetch_over_raw": round(o / r, 2),
            "per_rep_prefetch": [round(x, 3) for x in ours],
            "per_rep_raw": [round(x, 3) for x in raws]}


def main() -> int:
    """Run every backend and print the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--no-s3", action="store_true", help="skip moto (slow to start)")
    ap.add_argument("--objects", type=int, default=42, help="apt prefetch of N objects (0: skip)")
    args = ap.parse_args()
    manual_uploads()
    work = Path(tempfile.mkdtemp(prefix="pkgcache-remote-bench-"))
    os.chmod(work, 0o755)
    servers = []
    try:
        src = work / "blob"
        src.write_bytes(os.urandom(args.size_mb * 1_000_000))
        import hashlib

        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        sk = work / "sk"
        public = write_keypair(sk, "bench")
        results: dict = {"size_mb": args.size_mb, "reps": args.reps}
        shared = work / "shared"
        shared.mkdir()
        ng = Nginx(work / "nginx")
        servers.append(ng)
        backends = [
            ("file", {"url": f"file://{shared}"}, ["curl", "-sf", f"file://{shared}/cas/{digest}"]),
            ("nginx", {"url": ng.url()}, ["curl", "-sf", f"{ng.url()}/cas/{digest}"]),
        ]
        if not args.no_s3:
            moto = Moto()
            servers.append(moto)
            backends.append(("s3", moto.remote(url="s3://fleet/bench"), [
                "curl", "-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "-H",
                f"x-amz-content-sha256: {hashlib.sha256(b'').hexdigest()}", "--user",
                f"{moto.access_key}:{moto.secret_key}",
                f"{moto.endpoint}/fleet/bench/cas/{digest}"]))
        for name, rw, curl in backends:
            results[name] = bench_backend(work, name, rw, curl, src, digest, str(sk), public,
                                          args.reps)
            print(f"{name:>6}: remote get {results[name]['remote_s']:.3f} s "
                  f"({results[name]['remote_MBps']} MB/s), curl {results[name]['curl_s']:.3f} s "
                  f"({results[name]['curl_MBps']} MB/s), ratio "
                  f"{results[name]['ratio_remote_over_curl']}x; curl + sha256sum "
                  f"{results[name]['curl_sha256sum_s']:.3f} s, ratio "
                  f"{results[name]['ratio_remote_over_curl_sha256sum']}x", flush=True)
        if args.objects:
            m = results["many_objects"] = many_objects(work, ng, args.objects, args.reps)
            print(f"{m['objects']} objects ({m['mb']} MB) by apt's prefetch {m['prefetch_s']:.3f} s, "
                  f"raw sequential GET+sha256+fsync {m['raw_sequential_s']:.3f} s: "
                  f"{m['ratio_prefetch_over_raw']}x", flush=True)
        results["warm_hit"] = warm_hit_overhead(work, {"url": ng.url()})
        w = results["warm_hit"]
        print(f"warm local hit: {w['hit_us_plain']} us without a remote, "
              f"{w['hit_us_with_remote']} us with one ({w['hit_overhead_pct']:+} %); "
              f"CLI get {w['cli_get_ms_plain']} ms vs {w['cli_get_ms_with_remote']} ms")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
