"""Where the private local state directory is (the one home of $PKGCACHE_STATE_DIR), with only
``os``, ``stat`` and ``errno`` imported: a start-up path (the warm pip path's memo) finds it without loading
the rest of cache_core.fs; ``cache_core.fs.safety.state_dir`` creates it."""

from __future__ import annotations

import errno
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


_WALK = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def locate() -> str | None:
    """The private state directory if it exists and is private as
    ``cache_core.fs.safety.state_dir`` requires: walked from / without following a symlink,
    every directory on the way owned by root or us and writable by no one else (unless sticky),
    the last ours and 0700 or less; any access ACL on the way counts as shared here (the caller
    then takes its full path). Never created."""
    path = raw_path()
    names = [n for n in path.split("/") if n]
    me = os.geteuid()
    try:
        fd = os.open("/", _WALK)
    except OSError:
        return None
    try:
        for i, name in enumerate(("", *names)):
            if name:
                nfd = os.open(name, _WALK, dir_fd=fd)
                os.close(fd)
                fd = nfd
            st = os.fstat(fd)
            try:
                os.getxattr(f"/proc/self/fd/{fd}", "system.posix_acl_access")
                return None
            except OSError as exc:  # no ACL or none supported; else unknown: refused
                if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    return None
            if i == len(names):
                ok = st.st_uid == me and not st.st_mode & 0o077
            else:
                ok = st.st_uid in (0, me) and (not st.st_mode & 0o022
                                               or bool(st.st_mode & stat.S_ISVTX))
            if not ok:
                return None
        return path
    except OSError:
        return None
    finally:
        os.close(fd)
