"""Storage: an ordered list of tiers, the local store first (``storage.local``), then any
``Tier`` (``storage.tier``; the remote tier is ``storage.remote``).

Read-through: on a local miss the later tiers are asked in order; the first one that has the
key writes its bytes into a ``Sink`` (a hashed private temp in the local store) and the object
is published locally only if the bytes match the tier's claim and the key's own digest (a lying
tier is a miss, counted in ``rejected`` and warned about once). Write-behind: after a put every
later tier is offered the object. Methods here raise on faults; the facade (cache_core.api)
applies the fail-open policy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ..errors import warn
from ..fs import create_exclusive, unlink_quiet
from ..hashing import HashingWriter
from ..keys import digest_of_key, kind_of, normalize_key
from .local import LocalStore
from .tier import Located, Sink, Tier


class Storage:
    """The tiers of one cache: a LocalStore, then the later tiers (read-through, write-behind)."""

    def __init__(self, local: LocalStore, later: Callable[[], Sequence[Tier]]) -> None:
        """later: the tiers after the local store, asked on use (the remote tier is built only
        once a configuration names one)."""
        self.local = local
        self._later = later
        self.rejected: dict[str, int] = {}  # tier name -> fills refused for wrong bytes

    @property
    def tiers(self) -> list[Tier | LocalStore]:
        """Every tier in order, the local store first."""
        return [self.local, *self._later()]

    def fill(self, key: str) -> bool:
        """Read-through: bring key from the first later tier that has it into the local store,
        only with bytes that hash to the tier's claim (and to a content key's digest)."""
        key = normalize_key(key)
        for tier in self._later():
            sink = _Ingest(self.local, key)
            try:
                claim = tier.fetch(key, sink)
                if claim is not None and self._accept(tier, key, claim, sink):
                    return True
            finally:
                sink.discard()
        return False

    def _accept(self, tier: Tier, key: str, claim: Located, sink: _Ingest) -> bool:
        """Publish what tier wrote into sink if it is what tier claimed and key names."""
        if sink.held == claim.digest:
            return True  # the local store had the content; key was recorded by begin()
        want = digest_of_key(key)
        if (sink.tmp is None or sink.claim != claim or (want is not None and claim.digest != want)
                or sink.hexdigest() != claim.digest
                or (claim.size is not None and sink.size != claim.size)):
            self.rejected[tier.name] = self.rejected.get(tier.name, 0) + 1
            warn(f"{tier.name} tier: object {claim.digest[:12]}… ignored "
                 "(content does not match its SHA-256)")
            return False
        sink.publish(key)
        return True

    def write_behind(self, key: str, digest: str) -> None:
        """Offer a stored object (and key) to every later tier (the remote tier queues it for
        its background uploader)."""
        later = self._later()
        if later:
            source = str(self.local.object_path(digest))
            for tier in later:
                tier.store(key, digest, source)

    def stats(self) -> dict[str, dict[str, object]]:
        """The later tiers' counters by tier name (the local store's are the cache's own)."""
        return {t.name: t.stats() for t in self._later()}

    def zero(self) -> None:
        """Reset the later tiers' counters (the remote tier's breaker stays)."""
        for t in self._later():
            t.zero()


class _Ingest:
    """The Sink Storage hands a later tier: a private 0600 temp in the local store's tmp/,
    hashed as it is written; published (renamed into objects/) only by Storage."""

    def __init__(self, local: LocalStore, key: str) -> None:
        self.local = local
        self.key = key
        self.tmp: str | None = None
        self.claim: Located | None = None
        self.held: str | None = None  # the digest found already stored (nothing written)
        self._fd = -1
        self._out: HashingWriter | None = None

    @property
    def size(self) -> int:
        """Bytes written in this attempt."""
        return self._out.size if self._out is not None else 0

    def begin(self, claim: Located, limit: int | None = None) -> bool:
        """A fresh attempt; False if the local store holds claim.digest and key is now recorded."""
        self.discard()
        self.claim = claim
        if digest_of_key(self.key) is None and self.local.index.object_size(claim.digest) \
                is not None and self.local.alias(self.key, claim.digest,
                                                 claim.kind or kind_of(self.key), claim.meta):
            self.held = claim.digest  # the claim names content we already hold
            return False
        self.tmp = self.local.new_temp()
        self._fd = create_exclusive(self.tmp, 0o600)
        self._out = HashingWriter(self._fd, limit)
        return True

    def write(self, chunk: bytes) -> None:
        """Hash and write one chunk (OverflowError past the limit)."""
        if self._out is None:
            raise RuntimeError("write before begin")
        self._out.write(chunk)

    def hexdigest(self) -> str:
        """SHA-256 of this attempt's bytes."""
        return self._out.hexdigest() if self._out is not None else ""

    def publish(self, key: str) -> None:
        """Make the checked temp the local object for key (no re-hash: hashed as written)."""
        assert self.tmp is not None and self.claim is not None and self._out is not None
        if self.local.fsync:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self.local.adopt(key, self.tmp, self.claim.digest, self._out.size,
                         self.claim.kind or kind_of(key), self.claim.meta)

    def discard(self) -> None:
        """Drop this attempt's temp (after a publish there is none left)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.tmp is not None:
            unlink_quiet(self.tmp)
        self.tmp, self.claim, self.held, self._out = None, None, None, None


__all__ = ["Located", "LocalStore", "Sink", "Storage", "Tier"]
