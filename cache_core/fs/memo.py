"""Trust memos: small JSON files in the private state dir (``state_dir``) that say what this
machine itself vouched for (pip's vouches and stamps, a fetched URL's digest, the newest fleet
record per key, apt's seed plan). Read only if still our own owner-only regular file, written
atomically 0600; a missing or refused memo costs a re-hash or a download, never a wrong file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .atomic import atomic_write, read_json
from .safety import state_dir


def memo_path(name: str, sub: str = "", *, default: str | os.PathLike[str] | None = None
              ) -> Path | None:
    """<state dir>/[sub/]name (sub created 0700), or None without a usable private state dir.
    default: the state dir when $PKGCACHE_STATE_DIR is unset (see state_dir)."""
    base = state_dir(default)
    if base is None:
        return None
    if not sub:
        return base / name
    try:
        os.mkdir(base / sub, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    return base / sub / name


def read_memo(path: Path | None, max_bytes: int) -> dict[str, Any]:
    """The memo at path ({} if none, too large, unreadable, or not our owner-only file)."""
    return read_json(path, max_bytes=max_bytes, private=True) if path is not None else {}


def write_memo(path: Path | None, data: dict[str, Any]) -> bool:
    """Write the memo atomically, 0600; False if it could not be written (best effort)."""
    import json

    if path is None:
        return False
    try:
        atomic_write(path, json.dumps(data, sort_keys=True, separators=(",", ":")), 0o600)
    except OSError:
        return False
    return True
