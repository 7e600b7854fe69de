"""The one policy for leftovers of crashed writers (temp files and temp directories).

A temp named by ``temp_name`` carries its writer's pid. It is stale when its writer is gone
(after a grace minute, at once with ``force``), when it carries no pid and is a minute old, or
when it is older than TEMP_MAX_AGE whoever wrote it. Our own process's temps are never stale
(until TEMP_MAX_AGE).
"""

from __future__ import annotations

import os
import shutil
import stat
import time

from .atomic import TMP_PREFIX, TMP_SUFFIX

GRACE_SECONDS = 60          # a writer may take this long between creating and renaming a temp
TEMP_MAX_AGE = 6 * 3600     # temp files older than this are swept even if their pid lives


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


def is_stale(name: str, age: float, force: bool = False) -> bool:
    """The sweep policy for one entry of a temp directory (see the module docstring)."""
    if age > TEMP_MAX_AGE:
        return True
    pid = temp_owner_pid(name)
    if pid == os.getpid():
        return False
    if pid is None:
        return age > GRACE_SECONDS
    return (force or age > GRACE_SECONDS) and not pid_alive(pid)


def stale_entries(directory: str | os.PathLike[str], force: bool = False) -> list[os.DirEntry[str]]:
    """The entries of directory that the sweep policy calls stale (nothing is removed)."""
    out = []
    now = time.time()
    try:
        with os.scandir(directory) as it:
            for entry in it:
                try:  # a writer renames its temp away at any moment
                    age = now - entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue
                if is_stale(entry.name, age, force):
                    out.append(entry)
    except FileNotFoundError:
        pass
    return out


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a directory tree or a file without following symlinks; a missing path is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def sweep(directory: str | os.PathLike[str], force: bool = False) -> list[str]:
    """Remove the stale entries of directory; return their names."""
    removed = []
    for entry in stale_entries(directory, force):
        remove_tree(entry.path)
        removed.append(entry.name)
    return removed
