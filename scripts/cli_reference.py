"""Render the command reference of docs/cli.md from the parser (hooks.cli.build_parser), the one
source of every command, argument and help text.

    .venv/bin/python scripts/cli_reference.py           rewrite the generated part of docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check   exit 1 if it differs from the parser's

Only the text between BEGIN and END is generated; the rest of docs/cli.md is written by hand.
tests/recipes/test_docs.py checks that the committed file matches the parser."""

# argparse has no public API to walk a parser: its _actions are what argparse itself formats.
# ruff: noqa: SLF001
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI_MD = REPO / "docs" / "cli.md"
BEGIN = "<!-- BEGIN generated from the parser by scripts/cli_reference.py: do not edit by hand -->\n"
END = "<!-- END generated -->\n"


def _cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _usage(p: argparse.ArgumentParser) -> str:
    return " ".join(p.format_usage().split()).removeprefix("usage: ")


def _arg_name(a: argparse.Action) -> str:
    """How an argument is written: ``--sha256 HEX``, ``-o/--output DEST``, ``key``."""
    if not a.option_strings:
        return str(a.metavar or a.dest)
    name = "/".join(a.option_strings)
    if a.nargs == 0:
        return name
    if a.metavar:
        return f"{name} {a.metavar}"
    if a.choices:
        return f"{name} {{{','.join(map(str, a.choices))}}}"
    return f"{name} {a.dest.upper()}"


def _commands(p: argparse.ArgumentParser, words: list[str], summary: str) -> list[str]:
    """The Markdown of ``p`` and every sub-command under it, depth first."""
    fmt = p._get_formatter()
    out = [f"### `{' '.join(words)}`", ""]
    about = p.description or summary
    if about:
        out += [" ".join(about.replace("%%", "%").split()), ""]
    out += ["```", _usage(p), "```", ""]
    rows, subs = [], []
    for a in p._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        if isinstance(a, argparse._SubParsersAction):
            helps = {c.dest: c.help or "" for c in a._choices_actions}
            subs += [(name, sp, helps.get(name, "")) for name, sp in a.choices.items()]
            continue
        if a.help == argparse.SUPPRESS:
            continue
        rows.append(f"| `{_cell(_arg_name(a))}` | {_cell(fmt._expand_help(a))} |")
    if rows:
        out += ["| argument | meaning |", "|---|---|", *rows, ""]
    if subs:
        out += ["| command | what it does |", "|---|---|"]
        out += [f"| [`{name}`](#{'-'.join([*words, name])}) | {_cell(text)} |"
                for name, _, text in subs]
        out.append("")
    for name, sp, text in subs:
        out += _commands(sp, [*words, name], text)
    return out


def render() -> str:
    """The generated part of docs/cli.md, BEGIN and END included."""
    os.environ["COLUMNS"] = "200"  # usage lines are joined anyway; keep argparse from wrapping
    sys.path.insert(0, str(REPO))
    from hooks.cli import build_parser

    return BEGIN + "\n" + "\n".join(_commands(build_parser(), ["pkgcache"], "")) + END


def rewritten(text: str) -> str:
    """``text`` (docs/cli.md) with its generated part replaced by the parser's."""
    head, rest = text.split(BEGIN, 1)
    return head + render() + rest.split(END, 1)[1]


def main(argv: list[str]) -> int:
    """Rewrite docs/cli.md, or with --check only compare."""
    text = CLI_MD.read_text()
    new = rewritten(text)
    if argv[1:] == ["--check"]:
        if new != text:
            print("docs/cli.md differs from the parser: run scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print("usage: scripts/cli_reference.py [--check]", file=sys.stderr)
        return 2
    CLI_MD.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
