"""``pkgcache pip {install,wheelhouse}``: the pip driver's command line."""

from __future__ import annotations

import argparse
from typing import Any


def _install(args: argparse.Namespace) -> int:
    from hooks.pip.install import install

    return install(args.cache, list(args.pip_args))


def _wheelhouse(args: argparse.Namespace) -> int:
    from hooks.pip.install import wheelhouse

    return wheelhouse(args.cache(), list(args.pip_args))


def register(pip: Any) -> None:
    """Fill in ``pip install`` and ``pip wheelhouse``; their arguments go to pip unparsed."""
    sub = pip.add_subparsers(dest="pip_command", metavar="{install,wheelhouse}")
    sub.required = True
    # prefix_chars="+": every argument (-r, --hash, ...) reaches pip untouched.
    inst = sub.add_parser("install", prefix_chars="+", add_help=False,
                          help="pip install from the cache (see: pkgcache pip install --help)")
    inst.add_argument("pip_args", nargs=argparse.REMAINDER, metavar="PIP-ARGS",
                      help="arguments for pip install (-r FILE, names, -c, --upgrade, ...)")
    inst.set_defaults(func=_install)
    wh = sub.add_parser("wheelhouse", prefix_chars="+", add_help=False,
                        help="write a wheelhouse directory with a hashed find-links page")
    wh.add_argument("pip_args", nargs=argparse.REMAINDER, metavar="PIP-ARGS",
                    help="requirements as for pip install (-r FILE, names, -c, ...)")
    wh.set_defaults(func=_wheelhouse)
