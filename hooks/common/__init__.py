"""Shared by the drivers: the one HTTP client and subprocess helpers, and the fleet keys a
cache's configuration trusts (what a driver's own vouch for a signed record is bound to)."""

from __future__ import annotations

from typing import Any


def trusted_keys(cache: Any) -> frozenset[str]:
    """Every ``trusted_public_keys`` entry of the cache's remotes (no cryptography import)."""
    return frozenset(k for r in getattr(getattr(cache, "config", None), "remote", None) or []
                     for k in getattr(r, "trusted_public_keys", None) or [])
