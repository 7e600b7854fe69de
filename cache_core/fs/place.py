"""Placing a file: reflink -> hardlink -> copy, always through a temp name renamed into place."""

from __future__ import annotations

import errno
import fcntl
import os

from .atomic import open_regular, replace_checked, temp_name, unlink_quiet

# Errors on which a cheaper way of placing a file is abandoned for the next one.
FALLBACK_ERRNOS = {
    errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTTY,
    errno.EINVAL, errno.ENOSYS, errno.EACCES, errno.EBADF,
}
FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int)


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
    method, fd = place_temp_fd(src, tmp, mode)
    os.close(fd)
    return method


def _create_temp(tmp: str) -> int:
    """tmp created O_EXCL|O_NOFOLLOW, open for reading too (the placed file is hashed by it)."""
    return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


def place_temp_fd(src: str | os.PathLike[str], tmp: str, mode: str = "auto") -> tuple[str, int]:
    """place_temp, and a readable descriptor of the file placed at tmp (the caller closes it; its
    offset is anywhere): in a directory another party can write, what is at tmp is checked
    against it (``replace_checked``), never re-opened by path."""
    if mode not in ("auto", "copy", "link"):
        raise ValueError(f"unknown materialize mode {mode!r}")
    src_fd, _ = open_regular(src)
    try:
        if mode in ("auto", "copy"):
            dst_fd = _create_temp(tmp)
            try:
                try:
                    _reflink(src_fd, dst_fd)
                    return "reflink", dst_fd
                except OSError as exc:
                    if exc.errno not in FALLBACK_ERRNOS:
                        raise
                if mode == "copy":
                    copy_fd(src_fd, dst_fd)
                    return "copy", dst_fd
            except BaseException:
                os.close(dst_fd)
                raise
            os.close(dst_fd)
            os.unlink(tmp)  # auto: try a hardlink before paying for a copy
        if link_verified(src, src_fd, tmp):
            return "hardlink", os.dup(src_fd)  # the very inode linked at tmp (checked)
        if mode == "link":
            raise OSError(errno.EXDEV, "cannot hardlink", str(src))
        dst_fd = _create_temp(tmp)
        try:
            copy_fd(src_fd, dst_fd)
        except BaseException:
            os.close(dst_fd)
            raise
        return "copy", dst_fd
    except BaseException:
        unlink_quiet(tmp)
        raise
    finally:
        os.close(src_fd)


def materialize(src: str | os.PathLike[str], dest: str | os.PathLike[str], mode: str = "auto") -> str:
    """Put a copy of src at dest atomically (temp in dest's dir + rename); return the method.

    mode "auto": reflink, else hardlink, else copy; "copy": never share the inode; "link": hardlink.
    dest is checked to be the file placed (by the descriptor kept from placing it): in a directory
    another party can write, the temp may be swapped before the rename (OSError then).
    """
    tmp = temp_name(os.path.dirname(os.path.abspath(dest)))
    method, fd = place_temp_fd(src, tmp, mode)
    try:
        replace_checked(tmp, dest, fd)
    except BaseException:
        unlink_quiet(tmp)
        raise
    finally:
        os.close(fd)
    return method
