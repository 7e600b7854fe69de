"""cache_core: the shared, verified, size-capped, content-addressed cache behind pkgcache.

It knows nothing of apt or pip; drivers live in ``hooks/``. Names are imported on first use
(PEP 562), so ``import cache_core`` costs nothing: a command that never opens the cache
(``pkgcache --version``, an apt hook with nothing to do) never loads SQLite or YAML.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost

__version__ = "0.1.0"

# public name -> the submodule that defines it
_HOME = {
    "PackageCache": "cache", "CacheConfig": "config", "load_config": "config",
    "EXIT_CONFIG": "errors", "EXIT_INTERNAL": "errors", "EXIT_INTERRUPTED": "errors",
    "EXIT_MISS": "errors", "EXIT_NETWORK": "errors", "EXIT_OK": "errors",
    "EXIT_UNUSABLE": "errors", "EXIT_USAGE": "errors", "BadKeyError": "errors",
    "CacheError": "errors", "ConfigError": "errors", "UnsafeCacheError": "errors",
    "set_warning_handler": "errors", "warn": "errors", "write_warning": "errors",
    "atomic_symlink": "fsutil", "atomic_write": "fsutil", "copy_fd": "fsutil",
    "materialize": "fsutil", "open_regular": "fsutil", "read_json": "fsutil",
    "safe_filename": "fsutil", "state_dir": "fsutil",
    "sha256_fd": "hashing", "sha256_file": "hashing", "Entry": "index", "LockTimeout": "locks",
}

__all__ = [
    "__version__", "BadKeyError", "CacheConfig", "CacheError", "ConfigError", "EXIT_CONFIG",
    "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_MISS", "EXIT_NETWORK", "EXIT_OK", "EXIT_UNUSABLE",
    "EXIT_USAGE", "Entry", "LockTimeout", "PackageCache", "UnsafeCacheError", "atomic_symlink",
    "atomic_write", "copy_fd", "load_config", "materialize", "open_regular", "read_json",
    "safe_filename", "set_warning_handler", "sha256_fd", "sha256_file", "state_dir", "warn",
    "write_warning",
]

if TYPE_CHECKING:
    from .cache import PackageCache
    from .config import CacheConfig, load_config
    from .errors import (
        EXIT_CONFIG,
        EXIT_INTERNAL,
        EXIT_INTERRUPTED,
        EXIT_MISS,
        EXIT_NETWORK,
        EXIT_OK,
        EXIT_UNUSABLE,
        EXIT_USAGE,
        BadKeyError,
        CacheError,
        ConfigError,
        UnsafeCacheError,
        set_warning_handler,
        warn,
        write_warning,
    )
    from .fsutil import (
        atomic_symlink,
        atomic_write,
        copy_fd,
        materialize,
        open_regular,
        read_json,
        safe_filename,
        state_dir,
    )
    from .hashing import sha256_fd, sha256_file
    from .index import Entry
    from .locks import LockTimeout


def __getattr__(name: str) -> object:
    """Import a public name's submodule on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'cache_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
