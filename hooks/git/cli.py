"""`pkgcache git clone [OPTIONS] URL [DEST]`, `pkgcache git update [URL…]`, `pkgcache git verify`.

``clone`` takes git clone's own options anywhere on the line (before or after URL and DEST);
pkgcache's options (``--offline``, ``-h/--help``) are recognised by name and never passed to git.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from cache_core import EXIT_MISS, EXIT_OK, EXIT_USAGE, CacheError, warn
from hooks.cli.output import error
from hooks.git.mirror import GitError, clone, update, verify_mirrors

# git clone options that take their value as the next word (git-clone(1), git 2.39).
VALUE_OPTIONS = frozenset({
    "-o", "--origin", "-b", "--branch", "-u", "--upload-pack", "--reference",
    "--reference-if-able", "--separate-git-dir", "--depth", "--shallow-since",
    "--shallow-exclude", "-c", "--config", "--template", "-j", "--jobs", "--filter",
    "--server-option", "--bundle-uri", "--ref-format",
})
OWN_FLAGS = frozenset({"--offline"})
HELP_FLAGS = frozenset({"-h", "--help"})
CLONE_USAGE = "pkgcache git clone [--offline] [GIT-CLONE-OPTIONS] URL [DEST]"
CLONE_HELP = f"""usage: {CLONE_USAGE}

Clone URL into DEST through a bare mirror of URL kept in the cache. Online, the mirror is
refreshed and the clone borrows its objects (git clone --reference MIRROR --dissociate), so
only new objects cross the network and the result needs nothing from the cache. When the
server cannot be reached, the clone is made from the mirror and origin still points at URL.

positional arguments:
  URL                   the repository to clone (any URL git accepts)
  DEST                  the directory to clone into (default: derived from URL, as git does)

options (anywhere on the line; everything else is passed to git clone):
  --offline             do not contact the server; clone from the cached mirror (exit 1 if
                        there is none)
  --recurse-submodules[=PATHSPEC], --recursive
                        also clone submodules, each through its own mirror
  -b/--branch, --depth, --origin, --filter, ...
                        git clone's options, with their values
  -h, --help            show this help and exit
  --                    end of options: the words after it are URL and DEST

Exit status: 0 ok, 1 offline and no mirror, 2 bad input, 4 cache unusable, 5 network or
git error.
"""


class CloneArgs:
    """A `git clone` command line split into pkgcache's options, git's options and URL/DEST."""

    def __init__(self, words: list[str]) -> None:
        self.offline = False
        self.help = False
        self.submodules: str | None = None      # None: no; "": all; else a pathspec
        self.git_args: list[str] = []
        positional: list[str] = []
        i = 0
        while i < len(words):
            w = words[i]
            if w == "--":
                positional.extend(words[i + 1:])
                break
            if w in OWN_FLAGS:
                self.offline = True
            elif w in HELP_FLAGS:
                self.help = True
            elif w in ("--recurse-submodules", "--recursive"):
                self.submodules = self.submodules or ""
            elif w.startswith(("--recurse-submodules=", "--recursive=")):
                self.submodules = w.split("=", 1)[1]
            elif w.startswith("-") and len(w) > 1:
                self.git_args.append(w)
                if w in VALUE_OPTIONS:
                    if i + 1 >= len(words):
                        raise GitError(f"git clone option {w} needs a value", EXIT_USAGE)
                    self.git_args.append(words[i + 1])
                    i += 1
            else:
                positional.append(w)
            i += 1
        if self.help:
            return
        if not positional:
            raise GitError(f"a repository URL is required (usage: {CLONE_USAGE})", EXIT_USAGE)
        if len(positional) > 2:
            raise GitError(f"too many arguments: {' '.join(positional[2:])} "
                           f"(usage: {CLONE_USAGE})", EXIT_USAGE)
        self.url = positional[0]
        self.dest = positional[1] if len(positional) == 2 else humanish(self.url)


def humanish(url: str) -> str:
    """The directory git clone would pick for url: last path part without .git / .bundle."""
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    tail = re.sub(r"(\.git|\.bundle)\Z", "", tail) or "repo"
    if tail in (".", ".."):
        raise GitError(f"cannot derive a directory name from {url!r}; give DEST", EXIT_USAGE)
    return tail


def register(p: Any) -> None:
    """Fill in ``pkgcache git clone|update|verify`` (p: its parser, made by the registry)."""
    p.description = ("Clone git repositories through one bare mirror per URL kept in the cache. "
                     "Exit 0 ok, 1 offline miss or check failed, 2 bad input, 4 cache unusable, "
                     "5 network/git error.")
    gsub = p.add_subparsers(dest="git_command", metavar="{clone,update,verify}")
    # prefix "+": argparse leaves every word to us, so git's options may come anywhere.
    c = gsub.add_parser("clone", help="clone URL into DEST, borrowing objects from the mirror",
                        prefix_chars="+", add_help=False, usage=CLONE_USAGE)
    c.add_argument("words", nargs="*", metavar="ARG", help=argparse.SUPPRESS)
    c.set_defaults(func=cmd_clone)
    u = gsub.add_parser("update", help="fetch new commits into the mirrors (all, or these URLs); "
                                       "rebuild a mirror that fails git fsck")
    u.add_argument("urls", nargs="*", metavar="URL", help="mirrors to update (default: all)")
    u.set_defaults(func=cmd_update)
    v = gsub.add_parser("verify", help="check every mirror with git fsck")
    v.add_argument("--repair", action="store_true",
                   help="rebuild a broken mirror from its origin (removed if that fails)")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=cmd_verify)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def cmd_clone(args: argparse.Namespace) -> int:
    """Handler: cache faults fall back to a plain git clone (one warning)."""
    try:
        opts = CloneArgs(list(args.words))
    except GitError as exc:
        error(f"git clone: {exc}")
        return exc.exit_code
    if opts.help:
        sys.stdout.write(CLONE_HELP)
        return EXIT_OK
    try:
        cache = args.cache()
        cache.strict = False
    except CacheError as exc:
        warn(f"cache unavailable, cloning without it ({exc})")
        cache = None
    try:
        return clone(cache, opts.url, opts.dest, opts.git_args, offline=opts.offline,
                     submodules=opts.submodules)
    except GitError as exc:
        error(f"git clone: {exc}")
        return exc.exit_code


def cmd_update(args: argparse.Namespace) -> int:
    """Handler: 0 if every mirror was refreshed, 5 if any fetch failed."""
    try:
        return update(args.cache(), args.urls)
    except GitError as exc:
        error(f"git update: {exc}")
        return exc.exit_code


def cmd_verify(args: argparse.Namespace) -> int:
    """Handler: 0 if every mirror passes git fsck (or was repaired), 1 otherwise."""
    report = verify_mirrors(args.cache(), repair=args.repair)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_mirror_report(report, args.repair)
    bad = report["broken"] if not args.repair else report["unrepaired"]
    return EXIT_MISS if bad else EXIT_OK


def print_mirror_report(report: dict[str, Any], repair: bool) -> None:
    """Text form of a verify_mirrors report (also used by ``pkgcache verify``)."""
    if report["broken"]:
        print(f"git mirrors broken: {len(report['broken'])}" + (" (repaired)" if repair else ""))
        for name in report["broken"]:
            print(f"  {name}")
    if report.get("unrepaired"):
        print(f"git mirrors not repaired (origin unreachable?): {len(report['unrepaired'])}")
    if not report["broken"]:
        print(f"ok: {report['checked']} git mirror(s) pass git fsck")
