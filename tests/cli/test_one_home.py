"""Each concern of the drivers has one home (issue 12): exit codes, errors, the warning line,
byte formatting, HTTP, the version and the pkgcache path. These read the tree, so a second
copy coming back fails here."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO
from tests.support.cli import run_cli
from tests.support.docs import doc_text, user_docs

HOOKS = REPO / "hooks"


def _py(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def _trees() -> dict[str, ast.AST]:
    return {_rel(p): ast.parse(p.read_text(), _rel(p)) for p in _py(HOOKS)}


def test_layout_one_package_per_driver_each_with_its_cli() -> None:
    for pkg in ("cli", "common", "apt", "pip", "fetch", "git", "remote"):
        assert (HOOKS / pkg / "__init__.py").is_file(), pkg
    for driver in ("apt", "pip", "fetch", "git", "remote"):
        assert (HOOKS / driver / "cli.py").is_file(), driver
    flat = sorted(p.name for p in HOOKS.glob("*.py") if p.name != "__init__.py")
    assert flat == []                       # no apt_cli.py, fetch.py, gitmirror.py ... beside them


def test_exit_codes_are_not_redeclared_in_hooks() -> None:
    """EXIT_* names come from cache_core.errors; nothing in hooks assigns one."""
    found = []
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name) and n.id.startswith("EXIT_"):
                        found.append(f"{name}:{node.lineno} {n.id}")
    assert found == []


def test_command_handlers_return_no_exit_code_literals() -> None:
    """The command modules return named exit codes (0 -> EXIT_OK, 2 -> EXIT_USAGE ...)."""
    files = [*HOOKS.glob("*/cli.py"), *(HOOKS / "cli").glob("*.py"), HOOKS / "pip" / "install.py",
             HOOKS / "git" / "mirror.py", HOOKS / "git" / "fleet.py", HOOKS / "fetch" / "download.py"]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Return) and node.value is not None:
                values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                last = values[-1]
                if isinstance(last, ast.Constant) and type(last.value) is int:
                    found.append(f"{_rel(path)}:{node.lineno} return {last.value}")
    assert found == []


def test_one_fetch_error_and_one_usage_error() -> None:
    homes: dict[str, list[str]] = {}
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in ("FetchError", "UsageError"):
                homes.setdefault(node.name, []).append(name)
    assert homes == {"FetchError": ["hooks/common/errors.py"],
                     "UsageError": ["hooks/common/errors.py"]}


def test_pip_usage_error_is_the_cli_usage_error(tmp_path: Path) -> None:
    """A bad pkgcache-specific pip option: exit 2 and one line, like any usage error."""
    r = run_cli("--cache-dir", str(tmp_path / "c"), "pip", "install", "--installer", "poetry", "x")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("pkgcache: pip: --installer")
    from cache_core.errors import EXIT_USAGE
    from hooks.common.errors import UsageError
    from hooks.pip import options

    assert options.UsageError is UsageError and UsageError.exit_code == EXIT_USAGE


def test_one_writer_of_the_warning_line() -> None:
    """`pkgcache: warning:` is written in one place (cache_core.errors.write_warning)."""
    hits = [f"{_rel(p)}:{i}" for root in (HOOKS, REPO / "cache_core") for p in _py(root)
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if "warning: " in line and "pkgcache" in line and "def " not in line
            and '"""' not in line and not line.lstrip().startswith("#")]
    assert hits == ["cache_core/errors.py:" + str(_line_of(REPO / "cache_core/errors.py",
                                                           'f"pkgcache: warning: {message}'))]


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_one_byte_formatter() -> None:
    """Byte sizes are formatted by hooks.cli.output.human only."""
    defs = [f"{name}:{node.lineno}" for name, tree in _trees().items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and re.fullmatch(r"_?human", node.name)]
    assert defs == [f"hooks/cli/output.py:{_line_of(HOOKS / 'cli/output.py', 'def human')}"]
    units = [_rel(p) for p in _py(HOOKS) if '"KiB"' in p.read_text()]
    assert units == ["hooks/cli/output.py"]
    from hooks.cli.output import human

    assert [human(n) for n in (0, 1023, 1536, 5 * 1024**3, 3 * 1024**5)] == \
        ["0 B", "1023 B", "1.5 KiB", "5.0 GiB", "3072.0 TiB"]


CORE = REPO / "cache_core"
# What makes an HTTP client policy: TLS contexts, proxy discovery and no_proxy, connections.
_POLICY = re.compile(r"\b(create_default_context|SSLContext|ProxyHandler|getproxies\w*|"
                     r"proxy_bypass\w*|HTTPS?Connection|set_tunnel|urlopen|create_connection)\(")


def _all_trees() -> dict[str, ast.AST]:
    return {_rel(p): ast.parse(p.read_text(), _rel(p)) for p in [*_py(CORE), *_py(HOOKS)]}


def test_one_http_client_policy() -> None:
    """Proxies, TLS and connections are made in cache_core/net.py only (the remote stores and the
    drivers' client both use it); URLs are redacted by its ``redact`` alone."""
    users = sorted({f"{_rel(p)}" for p in [*_py(CORE), *_py(HOOKS)]
                    if _POLICY.search(p.read_text())})
    assert users == ["cache_core/net.py"]
    defs = sorted(f"{name}:{node.name}" for name, tree in _all_trees().items()
                  for node in ast.walk(tree)
                  if isinstance(node, ast.FunctionDef)
                  and re.fullmatch(r"_?(redact\w*|has_secret)", node.name))
    assert defs == ["cache_core/net.py:has_secret", "cache_core/net.py:redact"]
    # urllib.request and ssl themselves: the policy, and the drivers' client (requests, errors)
    importers = sorted({name for name, tree in _all_trees().items() for node in ast.walk(tree)
                        if isinstance(node, ast.Import | ast.ImportFrom) and (
                            {"urllib.request", "ssl"} & {a.name for a in node.names}
                            or (isinstance(node, ast.ImportFrom)
                                and node.module in ("urllib.request", "ssl")))})
    assert importers == ["cache_core/net.py", "hooks/common/http.py"]
    from cache_core import net
    from hooks.common import http

    assert http.redact is net.redact and http.opener is net.opener


def test_one_state_dir_and_one_memo_helper() -> None:
    """$PKGCACHE_STATE_DIR is read by cache_core.statepath alone (state_dir creates the
    directory it names; the warm pip path only looks it up), and only the memo
    helper (cache_core/fs/memo.py) asks it for the directory: every trust memo is read, checked
    (our own, 0600) and written by one piece of code."""
    named = sorted(f"{name}:{node.lineno}" for name, tree in _all_trees().items()
                   for node in ast.walk(tree)
                   if isinstance(node, ast.Constant) and node.value == "PKGCACHE_STATE_DIR")
    assert named == [f"cache_core/statepath.py:{_line_of(CORE / 'statepath.py', 'STATE_ENV =')}"]
    defs = sorted(f"{name}:{node.name}" for name, tree in _all_trees().items()
                  for node in ast.walk(tree)
                  if isinstance(node, ast.FunctionDef) and "state_dir" in node.name)
    assert defs == ["cache_core/fs/safety.py:state_dir"]
    # no other thing is called a state dir (a parameter, attribute or variable)
    others = sorted(f"{name}:{node.lineno}" for name, tree in _all_trees().items()
                    for node in ast.walk(tree)
                    if (isinstance(node, ast.arg) and node.arg == "state_dir")
                    or (isinstance(node, ast.Attribute) and node.attr == "state_dir")
                    or (isinstance(node, ast.Name) and node.id == "state_dir"
                        and isinstance(node.ctx, ast.Store)))
    assert others == []
    callers = sorted({name for name, tree in _all_trees().items() for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
                      and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
                      == "state_dir"})
    assert callers == ["cache_core/fs/memo.py"]


def test_no_compatibility_shims_in_the_core() -> None:
    """A cache_core module that only re-exports another one's names is gone (tests import the
    real homes)."""
    shims = []
    for path in _py(CORE):
        body = [n for n in ast.parse(path.read_text()).body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if path.name != "__init__.py" and body and all(
                isinstance(n, ast.ImportFrom | ast.Import) or (
                    isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "__all__")
                for n in body):
            shims.append(_rel(path))
    assert shims == []


def test_version_written_in_one_place() -> None:
    from cache_core import __version__

    py = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', py, re.M)
    assert 'version = { attr = "cache_core.__version__" }' in py
    assert not re.search(r'^version = "', py, re.M)
    # the Debian changelog and the man page cannot import it: they must agree with it
    changelog = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert re.match(rf"pkgcache \({re.escape(__version__)}\) ", changelog)
    assert f'"pkgcache {__version__}"' in (REPO / "docs" / "pkgcache.1").read_text()
    r = run_cli("--version")
    assert (r.returncode, r.stdout) == (0, f"pkgcache {__version__}\n")
    literal = [_rel(p) for p in _py(HOOKS) if f'"{__version__}"' in p.read_text()]
    assert literal == []
    docs = "".join(doc_text(d) for d in user_docs())
    assert set(re.findall(r"pkgcache_(\d[^_\s]*)_all\.deb", docs)) == {__version__}
    releases = re.findall(r"^## \[(\d[^\]]*)\] - ", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert releases[0] == __version__, releases


def test_install_docs_list_the_debs_dependencies_as_debian_control_has_them() -> None:
    control = (REPO / "debian" / "control").read_text()
    depends = control[control.index("Package: pkgcache"):].split("Depends:", 1)[1]
    depends = depends[:re.search(r"^\S", depends, re.M).start()]
    names = {d.strip() for d in depends.replace("\n", " ").split(",") if d.strip()}
    names = {n for n in names if not n.startswith("${")} | {"python3"}  # ${python3:Depends}
    for doc, start in (("README.md", "\n## Install\n"), ("docs/install.md", "\n## Build and install\n")):
        section = doc_text(doc).split(start, 1)[1].split("\n## ", 1)[0]
        said = set(re.findall(r"`(python3[\w-]*)`", section))
        assert said == names, (doc, said, names)
        assert "apt-get update" in section


def test_pkgcache_path_named_once_in_the_code() -> None:
    hits = [_rel(p) for p in _py(HOOKS) if "/usr/bin/pkgcache" in p.read_text()]
    assert hits == ["hooks/common/paths.py"]
    from hooks.apt import switch
    from hooks.common.paths import PKGCACHE_BIN

    # the shipped snippet names it; enable --command PATH substitutes it everywhere
    assert PKGCACHE_BIN in switch.snippet_text()
    assert PKGCACHE_BIN not in switch.snippet_text("/opt/pk/bin/pkgcache")


def test_no_comment_cites_an_issue_number_or_a_note_outside_the_repo() -> None:
    pat = re.compile(r"issue\s*#?\s*\d+|notes/\w+\.md|/work/shared", re.I)
    hits = [f"{_rel(p)}:{i}: {line.strip()}" for p in [*_py(HOOKS), REPO / "debian" / "rules"]
            for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert hits == []


def test_dead_code_is_gone() -> None:
    from hooks.git.mirror import Mirrors

    assert not hasattr(Mirrors, "remove")


def test_python_m_hooks_cli_and_the_console_script_entry_agree(tmp_path: Path) -> None:
    code = "import sys; sys.path.insert(0, %r); from hooks.cli import main; sys.exit(main())"
    cache = str(tmp_path / "c")
    os.mkdir(cache)  # stats on a missing cache says there is none (exit 1)
    a = subprocess.run([sys.executable, "-c", code % str(REPO), "--cache-dir", cache,
                        "stats", "--json"], capture_output=True, text=True, timeout=60)
    b = run_cli("--cache-dir", cache, "stats", "--json")
    assert a.returncode == b.returncode == 0 and '"hits"' in a.stdout and a.stdout == b.stdout


def test_code_map_matches_the_tree() -> None:
    section = doc_text("docs/contributing.md").split("\n## Code map\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([\w/]+/)`", section, re.M))
    packages = {f"{p.parent.relative_to(REPO)}/" for root in ("cache_core", "hooks")
                for p in (REPO / root).rglob("__init__.py") if "__pycache__" not in p.parts}
    assert packages - listed == set()                       # every package has its line
    assert [p for p in listed if not (REPO / p).is_dir()] == []   # and no line names a ghost


def test_every_exit_code_is_documented() -> None:
    """Each EXIT_* of cache_core.errors is in the CLI reference's table and the man page."""
    from cache_core import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    table = doc_text("docs/cli.md").split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    man = (REPO / "docs" / "pkgcache.1").read_text().split(".SH EXIT STATUS", 1)[1]
    man = man.split(".SH ", 1)[0]
    assert {c for c in codes if f"| {c} |" not in table} == set()
    assert {c for c in codes if f".B {c}\n" not in man} == set()
