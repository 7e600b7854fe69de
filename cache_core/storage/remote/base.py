"""The remote backend protocol, its errors and the registry of backends by URL scheme.

Every backend stores two kinds of object under one base: ``cas/<sha256>`` (content, named by its
own SHA-256: self-verifying) and ``ac/<sha256 of the key>`` (a small signed key record).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

from ...errors import RemoteError, RemoteMissing, RemoteTimeout

if TYPE_CHECKING:
    from .config import RemoteSpec

_NAME = re.compile(r"\A(cas|ac)/[0-9a-f]{64}\Z")
MAX_RECORD_BYTES = 64 * 1024


class ListRefused(RemoteError):
    """The store refuses to list (S3: ListBucket denied) while reads may still work: said, and
    the command fails, but the breaker stays closed."""


def object_name(kind: str, hexdigest: str) -> str:
    """``cas/<hex>`` or ``ac/<hex>``; refuses anything else (no name ever escapes the layout)."""
    name = f"{kind}/{hexdigest}"
    if not _NAME.match(name):
        raise ValueError(f"not a remote object name: {name!r}")
    return name


def record_name(key: str) -> str:
    """The AC name of a key record: ``ac/<sha256 of the UTF-8 key>``."""
    return object_name("ac", hashlib.sha256(key.encode("utf-8")).hexdigest())


class Backend(Protocol):
    """What every remote backend offers. ``name`` is always from object_name()."""

    def get(self, name: str, deadline: float) -> Iterator[bytes]:
        """Stream the object's bytes (raise RemoteMissing / RemoteError / RemoteTimeout)."""

    def head(self, name: str, deadline: float) -> int | None:
        """The object's size, or None if it is missing."""

    def put(self, name: str, body: IO[bytes], size: int, sha256: str, deadline: float,
            *, if_none_match: bool = False) -> None:
        """Store size bytes read from body; sha256 is the body's digest (signed by S3)."""

    def list(self, kind: str) -> Iterator[str] | None:
        """The hex names under ``kind/``, or None if the store cannot list."""

    def create_lease(self, name: str, body: bytes, deadline: float) -> bool | None:
        """Create the object only if absent (a lease, a shared set's version, gc's lease): True
        created, False held by another, None: this store cannot create-if-absent (405, 501: no
        coalescing); RemoteError for a store fault (5xx) or refused credentials (401, 403)."""

    def read_lease(self, name: str, deadline: float) -> bytes | None:
        """The lease object's body, or None if there is none."""

    def drop_lease(self, name: str, deadline: float) -> None:
        """Remove the lease object (missing is fine)."""

    def entries(self, kind: str) -> Iterator[tuple[str, int, float]] | None:
        """(hex name, size, modification time in epoch seconds) under ``kind/``, or None if the
        store cannot list (for ``remote gc``)."""

    def delete(self, name: str, deadline: float) -> None:
        """Remove the object (a missing one is fine; RemoteError on a refusal)."""


__all__ = ["MAX_RECORD_BYTES", "Backend", "ListRefused", "RemoteError", "RemoteMissing", "RemoteTimeout",
           "make_backend", "object_name", "record_name", "register", "schemes"]

_REGISTRY: dict[str, Callable[[Any], Backend]] = {}
# The built-in backends, imported by name on first use (they register themselves; importing
# them from here by statement would close an import circle: each imports register from here).
_BUILTIN = {"file": "filestore", "http": "http", "https": "http", "s3": "s3"}


def register(*schemes: str) -> Callable[[Callable[[Any], Backend]], Callable[[Any], Backend]]:
    """Class decorator: the backend for these URL schemes."""
    def deco(factory: Callable[[Any], Backend]) -> Callable[[Any], Backend]:
        for s in schemes:
            _REGISTRY[s] = factory
        return factory
    return deco


def make_backend(spec: RemoteSpec) -> Backend:
    """The backend for a RemoteSpec, chosen by its URL scheme; RemoteError if it cannot be
    built (a secret file missing: the other remotes are still asked)."""
    import importlib

    if spec.scheme not in _REGISTRY and spec.scheme in _BUILTIN:
        importlib.import_module(f"{__package__}.{_BUILTIN[spec.scheme]}")
    try:
        return _REGISTRY[spec.scheme](spec)
    except OSError as exc:  # a token_file/password_file missing or unreadable: this remote only
        where = f": {exc.filename}" if exc.filename else ""
        raise RemoteError(f"cannot set up the store: {exc.strerror or exc}{where}") from None


def schemes() -> list[str]:
    """The URL schemes with a backend."""
    return ["file", "http", "https", "s3"]
