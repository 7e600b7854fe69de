"""Start-up: a command imports only what it needs (issue 12). Timings live in
bench/scenarios/startup.py; these tests check the imports, which decide them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import probe_imports, run_cli

DRIVERS = ("hooks.apt", "hooks.pip", "hooks.fetch", "hooks.git", "hooks.remote")


def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """Modules pkgcache ARGS loaded beyond the interpreter's own start-up."""
    return probe_imports(*args, env=env)[1]


def _drivers(mods: set[str]) -> set[str]:
    return {d for d in DRIVERS if d in mods}


def test_version_imports_no_parser_no_sqlite_no_yaml_no_driver() -> None:
    mods = imported("--version")
    assert not {"sqlite3", "yaml", "argparse", "typing", "cache_core.api"} & mods
    assert _drivers(mods) == set()


def test_version_after_global_options_is_the_fast_path_too(tmp_path: Path) -> None:
    mods = imported("--cache-dir", str(tmp_path), "--version")
    assert "argparse" not in mods and "sqlite3" not in mods
    r = run_cli("--config", str(tmp_path / "x.yaml"), "--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"pkgcache {_version()}")


def test_top_level_help_lists_every_driver_without_importing_one() -> None:
    mods = imported("--help")
    assert _drivers(mods) == set() and "sqlite3" not in mods and "yaml" not in mods
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("apt", "pip", "fetch", "git", "remote", "stats", "gc"):
        assert f"\n    {word} " in r.stdout, word


def test_help_with_stubs_is_the_help_of_the_full_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # the top-level help and a typo's choices come from the summaries, not from built parsers:
    # the same text as the parser with every command and driver built
    from hooks.cli import build_parser

    for width in ("60", "80", "132"):
        monkeypatch.setenv("COLUMNS", width)
        r = run_cli("--help", env={"COLUMNS": width})
        assert r.returncode == 0 and r.stdout == build_parser().format_help(), width
        assert build_parser(None, stubs=True).format_help() == r.stdout
    r = run_cli("no-such-command")
    for word in ("put", "verify", "clear", "apt", "pip", "fetch", "git", "remote"):
        assert f"'{word}'" in r.stderr, word


def test_top_level_help_at_80_columns_is_the_parsers_text_without_argparse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The generated help (hooks/cli/helptext.py) is what argparse renders; at other widths,
    or on another Python, the parser itself prints it."""
    import runpy

    from hooks.cli import build_parser, helptext
    from tests.support import REPO

    gen = runpy.run_path(str(REPO / "scripts" / "help_text.py"))
    assert gen["render"]() == helptext.TOP, "run: python3 scripts/help_text.py"
    text = (REPO / "hooks" / "cli" / "helptext.py").read_text(encoding="utf-8")
    assert gen["rewritten"](text) == text
    for argv in (["--help"], ["-h"]):
        mods = imported(*argv, env={"COLUMNS": "80"})
        assert "argparse" not in mods and "typing" not in mods, argv
        r = run_cli(*argv, env={"COLUMNS": "80"})
        assert (r.returncode, r.stdout, r.stderr) == (0, helptext.TOP, ""), argv
    assert "argparse" in imported("--help", env={"COLUMNS": "100"})
    r = run_cli("--help", env={"COLUMNS": "100"})
    monkeypatch.setenv("COLUMNS", "100")
    assert r.stdout != helptext.TOP and r.stdout == build_parser(None, stubs=True).format_help()


def test_a_driver_command_imports_only_its_driver() -> None:
    for word in ("apt", "fetch", "git", "remote"):
        mods = imported(word, "--help")
        assert _drivers(mods) == {f"hooks.{word}"}, word
        assert "sqlite3" not in mods and "yaml" not in mods, word


def test_core_command_loads_sqlite_only_when_it_opens_the_cache(tmp_path: Path) -> None:
    assert "sqlite3" not in imported("stats", "--help")
    mods = imported("--cache-dir", str(tmp_path / "c"), "stats")
    assert "sqlite3" in mods and _drivers(mods) == set()


def test_apt_hook_fast_path_builds_no_parser(tmp_path: Path) -> None:
    conf = tmp_path / "off.yaml"
    conf.write_text("enabled: false\n")
    mods = imported("--config", str(conf), "apt", "hook", "sweep")
    assert "argparse" not in mods
    assert _drivers(mods) == {"hooks.apt"}


def test_pip_install_help_does_not_open_the_cache(tmp_path: Path) -> None:
    mods = imported("--cache-dir", str(tmp_path / "c"), "pip", "install", "--help")
    assert _drivers(mods) == {"hooks.pip"}
    assert not (tmp_path / "c").exists()      # read the options first, open the cache after


def _version() -> str:
    from cache_core import __version__

    return __version__
