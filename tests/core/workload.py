"""A writer/reader workload used by the crash and concurrency tests (run as a subprocess).

Every payload is self-checking: ``key | random bytes | sha256(key | random bytes)``, so a reader can
tell a wrong (other key's), torn or partial file from a good one.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile

from cache_core import PackageCache


def make_payload(key: str, rng: random.Random, max_size: int) -> bytes:
    body = key.encode() + b"|" + rng.randbytes(rng.randint(1, max_size))
    return body + hashlib.sha256(body).digest()


def payload_ok(key: str, data: bytes) -> bool:
    body, trailer = data[:-32], data[-32:]
    return body.startswith(key.encode() + b"|") and hashlib.sha256(body).digest() == trailer


def run(cache_dir: str, seed: int, ops: int, nkeys: int, max_size: int, cap: int,
        scratch: str) -> int:
    """Do ops random puts/gets/materializes/gcs; return the number of bad reads seen."""
    rng = random.Random(seed)
    cache = PackageCache(cache_dir, max_size_bytes=cap, strict=True)
    bad = 0
    for i in range(ops):
        key = f"key:{rng.randrange(nkeys)}"
        op = rng.random()
        if op < 0.45:
            src = os.path.join(scratch, f"src-{os.getpid()}-{i}")
            with open(src, "wb") as fh:
                fh.write(make_payload(key, rng, max_size))
            cache.put(key, src)
            os.unlink(src)
        elif op < 0.75:
            dest = os.path.join(scratch, f"out-{os.getpid()}")
            if cache.materialize_key(key, dest, mode="copy"):
                with open(dest, "rb") as fh:
                    bad += not payload_ok(key, fh.read())
        elif op < 0.97 or not cap:
            path = cache.get(key)
            if path:
                try:
                    with open(path, "rb") as fh:
                        bad += not payload_ok(key, fh.read())
                except FileNotFoundError:
                    pass  # evicted between get and open: a miss, never a wrong file
        else:
            cache.gc()
    cache.close()
    return bad


if __name__ == "__main__":
    cache_dir, seed, ops, nkeys, max_size, cap = sys.argv[1:7]
    with tempfile.TemporaryDirectory(dir=os.path.dirname(cache_dir)) as scratch:
        n_bad = run(cache_dir, int(seed), int(ops), int(nkeys), int(max_size), int(cap), scratch)
    print(f"bad={n_bad}")
    sys.exit(1 if n_bad else 0)
