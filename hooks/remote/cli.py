"""``pkgcache remote {push,pull,status,keygen}``: explicit syncs with the fleet tier."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from cache_core import EXIT_MISS, EXIT_NETWORK, EXIT_OK, EXIT_USAGE, CacheError, ConfigError
from hooks.cli.output import config_warnings, error

if TYPE_CHECKING:
    from cache_core import Remote


def _remote(args: argparse.Namespace, *, rw: str = "") -> Remote:
    """The cache's remote tier (a ConfigError without one; rw: the action that needs a rw one)."""
    remote = args.cache().remote
    if remote is None:
        raise ConfigError("no remote configured (performance.cache.remote in the config)")
    if rw and not remote.writable:
        raise ConfigError(f"no remote with mode: rw to {rw}")
    return remote


def _keys(args: argparse.Namespace) -> list[str]:
    if not args.all and not args.keys:
        raise CacheError("give KEY... or --all")
    return list(args.keys)


def _push(args: argparse.Namespace) -> int:
    remote = _remote(args, rw="push to")
    keys = list(args.keys) if (args.all or args.keys) else []
    r = remote.push(keys, all_keys=args.all)
    if args.json:
        print(json.dumps(r, indent=1, sort_keys=True))
    elif not args.quiet:
        print(f"uploaded {r['uploaded']}, already there {r['skipped']}, failed {r['failed']}, "
              f"still queued {r['pending']}"
              + (f", kept private {r['private']}" if r.get("private") else ""))
    return EXIT_NETWORK if r["failed"] or r["pending"] else EXIT_OK


def _pull(args: argparse.Namespace) -> int:
    if getattr(args, "pip", False) or getattr(args, "apt", None) or getattr(args, "git", None):
        return _pull_drivers(args)
    try:
        keys = _keys(args)
    except CacheError as exc:
        error(f"remote pull: {exc}")
        return EXIT_USAGE
    r = _remote(args).pull(keys, all_keys=args.all)
    if args.json:
        print(json.dumps(r, indent=1, sort_keys=True))
    elif not args.quiet:
        print(f"pulled {r['pulled']}, already here {r['present']}, not found {r['missing']}"
              + (f", stores not listed {r['unlisted']}" if r.get("unlisted") else ""))
    if r.get("unlisted"):
        return EXIT_NETWORK  # a store could not be listed (its one line is on stderr)
    return EXIT_MISS if r["missing"] else EXIT_OK


def _pull_drivers(args: argparse.Namespace) -> int:
    """``pull --pip -r FILE | --apt PKG… | --git URL…`` (hooks/remote/pull.py)."""
    from hooks.remote import pull as remote_pull

    if args.keys or args.all:
        error("remote pull: KEYs/--all and --pip/--apt/--git exclude each other")
        return EXIT_USAGE
    if args.pip and not args.requirement:
        error("remote pull: --pip needs -r FILE")
        return EXIT_USAGE
    _remote(args)  # a remote must be configured
    cache = args.cache()
    rows: dict[str, Any] = {}
    try:
        if args.pip:
            rows["pip"] = remote_pull.pull_pip(cache, args.requirement, args.python)
        if args.apt:
            rows["apt"] = remote_pull.pull_apt(cache, args.apt)
        if args.git:
            rows["git"] = remote_pull.pull_git(cache, args.git)
    except (OSError, RuntimeError, ValueError) as exc:
        error(f"remote pull: {exc}")
        return EXIT_USAGE
    missing = sum(len(m) for _, m in rows.values())
    if args.json:
        print(json.dumps({k: {"pulled": n, "missing": m} for k, (n, m) in rows.items()},
                         indent=1, sort_keys=True))
    elif not args.quiet:
        for k, (n, m) in rows.items():
            print(f"{k}: pulled {n}, not found {len(m)}" + (f" ({', '.join(m[:5])})" if m else ""))
    return EXIT_MISS if missing else EXIT_OK


def _status(args: argparse.Namespace) -> int:
    if args.store:
        return _store_status(args)
    remote = args.cache().remote
    if remote is None:  # asked for a status, "none" is the answer (exit 0), not a config error
        if args.json:
            print(json.dumps({"remotes": [], "spool": 0, "uploader_running": False}, indent=1))
        else:
            print("no remote configured (performance.cache.remote in the config)")
        return EXIT_OK
    st = remote.tier.status()
    config_warnings(st["remotes"])
    if args.json:
        print(json.dumps(st, indent=1, sort_keys=True))
        return EXIT_OK
    for r in st["remotes"]:
        state = f"DEGRADED (retry in {r['retry_in_s']:.0f} s)" if r["degraded"] else "ok"
        print(f"{r['url']}  [{r['mode']}]  {state}")
        print(f"  hits {r['hits']}  misses {r['misses']}  errors {r['errors']}  "
              f"timeouts {r['timeouts']}  mismatches {r['mismatches']}  "
              f"rejected records {r['rejected_records']}")
        print(f"  bytes in {r['bytes_in']}  out {r['bytes_out']}  uploads {r['uploads']}  "
              f"already there {r['upload_skipped']}  dropped {r['dropped']}")
        if r.get("last_error"):
            print(f"  last error: {r['last_error']}")
    print(f"spool: {st['spool']} queued" + (" (uploader running)" if st["uploader_running"] else ""))
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    from cache_core import generate_keypair

    if not args.name or ":" in args.name or len(args.name) > 64:
        error("remote keygen: NAME must be 1-64 characters without ':'")
        return EXIT_USAGE
    secret, public = generate_keypair(args.name)
    fd = os.open(args.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    print(public)
    return EXIT_OK


def _resign(args: argparse.Namespace) -> int:
    """Re-sign the live records of every rw remote with a new key (a rotation: docs/fleet.md)."""
    remote = _remote(args, rw="re-sign records on")
    try:
        rows = remote.tier.resign(args.secret_file)
    except CacheError as exc:
        error(f"remote resign: {exc}")
        return exc.exit_code
    config_warnings([{"url": r["url"], "config_warning": "the new key is not in this member's "
                      "trusted_public_keys: add it on every member first"}
                     for r in rows if not r["new_key_trusted"]])
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
    elif not args.quiet:
        for r in rows:
            scope = "" if r["listed"] else " (store cannot list: only this member's keys)"
            print(f"{r['url']}: re-signed {r['resigned']}, already new {r['already']}, "
                  f"not verified (left alone) {r['unverified']}{scope}"
                  + (f"; error: {r['error']}" if r.get("error") else ""))
    return EXIT_NETWORK if any(r.get("error") for r in rows) else EXIT_OK


def _gc(args: argparse.Namespace) -> int:
    """Bound the rw stores' size (cache_core/storage/remote/gc.py)."""
    from hooks.cli.core import parse_age, parse_size

    remote = _remote(args, rw="collect")
    grace = parse_age(args.grace)
    max_size = parse_size(args.max_size) if args.max_size is not None else None
    try:
        rows = remote.tier.gc(grace, max_size, args.dry_run, parse_age(args.retention))
    except CacheError as exc:  # a store that cannot list (2), another gc running (75)
        error(f"remote gc: {exc}")
        return exc.exit_code
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
        return EXIT_NETWORK if any(r.get("error") for r in rows) else EXIT_OK
    for r in rows:
        if r.get("error"):
            print(f"{r['url']}: error: {r['error']}")
            continue
        if args.dry_run:
            for name in r["deleted"]:
                print(f"would delete {name}")
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{r['url']}: {r['objects']} objects, {r['records']} records, {r['bytes']} bytes; "
              f"{verb} {r['deleted_objects']} objects and {r['deleted_records']} records "
              f"({r['deleted_bytes']} bytes); {r['bytes_after']} bytes left"
              + (" (still over --max-size: the rest is in use)" if r["over_limit"] else "")
              + (f"; {r['unverified_records']} records not verified (they protect nothing)"
                 if r["unverified_records"] else "")
              + (f"; members seen: {', '.join(r['members'])}" if r["members"] else ""))
    return EXIT_NETWORK if any(r.get("error") for r in rows) else EXIT_OK


def _store_status(args: argparse.Namespace) -> int:
    rows = _remote(args).tier.store_status(members=args.members)
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
    else:
        for r in rows:
            if r.get("error"):
                print(f"{r['url']}: error: {r['error']}")
            elif not r["listed"]:
                print(f"{r['url']}: cannot list (a plain HTTP/Bazel store)")
            else:
                print(f"{r['url']}: {r['bytes']} bytes, {r['objects']} objects, "
                      f"{r['records']} records"
                      + (f"; members seen (7 days): {', '.join(r['members']) or 'none'}"
                         if "members" in r else ""))
    return EXIT_NETWORK if any(r.get("error") for r in rows) else EXIT_OK


def register(rp: Any) -> None:
    """Fill in ``remote push|pull|status|keygen`` (rp: its parser, made by the registry)."""
    sub = rp.add_subparsers(dest="remote_command", metavar="{push,pull,status,keygen,resign,gc}")
    sub.required = True
    for name, func, text in (("push", _push, "upload KEYs (or --all; none: drain the spool)"),
                             ("pull", _pull, "download KEYs (or --all from a listable store)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("keys", nargs="*", metavar="KEY", help="cache keys to transfer")
        s.add_argument("--all", action="store_true", help="every key (push: every local key)")
        s.add_argument("--json", action="store_true", help="print the report as JSON")
        s.set_defaults(func=func)
    s.add_argument("--pip", action="store_true",
                   help="pre-warm what the fleet holds for requirements files (-r FILE)")
    s.add_argument("-r", "--requirement", action="append", metavar="FILE", default=[],
                   help="requirements file for --pip (repeatable)")
    s.add_argument("--python", metavar="PY|VENV", help="target interpreter for --pip")
    s.add_argument("--apt", nargs="+", metavar="PKG", help="pre-warm these packages' .debs")
    s.add_argument("--git", nargs="+", metavar="URL", help="pre-warm mirrors of these URLs")
    s = sub.add_parser("status", help="per-remote counters, breaker and spool")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.add_argument("--store", action="store_true",
                   help="the stores' size, object and record counts (listable stores)")
    s.add_argument("--members", action="store_true",
                   help="with --store: members seen in the last 7 days (reads every record)")
    s.set_defaults(func=_status)
    s = sub.add_parser("gc", help="delete what no live record needs from rw stores")
    s.add_argument("--grace", default="1d", metavar="AGE",
                   help="keep everything younger than this (default 1d; 12h, 90m, 2w)")
    s.add_argument("--retention", default="7d", metavar="AGE",
                   help="keep what members took from the store within this window (default 7d)")
    s.add_argument("--max-size", metavar="SIZE",
                   help="delete unreferenced objects, oldest first, only down to this size")
    s.add_argument("--dry-run", action="store_true", help="print what would be deleted")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=_gc)
    s = sub.add_parser("keygen", help="make an Ed25519 key pair; prints the public key")
    s.add_argument("name", help="the key's name (e.g. fleet-1), used in key records")
    s.add_argument("--secret-file", required=True, metavar="PATH",
                   help="where to write the secret key (mode 600; must not exist)")
    s.set_defaults(func=_keygen)
    s = sub.add_parser("resign", help="re-sign every live record on rw remotes with a new key")
    s.add_argument("--secret-file", required=True, metavar="PATH",
                   help="the new secret key (made by `remote keygen`)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=_resign)
