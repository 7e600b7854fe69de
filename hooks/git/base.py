"""What the git driver's modules share: the mirror key of a URL, the error type and the
environment every git command runs in."""

from __future__ import annotations

import os
import re

from cache_core import EXIT_NETWORK, EXIT_USAGE

# Variables that would point our git commands at some other repository.
_GIT_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                  "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
                  "GIT_CEILING_DIRECTORIES")


class GitError(Exception):
    """A git operation that failed; ``exit_code`` per docs/core-api.md."""

    def __init__(self, message: str, exit_code: int = EXIT_NETWORK, detail: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.detail = detail  # git's whole stderr, when it comes from a git command


# git's words (LC_ALL=C; curl's and ssh's) for "the server could not be reached": only then is
# a mirror served as it is. A server that answers "no" (not found, denied, auth failed: checked
# first, it may come with an "RPC failed") gets the answer plain git gives.
_REFUSED = re.compile(
    r"returned error: 4\d\d|HTTP 4\d\d|not found|Permission denied|Authentication failed"
    r"|terminal prompts disabled|could not read (Username|Password)"
    r"|Host key verification failed", re.I)
_UNREACHABLE = re.compile(
    r"Could not resolve (host|proxy)|Couldn't resolve|Failed to connect|Connection refused"
    r"|Connection timed out|timed out|Network is unreachable|No route to host"
    r"|Temporary failure in name resolution|Name or service not known|Connection reset"
    r"|Empty reply from server|returned error: 5\d\d|HTTP 5\d\d|Proxy CONNECT aborted"
    r"|unable to connect|SSL_connect|GnuTLS recv error|early EOF|RPC failed", re.I)


def unreachable(error: GitError) -> bool:
    """True if git failed because the server could not be reached (not because it refused)."""
    text = error.detail or str(error)
    return not _REFUSED.search(text) and bool(_UNREACHABLE.search(text))


def normalize_url(url: str) -> str:
    """The mirror key: surrounding spaces and trailing slashes removed."""
    url = url.strip()
    if not url or url.startswith("-") or any(ord(c) < 0x20 for c in url):
        raise GitError(f"not a usable repository URL: {url!r}", EXIT_USAGE)
    return url.rstrip("/") or url


def is_local(url: str) -> bool:
    """A repository on this machine: a path or file:// (git's rule: no ``scheme://`` and no
    ``host:`` before the first slash)."""
    if re.match(r"[a-z][a-z0-9+.-]*://", url, re.I):
        return url[:7].lower() == "file://"
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or 0 <= slash < colon


def git_env(**extra: str) -> dict[str, str]:
    """Environment for mirror operations: no inherited repository, no prompts, C messages."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REPO_VARS}
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    env.update(extra)
    return env
