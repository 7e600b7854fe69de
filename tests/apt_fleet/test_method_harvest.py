"""Issue 24 (cold hooks): on a cold install through pkgcache's method, the method's helper
stores each deb as apt downloads it, so apt's harvest hook ends without opening the cache (no
python-apt, YAML, SQLite or JSON), and the cache holds every deb."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support.apt import hook_imports

HEAVY = {"apt_pkg", "apt", "yaml", "sqlite3", "_sqlite3", "json"}


def test_a_cold_install_through_the_method_ends_its_harvest_at_once(fleet, tmp_path: Path
                                                                    ) -> None:
    s = fleet.server("cold", remotes=[])
    s.install_snippet()  # the hooks beside the method, as the .deb installs them
    s.apt("update", check=True)
    s.trace_hooks(tmp_path / "log")
    s.apt("install", "alpha", check=True)
    assert sorted(fleet.origin.deb_requests()) != []  # cold: downloaded from the origin
    harvest = hook_imports(tmp_path / "log", "harvest")
    assert len(harvest) == 1 and harvest[0] & HEAVY == set(), harvest
    with s.cache() as cache:
        cached = {e.key: e.digest for e in cache.keys("deb:")}
    want = {f"deb:{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in s.archives.glob("*.deb")}
    assert len(want) == 2 and cached == want, (cached, want)
    # what the fast harvest did is folded into the status as the full harvest records it
    res = s.pkgcache("apt", "status", "--json")
    assert res.returncode == 0, res.stderr
    last = json.loads(res.stdout)["last_harvest"]
    assert (last["seen"], last["already"], last["stored"]) == (2, 2, 0), last

