"""Reading pkgcache's global options and command word without argparse (the fast paths)."""

from __future__ import annotations

GLOBAL_WITH_VALUE = ("--config", "--cache-dir")


def command_word(argv: list[str]) -> str | None:
    """The sub-command in argv (after the global options), or None."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in GLOBAL_WITH_VALUE else 1
    return argv[i] if i < len(argv) else None


def is_version(argv: list[str]) -> bool:
    """True for ``pkgcache [global options] --version`` (no command before it)."""
    for i, word in enumerate(argv):
        if word == "--version":
            return True
        if not word.startswith("-") and (i == 0 or argv[i - 1] not in GLOBAL_WITH_VALUE):
            return False
    return False


def split_globals(argv: list[str]) -> tuple[dict[str, object], list[str]] | None:
    """(global options, the rest from the command word on); None if argv has an option this
    cannot read (then the full parser reports it)."""
    opts: dict[str, object] = {"config": None, "cache_dir": None, "quiet": False}
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt in GLOBAL_WITH_VALUE and rest:
            opts[opt[2:].replace("-", "_")] = rest.pop(0)
        elif opt.startswith(("--config=", "--cache-dir=")):
            key, value = opt[2:].split("=", 1)
            opts[key.replace("-", "_")] = value
        elif opt in ("-q", "--quiet"):
            opts["quiet"] = True
        else:
            return None
    return opts, rest
