"""`pkgcache fetch URL [-o DEST] [--sha256 HEX] [--offline] [--refresh]`: curl -fsSL through the cache."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from cache_core import EXIT_OK, CacheError, warn
from hooks.cli.output import error
from hooks.common.errors import FetchError
from hooks.common.http import DEFAULT_RETRIES, DEFAULT_RETRY_DELAY, DEFAULT_TIMEOUT
from hooks.fetch.download import fetch

if TYPE_CHECKING:
    from cache_core import PackageCache


def register(p: Any) -> None:
    """Fill in ``pkgcache fetch`` (p: its parser, made by the command registry)."""
    p.description = ("Download URL through the cache. Exit 0 ok, 1 offline miss or SHA-256 "
                     "mismatch, 2 bad input, 5 network/HTTP error.")
    p.add_argument("url", help="http(s) URL to download (also the cache key)")
    p.add_argument("-o", "-O", "--output", metavar="DEST", default="-",
                   help="write to DEST atomically (default or '-': standard output)")
    p.add_argument("--sha256", metavar="HEX", help="required SHA-256; a cached match needs no network")
    p.add_argument("--offline", action="store_true", help="never touch the network; cached copy only")
    p.add_argument("--refresh", action="store_true", help="ignore the cached copy; download again")
    p.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                   help=f"retries for transient errors (default {DEFAULT_RETRIES})")
    p.add_argument("--retry-delay", type=float, default=DEFAULT_RETRY_DELAY, metavar="S",
                   help=f"first retry delay in seconds, doubled each time "
                        f"(default {DEFAULT_RETRY_DELAY:g})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"connect/read timeout in seconds (default {DEFAULT_TIMEOUT:g})")
    p.set_defaults(func=cmd_fetch)


def _cache_or_none(args: argparse.Namespace) -> PackageCache | None:
    """The cache in fail-open mode; a cache that cannot be opened means a plain download."""
    try:
        cache = args.cache()
    except CacheError as exc:
        warn(f"cache unavailable, downloading without it ({exc})")
        return None
    cache.strict = False    # fetch is a drop-in for curl: cache faults must not fail it
    return cache


def cmd_fetch(args: argparse.Namespace) -> int:
    """Handler: 0 ok; FetchError -> one line + its exit code."""
    cache = _cache_or_none(args)
    try:
        if args.output != "-":
            fetch(cache, args.url, args.output, args.sha256, offline=args.offline,
                  refresh=args.refresh, retries=args.retries, retry_delay=args.retry_delay,
                  timeout=args.timeout)
            return EXIT_OK
        tmpdir = tempfile.mkdtemp(prefix="pkgcache-fetch-")
        try:
            out = os.path.join(tmpdir, "out")
            fetch(cache, args.url, out, args.sha256, offline=args.offline, refresh=args.refresh,
                  retries=args.retries, retry_delay=args.retry_delay, timeout=args.timeout)
            with open(out, "rb") as f, contextlib.suppress(BrokenPipeError):
                shutil.copyfileobj(f, sys.stdout.buffer)
                sys.stdout.buffer.flush()
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return EXIT_OK
    except FetchError as exc:
        error(f"fetch: {exc}")
        return exc.exit_code
