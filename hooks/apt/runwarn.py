"""One ``pkgcache: warning:`` line per apt run: the hooks and the download method of one apt-get
run are separate processes, so a fault they all meet (an unusable cache, an index written by a
newer pkgcache) would otherwise be said by each. The first to warn leaves a marker named after
the apt process (pid and start time) in RUN_DIR; the others stay quiet."""

from __future__ import annotations

import os

RUN_DIR = "/run/pkgcache"


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat (clock ticks after boot): a pid reused later differs."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def _prune(dfd: int) -> None:
    """Drop the markers of apt runs that have ended."""
    for name in os.listdir(dfd):
        _, _, rest = name.partition("warned-")
        pid, _, start = rest.partition("-")
        try:
            alive = pid.isdigit() and _start_time(int(pid)) == start
        except (OSError, IndexError):
            alive = False
        if not alive:
            try:
                os.unlink(name, dir_fd=dfd)
            except OSError:
                pass


def first_of_run(run_dir: str = RUN_DIR) -> bool:
    """Claim this apt run's warning line: False when another pkgcache process of the same apt
    run already has it; True otherwise, and whenever that cannot be told (no apt above us, no
    usable run_dir), so a warning is never lost."""
    try:
        from .invocation import current

        inv = current()
        if inv is None:
            return True
        marker = f"warned-{inv.pid}-{_start_time(inv.pid)}"
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        dfd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except Exception:  # noqa: BLE001 - the gate never costs a warning
        return True
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return True  # not a directory of ours alone: do not trust its markers
        _prune(dfd)
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=dfd))
        return True
    except FileExistsError:
        return False
    except Exception:  # noqa: BLE001
        return True
    finally:
        os.close(dfd)
