"""The ``pkgcache`` entry point: the parser, the command registry and the exit mapping.

Start-up is part of every apt hook and every pip/uv install, so this module imports almost
nothing: ``--version`` and ``apt hook`` never build a parser; a command imports only its own
module (like pip's ``commands_dict``); SQLite and YAML load when the cache is opened; the
top-level ``--help`` is a text generated from the parser (hooks/cli/helptext.py).
"""

from __future__ import annotations

import sys

from cache_core import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNUSABLE,
    EXIT_USAGE,
    CacheError,
    __version__,
)
from hooks.cli.argv import command_word, is_version, split_globals

TYPE_CHECKING = False  # typing costs more than the rest of `pkgcache --version`
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

    from cache_core import PackageCache


class CommandInfo:
    """Where a driver's sub-command lives and its one-line summary (shown without importing it)."""

    __slots__ = ("module", "summary")

    def __init__(self, module: str, summary: str) -> None:
        self.module = module
        self.summary = summary


# sub-command -> its module (imported only when that command runs, or for the full help)
DRIVERS: dict[str, CommandInfo] = {
    "apt": CommandInfo("hooks.apt.cli", "apt integration: harvest and verified seeding of .debs"),
    "pip": CommandInfo("hooks.pip.cli", "offline-first pip installs and wheelhouses"),
    "fetch": CommandInfo("hooks.fetch.cli", "download URL through the cache (drop-in for curl "
                                            "-fsSL URL -o DEST)"),
    "git": CommandInfo("hooks.git.cli", "git clone through a cached bare mirror per URL"),
    "remote": CommandInfo("hooks.remote.cli", "sync with the remote store (fleet tier)"),
}


def _make_parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    from hooks.common.errors import UsageError

    class Parser(argparse.ArgumentParser):
        """An ArgumentParser whose errors are one line and exit 2, with no usage dump."""

        def error(self, message: str) -> Any:  # type: ignore[override]
            sub = self.prog.removeprefix("pkgcache").strip()
            raise UsageError(f"{sub + ': ' if sub else ''}{message} (see --help)")

    return Parser


def build_parser(command: str | None = None, *, stubs: bool = False) -> argparse.ArgumentParser:
    """The parser. With ``stubs`` every command but ``command`` appears by its summary only (no
    module imported, no arguments: the top-level help, and the choices in errors); without, every
    command is built and every driver loaded (the docs' walk over all the parsers)."""
    parser_class = _make_parser_class()
    p = parser_class(prog="pkgcache", description="A verified package cache for re-provisioned "
                                                  "servers.")
    p.add_argument("--version", action="version", version=f"pkgcache {__version__}")
    p.add_argument("--config", metavar="PATH", help="config file (default: $PKGCACHE_CONFIG, "
                   "/etc/vps-configurator/config.yaml, ~/.vps-configurator/config.yaml)")
    p.add_argument("--cache-dir", metavar="DIR", help="cache directory (overrides the config)")
    p.add_argument("-q", "--quiet", action="store_true", help="print less")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)

    from hooks.cli import core

    if stubs and command not in core.COMMANDS:
        for name, summary in core.COMMANDS.items():
            sub.add_parser(name, help=summary, add_help=False)
    else:
        core.register(sub)
    for name, info in DRIVERS.items():
        if stubs and name != command:
            sub.add_parser(name, help=info.summary, add_help=False)
            continue
        try:
            module = __import__(info.module, fromlist=["register"])
        except ImportError as exc:
            if exc.name != info.module:  # the driver exists but is broken: say so, keep the core
                from cache_core import warn

                warn(f"{name} unavailable ({exc})")
            continue
        module.register(sub.add_parser(name, help=info.summary))
    return p


def _is_apt_hook(argv: list[str]) -> bool:
    """True for ``[global options] apt hook ACTION``: what apt runs, several times per install.
    ``apt hook --help`` is not: it goes through the full parser and prints help."""
    if command_word(argv) != "apt":
        return False
    i = argv.index("apt")
    return argv[i:i + 2] == ["apt", "hook"] and not {"-h", "--help"} & set(argv[i + 2:])


def _pip_fast_path(argv: list[str]) -> Any:
    """``[global options] pip install|wheelhouse PIP-ARGS`` as the parser would read it (its
    arguments go to pip unparsed), without building the parser: part of every pip/uv install."""
    split = split_globals(argv)
    if split is None or split[1][:1] != ["pip"] or len(split[1]) < 2:
        return None
    opts, rest = split
    if rest[1] not in ("install", "wheelhouse"):
        return None
    from types import SimpleNamespace

    from hooks.pip import cli

    func = cli.run_install if rest[1] == "install" else cli.run_wheelhouse
    return SimpleNamespace(**opts, command="pip", pip_command=rest[1], pip_args=rest[2:],
                           func=func)


def _run(argv: list[str], holder: dict[str, PackageCache], quick: list[bool]) -> int:
    """Parse argv and run its command (the cache is opened on first use, strict); a pip
    install appends to quick (it may end without the interpreter's teardown)."""
    args = _pip_fast_path(argv)
    if args is not None and args.pip_command == "install":
        quick.append(True)
        from hooks.pip import fast  # a warm install replayed from its memo (no SQLite, no YAML)

        code = fast.run({"config": args.config, "cache_dir": args.cache_dir,
                         "quiet": args.quiet}, args.pip_args)
        if code is not None:
            return code
    if args is None:
        # the named command is built (a driver's loads that driver); every other one is a stub
        parser = build_parser(command_word(argv), stubs=True)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE

    def cache() -> PackageCache:
        if "c" not in holder:
            from cache_core import PackageCache, load_config

            # the drop-ins (apt, pip, fetch, git) never fail or lose the cache over a remote
            hook = command_word(argv) in ("apt", "pip", "fetch", "git")
            holder["c"] = PackageCache.from_config(config=load_config(
                args.config, args.cache_dir, secret_files=not hook), strict=True)
        return holder["c"]

    args.cache = cache
    return int(args.func(args) or 0)


def _exit_code(exc: BaseException) -> int:
    """The one line on stderr and the documented exit code for an exception out of a command."""
    from hooks.cli.output import error

    if isinstance(exc, CacheError):
        error(str(exc))
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        error("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return EXIT_OK
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        error(f"{exc.strerror or exc}{where}")
        return EXIT_UNUSABLE
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(exc, sqlite3.Error):  # disk full, I/O error, locked
        text = str(exc)
        error(f"cache unusable: {text.splitlines()[0] if text else type(exc).__name__}")
        return EXIT_UNUSABLE
    if isinstance(exc, RecursionError):
        error("input nested too deeply")
        return EXIT_USAGE
    error(f"internal error: {type(exc).__name__}: {exc}")
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one command; one line on stderr and a documented exit code on error.

    Run as the program (argv None), a pip install ends with os._exit once the cache is closed
    and the output flushed: the interpreter's teardown is ~15% of a warm uv install's own cost."""
    entry = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if is_version(argv):
        sys.stdout.write(f"pkgcache {__version__}\n")
        return EXIT_OK
    if argv in (["-h"], ["--help"]):  # the parser's own text, without argparse where it can
        from hooks.cli.helptext import top

        text = top()
        if text is not None:
            sys.stdout.write(text)
            return EXIT_OK
    if _is_apt_hook(argv):  # fast path: no parser, no other driver; always exit 0
        from hooks.cli.apthook import hook_main

        return hook_main(argv)
    holder: dict[str, PackageCache] = {}
    quick: list[bool] = []
    try:
        code = _run(argv, holder, quick)
    except (Exception, KeyboardInterrupt) as exc:
        code = _exit_code(exc)
        if code == EXIT_INTERNAL and _debug():
            raise
    finally:
        if "c" in holder:
            holder["c"].close()
    if entry and quick:
        _quick_exit(code)
    return code


def _quick_exit(code: int) -> None:
    """Exit now, without the interpreter's teardown, if nothing is left to finish: no other
    thread running and the output flushed (else return: the normal exit does it)."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    import os

    os._exit(code)


def _debug() -> bool:
    import os

    return bool(os.environ.get("PKGCACHE_DEBUG"))


if __name__ == "__main__":
    sys.exit(main())
