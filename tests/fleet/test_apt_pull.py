"""`pkgcache remote pull --apt PKG…` on server B takes the .debs server A's real apt-get install
cached, by the SHA-256 of B's own (signed-chain) indexes; B then installs with no .deb download."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.apt import Repo, Sandbox
from tests.support.cli import run_cli
from tests.support.http import serve_dir

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in ("apt-get", "dpkg-deb",
                                                               "apt-ftparchive")),
    reason="needs root and the apt tools")


@pytest.fixture
def repo_server(tmp_path: Path):
    repo = Repo(tmp_path / "repo")
    repo.path.mkdir()
    repo.add("alpha", "1.0-1", depends="beta")
    repo.add("beta", "2:1.0-1", arch="amd64")
    repo.publish()
    server = serve_dir(repo.path)
    yield repo, server
    server.stop()


def _sandbox(tmp_path: Path, name: str, url: str, cfg: Path) -> Sandbox:
    sb = Sandbox(tmp_path / f"sb-{name}", url, tmp_path / name)
    sb.write_pkgcache_wrapper(options=f'--config "{cfg}"')
    sb.install_snippet()
    return sb


def test_remote_pull_apt_then_install_downloads_no_deb(fleet, repo_server, tmp_path):
    if fleet.store.kind != "nginx":
        pytest.skip("one backend is enough for the apt path")
    _, server = repo_server
    fleet.a.close()
    fleet.b.close()
    a = _sandbox(tmp_path, "a", server.base, Path(fleet.config("a")))
    a.apt("update", check=True)
    a.apt("install", "alpha", check=True)
    assert a.installed("alpha") == "1.0-1"
    r = run_cli("--config", fleet.config("a"), "remote", "push")
    assert r.returncode == 0, r.stdout + r.stderr
    b = _sandbox(tmp_path, "b", server.base, Path(fleet.config("b")))
    b.apt("update", check=True)
    server.reset()
    r = run_cli("--config", fleet.config("b"), "remote", "pull", "--apt", "alpha",
                env={"APT_CONFIG": str(b.apt_config)})
    assert r.returncode == 0 and "apt: pulled 2, not found 0" in r.stdout, r.stdout + r.stderr
    assert server.deb_requests() == []
    # B no longer sees the remote: what it installs now comes from its own cache
    cfg = yaml.safe_load(Path(fleet.config("b")).read_text())
    cfg["performance"]["cache"]["remote"] = []
    Path(fleet.config("b")).write_text(yaml.safe_dump(cfg))
    b.apt("install", "alpha", check=True)
    assert b.installed("alpha") == "1.0-1" and b.installed("beta") == "2:1.0-1"
    assert server.deb_requests() == []
    # a package the fleet does not hold is reported
    r = run_cli("--config", fleet.config("a"), "remote", "pull", "--apt", "no-such-package",
                env={"APT_CONFIG": str(b.apt_config)})
    assert r.returncode == 2 and "no-such-package" in r.stderr
