"""`pkgcache git clone [--offline] URL DEST [git clone args…]` and `pkgcache git update [URL…]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cache_core import CacheError, warn
from hooks.gitmirror import GitError, clone, update


def register(subparsers: Any) -> None:
    """Add the ``git`` sub-command with ``clone`` and ``update``."""
    p = subparsers.add_parser("git", help="git clone through a cached bare mirror per URL",
                              description="Clone git repositories through one bare mirror per "
                                          "URL kept in the cache. Exit 0 ok, 1 offline miss, "
                                          "2 bad input, 5 network/git error.")
    gsub = p.add_subparsers(dest="git_command", metavar="{clone,update}")
    c = gsub.add_parser("clone", help="clone URL into DEST, borrowing objects from the mirror")
    c.add_argument("--offline", action="store_true",
                   help="do not contact the server; clone from the cached mirror")
    c.add_argument("url")
    c.add_argument("dest")
    c.add_argument("git_args", nargs=argparse.REMAINDER,
                   help="extra `git clone` options (--branch X, --depth N, ...)")
    c.set_defaults(func=cmd_clone)
    u = gsub.add_parser("update", help="fetch new commits into the mirrors (all, or these URLs)")
    u.add_argument("urls", nargs="*", metavar="URL")
    u.set_defaults(func=cmd_update)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def cmd_clone(args: argparse.Namespace) -> int:
    """Handler: cache faults fall back to a plain git clone (one warning)."""
    try:
        cache = args.cache()
        cache.strict = False
    except CacheError as exc:
        warn(f"cache unavailable, cloning without it ({exc})")
        cache = None
    extra = list(args.git_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    try:
        return clone(cache, args.url, args.dest, extra, offline=args.offline)
    except GitError as exc:
        print(f"pkgcache: git clone: {exc}", file=sys.stderr)
        return exc.exit_code


def cmd_update(args: argparse.Namespace) -> int:
    """Handler: 0 if every mirror was refreshed, 5 if any fetch failed."""
    try:
        return update(args.cache(), args.urls)
    except GitError as exc:
        print(f"pkgcache: git update: {exc}", file=sys.stderr)
        return exc.exit_code
