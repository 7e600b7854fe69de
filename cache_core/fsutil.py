"""Compatibility name: file-system helpers live in cache_core.fs, safe names in cache_core.keys."""

from .fs import acl_grants_write, atomic_symlink, atomic_write, materialize, open_regular, read_json
from .keys import safe_filename

__all__ = ["acl_grants_write", "atomic_symlink", "atomic_write", "materialize", "open_regular",
           "read_json", "safe_filename"]
