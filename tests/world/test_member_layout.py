"""The world's layout check (tests/support/world.py check_layout) fails when two fleet members
share a state dir, apt lists or a cache, however the sharing is planted. Fast: plain directories
shaped like the members' roots, no namespaces."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deb.debroot import DebRoot
from tests.support.world import CONFIG, LISTS_DIR, STATE_DIR, Member, check_layout


def _members(tmp_path: Path) -> list[Member]:
    out = []
    for i, name in enumerate("ABC", start=1):
        root = tmp_path / name
        for d in (STATE_DIR, LISTS_DIR, "/var/cache/vps-configurator"):
            (root / d.lstrip("/")).mkdir(parents=True)
        out.append(Member(name, DebRoot(root), ns="", index=i))
    return out


def test_layout_separate_members_pass(tmp_path: Path) -> None:
    """Three roots, each with its own dirs: no complaint."""
    check_layout(_members(tmp_path))


def test_layout_shared_state_dir_fails(tmp_path: Path) -> None:
    """B's /var/lib/pkgcache planted as a link to A's: caught (shared, and outside B's root)."""
    a, b, c = _members(tmp_path)
    b_state = b.path(STATE_DIR)
    b_state.rmdir()
    b_state.symlink_to(a.path(STATE_DIR))
    with pytest.raises(AssertionError, match="B's state dir is A \\(state dir\\)'s"):
        check_layout([a, b, c])


def test_layout_cache_moved_into_another_members_dir_fails(tmp_path: Path) -> None:
    """C's config names a cache directory that is (through a link) A's cache."""
    a, b, c = _members(tmp_path)
    cfg = c.path(CONFIG)
    cfg.parent.mkdir(parents=True)
    cfg.write_text("performance:\n  cache:\n    directory: /srv/cache\n")
    c.path("/srv").mkdir()
    c.path("/srv/cache").symlink_to(a.path("/var/cache/vps-configurator"))
    with pytest.raises(AssertionError, match="C's cache is A \\(cache\\)'s"):
        check_layout([a, b, c])


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_layout_lists_shared_by_bind_mount_fails(tmp_path: Path) -> None:
    """A bind mount (no link to see) of A's apt lists on C's: caught by device and inode."""
    a, b, c = _members(tmp_path)
    target = c.path(LISTS_DIR)
    res = subprocess.run(["mount", "--bind", str(a.path(LISTS_DIR)), str(target)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {res.stderr.strip()}")
    try:
        with pytest.raises(AssertionError, match="C's apt lists is A \\(apt lists\\)'s"):
            check_layout([a, b, c])
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
