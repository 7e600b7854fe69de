"""The drivers' two exceptions: bad command-line input, and a download that failed."""

from __future__ import annotations

from cache_core import EXIT_NETWORK, EXIT_USAGE, CacheError


class UsageError(CacheError):
    """Bad command-line input (exit 2): one line on stderr, no usage dump."""

    exit_code = EXIT_USAGE


class FetchError(Exception):
    """A download that failed; ``exit_code``: 1 miss or SHA-256 mismatch, 2 bad input, 5 network."""

    def __init__(self, message: str, exit_code: int = EXIT_NETWORK) -> None:
        super().__init__(message)
        self.exit_code = exit_code
