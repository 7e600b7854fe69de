"""The tests' one support package (imported as ``tests.support``; the repository root is on
sys.path because ``tests`` is a package under pytest's rootdir).

- ``http``: the one HTTP server on 127.0.0.1 and its apps (static/ETag/Range/faults, a directory,
  the PEP 503 index, git http-backend, byte-level faults);
- ``cli``: the one way to run this checkout's ``pkgcache`` as a child process;
- ``env``: environments for children (no proxies, no machine pip/pkgcache config);
- ``mounts``: tmpfs and bind mounts undone at the end of a test;
- ``apt``, ``pip``, ``git``, ``remote``, ``fleet``: the worlds the driver tests build (an apt
  repo and sandbox root, wheels and an index, bare git repos, nginx/moto stores, a signed fleet);
- ``user``: a real unprivileged account and a world-readable copy of the code for it;
- ``docs``: README.md and docs/*.md as tests read them (code blocks by heading, anchors, links).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

REPO = Path(__file__).resolve().parents[2]
"""The checkout under test."""
PY = sys.executable
"""The Python that runs the tests (the venv's: system site-packages, pkgcache's deps)."""


class _Stoppable(Protocol):
    def stop(self) -> object: ...


S = TypeVar("S", bound=_Stoppable)


def until_stopped(thing: S) -> Iterator[S]:
    """For a fixture: ``yield from until_stopped(Server(...))`` yields it and stops it after."""
    try:
        yield thing
    finally:
        thing.stop()
