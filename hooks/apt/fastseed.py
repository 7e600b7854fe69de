"""The warm pre-install seed with the standard library only: when apt's request, apt's
configuration, the indexes and dpkg's state are, byte for byte, what a full seed run answered
(seed.py remembers its answer here), the debs are copied from the cache's objects, each trusted
by its stat stamp (cache_core.stamps.place_copy), with no python-apt, YAML, SQLite or JSON
loaded. The harvest of that apt run ends as soon as it sees that every deb it is handed is one
the seed placed or found good in this run (the run note).

The memo (NAME, 0600 in the private state dir) keeps up to KEEP answers, each with:
  - its key: seed.request_key, which is ``digest(base(request), inputs)``: the request (apt's
    executable, arguments and working directory), the uid, APT_CONFIG, what selects the cache
    (pkgcache's variables, the bytes of its config files, the hook's arguments), the bytes of every
    input the full run named: apt's configuration files (APT_CONFIG's file, apt.conf, every file
    in apt.conf.d, -c files), the sources and pinning, dpkg's status, extended states and
    architectures, the machine id, debs named on the command line, this code, and the lists dir (every Release
    file's bytes, the name and size of each index a Release file of its prefix lists, the bytes
    of any other file: a flat repository without a Release file);
  - the inputs themselves, the archives dir, the cache root and the placed-debs record;
  - the debs: archive name, the SHA-256 from apt's index, size.
A configuration with ``#include`` is never remembered (its included files would not count).
Any doubt or fault: False, and the full seed runs (it says why if it must).
"""

from __future__ import annotations

import os
import stat
import sys
import time

FORMAT = "pkgcache-apt-seed-fast 1"
NAME = "apt-seed-requests"
RUN_NOTE = "apt-seed-run"
KEEP = 16  # answers remembered (the newest)
MAX_BYTES = 4 << 20
MAX_HIT_FILES = 64  # unfolded hit files: past this, the full seed runs (and folds them)
SKIP_LISTS = ("lock", "partial", "auxfiles")
NO_DEBS = frozenset({"remove", "purge", "autoremove", "autopurge", "clean", "autoclean",
                     "auto-clean", "check", "markauto", "unmarkauto", "update", "changelog",
                     "source", "build-dep"})
# apt commands the seed does not plan: they fetch no deb, or (build-dep; remove with a
# ``pkg+``) the debs they fetch are apt's own download, harvested afterwards: a missed hit at
# most, never another file
MAX_INFO_BYTES = 64 << 20  # of a Pre-Install-Pkgs info stream: a runaway one is not read further

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# -- reading and hashing, without hashlib's OpenSSL or json -------------------------------------
def _sha256() -> Any:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # built in: no OpenSSL
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import sha256
    return sha256()


def _content(path: str) -> bytes:
    """The SHA-256 of a regular file's bytes (followed), b"-" if there is none or it cannot be
    read (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b"-"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b"-"
        h = _sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.hexdigest().encode()
    except OSError:
        return b"-"
    finally:
        os.close(fd)


def _private_text(path: str) -> str | None:
    """The text of our own owner-only regular file at path (no link followed), or None."""
    from cache_core import stamps

    return stamps.read_file(path, MAX_BYTES, private=True)


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def code_files() -> list[str]:
    """The modules whose code decides an answer (a new version answers afresh)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, n) for n in ("fastseed.py", "seed.py")]


# -- the key ----------------------------------------------------------------------------------------
def base(exe: str, args: list[str], cwd: str | None, hook_args: list[str] | None = None) -> str:
    """What selects the request and the cache, before any file is read: the uid, APT_CONFIG,
    the cache's selection (the variables and the bytes of every config file the lookup order
    reads: a re-provisioned server writes its config anew, with the same bytes; the hook's own
    arguments and its --config file's bytes), apt's executable, arguments and working
    directory."""
    from cache_core import stamps

    hook_args = sys.argv[1:] if hook_args is None else hook_args
    h = _sha256()
    parts = [FORMAT, str(os.geteuid()), os.environ.get("APT_CONFIG", ""),
             *(f"{k}={os.environ.get(k, '')}" for k in stamps.CONFIG_ENV),
             *(f + "\0" + _content(f).decode() for f in stamps.config_candidates()),
             "\0".join(hook_args), exe, "\0".join(args), cwd or ""]
    for i, arg in enumerate(hook_args[:-1]):
        if arg == "--config":
            parts.append(_content(hook_args[i + 1]).decode())
    for part in parts:
        h.update(b"\0\1" + _b(part))
    return h.hexdigest()


def digest(base_key: str, files: list[str], dirs: list[str], lists: str) -> str:
    """The request key: base_key and the bytes of files, of every file in dirs (by name) and
    of the lists dir (see the module docstring)."""
    h = _sha256()
    h.update(_b(base_key))
    for path in files:
        h.update(b"\0F" + _b(path) + b"\0" + _content(path))
    for d in dirs:
        h.update(b"\0D" + _b(d))
        try:
            names = sorted(os.listdir(d))
        except OSError:
            h.update(b"\0-")
            continue
        for name in names:
            h.update(b"\0N" + _b(name) + b"\0" + _content(os.path.join(d, name)))
    h.update(b"\0L" + _b(lists))
    try:
        names = sorted(os.listdir(lists))
    except OSError:
        names = []
    signed = tuple(n[:-len("InRelease")] if n.endswith("InRelease") else n[:-len("Release")]
                   for n in names if n.endswith(("_InRelease", "_Release")))
    for name in names:
        path = os.path.join(lists, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if name in SKIP_LISTS or not stat.S_ISREG(st.st_mode):
            continue
        h.update(b"\0L" + _b(name) + b"\0%d" % st.st_size)
        if name.endswith(("Release", "Release.gpg")) or not name.startswith(signed):
            h.update(_content(path))  # (an index no Release file lists: its bytes)
    return h.hexdigest()


# -- the memo -------------------------------------------------------------------------------------
class Answer:
    """One remembered answer (see the module docstring)."""

    __slots__ = ("key", "base", "time", "archives", "cache", "placed", "files", "dirs", "lists",
                 "wants")

    def __init__(self, key: str, base: str, when: float, archives: str, cache: str, placed: str,
                 files: list[str], dirs: list[str], lists: str,
                 wants: list[tuple[str, str, int]]) -> None:
        self.key, self.base, self.time = key, base, when
        self.archives, self.cache, self.placed = archives, cache, placed
        self.files, self.dirs, self.lists, self.wants = files, dirs, lists, wants

    def lines(self) -> list[str]:
        """The answer in the memo's text."""
        out = [f"E\t{self.key}\t{self.base}\t{self.time!r}", f"A\t{self.archives}",
               f"C\t{self.cache}", f"P\t{self.placed}", f"L\t{self.lists}"]
        out += [f"F\t{f}" for f in self.files] + [f"D\t{d}" for d in self.dirs]
        out += [f"W\t{f}\t{s}\t{n}" for f, s, n in self.wants]
        return out


def memo_file() -> str | None:
    """Where the memo lives: the private state dir (None: there is none)."""
    from cache_core import state_path  # walked without following links; None unless private

    got = state_path()
    return os.path.join(got, NAME) if got else None


def read_memo(path: str | None = None) -> list[Answer]:
    """The remembered answers ([] if none or unusable)."""
    path = path or memo_file()
    text = _private_text(path) if path else None
    if not text or not text.startswith(FORMAT + "\n"):
        return []
    out: list[Answer] = []
    cur: Answer | None = None
    try:
        for line in text.split("\n")[1:]:
            kind, _, rest = line.partition("\t")
            if kind == "E":
                key, b, when = rest.split("\t")
                cur = Answer(key, b, float(when), "", "", "", [], [], "", [])
                out.append(cur)
            elif cur is None:
                continue
            elif kind == "A":
                cur.archives = rest
            elif kind == "C":
                cur.cache = rest
            elif kind == "P":
                cur.placed = rest
            elif kind == "L":
                cur.lists = rest
            elif kind == "F":
                cur.files.append(rest)
            elif kind == "D":
                cur.dirs.append(rest)
            elif kind == "W":
                fname, sha, size = rest.split("\t")
                if not _plain_name(fname) or len(sha) != 64 or sha.strip("0123456789abcdef"):
                    raise ValueError(fname)
                cur.wants.append((fname, sha, int(size)))
    except ValueError:
        return []
    return out


def _clean(text: str) -> bool:
    return "\t" not in text and "\n" not in text and "\r" not in text


def remember(answer: Answer, path: str | None = None) -> bool:
    """Add answer to the memo (the newest KEEP kept); False if it cannot be kept (a path with a
    tab or newline, no private state dir, a write fault)."""
    from cache_core import stamps

    fields = [answer.archives, answer.cache, answer.placed, answer.lists, *answer.files,
              *answer.dirs]
    if not all(_clean(f) for f in fields) or not all(_plain_name(w[0]) for w in answer.wants):
        return False
    path = path or memo_file()
    if path is None:
        return False
    keep = [a for a in read_memo(path) if a.key != answer.key]
    keep = sorted(keep, key=lambda a: a.time)[-(KEEP - 1):] + [answer]
    text = "\n".join([FORMAT, *(ln for a in keep for ln in a.lines())]) + "\n"
    return stamps.write_private(path, text)


def lookup(base_key: str, path: str | None = None) -> Answer | None:
    """The answer remembered for base_key whose inputs still have the bytes of its key."""
    for answer in reversed(read_memo(path)):
        if answer.base == base_key and \
                digest(base_key, answer.files, answer.dirs, answer.lists) == answer.key:
            return answer
    return None


def _plain_name(fname: str) -> bool:
    """An archive file name that stays in the directory it is joined to."""
    return (fname.endswith((".deb", ".udeb")) and fname.count("_") == 2 and "/" not in fname
            and not fname.startswith(".") and all(0x20 < ord(c) < 0x7f for c in fname))


# -- the debs the seed placed (stat stamps) --------------------------------------------------------
def load_placed(path: str | None) -> dict[str, list[Any]]:
    """fname -> [sha256, ino, size, mtime_ns] of each deb the seed put into archives."""
    text = _private_text(path) if path else None
    out: dict[str, list[Any]] = {}
    for line in (text or "").split("\n"):
        parts = line.split("\t")
        if len(parts) == 5 and all(p.isdigit() for p in parts[2:]):
            out[parts[0]] = [parts[1], int(parts[2]), int(parts[3]), int(parts[4])]
    return out


def save_placed(path: str | None, placed: dict[str, list[Any]]) -> bool:
    """Write the placed-debs record (best effort)."""
    from cache_core import stamps

    if not path:
        return False
    rows = [f"{f}\t{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}" for f, r in sorted(placed.items())
            if _clean(f) and _clean(str(r[0]))]
    return stamps.write_private(path, "".join(r + "\n" for r in rows))


def stamp_of(st: os.stat_result) -> list[int]:
    """A placed deb's stamp: inode, size, mtime (apt may chown or chmod it: not ctime)."""
    return [st.st_ino, st.st_size, st.st_mtime_ns]


# -- the run note: what this apt run's seed checked, for its harvest -------------------------------
def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def write_run_note(pid: int, archives: str, cache_root: str, good: dict[str, list[int]]) -> None:
    """Remember, for apt pid's harvest, the debs of archives this seed checked or placed (name ->
    stamp_of) from the cache at cache_root: the harvest then knows them for the cache's own
    without opening it."""
    from cache_core import stamps, state_path

    base_dir = state_path()
    if not base_dir or not all(_clean(f) for f in (archives, cache_root, *good)):
        return
    try:
        head = f"{pid}\t{_start_time(pid)}\t{archives}\t{cache_root}"
    except (OSError, IndexError):
        return
    rows = [f"{f}\t{s[0]}\t{s[1]}\t{s[2]}" for f, s in sorted(good.items())]
    stamps.write_private(os.path.join(base_dir, RUN_NOTE), "\n".join([head, *rows]) + "\n")


def harvest_is_done(raw: bytes, pid: int) -> bool:
    """True if every deb of the info stream raw (DPkg::Pre-Install-Pkgs, any version) is in the
    cache already under its name, known without opening it: one this apt run's seed checked or
    placed (its run note) that still has that stamp, or one pkgcache's method helper stored
    under its name from this very file (its copy note, stamps.note_copy, not a placed copy: a
    copy served by digest may have no name yet) whose object the cache holds. Nothing to
    store: the harvest's report is noted for fold_hits. The method's helper has written its
    notes before apt gets here (apt waits for its methods to end; they wait for the helper)."""
    from cache_core import stamps

    t0 = time.monotonic()
    note = _run_note(pid)
    paths = _info_paths(raw)
    if note is None or paths is None:
        return False
    archives, cache_root, good = note
    for path in paths:
        d, name = os.path.split(path)
        if os.path.normpath(d) != os.path.normpath(archives):
            return False
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        if name in good and [str(v) for v in stamp_of(st)] == good[name]:
            continue
        got = stamps.copy_note(cache_root, path)  # stored by the method's helper
        if got is None or got[1] or not stamps.holds(cache_root, got[0], st.st_size):
            return False  # the full harvest (a placed copy: it counts the hit, names the deb)
    for path in paths:  # used, as the full harvest uses them
        stamps.drop_copy_note(cache_root, path)
    sdir = stamps.stamp_dir(cache_root)
    if sdir is not None:
        n = len(set(paths))
        _note_hits(sdir, [], "harvest",
                   {"seen": n, "stored": 0, "already": n, "bytes": 0, "skipped": 0, "failed": 0,
                    "seconds": round(time.monotonic() - t0, 3)})
    return True


def _run_note(pid: int) -> tuple[str, str, dict[str, list[str]]] | None:
    """(archives, cache root, name -> stamp) of apt run pid's seed (write_run_note), or None."""
    from cache_core import state_path

    base_dir = state_path()
    note = _private_text(os.path.join(base_dir, RUN_NOTE)) if base_dir else None
    if not note:
        return None
    rows = note.split("\n")
    head = rows[0].split("\t")
    try:
        if len(head) != 4 or head[0] != str(pid) or head[1] != _start_time(pid):
            return None
    except (OSError, IndexError):
        return None
    good = {}
    for row in rows[1:]:
        parts = row.split("\t")
        if len(parts) == 4:
            good[parts[0]] = parts[1:]
    return head[2], head[3], good


def _info_paths(raw: bytes) -> list[str] | None:
    """The .deb paths of a Pre-Install-Pkgs info stream (as hooks.apt.harvest.parse_info reads
    them), or None if it is not one this understands."""
    text = raw.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if not lines[0].startswith("VERSION "):
        return [ln.strip() for ln in lines if ln.strip().endswith(".deb")]
    try:
        version = int(lines[0].split()[1])
        start = lines.index("", 1) + 1  # the configuration section is skipped unread
    except (IndexError, ValueError):
        return None
    out = []
    for line in lines[start:]:
        parts = line.rstrip("\r").split(" ")
        if version >= 3 and len(parts) >= 9:
            path = " ".join(parts[8:])
        elif len(parts) >= 5:
            path = " ".join(parts[4:])
        else:
            continue
        if path.endswith(".deb"):
            out.append(path)
    return out


# -- the hook entries ----------------------------------------------------------------------------
def pre_install() -> bool:
    """The pre-install hook's fast path: True if this run's debs are all in archives, placed
    from the cache or found there as placed before, by a remembered answer; False (the full
    seed runs) on any doubt. Prints nothing."""
    try:
        return _pre_install()
    except Exception:  # noqa: BLE001 - a shortcut only: the full seed runs, and reports
        return False


def _pre_install() -> bool:
    from cache_core import stamps

    from . import invocation

    if os.environ.get(invocation.REPLAY_ENV) or os.geteuid() != 0:
        return False  # the full hook stands aside, as it decides
    inv = invocation.current()
    if inv is None or inv.places_nothing or not inv.command:
        return False
    if inv.command in NO_DEBS:
        return True  # the full seed places nothing for these either
    found = _usable_answer(inv)
    if found is None:
        return False
    answer, sdir = found
    archives = answer.archives
    lock = _archives_lock(archives)
    if lock is None:
        return False
    t0 = time.monotonic()
    try:
        placed = load_placed(answer.placed)
        before = dict(placed)
        good: dict[str, list[int]] = {}
        used: list[str] = []
        nbytes = 0
        done = True
        todo = []
        for fname, sha, size in answer.wants:
            try:
                st = os.lstat(os.path.join(archives, fname))
            except FileNotFoundError:
                todo.append((fname, sha, size))
                continue
            rec = placed.get(fname)
            if stat.S_ISREG(st.st_mode) and st.st_size == size and rec is not None \
                    and rec[1:] == stamp_of(st) and rec[0] == sha \
                    and stamps.holds(answer.cache, sha, size):  # (else the size cap took
                good[fname] = stamp_of(st)  # its object: the full harvest stores it again)
                continue
            done = False  # a file the seed did not place (or changed since): the full seed
            break
        for fname, sha, size, got in _copies(answer.cache, sdir, archives, todo if done else []):
            if got is None:
                done = False  # not here, or bad: the full seed (it quarantines, fetches)
                continue
            placed[fname] = [sha, *stamp_of(got)]
            good[fname] = stamp_of(got)
            used.append(fname)
            nbytes += size
        if placed != before:
            save_placed(answer.placed, placed)
        if used or done:
            report = {"placed": len(used), "present": len(good) - len(used), "bytes": nbytes,
                      "rejected": 0, "missing": 0, "removed": 0, "opened_index": False,
                      "followed_request": True, "in_process": False, "remembered": True,
                      "planned_only": 0, "from_remote": 0, "bytes_remote": 0,
                      "seconds": round(time.monotonic() - t0, 3), "trigger": "pre-install"}
            _note_hits(sdir, used, "seed" if done else "", report)
        if done:
            write_run_note(inv.pid, archives, answer.cache, good)
        return done
    finally:
        os.close(lock)


def _usable_answer(inv: Any) -> tuple[Answer, str] | None:
    """The remembered answer to inv's request, with its cache's stamp dir, if its archives dir
    is a real directory we may write and the cache is not left to apt's method front."""
    from cache_core import stamps

    answer = lookup(base(inv.exe, inv.argv[1:], inv.cwd))
    if answer is None or stamps.front_only() or not stamps.index_known(answer.cache):
        return None  # (a newer pkgcache's index: the full hook leaves the cache alone)
    st = os.lstat(answer.archives)
    if not stat.S_ISDIR(st.st_mode) or not os.access(answer.archives, os.W_OK):
        return None
    sdir = stamps.stamp_dir(answer.cache)
    if sdir is None or len(pending_hits(sdir)) >= MAX_HIT_FILES:
        return None
    return answer, sdir


def _copies(cache_root: str, sdir: str, archives: str, todo: list[tuple[str, str, int]]
            ) -> list[tuple[str, str, int, os.stat_result | None]]:
    """Each deb of todo copied from its object into archives (stamps.place_copy; an object
    whose stamp moved, e.g. a hard link to it went, is hashed as it is copied): (fname,
    sha256, size, placed stat or None). One after the other: two threads measured no faster
    (73 debs, 91 MB: 56-78 ms against 60-68 ms per hook, load ~2.5)."""
    from cache_core import stamps

    out: list[tuple[str, str, int, os.stat_result | None]] = []
    if todo:  # first, the temps of a copy killed here before (kill -9, a power loss)
        try:
            dfd = os.open(archives, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            dfd = -1
        if dfd >= 0:
            try:
                stamps.sweep_dead_temps(dfd)
            finally:
                os.close(dfd)
    for fname, sha, size in todo:
        try:
            got = stamps.place_copy(cache_root, sdir, sha, size, os.path.join(archives, fname),
                                    rehash=True)
        except OSError:
            got = None
        out.append((fname, sha, size, got))
        if got is None:
            break  # the full seed does the rest
    return out


def _note_hits(sdir: str, fnames: list[str], what: str, report: dict[str, Any]) -> None:
    """The debs placed here and what a fast hook did (what: "seed" or "harvest", "" for
    nothing), for the next full hook or `pkgcache apt status` (fold_hits): hits, the LRU's
    "used", the last seed and harvest."""
    from cache_core import stamps

    runs = os.path.join(sdir, "runs")
    try:
        os.mkdir(runs, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return  # no stamps dir (nothing stamped yet): nothing to count either
    head = [f"#{what}\ttime={time.time()!r}\t" + "\t".join(f"{k}={v}" for k, v in report.items())
            ] if what else []
    stamps.write_private(os.path.join(runs, f"{what or 'seed'}-{os.getpid()}-{time.time_ns()}.hits"),
                         "".join(f"{ln}\n" for ln in [*head, *(f"deb:{f}" for f in fnames)]))


def pending_hits(sdir: str) -> list[str]:
    """The hit files not folded yet."""
    try:
        return [n for n in os.listdir(os.path.join(sdir, "runs")) if n.endswith(".hits")]
    except OSError:
        return []


def fold_hits(cache: Any) -> None:
    """Count the hits fast hooks noted (each placed deb marks its key used: the size cap's LRU
    sees it), record their last reports (`pkgcache apt status`) and drop their files."""
    from cache_core import stamps

    from .aptenv import read_state, record

    sdir = stamps.stamp_dir(str(cache.root))
    if sdir is None:
        return
    runs = os.path.join(sdir, "runs")
    last: dict[str, dict[str, Any]] = {}
    for name in pending_hits(sdir):
        path = os.path.join(runs, name)
        text = _private_text(path)
        try:
            os.unlink(path)
        except OSError:
            continue
        for line in (text or "").split("\n"):
            if line.startswith("deb:") and _plain_name(line[4:]):
                cache.count_hit(line)
            elif line.startswith("#"):
                what, *pairs = line[1:].split("\t")
                rep = {k: _value(v) for k, _, v in (p.partition("=") for p in pairs)}
                if what in ("seed", "harvest") and rep.get("time", 0) >= \
                        last.get(what, {}).get("time", 0):
                    last[what] = rep
    if last:
        state = read_state(cache, "status.json")
        for what, rep in last.items():
            if rep.get("time", 0) >= (state.get(what) or {}).get("time", 0):
                record(cache, what, rep)


def _value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _archives_lock(archives: str) -> int | None:
    """apt's archives lock, taken at once, or not needed (an ancestor apt holds it: we run in
    its hook): an fd to close; None if another process holds it (the full seed waits)."""
    import fcntl

    fd = os.open(os.path.join(archives, "lock"),
                 os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        if lock_holder_is_ancestor(archives):
            return fd
    os.close(fd)
    return None


def lock_holder_is_ancestor(archives: str) -> bool:
    """True when apt's archives lock is held by one of our ancestors (we run inside its hook)."""
    try:
        ino = os.stat(os.path.join(archives, "lock")).st_ino
        holders = set()
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[1] in ("POSIX", "OFDLCK"):
                    if parts[5].rsplit(":", 1)[-1] == str(ino):
                        holders.add(int(parts[4]))
        pid = os.getppid()
        for _ in range(16):
            if pid in holders:
                return True
            if pid <= 1:
                return False
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return False


def harvest(info_fd: int) -> tuple[bool, bytes]:
    """The harvest hook's fast path: (True, raw) if every deb on apt's info fd is one this run's
    seed checked (nothing to store); else (False, raw), raw being the whole stream for the full
    harvest. Reads the fd to its end first, whatever happens (apt never waits on us)."""
    chunks, total = [], 0
    with os.fdopen(info_fd, "rb", closefd=True) as f:
        while buf := f.read(1 << 16):
            total += len(buf)
            if total <= MAX_INFO_BYTES:
                chunks.append(buf)
    raw = b"".join(chunks)
    try:
        if os.geteuid() != 0 or total > MAX_INFO_BYTES:
            return False, raw
        from . import invocation

        if _info_paths(raw) == []:
            return True, raw  # remove, purge, configure only: nothing to store
        inv = invocation.current()
        return (inv is not None and harvest_is_done(raw, inv.pid)), raw
    except Exception:  # noqa: BLE001 - a shortcut only
        return False, raw
