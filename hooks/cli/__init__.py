"""The pkgcache command line: parser, lazy command registry, output helpers, exit mapping.

``hooks.cli:main`` is the console script; ``python -m hooks.cli`` runs the same.
"""

from hooks.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
