"""Shared by the drivers: the one HTTP client and subprocess helpers, and the fleet keys a
cache's configuration trusts (what a driver's own vouch for a signed record is bound to)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cache_core import PackageCache


def trusted_keys(cache: PackageCache) -> frozenset[str]:
    """Every ``trusted_public_keys`` entry of the cache's remotes that no remote lists in
    ``revoked_public_keys`` (no cryptography import): a vouch bound to a revoked key lapses."""
    remote = cache.remote
    return remote.trusted_keys() if remote is not None else frozenset()
