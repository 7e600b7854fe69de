"""`pkgcache apt ...`: seed, import, enable, disable, status, and the hook entry apt runs."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from cache_core import EXIT_MISS, EXIT_OK, EXIT_UNUSABLE, EXIT_USAGE
from hooks.cli.output import error, human
from hooks.common.paths import PKGCACHE_BIN


def cmd_hook(args: argparse.Namespace) -> int:
    """``apt hook ACTION`` through the parser (``--help`` and tests); always 0."""
    from hooks.apt import hook
    from hooks.cli.apthook import failopen_cache

    return hook.run(args.action, lambda: failopen_cache(args))


def cmd_seed(args: argparse.Namespace) -> int:
    """``apt seed [PKG...]``: place verified cached debs into apt's archives."""
    from hooks.apt.aptenv import AptLockBusy
    from hooks.apt.seed import seed

    cache = args.cache()
    try:
        rep = seed(cache, args.packages or None, lock_timeout=args.lock_timeout,
                   target_release=args.target_release)
    except ValueError as exc:
        error(f"apt seed: {exc}")
        return EXIT_USAGE
    except ImportError:
        error("python3-apt is needed to verify debs against apt's index")
        return EXIT_UNUSABLE
    except AptLockBusy as exc:
        error(f"{exc}; try again when apt is done")
        return EXIT_UNUSABLE
    from hooks.apt.aptenv import record

    try:
        record(cache, "seed", dict(rep.as_dict(), trigger="cli"))
    except OSError:
        pass
    if args.json:
        print(json.dumps(dict(rep.as_dict(), rejected=rep.rejected, missing=rep.missing,
                              unknown=rep.unknown), indent=1))
    elif not args.quiet:
        print(f"seeded {rep.placed} .deb(s) ({human(rep.bytes_placed)}), {rep.present} already "
              f"in place, {len(rep.rejected)} rejected, {len(rep.missing)} not cached")
        for fname, reason in rep.rejected:
            print(f"  rejected {fname}: {reason}")
    for line in rep.unknown:  # apt's own words (E: Unable to locate package X, ...)
        error(f"apt: {line.removeprefix('E: ')}")
    return EXIT_MISS if rep.unknown else EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """``apt import DIR``: ingest .debs that match apt's index."""
    from pathlib import Path

    from hooks.apt.importer import import_dir

    d = Path(args.directory)
    if not d.is_dir():
        error(f"{d}: not a directory")
        return EXIT_USAGE
    try:
        rep = import_dir(args.cache(), d)
    except ImportError:
        error("python3-apt is needed to verify debs against apt's index")
        return EXIT_UNUSABLE
    if args.json:
        print(json.dumps([{"file": f, "result": r, "reason": why} for f, r, why in rep.rows],
                         indent=1))
    else:
        for f, r, why in rep.rows:
            if not args.quiet or r not in ("imported", "already"):
                print(f"{r:<10} {f}" + (f": {why}" if r not in ("imported",) else ""))
        print(f"imported {rep.count('imported')}, already cached {rep.count('already')}, "
              f"unmatched {rep.count('unmatched')}, skipped {rep.count('skipped')}")
    return EXIT_OK if rep.count("unmatched") + rep.count("failed") == 0 else EXIT_MISS


def cmd_enable(args: argparse.Namespace) -> int:
    """``apt enable``: install the apt.conf.d snippet."""
    from hooks.apt import switch

    try:
        path = switch.enable(args.command)
        method = switch.enable_method(args.method_dir)
    except ValueError as exc:
        error(f"{exc}")
        return EXIT_USAGE
    except OSError as exc:
        error(f"cannot install the apt method: {exc.strerror or exc}: {exc.filename or ''}")
        return EXIT_UNUSABLE
    if not args.quiet:
        print(f"enabled: {path}")
        if method is not None:
            print(f"enabled: {method} (the download method, in "
                  f"{args.method_dir or switch.LOCAL_METHODS})")
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    """``apt disable``: remove the apt.conf.d snippet."""
    from hooks.apt import switch

    path, was = switch.disable()
    gone = switch.disable_method()
    if not args.quiet:
        print(f"disabled: removed {path}" if was else f"already disabled ({path} absent)")
        for p in gone:
            print(f"disabled: removed {p}")
    return EXIT_OK


def _when(rec: dict[str, Any] | None) -> str:
    if not rec:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.get("time", 0)))


def cmd_status(args: argparse.Namespace) -> int:
    """``apt status``: hooks, method, last harvest and seed."""
    from hooks.apt import switch

    info = switch.status(args.cache())
    if args.json:
        print(json.dumps(info, indent=1, sort_keys=True))
        return EXIT_OK
    why = "" if info["snippet_installed"] else ", missing"
    if info["snippet_installed"] and info["python_apt"] and not info["command_ok"]:
        why = f", command {info['command'] or '?'} missing or not executable"
    print(f"hooks        {'active' if info['active'] else 'NOT active'} ({info['snippet']}{why})")
    if not info["python_apt"]:
        print("python-apt   missing: seeding is off (harvest still works)")
    print(f"cached debs  {info['cached_debs']} ({human(info['cached_bytes'])})")
    h = info["last_harvest"]
    print(f"last harvest {_when(h)}" + (
        f": {h.get('stored', 0)} new, {h.get('already', 0)} already cached, "
        f"{human(h.get('bytes', 0))}, {h.get('seconds', 0)} s" if h else ""))
    s = info["last_seed"]
    print(f"last seed    {_when(s)}" + (
        f" ({s.get('trigger', '?')}): {s.get('placed', 0)} placed, {human(s.get('bytes', 0))}, "
        f"{s.get('rejected', 0)} rejected, {s.get('seconds', 0)} s" if s else ""))
    if s and s.get("from_remote"):
        print(f"             {s['from_remote']} fetched from the fleet "
              f"({human(s.get('bytes_remote', 0))})")
    from hooks.apt.fleet import describe_run

    m, run = info.get("method") or {}, info.get("last_method_run")
    print(f"method       {'active' if m.get('active') else 'NOT active'} "
          f"(http: {m.get('http') or 'apt default'}, https: {m.get('https') or 'apt default'})")
    if not m.get("active"):
        print("             apt's downloads skip the cache and the fleet; "
              "`pkgcache apt enable` turns the method on")
    print(f"last run     {_when(run)}" + (f": {describe_run(run, human)}" if run else ""))
    return EXIT_OK


def register(p: Any) -> None:
    """Fill in ``pkgcache apt ...`` (p: its parser, made by the command registry)."""
    sub = p.add_subparsers(dest="apt_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), EXIT_USAGE)[1])

    s = sub.add_parser("seed", help="put cached debs, verified against apt's index, into archives")
    s.add_argument("packages", nargs="*", metavar="PKG",
                   help="seed what `apt-get install PKG...` would fetch, as apt resolves it "
                        "(name, name:arch, name=version, name/release, globs, ./file.deb); "
                        "default: every cached candidate")
    s.add_argument("-t", "--target-release", metavar="RELEASE",
                   help="as apt-get -t: prefer versions from RELEASE (with PKG...)")
    s.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="wait at most this long for apt's archives lock (default 60)")
    s.add_argument("--json", action="store_true", help="print the full report as JSON")
    s.set_defaults(func=cmd_seed)

    s = sub.add_parser("import", help="ingest existing .debs from DIR, verified against the index")
    s.add_argument("directory", metavar="DIR", help="directory with .deb files to ingest")
    s.add_argument("--json", action="store_true", help="print the per-file report as JSON")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("enable", help="install the apt.conf.d snippet (hooks) and, without the "
                       ".deb, the download method")
    s.add_argument("--command", default=None, metavar="PATH",
                   help="pkgcache executable the hooks run (default: the one running this "
                        f"command, e.g. {PKGCACHE_BIN} or a pip install's /usr/local/bin/pkgcache)")
    s.add_argument("--method-dir", default=None, metavar="DIR",
                   help="where to put the download method when the .deb's is not installed "
                        "(default /usr/local/lib/pkgcache/methods)")
    s.set_defaults(func=cmd_enable)

    s = sub.add_parser("disable", help="remove the apt.conf.d snippet and what enable added")
    s.set_defaults(func=cmd_disable)

    s = sub.add_parser("status", help="are the hooks active; what the last harvest/seed did")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("hook", help="(run by apt) fail-open hook entry")
    s.add_argument("action", choices=["harvest", "pre-install", "post-update", "sweep"],
                   help="the hook apt runs (see pkgcache(1)); always exits 0")
    s.set_defaults(func=cmd_hook)
