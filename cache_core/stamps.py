"""Stat stamps: the one home of "this file still holds the bytes of its last full hash".

A stamp is ``dev ino size mtime_ns ctime_ns`` of a file. Writing a file changes its mtime and
ctime (and only root could turn the clock back), so a file whose stamp equals the one taken when
its bytes were last hashed in full still holds those bytes; any other stamp means hash it again.

The local store records the stamp of each object after a full hash that found it good (put,
get, place). Stamps live in the private state dir (``fs.state_dir``: /var/lib/pkgcache for
root), one small file per object, never in the cache (content, not authority: whoever can write
a shared cache could write a stamp there too). Also here: which cache the config selects (so a
reader needs no YAML) and which copies of an object were placed where (a copy apt moved keeps
its inode and mtime: ``dev ino size mtime_ns``).

Standard library only and nothing else of cache_core: apt's download method front
(hooks/apt/method.py, ``python3 -I -S``) reads these files without importing the cache.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat

from .statepath import raw_path as state_path  # the one home of $PKGCACHE_STATE_DIR

CONFIG_ENV = ("PKGCACHE_CONFIG", "PKGCACHE_DIR", "PKGCACHE_DISABLE")
SYSTEM_CONFIG = "/etc/vps-configurator/config.yaml"
POINTER = "cache-pointer"
MAX = 4096  # bytes read from any of these files


def private_dir(path: str) -> bool:
    """True if path is a real directory of ours that nobody else may read or write."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def of(st: os.stat_result) -> str:
    """The stamp of a stat result (of a regular file)."""
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def copy_of(st: os.stat_result) -> str:
    """The stamp of a placed copy (rename and chmod change ctime, not inode or mtime)."""
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns}"


def _cache_id(cache_root: str) -> str:
    real = os.path.realpath(cache_root)
    name = real.replace("%", "%25").replace("/", "%2F")
    if len(name) > 200:
        import hashlib

        name = "h-" + hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()
    return name


def stamp_dir(cache_root: str, *, create: bool = False, state: str | None = None) -> str | None:
    """<state dir>/stamps/<cache>: the stamps of one cache; None if the state dir is not
    private (or, with create, the directory cannot be made)."""
    base = state or state_path()
    if not private_dir(base):  # made (and checked) by fs.safety.state_dir for the memos
        return None
    path = os.path.join(base, "stamps", _cache_id(cache_root))
    if create:
        for d in (os.path.dirname(path), path, os.path.join(path, "copies")):
            try:
                os.mkdir(d, 0o700)
            except FileExistsError:
                pass
            except OSError:
                return None
    return path


def _read(path: str) -> str | None:
    return read_file(path)


def read_file(path: str, limit: int = MAX, *, private: bool = False) -> str | None:
    """The text of the regular file at path, at most limit bytes (no link followed, no FIFO
    waited on), or None; private: only this user's own owner-only file, whole or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or private and (
                st.st_uid != os.geteuid() or st.st_mode & 0o077 or st.st_size > limit):
            return None
        chunks, left = [], limit
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks).decode("utf-8", "surrogateescape")
    except OSError:
        return None
    finally:
        os.close(fd)


def write_private(path: str, text: str) -> bool:
    """Write path atomically (an O_EXCL temp + rename, 0600, no link followed); False if it
    could not be written (no temp is left)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            data = memoryview(text.encode("utf-8", "surrogateescape"))
            while data:  # a short write (a full disk) is written on, or raises: never cut
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..") and len(name) < 250 \
        and not name.endswith(".tmp")


# -- objects --------------------------------------------------------------------------------------
def read(sdir: str, digest: str) -> str | None:
    """The stamp recorded for the object digest, or None."""
    if not _safe_name(digest):
        return None
    got = _read(os.path.join(sdir, digest))
    return got.strip() if got else None


def record(cache_root: str, digest: str, st: os.stat_result) -> bool:
    """Remember st (taken after a full hash found the object good) as digest's stamp."""
    sdir = stamp_dir(cache_root, create=True)
    if sdir is None or not _safe_name(digest) or not stat.S_ISREG(st.st_mode):
        return False
    return write_private(os.path.join(sdir, digest), of(st) + "\n")


def forget(cache_root: str, digest: str) -> None:
    """Drop digest's stamp (its object was found bad or is gone)."""
    sdir = stamp_dir(cache_root)
    if sdir is not None and _safe_name(digest):
        try:
            os.unlink(os.path.join(sdir, digest))
        except OSError:
            pass


# -- copies placed from an object ------------------------------------------------------------------
def note_copy(sdir: str, name: str, digest: str, st: os.stat_result, *, hit: bool) -> bool:
    """Remember that the file st (named name) holds the bytes of the good object digest: a copy
    placed from it (hit) or the file it was stored from."""
    if not _safe_name(name):
        return False
    return write_private(os.path.join(sdir, "copies", name), f"{digest} {int(hit)} {copy_of(st)}\n")


def copy_digest(cache_root: str, path: str) -> tuple[str, bool] | None:
    """(digest, hit) of the object path holds the bytes of (by note_copy), if path still has
    the stamp it had then; else None (hash it). The note is used once: read, then removed."""
    got = copy_note(cache_root, path)
    drop_copy_note(cache_root, path)  # one note per placed copy, gone once the harvest used it
    return got


def copy_note(cache_root: str, path: str) -> tuple[str, bool] | None:
    """copy_digest's answer, the note kept."""
    sdir = stamp_dir(cache_root)
    name = os.path.basename(path)
    if sdir is None or not _safe_name(name):
        return None
    got = _read(os.path.join(sdir, "copies", name))
    if not got:
        return None
    digest, hit, want = got.strip().split(" ", 2) if got.count(" ") >= 2 else ("", "", "")
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (digest, hit == "1") if stat.S_ISREG(st.st_mode) and copy_of(st) == want else None


def drop_copy_note(cache_root: str, path: str) -> None:
    """Remove path's note_copy note, if any."""
    sdir = stamp_dir(cache_root)
    name = os.path.basename(path)
    if sdir is not None and _safe_name(name):
        try:
            os.unlink(os.path.join(sdir, "copies", name))
        except OSError:
            pass


# -- which cache the config selects ----------------------------------------------------------------
def config_candidates() -> list[str]:
    """The config files the lookup order reads without --config: $PKGCACHE_CONFIG, else the
    system's and then the user's."""
    env = os.environ.get("PKGCACHE_CONFIG")
    if env:
        return [env]
    return [SYSTEM_CONFIG, os.path.join(os.path.expanduser("~"), ".vps-configurator",
                                        "config.yaml")]


def lookup_config() -> str | None:
    """The config file used without --config (cache_core.config.find_config), or None."""
    files = config_candidates()
    if os.environ.get("PKGCACHE_CONFIG"):
        return files[0]
    return next((f for f in files if os.path.exists(f)), None)


def config_identity() -> str:
    """What chooses the cache: the variables and the stat of every config file the lookup
    order (cache_core.config.find_config) may read. Equal identity, same cache."""
    parts = [str(os.geteuid())] + [f"{k}={os.environ.get(k, '')}" for k in CONFIG_ENV]
    for f in config_candidates():
        try:
            st = os.stat(f)
            parts.append(f"{f}:{of(st)}")
        except OSError:
            parts.append(f"{f}:-")
    return "\t".join(parts)


def remember_cache(identity: str, cache_root: str | None, *, remote: bool = False,
                   front_only: bool = False) -> None:
    """Record that identity (taken before the config was read) selects cache_root (None: the
    cache is disabled), whether it has a remote tier and whether apt's pre-install seed is left
    to the method's front (the apt driver's ``apt_front_only`` key)."""
    base = state_path()
    if not private_dir(base):
        return
    text = (f"{identity}\n{os.path.realpath(cache_root) if cache_root else ''}\n{int(remote)}\n"
            f"{int(front_only)}\n")
    if _read(os.path.join(base, POINTER)) != text:
        write_private(os.path.join(base, POINTER), text)


def selected() -> tuple[str, bool] | None:
    """(cache root, has a remote) the current config selects, if a pkgcache process with the
    same identity recorded it; None: unknown or disabled (ask the cache itself)."""
    base = state_path()
    if not private_dir(base):
        return None
    got = _read(os.path.join(base, POINTER))
    lines = got.split("\n") if got else []
    if len(lines) < 3 or not lines[1] or lines[0] != config_identity():
        return None
    return lines[1], lines[2] == "1"


def front_only() -> bool:
    """True if the config selected now (see selected) sets ``apt_front_only``."""
    base = state_path()
    if not private_dir(base):
        return False
    got = _read(os.path.join(base, POINTER))
    lines = got.split("\n") if got else []
    return len(lines) >= 4 and lines[0] == config_identity() and lines[3] == "1"


def selected_cache() -> str | None:
    """The cache root the current config selects (see selected), or None."""
    got = selected()
    return got[0] if got else None


# -- a verified copy of an object, by its stamp ----------------------------------------------------
OBJECTS = ("objects-v1", "sha256")  # storage.local.layout's objects dir (a test checks they agree)
INDEX = ("index-v1.sqlite", 2)  # layout.INDEX_NAME, index.migrations.SCHEMA_VERSION (likewise)


def index_known(cache_root: str) -> bool:
    """True if the cache's SQLite index is at the schema this pkgcache writes, read from the
    file's header (``user_version``) with no SQLite loaded; False when that cannot be told (a
    write-ahead log not yet checkpointed holds a newer header) or it is another (a newer
    pkgcache's index: the cache is left alone, as the store's own open would)."""
    path = os.path.join(cache_root, INDEX[0])
    try:
        if os.stat(path + "-wal").st_size:
            return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.pread(fd, 100, 0)
    except OSError:
        return False
    finally:
        os.close(fd)
    return (len(head) == 100 and head.startswith(b"SQLite format 3\0")
            and int.from_bytes(head[60:64], "big") == INDEX[1])
TEMP_PREFIX, TEMP_SUFFIX = ".pkgcache-", ".part"  # .pkgcache-PID-N.part: place_copy's and the
# apt method front's temps (sweep_dead_temps)
TEMP_GRACE = 60.0  # as cache_core.fs.sweep.GRACE_SECONDS (a pid of another pid namespace)
_COPY_FALLBACK = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM)
_n = itertools.count(1)  # temp names


def copy_range(src: int, dst: int, size: int) -> int:
    """Copy size bytes from src to dst in the kernel (a reflink where the file system does it)."""
    done = 0
    use_range = hasattr(os, "copy_file_range")
    while done < size:
        if use_range:
            try:
                n = os.copy_file_range(src, dst, size - done)
            except OSError as exc:
                if exc.errno not in _COPY_FALLBACK or done:
                    raise
                use_range = False
                continue
        else:
            n = os.sendfile(dst, src, done, size - done)
        if n <= 0:
            if use_range and not done:  # some file systems copy nothing this way: sendfile
                use_range = False
                continue
            break
        done += n
    return done


def _copy_hashing(src: int, dst: int) -> tuple[str, int]:
    """Copy src to dst through one read pass that hashes it: (sha256 hex, bytes)."""
    import hashlib

    h = hashlib.sha256()
    n = 0
    while chunk := os.read(src, 1 << 20):
        h.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]
        n += len(chunk)
    return h.hexdigest(), n


def sweep_dead_temps(dfd: int) -> int:
    """Remove the temps (regular files of ours) that a process killed mid-copy (the apt method
    front, place_copy) left in the directory dfd (ours too): named ``.pkgcache-PID-N.part``
    by a pid that no process has now, and untouched for TEMP_GRACE (the pid may be another
    pid namespace's, sharing the directory). A live pid's (another front's, or a reused
    pid's) are left alone. The number removed."""
    removed = 0
    me = os.geteuid()
    try:
        if os.fstat(dfd).st_uid != me:
            return 0  # a directory someone else owns (root's `apt-get download` in theirs)
        names = os.listdir(dfd)
    except OSError:
        return 0
    import time

    now = time.time()
    for name in names:
        if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
            continue
        pid, _, n = name[len(TEMP_PREFIX):-len(TEMP_SUFFIX)].partition("-")
        if not (pid.isdigit() and n.isdigit()) or len(pid) > 9 or int(pid) in (0, os.getpid()):
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive (or not ours to signal): its temp may be in use
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == me and now - st.st_mtime > TEMP_GRACE:
                os.unlink(name, dir_fd=dfd)
                removed += 1
        except OSError:
            pass
    return removed


def _open_object(cache_root: str, digest: str) -> int | None:
    """The object digest of the cache at cache_root, opened without following any link (the
    root ours and writable by nobody else), or None if there is no such file."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(cache_root, flags)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        for part in (*OBJECTS, digest[:2]):
            nxt = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(digest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                       dir_fd=fd)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


def holds(cache_root: str, digest: str, size: int) -> bool:
    """True if the cache at cache_root has the object digest, of size bytes (no hash)."""
    try:
        fd = _open_object(cache_root, digest)
    except OSError:
        return False
    if fd is None:
        return False
    try:
        st = os.fstat(fd)
        return stat.S_ISREG(st.st_mode) and st.st_size == size
    finally:
        os.close(fd)


def place_copy(cache_root: str, sdir: str, digest: str, size: int, dest: str, *,
               rehash: bool = False) -> os.stat_result | None:
    """Copy the object digest (size bytes) of the cache at cache_root to dest (a temp in dest's
    dir, then a rename; 0644) if it is a regular file of ours, writable by nobody else, with the
    stamp (in sdir: stamp_dir) of its last full hash before and after the copy; rehash: one
    whose stamp moved is hashed as it is copied, placed if it is still digest's bytes and
    stamped anew. Returns the placed file's stat; None, with nothing at dest changed, if the
    object is missing, bad or (without rehash) not stamped: the store's get/place then hashes
    it and quarantines it if bad. OSError: a fault writing dest."""
    if len(digest) != 64 or digest.strip("0123456789abcdef"):
        return None
    try:
        fd = _open_object(cache_root, digest)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        want = of(st)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022
                or st.st_size != size):
            return None
        trusted = read(sdir, digest) == want
        if not trusted and not rehash:
            return None
        ddir, name = os.path.split(dest)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for tries in range(64):  # a name taken: a killed process's with our pid, left for
            tmp = os.path.join(ddir, f"{TEMP_PREFIX}{os.getpid()}-{next(_n)}{TEMP_SUFFIX}")
            try:  # sweep_dead_temps (its pid is ours now, or another namespace's)
                out = os.open(tmp, flags, 0o600)
                break
            except FileExistsError:
                if tries == 63:
                    raise
        try:
            try:
                if trusted:
                    good = copy_range(fd, out, size) == size and of(os.fstat(fd)) == want
                else:
                    good = _copy_hashing(fd, out) == (digest, size) and of(os.fstat(fd)) == want
                    if good:
                        record(cache_root, digest, os.fstat(fd))
                if good:
                    os.fchmod(out, 0o644)
                    placed = os.fstat(out)
            finally:
                os.close(out)
            if not good:
                os.unlink(tmp)
                return None
            os.rename(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return placed
    finally:
        os.close(fd)
