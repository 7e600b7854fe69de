"""The method's front under random request sequences and random faults (issue 21): every
``600 URI Acquire`` gets exactly one final answer (``201``/``400``/``103``), nothing comes after
it, and the front ends when apt closes its stdin. In-process: apt, the real method and the helper
are fakes on real pipes and a real socketpair, so 1,000 sequences take seconds."""

from __future__ import annotations

import io
import json
import os
import random
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hooks.apt import method
from hooks.apt.method import Front, HelperClient, Message, read_message

SEQUENCES = 1000
REASONS = [("ConnectionRefused", "Could not connect to h:80 (10.0.0.1). - connect (111)"),
           ("", "Cannot initiate the connection to h:80 (10.0.0.1). - connect (101: Network "
                "is unreachable)"),
           ("HttpError502", "502 Bad Gateway"), ("HttpError404", "404  Not Found"),
           ("", "Undetermined Error")]


class FakeChild:
    """The real method: answers its requests in order, each as the sequence's plan says
    (done, fail, redirect, die), with status and start messages on the way."""

    def __init__(self, rnd: random.Random, work: Path) -> None:
        self.rnd = random.Random(rnd.random())
        self.work = work
        r_in, self._w_in = os.pipe()
        self._r_out, w_out = os.pipe()
        self.stdin = os.fdopen(self._w_in, "wb", buffering=0)
        self.stdout = os.fdopen(self._r_out, "rb")
        self._in = os.fdopen(r_in, "rb")
        self._out = os.fdopen(w_out, "wb", buffering=0)
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, *lines: str) -> None:
        self._out.write(("\n".join(lines) + "\n\n").encode())

    def _run(self) -> None:
        try:
            self._send("100 Capabilities", "Version: 1.2", "Pipeline: true")
            while True:
                msg = read_message(self._in)
                if msg is None:
                    self.rc = 0
                    return
                if msg.code != 600:
                    continue
                if not self._answer(msg):
                    self.rc = 100
                    return
        except (OSError, ValueError):
            self.rc = 100
        finally:
            self._out.close()
            self._in.close()

    def _answer(self, msg: Message) -> bool:
        uri = msg.get("URI") or "<UNKNOWN>"
        act = self.rnd.choices(["done", "fail", "redirect", "die"], [5, 4, 1, 0.4])[0]
        if self.rnd.random() < 0.3:
            self._send("102 Status", f"URI: {uri}", "Message: Connecting")
        if act == "die":
            return False
        if act == "done":
            name = msg.get("Filename") or str(self.work / "x")
            Path(name).write_bytes(b"data")
            self._send("200 URI Start", f"URI: {uri}", "Size: 4")
            self._send("201 URI Done", f"URI: {uri}", f"Filename: {name}", "Size: 4")
        elif act == "fail":
            reason, text = self.rnd.choice(REASONS)
            self._send("400 URI Failure", f"URI: {uri}", f"Message: {text}",
                       *([f"FailReason: {reason}"] if reason else []))
        else:
            self._send("103 Redirect", f"URI: {uri}", f"New-URI: {uri}.moved")
        return True

    def wait(self, timeout: float | None = None) -> int:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise subprocess.TimeoutExpired("fake", timeout or 0)
        return self.rc or 0

    def kill(self) -> None:
        for f in (self.stdin, self._out):
            try:
                f.close()
            except OSError:
                pass


class FakeHelper:
    """The helper process: a thread on the other end of a real socketpair that answers each
    call with a hit, a miss, garbage, silence past the timeout, or dies."""

    def __init__(self, rnd: random.Random, faults: bool) -> None:
        self.rnd = random.Random(rnd.random())
        self.faults = faults
        mine, self.theirs = socket.socketpair()
        self.client = HelperClient(mine, self)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = b""
        try:
            while not self.stop.is_set():
                data, fds, _f, _a = socket.recv_fds(self.theirs, 65536, 4)
                for fd in fds:
                    os.close(fd)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    req = json.loads(line)
                    if req["op"] in ("serve", "release") and not self._reply():
                        return
        except OSError:
            pass
        finally:
            self.theirs.close()

    def _reply(self) -> bool:
        w = [3, 5, 1, 1, 1, 1] if self.faults else [3, 5, 0, 0, 0, 0]
        act = self.rnd.choices(["hit", "miss", "garbage", "list", "slow", "die"], w)[0]
        if act == "die":
            return False
        if act == "slow":
            time.sleep(method.HELPER_TIMEOUT * 1.5)
        ans: Any = {"hit": {"ok": True, "size": 4, "source": "local"},
                    "slow": {"ok": True, "size": 4}, "miss": {"ok": False}}.get(act)
        data = b"not json\n" if act == "garbage" else (json.dumps(ans or [1]) + "\n").encode()
        self.theirs.sendall(data)
        return True

    def kill(self) -> None:
        self.stop.set()
        try:
            self.theirs.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait(self, timeout: float | None = None) -> int:
        self.thread.join(timeout)
        return 0


def one_sequence(seed: int, work: Path) -> dict[str, Any]:
    """Drive one front like apt; returns what happened (checked by the caller)."""
    rnd = random.Random(seed)
    a_in, front_in = os.pipe()
    front_out, a_out = os.pipe()
    apt_w = os.fdopen(front_in, "wb", buffering=0)
    apt_r = os.fdopen(front_out, "rb")
    helpers: list[FakeHelper] = []
    faults = rnd.random() < 0.5

    def spawn_helper() -> HelperClient:
        if faults and rnd.random() < 0.05:
            raise OSError("cannot start the helper")
        helpers.append(FakeHelper(rnd, faults))
        return helpers[-1].client

    front = Front("/fake/http", os.fdopen(a_in, "rb"), os.fdopen(a_out, "wb"),
                  spawn_child=lambda real: FakeChild(rnd, work),
                  spawn_helper=spawn_helper)
    died: list[int] = []
    result: dict[str, Any] = {}

    def exit_(rc: int) -> None:
        """os._exit in real life; here the reader thread returns after it."""
        died.append(rc)
        result["owed_at_death"] = set(front.seen)  # the lock is held: no request half-entered
        front.stdout.close()

    front.exit = exit_  # type: ignore[method-assign]
    runner = threading.Thread(target=lambda: result.setdefault("rc", front.run()), daemon=True)
    runner.start()
    got: list[Message] = []
    reader = threading.Thread(target=lambda: _read_all(apt_r, got), daemon=True)
    reader.start()

    uris = []
    n = rnd.randint(1, 8)
    close_at = rnd.randint(0, n) if rnd.random() < 0.15 else None
    for i in range(n):
        if close_at == i:
            break
        kind = rnd.choice(["deb", "index", "release", "bare"])
        uri = f"http://h/{i}/" + ("InRelease" if kind == "release" else f"f{i}.deb")
        lines = ["600 URI Acquire", f"URI: {uri}"]
        if kind != "bare":
            lines.append(f"Filename: {work}/f{seed}-{i}")
        if kind in ("deb", "index"):
            lines.append(f"Expected-SHA256: {rnd.randbytes(32).hex()}")
        uris.append(uri)
        try:
            apt_w.write(("\n".join(lines) + "\n\n").encode())
        except BrokenPipeError:
            break
    if close_at is None:
        end = time.monotonic() + 5
        while time.monotonic() < end and not died and \
                len([m for m in got if m.code in method.FINAL]) < len(uris):
            time.sleep(0.001)
    t0 = time.monotonic()
    apt_w.close()
    runner.join(10)
    front.stdout.close()  # the process ended: apt sees end of file
    reader.join(10)
    for h in helpers:
        h.kill()
    return {"uris": uris, "got": got, "died": died, "closed_early": close_at is not None,
            "rc": result.get("rc"), "exit_s": time.monotonic() - t0,
            "ran": not runner.is_alive(), "faults": faults,
            "owed_at_death": result.get("owed_at_death")}


def _read_all(stream: Any, into: list[Message]) -> None:
    while True:
        try:
            m = read_message(stream)
        except (OSError, ValueError):
            return
        if m is None:
            return
        into.append(m)


def check(res: dict[str, Any], seed: int) -> None:
    """Exactly one final answer per request (at most one if apt closed stdin early; after the
    real method died, one for each request the front had read), nothing for a request after its
    final answer, and the front ended."""
    where = f"seed {seed}: {res}"
    assert res["ran"] and res["exit_s"] < 5, where
    finals: dict[str, int] = {}
    for m in res["got"]:
        uri = m.get("URI")
        if uri is None:
            continue
        assert uri in res["uris"], where
        assert finals.get(uri, 0) == 0, f"message after the final answer for {uri}; {where}"
        if m.code in method.FINAL:
            finals[uri] = 1
    for uri in res["uris"]:
        if res["closed_early"] or (res["died"] and uri not in res["owed_at_death"]):
            assert finals.get(uri, 0) <= 1, where
        else:
            assert finals.get(uri, 0) == 1, f"{uri} answered {finals.get(uri, 0)} times; {where}"


@pytest.fixture
def fast_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timeouts, and the front acting as root (the fakes hold no root cache)."""
    monkeypatch.setattr(method, "HELPER_TIMEOUT", 0.02)
    monkeypatch.setattr(method, "RELEASE_TIMEOUT", 0.02)
    monkeypatch.setattr(method, "HELPER_DRAIN", 2.0)
    monkeypatch.setattr(method, "CHILD_EXIT", 2.0)
    monkeypatch.setattr(method.posix, "geteuid", lambda: 0)
    monkeypatch.setattr(method.sys, "stderr", io.StringIO())  # the fallback's notices


def test_every_request_answered_once_in_random_sequences(fast_front: None, tmp_path: Path) -> None:
    seen = {"died": 0, "closed_early": 0, "faults": 0, "answers": 0}
    for seed in range(SEQUENCES):
        res = one_sequence(seed, tmp_path)
        check(res, seed)
        seen["died"] += bool(res["died"])
        seen["closed_early"] += res["closed_early"]
        seen["faults"] += res["faults"]
        seen["answers"] += sum(m.code in method.FINAL for m in res["got"])
    print(seen)
    # every kind of ending happened often enough to mean something
    assert seen["died"] >= 50 and seen["closed_early"] >= 50 and seen["faults"] >= 300, seen
