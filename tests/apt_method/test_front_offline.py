"""The offline choice of the front (in-process, scripted fakes): the cached Release files of all
the suites of an unreachable host, or of none; and after they are served, no failure asks apt to
retry later (apt before 3.1.10 would wait forever, LP #2003851)."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from hooks.apt import method
from hooks.apt.method import Front, HelperClient, Message, read_message
from tests.apt_method.test_front_random import FakeChild

REFUSED = ("400 URI Failure", "Message: Could not connect to h:80 (10.0.0.1). - connect (111)",
           "FailReason: ConnectionRefused", "Transient-Failure: true")


class RefusingChild(FakeChild):
    """The real method with the origin down: every request fails, connection refused."""

    def _answer(self, msg: Message) -> bool:
        self._send(REFUSED[0], f"URI: {msg.get('URI')}", *REFUSED[1:])
        return True


class CopiesHelper:
    """The helper, holding cached copies of the Release files named in ``copies``."""

    def __init__(self, copies: set[str]) -> None:
        self.copies = copies
        mine, self.theirs = socket.socketpair()
        self.client = HelperClient(mine, self)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        buf = b""
        while True:
            data, fds, _f, _a = socket.recv_fds(self.theirs, 65536, 4)
            for fd in fds:
                os.close(fd)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                if req["op"] == "release":
                    hit = req["uri"] in self.copies
                    if hit:
                        Path(req["dest"]).write_text("cached")
                    ans: Any = {"ok": True, "size": 6} if hit else {"ok": False}
                    self.theirs.sendall((json.dumps(ans) + "\n").encode())
                elif req["op"] == "serve":
                    self.theirs.sendall(b'{"ok": false}\n')

    def kill(self) -> None:
        self.theirs.close()

    def wait(self, timeout: float | None = None) -> int:
        return 0


def session(tmp_path: Path, copies: set[str], uris: list[str],
            gap: float | None = None) -> list[Message]:
    """apt sends the requests (Release files first, at once as apt-get update does, or ``gap``
    seconds apart); every message the front sends back, in order, once all are answered."""
    import random
    import time

    a_in, f_in = os.pipe()
    f_out, a_out = os.pipe()
    front = Front("/fake/http", os.fdopen(a_in, "rb"), os.fdopen(a_out, "wb"),
                  spawn_child=lambda real: RefusingChild(random.Random(0), tmp_path),
                  spawn_helper=lambda: CopiesHelper(copies).client)
    runner = threading.Thread(target=front.run, daemon=True)
    runner.start()
    apt_w = os.fdopen(f_in, "wb", buffering=0)
    apt_r = os.fdopen(f_out, "rb")
    got: list[Message] = []

    def acquire(i: int, uri: str) -> bytes:
        sha = "" if uri.endswith("InRelease") else f"Expected-SHA256: {'ab' * 32}\n"
        return f"600 URI Acquire\nURI: {uri}\nFilename: {tmp_path}/f{i}\n{sha}\n".encode()

    # apt queues every Release file at the start of an update, in one burst: one write here (the
    # scripted child answers in microseconds, so separate writes let the front settle one suite
    # before the next request is even read; a real method takes a connect attempt)
    burst = [i for i, uri in enumerate(uris) if uri.endswith("InRelease")]
    if gap is None:
        apt_w.write(b"".join(acquire(i, uris[i]) for i in burst))
    else:  # the first is refused before the front has read the next
        for i in burst:
            apt_w.write(acquire(i, uris[i]))
            time.sleep(gap)
    while len([m for m in got if m.code in method.FINAL]) < len(burst):
        got.append(_next(apt_r))  # apt asks for an index only once its Release file is in
    for i, uri in enumerate(uris):
        if i in burst:
            continue
        apt_w.write(acquire(i, uri))  # later requests: after the Release files' answers
        while len([m for m in got if m.code in method.FINAL]) < i + 1:
            got.append(_next(apt_r))
    while len([m for m in got if m.code in method.FINAL]) < len(uris):
        got.append(_next(apt_r))
    apt_w.close()
    runner.join(10)
    assert not runner.is_alive()
    return got


def _next(stream: Any) -> Message:
    m = read_message(stream)
    assert m is not None
    return m


@pytest.fixture(autouse=True)
def _as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(method.posix, "geteuid", lambda: 0)
    monkeypatch.setattr(method.sys, "stderr", io.StringIO())


def finals(got: list[Message]) -> dict[str, Message]:
    return {m.get("URI") or "": m for m in got if m.code in method.FINAL}


MAIN, SEC = "http://h/debian/dists/a/InRelease", "http://h/debian-security/dists/a/InRelease"
PACKAGES = "http://h/debian/dists/a/main/binary-amd64/by-hash/SHA256/" + "ab" * 32


def test_all_suites_cached_all_served_and_no_retry_after(tmp_path: Path) -> None:
    got = finals(session(tmp_path, {MAIN, SEC}, [MAIN, SEC, PACKAGES]))
    assert got[MAIN].code == got[SEC].code == 201
    assert got[PACKAGES].code == 400
    assert got[PACKAGES].get("Transient-Failure") is None  # no retry beside the fallback
    assert "Could not connect" in (got[PACKAGES].get("Message") or "")  # apt's own words


@pytest.mark.parametrize("order", [[MAIN, SEC], [SEC, MAIN]])
def test_one_suite_not_cached_none_served(tmp_path: Path, order: list[str]) -> None:
    got = finals(session(tmp_path, {MAIN}, order))
    for uri in (MAIN, SEC):  # the real method's failure, as without pkgcache: apt retries
        assert got[uri].code == 400 and got[uri].get("Transient-Failure") == "true", got[uri].lines
    assert not (tmp_path / f"f{order.index(MAIN)}").exists()  # the copy placed was taken back


@pytest.mark.parametrize("order", [[MAIN, SEC], [SEC, MAIN]])
def test_release_requests_a_moment_apart_still_one_choice(tmp_path: Path,
                                                           order: list[str]) -> None:
    """The real method refuses the first Release request at once (a refused connect) and apt's
    next one arrives 50 ms later: the front still waits for it, then serves none."""
    got = finals(session(tmp_path, {MAIN}, order, gap=0.05))
    for uri in (MAIN, SEC):
        assert got[uri].code == 400 and got[uri].get("Transient-Failure") == "true", got[uri].lines
    assert not (tmp_path / f"f{order.index(MAIN)}").exists()


def test_release_requests_a_moment_apart_all_cached_all_served(tmp_path: Path) -> None:
    got = finals(session(tmp_path, {MAIN, SEC}, [MAIN, SEC], gap=0.05))
    assert got[MAIN].code == got[SEC].code == 201
