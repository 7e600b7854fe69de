"""cache_core: the shared, verified, size-capped, content-addressed cache behind pkgcache.

It knows nothing of apt or pip; drivers live in ``hooks/``.
"""

from .cache import PackageCache
from .config import CacheConfig, load_config
from .errors import (
    EXIT_CONFIG,
    EXIT_INTERNAL,
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

__version__ = "0.1.0"

__all__ = [
    "EXIT_CONFIG", "EXIT_INTERNAL", "EXIT_MISS", "EXIT_NETWORK", "EXIT_OK", "EXIT_UNUSABLE",
    "EXIT_USAGE", "BadKeyError", "CacheConfig", "CacheError", "ConfigError", "Entry",
    "atomic_symlink", "atomic_write", "copy_fd", "read_json",
    "LockTimeout", "PackageCache", "UnsafeCacheError", "__version__", "load_config", "materialize",
    "open_regular", "safe_filename", "set_warning_handler", "sha256_fd", "sha256_file", "state_dir",
    "warn",
]
