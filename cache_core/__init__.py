"""cache_core: the shared, verified, size-capped, content-addressed cache behind pkgcache.

It knows nothing of apt or pip; drivers live in ``hooks/`` and use only the names exported
here and the modules listed in docs/core-api.md. Names are loaded on first use, so importing
cache_core (as every hook does) costs no SQLite, YAML or storage code until a cache is opened.
"""

from __future__ import annotations

import sys

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
    DigestMismatch,
    LockTimeout,
    UnsafeCacheError,
    set_warning_handler,
    warn,
    write_warning,
)

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:  # the lazy names below, for type checkers (run time: __getattr__)
    from .api import PackageCache, Remote
    from .config import CacheConfig, config_paths, load_config
    from .fs import acquire as acquire_lock
    from .fs import (
        atomic_symlink,
        atomic_write,
        copy_fd,
        materialize,
        memo_path,
        open_regular,
        read_json,
        read_memo,
        replace_checked,
        state_dir,
        write_memo,
    )
    from .generation import read as read_generation
    from .hashing import sha256_fd, sha256_file
    from .index import Entry
    from .keys import PRIVATE_KEY_PREFIX, is_digest, normalize_key, safe_filename
    from .metrics import render_prometheus, write_textfile
    from .statepath import locate as state_path
    from .storage.remote.lease import Lease
    from .storage.remote.records import Record, generate_keypair

__version__ = "0.2.0"

# name -> the module that defines it (imported when the name is first used)
_LAZY = {
    "PackageCache": "api", "Remote": "api",
    "Lease": "storage.remote.lease", "Record": "storage.remote.records",
    "generate_keypair": "storage.remote.records",
    "CacheConfig": "config", "load_config": "config", "config_paths": "config",
    "Entry": "index",
    "acquire_lock": "fs", "atomic_symlink": "fs", "atomic_write": "fs", "copy_fd": "fs", "materialize": "fs",
    "open_regular": "fs", "read_json": "fs", "replace_checked": "fs", "state_dir": "fs",
    "memo_path": "fs", "read_memo": "fs", "write_memo": "fs",
    "sha256_fd": "hashing", "sha256_file": "hashing",
    "read_generation": "generation", "state_path": "statepath",
    "is_digest": "keys", "normalize_key": "keys", "safe_filename": "keys", "PRIVATE_KEY_PREFIX": "keys",
    "render_prometheus": "metrics", "write_textfile": "metrics",
}
_RENAMED = {"acquire_lock": "acquire", "read_generation": "read", "state_path": "locate"}

__all__ = [
    "EXIT_CONFIG", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_MISS", "EXIT_NETWORK", "EXIT_OK",
    "EXIT_UNUSABLE",
    "EXIT_USAGE", "BadKeyError", "CacheConfig", "CacheError", "ConfigError", "DigestMismatch",
    "Entry", "Lease",
    "LockTimeout", "PRIVATE_KEY_PREFIX", "PackageCache", "Record", "Remote", "UnsafeCacheError",
    "__version__",
    "acquire_lock", "atomic_symlink", "atomic_write", "config_paths", "copy_fd", "generate_keypair",
    "is_digest",
    "load_config",
    "materialize", "memo_path", "normalize_key", "open_regular", "read_generation", "read_json",
    "read_memo",
    "register_key",
    "render_prometheus", "replace_checked", "safe_filename",
    "set_warning_handler", "sha256_fd", "sha256_file", "state_dir", "state_path",
    "take_pending_keys", "warn",
    "write_memo", "write_textfile", "write_warning",
]


# Driver keys registered before cache_core.config is loaded (hooks/__init__ registers at import):
# queued here so registering costs no YAML/dataclasses import; config takes them when it loads.
_pending_keys: list[tuple[str, object, str, object]] = []


def register_key(name: str, check: object, expected: str, default: object) -> None:
    """Let ``performance.cache.<name>`` through validation for a driver (see config.register_key)."""
    config = sys.modules.get(f"{__name__}.config")
    if config is None:
        _pending_keys.append((name, check, expected, default))
    else:
        config.register_key(name, check, expected, default)


def take_pending_keys() -> list[tuple[str, object, str, object]]:
    """The keys registered before the config module loaded (for cache_core.config only)."""
    taken = list(_pending_keys)
    _pending_keys.clear()
    return taken


def __getattr__(name: str) -> object:
    """Load a public name from its module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cache_core' has no attribute {name!r}")
    full = f"{__name__}.{module}"
    __import__(full)  # not importlib: it loads warnings, ~0.6 ms at every hook's start
    value = getattr(sys.modules[full], _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
