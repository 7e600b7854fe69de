"""The method's front starts at every apt run (issue 24): the standard library's minimum at start,
and the helper (cache_core, SQLite, the config) only at the first request it can serve. A
request it will not serve goes straight to the real method."""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from cache_core import statepath
from hooks.apt import method
from hooks.apt.method import Front, Message, read_message
from tests.apt_method.test_front_offline import CopiesHelper
from tests.apt_method.test_front_random import FakeChild
from tests.support import REPO
from tests.support.http import serve_dir

FRONT = REPO / "hooks" / "apt" / "method.py"
# Modules the front must not import before it has something to serve (each costs ms at every
# apt run: json and re pull in enum and re's compiler, typing, dataclasses inspect and ast;
# threading functools, collections and more).
LATE = ("json", "socket", "subprocess", "re", "typing", "dataclasses", "email", "urllib",
        "inspect", "cache_core", "hooks", "yaml", "sqlite3", "apt_pkg", "threading")
# Nor, on the wrapper's path of apt's worker (the memo sent by the wrapper), os and what it
# loads (_collections_abc's ABCs: ~1 ms): the front uses posix.
WORKER_LATE = (*LATE, "os", "_collections_abc", "posixpath")


def test_the_front_starts_on_the_standard_library_minimum() -> None:
    real = "/usr/lib/apt/methods/http"
    if not os.access(real, os.X_OK):
        pytest.skip("no apt http method here")
    res = subprocess.run(["/usr/bin/python3", "-I", "-S", "-X", "importtime", str(FRONT), "http"],
                         stdin=subprocess.DEVNULL, capture_output=True, cwd="/", timeout=60)
    plain = subprocess.run([real], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert res.returncode == plain.returncode  # apt closed stdin: ends as the real method does
    assert res.stdout == plain.stdout  # its capabilities, relayed unchanged
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in res.stderr.decode().splitlines() if line.startswith("import time:")}
    assert imported and not imported & set(LATE), sorted(imported & set(LATE))


def test_the_shipped_wrapper_runs_the_front_from_its_compiled_bytecode(tmp_path: Path) -> None:
    """apt starts the method twice per run (its capabilities probe, then its worker): the
    wrapper loads method.py from __pycache__ rather than compiling it at every start."""
    real = "/usr/lib/apt/methods/http"
    if not os.access(real, os.X_OK):
        pytest.skip("no apt http method here")
    (tmp_path / "share/hooks/apt").mkdir(parents=True)
    shutil.copy(FRONT, tmp_path / "share/hooks/apt/method.py")
    text = (REPO / "debian" / "methods" / "http").read_text()
    text = text.replace("/usr/share/pkgcache", str(tmp_path / "share"))
    text = text.replace("exec /usr/bin/python3 ", "exec /usr/bin/python3 -v ")  # says what it loads
    wrapper = tmp_path / "http"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    plain = subprocess.run([real], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    for _ in range(2):  # the first start writes the bytecode (as py3compile does for the .deb)
        res = subprocess.run([str(wrapper)], stdin=subprocess.DEVNULL, capture_output=True,
                             cwd="/", timeout=60)
        assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout)
    pyc = tmp_path / "share/hooks/apt/__pycache__"
    assert f"code object from '{pyc}/method.".encode() in res.stderr, res.stderr[-2000:]


@pytest.mark.root  # the front's own process must be root (this module fakes geteuid in-process)
def test_the_real_methods_capabilities_are_remembered_and_sent_at_once(tmp_path: Path) -> None:
    """apt waits for the capabilities at both starts of the method per run: the front sends
    the ones the real method sent last time (keyed by the stat of its binary and every file it
    had mapped) before the real method has started; different ones from the real method
    still reach apt, and replace the memo; a stamp that changed is no memo."""
    real = "/usr/lib/apt/methods/http"
    if not os.access(real, os.X_OK):
        pytest.skip("needs root and apt's http method")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    env = dict(os.environ, PKGCACHE_STATE_DIR=str(state))
    memo = state / f"{method.CAPS_FILE}-http"  # one per method (https has its own)

    def front(messages: int = 1) -> bytes:
        """As apt's probe: read the capabilities (messages), close stdin, SIGINT, wait; the
        output."""
        proc = subprocess.Popen(["/usr/bin/python3", "-I", "-S", str(FRONT), "http"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd="/")
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        got = b""
        while got.count(b"\n\n") < messages:
            line = proc.stdout.readline()
            assert line, got
            got += line
        proc.stdin.close()
        proc.send_signal(signal.SIGINT)
        rest, err = proc.stdout.read(), proc.stderr.read()
        assert proc.wait(60) == 100 and err == b"", err
        return got + rest

    plain = subprocess.run([real], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert front() == plain.stdout and memo.exists()  # learnt
    head, _, caps = memo.read_bytes().partition(b"\n\n")
    assert caps == plain.stdout and b"libapt-pkg" in head and oct(memo.stat().st_mode)[-3:] == "600"
    assert front() == plain.stdout  # from the memo: once, and the same bytes
    marked = caps.replace(b"\n\n", b"\nX-Memo: yes\n\n")
    memo.write_bytes(head + b"\n\n" + marked)
    assert front(2) == marked + plain.stdout  # the memo went first; the real ones followed
    assert memo.read_bytes().partition(b"\n\n")[2] == plain.stdout  # and replaced it
    lines = head.split(b"\n")
    stale = lines[:2] + [lines[2].rsplit(b" ", 1)[0] + b" 1"] + lines[3:]  # a changed ctime
    memo.write_bytes(b"\n".join(stale) + b"\n\n" + marked)
    assert front() == plain.stdout


@pytest.mark.root  # the memo is root's (the front keeps none for another user)
def test_the_wrapper_answers_apts_probe_with_no_interpreter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt's first start of a method per run only reads the capabilities: once the front has
    learnt them, the shipped wrapper sends them itself and no Python starts; at apt's second
    start it hands apt's first line and what it sent to the front, which serves the run and
    sends the capabilities no second time. A wrapper's copy that no longer holds (the real
    method's files changed) still reaches apt first, the real ones follow and replace it."""
    real = "/usr/lib/apt/methods/http"
    if not os.access(real, os.X_OK):
        pytest.skip("needs apt's http method")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    text = (REPO / "debian" / "methods" / "http").read_text()
    monkeypatch.delenv(statepath.STATE_ENV, raising=False)
    assert f"state={statepath.raw_path()} " in text  # root's state dir, as the front's
    text = text.replace("/usr/share/pkgcache", str(REPO)).replace("/var/lib/pkgcache", str(state))
    text = text.replace("exec /usr/bin/python3 ", "exec /usr/bin/python3 -X importtime ")
    wrapper = tmp_path / "http"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    env = dict(os.environ, PKGCACHE_STATE_DIR=str(state))
    msg = state / f"{method.CAPS_FILE}-http{method.CAPS_MSG}"
    plain = subprocess.run([real], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

    def start(*messages: bytes) -> tuple[bytes, bool]:
        """As apt: read the capabilities, send messages, close stdin once answered (the probe:
        at once, then SIGINT); the output, and whether Python ran."""
        proc = subprocess.Popen([str(wrapper)], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        got = b""
        while not got.endswith(b"\n\n"):
            line = proc.stdout.readline()
            assert line, (got, proc.stderr.read()[-2000:])
            got += line
        for m in messages:
            proc.stdin.write(m)
            proc.stdin.flush()
        while messages and not re.search(rb"\n(201|400) URI", got):
            line = proc.stdout.readline()  # apt closes the input once its requests are done
            assert line, (got, proc.stderr.read()[-2000:])
            got += line
        proc.stdin.close()
        if not messages:
            proc.send_signal(signal.SIGINT)
        rest, err = proc.stdout.read(), proc.stderr.read()
        proc.wait(60)
        return got + rest, b"import time:" in err

    assert start() == (plain.stdout, True) and msg.read_bytes() == plain.stdout  # learnt
    assert start() == (plain.stdout, False)  # the probe: from the wrapper alone
    site = tmp_path / "site"
    site.mkdir()
    (site / "f").write_bytes(b"payload")
    dest = tmp_path / "got"
    with serve_dir(site) as origin:
        work = (b"601 Configuration\nConfig-Item: APT::Sandbox::User=root\n\n"
                + f"600 URI Acquire\nURI: {origin.base}f\nFilename: {dest}\n\n".encode())
        out, ran = start(work)
        assert ran and out.count(b"100 Capabilities") == 1 and b"\n201 URI Done" in out, out
        assert dest.read_bytes() == b"payload"
        marked = plain.stdout.replace(b"\n\n", b"\nX-Memo: yes\n\n")
        msg.write_bytes(marked)  # a copy that is not the memo's (as after an apt upgrade)
        dest.unlink()
        out, ran = start(work)
        assert out.startswith(marked + plain.stdout) and b"\n201 URI Done" in out, out
        assert dest.read_bytes() == b"payload" and msg.read_bytes() == plain.stdout  # replaced
        # the front fails to start after the wrapper read apt's first line: the real method
        # still gets apt's whole configuration (here its User-Agent), and answers once
        dest.unlink()
        env[method.FAULT_ENV] = "front-init"
        origin.hits.clear()
        out, _ = start(work.replace(b"Config-Item: ", b"Config-Item: Acquire::http::User-Agent="
                                    b"pkgcache-test\nConfig-Item: ", 1))
        assert out.count(b"\n201 URI Done") == 1 and dest.read_bytes() == b"payload", out
        assert [{k.lower(): v for k, v in h.headers.items()}.get("user-agent")
                for h in origin.hits] == ["pkgcache-test"], [h.headers for h in origin.hits]


def _shipped_wrapper(tmp_path: Path, state: Path, *, flags: str = "") -> Path:
    """debian/methods/http on this checkout, with state as root's state dir (python3 run with
    flags)."""
    text = (REPO / "debian" / "methods" / "http").read_text()
    text = text.replace("/usr/share/pkgcache", str(REPO)).replace("/var/lib/pkgcache", str(state))
    text = text.replace("exec /usr/bin/python3 ", f"exec /usr/bin/python3 {flags} ")
    wrapper = tmp_path / "http"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.root  # the memo is root's (the wrapper sends it only then)
def test_the_wrapper_starts_the_real_method_before_the_interpreter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At apt's worker start the real method's own start (libapt-pkg and its libraries, ms)
    runs alongside the interpreter's: the wrapper starts it as a coprocess and the front
    adopts it (one real method, with SIGINT at its default as apt starts methods), and the
    front loads neither threading nor os."""
    real = "/usr/lib/apt/methods/http"
    if not os.access(real, os.X_OK):
        pytest.skip("needs apt's http method")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.delenv(statepath.STATE_ENV, raising=False)
    wrapper = _shipped_wrapper(tmp_path, state, flags="-X importtime")
    env = dict(os.environ, PKGCACHE_STATE_DIR=str(state))
    learn = subprocess.Popen([str(wrapper)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/")
    assert learn.stdout is not None and learn.stdin is not None
    assert learn.stdout.readline() == b"100 Capabilities\n"  # learnt before it is passed on
    learn.stdin.close()
    learn.send_signal(signal.SIGINT)  # apt's probe
    learn.wait(60)
    assert (state / f"{method.CAPS_FILE}-http{method.CAPS_MSG}").exists()
    site = tmp_path / "site"
    site.mkdir()
    (site / "f").write_bytes(b"payload")
    dest = tmp_path / "got"
    with serve_dir(site) as origin:
        proc = subprocess.Popen([str(wrapper)], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        got = b""
        while not got.endswith(b"\n\n"):
            got += proc.stdout.readline()
        proc.stdin.write(b"601 Configuration\nConfig-Item: APT::Sandbox::User=root\n\n"
                         + f"600 URI Acquire\nURI: {origin.base}f\nFilename: {dest}\n\n".encode())
        proc.stdin.flush()
        while b"\n201 URI Done" not in got and b"\n400 URI" not in got:
            line = proc.stdout.readline()
            assert line, (got, proc.stderr.read()[-2000:])
            got += line
        args = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        adopted = [a for a in args if a.startswith(method.REAL_ARG.encode())]
        assert len(adopted) == 1, args[:8]
        pid = adopted[0][len(method.REAL_ARG):].decode()
        assert children == [pid] and os.readlink(f"/proc/{pid}/exe") == real
        sigign = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith("SigIgn:"))
        assert not int(sigign.split()[1], 16) & (1 << (signal.SIGINT - 1)), sigign
        proc.stdin.close()
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        assert proc.wait(60) == 100
    assert got.count(b"100 Capabilities") == 1 and b"\n201 URI Done" in got, got
    assert dest.read_bytes() == b"payload"
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in err.decode().splitlines() if line.startswith("import time:")}
    assert imported and not imported & set(WORKER_LATE), sorted(imported & set(WORKER_LATE))


def test_a_real_method_not_this_processs_child_is_not_adopted(tmp_path: Path) -> None:
    """--real= names a process and two pipes: anything else (not a child of the front, not
    pipes) is not taken, and the pipes are closed (the wrapper's real method ends on that)."""
    r, w = os.pipe()
    assert method.Child.adopt(1, r, w) is None  # init: never the front's child
    for fd in (r, w):
        with pytest.raises(OSError):
            os.fstat(fd)
    sleeper = subprocess.Popen(["/bin/sleep", "60"])
    try:
        with open(tmp_path / "f", "wb") as fh:
            r, w = os.pipe()
            os.close(w)
            assert method.Child.adopt(sleeper.pid, r, os.dup(fh.fileno())) is None  # no pipe
            r, w = os.pipe()
            child = method.Child.adopt(sleeper.pid, r, w)
            assert child is not None and child.poll() is None
            assert not os.get_inheritable(r) and not os.get_inheritable(w)
            child.kill()
            assert child.wait(10) == -signal.SIGKILL
    finally:
        sleeper.kill()


class DoneChild(FakeChild):
    """The real method: every request done."""

    def _answer(self, msg: Message) -> bool:
        uri, name = msg.get("URI"), msg.get("Filename") or ""
        Path(name).write_bytes(b"data")
        self._send("200 URI Start", f"URI: {uri}", "Size: 4")
        self._send("201 URI Done", f"URI: {uri}", f"Filename: {name}", "Size: 4")
        return True


def _session(tmp_path: Path, requests: list[str]) -> tuple[list[Message], list[int]]:
    """apt sends requests (URI and an optional Expected-SHA256); the answers, and how many
    helpers the front started."""
    started: list[int] = []

    def helper():  # a fake helper that has nothing cached
        started.append(1)
        return CopiesHelper(set()).client

    a_in, f_in = os.pipe()
    f_out, a_out = os.pipe()
    front = Front("/fake/http", os.fdopen(a_in, "rb"), os.fdopen(a_out, "wb"),
                  spawn_child=lambda real: DoneChild(random.Random(3), tmp_path),
                  spawn_helper=helper)
    runner = threading.Thread(target=front.run, daemon=True)
    runner.start()
    apt_w = os.fdopen(f_in, "wb", buffering=0)
    apt_r = os.fdopen(f_out, "rb")
    got: list[Message] = []
    for i, req in enumerate(requests):
        uri, _, sha = req.partition(" ")
        extra = f"Expected-SHA256: {sha}\n" if sha else ""
        apt_w.write(f"600 URI Acquire\nURI: {uri}\nFilename: {tmp_path}/f{i}\n{extra}\n".encode())
        while len([m for m in got if m.code in method.FINAL]) < i + 1:
            m = read_message(apt_r)
            assert m is not None
            got.append(m)
    apt_w.close()
    runner.join(10)
    return got, started


@pytest.fixture(autouse=True)
def _as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(method.posix, "geteuid", lambda: 0)
    monkeypatch.setattr(method.sys, "stderr", io.StringIO())


def test_no_helper_for_a_run_with_nothing_to_serve(tmp_path: Path) -> None:
    """A warm `apt-get update` asks for the Release files only (unchanged: apt asks for no
    index): the front relays them and never starts the helper."""
    got, started = _session(tmp_path, ["http://h/d/dists/a/InRelease",
                                       "http://h/d/dists/a/Release.gpg",
                                       "http://h/d/pool/x.changelog"])
    assert len([m for m in got if m.code in method.FINAL]) == 3
    assert started == []


def test_the_helper_starts_at_the_first_request_it_can_serve(tmp_path: Path) -> None:
    got, started = _session(tmp_path, ["http://h/d/dists/a/InRelease",
                                       "http://h/d/pool/x_1_all.deb " + "ab" * 32,
                                       "http://h/d/pool/y_1_all.deb " + "cd" * 32])
    assert len([m for m in got if m.code in method.FINAL]) == 3
    assert started == [1]


@pytest.mark.root  # the memo is root's
def test_each_method_has_its_own_capabilities_memo(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Sources on http and https in one run: each method's capabilities stay its own."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    sleeper = subprocess.Popen(["/bin/sleep", "60"])
    try:
        caps = {name: f"100 Capabilities\nVersion: 1.2\nX-Method: {name}\n\n".encode()
                for name in ("http", "https")}
        for name, msg in caps.items():
            method.learn_caps(f"/usr/lib/apt/methods/{name}", sleeper.pid, msg)
        for name, msg in caps.items():
            assert method.cached_caps(f"/usr/lib/apt/methods/{name}") == msg
            assert (state / f"{method.CAPS_FILE}-{name}{method.CAPS_MSG}").read_bytes() == msg
    finally:
        sleeper.kill()
        sleeper.wait()
