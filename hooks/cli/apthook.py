"""The apt-hook fast path: ``pkgcache [global options] apt hook ACTION`` without the parser.

apt runs this several times per install; it always exits 0 (the hook module says why)."""

from __future__ import annotations

from cache_core import EXIT_OK

TYPE_CHECKING = False  # typing costs more than the rest of a post-update hook with nothing to do
if TYPE_CHECKING:
    from typing import Any

    from cache_core import PackageCache


def failopen_cache(args: Any) -> PackageCache:
    """A non-strict cache for hooks: faults become misses plus one warning, never errors."""
    from cache_core import PackageCache, load_config

    return PackageCache.from_config(config=load_config(args.config, args.cache_dir))


def hook_main(argv: list[str]) -> int:
    """Fast entry for `pkgcache [--config P] [--cache-dir D] [-q] apt hook ACTION` (what apt
    runs): skips building the whole CLI. Always 0; anything unexpected is one warning."""
    if argv[-3:] == ["apt", "hook", "post-update"] and update_unchanged():
        return EXIT_OK  # nothing it reads changed since its last full run: nothing opened
    info = None
    if argv[-3:] == ["apt", "hook", "pre-install"] and _fast():
        return EXIT_OK  # a remembered answer, every deb placed by its stamp: nothing opened
    if argv[-3:] == ["apt", "hook", "harvest"]:
        done, info = _fast_harvest()
        if done:
            return EXIT_OK  # every deb is one this run's seed checked: nothing to store
    try:
        from hooks.apt import hook
    except Exception as exc:  # noqa: BLE001 - never break apt
        from cache_core import write_warning

        write_warning(f"apt hook unavailable ({exc})")
        return EXIT_OK

    from hooks.cli.argv import split_globals

    split = split_globals(argv)
    if split is None:
        bad = next((a for a in argv if a.startswith("-") and a not in ("-q", "--quiet")), "")
        return hook.run(f"bad arguments: {bad}", lambda: None)
    opts, rest = split
    if rest[:2] != ["apt", "hook"] or len(rest) != 3:
        return hook.run(f"bad arguments: {' '.join(rest)}", lambda: None)
    from types import SimpleNamespace

    ns = SimpleNamespace(**opts)
    return hook.run(rest[2], lambda: failopen_cache(ns), info=info)




def _fast() -> bool:
    """The warm pre-install seed's fast path (hooks/apt/fastseed.py) did all there was to do."""
    try:
        from hooks.apt import fastseed

        return fastseed.pre_install()
    except Exception:  # noqa: BLE001 - a shortcut only: the hook runs in full
        return False


def _fast_harvest() -> tuple[bool, bytes | None]:
    """(True, _) if the harvest has nothing to store (fastseed.harvest); else the info stream
    apt sent, read already, for the full hook (None: no info fd, or it could not be read)."""
    import os

    raw = os.environ.get("APT_HOOK_INFO_FD", "")
    if not raw.isdigit():
        return False, None
    try:
        from hooks.apt import fastseed

        fd = int(raw)
        return fastseed.harvest(os.dup(fd) if fd < 3 else fd)
    except Exception:  # noqa: BLE001 - the full hook reads what is left
        return False, None


_unchanged: list[bool] = []  # update_unchanged's answer, once per process


def update_unchanged() -> bool:
    """The post-update hook's memo (hooks/apt/updatememo.py) says nothing changed. Standard
    library only: the Debian package's command (debian/bin) asks it before loading site."""
    if not _unchanged:
        try:
            from hooks.apt.updatememo import fresh

            _unchanged.append(fresh())
        except Exception:  # noqa: BLE001 - a shortcut only: the hook runs in full
            _unchanged.append(False)
    return _unchanged[0]
