"""Inter-process locks: flock on files under <root>/locks/, opened without following symlinks."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CacheError


class LockTimeout(CacheError):
    """A lock could not be taken within its timeout."""


def lock_path(lock_dir: Path, name: str) -> Path:
    """The lock file for an arbitrary name (hashed, so any name is safe)."""
    return lock_dir / (hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".lock")


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


@contextmanager
def file_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive flock on path; wait forever (None), up to timeout seconds, or not at all (0)."""
    fd = _open(path)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"lock {path.name} is held by another process") from None
                    time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the flock
