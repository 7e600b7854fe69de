"""The import graph, read from the AST of every module: the core stands alone, drivers use only
the public API of cache_core (docs/core-api.md), and no module imports itself round a circle
(imports for type checkers count too: a circle is a circle to a reader)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGES = ("cache_core", "hooks")

# The public API drivers may import (docs/core-api.md): module -> names.
# The remote tier is ``cache.remote`` (a cache_core.Remote): no driver imports cache_core.storage.
PUBLIC: dict[str, frozenset[str]] = {
    "cache_core": frozenset(__import__("cache_core").__all__),
    "cache_core.net": frozenset({"DEFAULT_TIMEOUT", "goes_direct", "has_secret", "opener",
                                 "redact"}),
    # stat stamps, read by apt's method front with the standard library only
    "cache_core.stamps": frozenset({"config_identity", "copy_of", "lookup_config", "note_copy",
                                    "of", "read", "remember_cache", "selected",
                                    "selected_cache",
                                    "stamp_dir", "write_private"}),
}
# Attributes that reveal the local store's layout, inodes or lock naming: never used by drivers.
LAYOUT_ATTRS = frozenset({"object_path", "objects_dir", "lock_dir", "tmp_dir", "quarantine_dir",
                          "layout", "_index", "_setup", "_resolve", "_ingest", "_remote"})


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = REPO) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            out[module_name(path, root)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports(name: str, path: Path, known: dict[str, Path], *, typing: bool = True
            ) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import statement in a module,
    at any depth (a lazy import inside a function counts). TYPE_CHECKING blocks count too,
    unless typing=False or in a package's __init__ (cache_core's lazy public names: re-exports
    for type checkers, loaded on first use, not imports of the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = set() if typing and path.name != "__init__.py" else _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                if sub in known:
                    yield sub, None, node.lineno       # `from pkg import module`
                else:
                    yield mod, alias.name, node.lineno


def graph(root: Path = REPO) -> dict[str, set[str]]:
    known = modules(root)
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for mod, _, _ in imports(name, path, known):
            if mod in known and mod != name:
                edges[name].add(mod)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def driver_violations(root: Path = REPO) -> list[str]:
    """Every place a driver (hooks/) reaches past cache_core's public API."""
    known = modules(root)
    bad = []
    for name, path in known.items():
        if not name.startswith("hooks"):
            continue
        for mod, attr, line in imports(name, path, known):
            where = f"{path.relative_to(root)}:{line}"
            if not mod.startswith("cache_core"):
                continue
            if mod not in PUBLIC:
                bad.append(f"{where}: imports {mod}, not a public cache_core module")
            elif attr is not None and attr not in PUBLIC[mod]:
                bad.append(f"{where}: imports {mod}.{attr}, not in the public API")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in LAYOUT_ATTRS:
                bad.append(f"{path.relative_to(root)}:{node.lineno}: uses .{node.attr} "
                           "(the store's layout or internals)")
    return bad


def core_imports_of_hooks(root: Path = REPO) -> list[str]:
    known = modules(root)
    return [f"{path.relative_to(root)}:{line}: imports {mod}"
            for name, path in known.items() if name.startswith("cache_core")
            for mod, _, line in imports(name, path, known)
            if mod == "hooks" or mod.startswith("hooks.")]


# -- the checks on this tree ----------------------------------------------------------------------
def test_cache_core_imports_nothing_from_hooks() -> None:
    assert core_imports_of_hooks() == []


def test_drivers_use_only_the_public_api() -> None:
    assert driver_violations() == []


def test_no_import_cycle() -> None:
    """No circle in cache_core/ and hooks/, lazy and TYPE_CHECKING imports included."""
    assert find_cycle(graph()) is None


def test_no_sql_outside_the_index() -> None:
    """All SQL lives in cache_core/index/ (not in the facade, maintenance or the benches)."""
    bad = []
    for path in [*REPO.glob("cache_core/**/*.py"), *REPO.glob("bench/**/*.py")]:
        if "index" in path.relative_to(REPO).parts[:2]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                    w in node.value for w in ("SELECT ", "INSERT ", "UPDATE ", "DELETE FROM")):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert bad == []


# -- the checks can fail: each rule on a small planted tree ---------------------------------------
def _plant(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for pkg in PACKAGES:
        (root / pkg).mkdir(exist_ok=True)
        (root / pkg / "__init__.py").touch()
    return root


@pytest.mark.parametrize(("files", "expect"), [
    ({"hooks/d.py": "from cache_core.fs.atomic import temp_name\n"}, "not a public"),
    ({"hooks/d.py": "from cache_core import _LAZY\n"}, "not in the public API"),
    ({"hooks/d.py": "import cache_core.index\n"}, "not a public"),
    ({"hooks/d.py": "def f(c):\n    return c.object_path('x')\n"}, ".object_path"),
    ({"hooks/d.py": "def f(c):\n    from cache_core.storage.remote.base import make_backend\n"},
     "not a public"),
])
def test_driver_rule_catches_a_planted_violation(tmp_path: Path, files: dict[str, str],
                                                 expect: str) -> None:
    root = _plant(tmp_path, files)
    found = driver_violations(root)
    assert found and expect in found[0], found


def test_driver_rule_accepts_the_public_api(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"hooks/d.py": "from cache_core import PackageCache, warn\n"
                                           "from cache_core import Remote\n"})
    assert driver_violations(root) == []


def test_core_rule_catches_a_lazy_import_of_a_driver(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"cache_core/x.py": "def f():\n    from hooks.fetch import fetch\n"})
    assert core_imports_of_hooks(root) == ["cache_core/x.py:2: imports hooks.fetch"]


def test_cycle_rule_catches_a_circle_also_through_type_checking(tmp_path: Path) -> None:
    root = _plant(tmp_path, {
        "cache_core/a.py": "from . import b\n",
        "cache_core/b.py": "def f():\n    from .c import x\n",
        "cache_core/c.py": "from .a import y\n",
    })
    assert find_cycle(graph(root)) == ["cache_core.a", "cache_core.b", "cache_core.c",
                                       "cache_core.a"]
    (root / "cache_core/c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n")
    assert find_cycle(graph(root)) == ["cache_core.a", "cache_core.b", "cache_core.c",
                                       "cache_core.a"]
    (root / "cache_core/c.py").write_text("y = 1\n")
    assert find_cycle(graph(root)) is None


def test_cycle_rule_catches_a_circle_between_drivers(tmp_path: Path) -> None:
    """As hooks/git/mirror.py and fleet.py were: a lazy import back from the other module."""
    root = _plant(tmp_path, {
        "hooks/git/__init__.py": "",
        "hooks/git/mirror.py": "def seed():\n    from hooks.git import fleet\n",
        "hooks/git/fleet.py": "from hooks.git.mirror import Mirrors\n",
    })
    assert find_cycle(graph(root)) == ["hooks.git.fleet", "hooks.git.mirror", "hooks.git.fleet"]
