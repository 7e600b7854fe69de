"""Atomic files: O_EXCL temps tagged with our pid, fsync, rename; safe opens and small reads."""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from ..errors import UnsafeCacheError
from ..keys import TMP_PREFIX as TMP_PREFIX  # re-exported (fs, sweep)

TMP_SUFFIX = ".tmp"


def create_exclusive(path: str | os.PathLike[str], mode: int = 0o600) -> int:
    """Create a new file with O_EXCL|O_NOFOLLOW and return its descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, mode)


def temp_name(directory: str | os.PathLike[str]) -> str:
    """A fresh temp path inside directory, tagged with our pid (for crash sweeps)."""
    return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{os.urandom(8).hex()}{TMP_SUFFIX}")



def replace_checked(tmp: str | os.PathLike[str], dest: str | os.PathLike[str], fd: int) -> None:
    """Rename tmp over dest, then check that dest is the very file open as fd (the one home of
    this check): in a directory someone else can write, tmp may have been swapped (e.g. for a
    symlink) before the rename. Raises OSError if it was."""
    os.replace(tmp, dest)
    want, got = os.fstat(fd), os.lstat(dest)
    if (want.st_dev, want.st_ino) != (got.st_dev, got.st_ino) or not stat.S_ISREG(got.st_mode):
        raise OSError(errno.EAGAIN, "the destination directory was changed during the write",
                      os.fspath(dest))


def unlink_quiet(path: str | os.PathLike[str]) -> None:
    """Remove a file, ignoring a missing one."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename in it is durable (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY) -> tuple[int, os.stat_result]:
    """Open a file without following a final symlink or blocking on a FIFO; (fd, fstat).

    Raises OSError(ELOOP) for a symlink and UnsafeCacheError for anything but a regular file.
    """
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeCacheError(f"{path}: not a regular file")
        if flags & (os.O_WRONLY | os.O_RDWR) == 0:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_json(path: str | os.PathLike[str], *, max_bytes: int, private: bool) -> dict[str, Any]:
    """A JSON object read through one O_NOFOLLOW|O_NONBLOCK descriptor ({} if missing, not a
    regular file, larger than max_bytes or unreadable). private: also require a file of our own
    that nobody else can read or write (trust memos in the state dir)."""
    import json  # only the callers that read state pay for it

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return {}
        if private and (st.st_uid != os.geteuid() or st.st_mode & 0o077):
            return {}
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = json.loads(fh.read(max_bytes))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644,
                 fsync: bool = False) -> None:
    """Write data to path atomically: O_EXCL temp in the same directory, then rename over path.

    fsync: make the bytes and the rename durable (the file, then its directory).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = temp_name(os.path.dirname(os.path.abspath(path)))
    fd = create_exclusive(tmp, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)  # exact mode whatever the umask
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(os.path.dirname(os.path.abspath(path)))
    except BaseException:
        unlink_quiet(tmp)
        raise


def atomic_symlink(target: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Point path at target atomically: a symlink made under a temp name, renamed over path."""
    tmp = temp_name(os.path.dirname(os.path.abspath(path)))
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        unlink_quiet(tmp)
        raise

