"""The tests' and benches' own layout (issue 12): helpers have one home, tests/support, and are
imported one way (``tests.support.…``); nothing edits sys.path or loads files by path."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.user import NOBODY, pkgcache_as, readable_tree

SUPPORT = REPO / "tests" / "support"
# `python bench/run.py` (a documented command) makes the checkout importable as `-m` would.
SYS_PATH_ALLOWED = {REPO / "bench" / "run.py"}


def sources() -> Iterator[tuple[Path, ast.Module]]:
    for top in ("tests", "bench"):
        for path in sorted((REPO / top).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_nothing_edits_sys_path_or_loads_modules_by_file() -> None:
    bad = []
    for path, tree in sources():
        for node in ast.walk(tree):
            target = None
            if isinstance(node, ast.Call):
                target = dotted(node.func)
            elif isinstance(node, ast.Assign):
                target = " ".join(dotted(t.value) if isinstance(t, ast.Subscript) else ""
                                  for t in node.targets)
            if not target:
                continue
            if "spec_from_file_location" in target or (
                    target.startswith("sys.path") and path not in SYS_PATH_ALLOWED):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {target}")
    assert bad == [], bad


def test_one_repo_constant_and_one_http_server() -> None:
    repo_defs, servers = [], []
    for path, tree in sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id in ("REPO", "REPO_ROOT") for t in node.targets):
                repo_defs.append(str(path.relative_to(REPO)))
            if path.parent != SUPPORT and isinstance(node, ast.ClassDef) and any(
                    dotted(b).endswith(("HTTPRequestHandler", "HTTPServer")) for b in node.bases):
                servers.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if (path.parent != SUPPORT and isinstance(node, ast.Call)
                    and dotted(node.func).endswith("HTTPServer")):
                servers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert repo_defs == ["tests/support/__init__.py"], repo_defs
    assert servers == [], servers


def test_helpers_are_imported_from_tests_support_only() -> None:
    old = {"aptlab", "piplab", "fetch_server", "git_server", "seclab", "fleetlab", "rel_lab",
           "servers", "conftest"}
    bad = []
    for path, tree in sources():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            bad += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names
                    if n.split(".")[0] in old or n in ("tests.conftest", "tests.remote.servers")]
    assert bad == [], bad


@pytest.mark.root  # runs a command as uid 65534
@pytest.mark.skipif(not Path("/usr/bin/setpriv").exists(), reason="needs setpriv")
def test_other_users_run_a_readable_copy_of_this_checkout(tmp_path: Path) -> None:
    tree = readable_tree()
    assert tree != REPO and not str(tree).startswith(str(REPO))
    for rel in ("cache_core/__init__.py", "hooks/__init__.py", "debian/config.yaml"):
        assert (tree / rel).read_bytes() == (REPO / rel).read_bytes()
        assert (tree / rel).stat().st_mode & 0o004
    res = pkgcache_as(NOBODY, ["--version"], {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
                      cwd="/", timeout=60)
    assert res.returncode == 0 and res.stdout.strip(), res.stderr


def test_every_tier_path_exists_and_the_fast_tier_stays_fast() -> None:
    """tests/conftest.py's tables name real paths (a renamed file would silently change tier),
    and no fast-tier file builds roots, namespaces or fleets or reaches the network."""
    from tests import conftest

    for path in [*conftest.TIERS, *conftest.ROOT, *conftest.NOT_ROOT, *conftest.ONE_WORKER]:
        assert (REPO / path).exists(), path
    fast = [p for p in sorted((REPO / "tests").rglob("test_*.py"))
            if conftest.tier_of(p.relative_to(REPO).as_posix()) == "fast"]
    assert len(fast) >= 10
    slow_parts = ("MinRoot.create", "DebRoot.create", "tests.support.fleet", "netns", "mark.network",
                  "mark.slow", "unshare")
    for p in fast:
        if p == Path(__file__):
            continue
        text = p.read_text()
        assert not [s for s in slow_parts if s in text], p
    assert conftest.tier_of("tests/core/test_cache.py") == "fast"
    assert conftest.tier_of("tests/core/test_faults.py") == "integration"
    assert conftest.tier_of("tests/deb/test_deb_network.py") == "system"
    assert conftest.tier_of("tests/new_dir/test_x.py") == "integration"
