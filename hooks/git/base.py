"""What the git driver's modules share: the mirror key of a URL, the error type and the
environment every git command runs in."""

from __future__ import annotations

import os

from cache_core import EXIT_NETWORK, EXIT_USAGE

# Variables that would point our git commands at some other repository.
_GIT_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                  "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
                  "GIT_CEILING_DIRECTORIES")


class GitError(Exception):
    """A git operation that failed; ``exit_code`` per docs/core-api.md."""

    def __init__(self, message: str, exit_code: int = EXIT_NETWORK) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def normalize_url(url: str) -> str:
    """The mirror key: surrounding spaces and trailing slashes removed."""
    url = url.strip()
    if not url or url.startswith("-") or any(ord(c) < 0x20 for c in url):
        raise GitError(f"not a usable repository URL: {url!r}", EXIT_USAGE)
    return url.rstrip("/") or url


def git_env(**extra: str) -> dict[str, str]:
    """Environment for mirror operations: no inherited repository, no prompts, C messages."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REPO_VARS}
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    env.update(extra)
    return env
