"""Shared by the drivers: the one HTTP client and subprocess helpers, and the fleet keys a
cache's configuration trusts (what a driver's own vouch for a signed record is bound to)."""

from __future__ import annotations

from typing import Any


def trusted_keys(cache: Any) -> frozenset[str]:
    """Every ``trusted_public_keys`` entry of the cache's remotes that no remote lists in
    ``revoked_public_keys`` (no cryptography import): a vouch bound to a revoked key lapses."""
    remotes = getattr(getattr(cache, "config", None), "remote", None) or []
    revoked = {k.strip() for r in remotes for k in getattr(r, "revoked_public_keys", None) or []}
    return frozenset(k for r in remotes for k in getattr(r, "trusted_public_keys", None) or []
                     if k.strip() not in revoked)
