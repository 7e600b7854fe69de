"""Where the private local state directory is (the one home of $PKGCACHE_STATE_DIR), with only
``os``, ``stat`` and ``errno`` imported: a start-up path (the warm pip path's memo) finds it without loading
the rest of cache_core.fs; ``cache_core.fs.safety.state_dir`` creates it."""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False  # typing is not imported: a start-up path (mypy takes it as True)
if TYPE_CHECKING:
    from collections.abc import Callable

STATE_ENV = "PKGCACHE_STATE_DIR"


def raw_path(default: str | os.PathLike[str] | None = None) -> str:
    """$PKGCACHE_STATE_DIR, else default, else /var/lib/pkgcache for root and
    ~/.local/state/pkgcache for others (absolute, not checked)."""
    raw = os.environ.get(STATE_ENV) or (str(default) if default else None)
    if not raw:
        raw = ("/var/lib/pkgcache" if os.geteuid() == 0
               else os.path.join(os.path.expanduser("~"), ".local", "state", "pkgcache"))
    return os.path.abspath(raw)


_WALK = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ACL_XATTR = "system.posix_acl_access"


def _any_acl(fd: int) -> bool | None:
    """True if the directory has an access ACL (any: counted as shared), False if none, None
    when that cannot be read."""
    try:
        os.getxattr(f"/proc/self/fd/{fd}", _ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        return None
    return True


def private_chain(path: str, *, create: bool = False,
                  acl_writes: Callable[[int], bool | None] = _any_acl) -> bool:
    """Open path from / one component at a time, never following a symlink (creating what is
    missing if create: parents 0755, the last 0700); True if, as ssh's StrictModes asks, every
    directory on the way is owned by root or us and no other user can write it (mode, or an ACL
    by ``acl_writes(fd)``; world-writable only with the sticky bit, as /tmp), and the last is ours,
    mode 0700 or less. False for a symlink on the way and when an ACL cannot be read."""
    me = os.geteuid()
    names = [n for n in path.split("/") if n]
    try:
        fd = os.open("/", _WALK)
    except OSError:
        return False
    try:
        for i, name in enumerate(("", *names)):
            last = i == len(names)
            if name:
                try:
                    nfd = os.open(name, _WALK, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        return False
                    try:
                        os.mkdir(name, 0o700 if last else 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    nfd = os.open(name, _WALK, dir_fd=fd)
                os.close(fd)
                fd = nfd
            st = os.fstat(fd)
            acl = acl_writes(fd)
            if acl is None:  # cannot tell whether an ACL lets others write it: refused
                return False
            if last:
                if st.st_uid != me or st.st_mode & 0o077 or acl:
                    return False
            elif st.st_uid not in (0, me) or (
                    (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or acl)
                    and not st.st_mode & stat.S_ISVTX):
                return False
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def locate() -> str | None:
    """The private state directory if it exists and is private as
    ``cache_core.fs.safety.state_dir`` requires (``private_chain``; any access ACL on the way
    counts as shared here, the caller then takes its full path). Never created."""
    path = raw_path()
    return path if private_chain(path) else None
