"""Storage: the local store first, then the remotes (read-through on a local miss, write-behind
after a put). The local tier is ``storage.local``; the remote tier is ``storage.remote``.

Methods here raise on faults; the facade (cache_core.api) applies the fail-open policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .local import LocalStore

if TYPE_CHECKING:
    from .remote import RemoteTier


class Storage:
    """The tiers of one cache: a LocalStore and, when configured, a remote tier."""

    def __init__(self, local: LocalStore, remote: Callable[[], RemoteTier | None]) -> None:
        self.local = local
        self._remote = remote

    def remote(self) -> RemoteTier | None:
        """The remote tier, or None when no remote is configured."""
        return self._remote()

    def fill(self, key: str) -> bool:
        """Read-through: bring key from the first remote that has it into the local store."""
        tier = self._remote()
        return bool(tier is not None and tier.fill(key))

    def write_behind(self, key: str, digest: str) -> None:
        """Queue a stored object (and key's record) for the background uploader."""
        tier = self._remote()
        if tier is not None:
            tier.enqueue(key, digest)

    def remote_stats(self) -> dict[str, object] | None:
        """The remote tier's counters, or None without one."""
        tier = self._remote()
        return tier.stats() if tier is not None else None

    def zero_remote(self) -> None:
        """Reset the remote tier's counters (its breaker stays)."""
        tier = self._remote()
        if tier is not None:
            tier.zero()


__all__ = ["LocalStore", "Storage"]
