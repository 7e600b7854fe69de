"""``pkgcache pip {install,wheelhouse}``: the pip driver's command line."""

from __future__ import annotations

TYPE_CHECKING = False  # the pip fast path (hooks.cli.app) imports this without argparse/typing
if TYPE_CHECKING:
    import argparse
    from typing import Any


def run_install(args: argparse.Namespace) -> int:
    """``pkgcache pip install PIP-ARGS`` (args.cache opens the cache; called after the options
    are read)."""
    from hooks.pip.install import install

    return install(args.cache, list(args.pip_args))


def run_wheelhouse(args: argparse.Namespace) -> int:
    """``pkgcache pip wheelhouse PIP-ARGS``."""
    from hooks.pip.install import wheelhouse

    return wheelhouse(args.cache(), list(args.pip_args))


def register(pip: Any) -> None:
    """Fill in ``pip install`` and ``pip wheelhouse``; their arguments go to pip unparsed."""
    import argparse

    sub = pip.add_subparsers(dest="pip_command", metavar="{install,wheelhouse}")
    sub.required = True
    # prefix_chars="+": every argument (-r, --hash, ...) reaches pip untouched.
    inst = sub.add_parser("install", prefix_chars="+", add_help=False,
                          help="pip install from the cache (see: pkgcache pip install --help)")
    inst.add_argument("pip_args", nargs=argparse.REMAINDER, metavar="PIP-ARGS",
                      help="arguments for pip install (-r FILE, names, -c, --upgrade, ...)")
    inst.set_defaults(func=run_install)
    wh = sub.add_parser("wheelhouse", prefix_chars="+", add_help=False,
                        help="write a wheelhouse directory with a hashed find-links page")
    wh.add_argument("pip_args", nargs=argparse.REMAINDER, metavar="PIP-ARGS",
                    help="requirements as for pip install (-r FILE, names, -c, ...)")
    wh.set_defaults(func=run_wheelhouse)
