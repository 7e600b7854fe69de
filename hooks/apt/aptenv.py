"""apt's directories (from apt's own config via python-apt), its archives lock, the small JSON
state files the driver keeps in the cache's `apt` bucket (last harvest/seed: information only),
and the trusted memos (the seed plan) kept in a root-only local state directory, never in the
cache: a cache directory is content, not authority."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .naming import archive_name

if TYPE_CHECKING:
    from cache_core import PackageCache

SNIPPET_NAME = "05pkgcache"
HOOK_MARKER = "pkgcache apt hook"
MAX_STATE_BYTES = 16 << 20


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
    state: Path = Path("/var/lib/apt")

    @classmethod
    def load(cls, apt_pkg: Any | None = None) -> AptPaths:
        """The paths and policy from apt's configuration."""
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
            state=Path(cfg.find_dir("Dir::State") or "/var/lib/apt"),
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


def source_uris(cfg: Any) -> list[str] | None:
    """The URIs of every source in apt's sources.list and sources.list.d (*.list one-line
    entries, *.sources deb822 stanzas not ``Enabled: no``), as apt's configuration cfg names
    the files; None if one cannot be read."""
    files = [cfg.find_file("Dir::Etc::sourcelist")]
    parts = cfg.find_dir("Dir::Etc::sourceparts")
    try:
        names = sorted(os.listdir(parts)) if parts and os.path.isdir(parts) else []
    except OSError:
        return None
    files += [os.path.join(parts, n) for n in names if n.endswith((".list", ".sources"))]
    uris: list[str] = []
    for f in files:
        try:
            with open(f, encoding="utf-8", errors="replace") as fh:
                text = fh.read(MAX_STATE_BYTES)
        except FileNotFoundError:
            continue
        except OSError:
            return None
        if f.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields: dict[str, str] = {}
                key = ""
                for line in stanza.splitlines():
                    if line.startswith("#") or not line.strip():
                        continue
                    if line[0].isspace() and key:
                        fields[key] += " " + line.strip()
                    elif ":" in line:
                        key, _, val = line.partition(":")
                        key = key.strip().lower()
                        fields[key] = val.strip()
                if fields.get("enabled", "yes").lower() != "no":
                    uris += fields.get("uris", "").split()
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 2 or words[0] not in ("deb", "deb-src"):
                continue
            rest = " ".join(words[1:])
            if rest.startswith("["):
                rest = rest.partition("]")[2]
            uris += rest.split()[:1]
    return uris


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
    from cache_core import LockTimeout, acquire_lock

    fd = os.open(archives / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        try:
            acquire_lock(fd, timeout, str(archives / "lock"), posix=True)
        except LockTimeout:
            raise AptLockBusy(f"{archives / 'lock'} is held by another process") from None
        yield
    finally:
        os.close(fd)


def apt_bucket(cache: PackageCache) -> Path:
    """The apt driver's directory of information-only state inside the cache."""
    return Path(cache.bucket("apt"))


def _read_json(path: Path, *, trusted: bool) -> dict[str, Any]:
    """A JSON object from path ({} if unusable); trusted: only our own owner-only file."""
    from cache_core import read_json

    return read_json(path, max_bytes=MAX_STATE_BYTES, private=trusted)


def read_state(cache: PackageCache, name: str) -> dict[str, Any]:
    """A JSON state file from the apt bucket ({} if missing or unreadable). Information only:
    nothing read from the cache decides what reaches dpkg."""
    try:
        return _read_json(apt_bucket(cache) / name, trusted=False)
    except (OSError, ValueError, Exception):  # noqa: BLE001 - an unusable cache: no state
        return {}


def _trusted_path(paths: AptPaths, name: str) -> Path | None:
    """A memo that decides what reaches dpkg (the seed plan), in the root-only state dir:
    $PKGCACHE_STATE_DIR, else <parent of apt's Dir::State>/pkgcache (/var/lib/pkgcache); None
    (memos off: re-derived each run) unless that is a real directory nobody else can use."""
    from cache_core import memo_path

    return memo_path(name, default=paths.state.parent / "pkgcache")


def trusted_file(paths: AptPaths, name: str) -> Path | None:
    """Where the memo name lives in the trusted state dir (None: no such dir)."""
    return _trusted_path(paths, name)


def read_trusted(paths: AptPaths, name: str) -> dict[str, Any]:
    """A memo from the trusted state dir ({} if absent, unusable or not ours)."""
    from cache_core import read_memo

    return read_memo(_trusted_path(paths, name), MAX_STATE_BYTES)


def write_trusted(paths: AptPaths, name: str, data: dict[str, Any]) -> bool:
    """Write a memo to the trusted state dir atomically (0600); False if there is none."""
    from cache_core import write_memo

    return write_memo(_trusted_path(paths, name), data)


def write_state(cache: PackageCache, name: str, data: dict[str, Any]) -> None:
    """Write a JSON state file atomically (temp + rename)."""
    from cache_core import atomic_write

    atomic_write(apt_bucket(cache) / name, json.dumps(data, sort_keys=True), 0o644)


def record(cache: PackageCache, what: str, data: dict[str, Any]) -> None:
    """Remember the last harvest/seed summary (counts, bytes, time) for `pkgcache apt status`.

    Best effort: a read-only cache still serves, it just can't keep this summary."""
    try:
        state = read_state(cache, "status.json")
        state[what] = data
        write_state(cache, "status.json", state)
    except OSError:
        pass
