"""Help text and documentation agree with the program (issue 11, item 10)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hooks.cli import build_parser
from tests.support import REPO
from tests.support.cli import run_cli

README = (REPO / "README.md").read_text()
MAN = (REPO / "docs" / "pkgcache.1").read_text()
# Commands that print a report: each must offer --json.
REPORTING = ("ls", "stats", "verify", "gc", "clear", "apt seed", "apt import", "apt status",
             "git verify")


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub-)command's parser by its command words."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(p: argparse.ArgumentParser, words: list[str]) -> None:
        out[" ".join(words)] = p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, [*words, name])

    walk(build_parser(), [])
    return out


def test_every_option_and_positional_has_help() -> None:
    missing = []
    for words, p in parsers().items():
        if p.usage and "GIT-CLONE-OPTIONS" in p.usage:
            continue                     # git clone parses its own words: checked below
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not a.help or a.help == argparse.SUPPRESS:
                missing.append(f"pkgcache {words} {'/'.join(a.option_strings) or a.dest}")
    assert missing == []


def test_reporting_commands_offer_json() -> None:
    all_parsers = parsers()
    for words in REPORTING:
        opts = {o for a in all_parsers[words]._actions for o in a.option_strings}
        assert "--json" in opts, f"pkgcache {words} has no --json"


def test_json_output_parses_for_gc_and_clear(tmp_path: Path) -> None:
    import json

    for cmd in ("gc", "clear"):
        r = run_cli("--cache-dir", str(tmp_path / "c"), cmd, "--json")
        assert r.returncode == 0, r.stderr
        assert isinstance(json.loads(r.stdout), dict)


def test_apt_hook_help_prints_help() -> None:
    r = run_cli("apt", "hook", "--help")
    assert r.returncode == 0
    assert r.stdout.startswith("usage: pkgcache apt hook") and "harvest" in r.stdout
    assert r.stderr == ""


def test_git_clone_help_names_every_option() -> None:
    r = run_cli("git", "clone", "--help")
    assert r.returncode == 0
    for word in ("URL", "DEST", "--offline", "--recurse-submodules", "--depth", "--branch", "--"):
        assert word in r.stdout


def _source_text() -> str:
    text = "".join(p.read_text() for d in ("cache_core", "hooks") for p in (REPO / d).rglob("*.py"))
    return re.sub(r'"\s*f?"', "", text)      # join implicitly concatenated string literals


def test_troubleshooting_quotes_messages_the_program_prints() -> None:
    section = README[README.index("## Troubleshooting"):README.index("## Results")]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    assert len(rows) >= 5
    source = _source_text()
    for row in rows:
        quoted = re.match(r"\| `([^`]+)`", row).group(1)
        msg = re.sub(r"^pkgcache: (warning: )?", "", quoted)
        for fragment in msg.split("…"):
            if len(fragment.strip()) >= 4:
                assert fragment in source, f"README quotes {quoted!r}; {fragment!r} is never printed"


def test_readme_and_man_page_agree() -> None:
    assert "pkgcache git clone [--offline] [git clone options…] URL [DEST]" in README
    assert r"\fBgit clone\fR [\fB\-\-offline\fR] [\fIgit clone options\fR] \fIURL\fR [\fIDEST\fR]" \
        in MAN
    # max_size_gb: enforced after writes and by gc, in both
    assert "enforced after each write" in README and "enforced after every write" in MAN
    # who owns the cache directory: the user running pkgcache, in both
    assert "owned by the user running pkgcache" in README
    assert "owned by the user running pkgcache" in MAN


def test_readme_names_no_paths_of_the_build_machine() -> None:
    assert re.findall(r"/work/\S+|/home/\w+", README) == []


def test_ansible_recipe_is_a_playbook() -> None:
    """`ansible-playbook` takes the block as printed: a list of plays (a bare task list fails
    with "'ansible.builtin.apt' is not a valid attribute for a Play", exit 4). The recipe test
    (tests/recipes/test_recipes.py) runs it; this checks the shape without ansible."""
    import yaml

    from tests.recipes.recipes import readme_block

    plays = yaml.safe_load(readme_block("Ansible", "yaml"))
    assert isinstance(plays, list) and plays
    for play in plays:
        assert {"hosts", "tasks"} <= set(play), sorted(play)
        assert all("name" in task for task in play["tasks"])
