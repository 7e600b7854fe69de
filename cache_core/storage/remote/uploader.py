"""The detached background uploader: ``python -m cache_core.storage.remote.uploader``.

Started by a put when the spool has work and no uploader holds the lock; drains the spool and
exits. Prints nothing; every fault stays in the spool (retried by the next uploader or by
``pkgcache remote push``) and in the remote counters.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Drain the spool of one cache; exit 0 whatever happens."""
    p = argparse.ArgumentParser(prog="pkgcache-uploader")
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--config")
    args = p.parse_args(argv)
    try:
        from ...api import PackageCache
        from ...config import load_config

        cfg = load_config(args.config, args.cache_dir, lenient=True)  # no driver keys needed
        with PackageCache.from_config(config=cfg) as cache:
            remote = cache.remote
            if remote is not None:
                remote.tier.spawned = True  # never start another from here
                remote.tier.drain()
    except Exception:  # noqa: BLE001 - a detached helper: nothing to report to
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
