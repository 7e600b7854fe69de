"""Inter-process locks: flock on files named by a hash of any string, never following symlinks."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import LockTimeout

POLL_SECONDS = 0.02  # how often a waiter with a timeout retries a held lock


def lock_path(lock_dir: Path, name: str) -> Path:
    """The lock file for an arbitrary name (hashed, so any name is safe)."""
    return lock_dir / (hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".lock")


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def acquire(fd: int, timeout: float | None, what: str, *, posix: bool = False) -> None:
    """Lock fd exclusively: wait forever (None), up to timeout seconds, or not at all (0).

    The one lock-polling loop of pkgcache; raises LockTimeout naming ``what``. posix: a POSIX
    record lock (fcntl.lockf, as apt and dpkg take theirs) instead of flock.
    """
    lock = fcntl.lockf if posix else fcntl.flock
    if timeout is None:
        lock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:  # flock: EWOULDBLOCK; lockf: EACCES or EAGAIN
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            if time.monotonic() >= deadline:
                raise LockTimeout(f"lock {what} is held by another process") from None
            time.sleep(POLL_SECONDS)


@contextmanager
def file_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive flock on path; wait forever (None), up to timeout seconds, or not at all (0)."""
    fd = _open(path)
    try:
        acquire(fd, timeout, path.name)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextmanager
def named_lock(lock_dir: Path, name: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock called name (any string) under lock_dir."""
    with file_lock(lock_path(lock_dir, name), timeout):
        yield
