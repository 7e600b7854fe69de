"""apt's directories (from apt's own config via python-apt), its archives lock, and the small
JSON state files the driver keeps in the cache's `apt` bucket (last harvest/seed, seed plan)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .naming import archive_name

SNIPPET_NAME = "05pkgcache"
HOOK_MARKER = "pkgcache apt hook"


class AptLockBusy(Exception):
    """apt's archives lock is held by someone else (usually apt itself)."""


def apt_pkg_module() -> Any:
    """Import python-apt's apt_pkg with its config and system initialised (APT_CONFIG honoured)."""
    import apt_pkg

    apt_pkg.init_config()
    apt_pkg.init_system()
    return apt_pkg


@dataclass(frozen=True)
class AptPaths:
    """The apt directories the driver touches, as apt's configuration says."""

    archives: Path
    lists: Path
    status: Path
    parts: Path
    watch: tuple[str, ...]
    policy: str

    @classmethod
    def load(cls, apt_pkg: Any | None = None) -> AptPaths:
        apt_pkg = apt_pkg or apt_pkg_module()
        cfg = apt_pkg.config
        policy = "|".join([cfg.find("APT::Architecture"), ",".join(cfg.value_list("APT::Architectures")),
                           cfg.find("APT::Default-Release")])
        watch = (cfg.find_file("Dir::Etc::sourcelist"), cfg.find_dir("Dir::Etc::sourceparts"),
                 cfg.find_file("Dir::Etc::preferences"), cfg.find_dir("Dir::Etc::preferencesparts"))
        return cls(
            archives=Path(cfg.find_dir("Dir::Cache::archives")),
            lists=Path(cfg.find_dir("Dir::State::lists")),
            status=Path(cfg.find_file("Dir::State::status")),
            parts=Path(cfg.find_dir("Dir::Etc::parts")),
            watch=watch,
            policy=policy,
        )

    def index_fingerprint(self) -> str:
        """Changes whenever apt's indexes, sources or pinning change.

        Stat data for large index files, plus the *content* of Release/InRelease files and of any
        small file: apt sets mtimes from the server's Last-Modified (whole seconds) and a freed
        inode number can be reused, so stat alone can miss a same-size index republished within
        a second. The Release files list the SHA-256 of every index, so their bytes pin them all.
        """
        h = hashlib.sha256(self.policy.encode())
        for base in [str(self.lists), *self.watch]:
            h.update(b"\0" + base.encode("utf-8", "surrogateescape"))
            try:
                if os.path.isdir(base):
                    items = [(e.name, e.path, e.stat(follow_symlinks=False)) for e in os.scandir(base)
                             if e.name not in ("lock", "partial")]
                else:
                    items = [("", base, os.stat(base))]
            except OSError:
                items = []
            for name, path, st in sorted(items, key=lambda i: i[0]):
                line = f"{name}\0{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\0"
                h.update(line.encode("utf-8", "surrogateescape"))
                if stat.S_ISREG(st.st_mode) and (name.endswith("Release") or st.st_size <= 1 << 20):
                    try:
                        with open(path, "rb") as fh:
                            h.update(hashlib.sha256(fh.read(8 << 20)).digest())
                    except OSError:
                        h.update(b"unreadable")
        return h.hexdigest()


def installed_names(status_file: Path) -> set[str]:
    """Archive names of the packages dpkg has installed (cheap parse of the status file)."""
    out: set[str] = set()
    try:
        text = status_file.read_text("utf-8", "surrogateescape")
    except OSError:
        return out
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            if k in ("Package", "Status", "Version", "Architecture"):
                fields[k] = v.strip()
        if fields.get("Status", "").endswith(" installed") and "Version" in fields:
            out.add(archive_name(fields.get("Package", ""), fields["Version"],
                                 fields.get("Architecture", "all")))
    return out


@contextmanager
def archives_lock(archives: Path, timeout: float) -> Iterator[None]:
    """apt's own archives lock (POSIX fcntl lock on archives/lock), waiting at most timeout s.

    Never blocks forever: from inside an apt hook the parent apt may hold it."""
    fd = os.open(archives / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise AptLockBusy(f"{archives / 'lock'} is held by another process") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def state_dir(cache: Any) -> Path:
    return Path(cache.bucket("apt"))


def read_state(cache: Any, name: str) -> dict[str, Any]:
    """A JSON state file from the apt bucket ({} if missing or unreadable)."""
    try:
        path = state_dir(cache) / name
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > (16 << 20):
            return {}
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_state(cache: Any, name: str, data: dict[str, Any]) -> None:
    """Write a JSON state file atomically (temp + rename)."""
    from cache_core import atomic_write

    atomic_write(state_dir(cache) / name, json.dumps(data, sort_keys=True), 0o644)


def record(cache: Any, what: str, data: dict[str, Any]) -> None:
    """Remember the last harvest/seed summary (counts, bytes, time) for `pkgcache apt status`.

    Best effort: a read-only cache still serves, it just can't keep this summary."""
    try:
        state = read_state(cache, "status.json")
        state[what] = data
        write_state(cache, "status.json", state)
    except OSError:
        pass
