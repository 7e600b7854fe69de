"""The detached bundle refresh that ``pkgcache git clone``/``update`` start with automatic
uploads: ``python -m hooks.git.bundler --cache-dir D [--config F] -- URL...``."""

from __future__ import annotations

import argparse
import sys

from cache_core import EXIT_OK, EXIT_UNUSABLE


def main(argv: list[str] | None = None) -> int:
    """Publish the bundles of the mirrors of these URLs; nobody to tell about a fault."""
    p = argparse.ArgumentParser(prog="pkgcache-gitfleet")
    p.add_argument("--cache-dir")
    p.add_argument("--config")
    p.add_argument("urls", nargs="*")
    args = p.parse_args(argv)
    from cache_core import PackageCache
    from hooks.git.mirror import publish_all

    try:
        cache = PackageCache.from_config(config_path=args.config, cache_dir=args.cache_dir)
        publish_all(cache, args.urls)
    except Exception:  # noqa: BLE001 - a background job: nobody to tell
        return EXIT_UNUSABLE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
