"""Where the private local state directory is (the one home of $PKGCACHE_STATE_DIR), with only
``os`` and ``stat`` imported: a start-up path (the warm pip path's memo) finds it without loading
the rest of cache_core.fs; ``cache_core.fs.safety.state_dir`` creates it."""

from __future__ import annotations

import os
import stat

STATE_ENV = "PKGCACHE_STATE_DIR"


def raw_path(default: str | os.PathLike[str] | None = None) -> str:
    """$PKGCACHE_STATE_DIR, else default, else /var/lib/pkgcache for root and
    ~/.local/state/pkgcache for others (absolute, not checked)."""
    raw = os.environ.get(STATE_ENV) or (str(default) if default else None)
    if not raw:
        raw = ("/var/lib/pkgcache" if os.geteuid() == 0
               else os.path.join(os.path.expanduser("~"), ".local", "state", "pkgcache"))
    return os.path.abspath(raw)


def usable(path: str | os.PathLike[str]) -> bool:
    """True if path is a real directory of ours that only we can read and write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def locate() -> str | None:
    """The private state directory if it exists and is usable (never created here)."""
    path = raw_path()
    return path if usable(path) else None
