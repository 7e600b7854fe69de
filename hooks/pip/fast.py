"""The warm path of ``pkgcache pip install``: a served install replayed from a memo.

A run the driver served from the cache alone (``--offline``, or the index's host without an
address) leaves a memo in the private state dir: the exact pip/uv command it ran, the
find-links page (pip) or flat directory (uv) it offered, and a stamp of every input it derived
that from. The next run with the same command line, working directory, environment and target
interpreter checks those stamps (no SQLite, no YAML, no driver imported) and runs the same
command; anything that differs, and any fault or failure, leaves the run to the driver.

Checked before the memo is used (any change means the full path, which writes a new memo):
  - the key: pkgcache's arguments (the ``--python`` value by the interpreter it names: real
    binary and its stat, the venv's pyvenv.cfg), the working directory, the environment, uid,
    the interpreter running pkgcache;
  - stamps (inode, size, mtime_ns, ctime_ns) of the requirement and constraint files, pip's and
    pkgcache's config files, the cache's generation token (replaced on every change of its
    keys or objects), this machine's trust record, the target's probe, uv, pkgcache's code;
  - the offered files: the flat directory holds exactly the recorded links, and every link
    and the page name the recorded object, whose stamp is the one taken at its last full hash
    (a changed object is left to the driver, which re-hashes and quarantines it);
  - the memo's age (MAX_AGE) and, for the unreachable case, that the index's host still has
    no address.
The tool's output is held until it ends: on success it is written out as the driver would;
on failure it is dropped and the driver runs the request from the start.
"""

from __future__ import annotations

import os
import sys

FORMAT = "pkgcache-pip-fast 1"
MAX_AGE = 3600.0  # seconds: the full path (LRU times, hit counts, pruning) runs at least hourly
MAX_BYTES = 1 << 20
PLACEHOLDER = "\x00python"  # the target interpreter in a stored command
# variables that differ between shells without changing what an install does
_VOLATILE = ("_", "OLDPWD", "PWD", "SHLVL", "TERM", "COLUMNS", "LINES", "LS_COLORS", "PS1",
             "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "DISPLAY", "MAIL", "HISTFILE")
_ENV_OFF = "PKGCACHE_NO_FAST_PATH"

_current: Key | None = None  # the key of this process's run (for the driver's memo)


class Key:
    """What names one memo: its digest, the state dir and the target interpreter."""

    __slots__ = ("digest", "python", "state", "venv")

    def __init__(self, digest: str, state: str, python: str, venv: str) -> None:
        self.digest = digest
        self.state = state
        self.python = python
        self.venv = venv

    def path(self, suffix: str = ".memo") -> str:
        """This key's file in the state dir."""
        return os.path.join(self.state, "pip-fast", self.digest + suffix)


def stamp(path: str, *, follow: bool = True) -> str:
    """(inode, size, mtime_ns, ctime_ns, mode) of path as text, "-" if it is absent."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return "-"
    return f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_mode}"


def _sha256(data: bytes) -> str:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # (builtin; hashlib: +2.5 ms)
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()


def _absolute(spec: str) -> str:
    """str(pathlib.Path(spec).absolute()), without pathlib."""
    parts = [p for p in spec.split("/") if p not in ("", ".")]
    if spec.startswith("/"):
        return "/" + "/".join(parts)
    cwd = os.getcwd()
    return cwd.rstrip("/") + "/" + "/".join(parts) if parts else cwd


def _target(spec: str | None) -> str | None:
    """The target interpreter as hooks.pip.target.find_python names it (None: not handled
    here: a bare command name, or no venv)."""
    if spec:
        if "/" not in spec or spec.startswith("//"):
            return None
        path = _absolute(spec)
        if os.path.isdir(path):
            path = path.rstrip("/") + "/bin/python" if path != "/" else "/bin/python"
        return path if os.path.exists(path) else None
    venv = os.environ.get("VIRTUAL_ENV")
    if venv and os.path.exists(os.path.join(venv, "bin", "python")):
        return _absolute(venv).rstrip("/") + "/bin/python"
    return None


def _split(pip_argv: list[str]) -> tuple[str | None, list[str]] | None:
    """(the --python value, the arguments with it taken out) if this run may use a memo."""
    rest: list[str] = []
    python = None
    i = 0
    while i < len(pip_argv):
        arg = pip_argv[i]
        if arg == "--":
            rest += pip_argv[i:]
            break
        if arg in ("-h", "--help", "--refresh", "--verbose") or \
                (arg.startswith("-v") and arg.strip("v") == "-"):
            return None
        if arg == "--python":
            if i + 1 >= len(pip_argv):
                return None
            python = pip_argv[i + 1]
            i += 2
            continue
        if arg.startswith("--python="):
            python = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return python, rest


def key_for(globals_: dict, pip_argv: list[str]) -> Key | None:
    """The memo key of ``pkgcache [globals] pip install PIP_ARGV``, None if no memo applies."""
    if os.environ.get(_ENV_OFF) or os.environ.get("PKGCACHE_DEBUG"):
        return None
    split = _split(pip_argv)
    if split is None:
        return None
    spec, rest = split
    python = _target(spec)
    from cache_core import state_path

    state = state_path()
    if python is None or state is None:
        return None
    real = os.path.realpath(python)
    venv = os.path.dirname(os.path.dirname(python))
    try:
        with open(os.path.join(venv, "pyvenv.cfg"), "rb") as fh:
            cfg = b"\n".join(line for line in fh.read(1 << 16).splitlines()
                             if not line.startswith(b"command"))
    except OSError:
        cfg = b"-"
    env = sorted(f"{k}={v}" for k, v in os.environ.items() if k not in _VOLATILE)
    try:  # the platform tags (manylinux_X_Y) follow the C library and the machine
        libc = os.confstr("CS_GNU_LIBC_VERSION") or "-"
    except (OSError, ValueError):
        libc = "-"
    material = "\0".join([
        FORMAT, str(os.geteuid()), sys.executable, sys.version, os.getcwd(),
        repr(sorted(globals_.items())), "\0".join(rest),
        "python" if spec is None else "python:" + ("dir" if os.path.isdir(spec) else "file"),
        real, stamp(real), libc, os.uname().machine, "\0".join(env),
    ]).encode("utf-8", "surrogateescape") + b"\0" + cfg
    return Key(_sha256(material), state, python, venv)


def _read(key: Key) -> list[list[str]] | None:
    """The memo's lines split at tabs, if it is ours, private, fresh and complete."""
    try:
        fd = os.open(key.path(), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != os.geteuid() or \
                st.st_mode & 0o077 or st.st_size > MAX_BYTES:
            return None
        data = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8", "surrogateescape")
    except ValueError:
        return None
    rows = [line.split("\t") for line in text.rstrip("\n").split("\n")]
    if not rows or rows[0] != [FORMAT, key.digest] or rows[-1] != ["end"]:
        return None
    return rows


def _holds(row: list[str], key: Key) -> bool:
    """One stamp, existence, token or link line of a memo still holds."""
    kind = row[0]
    if kind == "stamp":  # stamp PATH(maybe {venv}/...) STAMP
        path = row[1]
        return stamp(key.venv + path[6:] if path.startswith("{venv}/") else path) == row[2]
    if kind == "exists":  # exists PATH(with {venv}) 0|1
        return os.path.exists(row[1].replace("{venv}", key.venv)) == (row[2] == "1")
    if kind == "token":  # token PATH CONTENT: the cache's generation
        from cache_core import read_generation

        return read_generation(row[1]) == row[2]
    if kind == "link":  # link PATH OBJECT OBJECT-STAMP (the stamp at its last full hash)
        try:
            if os.readlink(row[1]) != row[2]:
                return False
        except OSError:
            return False
        return stamp(row[2], follow=False) == row[3]
    if kind == "created":
        import time

        return 0 <= time.time() - float(row[1]) < MAX_AGE
    return False


def _still_valid(rows: list[list[str]], key: Key) -> dict[str, list[str]] | None:
    """The memo's fields if every recorded stamp, link and object still holds, else None."""
    fields: dict[str, list[str]] = {}
    listings: dict[str, set[str]] = {}
    for row in rows[1:-1]:
        if row[0] in ("stamp", "exists", "token", "link", "created"):
            if not _holds(row, key):
                return None
            if row[0] == "link":
                parent, name = os.path.split(row[1])
                if parent in listings:
                    listings[parent].add(name)
        elif row[0] == "listing":  # listing DIR: holds exactly the links recorded below it
            listings[row[1]] = set()
        else:
            fields[row[0]] = row[1:]
    for directory, names in listings.items():
        try:
            if set(os.listdir(directory)) != names:
                return None
        except OSError:
            return None
    return fields


def _unreachable(fields: dict[str, list[str]]) -> str | None:
    """For a memo of an unreachable index: the cause if its host still has no address."""
    host, port = fields["host"]
    if any(v and k.lower().endswith("_proxy") and k.lower() != "no_proxy"
           for k, v in os.environ.items()):
        return None
    import socket

    try:
        socket.getaddrinfo(host.encode("ascii") if host.isascii() else host, int(port),
                           type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc.strerror or str(exc)
    except (OSError, UnicodeError, ValueError):
        return None
    return None


def _spawn(cmd: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run cmd with stdin from /dev/null and its output held in memory files; (code, out, err).
    Interrupted, the tool is waited for first: after Ctrl-C (which it got too, from the
    terminal) it has 0.25 s to stop by itself, as subprocess.run gives it, then it is killed."""
    out = os.memfd_create("pkgcache-out", os.MFD_CLOEXEC)
    err = os.memfd_create("pkgcache-err", os.MFD_CLOEXEC)
    try:
        pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)])
        try:
            _, status = os.waitpid(pid, 0)
        except KeyboardInterrupt:
            _stop(pid, 0.25)
            raise
        except BaseException:
            _stop(pid, 0.0)
            raise
        return os.waitstatus_to_exitcode(status), _all(out), _all(err)
    finally:
        os.close(out)
        os.close(err)


def _stop(pid: int, grace: float) -> None:
    """Reap the child pid, killing it (SIGKILL) if it has not exited within grace seconds."""
    import signal
    import time

    end = time.monotonic() + grace
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        if time.monotonic() >= end:
            break
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _pip_stdout(data: bytes) -> bytes:
    """pip's stdout as the driver shows it: without its find-links line, 'Ignoring' once."""
    shown: set[bytes] = set()
    lines = []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"Looking in links: "):
            continue
        if line.startswith(b"Ignoring "):
            if line in shown:
                continue
            shown.add(line)
        lines.append(line)
    return b"".join(lines)


def current() -> Key | None:
    """The key of this process's run (None: the run may not leave a memo)."""
    return _current


def run(globals_: dict, pip_argv: list[str]) -> int | None:
    """Serve ``pkgcache pip install`` from its memo; None: the driver runs it (no memo, a
    change, a fault or a failed install)."""
    global _current
    try:
        key = _current = key_for(globals_, pip_argv)
        if key is None:
            return None
        rows = _read(key)
        fields = _still_valid(rows, key) if rows is not None else None
        if fields is None:
            return None
        why = None
        if fields["mode"][0] == "unreachable":
            cause = _unreachable(fields)
            if cause is None:
                return None
            why = f"the index {fields['index'][0]} is unreachable (name resolution failed: {cause})"
        cmd = [key.python if a == PLACEHOLDER else a for a in fields["cmd"]]
        env = dict(os.environ)
        pairs = fields["env"]
        env.update({pairs[i]: pairs[i + 1] for i in range(0, len(pairs) - 1, 2)})
        pairs = fields["envdefault"]
        for i in range(0, len(pairs) - 1, 2):
            env.setdefault(pairs[i], pairs[i + 1])
        code, out, err = _spawn(cmd, env)
    except Exception:  # noqa: BLE001 - the memo is an optimisation: any fault is the driver's
        return None
    if code != 0:
        return None
    if fields["installer"][0] == "pip":
        out = _pip_stdout(out)
    try:
        sys.stdout.flush()
        _write_all(1, out)
        if why is not None:
            sys.stderr.write(f"pkgcache: pip: {why}; installed from the cache (versions may be "
                             "older than the index's)\n")
            sys.stderr.flush()
        _write_all(2, err if not err or err.endswith(b"\n") else err + b"\n")
    except BrokenPipeError:
        pass
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
