"""Which file system a path lives on (/proc/self/mountinfo), and whether SQLite's WAL works there.

WAL needs shared memory (a MAP_SHARED mmap of the -shm file, seen by every process) that network
and shared-folder file systems do not provide (SQLite's WAL documentation; vboxsf users report
"disk I/O error"). statvfs gives no file-system type, so the mount table is read instead.
"""

from __future__ import annotations

import os
import re

MOUNTINFO = "/proc/self/mountinfo"
# Network file systems and host shared folders (VirtualBox, VMware, Parallels, 9p/virtio).
NO_WAL_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "lustre",
    "gpfs", "ocfs2", "gfs2", "vboxsf", "vmhgfs", "prl_fs", "9p", "davfs", "coda",
})


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def fs_type(path: str, mountinfo: str | None = None) -> str:
    """The type of the file system holding path (its innermost mount), '' if unknown."""
    if mountinfo is None:
        try:
            with open(MOUNTINFO, encoding="utf-8", errors="replace") as fh:
                mountinfo = fh.read()
        except OSError:
            return ""
    real = os.path.realpath(path)
    best, best_type = -1, ""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        point = _unescape(fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # later lines are mounted over earlier ones
            best, best_type = len(point), right.split()[0]
    return best_type


def wal_unsafe(path: str, mountinfo: str | None = None) -> bool:
    """Whether path is on a file system where SQLite's WAL cannot be trusted: a network file
    system, a host shared folder, or FUSE (whose direct_io mounts refuse shared mmap)."""
    kind = fs_type(path, mountinfo)
    return kind in NO_WAL_TYPES or kind == "fuse" or kind.startswith(("fuse.", "nfs"))
