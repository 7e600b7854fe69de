"""pkgcache's apt download method for http/https (installed as /usr/lib/pkgcache/methods/http
and selected with ``Dir::Bin::Methods::http``/``https``).

Two processes. The *front* is what apt runs: it speaks apt's method protocol (messages of
``NNN Text`` + ``Field: value`` lines ended by a blank line, see apt's doc/method.dbk and
apt-pkg/acquire-method.cc) and relays everything, unchanged, to the real method
(/usr/lib/apt/methods/http or https) that it starts as its child, so proxies, auth.conf,
redirects and pipelining stay apt's. It imports nothing from cache_core. Every cache operation
happens in a *helper* process (``method.py --helper``) reached over a socketpair:

* ``600 URI Acquire`` with ``Expected-SHA256`` (debs, index files): a local hit is served by the
  front itself (``LocalObjects``): the store's object with that digest, trusted by the stat stamp
  of its last full hash (cache_core.stamps, read with the standard library only), is copied to
  apt's Filename and answered ``201 URI Done`` with its ``SHA256-Hash``, as the http method
  does: no helper, no hashing. Anything else (no stamp or another one, no object, an unknown
  cache) goes to the helper, which places a verified copy of the object (local store, then the
  remote tier; a full hash, which records the stamp or quarantines the object) and the front
  answers without hash fields, so apt hashes the file itself. A miss is relayed to the real
  method.
* a ``201 URI Done`` from the real method for a request with an expected digest: the front opens
  the file before apt sees the message and passes the descriptor to the helper, which stores it
  only if it has the digest apt expected (the upload to the remote follows in the background).
* ``InRelease``/``Release``/``Release.gpg``: always the origin; nothing it returns is kept here
  (the post-update hook keeps what apt accepted, hooks/apt/lists.py). Only when the origin cannot
  be reached (any failure to reach it, whatever errno or proxy status says so) is the cached copy
  served, with one line saying so, unless it is older than the newest this machine has seen or too
  long unconfirmed; apt checks signature and Valid-Until.

Every ``600`` gets exactly one final answer (``Front.owed``): pkgcache's, the real method's, or,
when the real method is gone, a ``400`` from the front. Helper calls have timeouts. Any fault
(helper dead, slow, wrong answer, an exception in the front) ends pkgcache's part for the whole
session: from then on the front only relays between apt and the real method.
A fault before the session starts execs the real method.
"""

from __future__ import annotations

# The front starts at every apt run (`python3 -I -S .../method.py`, debian/methods/http): only
# what it needs on every path is imported here; json, socket, subprocess, re and urllib wait for
# the paths that need them (the helper, a failure, a %-escaped URI). Threads and locks come from
# the built-in _thread: threading's own imports (functools, collections, ...) cost ms.
import _thread
import posix
import stat
import sys
import time
from posix import _exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    import socket
    from collections.abc import Callable
    from typing import IO, Any

    from cache_core import PackageCache

REAL_DIR = "/usr/lib/apt/methods"
RELEASE_NAMES = ("InRelease", "Release", "Release.gpg")
# The real method's FailReason values that mean "the origin cannot be reached" (apt's
# methods/connect.cc and basehttp.cc; a proxy that cannot reach the origin answers 502/503/504).
UNREACHABLE = {"ConnectionRefused", "ConnectionTimedOut", "Timeout", "ResolveFailure",
               "TmpResolveFailure", "HttpError502", "HttpError503", "HttpError504"}
# apt's messages for the same failures when it sets no FailReason (ENETUNREACH/EHOSTUNREACH,
# an address already known bad, resets, TLS handshakes, proxies; apt 2.6 methods/connect.cc,
# http.cc, basehttp.cc). A FailReason outlives its failure in the real method, so the text counts.
UNREACHABLE_TEXT = (
    r"Cannot initiate the connection to |Could not connect to |Unable to connect to "
    r"|Could not resolve |Temporary failure resolving |Something wicked happened resolving "
    r"|System error resolving |Connection failed|Connection timed out"
    r"|Error reading from server|Could not handshake|Certificate verification failed"
    r"|(Reading from|Writing to) proxy failed"
    r"|Invalid response from proxy: \S+ 50[234]\b")
_unreachable_re: list[Any] = []  # UNREACHABLE_TEXT compiled, on the first failure
HELPER_TIMEOUT = 300.0    # one serve (a remote fetch has its own, shorter budgets)
RELEASE_TIMEOUT = 60.0    # the offline fallback of one Release file
HELPER_DRAIN = 60.0       # at the end: harvests still being stored
DEFER_LIMIT = 150.0       # a request waiting for another member's download (lease.py: 120 s)
POLL_FIRST, POLL_MAX = 0.1, 2.0  # how often a waiting request asks again
APT_QUIET = 0.25          # apt sent nothing this long: its burst of Release requests is all in
CHILD_EXIT = 10.0         # apt closed stdin: the real method's time to exit before SIGKILL
FAULT_ENV = "PKGCACHE_METHOD_TEST_FAULT"  # tests only: front-init, front-raise, helper-raise
FINAL = (103, 201, 400)   # the answers that end a request (apt-pkg/acquire-worker.cc)
CREATE = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC


# The FailReasons apt 2.6 retries later (apt-pkg/acquire-worker.cc, URI_FAILURE).
APT_RETRIES = {"Timeout", "ConnectionRefused", "ConnectionTimedOut", "ResolveFailure",
               "TmpResolveFailure"}


def no_retry(msg: Message) -> Message:
    """msg without what makes apt retry it later. apt before 3.1.10 can wait forever when one
    request to a host succeeds and another is retried later (its queue sticks, LP #2003851),
    which is what the offline fallback does to a host that cannot be reached."""
    keep = []
    for line in msg.lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "transient-failure" or (name == "failreason" and value.strip() in APT_RETRIES):
            continue
        keep.append(line)
    return Message(keep)


def asks_retry(msg: Message) -> bool:
    """True when apt 2.6 retries this ``400 URI Failure`` later (if its Retries allow)."""
    return (msg.get("Transient-Failure") or "").lower() == "true" or \
        (msg.get("FailReason") or "") in APT_RETRIES


def unreachable(msg: Message) -> bool:
    """True when a ``400 URI Failure`` says the origin (or the proxy to it) cannot be reached."""
    if (msg.get("FailReason") or "") in UNREACHABLE:
        return True
    if not _unreachable_re:
        import re

        _unreachable_re.append(re.compile(UNREACHABLE_TEXT))
    return bool(_unreachable_re[0].search(msg.get("Message") or ""))


def getenv(name: str) -> str | None:
    """An environment variable: os.environ's once os is loaded (by the helper's start, or by
    whoever runs the front in-process), else the process's own (the front never sets any)."""
    mod = sys.modules.get("os")
    if mod is not None:
        return mod.environ.get(name)  # type: ignore[no-any-return]
    got = posix.environ.get(name.encode("utf-8", "surrogateescape"))
    return None if got is None else got.decode("utf-8", "surrogateescape")


def _environ() -> Any:
    """The environment to start a process with (as getenv reads it)."""
    mod = sys.modules.get("os")
    return posix.environ if mod is None else mod.environ


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(posix.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def start_thread(target: Callable[[], object]) -> Any:
    """Run target on a new thread (never waited for at exit: the front ends with posix._exit);
    a lock held until target returns: ``acquire(timeout=...)`` joins it, ``locked()`` says
    it still runs. RuntimeError when no thread can be started."""
    done = _thread.allocate_lock()
    done.acquire()

    def run() -> None:
        try:
            target()
        finally:
            done.release()

    try:
        _thread.start_new_thread(run, ())
    except BaseException:
        done.release()
        raise
    return done


class Message:
    """One method-protocol message."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    @property
    def code(self) -> int:
        """The message's status code (100, 201, 600, ...); 0 if it has none."""
        head = self.lines[0].split(" ", 1)[0] if self.lines else ""
        return int(head) if head.isdigit() else 0

    def get(self, name: str) -> str | None:
        """The value of header field name (case-insensitive), or None."""
        prefix = name.lower() + ":"
        for line in self.lines[1:]:
            if line.lower().startswith(prefix):
                return line[len(prefix):].strip()
        return None

    def raw(self) -> bytes:
        """The message as apt writes it: its lines and a blank line."""
        return ("\n".join(self.lines) + "\n\n").encode("utf-8", "surrogateescape")

    @classmethod
    def build(cls, head: str, fields: list[tuple[str, str]]) -> Message:
        """A message from its first line and (field, value) pairs."""
        return cls([head] + [f"{k}: {v}" for k, v in fields])


def read_message(stream: IO[bytes]) -> Message | None:
    """The next message, or None at end of file (blank lines between messages are skipped)."""
    lines: list[str] = []
    while True:
        raw = stream.readline()
        if not raw:
            return Message(lines) if lines else None
        line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
        if line == "":
            if lines:
                return Message(lines)
            continue
        lines.append(line)


def _norm(uri: str) -> str:
    if "%" not in uri:
        return uri
    from urllib.parse import unquote

    return unquote(uri)


def release_key(uri: str) -> str:
    """The cache key of a Release file: its URL without user:password@ (never stored)."""
    u = _norm(uri)
    scheme, sep, rest = u.partition("://")
    if not sep:
        return u
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rsplit('@', 1)[-1]}{slash}{path}"


def _leaf(uri: str) -> str:
    return _norm(uri).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class Request:
    """One ``600 URI Acquire`` apt is owed exactly one final answer for (compared by identity).
    at_child: relayed, the real method's final answer is the one apt gets; size:
    Expected-Checksum-FileSize, which bounds what a remote may send."""

    __slots__ = ("uri", "filename", "sha256", "release", "at_child", "size")

    def __init__(self, uri: str, filename: str, sha256: str | None, release: bool,
                 at_child: bool = False, size: int | None = None) -> None:
        self.uri = uri
        self.filename = filename
        self.sha256 = sha256
        self.release = release
        self.at_child = at_child
        self.size = size


class Stats:
    """What served what in this method process."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, source: str, size: int) -> None:
        """Count one file served from source (and its bytes)."""
        self.counts[source] = self.counts.get(source, 0) + 1
        self.counts[source + "_bytes"] = self.counts.get(source + "_bytes", 0) + max(0, size)


class HelperGone(Exception):
    """The helper died, timed out or answered nonsense."""


class HelperClient:
    """The front's end of the socketpair to the helper process (proc: anything with kill/wait)."""

    def __init__(self, sock: socket.socket, proc: Any) -> None:
        self.sock = sock
        self.proc = proc
        self.lock = _thread.allocate_lock()
        self.buf = b""

    @classmethod
    def spawn(cls) -> HelperClient:
        """Start ``method.py --helper`` on one end of a new socketpair."""
        import os
        import socket
        import subprocess

        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        here = _code_root()
        env = dict(os.environ)
        env.setdefault("PKGCACHE_METHOD_RUN", str(posix.getppid()))  # apt's pid: one run
        # -I as the front: no PYTHONPATH, user site or working directory on root's path (a
        # caller's environment must not choose the code root runs); pkgcache's own dir first
        boot = (f"import sys; sys.path.insert(0, {here!r}); from hooks.apt.method import main; "
                f"sys.exit(main(['method', '--helper', '{theirs.fileno()}']))")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", boot],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env, cwd="/")
        finally:
            theirs.close()
        return cls(mine, proc)

    def _send(self, obj: dict[str, Any], fds: list[int] | None = None) -> None:
        import json
        import socket

        data = (json.dumps(obj) + "\n").encode()
        try:
            self.sock.settimeout(HELPER_TIMEOUT)
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise HelperGone(str(exc)) from None

    def _recv(self, timeout: float) -> dict[str, Any]:
        import json

        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise HelperGone("timeout")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise HelperGone(str(exc)) from None
            if not chunk:
                raise HelperGone("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            ans = json.loads(line)
        except ValueError:
            raise HelperGone("bad answer") from None
        if not isinstance(ans, dict):
            raise HelperGone("bad answer")
        return ans

    def call(self, obj: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a request to the helper and wait at most timeout seconds (waiting for another
        call included) for its answer."""
        timeout = HELPER_TIMEOUT if timeout is None else timeout
        end = time.monotonic() + timeout
        if not self.lock.acquire(timeout=timeout):
            raise HelperGone("busy")
        try:
            self._send(obj)
            return self._recv(end - time.monotonic())
        finally:
            self.lock.release()

    def tell(self, obj: dict[str, Any]) -> None:
        """Send a request that gets no answer, without waiting."""
        if not self.lock.acquire(timeout=HELPER_TIMEOUT):
            raise HelperGone("busy")
        try:
            self._send(obj)
        finally:
            self.lock.release()

    def post(self, obj: dict[str, Any], fd: int) -> None:
        """Send a request and a file descriptor to the helper, without waiting."""
        if not self.lock.acquire(timeout=HELPER_TIMEOUT):
            raise HelperGone("busy")
        try:
            self._send(obj, [fd])
        finally:
            self.lock.release()

    def finish(self, stats: dict[str, Any]) -> None:
        """Hand the run's counters to the helper and let it end (waiting at most HELPER_DRAIN)."""
        import socket

        if self.lock.acquire(timeout=HELPER_DRAIN):
            try:
                self._send({"op": "stats", "stats": stats})
                self.sock.shutdown(socket.SHUT_WR)
            except (OSError, HelperGone):
                pass
            finally:
                self.lock.release()
        try:
            self.proc.wait(HELPER_DRAIN)
        except Exception:  # noqa: BLE001 - TimeoutExpired: it finishes on its own
            pass
        self.sock.close()

    def kill(self) -> None:
        """End the helper process (it holds nothing apt needs)."""
        try:
            self.proc.kill()
            self.proc.wait(5)
        except Exception:  # noqa: BLE001 - OSError, TimeoutExpired
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class ChildTimeout(Exception):
    """The real method did not exit in time."""


class Child:
    """The real method, talking to the front over pipes (posix_spawn: the front does without
    subprocess). SIGPIPE is restored to its default, as apt starts its methods. Or the one the
    method wrapper started before the front (``adopt``)."""

    def __init__(self, real: str | None) -> None:
        self.rc: int | None = None
        if real is None:
            return  # adopt's
        import _signal  # type: ignore[import-not-found]  # signal without its enum import

        r_in, w_in = posix.pipe()
        r_out, w_out = posix.pipe()
        try:
            self.pid = posix.posix_spawn(real, [real], _environ(), file_actions=[
                (posix.POSIX_SPAWN_DUP2, r_in, 0), (posix.POSIX_SPAWN_DUP2, w_out, 1)],
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT))
        except BaseException:
            for fd in (w_in, r_out):
                posix.close(fd)
            raise
        finally:
            posix.close(r_in)
            posix.close(w_out)
        self.stdin = open(w_in, "wb", buffering=0)
        self.stdout = open(r_out, "rb")

    @classmethod
    def adopt(cls, pid: int, stdout: int, stdin: int) -> Child | None:
        """The real method the wrapper started (debian/methods/http) as this process's child
        pid, its stdout and stdin on pipes here; None (the pipes closed, pid left alone) unless
        pid is a running child of this process and both are pipes."""
        try:
            for fd in (stdout, stdin):
                posix.set_inheritable(fd, False)  # never to the helper or an exec'd real method
            ok = pid > 0 and all(stat.S_ISFIFO(posix.fstat(fd).st_mode) for fd in (stdout, stdin)) \
                and posix.waitpid(pid, posix.WNOHANG)[0] == 0
        except (OSError, ValueError):  # ChildProcessError: not ours
            ok = False
        if not ok:
            for fd in (stdout, stdin):
                try:
                    posix.close(fd)
                except OSError:
                    pass
            return None
        child = cls(None)
        child.pid = pid
        child.stdin = open(stdin, "wb", buffering=0)
        child.stdout = open(stdout, "rb")
        return child

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        if self.rc is None:
            try:
                pid, status = posix.waitpid(self.pid, posix.WNOHANG)
            except ChildProcessError:
                return self.rc
            if pid:
                self.rc = posix.waitstatus_to_exitcode(status)
        return self.rc

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit (ChildTimeout after timeout seconds)."""
        if timeout is None:
            if self.rc is None:
                self.rc = posix.waitstatus_to_exitcode(posix.waitpid(self.pid, 0)[1])
            return self.rc
        end = time.monotonic() + timeout
        delay = 0.0002  # apt waits for the front's exit, the front for this one's (~1 ms)
        pidfd = -1
        try:
            pidfd = posix.pidfd_open(self.pid)  # woken at its exit (Linux >= 5.3)
        except (AttributeError, OSError):
            pass
        try:
            while self.poll() is None:
                left = end - time.monotonic()
                if left <= 0:
                    raise ChildTimeout(self.pid)
                if pidfd >= 0:
                    import select

                    select.select([pidfd], [], [], left)
                else:
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, 0.05)
        finally:
            if pidfd >= 0:
                posix.close(pidfd)
        return self.rc if self.rc is not None else 0

    def kill(self) -> None:
        """SIGKILL it (if it still runs)."""
        if self.poll() is None:
            try:
                posix.kill(self.pid, 9)
            except ProcessLookupError:
                pass


def spawn_real(real: str) -> Child:
    """The real method, talking to the front over pipes."""
    return Child(real)


def _code_root() -> str:
    """The directory holding pkgcache's packages (cache_core, hooks)."""
    here = __file__ if __file__.startswith("/") else f"{posix.getcwd()}/{__file__}"
    return here.rsplit("/", 3)[0] or "/"  # ROOT/hooks/apt/method.py


CAPS_FILE = "apt-method-caps"  # in the private state dir
CAPS_FORMAT = "pkgcache-apt-method-caps 1"
# The message alone, for the wrapper (debian/methods/http), which answers apt's probe from it
# with no interpreter: written after the memo, removed when the memo no longer holds.
CAPS_MSG = ".msg"


def _file_stamp(path: str) -> str:
    """cache_core.stamps.of(posix.stat(path)), "-" if absent: written out here, since the front
    sends the capabilities before it loads anything of cache_core."""
    try:
        st = posix.stat(path)
    except OSError:
        return "-"
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _caps_path(real: str) -> str | None:
    """The memo of the real method's capabilities (one per method: http, https): root's
    private state dir only."""
    if posix.geteuid() != 0 or getenv("PKGCACHE_DISABLE"):
        return None
    mod = sys.modules.get("cache_core.statepath")
    if mod is None:  # the standard library only: loaded alone, not cache_core's package
        import _frozen_importlib as boot  # type: ignore[import-not-found]
        import _frozen_importlib_external as ext  # type: ignore[import-not-found]

        name = "pkgcache_front_statepath"
        path = f"{_code_root()}/cache_core/statepath.py"
        loader = ext.SourceFileLoader(name, path)
        mod = boot.module_from_spec(boot.spec_from_loader(name, loader))  # type: ignore[arg-type]
        loader.exec_module(mod)
    base = mod.locate()  # the one home of the state dir: walked from /, private only
    return f"{base.rstrip('/')}/{CAPS_FILE}-{_basename(real)}" if base else None


def _forget_msg(path: str) -> None:
    """Remove the method wrapper's copy of the message (a memo no longer valid)."""
    try:
        posix.unlink(path + CAPS_MSG)
    except OSError:
        pass


def cached_caps(real: str) -> bytes | None:
    """The real method's ``100 Capabilities`` message as it sent it last time, if the real
    method and every file it had mapped (libapt-pkg, libstdc++, ...) still have the stat stamp
    they had then: the message is theirs alone (apt sends its configuration only after it).
    apt starts each method twice per run and waits for this message both times."""
    try:
        path = _caps_path(real)
        if path is None:
            return None
        fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC)
        try:
            st = posix.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != posix.geteuid() or st.st_mode & 0o077:
                return None
            data = posix.read(fd, 65536)
        finally:
            posix.close(fd)
        head, sep, caps = data.partition(b"\n\n")
        lines = head.decode("utf-8", "surrogateescape").split("\n")
        if not sep or len(lines) < 3 or lines[0] != CAPS_FORMAT or lines[1] != real \
                or not caps.startswith(b"100 Capabilities\n") or not caps.endswith(b"\n\n"):
            return None
        for line in lines[2:]:
            name, _, stamp = line.partition("\t")
            if stamp == "-" or _file_stamp(name) != stamp:
                _forget_msg(path)  # the wrapper must not send it at the next probe
                return None
        return caps
    except (OSError, ValueError, ImportError):
        return None


def learn_caps(real: str, pid: int, caps: bytes) -> None:
    """Remember the capabilities the real method (pid, alive) just sent, keyed by its binary
    and the files it has mapped (/proc/PID/maps). Best effort."""
    try:
        path = _caps_path(real)
        if path is None:
            return
        with open(f"/proc/{pid}/maps", "rb") as fh:
            maps = fh.read(1 << 20).decode("utf-8", "surrogateescape")
        files = {real}
        for line in maps.splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/") and "\t" not in parts[5]:
                files.add(parts[5])
        stamps_ = [f"{f}\t{_file_stamp(f)}" for f in sorted(files)]
        if any(x.endswith("\t-") for x in stamps_) or "\n" in "".join(files):
            return  # a deleted or unreadable mapping: nothing to key it by
        text = "\n".join([CAPS_FORMAT, real, *stamps_]).encode("utf-8", "surrogateescape")
        _forget_msg(path)  # never a message beside a memo it is not
        _write_private(path, text + b"\n\n" + caps)
        _write_private(path + CAPS_MSG, caps)
    except (OSError, ValueError, ImportError):
        pass


def _write_private(path: str, data: bytes) -> None:
    """Write path (0600) whole through a temp and a rename; no temp left on a full disk."""
    tmp = f"{path}.{posix.getpid()}.tmp"
    fd = posix.open(tmp, CREATE, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:  # a short write (a full disk) is written on, or raises: never cut
                view = view[posix.write(fd, view):]
        finally:
            posix.close(fd)
        posix.replace(tmp, path)
    except OSError:
        posix.unlink(tmp)
        raise


class LocalObjects:
    """The front's own hits: the local store's objects by digest, trusted by their stat stamp
    (cache_core.stamps). Opened once per session, only for root; None when the cache is not
    known without the config (the helper then serves, and records what selects the cache)."""

    def __init__(self, stamps: Any, root: str, sdir: str, objects: int, remote: bool) -> None:
        self.stamps = stamps
        self.root = root
        self.sdir = sdir
        self.remote = remote  # the cache has a remote tier: a local miss may be its hit
        self.objects = objects  # objects-v1/sha256, opened without following any link
        self.shards: dict[str, int] = {}
        self.n = 0
        self.swept: set[tuple[int, int]] = set()  # destination dirs cleared of dead fronts' temps

    @classmethod
    def open(cls) -> LocalObjects | None:
        """The selected cache's objects, or None (also when the cache dir or cache_core.stamps
        is missing or unreadable: the helper then serves and says why)."""
        try:
            return cls._open()
        except (OSError, ImportError, ValueError):  # ValueError: e.g. a NUL in a recorded path
            return None

    @classmethod
    def _open(cls) -> LocalObjects | None:
        here = _code_root()
        if not _is_file(f"{here}/cache_core/stamps.py"):
            return None
        if sys.path[:1] != [here]:
            sys.path.insert(0, here)
        from cache_core import stamps  # the standard library only

        got = stamps.selected()
        root, remote = got if got else (None, False)
        sdir = stamps.stamp_dir(root) if root else None
        if root is None or sdir is None or not stamps.index_known(root):
            return None  # (a newer pkgcache's index: the cache is left alone)
        flags = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC
        fd = posix.open(root, flags)
        try:
            st = posix.fstat(fd)
            if st.st_uid != posix.geteuid() or st.st_mode & 0o022:
                posix.close(fd)
                return None
            for part in ("objects-v1", "sha256"):
                nxt = posix.open(part, flags | posix.O_NOFOLLOW, dir_fd=fd)
                posix.close(fd)
                fd = nxt
        except OSError:
            posix.close(fd)
            return None
        return cls(stamps, root, sdir, fd, remote)

    def save_counts(self, counts: dict[str, int]) -> None:
        """What this front served, for the next hook to record (fold_front_counts)."""
        runs = f"{self.sdir.rstrip('/')}/runs"
        try:
            posix.mkdir(runs, 0o700)
        except OSError:
            pass
        text = "".join(f"{k} {v}\n" for k, v in counts.items())
        path = f"{runs}/front-{posix.getppid()}-{posix.getpid()}"
        try:
            fd = posix.open(path, CREATE, 0o600)
            try:
                posix.write(fd, text.encode())
            finally:
                posix.close(fd)
            posix.rename(path, path + ".counts")
        except OSError:
            pass

    def _shard(self, digest: str) -> int:
        fd = self.shards.get(digest[:2])
        if fd is None:
            fd = posix.open(digest[:2], posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW
                            | posix.O_CLOEXEC, dir_fd=self.objects)
            self.shards[digest[:2]] = fd
        return fd

    def place(self, req: Request) -> tuple[int, float] | str | None:
        """Copy the object req.sha256 to req.filename (temp + rename) if its stamp is the one
        of its last full hash, before and after the copy: (size, mtime); "miss" when there is
        no such object here and no remote either (the real method's, at once); else None (the
        helper's)."""
        digest = req.sha256 or ""
        if len(digest) != 64 or digest.strip("0123456789abcdef") or not req.filename:
            return None
        try:
            fd = posix.open(digest, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC,
                         dir_fd=self._shard(digest))
        except FileNotFoundError:
            return None if self.remote else "miss"
        except OSError:
            return None  # a symlink, ...: the helper's business (it quarantines)
        try:
            st = posix.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != posix.geteuid()
                    or st.st_mode & 0o022 or (req.size is not None and st.st_size != req.size)):
                return None
            want = self.stamps.of(st)
            if self.stamps.read(self.sdir, digest) != want:
                return None  # changed since its last full hash, or never stamped: hash it
            return self._copy_to(fd, st, want, req.filename, digest)
        finally:
            posix.close(fd)

    def _copy_to(self, fd: int, st: posix.stat_result, want: str, dest: str,
                 digest: str) -> tuple[int, float] | None:
        ddir, _, name = dest.rpartition("/")
        if not dest.startswith("/") or not name:
            return None
        dfd = posix.open(ddir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
        self.n += 1
        tmp = f"{self.stamps.TEMP_PREFIX}{posix.getpid()}-{self.n}{self.stamps.TEMP_SUFFIX}"
        made = False  # only a temp file this call created is ever unlinked
        try:
            parent = posix.fstat(dfd)
            if (parent.st_dev, parent.st_ino) not in self.swept:
                self.swept.add((parent.st_dev, parent.st_ino))
                self.stamps.sweep_dead_temps(dfd)
            out = posix.open(tmp, CREATE, 0o600, dir_fd=dfd)
            made = True
            try:
                if self.stamps.copy_range(fd, out, st.st_size) != st.st_size \
                        or self.stamps.of(posix.fstat(fd)) != want:
                    raise OSError("the object changed while it was copied")
                posix.fchown(out, parent.st_uid, parent.st_gid)  # as the real method's files
                posix.fchmod(out, 0o644)
                placed = posix.fstat(out)
            finally:
                posix.close(out)
            posix.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            if made:
                try:
                    posix.unlink(tmp, dir_fd=dfd)
                except OSError:
                    pass
            raise
        finally:
            posix.close(dfd)
        self.stamps.note_copy(self.sdir, name, digest, placed, hit=True)  # harvest: no hash
        return st.st_size, placed.st_mtime


class Front:
    """The process apt talks to.

    Every ``600 URI Acquire`` is entered in ``owed`` when it arrives and leaves it with the one
    final answer apt gets for it (``answer``): pkgcache's own ``201``, the real method's
    ``201``/``400``/``103`` relayed, or a ``400`` from the front when nothing else can answer
    (the real method gone). A final answer for a request no longer owed is dropped."""

    def __init__(self, real: str, stdin: IO[bytes], stdout: IO[bytes], *,
                 spawn_child: Callable[[str], Any] = spawn_real,
                 spawn_helper: Callable[[], HelperClient] = HelperClient.spawn) -> None:
        if getenv(FAULT_ENV) == "front-init":
            raise RuntimeError("injected fault")
        self.real = real
        self.stdin = stdin
        self.stdout = stdout
        self.lock = _thread.RLock()  # the owed table and every write to apt
        self.owed: dict[str, list[Request]] = {}
        self.seen: set[str] = set()  # every URI apt asked for
        self.relay_only = False
        self.apt_gone = False
        self.offline: bool | None = None  # Release files from the cache this session?
        self.held: list[tuple[Request, Message, int]] = []  # answers waiting for that choice
        self.retry_asked = False  # apt was told to retry an unreachable origin later
        self.stats = Stats()
        self.spawn_helper = spawn_helper
        self.helper: HelperClient | None = None
        self.child_lock = _thread.allocate_lock()  # writes to the real method (main thread, poller)
        self.helper_lock = _thread.allocate_lock()
        self.deferred: list[tuple[Request, Message, float]] = []  # waiting for another member
        self.poller: Any = None  # start_thread's lock
        self.local: LocalObjects | None | bool = None  # False: no local hits this session
        self.hashes_ok = True  # apt takes our SHA256-Hash (no other Acquire::ForceHash)
        self.child = spawn_child(real)
        self.closing = False
        self.apt_busy = False  # the main thread holds a message of apt's not yet handed on
        self.apt_idle = time.monotonic()  # when it last went back to reading apt
        self.settle_timer: Any = None  # start_thread's lock
        self.caps_sent: bytes | None = None  # the remembered capabilities, sent before the child's
        self.caps_seen = False  # the real method's own capabilities arrived
        self.caps_memo_ok = True  # caps_sent came from a memo that still holds

    def start_helper(self) -> None:
        """Start the helper at the first request it may serve (a digest, or an offline
        Release file); an apt run that needs neither never starts it."""
        with self.helper_lock:  # the main thread (digests) or the reader (Release fallback)
            if self.helper is not None or self.relay_only:
                return
            if posix.geteuid() != 0 or getenv("PKGCACHE_DISABLE"):
                self.relay_only = True  # a user's `apt-get download`: not their cache
                return
            try:
                self.helper = self.spawn_helper()
            except Exception as exc:  # noqa: BLE001 - no helper: a plain relay
                self.fault(type(exc).__name__)

    # -- output ---------------------------------------------------------------------------
    def to_apt(self, *msgs: Message) -> None:
        """Write messages to apt (nothing once apt has gone away)."""
        with self.lock:
            if self.apt_gone:
                return
            try:
                self.stdout.write(b"".join(m.raw() for m in msgs))
                self.stdout.flush()
            except (OSError, ValueError):
                self.apt_gone = True

    def to_child(self, msg: Message) -> bool:
        """Write a message to the real method; False if it is gone."""
        stdin = self.child.stdin
        try:
            with self.child_lock:
                stdin.write(msg.raw())
                stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def relay(self, req: Request, msg: Message) -> None:
        """Hand req to the real method: its final answer is the one apt gets."""
        req.at_child = True
        if not self.to_child(msg):
            self.fail(req, f"The {_basename(self.real)} method is gone")

    # -- the owed table -------------------------------------------------------------------
    def owe(self, req: Request) -> None:
        """apt sent req: it is owed one final answer."""
        with self.lock:
            self.owed.setdefault(_norm(req.uri), []).append(req)
            self.seen.add(_norm(req.uri))

    def at_child(self, uri: str) -> Request | None:
        """The oldest owed request for uri that the real method is answering."""
        with self.lock:
            return next((r for r in self.owed.get(_norm(uri), ()) if r.at_child), None)

    def answer(self, req: Request, *msgs: Message) -> bool:
        """Send req's final answer (msgs) unless it was answered already; True if sent."""
        with self.lock:
            key = _norm(req.uri)
            queue = self.owed.get(key, [])
            if req not in queue:
                return False
            queue.remove(req)
            if not queue:
                del self.owed[key]
            self.to_apt(*msgs)
            return True

    def fail(self, req: Request, text: str) -> None:
        """Answer req with a ``400 URI Failure`` of the front's own."""
        self.answer(req, Message.build("400 URI Failure", [("URI", req.uri), ("Message", text)]))

    def fault(self, why: str) -> None:
        """pkgcache's part ends here; the rest of the session is a plain relay."""
        if self.relay_only:
            return
        self.relay_only = True
        helper, self.helper = self.helper, None
        if helper is not None:
            helper.kill()

    # -- apt -> real method ---------------------------------------------------------------
    def run(self) -> int:
        """Relay apt's messages to the real method until apt closes stdin; the exit code."""
        reader = start_thread(self.read_child)
        while True:
            self.apt_busy = False
            self.apt_idle = time.monotonic()
            try:
                msg = read_message(self.stdin)
            except (OSError, ValueError):
                msg = None
            self.apt_busy = True
            if msg is None:
                break
            if msg.code == 600:
                self.request(msg)
            else:
                if msg.code == 601:
                    self.configure(msg)
                self.to_child(msg)
        return self.close(reader)

    def close(self, reader: Any) -> int:
        """apt closed stdin: end the real method (it exits on end of file) and the helper."""
        self.closing = True
        if not self.seen and self.caps_sent is not None:
            self.child.kill()  # apt's capabilities probe: the real method was never asked
        try:
            self.child.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            rc = self.child.wait(CHILD_EXIT)
        except Exception:  # noqa: BLE001 - its timeout (ChildTimeout, TimeoutExpired)
            self.child.kill()
            rc = self.child.wait()
        if not self.seen and self.caps_sent is not None:
            rc = 100  # as the real method ends when apt closes its input
        if reader.acquire(timeout=CHILD_EXIT):  # the reader relayed the real method's last words
            reader.release()
        helper, self.helper = self.helper, None
        if helper is not None:
            helper.finish(self.stats.counts)
        elif isinstance(self.local, LocalObjects) and self.stats.counts:
            self.local.save_counts(self.stats.counts)
        return rc

    def configure(self, msg: Message) -> None:
        """apt's configuration (``601``): a forced hash other than SHA256 would not accept the
        one the front gives, so apt then hashes what the front places."""
        for line in msg.lines[1:]:
            name, _, value = line.partition(":")
            key, _, val = value.strip().partition("=")
            if name.strip().lower() == "config-item" and key.lower() == "acquire::forcehash":
                self.hashes_ok = val.strip().lower() in ("", "sha256")

    def request(self, msg: Message) -> None:
        """A ``600 URI Acquire``: answered here, or relayed to the real method."""
        uri, filename = msg.get("URI"), msg.get("Filename")
        if not uri:
            self.to_child(msg)  # nothing to answer it by: the real method's business
            return
        size = msg.get("Expected-Checksum-FileSize") or ""
        req = Request(uri, filename or "", (msg.get("Expected-SHA256") or "").lower() or None,
                      _leaf(uri) in RELEASE_NAMES, size=int(size) if size.isdigit() else None)
        self.owe(req)
        served = False
        if not self.relay_only and filename:
            try:
                served = self.acquire(req, msg)
            except Exception as exc:  # noqa: BLE001 - never break apt
                self.fault(type(exc).__name__)
        if not served:
            self.relay(req, msg)

    def acquire(self, req: Request, msg: Message) -> bool:
        """True when pkgcache answered the request itself, or holds it while another member
        (or local process) downloads the same file (see ``defer``)."""
        if getenv(FAULT_ENV) == "front-raise":
            raise RuntimeError("injected fault")
        if req.release or req.sha256 is None:
            return False
        local = self.serve_local(req)
        if local is not False:
            return bool(local)  # served, or a plain miss: straight to the real method
        self.start_helper()  # the first request the helper can serve
        got = self.serve(req)
        if got == "busy":
            self.defer(req, msg)
        return got is not None

    def serve_local(self, req: Request) -> bool | None:
        """A hit the front serves itself (LocalObjects): True; None: a miss for the real method
        (no object, no remote: the helper is not asked, it only stores the download); False:
        ask the helper."""
        try:
            if self.local is None:
                self.local = False
                if posix.geteuid() == 0 and not getenv("PKGCACHE_DISABLE"):
                    self.local = LocalObjects.open() or False
            if self.local is False or not self.hashes_ok or self.relay_only:
                return False
            assert isinstance(self.local, LocalObjects)
            got = self.local.place(req)
        except (OSError, ImportError, ValueError):
            got = None  # the helper tries (and says why, if it must)
        if got == "miss":
            self.start_helper()  # for the harvest of what the real method downloads
            return None
        if not isinstance(got, tuple):
            return False
        size, mtime = got
        self.answer_done(req, size, mtime, sha256=req.sha256)
        self.stats.add("local", size)
        return True

    def serve(self, req: Request) -> str | None:
        """Ask the helper for req's file: "done" (answered), "busy" (another downloads it), or
        None (the real method's job)."""
        helper = self.helper
        if helper is None:
            return None
        try:
            ans = helper.call({"op": "serve", "sha256": req.sha256, "dest": req.filename,
                               "size": req.size})
        except HelperGone as exc:
            self.fault(str(exc))
            return None
        if ans.get("ok") is True and isinstance(ans.get("size"), int):
            self.answer_done(req, ans["size"])
            self.stats.add(str(ans.get("source", "local")), ans["size"])
            return "done"
        if ans.get("ok") is not False:
            self.fault("bad answer")
            return None
        return "busy" if ans.get("busy") is True else None

    # -- coalescing: another member (or local process) is downloading the same file ---------
    def defer(self, req: Request, msg: Message) -> None:
        """Hold req (still owed) while the file's lease is someone else's; a poller thread asks
        again with backoff and serves it once delivered, or relays it to the real method when
        the lease ends without it, expires, or DEFER_LIMIT passes. The front keeps reading apt
        meanwhile: its own downloads (and the leases this machine holds) go on."""
        entry = (req, msg, time.monotonic() + DEFER_LIMIT)
        with self.lock:
            self.deferred.append(entry)
            if self.poller is not None:
                return
            try:
                self.poller = start_thread(self.poll_deferred)
            except Exception:  # noqa: BLE001 - no thread: the real method gets it, once
                self.deferred.remove(entry)
            else:
                return
        self.relay(req, msg)

    def poll_deferred(self) -> None:
        """The poller thread: until no request waits."""
        delay = POLL_FIRST
        while True:
            time.sleep(delay)
            delay = min(delay * 1.6, POLL_MAX)
            with self.lock:
                batch, self.deferred = self.deferred, []
                if not batch:
                    self.poller = None
                    return
            keep = []
            for req, msg, end in batch:
                got = None
                try:
                    if not self.relay_only and time.monotonic() < end:
                        got = self.serve(req)
                except Exception as exc:  # noqa: BLE001 - never break apt
                    self.fault(type(exc).__name__)
                if got == "busy":
                    keep.append((req, msg, end))
                elif got is None:
                    try:
                        self.relay(req, msg)
                    except Exception as exc:  # noqa: BLE001 - the rest of the batch goes on
                        self.fault(type(exc).__name__)
                        self.fail(req, "pkgcache could not hand the request on")
            with self.lock:
                self.deferred.extend(keep)

    def answer_done(self, req: Request, size: int, mtime: float | None = None, *,
                    sha256: str | None = None) -> None:
        """As apt's http method answers; without sha256 minus the hash fields (apt hashes the
        file itself)."""
        if mtime is None:
            try:
                mtime = posix.stat(req.filename).st_mtime
            except OSError:
                mtime = time.time()
        when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime))  # C locale
        done = [("URI", req.uri), ("Filename", req.filename), ("Size", str(size)),
                ("Last-Modified", when)]
        if sha256:
            done += [("SHA256-Hash", sha256), ("Checksum-FileSize-Hash", str(size))]
        self.answer(req,
                    Message.build("200 URI Start", [("URI", req.uri), ("Size", str(size)),
                                                    ("Last-Modified", when)]),
                    Message.build("201 URI Done", done))

    # -- real method -> apt ---------------------------------------------------------------
    def read_child(self) -> None:
        """Relay the real method's messages to apt (a thread), taking cached files on the way."""
        while True:
            try:
                msg = read_message(self.child.stdout)
            except (OSError, ValueError):
                msg = None
            if msg is None:
                break
            try:
                self.from_child(msg)
            except Exception as exc:  # noqa: BLE001 - never break apt: relay it as it is
                self.fault(type(exc).__name__)
                req = self.at_child(msg.get("URI") or "")
                if req is not None and msg.code in FINAL:
                    self.answer(req, msg)
                elif req is not None or msg.get("URI") is None:
                    self.to_apt(msg)
        if not self.closing:
            self.child_died()

    def child_died(self) -> None:
        """The real method ended under apt: every request still owed gets a ``400``, then the
        front ends as the real method did (apt reports that as usual)."""
        try:
            rc = self.child.wait(CHILD_EXIT)
        except Exception:  # noqa: BLE001 - its timeout
            rc = None
        with self.lock:
            if self.closing:
                return
            text = f"The {_basename(self.real)} method exited unexpectedly"
            for queue in list(self.owed.values()):
                for req in list(queue):
                    self.fail(req, text)
            self.exit(rc or 100)

    def exit(self, rc: int) -> None:
        """End the process at once (the main thread is blocked reading apt)."""
        helper = self.helper
        if helper is not None:
            helper.kill()
        _exit(rc)

    def real_caps(self, msg: Message) -> None:
        """The real method's first ``100 Capabilities``: remembered, and passed on unless apt
        has the same bytes already (the memo, sent by the front or the wrapper)."""
        self.caps_seen = True
        same = self.caps_sent is not None and msg.raw() == self.caps_sent
        if isinstance(self.child, Child) and not (same and self.caps_memo_ok):
            learn_caps(self.real, self.child.pid, msg.raw())  # first: apt may end a probe
        if not same:
            self.to_apt(msg)  # new (or other) capabilities: apt takes the real method's

    def from_child(self, msg: Message) -> None:
        """Pass a message of the real method on to apt, as the answer of the request it is for."""
        if msg.code == 100 and not self.caps_seen:
            self.real_caps(msg)
            return
        uri = msg.get("URI")
        req = self.at_child(uri) if uri is not None else None
        if req is None:
            if uri is None or msg.code not in FINAL:
                self.to_apt(msg)  # capabilities, logs, status; progress of requests
            elif not self.was_answered(uri):
                self.to_apt(msg)  # not one of apt's requests ("<UNKNOWN>"): apt judges it
            return
        if msg.code == 400 and req.sha256 and not self.relay_only:
            self.drop_lease(req)
        if msg.code == 201 and not self.relay_only:
            if (msg.get("IMS-Hit") or "").lower() == "true":
                self.stats.add("origin_unchanged", 0)
            else:
                size = msg.get("Size") or "0"
                self.stats.add("origin", int(size) if size.isdigit() else 0)
                if req.sha256 and not req.release:  # Release files: lists.py, after apt
                    self.harvest(req, msg.get("Filename") or req.filename)
        elif msg.code == 400 and not self.relay_only and unreachable(msg):
            answer = self.offline_answer(req, msg)
            if answer is None:
                return
            msg = answer
        if msg.code in FINAL:
            self.answer(req, msg)
            if req.release:
                self.settle_offline()
        else:
            self.to_apt(msg)

    # -- the offline fallback -------------------------------------------------------------
    # apt 2.6 waits forever when a host's queue holds a request it retries later while an
    # answer for that host brings new requests (LP #2003851, fixed in apt 3.1.10). So a
    # session serves the cached Release files of ALL the suites apt asked for, or none:
    # answers for Release files whose origin is unreachable are held until every Release
    # request is in; if one has no cached copy, all get the real method's failure (apt
    # retries them, as without pkgcache); if all have one, all are served and no failure of
    # that session asks apt to retry later.
    def offline_answer(self, req: Request, msg: Message) -> Message | None:
        """What to tell apt for a failure to reach the origin (None: held or answered)."""
        if self.offline is True:
            size = self.serve_release(req) if req.release else None
            if size is None:
                return no_retry(msg)
            self.answer_done(req, size)
            self.tell_fallback([(req, size)])
            return None
        if self.offline is None and req.release and not self.retry_asked:
            size = self.serve_release(req)
            if size is not None:
                with self.lock:
                    req.at_child = False  # answered by the real method; the answer is held
                    self.held.append((req, msg, size))
                self.settle_offline()
                return None
            self.decide_online()
        self.retry_asked = self.retry_asked or asks_retry(msg)
        return msg

    def serve_release(self, req: Request) -> int | None:
        """Place the cached copy of a Release file at apt's Filename; its size, or None."""
        self.start_helper()
        helper = self.helper
        if helper is None or self.relay_only:
            return None
        try:
            ans = helper.call({"op": "release", "uri": release_key(req.uri),
                               "dest": req.filename}, RELEASE_TIMEOUT)
        except HelperGone as exc:
            if str(exc) != "busy":
                self.fault(str(exc))
            return None
        if ans.get("ok") is not True or not isinstance(ans.get("size"), int):
            return None
        return int(ans["size"])

    def settle_offline(self) -> None:
        """Every Release request in and all held: serve them all (the session is offline),
        unless apt was already asked to retry something this session (LP #2003851 again).

        "Every Release request in" is known only by apt falling quiet: apt queues a session's
        Release files in one burst, but the real method may refuse the first before the front
        has read the next. So the choice waits until the front has handed on all it read and
        apt has sent nothing for APT_QUIET (a timer looks again)."""
        if self.retry_asked:
            self.decide_online()
            return
        with self.lock:
            if self.offline is not None or not self.held:
                return
            for queue in self.owed.values():
                if any(r.release and r.at_child for r in queue):
                    return  # a Release request is still with the real method
            wait = 0.0 if self.closing else APT_QUIET - (time.monotonic() - self.apt_idle)
            if self.apt_busy and not self.closing:
                wait = APT_QUIET
            if wait > 0:
                self.look_again(wait)
                return
            self.offline = True
            held, self.held = self.held, []
            for req, _msg, size in held:
                self.answer_done(req, size)
        self.tell_fallback([(r, size) for r, _m, size in held])

    def look_again(self, wait: float) -> None:
        """settle_offline again in wait seconds (one timer at a time; under self.lock)."""
        timer = self.settle_timer
        if timer is not None and timer.locked():
            return  # it looks again itself, and re-arms if apt is still not quiet
        try:
            self.settle_timer = start_thread(lambda: self._settle_later(wait))
        except RuntimeError:  # no thread: no fallback this session, as without pkgcache
            self.settle_timer = None
            self.decide_online()

    def _settle_later(self, wait: float) -> None:
        """The timer (a thread): settle after wait seconds, never raising."""
        time.sleep(wait)
        with self.lock:
            self.settle_timer = None
        try:
            self.settle_offline()
        except Exception as exc:  # noqa: BLE001 - never break apt
            self.fault(type(exc).__name__)
            self.decide_online()

    def decide_online(self) -> None:
        """A Release file has no cached copy: no fallback this session; held ones get the real
        method's answers, as without pkgcache."""
        with self.lock:
            self.offline = False
            held, self.held = self.held, []
            for req, msg, _size in held:
                try:
                    posix.unlink(req.filename)  # the cached copy placed for it: not given
                except OSError:
                    pass
                self.answer(req, msg)
                self.retry_asked = self.retry_asked or asks_retry(msg)

    def tell_fallback(self, served: list[tuple[Request, int]]) -> None:
        """One line per host and batch: what was served instead of the origin (and count it)."""
        for host in sorted({_host(r.uri) for r, _size in served}):
            mine = [r for r, _size in served if _host(r.uri) == host]
            what = (f"{_leaf(mine[0].uri)} (apt checks its signature" if len(mine) == 1 else
                    f"Release files of {len(mine)} suites (apt checks their signatures")
            sys.stderr.write(f"pkgcache: {host} unreachable; serving the cached {what} and "
                             "Valid-Until)\n")
        sys.stderr.flush()
        for _r, size in served:
            self.stats.add("release_fallback", size)

    def was_answered(self, uri: str) -> bool:
        """True if uri is a request apt sent whose answer is already out (none owed now)."""
        with self.lock:
            return _norm(uri) in self.seen and _norm(uri) not in self.owed

    def drop_lease(self, req: Request) -> None:
        """The real method failed req: the helper ends its lease on the file (if any), so
        waiting members fall back to the origin at once."""
        helper = self.helper
        if helper is None:
            return
        try:
            helper.tell({"op": "drop", "sha256": req.sha256})
        except HelperGone as exc:
            self.fault(str(exc))

    def harvest(self, req: Request, filename: str) -> None:
        """Hand the finished file to the helper before apt moves or removes it."""
        helper = self.helper
        if helper is None:
            return
        try:
            fd = posix.open(filename, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC)
        except OSError:
            if req.sha256:
                self.drop_lease(req)
            return
        try:
            if not stat.S_ISREG(posix.fstat(fd).st_mode):
                if req.sha256:
                    self.drop_lease(req)
                return
            helper.post({"op": "harvest", "uri": release_key(req.uri), "sha256": req.sha256,
                         "name": _basename(filename), "release": req.release}, fd)
        except HelperGone as exc:
            self.fault(str(exc))
        finally:
            posix.close(fd)


def _host(uri: str) -> str:
    rest = uri.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1]


def real_method(argv: list[str]) -> str:
    """/usr/lib/apt/methods/<scheme> for the name we were run as (or the one given)."""
    name = _basename(argv[1] if len(argv) > 1 else argv[0])
    return f"{REAL_DIR}/{'https' if name == 'https' else 'http'}"


class _Prefixed:
    """apt's input, after the line the method wrapper read from it (readline only)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head: bytes | None = head
        self.rest = rest

    def readline(self) -> bytes:
        """The wrapper's line first, then apt's input."""
        head, self.head = self.head, None
        return head if head is not None else self.rest.readline()


_session: dict[str, Any] = {"child": None, "front": None}  # for _on_sigint


def _on_sigint(signum: int, frame: object) -> None:
    """apt's SIGINT: ignored once apt has sent a request (the front ends on end of file, after
    the real method); before that (apt's probe for the capabilities) the front ends now, and
    the real method with it, as the real method alone would."""
    front = _session["front"]
    if front is not None and front.seen:
        return
    if front is not None:
        front.closing = True  # the reader thread must not report the kill below as a death
    child = _session["child"]
    if child is not None:
        child.kill()
        child.wait()
    _exit(100)


def _real_after(real: str, head: bytes) -> None:
    """The front failed to start after the method wrapper read apt's first line (head): run
    the real method on head and then the rest of apt's input (a pipe this process fills), so
    it gets apt's whole configuration message; end as it ends. SIGINT stays ignored here
    (apt sends it once it closed our input: the real method ends on that end of file)."""
    r, w = posix.pipe()
    pid = posix.fork()
    if pid == 0:
        try:
            posix.close(w)
            posix.dup2(r, 0)
            posix.close(r)
            import _signal  # type: ignore[import-not-found]

            _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
            posix.execv(real, [real])
        finally:
            _exit(100)
    posix.close(r)
    try:
        data = head
        while data:
            view = memoryview(data)
            while view:
                view = view[posix.write(w, view):]
            data = posix.read(0, 65536)
    except OSError:
        pass  # the real method went away: its end is ours
    posix.close(w)
    _, status = posix.waitpid(pid, 0)
    code = posix.waitstatus_to_exitcode(status)
    _exit(code if code >= 0 else 128 - code)


REAL_ARG = "--real="  # the wrapper started the real method: --real=PID, its stdout on fd 3
REAL_FDS = (3, 4)     # and its stdin on fd 4 (debian/methods/http)


def front_main(argv: list[str]) -> int:
    """The method apt runs: relay to the real one, or become it on any fault."""
    argv = list(argv)
    started = argv.pop(2)[len(REAL_ARG):] if argv[2:3] and argv[2].startswith(REAL_ARG) else None
    real = real_method(argv)
    child = None
    import _signal  # type: ignore[import-not-found]  # signal without its enum import

    try:
        # The real method first: the wrapper's (started before this interpreter, so its start
        # ran alongside ours), else one started now; then everything else.
        if started is not None:
            child = Child.adopt(int(started) if started.isdigit() else 0, *REAL_FDS)
            started = None  # adopted, or its pipes closed (it ends at their end of file)
        # apt ends a method with SIGINT after closing its stdin: at once after the
        # capabilities when it only asked for them (its probe, the first of its two starts per
        # run), after the last answer otherwise. The front ends at once in the first case
        # (_on_sigint), and on that end of file once the real method has in the second, so
        # harvests handed over are not cut off. The real method keeps the default
        # (posix_spawn's setsigdef; the wrapper's starts with apt's, the default).
        _session["child"] = child
        _signal.signal(_signal.SIGINT, _on_sigint)
        # apt waits for the capabilities. The wrapper sent its copy of the remembered ones and
        # read apt's first line (argv's caps and first): if the real method's own are the same
        # bytes, there is nothing to learn (no memo is read here); else they follow and replace
        # them (Front.real_caps). Otherwise the remembered ones go out from here at once.
        stdin: Any = sys.stdin.buffer  # or _Prefixed (readline only)
        caps: bytes | None
        if len(argv) == 4:
            caps, memo_ok = argv[2].encode("utf-8", "surrogateescape"), True
            stdin = _Prefixed((argv[3] + "\n").encode("utf-8", "surrogateescape"), stdin)
            if child is None:
                child = _session["child"] = spawn_real(real)
        else:
            caps = cached_caps(real)
            memo_ok = caps is not None
            if caps is not None:
                sys.stdout.buffer.write(caps)
                sys.stdout.buffer.flush()
            if child is None:
                child = _session["child"] = spawn_real(real)
        front = Front(real, stdin, sys.stdout.buffer, spawn_child=lambda _real: child)
        front.caps_sent, front.caps_memo_ok = caps, memo_ok
        _session["front"] = front
    except Exception:  # noqa: BLE001 - at most the capabilities sent: become the real method
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
        if started is not None:  # the wrapper's real method, never adopted: its pipes closed
            for fd in REAL_FDS:
                try:
                    posix.close(fd)
                except OSError:
                    pass
        if child is not None:
            child.kill()
            child.wait()
        if len(argv) == 4:  # the wrapper read apt's first line: the real method gets it first
            _real_after(real, (argv[3] + "\n").encode("utf-8", "surrogateescape"))
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
        posix.execv(real, [real])
    rc = front.run()
    # apt waits for this process to end (twice per run: its capabilities probe, its worker);
    # all is written and the helper done: no interpreter teardown
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    _exit(rc)


# -- the helper: every cache operation ----------------------------------------------------------
class Helper:
    """Runs in its own process; owns the cache."""

    def __init__(self, sock: socket.socket) -> None:
        from cache_core import PackageCache, set_warning_handler, stamps

        self.sock = sock
        self.said: list[str] = []
        set_warning_handler(self._warn)
        identity = stamps.config_identity()  # before the config is read
        self.cache = PackageCache.from_config()
        cfg = self.cache.config
        stamps.remember_cache(identity, str(self.cache.root) if self.cache.enabled else None,
                              remote=bool(cfg and cfg.remote),
                              front_only=cfg is not None and cfg.option("apt_front_only") is True)
        if not self.cache.enabled:
            raise RuntimeError("cache disabled")  # the front relays everything
        self.stats: dict[str, int] = {}
        self.leases: dict[str, Any] = {}  # digest -> the open download_lease of a miss

    def _warn(self, message: str) -> None:
        if not self.said:  # one line per method process at most
            self.said.append(message)
            from cache_core import write_warning

            from .runwarn import first_of_run

            if first_of_run():  # and per apt run (hooks/apt/runwarn.py)
                write_warning(message)

    def run(self) -> None:
        """Serve the front's requests until it closes the socket."""
        import json
        import os
        import socket

        buf = b""
        fds: list[int] = []
        try:
            while True:
                try:
                    data, new_fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 16)
                except OSError:
                    break
                fds.extend(new_fds)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    req = json.loads(line)
                    fd = fds.pop(0) if req.get("op") == "harvest" and fds else None
                    self.handle(req, fd)
        finally:  # a fault in handle too: the leases end now, not at their expiry (others wait)
            for fd in fds:
                os.close(fd)
            for digest in list(self.leases):
                try:
                    self.end_lease(digest)
                except Exception:  # noqa: BLE001 - the lease then expires on its own
                    pass
        self.record()

    def reply(self, obj: dict[str, Any]) -> None:
        """Answer the front."""
        import json

        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def handle(self, req: dict[str, Any], fd: int | None) -> None:
        """Carry out one request of the front."""
        import os
        op = req.get("op")
        if os.environ.get(FAULT_ENV) == "helper-raise":
            raise RuntimeError("injected fault")
        if op == "serve":
            self.reply(self.serve(str(req["sha256"]), str(req["dest"]), req.get("size")))
        elif op == "drop":
            self.end_lease(str(req.get("sha256")))
        elif op == "release":
            self.reply(self.release(str(req["uri"]), str(req["dest"])))
        elif op == "harvest" and fd is not None:
            try:
                self.harvest(req, fd)
            finally:
                os.close(fd)
        elif op == "stats":
            for k, v in dict(req.get("stats") or {}).items():
                if isinstance(v, int):
                    self.stats[k] = self.stats.get(k, 0) + v

    def _dest_ok(self, dest: str) -> bool:
        import os
        parent = os.path.dirname(dest)
        try:
            st = os.lstat(parent)
        except OSError:
            return False
        return os.path.isabs(dest) and stat.S_ISDIR(st.st_mode)

    def _own_like_parent(self, dest: str) -> None:
        """apt's partial dirs belong to its sandbox user: the file does too, as with http."""
        import os
        try:
            st = os.lstat(os.path.dirname(dest))
            os.chown(dest, st.st_uid, st.st_gid, follow_symlinks=False)
            os.chmod(dest, 0o644, follow_symlinks=False)
        except (OSError, NotImplementedError):
            pass

    def serve(self, sha256: str, dest: str, size: object = None) -> dict[str, Any]:
        """Place the cached object with this digest at dest, if there is one (size: apt's
        expected size, which bounds what a remote may send)."""
        import os

        from cache_core import is_digest

        if not is_digest(sha256) or not self._dest_ok(dest):
            return {"ok": False}
        key = f"sha256:{sha256}"
        local = self.cache.exists(key)
        if not local and isinstance(size, int) and size > 0:
            remote = self.cache.remote  # without one: a counted local miss
            got = remote.get_object(sha256, size=size) if remote else self.cache.get(key)
            if got is None:
                busy = self.coalesce(sha256, size) if remote else None
                if busy is not False:
                    return {"ok": False, "busy": True} if busy else {"ok": False}
        if not self.cache.materialize_key(key, dest, mode="copy", sha256=sha256):
            return {"ok": False}
        self._own_like_parent(dest)
        placed = os.lstat(dest)
        self._note_copy(os.path.basename(dest), sha256, placed, hit=True)
        return {"ok": True, "size": placed.st_size, "source": "local" if local else "remote"}

    def _note_copy(self, name: str, sha256: str, st: os.stat_result, *, hit: bool) -> None:
        """The file name (stat st) holds the object's bytes: the harvest hook needs no hash."""
        from cache_core import stamps

        sdir = stamps.stamp_dir(str(self.cache.root), create=True)
        if sdir is not None:
            stamps.note_copy(sdir, name, sha256, st, hit=hit)

    def coalesce(self, sha256: str, size: int) -> bool | None:
        """A miss, coalesced with other processes and members missing it too (the store's lease,
        cache_core/storage/remote/lease.py), without waiting here: False when another delivered
        it meanwhile (serve it), True when another holds a live lease (the front asks again
        later), None when the real method downloads it (under this process's lease, if any,
        until the harvest or the failure ends it)."""
        remote = self.cache.remote
        if sha256 in self.leases or remote is None:
            return None
        import contextlib

        try:
            cm = remote.download_lease(sha256, wait=0, size=size)
            lease = cm.__enter__()
        except Exception:  # noqa: BLE001 - no coalescing, never an error
            return None
        if lease.path is not None or lease.busy:
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
            return True if lease.path is None else False
        self.leases[sha256] = cm
        return None

    def end_lease(self, sha256: str) -> None:
        """The download of sha256 is over (stored or failed): a held lease publishes what was
        stored and is released, so the waiting members take it or fall back at once."""
        cm = self.leases.pop(sha256, None)
        if cm is not None:
            try:
                cm.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - the lease expires on its own
                pass

    def release(self, uri: str, dest: str) -> dict[str, Any]:
        """Place the cached copy of a Release file (by URI) at dest, if there is one that is
        no older than the newest this machine has seen and was confirmed recently enough."""
        import os
        if not self._dest_ok(dest) or not self.cache.materialize_key(uri, dest, mode="copy"):
            return {"ok": False}
        why = self._release_refusal(uri, dest)
        if why is not None:
            try:
                os.unlink(dest)
            except OSError:
                pass
            self._warn(f"the cached {_leaf(uri)} of {_host(uri)} is not served ({why})")
            return {"ok": False}
        self._own_like_parent(dest)
        return {"ok": True, "size": os.lstat(dest).st_size}

    def _release_refusal(self, uri: str, dest: str) -> str | None:
        """Why the copy at dest must not be served (lists.fallback_refusal); None: serve it, and
        remember that this update got it from the cache (not a confirmation by the origin)."""
        import os

        from .aptenv import AptPaths
        from .lists import fallback_refusal, load_state, max_age, save_state

        try:
            fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(64 << 20)
            paths = AptPaths.load()
            state = load_state(paths)
        except (OSError, ImportError) as exc:  # no memory to check against: as without pkgcache
            return f"freshness unknown: {type(exc).__name__}"
        entry = self.cache.lookup(uri)
        why = fallback_refusal(data, uri, entry.meta if entry is not None else None, state,
                               max_age(self.cache))
        if why is None:
            state["fallback"][uri] = time.time()
            save_state(paths, state)
        return why

    def harvest(self, req: dict[str, Any], fd: int) -> None:
        """Store what the real method fetched, by the digest apt expected. Release files are
        not stored here: apt checks them after the method is done (hooks/apt/lists.py)."""
        import os

        from cache_core import stamps

        from .naming import is_safe_name, key_for

        if req.get("release"):
            return  # apt has not verified it yet: the post-update hook keeps what apt accepted
        sha = req.get("sha256")
        name = str(req.get("name") or "")
        try:
            if not isinstance(sha, str):
                return
            before = os.fstat(fd)
            deb = name.endswith(".deb") and is_safe_name(name)
            key = key_for(name) if deb else f"sha256:{sha}"
            # one copy, hashed as it is written, read through the descriptor the front opened
            got = self.cache.put(key, fd, sha256=sha, kind="deb" if deb else "apt-index")
            after = os.fstat(fd)
            if deb and got == sha and stamps.copy_of(before) == stamps.copy_of(after):
                self._note_copy(name, sha, after, hit=False)  # apt moves it into archives
        finally:
            if isinstance(sha, str):
                self.end_lease(sha)

    def record(self) -> None:
        """Add this method process's counts to the run's record (`pkgcache apt status`)."""
        import os
        if self.stats:
            run_id = os.environ.get("PKGCACHE_METHOD_RUN") or str(os.getppid())
            record_counts(self.cache, run_id, self.stats)


def record_counts(cache: PackageCache, run_id: str, stats: dict[str, int]) -> None:
    """Add one method process's counts to apt run run_id's record (`pkgcache apt status`)."""
    from .aptenv import read_state, write_state

    with cache.lock("apt-method-stats", timeout=10):
        state = read_state(cache, "status.json")
        last = state.get("method") or {}
        if last.get("run") != run_id or time.time() - float(last.get("time", 0)) > 3600:
            last = {"run": run_id, "counts": {}}
        counts = last.setdefault("counts", {})
        for k, v in stats.items():
            counts[k] = int(counts.get(k, 0)) + v
        last["time"] = time.time()
        state["method"] = last
        write_state(cache, "status.json", state)


def fold_front_counts(cache: PackageCache) -> None:
    """Counts of fronts that served everything themselves (no helper to record them; see
    LocalObjects.save_counts) join their runs' records."""
    import os

    from cache_core import stamps

    sdir = stamps.stamp_dir(str(cache.root))
    runs = os.path.join(sdir, "runs") if sdir else None
    try:
        names = os.listdir(runs) if runs else []
    except OSError:
        return
    for name in names:
        if not name.endswith(".counts"):
            continue
        path = os.path.join(str(runs), name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                text = fh.read(4096).decode("ascii", "replace")
            os.unlink(path)
        except OSError:
            continue
        counts = {}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k and v.strip().isdigit():
                counts[k] = int(v)
        if counts:
            record_counts(cache, name.split("-", 2)[1], counts)


def helper_main(fd: int) -> int:
    """The helper process: serve the front on the socket fd. A terminal's Ctrl-C (to the whole
    process group) is apt's to handle: the helper ends when the front closes the socket, its
    harvests stored."""
    import signal
    import socket

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    try:
        Helper(sock).run()
    except BaseException:  # noqa: BLE001 - the front notices (closed socket) and relays
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: the front, or the helper with ``--helper FD``."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) == 3 and argv[1] == "--helper":
        return helper_main(int(argv[2]))
    return front_main(argv)


if __name__ == "__main__":
    sys.exit(main())
