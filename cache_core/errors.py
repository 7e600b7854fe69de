"""Every exception and exit code of pkgcache, and its one-line warning."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost (pkgcache --version)
if TYPE_CHECKING:
    from collections.abc import Callable

# Exit codes shared by every pkgcache command (documented in docs/cli.md and pkgcache(1)).
EXIT_OK = 0
EXIT_MISS = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNUSABLE = 4
EXIT_NETWORK = 5
EXIT_INTERNAL = 70
EXIT_BUSY = 75           # another run holds what this one needs (a store's gc lease): try later
EXIT_INTERRUPTED = 130   # Ctrl-C (128 + SIGINT, as a shell reports it)


class CacheError(Exception):
    """A fault inside the cache; carries the exit code the CLI should use."""

    exit_code = EXIT_UNUSABLE


class ConfigError(CacheError):
    """A config file that cannot be used (malformed, unknown key, wrong type)."""

    exit_code = EXIT_CONFIG


class UnsafeCacheError(CacheError):
    """The cache directory is not safe to use (owner, permissions, symlinks)."""

    exit_code = EXIT_UNUSABLE


class BadKeyError(CacheError):
    """A key or file name that is not acceptable."""

    exit_code = EXIT_USAGE


class LockTimeout(CacheError):
    """A lock could not be taken within its timeout."""


class DigestMismatch(CacheError):
    """put(..., sha256=X, on_mismatch="raise"): the content is not X (nothing was stored); digest
    is what it is. The one fault a caller asks to see: raised, never turned into a warning."""

    exit_code = EXIT_MISS

    def __init__(self, message: str, digest: str) -> None:
        super().__init__(message)
        self.digest = digest


# The remote tier's errors. They never reach a driver: the tier turns them into misses.
class RemoteError(Exception):
    """A remote fault (5xx, refused, wrong credentials, bad reply): opens the breaker."""


class RemoteTimeout(RemoteError):
    """A connect/read timeout or an exhausted time budget: opens the breaker."""


class RemoteMissing(Exception):
    """The object is not there (404, and 403 as Nix and private S3 buckets answer)."""


class RecordError(Exception):
    """A remote key record that must be treated as a miss (bad form, bad signature, wrong key)."""


def describe(exc: BaseException) -> str:
    """A short, single-line description of a fault for a warning (no traceback)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {exc}"


_warned: set[str] = set()
_handler: Callable[[str], None] | None = None


def set_warning_handler(handler: Callable[[str], None] | None) -> None:
    """Send every warning to handler instead of stderr (e.g. an apt hook allowing one line)."""
    global _handler
    _handler = handler


def warn(message: str) -> None:
    """Print one short ``pkgcache: warning:`` line on stderr, once per message per process."""
    if _handler is not None:
        _handler(message)
        return
    if message in _warned:
        return
    _warned.add(message)
    write_warning(message)


def write_warning(message: str) -> None:
    """Write the ``pkgcache: warning: MESSAGE`` line itself (the one writer of that line, for
    warn() and for the apt hook's and method's one-line gates); never raises."""
    try:
        sys.stderr.write(f"pkgcache: warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # stderr closed: nothing more we can do
        pass
