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
from typing import Any

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


# Directories a cache must never be created in or be (a typo'd or hostile `directory:`).
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/var/cache", "/var/lib", "/var/log", "/var/tmp", "/var/spool", "/var/mail", "/var/run",
    "/var/lib/dpkg", "/var/lib/apt", "/var/cache/apt", "/var/cache/apt/archives", "/usr/local",
    "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/share",
})
CACHE_MARKERS = ("CACHEDIR.TAG", "index-v1.sqlite", "objects-v1")
_ACL_XATTR = "system.posix_acl_access"
_ACL_USER, _ACL_GROUP, _ACL_MASK = 0x02, 0x08, 0x10
_ACL_WRITE = 0x02


def acl_grants_write(path: str | os.PathLike[str] | int) -> bool:
    """True if the POSIX ACL of path (or an open fd) gives a named user or group write access.

    Read as the raw ``system.posix_acl_access`` xattr (no getfacl needed). The mask limits the
    named entries, as the kernel applies it; no ACL (or no xattr support) means False.
    """
    try:
        raw = os.getxattr(path, _ACL_XATTR)  # type: ignore[arg-type]
    except OSError:
        return False
    if len(raw) < 4:
        return False
    mask = 0x07
    named_write = False
    for off in range(4, len(raw) - 7, 8):
        tag, perm = int.from_bytes(raw[off:off + 2], "little"), int.from_bytes(raw[off + 2:off + 4],
                                                                                "little")
        if tag == _ACL_MASK:
            mask = perm
        elif tag in (_ACL_USER, _ACL_GROUP) and perm & _ACL_WRITE:
            named_write = True
    return named_write and bool(mask & _ACL_WRITE)


def _refuse_if_shared(path: Path, st: os.stat_result, what: str,
                      owner: int | None = None) -> None:
    """Refuse a directory (or file) that anyone but its owner may write: mode or ACL."""
    owner = os.geteuid() if owner is None else owner
    if st.st_uid != owner:
        raise UnsafeCacheError(f"{what} {path} is owned by uid {st.st_uid}, not uid "
                               f"{owner}; refusing it")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheError(
            f"{what} {path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"fix with: chmod go-w {path}")
    if acl_grants_write(str(path)):
        raise UnsafeCacheError(f"{what} {path} has an ACL that lets other users write it; "
                               f"fix with: setfacl -b {path}")


def ensure_private_dir(path: Path, mode: int = 0o755) -> Path:
    """Create path if needed; refuse a symlink, a non-directory, or one others own or can write."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheError(f"{path} is not a plain directory (symlink planted?); refusing it")
    _refuse_if_shared(path, st, "directory")
    return path


def is_system_dir(path: str | os.PathLike[str]) -> bool:
    """True for / and the system directories a cache must never be (e.g. /etc, /usr, /var/lib)."""
    real = os.path.realpath(path)
    return os.path.normpath(str(path)) in SYSTEM_DIRS or real in SYSTEM_DIRS


def check_new_root(path: Path) -> None:
    """Refuse to make a cache in a system directory or in a non-empty directory that is not a
    pkgcache cache already (no CACHEDIR.TAG / index / objects): ``directory: ~root/../../etc``."""
    if is_system_dir(path):
        raise UnsafeCacheError(f"cache directory {path} is a system directory; refusing it")
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    if names and not any(m in names for m in CACHE_MARKERS):
        raise UnsafeCacheError(
            f"cache directory {path} is not empty and holds no pkgcache cache (no CACHEDIR.TAG); "
            "refusing to create a cache there")


def check_dir_safe(path: Path, owner: int | None = None) -> None:
    """Refuse a cache root that another user owns or can write (mode, group, ACL), or whose
    parents allow swaps.

    owner: the uid that must own it (default: us; 0 for root's cache read by a user).
    """
    st = os.stat(path)
    me = os.geteuid() if owner is None else owner
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheError(f"cache directory {path} is not a directory")
    _refuse_if_shared(path, st, "cache directory", me)
    # An ancestor that others may write without the sticky bit lets them swap our directory.
    for parent in Path(os.path.realpath(path)).parents:
        pst = os.stat(parent)
        writable_by_others = pst.st_mode & (stat.S_IWOTH | stat.S_IWGRP) or acl_grants_write(
            str(parent))
        if writable_by_others and not pst.st_mode & stat.S_ISVTX:
            raise UnsafeCacheError(
                f"cache directory {path} sits in {parent}, which other users can write; refusing it")
        if pst.st_uid not in (0, me):
            raise UnsafeCacheError(
                f"cache directory {path} sits in {parent}, owned by uid {pst.st_uid}; refusing it")


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


STATE_ENV = "PKGCACHE_STATE_DIR"


def state_dir(default: str | os.PathLike[str] | None = None) -> Path | None:
    """The private local state directory for trust memos (what a driver may hand out without a
    pinned digest): $PKGCACHE_STATE_DIR, else default, else /var/lib/pkgcache for root and
    ~/.local/state/pkgcache for others. Never inside a cache (content, not authority).

    Created 0700. None when it is not a real directory of ours that only we can read and write
    (the callers then re-derive or download: a missing memo costs time, never a wrong file).
    """
    raw = os.environ.get(STATE_ENV) or (str(default) if default else None)
    if not raw:
        raw = ("/var/lib/pkgcache" if os.geteuid() == 0
               else os.path.join(os.path.expanduser("~"), ".local", "state", "pkgcache"))
    path = Path(os.path.abspath(raw))
    try:
        try:
            os.makedirs(path.parent, 0o755, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return None
    return path


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
    src_fd, _ = open_regular(src)
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
