"""The upgrade a server sees: the previous release's .deb (built from its commit), its cache and
state dir filled through apt's hooks and ``pkgcache fetch``, then ``apt-get install`` of this
release's .deb: everything is still served and verified, nothing is downloaded again. Then the
way back: a downgrade keeps apt working with at most one warning line.

One Debian 12 root (the fleet world's image: pkgcache's dependencies, git and python3-venv,
built once per machine) whose apt lists come from a signed local repository on 127.0.0.1; the
download origin and the PEP 503 index are test servers on 127.0.0.1 too. The previous release
is built from its commit (``git archive``), not its tag: a clone of main need not have tags.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_core import __version__
from cache_core.index.migrations import SCHEMA_VERSION
from tests.deb.debroot import HOST_ENV, DebRoot, build_deb
from tests.support import REPO
from tests.support.fleet import GpgKey, SignedRepo
from tests.support.http import DirServer, FetchServer, HttpServer, IndexApp, serve_dir
from tests.support.pip import make_wheel
from tests.support.world import world_tarball

PREVIOUS_RELEASE = ("0.1.0", "db63006")
"""(version, commit) of the release before this one (CHANGELOG.md); tag v0.1.0 may be absent in
a clone, the commit is enough."""
PKGS = "up25-alpha up25-beta"

def previous_schema() -> int:
    """The index schema version the previous release knows (its migrations list's length)."""
    src = subprocess.run(["git", "-C", str(REPO), "show",
                          f"{PREVIOUS_RELEASE[1]}:cache_core/index/migrations.py"],
                         capture_output=True, text=True, check=True).stdout
    scope: dict[str, object] = {}
    # our own module as committed at that release (SCHEMA_VERSION = len(MIGRATIONS) there)
    exec(compile(src, "migrations.py", "exec"), scope)
    return int(scope["SCHEMA_VERSION"])  # type: ignore[call-overload]

DOWNLOAD = "/dl/up25tool-1.0.tar.gz"
CACHE = "/var/cache/vps-configurator"
VENV = "/srv/app"
PIP_INSTALL = f"rm -rf {VENV} && python3 -m venv {VENV} && pkgcache pip install --python {VENV} up25tab"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.network,  # the base image comes from the Debian archive (cached for a day)
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mmdebstrap"),
                       reason="builds Debian roots: needs root and mmdebstrap"),
]


def previous_commit() -> str:
    """The previous release's full commit id, or skip (a shallow clone may lack it)."""
    version, commit = PREVIOUS_RELEASE
    git = ["git", "-C", str(REPO)]
    full = subprocess.run([*git, "rev-parse", "--verify", "-q", f"{commit}^{{commit}}"],
                          capture_output=True, text=True)
    if full.returncode != 0:
        pytest.skip(f"release {version}'s commit {commit} is not in this clone (shallow?): "
                    "git fetch --unshallow")
    sha = full.stdout.strip()
    anc = subprocess.run([*git, "merge-base", "--is-ancestor", sha, "HEAD"], capture_output=True)
    assert anc.returncode == 0, f"{commit} ({version}) is not an ancestor of HEAD"
    return sha


def build_previous_deb(out: Path) -> Path:
    """The previous release's .deb, built by its own scripts/build-deb.sh from ``git archive``."""
    src = out / "src-tree"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", previous_commit()],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    proc = subprocess.run(["sh", str(src / "scripts/build-deb.sh"), str(out / "build")],
                          env=HOST_ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"old build-deb.sh failed:\n{proc.stderr[-3000:]}"
    deb = Path(proc.stdout.strip().splitlines()[-1])
    assert deb.name == f"pkgcache_{PREVIOUS_RELEASE[0]}_all.deb", deb
    return deb


class Server:
    """The root, the signed apt repository and the download origin."""

    def __init__(self, base: Path) -> None:
        self.key = GpgKey("up25-archive")
        self.repo = SignedRepo(base / "repo")
        self.repo.key = self.key
        self.repo.path.mkdir()
        self.repo.add("up25-alpha", "1.0", depends="up25-beta")
        self.repo.add("up25-beta", "1.0", size=60000)
        self.repo.publish()
        self.apt: DirServer = serve_dir(self.repo.path)
        self.files = FetchServer().start()
        assert isinstance(self.files, FetchServer)
        self.body = os.urandom(300_000)
        self.files.put(DOWNLOAD, self.body)
        wheels = base / "wheels"
        wheels.mkdir()
        make_wheel(wheels, "up25tab", "1.0", requires=("up25dep",))
        make_wheel(wheels, "up25dep", "0.3")
        self.index_log: list[str] = []
        self.index = HttpServer(IndexApp(wheels, {}, self.index_log)).start()
        self.root = DebRoot.create(base / "root", world_tarball())  # with python3-venv: pip
        p = self.root.path
        (p / "etc/apt/keyrings").mkdir(parents=True, exist_ok=True)
        (p / "etc/apt/keyrings/up25.gpg").write_bytes(self.key.public.read_bytes())
        for f in ("etc/apt/sources.list", "etc/apt/sources.list.d/debian.sources"):
            (p / f).unlink(missing_ok=True)
        (p / "etc/apt/sources.list.d/up25.list").write_text(
            f"deb [signed-by=/etc/apt/keyrings/up25.gpg] {self.apt.base} ./\n")
        (p / "etc/pip.conf").write_text(f"[global]\nindex-url = {self.index.url('/simple/')}\n")
        self.sh("apt-get update -q")

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.root.run(script, check=check, timeout=300)

    def install_deb(self, deb: Path, *flags: str) -> str:
        """``apt-get install ./pkgcache_*.deb`` as the README says; its output."""
        self.root.copy_in(deb, f"/root/{deb.name}")
        out = self.sh(f"cd /root && apt-get install -y -q {' '.join(flags)} ./{deb.name}").stdout
        version = self.sh("dpkg-query -W -f='${Version}' pkgcache").stdout
        assert version == deb.name.split("_")[1], out
        return out

    def reinstall(self) -> str:
        """Purge the packages, empty apt's archives, install them again; apt's output."""
        self.sh(f"apt-get purge -y -q {PKGS} >/dev/null 2>&1 || true; apt-get clean")
        self.apt.reset()
        return self.sh(f"apt-get install -y -q {PKGS}").stdout

    def pip_install(self, lines: int = 0) -> tuple[list[str], str]:
        """A new venv, ``pkgcache pip install up25tab`` into it: (wheels downloaded, pip freeze);
        at most lines pkgcache lines in its output."""
        self.index_log.clear()
        out = self.sh(PIP_INSTALL + " 2>&1").stdout
        assert len(pkgcache_lines(out)) <= lines, out
        freeze = self.sh(f"{VENV}/bin/python -m pip freeze --all 2>/dev/null | grep up25").stdout
        return [r for r in self.index_log if r.startswith("/files/")], freeze

    def set_index_version(self, version: int) -> int:
        """Write the index's schema version (as another release would); the old one."""
        conn = sqlite3.connect(self.root.path / CACHE.lstrip("/") / "index-v1.sqlite")
        try:
            old = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version={version}")
            conn.commit()
        finally:
            conn.close()
        return int(old)

    def stop(self) -> None:
        self.apt.stop()
        self.files.stop()
        self.index.stop()
        self.key.close()


def pkgcache_lines(out: str) -> list[str]:
    """The lines pkgcache wrote into a command's output (``pkgcache: …``); never a traceback."""
    assert "Traceback" not in out, out
    return [line for line in out.splitlines() if "pkgcache:" in line]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def test_upgrade_from_the_previous_release_downloads_nothing_again(server: Server, tmp_path: Path):
    old_deb = build_previous_deb(tmp_path / "old")
    new_deb = build_deb(tmp_path / "new")
    assert new_deb.name == f"pkgcache_{__version__}_all.deb"
    url = server.files.url(DOWNLOAD)

    # The previous release in use: debs harvested by apt's hooks, a download with its memo.
    server.install_deb(old_deb)
    first = server.reinstall()
    assert len(server.apt.deb_requests()) == 2, server.apt.requests
    assert pkgcache_lines(first) == [], first
    server.sh(f"pkgcache fetch {url} -o /root/tool-old.tgz")
    wheels, freeze = server.pip_install()
    assert len(set(wheels)) == 2 and "up25tab==1.0" in freeze and "up25dep==0.3" in freeze, wheels
    assert (server.root.path / "root/tool-old.tgz").read_bytes() == server.body
    cached = server.sh("pkgcache ls deb:").stdout
    assert cached.count("up25-") == 2, cached
    server.sh("sed -i 's/max_size_gb: 5/max_size_gb: 6/' /etc/vps-configurator/config.yaml")

    # The upgrade, as a server sees it.
    out = server.install_deb(new_deb)
    assert pkgcache_lines(out) == [], out
    assert "max_size_gb: 6" in (server.root.path / "etc/vps-configurator/config.yaml").read_text()
    server.sh("pkgcache verify")
    again = server.reinstall()
    assert server.apt.deb_requests() == [], server.apt.requests   # the debs came from the cache
    assert pkgcache_lines(again) == [], again
    assert server.pip_install() == ([], freeze)                   # no wheel downloaded again
    server.files.reset()
    server.sh(f"pkgcache fetch {url} -o /root/tool-new.tgz")      # revalidated: 304, no body
    assert [h.status for h in server.files.hits] == [304], server.files.hits
    assert (server.root.path / "root/tool-new.tgz").read_bytes() == server.body
    server.files.stop()                                            # the origin is gone
    gone = server.sh(f"pkgcache fetch {url} -o /root/tool-gone.tgz 2>&1")
    assert (server.root.path / "root/tool-gone.tgz").read_bytes() == server.body
    assert len(pkgcache_lines(gone.stdout)) <= 1, gone.stdout

    # An index from a release newer than this one: apt as without the cache, one line at most.
    old_schema = server.set_index_version(SCHEMA_VERSION + 1)
    future = server.reinstall()
    assert len(server.apt.deb_requests()) == 2, server.apt.requests
    assert len(pkgcache_lines(future)) <= 1, future
    assert server.set_index_version(old_schema) == SCHEMA_VERSION + 1   # untouched by this one

    # The way back: the previous release installs over this one. It serves the same cache if
    # this release left the index at a schema it knows; if this release migrated the index
    # further, it degrades cleanly: apt and pip as without the cache, one line at most.
    back = server.install_deb(old_deb, "--allow-downgrades")
    assert len(pkgcache_lines(back)) <= 1, back
    downgraded = server.reinstall()
    if old_schema <= previous_schema():
        assert len(pkgcache_lines(downgraded)) <= 1, downgraded
        assert server.apt.deb_requests() == [], server.apt.requests
        assert server.pip_install() == ([], freeze)
    else:
        # 0.1.0 warns once per hook (seed, method, harvest); one line per apt run came in 0.2.0
        assert len(pkgcache_lines(downgraded)) <= 3, downgraded
        assert all("newer than this pkgcache" in ln for ln in pkgcache_lines(downgraded))
        assert len(server.apt.deb_requests()) == 2, server.apt.requests  # installed all the same
        wheels, again_freeze = server.pip_install(lines=1)
        assert again_freeze == freeze and wheels, wheels
