"""``pkgcache --help`` without argparse: the top-level help as the parser renders it at 80
columns on the Python it was generated with (argparse alone costs more than the rest of the
start-up). Any other width or Python builds the parser. Regenerate after changing the parser
or a summary: ``python3 scripts/help_text.py`` (tests/cli/test_startup.py checks it)."""

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
