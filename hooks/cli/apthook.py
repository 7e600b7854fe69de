"""The apt-hook fast path: ``pkgcache [global options] apt hook ACTION`` without the parser.

apt runs this several times per install; it always exits 0 (the hook module says why)."""

from __future__ import annotations

import argparse

from cache_core.errors import EXIT_OK


def hook_main(argv: list[str]) -> int:
    """Fast entry for `pkgcache [--config P] [--cache-dir D] [-q] apt hook ACTION` (what apt
    runs): skips building the whole CLI. Always 0; anything unexpected is one warning."""
    try:
        from hooks.apt import hook
        from hooks.apt.cli import failopen_cache
    except Exception as exc:  # noqa: BLE001 - never break apt
        from cache_core.errors import write_warning

        write_warning(f"apt hook unavailable ({exc})")
        return EXIT_OK

    ns = argparse.Namespace(config=None, cache_dir=None)
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


