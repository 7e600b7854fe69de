"""The local tier: objects on this machine's disk (layout, store, maintenance)."""

from .layout import CACHEDIR_TAG, INDEX_NAME, LAYOUT, Layout
from .store import LocalStore

__all__ = ["CACHEDIR_TAG", "INDEX_NAME", "LAYOUT", "Layout", "LocalStore"]
