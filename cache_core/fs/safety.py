"""Directory safety: who may own and write a cache root, its parents and the private state dir."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import UnsafeCacheError
from ..statepath import private_chain, raw_path

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
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError:
        return False
    return _raw_acl_grants_write(raw)


def _raw_acl_grants_write(raw: bytes) -> bool:
    """The check of acl_grants_write on the xattr's bytes."""
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


def _fd_acl_grants_write(fd: int) -> bool | None:
    """acl_grants_write for an O_PATH descriptor, through /proc/self/fd; None when that cannot
    be read (no /proc in a chroot, a hardened mount): unknown, which a caller must refuse."""
    try:
        raw = os.getxattr(f"/proc/self/fd/{fd}", _ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False  # no ACL, or a file system without them
        return None  # not "no ACL": the path could not be read at all
    return _raw_acl_grants_write(raw)


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


def state_dir(default: str | os.PathLike[str] | None = None) -> Path | None:
    """The private local state directory for trust memos (what a driver may hand out without a
    pinned digest): $PKGCACHE_STATE_DIR, else default, else /var/lib/pkgcache for root and
    ~/.local/state/pkgcache for others. Never inside a cache (content, not authority).

    Created 0700 (missing parents 0755). None when it is not a real directory of ours that only
    we can read and write, or when any directory on the way could be changed by another user
    (``statepath.private_chain``): the callers then re-derive or download (a missing memo
    costs time, never a wrong file).
    """
    path = Path(raw_path(default))
    return path if private_chain(str(path), create=True, acl_writes=_fd_acl_grants_write) else None
