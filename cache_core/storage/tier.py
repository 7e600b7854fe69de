"""The storage seam: what Storage needs from a tier after the first (the local store).

Storage (``cache_core.storage``) keeps an ordered list of tiers: the LocalStore first (the one
that serves reads and receives every fill), then any ``Tier`` (the remote tier, a second
LocalStore, a test's in-memory store). A later tier is never trusted: the bytes it writes go
through Storage's ``Sink``, which hashes them, and Storage publishes them only if they match
the tier's claim and the key's own digest (a content key ``sha256:<hex>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..index import JSON


@dataclass(frozen=True)
class Located:
    """What a tier claims for a key: the object's digest, its size (None: unknown), kind, meta."""

    digest: str
    size: int | None = None
    kind: str | None = None
    meta: dict[str, JSON] | None = None


class Sink(Protocol):
    """Where a tier writes an object's bytes: a private temp file in the local store, hashed."""

    @property
    def size(self) -> int:
        """Bytes written in this attempt."""

    def begin(self, claim: Located, limit: int | None = None) -> bool:
        """Start a fresh attempt for claim (limit: most bytes accepted; more raise OverflowError).
        False: the local store already holds claim.digest and the key is recorded: write nothing
        and return the claim."""

    def write(self, chunk: bytes) -> None:
        """Hash and write one chunk of the object."""

    def hexdigest(self) -> str:
        """SHA-256 of this attempt's bytes (a tier may check it to try its next source)."""

    def discard(self) -> None:
        """Drop this attempt's bytes now (e.g. to free a full disk before the tier records it)."""


class Tier(Protocol):
    """A storage tier after the local store: read-through source and write-behind target."""

    name: str  # short and stable: "local", "remote"; also the key of its stats in cache.stats()

    def fetch(self, key: str, sink: Sink) -> Located | None:
        """Write the bytes of key's object (a normalized key) into sink, after sink.begin(claim),
        and return the claim; None on a miss. Storage checks the bytes before publishing."""

    def store(self, key: str, digest: str, source: str) -> bool:
        """Write-behind: take the verified local object (read-only file source, content digest)
        and key; now or later (queued). False if not taken. Must re-check digest if deferred."""

    def stats(self) -> dict[str, object]:
        """This tier's counters (no secrets), reported under its name by cache.stats()."""

    def zero(self) -> None:
        """Reset this tier's counters (``pkgcache stats --zero``)."""


__all__ = ["Located", "Sink", "Tier"]
