"""``pkgcache --help`` without argparse: the top-level help as the parser renders it at 80
columns on the Python it was generated with (argparse alone costs more than the rest of the
start-up). Any other width or Python builds the parser. Regenerate after changing the parser
or a summary: ``python3 -m hooks.cli.helptext`` (tests/cli/test_startup.py checks it)."""

from __future__ import annotations

import os
import sys

WIDTH = 80
PYTHON = (3, 11)
TOP = """\
usage: pkgcache [-h] [--version] [--config PATH] [--cache-dir DIR] [-q]
                COMMAND ...

A verified package cache for re-provisioned servers.

positional arguments:
  COMMAND
    put            store FILE under KEY
    get            print the path of KEY's verified file (exit 1 on a miss)
    exists         exit 0 if KEY is cached, 1 if not
    ls             list cached keys
    stats          hits, misses, puts, size, evictions and quarantine
    verify         re-hash every object, git fsck every mirror; reconcile
                   index and files
    gc             evict least recently used entries down to the cap
    clear          remove everything from the cache
    apt            apt integration: harvest and verified seeding of .debs
    pip            offline-first pip installs and wheelhouses
    fetch          download URL through the cache (drop-in for curl -fsSL URL
                   -o DEST)
    git            git clone through a cached bare mirror per URL
    remote         sync with the remote store (fleet tier)

options:
  -h, --help       show this help message and exit
  --version        show program's version number and exit
  --config PATH    config file (default: $PKGCACHE_CONFIG, /etc/vps-
                   configurator/config.yaml, ~/.vps-configurator/config.yaml)
  --cache-dir DIR  cache directory (overrides the config)
  -q, --quiet      print less
"""


def columns() -> int:
    """The terminal width argparse formats for (shutil.get_terminal_size's columns)."""
    try:
        cols = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        cols = 0
    if cols <= 0:
        try:
            cols = os.get_terminal_size(sys.__stdout__.fileno()).columns or WIDTH  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            cols = WIDTH
    return cols


def top() -> str | None:
    """The top-level help text, or None where only the parser can render it."""
    return TOP if sys.version_info[:2] == PYTHON and columns() == WIDTH else None


def render() -> str:
    """The top-level help as the parser renders it at WIDTH columns."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        from hooks.cli.app import build_parser

        return build_parser(None, stubs=True).format_help()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _regenerate() -> None:
    path = os.path.abspath(__file__)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split('TOP = """\\\n', 1)
    tail = rest.split('"""\n', 1)[1]
    body = render().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    major, minor = sys.version_info[:2]
    head = head.replace(f"PYTHON = {PYTHON!r}", f"PYTHON = ({major}, {minor})")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'{head}TOP = """\\\n{body}"""\n{tail}')


if __name__ == "__main__":
    _regenerate()
