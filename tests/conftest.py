"""Fixtures every test gets (an isolated pkgcache environment, a cache path, mounts) and the
test tiers.

``tests`` is a package under pytest's rootdir, so the repository root is on sys.path once and
every helper is imported as ``tests.support.…`` (see tests/support/__init__.py).

Tiers are given by path, as pip marks tests/unit and tests/functional (TIERS, longest prefix
wins): ``fast`` runs in-process with no root, network or chroot (``./scripts/test.sh --fast``,
under a minute); ``integration`` (the default) drives real apt, pip, git and servers on
127.0.0.1; ``system`` builds Debian roots, network namespaces or whole fleets. ``root`` marks
what needs root (ROOT, or ``@pytest.mark.root`` on one test); it is skipped for other users.
Under pytest-xdist (``-n 4 --dist load``, scripts/test.sh), each module in ONE_WORKER runs on one
worker, so its module fixture (a Debian root, a filled cache) is built once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.mounts import Mounts
from tests.support.user import public_tmpdir

TIERS = {
    "tests/": "integration",
    "tests/test_architecture.py": "fast",
    "tests/test_layout.py": "fast",
    "tests/cli/": "fast",
    "tests/core/": "fast",
    "tests/core/test_crash_concurrency.py": "integration",
    "tests/core/test_faults.py": "integration",
    "tests/core/test_user_cache.py": "integration",
    "tests/apt/test_apt_units.py": "fast",
    "tests/pip/test_pip_startup.py": "fast",
    "tests/recipes/test_docs.py": "fast",
    "tests/remote/test_config.py": "fast",
    "tests/reliability/test_rel_props.py": "fast",
    "tests/deb/": "system",
    "tests/recipes/test_recipes.py": "system",
    "tests/fleet_bench/": "system",
    "tests/pip/test_pip_network.py": "system",
    "tests/reliability/test_rel_kill.py": "system",
    "tests/apt/test_apt_lists_units.py": "fast",
    "tests/apt_method/": "fast",
    "tests/apt_method/test_front_random.py": "integration",
    "tests/bench/test_report.py": "fast",
    "tests/bench/test_smoke.py": "system",
    "tests/world/": "system",
    "tests/world/test_member_layout.py": "fast",
    "tests/upgrade/": "system",
    "tests/apt/test_runwarn.py": "fast",
    "tests/git/test_git_units.py": "fast",
}
ROOT = ("tests/apt/", "tests/apt_fleet/", "tests/security/", "tests/deb/", "tests/recipes/test_recipes.py",
        "tests/reliability/test_rel_kill.py", "tests/reliability/test_rel_corrupt.py",
        "tests/reliability/test_rel_disk.py", "tests/fleet/test_apt_pull.py",
        "tests/core/test_faults.py", "tests/core/test_user_cache.py", "tests/world/test_fleet_world.py",
        "tests/upgrade/")
NOT_ROOT = ("tests/apt/test_apt_units.py", "tests/apt/test_apt_lists_units.py", "tests/apt/test_runwarn.py")
# paths (files or directories) whose tests share one expensive module or session fixture
ONE_WORKER = ("tests/deb/test_deb_network.py", "tests/reliability/test_rel_props.py", "tests/world/",
              "tests/upgrade/")


def tier_of(rel: str) -> str:
    """The tier of a test file (a path relative to the repository, with "/")."""
    return TIERS[max((p for p in TIERS if rel.startswith(p)), key=len)]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier and ``root`` where it needs root."""
    is_root = os.geteuid() == 0
    for item in items:
        rel = Path(os.path.relpath(os.path.realpath(item.path), REPO)).as_posix()
        item.add_marker(tier_of(rel))
        if rel.startswith(ROOT) and not rel.startswith(NOT_ROOT):
            item.add_marker("root")
        if not is_root and item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """With ``--dist load``/``loadgroup``: one test per work unit, but each ONE_WORKER module is
    one unit (xdist's own loadgroup does not see marks under pytest 9: its nodeid suffix is lost)."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return next((w for w in ONE_WORKER if path.startswith(w)), nodeid)

    return OneWorkerModules(config, log)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the machine's pkgcache config or cache."""
    monkeypatch.setenv("PKGCACHE_CONFIG", str(tmp_path / "no-such-config.yaml"))
    monkeypatch.delenv("PKGCACHE_DIR", raising=False)
    monkeypatch.delenv("PKGCACHE_DISABLE", raising=False)
    state = tmp_path / "state"  # trust memos (seed plan, fetch digests): never the host's
    monkeypatch.setenv("PKGCACHE_STATE_DIR", str(state))
    os.chmod(tmp_path, 0o755)
    cfg = tmp_path / "no-such-config.yaml"
    cfg.write_text("performance:\n  cache:\n    enabled: true\n")
    from cache_core import errors  # warnings: no handler or "already said" left by another test

    monkeypatch.setattr(errors, "_handler", None)
    monkeypatch.setattr(errors, "_warned", set())


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A path for a cache that does not exist yet."""
    return tmp_path / "cache"


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    """tmpfs and bind mounts under tmp_path, unmounted after the test (needs root)."""
    m = Mounts(tmp_path)
    yield m
    m.cleanup()


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned 0755 directory every local user can traverse (as /var/cache is), unlike
    tmp_path: pytest keeps /tmp/pytest-of-root at 0700 (and puts it back whenever another
    pytest session starts)."""
    yield from public_tmpdir("pkgcache-test-")
