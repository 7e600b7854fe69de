"""Output helpers shared by every command: the one byte formatter and the one error line."""

from __future__ import annotations

import sys
from typing import Any


def human(n: float) -> str:
    """Bytes in a short human form: ``512 B``, ``1.5 KiB`` ... ``2.0 TiB`` (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def error(message: str) -> None:
    """The one-line ``pkgcache: MESSAGE`` on stderr that goes with a non-zero exit code."""
    try:
        sys.stderr.write(f"pkgcache: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def config_warnings(remotes: list[dict[str, Any]]) -> None:
    """One warning line per remote whose entry makes fleet records useless (its status row's
    ``config_warning``): for ``remote status`` and ``stats``."""
    from cache_core import warn

    for r in remotes:
        if r.get("config_warning"):
            warn(f"remote {r['url']}: {r['config_warning']}")
