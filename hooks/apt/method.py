"""pkgcache's apt download method for http/https (installed as /usr/lib/pkgcache/methods/http
and selected with ``Dir::Bin::Methods::http``/``https``).

Two processes. The *front* is what apt runs: it speaks apt's method protocol (messages of
``NNN Text`` + ``Field: value`` lines ended by a blank line, see apt's doc/method.dbk and
apt-pkg/acquire-method.cc) and relays everything, unchanged, to the real method
(/usr/lib/apt/methods/http or https) that it starts as its child, so proxies, auth.conf,
redirects and pipelining stay apt's. It imports nothing from cache_core. Every cache operation
happens in a *helper* process (``method.py --helper``) reached over a socketpair:

* ``600 URI Acquire`` with ``Expected-SHA256`` (debs, index files): the helper places a verified
  copy of the object with that digest (local store, then the remote tier) at apt's Filename; the
  front answers ``200 URI Start`` + ``201 URI Done`` without hash fields, so apt hashes the file
  itself against the signed index. A miss is relayed to the real method.
* a ``201 URI Done`` from the real method for a request with an expected digest: the front opens
  the file before apt sees the message and passes the descriptor to the helper, which stores it
  only if it has the digest apt expected (the upload to the remote follows in the background).
* ``InRelease``/``Release``/``Release.gpg``: always the origin. What it returns is kept (by URL,
  with a record for the remote); only when the origin cannot be reached is the last cached copy
  served, with one line saying so; apt checks its signature and Valid-Until as always.

Any fault (helper dead, slow, wrong answer, an exception in the front) ends pkgcache's part for
the whole session: from then on the front only relays bytes between apt and the real method.
A fault before the session starts execs the real method.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import IO, Any
from urllib.parse import unquote

REAL_DIR = "/usr/lib/apt/methods"
RELEASE_NAMES = ("InRelease", "Release", "Release.gpg")
# The real method's FailReason values that mean "the origin cannot be reached".
UNREACHABLE = {"ConnectionRefused", "ConnectionTimedOut", "Timeout", "ResolveFailure",
               "TmpResolveFailure"}
HELPER_TIMEOUT = 300.0    # one serve (a remote fetch has its own, shorter budgets)
HELPER_DRAIN = 60.0       # at the end: harvests still being stored
FAULT_ENV = "PKGCACHE_METHOD_TEST_FAULT"  # tests only: front-init, front-raise, helper-raise


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


@dataclass
class Pending:
    """A request relayed to the real method that pkgcache wants to see finish."""

    uri: str
    filename: str
    sha256: str | None
    release: bool


@dataclass
class Stats:
    """What served what in this method process."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, source: str, size: int) -> None:
        """Count one file served from source (and its bytes)."""
        self.counts[source] = self.counts.get(source, 0) + 1
        self.counts[source + "_bytes"] = self.counts.get(source + "_bytes", 0) + max(0, size)


class HelperGone(Exception):
    """The helper died, timed out or answered nonsense."""


class HelperClient:
    """The front's end of the socketpair to the helper process."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = mine
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
        env.setdefault("PKGCACHE_METHOD_RUN", str(os.getppid()))  # apt's pid: one run
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hooks.apt.method", "--helper", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env=env, cwd="/")
        theirs.close()
        self.lock = threading.Lock()
        self.buf = b""

    def _send(self, obj: dict[str, Any], fds: list[int] | None = None) -> None:
        data = (json.dumps(obj) + "\n").encode()
        try:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise HelperGone(str(exc)) from None

    def _recv(self, timeout: float) -> dict[str, Any]:
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

    def call(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Send a request to the helper and wait for its answer."""
        with self.lock:
            self._send(obj)
            return self._recv(HELPER_TIMEOUT)

    def post(self, obj: dict[str, Any], fd: int) -> None:
        """Send a request and a file descriptor to the helper, without waiting."""
        with self.lock:
            self._send(obj, [fd])

    def finish(self, stats: dict[str, Any]) -> None:
        """Hand the run's counters to the helper and let it end."""
        with self.lock:
            try:
                self._send({"op": "stats", "stats": stats})
                self.sock.shutdown(socket.SHUT_WR)
            except (OSError, HelperGone):
                pass
        try:
            self.proc.wait(HELPER_DRAIN)
        except subprocess.TimeoutExpired:
            pass  # it finishes on its own; apt is not kept waiting longer

    def kill(self) -> None:
        """End the helper process (it holds nothing apt needs)."""
        try:
            self.proc.kill()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass


class Front:
    """The process apt talks to."""

    def __init__(self, real: str, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        if os.environ.get(FAULT_ENV) == "front-init":
            raise RuntimeError("injected fault")
        self.real = real
        self.stdin = stdin
        self.stdout = stdout
        self.out_lock = threading.Lock()
        self.relay_only = False
        self.pending: dict[str, Pending] = {}
        self.stats = Stats()
        self.helper: HelperClient | None = None
        self.child = subprocess.Popen([real], executable=real, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, bufsize=0)
        self.closing = False

    def start_helper(self) -> None:
        """Start the helper at the first request (apt's capability probe never sends one)."""
        if self.helper is not None or self.relay_only:
            return
        if os.geteuid() != 0 or os.environ.get("PKGCACHE_DISABLE"):
            self.relay_only = True  # a user's `apt-get download`: the root cache is not theirs
            return
        try:
            self.helper = HelperClient()
        except Exception as exc:  # noqa: BLE001 - no helper: a plain relay
            self.fault(type(exc).__name__)

    # -- output ---------------------------------------------------------------------------
    def to_apt(self, msg: Message) -> None:
        """Write a message to apt."""
        with self.out_lock:
            self.stdout.write(msg.raw())
            self.stdout.flush()

    def to_child(self, msg: Message) -> None:
        """Write a message to the real method."""
        assert self.child.stdin is not None
        try:
            self.child.stdin.write(msg.raw())
            self.child.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the real method died: its end of file reaches apt through the reader

    def fault(self, why: str) -> None:
        """pkgcache's part ends here; the rest of the session is a plain relay."""
        if self.relay_only:
            return
        self.relay_only = True
        if self.helper is not None:
            self.helper.kill()
        # Requests the front was holding are the real method's now.
        self.pending.clear()

    # -- apt -> real method ---------------------------------------------------------------
    def run(self) -> int:
        """Relay apt's messages to the real method until apt closes stdin; the exit code."""
        reader = threading.Thread(target=self.read_child, daemon=True)
        reader.start()
        while True:
            msg = read_message(self.stdin)
            if msg is None:
                break
            handled = False
            if msg.code == 600 and not self.relay_only:
                try:
                    self.start_helper()
                    handled = self.acquire(msg)
                except Exception as exc:  # noqa: BLE001 - never break apt
                    self.fault(type(exc).__name__)
                    handled = False
            if not handled:
                self.to_child(msg)
        self.closing = True
        try:
            if self.child.stdin is not None:
                self.child.stdin.close()
        except OSError:
            pass
        reader.join()
        rc = self.child.wait()
        if self.helper is not None and not self.relay_only:
            self.helper.finish(self.stats.counts)
        return rc

    def acquire(self, msg: Message) -> bool:
        """True when pkgcache answered the request itself."""
        uri, filename = msg.get("URI"), msg.get("Filename")
        if not uri or not filename:
            return False
        if os.environ.get(FAULT_ENV) == "front-raise":
            raise RuntimeError("injected fault")
        sha = (msg.get("Expected-SHA256") or "").lower() or None
        leaf = _leaf(uri)
        if leaf in RELEASE_NAMES:
            self.pending[_norm(uri)] = Pending(uri, filename, None, True)
            return False
        if sha is None or self.helper is None:
            return False
        try:
            size = msg.get("Expected-Checksum-FileSize") or ""
            ans = self.helper.call({"op": "serve", "sha256": sha, "dest": filename,
                                    "size": int(size) if size.isdigit() else None})
        except HelperGone as exc:
            self.fault(str(exc))
            return False
        if ans.get("ok") is True and isinstance(ans.get("size"), int):
            self.answer_done(uri, filename, ans["size"])
            self.stats.add(str(ans.get("source", "local")), ans["size"])
            return True
        if ans.get("ok") is not False:
            self.fault("bad answer")
            return False
        self.pending[_norm(uri)] = Pending(uri, filename, sha, False)
        return False

    def answer_done(self, uri: str, filename: str, size: int) -> None:
        """As apt's http method answers, minus the hash fields: apt hashes the file itself."""
        try:
            mtime = os.stat(filename).st_mtime
        except OSError:
            mtime = time.time()
        when = formatdate(mtime, usegmt=True)
        self.to_apt(Message.build("200 URI Start", [("URI", uri), ("Size", str(size)),
                                                    ("Last-Modified", when)]))
        self.to_apt(Message.build("201 URI Done", [("URI", uri), ("Filename", filename),
                                                   ("Size", str(size)),
                                                   ("Last-Modified", when)]))

    # -- real method -> apt ---------------------------------------------------------------
    def read_child(self) -> None:
        """Relay the real method's messages to apt (a thread), taking cached files on the way."""
        assert self.child.stdout is not None
        while True:
            msg = read_message(self.child.stdout)
            if msg is None:
                break
            out: Message | None = msg
            if not self.relay_only:
                try:
                    out = self.from_child(msg)
                except Exception as exc:  # noqa: BLE001
                    self.fault(type(exc).__name__)
                    out = msg
            if out is not None:
                self.to_apt(out)
        if not self.closing:
            # The real method died under apt: so does its front (apt reports it as usual).
            try:
                self.stdout.flush()
            except OSError:
                pass
            os._exit(self.child.wait() or 100)

    def from_child(self, msg: Message) -> Message | None:
        """What to tell apt for a message of the real method (None: nothing)."""
        code = msg.code
        uri = msg.get("URI")
        if uri is None or code not in (103, 201, 400):
            return msg
        key = _norm(uri)
        if code == 103:
            self.pending.pop(key, None)
            return msg
        req = self.pending.get(key)
        if req is None:
            return msg
        if code == 201:
            self.pending.pop(key, None)
            size = int(msg.get("Size") or 0) if (msg.get("Size") or "0").isdigit() else 0
            if (msg.get("IMS-Hit") or "").lower() == "true":
                self.stats.add("origin_unchanged", 0)
                return msg
            self.stats.add("origin", size)
            self.harvest(req, msg.get("Filename") or req.filename)
            return msg
        # 400 URI Failure
        self.pending.pop(key, None)
        if req.release and self.helper is not None and \
                (msg.get("FailReason") or "") in UNREACHABLE:
            try:
                ans = self.helper.call({"op": "release", "uri": release_key(req.uri),
                                        "dest": req.filename})
            except HelperGone as exc:
                self.fault(str(exc))
                return msg
            if ans.get("ok") is True and isinstance(ans.get("size"), int):
                sys.stderr.write(f"pkgcache: {_host(uri)} unreachable; serving the cached "
                                 f"{_leaf(uri)} (apt checks its signature and Valid-Until)\n")
                sys.stderr.flush()
                self.stats.add("release_fallback", ans["size"])
                self.answer_done(req.uri, req.filename, ans["size"])
                return None
        return msg

    def harvest(self, req: Pending, filename: str) -> None:
        """Hand the finished file to the helper before apt moves or removes it."""
        try:
            fd = os.open(filename, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or self.helper is None:
                return
            self.helper.post({"op": "harvest", "uri": release_key(req.uri), "sha256": req.sha256,
                              "name": os.path.basename(filename), "release": req.release}, fd)
        except HelperGone as exc:
            self.fault(str(exc))
        finally:
            os.close(fd)


def _host(uri: str) -> str:
    rest = uri.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1]


def real_method(argv: list[str]) -> str:
    """/usr/lib/apt/methods/<scheme> for the name we were run as (or the one given)."""
    name = os.path.basename(argv[1] if len(argv) > 1 else argv[0])
    return os.path.join(REAL_DIR, "https" if name == "https" else "http")


def front_main(argv: list[str]) -> int:
    """The method apt runs: relay to the real one, or become it on any fault."""
    real = real_method(argv)
    try:
        import signal

        front = Front(real, sys.stdin.buffer, sys.stdout.buffer)
        # apt ends a method with SIGINT after closing its stdin; the front ends on that end of
        # file once the real method has, so harvests handed over are not cut off. (Set after
        # the real method started: it keeps apt's signal dispositions.)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except Exception:  # noqa: BLE001 - nothing sent yet: become the real method
        os.execv(real, [real])
    return front.run()


# -- the helper: every cache operation ----------------------------------------------------------
class Helper:
    """Runs in its own process; owns the cache."""

    def __init__(self, sock: socket.socket) -> None:
        from cache_core import PackageCache, set_warning_handler

        self.sock = sock
        self.said: list[str] = []
        set_warning_handler(self._warn)
        self.cache = PackageCache.from_config()
        if not self.cache.enabled:
            raise RuntimeError("cache disabled")  # the front relays everything
        self.stats: dict[str, int] = {}

    def _warn(self, message: str) -> None:
        if not self.said:  # one line per method process at most
            self.said.append(message)
            from cache_core import write_warning

            write_warning(message)

    def run(self) -> None:
        """Serve the front's requests until it closes the socket."""
        buf = b""
        fds: list[int] = []
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
        for fd in fds:
            os.close(fd)
        self.record()

    def reply(self, obj: dict[str, Any]) -> None:
        """Answer the front."""
        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def handle(self, req: dict[str, Any], fd: int | None) -> None:
        """Carry out one request of the front."""
        op = req.get("op")
        if os.environ.get(FAULT_ENV) == "helper-raise":
            raise RuntimeError("injected fault")
        if op == "serve":
            self.reply(self.serve(str(req["sha256"]), str(req["dest"]), req.get("size")))
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
        parent = os.path.dirname(dest)
        try:
            st = os.lstat(parent)
        except OSError:
            return False
        return os.path.isabs(dest) and stat.S_ISDIR(st.st_mode)

    def _own_like_parent(self, dest: str) -> None:
        """apt's partial dirs belong to its sandbox user: the file does too, as with http."""
        try:
            st = os.lstat(os.path.dirname(dest))
            os.chown(dest, st.st_uid, st.st_gid, follow_symlinks=False)
            os.chmod(dest, 0o644, follow_symlinks=False)
        except (OSError, NotImplementedError):
            pass

    def serve(self, sha256: str, dest: str, size: object = None) -> dict[str, Any]:
        """Place the cached object with this digest at dest, if there is one (size: apt's
        expected size, which bounds what a remote may send)."""
        from cache_core import is_digest

        if not is_digest(sha256) or not self._dest_ok(dest):
            return {"ok": False}
        key = f"sha256:{sha256}"
        local = self.cache.exists(key)
        if not local and isinstance(size, int) and size > 0:
            from cache_core.storage import remote

            if remote.get_object(self.cache, sha256, size=size) is None:
                return {"ok": False}
        if not self.cache.materialize_key(key, dest, mode="copy", sha256=sha256):
            return {"ok": False}
        self._own_like_parent(dest)
        return {"ok": True, "size": os.lstat(dest).st_size,
                "source": "local" if local else "remote"}

    def release(self, uri: str, dest: str) -> dict[str, Any]:
        """Place the cached copy of an index file (by URI) at dest, if there is one."""
        if not self._dest_ok(dest) or not self.cache.materialize_key(uri, dest, mode="copy"):
            return {"ok": False}
        self._own_like_parent(dest)
        return {"ok": True, "size": os.lstat(dest).st_size}

    def harvest(self, req: dict[str, Any], fd: int) -> None:
        """Store what the real method fetched: by the digest apt expected, or (Release files)
        by URL, with a record so the fleet can serve it when the origin is gone."""
        import tempfile

        from cache_core.storage import remote

        from .naming import is_safe_name, key_for

        sha = req.get("sha256")
        uri = str(req.get("uri") or "")
        name = str(req.get("name") or "")
        tmpdir = self.cache.bucket("apt-method")
        fdo, tmp = tempfile.mkstemp(dir=tmpdir, prefix=".harvest-")
        try:
            with os.fdopen(fdo, "wb") as out:
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            if req.get("release"):
                if self.cache.put(uri, tmp, kind="apt-release", link=True):
                    remote.put_record(self.cache, uri)
                return
            if not isinstance(sha, str):
                return
            deb = name.endswith(".deb") and is_safe_name(name)
            key = key_for(name) if deb else f"sha256:{sha}"
            self.cache.put(key, tmp, sha256=sha, kind="deb" if deb else "apt-index", link=True)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def record(self) -> None:
        """Add this method process's counts to the run's record (`pkgcache apt status`)."""
        from .aptenv import read_state, write_state

        if not self.stats:
            return
        run_id = os.environ.get("PKGCACHE_METHOD_RUN") or str(os.getppid())
        with self.cache.lock("apt-method-stats", timeout=10):
            state = read_state(self.cache, "status.json")
            last = state.get("method") or {}
            if last.get("run") != run_id or time.time() - float(last.get("time", 0)) > 3600:
                last = {"run": run_id, "counts": {}}
            counts = last.setdefault("counts", {})
            for k, v in self.stats.items():
                counts[k] = int(counts.get(k, 0)) + v
            last["time"] = time.time()
            state["method"] = last
            write_state(self.cache, "status.json", state)


def helper_main(fd: int) -> int:
    """The helper process: serve the front on the socket fd."""
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
