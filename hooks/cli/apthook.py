"""The apt-hook fast path: ``pkgcache [global options] apt hook ACTION`` without the parser.

apt runs this several times per install; it always exits 0 (the hook module says why)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cache_core.errors import EXIT_OK


def failopen_cache(args: Any) -> Any:
    """A non-strict cache for hooks: faults become misses plus one warning, never errors."""
    from cache_core import PackageCache, load_config

    return PackageCache.from_config(config=load_config(args.config, args.cache_dir))


def hook_main(argv: list[str]) -> int:
    """Fast entry for `pkgcache [--config P] [--cache-dir D] [-q] apt hook ACTION` (what apt
    runs): skips building the whole CLI. Always 0; anything unexpected is one warning."""
    try:
        from hooks.apt import hook
    except Exception as exc:  # noqa: BLE001 - never break apt
        from cache_core.errors import write_warning

        write_warning(f"apt hook unavailable ({exc})")
        return EXIT_OK

    ns = SimpleNamespace(config=None, cache_dir=None)
    rest = list(argv)
    try:
        while rest and rest[0] != "apt":
            opt = rest.pop(0)
            if opt in ("--config", "--cache-dir"):
                setattr(ns, opt[2:].replace("-", "_"), rest.pop(0))
            elif opt.startswith(("--config=", "--cache-dir=")):
                k, v = opt[2:].split("=", 1)
                setattr(ns, k.replace("-", "_"), v)
            elif opt not in ("-q", "--quiet"):
                raise ValueError(opt)
        if rest[:2] != ["apt", "hook"] or len(rest) != 3:
            raise ValueError(" ".join(rest))
    except (ValueError, IndexError) as exc:
        return hook.run(f"bad arguments: {exc}", lambda: None)
    return hook.run(rest[2], lambda: failopen_cache(ns))


