"""Render the top-level ``pkgcache --help`` into hooks/cli/helptext.py from the parser
(hooks.cli.build_parser), at helptext.WIDTH columns on this Python.

    python3 scripts/help_text.py           rewrite TOP (and PYTHON) in hooks/cli/helptext.py
    python3 scripts/help_text.py --check   exit 1 if TOP differs from what the parser renders

tests/cli/test_startup.py checks that the committed text is the parser's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELPTEXT = REPO / "hooks" / "cli" / "helptext.py"


def render() -> str:
    """The top-level help as the parser renders it at helptext.WIDTH columns."""
    sys.path.insert(0, str(REPO))
    from hooks.cli import build_parser, helptext

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(helptext.WIDTH)
    try:
        return str(build_parser(None, stubs=True).format_help())
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def rewritten(text: str) -> str:
    """helptext.py's text with TOP (and PYTHON) as rendered here."""
    head, rest = text.split('TOP = """\\\n', 1)
    tail = rest.split('"""\n', 1)[1]
    body = render().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = [f"PYTHON = ({sys.version_info[0]}, {sys.version_info[1]})"
             if ln.startswith("PYTHON = ") else ln for ln in head.split("\n")]
    return "\n".join(lines) + f'TOP = """\\\n{body}"""\n{tail}'


def main() -> int:
    """Rewrite, or with --check compare."""
    text = HELPTEXT.read_text(encoding="utf-8")
    new = rewritten(text)
    if "--check" in sys.argv[1:]:
        if new != text:
            print(f"{HELPTEXT} differs from the parser's help: run python3 scripts/help_text.py")
            return 1
        return 0
    HELPTEXT.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
