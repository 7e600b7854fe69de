"""The core commands: put, get, exists, ls, stats, verify, gc, clear."""

from __future__ import annotations

import os
import re
import sys
import time

from cache_core import EXIT_MISS, EXIT_OK
from hooks.cli.output import config_warnings, error, human
from hooks.common.errors import UsageError

TYPE_CHECKING = False  # typing costs start-up; json loads where it prints (_print_json)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from cache_core import PackageCache

# command -> its one-line summary: the top-level help lists these without building the parsers
COMMANDS = {
    "put": "store FILE under KEY",
    "get": "print the path of KEY's verified file (exit 1 on a miss)",
    "exists": "exit 0 if KEY is cached, 1 if not",
    "ls": "list cached keys",
    "stats": "hits, misses, puts, size, evictions and quarantine",
    "verify": "re-hash every object, git fsck every mirror; reconcile index and files",
    "gc": "evict least recently used entries down to the cap",
    "clear": "remove everything from the cache",
}

_SIZE = r"(?i)\A\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*\Z"  # compiled on first use (re's cache)
_AGE = r"(?i)\A\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*\Z"
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
               "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "ki": 1024,
               "mib": 1024**2, "mi": 1024**2, "gib": 1024**3, "gi": 1024**3, "tib": 1024**4,
               "ti": 1024**4}
_AGE_UNITS = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """'5G', '500MB', '1.5GiB', '0' -> bytes (decimal units; KiB/MiB/GiB binary; bare = GiB)."""
    m = re.match(_SIZE, text)
    if not m:
        raise UsageError(f"cannot read size {text!r} (examples: 5G, 500M, 1.5GiB)")
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if unit == "":
        return int(value * 1024**3)
    return int(value * _SIZE_UNITS[unit])


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' -> seconds (bare number = days)."""
    m = re.match(_AGE, text)
    if not m:
        raise UsageError(f"cannot read age {text!r} (examples: 30d, 12h, 90m)")
    return float(m.group(1)) * _AGE_UNITS[m.group(2).lower()]


def _print_json(doc: object, **kw: Any) -> None:
    """Print doc as JSON (json is imported here: the help and the parser do not need it)."""
    import json

    print(json.dumps(doc, **kw))


# -- core commands ------------------------------------------------------------------------------
def _read_cache(args: argparse.Namespace, quiet: bool = False, key: str = "") -> PackageCache | None:
    """The cache for a read-only command (get, exists, ls, stats), or None with one line on
    stderr (unless quiet) when there is none: reading never creates a cache, so a typo'd
    --cache-dir is reported, not made. A remote or root's cache can still answer. A bad key
    is bad input (BadKeyError, exit 2) either way."""
    if key:
        from cache_core import normalize_key

        normalize_key(key)
    cache = args.cache()
    if (cache.enabled and cache.system is None and not cache.root.is_dir()
            and cache.remote is None):
        if not quiet:
            error(f"no cache at {cache.root}")
        return None
    return cache


def cmd_put(args: argparse.Namespace) -> int:
    """``put KEY FILE``: store a copy of FILE under KEY; prints its SHA-256."""
    if not os.path.isfile(args.file):
        raise UsageError(f"{args.file}: no such file")
    digest = args.cache().put(args.key, args.file, sha256=args.sha256)
    if digest is None:
        error("cache is disabled; nothing stored")
        return EXIT_MISS
    if not args.quiet:
        print(digest)
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    """``get KEY [-o DEST]``: the verified file's path, or a copy at DEST."""
    cache = _read_cache(args, key=args.key)
    if cache is None:
        return EXIT_MISS
    if args.output:
        out_dir = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(out_dir):
            raise UsageError(f"{out_dir}: no such directory")
        ok = cache.materialize_key(args.key, args.output, mode="copy")
        if not ok:
            error(f"{args.key}: not in the cache")
            return EXIT_MISS
        return EXIT_OK
    path = cache.get(args.key)
    if path is None:
        error(f"{args.key}: not in the cache")
        return EXIT_MISS
    print(path)
    return EXIT_OK


def cmd_exists(args: argparse.Namespace) -> int:
    """``exists KEY``: exit 0 if cached, 1 if not."""
    cache = _read_cache(args, quiet=True, key=args.key)
    return EXIT_OK if cache is not None and cache.exists(args.key) else EXIT_MISS


def cmd_ls(args: argparse.Namespace) -> int:
    """``ls [PREFIX]``: the cached keys."""
    cache = _read_cache(args, key=args.prefix or "")
    if cache is None:
        return EXIT_MISS
    entries = cache.keys(args.prefix or "")
    if args.json:
        _print_json([{"key": e.key, "sha256": e.digest, "size": e.size, "kind": e.kind,
                      "created": e.created, "last_used": e.last_used, "hits": e.hits}
                     for e in entries], indent=1)
        return EXIT_OK
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        print(f"{e.digest[:12]}  {e.size:>12}  {when}  {e.hits:>5}  {e.key}")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    """``stats``: counters, size and quarantine."""
    cache = _read_cache(args)
    if cache is None:
        return EXIT_MISS
    if args.zero:
        cache.zero_stats()
    s: dict[str, Any] = cache.stats()  # a JSON document
    if s.get("remote"):
        config_warnings(s["remote"]["remotes"])
    fmt = "json" if args.json else args.format
    if args.textfile:
        from cache_core import render_prometheus, write_textfile

        write_textfile(args.textfile, render_prometheus(s))
        return EXIT_OK
    if fmt == "json":
        _print_json(s, indent=1, sort_keys=True)
        return EXIT_OK
    if fmt == "prometheus":
        from cache_core import render_prometheus

        sys.stdout.write(render_prometheus(s))
        return EXIT_OK
    cap = human(s["max_size_bytes"]) if s["max_size_bytes"] else "unlimited"
    rows = [
        ("cache directory", s["cache_dir"]),
        *([("system cache", f"{s['system_cache_dir']} (read-only)")]
          if s.get("system_cache_dir") else []),
        ("enabled", "yes" if s["enabled"] else "no"),
        ("hits", s["hits"]), ("misses", s["misses"]), ("hit rate", f"{s['hit_rate'] * 100:.1f} %"),
        ("bytes served", human(s["bytes_served"])), ("entries", s["entries"]),
        ("objects", s["objects"]), ("size / max", f"{human(s['size_bytes'])} / {cap}"),
        ("  in buckets", human(s["bucket_bytes"])),
        ("puts", f"{s['puts']} ({human(s['bytes_stored'])})"),
        ("evictions", s["evictions"]), ("corrupt detected", s["corrupt_detected"]),
        ("stale detected", s["stale_detected"]),
        ("quarantine", f"{s['quarantine_files']} files, {human(s['quarantine_bytes'])}"),
    ]
    rem = s.get("remote")
    if rem:
        rows += [("remote hits", rem["hits"]), ("remote records", rem.get("records", 0)),
                 ("remote misses", rem["misses"]),
                 ("remote errors", f"{rem['errors']} (timeouts {rem['timeouts']}, "
                                   f"mismatches {rem['mismatches']})"),
                 ("remote bytes", f"in {human(rem['bytes_in'])}, out {human(rem['bytes_out'])}"),
                 ("remote state", "DEGRADED" if rem["degraded"] else "ok")]
    for name, value in rows:
        print(f"{name:<18}{value}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """``verify [--repair]``: re-hash objects, fsck git mirrors."""
    cache = args.cache()
    report = cache.verify(repair=args.repair)
    try:
        from hooks.git.mirror import verify_mirrors
    except ImportError:
        pass
    else:  # git mirrors are directories in a bucket: checked with git fsck
        git_report = verify_mirrors(cache, repair=args.repair)
        report["git_mirrors"] = git_report["broken"]
    problems = {k: v for k, v in report.items() if v}
    if args.json:
        _print_json(report, indent=1)
    else:
        for kind, items in problems.items():
            print(f"{kind}: {len(items)}" + (" (repaired)" if args.repair else ""))
            for item in items[:20]:
                print(f"  {item}")
        if not problems:
            print("ok: index and objects agree, every object and git mirror verified")
    return EXIT_OK if not problems or args.repair else EXIT_MISS


def cmd_gc(args: argparse.Namespace) -> int:
    """``gc``: evict down to the cap, apply the quarantine's retention."""
    cache = args.cache()
    cap = parse_size(args.max_size) if args.max_size else None
    age = parse_age(args.older_than) if args.older_than else None
    result = cache.gc(max_size_bytes=cap, older_than=age, wait=True)
    textfile = cache.config.metrics_textfile if cache.config else None
    if textfile:  # the daily timer/cron job runs gc: keep node_exporter's file current
        from cache_core import render_prometheus, write_textfile

        write_textfile(textfile, render_prometheus(cache.stats()))
    if args.json:
        _print_json(result, indent=1, sort_keys=True)
    elif not args.quiet:
        print(f"evicted {result.get('evicted', 0)} entries, freed {human(result.get('freed_bytes', 0))}"
              f"; {result.get('pinned', 0)} pinned by hard links elsewhere "
              f"({human(result.get('pinned_bytes', 0))})"
              + (f"; emptied {result['quarantine_removed']} quarantined files "
                 f"({human(result.get('quarantine_freed_bytes', 0))})"
                 if result.get("quarantine_removed") else ""))
    return EXIT_OK


def cmd_clear(args: argparse.Namespace) -> int:
    """``clear``: remove everything."""
    n = args.cache().clear()
    if args.json:
        _print_json({"objects_removed": n})
    elif not args.quiet:
        print(f"removed {n} objects")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add the core commands to the top-level sub-parsers."""
    s = sub.add_parser("put", help=COMMANDS["put"])
    s.add_argument("key", help="the key: a URL, sha256:HEX or KIND:NAME (e.g. deb:x_1_all.deb)")
    s.add_argument("file", help="the file to store (copied; FILE itself is left alone)")
    s.add_argument("--sha256", metavar="HEX", help="refuse the file unless it has this SHA-256")
    s.set_defaults(func=cmd_put)
    s = sub.add_parser("get", help=COMMANDS["get"])
    s.add_argument("key", help="the key to look up")
    s.add_argument("-o", "--output", metavar="DEST", help="write a verified copy to DEST instead")
    s.set_defaults(func=cmd_get)
    s = sub.add_parser("exists", help=COMMANDS["exists"])
    s.add_argument("key", help="the key to look up (size check only, no hashing)")
    s.set_defaults(func=cmd_exists)
    s = sub.add_parser("ls", help=COMMANDS["ls"])
    s.add_argument("prefix", nargs="?", help="only keys starting with this (e.g. deb:)")
    s.add_argument("--json", action="store_true", help="print the list as JSON")
    s.set_defaults(func=cmd_ls)
    s = sub.add_parser("stats", help=COMMANDS["stats"])
    s.add_argument("--json", action="store_true", help="print the counters as JSON (= --format json)")
    s.add_argument("--format", choices=["text", "json", "prometheus"], default="text",
                   help="text (default), json, or the Prometheus text format")
    s.add_argument("--textfile", metavar="FILE.prom",
                   help="write the Prometheus format to FILE.prom atomically (node_exporter's "
                        "textfile collector) instead of printing")
    s.add_argument("-z", "--zero", action="store_true", help="reset the counters first")
    s.set_defaults(func=cmd_stats)
    s = sub.add_parser("verify", help=COMMANDS["verify"])
    s.add_argument("--repair", action="store_true",
                   help="fix what is found (quarantine, re-index, rebuild broken mirrors)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_verify)
    s = sub.add_parser("gc", help=COMMANDS["gc"],
                       description="Evict least recently used entries until the cache is at 90 % "
                                   "of its cap (max_size_gb, or --max-size), and apply the "
                                   "quarantine's retention (7 days, at most 10 % of the cap). "
                                   "Run daily by pkgcache.timer.")
    s.add_argument("--max-size", metavar="SIZE", help="cap for this run (5G, 500M, 1.5GiB; bare "
                   "number = GiB)")
    s.add_argument("--older-than", metavar="AGE", help="also evict entries (and quarantined "
                   "files) unused for AGE (30d, 12h; 0d empties the quarantine)")
    s.add_argument("--json", action="store_true", help="print what was done as JSON")
    s.set_defaults(func=cmd_gc)
    s = sub.add_parser("clear", help=COMMANDS["clear"],
                       description="Remove every object, key, git mirror not in use and "
                                   "quarantined file.")
    s.add_argument("--json", action="store_true", help="print what was removed as JSON")
    s.set_defaults(func=cmd_clear)

