"""Compatibility name: the PackageCache facade lives in cache_core.api (kept for old imports)."""

from .api import PackageCache
from .errors import warn

__all__ = ["PackageCache", "warn"]
