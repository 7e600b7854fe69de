"""Damaged cached objects (bit flip, truncation, same-size substitution by another valid package)
under the real apt-get and pip: they never receive the damaged file, install the right one
(downloaded again), the damage is counted as corrupt, and `pkgcache verify` is clean after."""

from __future__ import annotations

from pathlib import Path

import pytest

from cache_core import PackageCache
from tests.reliability.rel_lab import (
    AptWorld,
    PipWorld,
    apt_name,
    aptlab,
    assert_short_warnings,
    assert_verify_clean,
    corrupt,
    fill_debs,
    fill_wheels,
    needs_root,
    object_path,
    pipfx,
    sha256,
    stats,
)

pytestmark = needs_root
KINDS = ("bitflip", "truncate", "substitute")


def same_size_impostor(make, size: int, tries: int = 40) -> bytes:
    """Another valid package file with exactly `size` bytes (different content)."""
    for seed in range(1, tries):
        data = make(seed).read_bytes()
        if len(data) == size:
            return data
    pytest.fail(f"could not build a same-size impostor of {size} bytes")


@pytest.mark.parametrize("how", KINDS)
def test_damaged_deb_never_reaches_apt(apt_world: AptWorld, tmp_path: Path, how: str) -> None:
    fill_debs(apt_world)
    alpha = apt_world.repo.debs["alpha"]
    impostor = None
    if how == "substitute":
        other = tmp_path / "impostor"
        other.mkdir()
        impostor = same_size_impostor(
            lambda s: aptlab.build_deb(other, "alpha", "1.0-1", depends="beta", size=300_000,
                                       seed=s), alpha.stat().st_size)
    corrupt(object_path(apt_world.cache_dir, sha256(alpha)), how, impostor, seed=3)

    res = apt_world.install()
    assert res.returncode == 0, res.stdout + res.stderr
    assert_short_warnings(res.stderr, 2)
    apt_world.assert_installed_right()
    apt_world.assert_archives_right()
    # apt fetched the damaged one from the repo, and only that one
    assert apt_world.server.deb_requests() == ["/./" + alpha.name]
    assert stats(apt_world.cache_dir)["corrupt_detected"] >= 1
    assert_verify_clean(apt_world.cache_dir)  # the good copy was harvested again
    with PackageCache(str(apt_world.cache_dir)) as c:
        assert c.lookup("deb:" + apt_name(alpha)).digest == sha256(alpha)


# Found by this test: before bb9e714 the pip driver offered a same-size damaged wheel again and
# again (its view and exists() checks compare sizes only); pip refused it by hash and pkgcache
# never fetched it again, so `pkgcache pip install` exited 1.
@pytest.mark.parametrize("how", KINDS)
def test_damaged_wheel_never_reaches_pip(pip_world: PipWorld, tmp_path: Path, how: str) -> None:
    cache_dir = tmp_path / "pkgcache"
    fill_wheels(pip_world, cache_dir)
    beta = pip_world.wheels["beta"]
    impostor = None
    if how == "substitute":
        other = tmp_path / "impostor"
        other.mkdir()

        def make(seed: int) -> Path:  # another valid wheel: same name lengths, other bytes
            d = other / str(seed)
            d.mkdir()
            return pipfx.make_wheel(d, "beta", f"{seed // 10 + 1}.{seed % 10}")
        impostor = same_size_impostor(make, beta.stat().st_size)
    corrupt(object_path(cache_dir, sha256(beta)), how, impostor, seed=3)

    venv = pip_world.venv()
    res = pip_world.install(cache_dir, venv)
    assert res.returncode == 0, res.stdout + res.stderr
    assert pip_world.versions(venv) == ("1.0", "1.0")
    installed = list((venv / "lib").glob("python*/site-packages/beta-1.0.dist-info/RECORD"))
    assert installed and "Requires-Dist" not in (installed[0].parent / "METADATA").read_text()
    assert_short_warnings(res.stderr, 1)
    assert "/files/" + beta.name in pip_world.file_requests()  # fetched again
    assert stats(cache_dir)["corrupt_detected"] >= 1
    assert_verify_clean(cache_dir)
