"""Filesystem helpers: safe directories, atomic temp files, materialize, safe names.

One place for the atomic-write and materialize logic used by every driver.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import unicodedata
from pathlib import Path

from .errors import BadKeyError, UnsafeCacheError

# Errors on which a cheaper way of placing a file is abandoned for the next one.
FALLBACK_ERRNOS = {
    errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTTY,
    errno.EINVAL, errno.ENOSYS, errno.EACCES, errno.EBADF,
}
FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int)
TMP_PREFIX = ".pkgcache-"
TMP_SUFFIX = ".tmp"


def create_exclusive(path: str | os.PathLike[str], mode: int = 0o600) -> int:
    """Create a new file with O_EXCL|O_NOFOLLOW and return its descriptor."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, mode)


def temp_name(directory: str | os.PathLike[str]) -> str:
    """A fresh temp path inside directory, tagged with our pid (for crash sweeps)."""
    return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}{TMP_SUFFIX}")


def temp_owner_pid(name: str) -> int | None:
    """The pid encoded in a temp file name made by temp_name, or None."""
    if not (name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)):
        return None
    try:
        return int(name[len(TMP_PREFIX):].split("-", 1)[0])
    except ValueError:
        return None


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def ensure_private_dir(path: Path, mode: int = 0o755) -> Path:
    """Create path if needed; refuse it if it is a symlink or not a directory we own."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheError(f"{path} is not a plain directory (symlink planted?); refusing it")
    if st.st_uid != os.geteuid():
        raise UnsafeCacheError(f"{path} is owned by uid {st.st_uid}, not by us; refusing it")
    return path


def check_dir_safe(path: Path, owner: int | None = None) -> None:
    """Refuse a cache root that another user owns or can write, or whose parents allow swaps.

    owner: the uid that must own it (default: us; 0 for root's cache read by a user).
    """
    st = os.stat(path)
    me = os.geteuid() if owner is None else owner
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheError(f"cache directory {path} is not a directory")
    if st.st_uid != me:
        raise UnsafeCacheError(
            f"cache directory {path} is owned by uid {st.st_uid}, not uid {me}; refusing it")
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != os.getegid()):
        raise UnsafeCacheError(
            f"cache directory {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o});"
            f" fix with: chmod go-w {path}")
    # An ancestor that others may write without the sticky bit lets them swap our directory.
    for parent in Path(os.path.realpath(path)).parents:
        pst = os.stat(parent)
        writable_by_others = pst.st_mode & stat.S_IWOTH or (
            pst.st_mode & stat.S_IWGRP and pst.st_gid != os.getegid())
        if writable_by_others and not pst.st_mode & stat.S_ISVTX:
            raise UnsafeCacheError(
                f"cache directory {path} sits in {parent}, which other users can write; refusing it")
        if pst.st_uid not in (0, me):
            raise UnsafeCacheError(
                f"cache directory {path} sits in {parent}, owned by uid {pst.st_uid}; refusing it")


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644,
                 fsync: bool = False) -> None:
    """Write data to path atomically: O_EXCL temp in the same directory, then rename over path."""
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


def safe_filename(name: str) -> str:
    """Return name if it is a plain file name safe to create in a directory, else raise."""
    if not isinstance(name, str) or not name or len(name.encode("utf-8", "surrogatepass")) > 255:
        raise BadKeyError(f"unusable file name {name!r}")
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith(TMP_PREFIX):
        raise BadKeyError(f"unusable file name {name!r}")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise BadKeyError(f"unusable file name {name!r}")
    return name


def _reflink(src_fd: int, dst_fd: int) -> None:
    fcntl.ioctl(dst_fd, FICLONE, src_fd)


def copy_fd(src_fd: int, dst_fd: int) -> None:
    """Copy all bytes from src_fd to dst_fd (copy_file_range, which may reflink; else read/write)."""
    try:
        while os.copy_file_range(src_fd, dst_fd, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in FALLBACK_ERRNOS:
            raise
    os.lseek(src_fd, 0, os.SEEK_SET)
    os.lseek(dst_fd, 0, os.SEEK_SET)
    os.ftruncate(dst_fd, 0)
    while True:
        chunk = os.read(src_fd, 1 << 20)
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]


def link_verified(src: str | os.PathLike[str], src_fd: int, dst: str) -> bool:
    """Hardlink src to dst only if the link is the very inode open as src_fd (no symlink swap).

    Returns False (nothing left at dst) when linking is not possible here; raises other errors.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in FALLBACK_ERRNOS or exc.errno == errno.ENOENT:
            return False
        raise
    want, got = os.fstat(src_fd), os.lstat(dst)
    if (want.st_dev, want.st_ino) != (got.st_dev, got.st_ino):
        unlink_quiet(dst)
        return False
    return True


def place_temp(src: str | os.PathLike[str], tmp: str, mode: str = "auto") -> str:
    """Create tmp as a copy of src: reflink -> hardlink -> copy ("auto"), reflink -> copy ("copy").

    Returns the method used. tmp must not exist. On failure tmp is removed.
    """
    if mode not in ("auto", "copy", "link"):
        raise ValueError(f"unknown materialize mode {mode!r}")
    src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if mode in ("auto", "copy"):
            dst_fd = create_exclusive(tmp, 0o644)
            try:
                try:
                    _reflink(src_fd, dst_fd)
                    return "reflink"
                except OSError as exc:
                    if exc.errno not in FALLBACK_ERRNOS:
                        raise
                if mode == "copy":
                    copy_fd(src_fd, dst_fd)
                    return "copy"
            finally:
                os.close(dst_fd)
            os.unlink(tmp)  # auto: try a hardlink before paying for a copy
        if link_verified(src, src_fd, tmp):
            return "hardlink"
        if mode == "link":
            raise OSError(errno.EXDEV, "cannot hardlink", str(src))
        dst_fd = create_exclusive(tmp, 0o644)
        try:
            copy_fd(src_fd, dst_fd)
        finally:
            os.close(dst_fd)
        return "copy"
    except BaseException:
        unlink_quiet(tmp)
        raise
    finally:
        os.close(src_fd)


def materialize(src: str | os.PathLike[str], dest: str | os.PathLike[str], mode: str = "auto") -> str:
    """Put a copy of src at dest atomically (temp in dest's dir + rename); return the method.

    mode "auto": reflink, else hardlink, else copy; "copy": never share the inode; "link": hardlink.
    """
    tmp = temp_name(os.path.dirname(os.path.abspath(dest)))
    method = place_temp(src, tmp, mode)
    try:
        os.replace(tmp, dest)
    except BaseException:
        unlink_quiet(tmp)
        raise
    return method
