"""The post-update hook's memo: an `apt-get update` that changed nothing the hook reads ends at
once, with no cache, YAML, SQLite or python-apt opened (a warm update costs what it costs
without pkgcache).

After a full post-update run, a memo in the private state dir (0600) records what that run
depended on; the next run does nothing when all of it is unchanged and the full run is less
than MAX_AGE old (so a Release file's "confirmed" time, its fleet record and the run counters
are refreshed at least that often):
  - the key: the hook's arguments (--config, --cache-dir), the environment that selects apt's
    and pkgcache's configuration (APT_CONFIG, cache_core.stamps.config_identity), the uid;
  - stamps (``dev ino size mtime_ns``, cache_core.stamps.copy_of: apt re-chmods an unchanged
    Release file at every update, which moves only its ctime) of apt's config files (the
    APT_CONFIG file, apt.conf, every file in apt.conf.d), the sources and pinning, dpkg's
    status (the seed's plan follows what is installed; a .deb upgrade changes it too), the
    hook's own modules, the lists dir and every file in it; and the SHA-256 of each Release
    file there (apt sets a list file's mtime from the server's whole-second Last-Modified,
    and a freed inode number can come back: the Release files' bytes pin every index they
    list);
  - the cache's generation token (replaced on every change of a key or an object: a cleared
    or pruned cache runs the full import again) and the Release freshness state.
Standard library only (os, and the built-in SHA-256 for the Release files).
"""

from __future__ import annotations

import os
import sys
import time

FORMAT = "pkgcache-apt-post-update 1"
NAME = "apt-post-update.memo"
MAX_AGE = 3600.0  # seconds
MAX_BYTES = 1 << 20
RELEASE_SUFFIXES = ("InRelease", "Release", "Release.gpg")
SKIP = ("lock", "partial", "auxfiles")  # apt's own, changed by every run


def _stamp(path: str) -> str:
    """cache_core.stamps.copy_of (``dev ino size mtime_ns``) of path, followed, or "-"."""
    from cache_core import stamps

    try:
        return stamps.copy_of(os.stat(path))
    except OSError:
        return "-"


def _entries(directory: str) -> list[tuple[str, str]]:
    """(path, stamp) of directory and of each entry in it, sorted; Release files also by
    content."""
    out = [(directory, _stamp(directory))]
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        if name in SKIP:
            continue
        path = os.path.join(directory, name)
        stamp = _stamp(path)
        if name.endswith(RELEASE_SUFFIXES) and stamp != "-":
            stamp += " " + _digest(path)
        out.append((path, stamp))
    return out


def _digest(path: str) -> str:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # built in: no OpenSSL
    except ImportError:
        from hashlib import sha256
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "-"
    try:
        h = sha256()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)
    except OSError:
        return "-"
    finally:
        os.close(fd)


def _key(args: list[str]) -> str:
    from cache_core import stamps

    return "\t".join([str(os.geteuid()), "APT_CONFIG=" + os.environ.get("APT_CONFIG", ""),
                      stamps.config_identity(), *args])


def _code() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, n)
            for n in ("updatememo.py", "hook.py", "lists.py", "seed.py", "fastseed.py")]


def _lines(args: list[str], files: list[str], dirs: list[str], token: tuple[str, str] | None
           ) -> list[str]:
    out = [FORMAT, _key(args)]
    if token is not None:
        from cache_core import read_generation

        out.append(f"token\t{token[0]}\t{read_generation(token[0]) or '-'}")
    for f in [*files, *_code()]:
        out.append(f"file\t{f}\t{_stamp(f)}")
    for d in dirs:
        out.extend(f"file\t{p}\t{s}" for p, s in _entries(d))
    return out


def _path() -> str | None:
    from cache_core import state_path  # the private state dir, walked without following links

    base = state_path()
    return os.path.join(base, NAME) if base else None


def fresh(args: list[str] | None = None) -> bool:
    """True if the last full post-update run's memo matches now: nothing to do."""
    args = sys.argv[1:] if args is None else args
    try:
        path = _path()
        if path is None:
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o077 or (st.st_mode >> 12) != 0o10:
                return False
            text = os.read(fd, MAX_BYTES).decode("utf-8", "surrogateescape")
        finally:
            os.close(fd)
        head, _, body = text.partition("\n\n")
        lines = head.split("\n")
        if len(lines) < 4 or lines[0] != FORMAT or lines[2] != _key(args):
            return False
        if not 0 <= time.time() - float(lines[1]) < MAX_AGE:
            return False
        files: list[str] = []
        dirs: list[str] = []
        token: tuple[str, str] | None = None
        for line in lines[3:]:
            kind, _, value = line.partition("\t")
            if kind == "files":
                files = value.split("\t") if value else []
            elif kind == "dirs":
                dirs = value.split("\t") if value else []
            elif kind == "token":
                token = (value, "")
        return body == "\n".join(_lines(args, files, dirs, token)) + "\n"
    except (OSError, ValueError, ImportError):
        return False


def write(files: list[str], dirs: list[str], token: tuple[str, str] | None,
          args: list[str] | None = None, *, started: float) -> None:
    """Record a full run that started at `started` (best effort): the stamps of files (apt's
    config, sources) and of dirs and their entries (apt.conf.d, sources.list.d, the lists),
    and the cache's generation token (its path first)."""
    args = sys.argv[1:] if args is None else args
    path = _path()
    if path is None:
        return
    head = [FORMAT, repr(started), _key(args), "files\t" + "\t".join(files),
            "dirs\t" + "\t".join(dirs)]
    if token is not None:
        head.append("token\t" + token[0])
    text = "\n".join(head) + "\n\n" + "\n".join(_lines(args, files, dirs, token)) + "\n"
    from cache_core import stamps

    stamps.write_private(path, text)


def forget() -> None:
    """Drop the memo (a full run that failed part-way must run again)."""
    path = _path()
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass
