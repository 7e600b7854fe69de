"""The cache's generation: a token beside the index, replaced after every change of a key or an
object, so a driver's memo of an answer read from the cache can tell it may be stale without
opening SQLite (only ``os`` is imported: the warm pip path reads it)."""

from __future__ import annotations

import os

SUFFIX = ".gen"  # <index file>.gen


def read(path: str) -> str | None:
    """The token in a generation file (None: absent, not a regular file, unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if (os.fstat(fd).st_mode & 0o170000) != 0o100000:
            return None
        return os.read(fd, 64).decode("ascii", "replace") or None
    except OSError:
        return None
    finally:
        os.close(fd)


def bump(path: str) -> None:
    """Replace the token with a fresh one, atomically (best effort: a failure only means a
    memo that can no longer be checked, which then goes unused)."""
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, os.urandom(12).hex().encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
