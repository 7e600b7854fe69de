"""The pkgcache command line: parser, lazy command registry, output helpers, exit mapping.

``hooks.cli:main`` is the console script; ``python -m hooks.cli`` runs the same. Both names are
loaded on first use: apt's hooks start in hooks.cli.apthook without the parser's module.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (mypy takes it as True)
if TYPE_CHECKING:
    from hooks.cli.app import build_parser, main

__all__ = ["build_parser", "main"]


def __getattr__(name: str) -> object:
    """build_parser and main, from hooks.cli.app on first use (PEP 562)."""
    if name in __all__:
        from hooks.cli import app

        return getattr(app, name)
    raise AttributeError(f"module 'hooks.cli' has no attribute {name!r}")
