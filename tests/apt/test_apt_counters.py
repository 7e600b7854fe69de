"""Issue #11 item 7: `stats` counts a miss for every deb apt downloaded (then harvested) and a
hit for every deb seeded from the cache. Real apt-get against the local repository lab."""

from __future__ import annotations

from tests.apt.test_apt_e2e import first_install


def test_cold_apt_run_counts_misses_warm_run_counts_hits(lab) -> None:
    before = lab.cache().stats()
    first_install(lab)  # apt downloads alpha and beta; harvest stores both
    cold = lab.cache().stats()
    assert cold["misses"] - before["misses"] == 2, cold
    assert cold["hits"] == before["hits"], cold
    lab.reprovision()
    lab.sb.apt("install", "alpha", check=True)  # both seeded: no download
    assert lab.server.deb_requests() == []
    warm = lab.cache().stats()
    assert warm["hits"] - cold["hits"] == 2, warm
    assert warm["misses"] == cold["misses"], warm
