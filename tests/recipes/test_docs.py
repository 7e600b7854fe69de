"""Help text and documentation agree with the program (issue 11, item 10)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hooks.cli import build_parser
from tests.support import REPO
from tests.support.cli import run_cli
from tests.support.docs import EXTRACTED, anchors, doc_block, doc_text, links, user_docs

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
    section = doc_text("docs/troubleshooting.md")
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    assert len(rows) >= 5
    source = _source_text()
    for row in rows:
        quoted = re.match(r"\| `([^`]+)`", row).group(1)
        msg = re.sub(r"^pkgcache: (warning: )?", "", quoted)
        for fragment in msg.split("…"):
            if len(fragment.strip()) >= 4:
                assert fragment in source, f"docs quote {quoted!r}; {fragment!r} is never printed"


def test_docs_and_man_page_agree() -> None:
    assert "pkgcache git clone [--offline] [git clone options…] URL [DEST]" in \
        doc_text("docs/downloads-and-git.md")
    assert r"\fBgit clone\fR [\fB\-\-offline\fR] [\fIgit clone options\fR] \fIURL\fR [\fIDEST\fR]" \
        in MAN
    # max_size_gb: enforced after writes and by gc, in both
    config = doc_text("docs/configuration.md")
    assert "enforced after each write" in config and "enforced after every write" in MAN
    # who owns the cache directory: the user running pkgcache, in both
    assert "owned by the user running pkgcache" in config
    assert "owned by the user running pkgcache" in MAN


def test_docs_name_no_paths_of_the_build_machine() -> None:
    for doc in user_docs():
        assert re.findall(r"/work/\S+|/home/\w+", doc_text(doc)) == [], doc


def test_ansible_recipe_is_a_playbook() -> None:
    """`ansible-playbook` takes the block as printed: a list of plays (a bare task list fails
    with "'ansible.builtin.apt' is not a valid attribute for a Play", exit 4). The recipe test
    (tests/recipes/test_recipes.py) runs it; this checks the shape without ansible."""
    import yaml

    from tests.recipes.recipes import recipe_block

    plays = yaml.safe_load(recipe_block("Ansible", "yaml"))
    assert isinstance(plays, list) and plays
    for play in plays:
        assert {"hosts", "tasks"} <= set(play), sorted(play)
        assert all("name" in task for task in play["tasks"])


def test_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = README.splitlines()
    assert len(lines) <= 300, len(lines)
    assert lines[2] == "```sh", lines[:3]
    assert lines[3].startswith("./scripts/demo.sh ") and lines[4].startswith("./scripts/test.sh ")


def test_every_relative_link_in_the_docs_resolves() -> None:
    """Each relative link of README.md and docs/*.md names a file of the checkout and, for a
    Markdown file, an anchor one of its headings makes."""
    bad = []
    for doc in user_docs():
        here = (REPO / doc).parent
        for line, target in links(doc_text(doc)):
            if re.match(r"[a-z]+:", target):
                continue                             # https:, mailto:
            path, _, anchor = target.partition("#")
            dest = (here / path).resolve() if path else REPO / doc
            if not dest.exists() or REPO not in (dest, *dest.parents):
                bad.append(f"{doc}:{line}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
                bad.append(f"{doc}:{line}: {target}: no such heading")
    assert bad == []


def test_the_link_check_sees_a_broken_link_and_a_broken_anchor() -> None:
    text = "# Top\n\n[a](#top) [b](#gone) [c](missing.md) `[d](#in-code)`\n```\n[e](#fenced)\n```\n"
    assert links(text) == [(3, "#top"), (3, "#gone"), (3, "missing.md")]
    assert anchors(text) == {"top"}
    assert anchors("## `pkgcache fetch` — a drop-in\n## A\n## A\n") == {
        "pkgcache-fetch--a-drop-in", "a", "a-1"}


def test_every_block_the_tests_extract_is_in_the_docs() -> None:
    """The recipe and fleet blocks the system tier runs as printed (tests/recipes, tests/world)."""
    for doc, heading, lang in EXTRACTED:
        assert doc_block(doc, heading, lang).strip(), (doc, heading)


def test_readme_links_every_guide() -> None:
    linked = {target.split("#")[0] for _, target in links(README)}
    guides = {d for d in user_docs() if d != "README.md"}
    assert guides - linked == set()


def test_cli_reference_is_the_parsers() -> None:
    """docs/cli.md's command reference is what scripts/cli_reference.py renders from the parser."""
    import runpy

    ref = runpy.run_path(str(REPO / "scripts" / "cli_reference.py"))
    text = doc_text("docs/cli.md")
    assert ref["rewritten"](text) == text, "docs/cli.md differs: run scripts/cli_reference.py"
    for words in parsers():
        assert f"### `{' '.join(['pkgcache', *words.split()])}`" in text


def test_man_page_names_every_command_and_option() -> None:
    """pkgcache(1) is written by hand: each (sub-)command and each option of the parser is in its
    COMMANDS or OPTIONS section, by one of its names."""
    man = re.sub(r"\\f[BIRP]", " ", MAN.replace("\\-", "-"))   # roff: \- is -, \fB... fonts
    man = man.split(".SH COMMANDS", 1)[1].split(".SH CONFIGURATION", 1)[0]
    missing = []
    for words, p in parsers().items():
        if words and not re.search(rf"\b{re.escape(words.split()[-1])}\b", man):
            missing.append(words)
        for a in p._actions:
            if a.option_strings and a.help != argparse.SUPPRESS \
                    and not isinstance(a, argparse._HelpAction) \
                    and not any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", man)
                                for o in a.option_strings):
                missing.append(f"{words} {a.option_strings[-1]}")
    assert missing == []


def test_readme_and_guides_configs_are_accepted(tmp_path: Path) -> None:
    """The README's minimal config and the configuration guide's full one load as printed."""
    from cache_core import load_config

    blocks = [doc_block("README.md", "A minimal configuration", "yaml"),
              doc_block("docs/configuration.md", "Configuration", "yaml")]
    for i, block in enumerate(blocks):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(block)
        cfg = load_config(str(path))
        assert cfg.directory == "/var/cache/vps-configurator" and cfg.max_size_gb == 5, cfg
