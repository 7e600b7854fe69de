"""One fleet of real machines per session (tests/support/world.py): built once, torn down after.

Needs root, ip netns, mmdebstrap and the Debian archive (the members' image, cached for a day
under /var/tmp/pkgcache-test), nginx and the .deb build tools."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.deb.debroot import build_deb
from tests.support.world import World


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The world's tests are slow and need the archive once (the image); skip them without root
    or the tools."""
    missing = [t for t in ("mmdebstrap", "ip")
               if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    for item in items:
        if "tests/world/" not in str(item.fspath) or "layout" in item.name:
            continue
        item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.network)
        if os.geteuid() != 0 or missing:
            item.add_marker(pytest.mark.skip(reason=f"needs root and {', '.join(missing) or 'ip netns'}"))


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The store, the origins and members A, B, C (B and C with pkgcache installed)."""
    base = tmp_path_factory.mktemp("world")
    deb = build_deb(tmp_path_factory.mktemp("worlddeb"))
    w = World(base, deb, prefix=f"w{os.getpid() % 100000}")
    try:
        w.up()
        yield w
    finally:
        w.down()
