"""The Debian package, end to end: build, lintian, and a life cycle inside a fresh Debian 12 root.

Needs root, mmdebstrap, the build tools (tests/requirements-apt.txt) and the Debian archive.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_core import __version__

from .debroot import HOST_ENV, DebRoot, build_deb

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(os.geteuid() != 0, reason="builds chroots and installs packages: needs root"),
]

# Real packages from the Debian archive that the base root does not have (hello pulls nothing,
# xxd is a second, independent deb; both are small).
PKGS = "hello xxd"
CACHE_DIR = "/var/cache/vps-configurator"


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb built from this checkout."""
    return build_deb(tmp_path_factory.mktemp("debbuild"))


def test_deb_lintian_clean_network(deb: Path) -> None:
    """lintian reports no error and no warning on the binary package and its .changes."""
    changes = next(deb.parent.glob("pkgcache_*.changes"))
    proc = subprocess.run(
        ["lintian", "--fail-on", "error,warning", "--display-level", ">=warning", str(changes)],
        env=HOST_ENV, capture_output=True, text=True, timeout=300,
    )
    tags = [ln for ln in proc.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr


def test_deb_contents_network(deb: Path) -> None:
    """The package ships the command, man page, conffiles, timer and apt snippet where expected."""
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True,
                             text=True).stdout
    paths = {ln.split(" -> ")[0].split()[-1].lstrip(".") for ln in listing.splitlines()}
    for want in ("/usr/bin/pkgcache", "/usr/share/man/man1/pkgcache.1.gz",
                 "/etc/vps-configurator/config.yaml", "/lib/systemd/system/pkgcache.timer",
                 "/lib/systemd/system/pkgcache.service", "/etc/cron.daily/pkgcache",
                 "/usr/share/pkgcache/cache_core/api.py", "/usr/share/pkgcache/hooks/cli/app.py",
                 "/usr/share/pkgcache/hooks/common/http.py",
                 "/usr/share/pkgcache/cache_core/storage/tier.py",
                 "/usr/lib/pkgcache/methods/http", "/usr/lib/pkgcache/methods/https",
                 "/usr/share/pkgcache/apt/05pkgcache-method"):
        assert want in paths, f"{want} missing from the .deb"
    assert any(p.startswith("/etc/apt/apt.conf.d/") and not p.endswith("/") for p in paths)
    # The installed README links its guides by name: every relative link resolves on the server.
    doc = "/usr/share/doc/pkgcache/"
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for target in {m.split("#")[0] for m in re.findall(r"\]\((docs/[^)]+)\)", readme)}:
        assert doc + target in paths, f"README links {target}: not installed uncompressed"
    recommends = subprocess.run(["dpkg-deb", "-f", str(deb), "Recommends"], check=True,
                                capture_output=True, text=True).stdout
    assert "git" in [r.strip().split()[0] for r in recommends.split(",") if r.strip()]
    # The generic top-level package "hooks" must not land in dist-packages.
    assert not any("dist-packages" in p for p in paths)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[DebRoot]:
    """A fresh Debian 12 root, deleted afterwards (it is a few hundred MB)."""
    path = tmp_path / "root"
    try:
        yield DebRoot.create(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_deb_lifecycle_in_fresh_root_network(deb: Path, root: DebRoot, tmp_path: Path) -> None:
    """install -> hooks active -> harvest -> clean -> 'Need to get 0 B' -> upgrade -> remove -> purge."""
    root.run("apt-get update -q")
    before = root.file_list()

    inside = root.copy_in(deb, "/tmp/" + deb.name)
    # Without its Recommends (git): they are packages of their own, which purge leaves.
    root.run(f"apt-get install -y -q --no-install-recommends {inside}")
    root.run(f"rm -f {inside}")
    installed = root.file_list() - before
    # The comparison sees the package's files (so the purge check below can fail).
    for path in ("usr/bin/pkgcache", "var/cache/vps-configurator/", "etc/apt/apt.conf.d/05pkgcache",
                 "etc/systemd/system/timers.target.wants/pkgcache.timer"):
        assert path in installed, f"{path} not seen after install"

    # Installed as promised: cache dir, conffiles, timer enabled, command works.
    st = os.lstat(root.path / CACHE_DIR.lstrip("/"))
    assert (st.st_uid, st.st_gid) == (0, 0) and (st.st_mode & 0o7777) in (0o755, 0o700)
    conffiles = root.run("dpkg-query -W -f='${Conffiles}' pkgcache").stdout
    assert "/etc/vps-configurator/config.yaml" in conffiles
    assert "/etc/apt/apt.conf.d/" in conffiles
    assert (root.path / "etc/systemd/system/timers.target.wants/pkgcache.timer").is_symlink()
    root.run("pkgcache --version && pkgcache stats")

    # The hooks are active: apt's configuration carries them and pkgcache reports them.
    dump = root.run("apt-config dump").stdout
    assert "pkgcache" in dump, "apt.conf.d snippet not loaded"
    status = root.run("pkgcache apt status", check=False)
    assert status.returncode == 0, status.stdout
    # The download method (issue 14): selected by a non-conffile written by postinst.
    assert (root.path / "etc/apt/apt.conf.d/05pkgcache-method").is_file()
    assert "05pkgcache-method" not in conffiles
    assert re.search(r"^method\s+active", status.stdout, re.M), status.stdout

    # A real install from the Debian archive harvests every deb it installed into the cache.
    first = root.run(f"apt-get install -y {PKGS}").stdout
    assert "pkgcache: warning" not in first, first
    m = re.search(r"^Need to get (\S+ \S+)", first, re.M)
    assert m and not m.group(1).startswith("0 B"), first
    keys = root.run("pkgcache ls deb:").stdout
    for name in PKGS.split():
        assert re.search(rf"\b{name}_\S+\.deb", keys), f"{name} not harvested:\n{keys}"
    root.run("pkgcache verify")

    # After apt-get clean, a second install gets every deb from the cache.
    root.run(f"apt-get purge -y {PKGS} && apt-get clean")
    assert not list((root.path / "var/cache/apt/archives").glob("*.deb"))
    second = root.run(f"apt-get install -y {PKGS}").stdout
    assert "Need to get 0 B" in second, second
    assert "pkgcache: warning" not in second, second
    root.run("hello --version >/dev/null && xxd -v >/dev/null")
    root.run(f"apt-get purge -y {PKGS} && apt-get clean")

    # apt_front_only (docs/configuration.md): the method's front serves the warm debs at apt's
    # download phase instead; apt counts them in "Need to get", nothing comes from the archive.
    conf = root.path / "etc/vps-configurator/config.yaml"
    plain = conf.read_text()
    conf.write_text(plain.replace("    max_size_gb: 5\n", "    max_size_gb: 5\n    apt_front_only: true\n"))
    assert "apt_front_only: true" in conf.read_text()
    third = root.run(f"apt-get install -y {PKGS}").stdout
    assert "pkgcache: warning" not in third, third
    root.run("hello --version >/dev/null && xxd -v >/dev/null")
    status = root.run("pkgcache apt status").stdout
    assert re.search(rf"\blocal {len(PKGS.split())}\b", status), status  # the front's own hits
    conf.write_text(plain)
    root.run(f"apt-get purge -y {PKGS} && apt-get clean")

    # The installed method's code does not load (a half-removed install): the wrapper's boot
    # line becomes apt's own method; apt-get update works from the archive (the post-update
    # hook, which shares that code, says so in one line).
    code = "/usr/share/pkgcache/hooks/apt/method.py"
    root.run(f"cp -p {code} /tmp/method.py.orig && echo 'raise ImportError(\"gone\")' >> {code}")
    broken = root.run("apt-get update -q", check=False)
    root.run(f"cp -p /tmp/method.py.orig {code} && rm /tmp/method.py.orig")
    assert broken.returncode == 0, broken.stdout
    assert "Traceback" not in broken.stdout and "InRelease" in broken.stdout, broken.stdout
    assert len([ln for ln in broken.stdout.splitlines() if "pkgcache" in ln]) <= 1, broken.stdout

    # The cron fallback runs gc when systemd is absent (as in this root) and succeeds.
    root.run("/etc/cron.daily/pkgcache")

    # Upgrade: a local config edit and the cached objects survive; the timer stays enabled.
    upgrade = _repack(deb, tmp_path / "upgrade", f"{__version__}+upgradetest1")
    root.run("sed -i 's/max_size_gb: 5/max_size_gb: 7/' /etc/vps-configurator/config.yaml")
    inside = root.copy_in(upgrade, "/tmp/" + upgrade.name)
    out = root.run(f"apt-get install -y -q --no-install-recommends {inside} && rm -f {inside}").stdout
    assert "pkgcache: warning" not in out, out
    assert f"{__version__}+upgradetest1" in root.run("dpkg-query -W -f='${Version}' pkgcache").stdout
    assert "max_size_gb: 7" in (root.path / "etc/vps-configurator/config.yaml").read_text()
    kept = root.run("pkgcache ls deb:").stdout
    for name in PKGS.split():
        assert re.search(rf"\b{name}_\S+\.deb", kept), f"{name} lost on upgrade:\n{kept}"
    assert (root.path / "etc/systemd/system/timers.target.wants/pkgcache.timer").is_symlink()

    # remove (not purge): conffiles stay, apt keeps working without a warning.
    root.run("apt-get remove -y pkgcache")
    assert (root.path / "etc/vps-configurator/config.yaml").exists()
    assert not (root.path / "etc/apt/apt.conf.d/05pkgcache-method").exists()
    assert "pkgcache" in root.run("apt-config dump").stdout, "hooks should stay configured, inert"
    after_remove = root.run("apt-get install -y hello && hello --version && apt-get purge -y hello")
    assert "pkgcache" not in after_remove.stdout, after_remove.stdout
    root.run("/etc/cron.daily/pkgcache")  # the kept cron conffile is inert too
    root.run("apt-get update -q && apt-get clean")

    # purge: no file of pkgcache's is left behind.
    root.run("apt-get purge -y pkgcache && apt-get clean")
    after = root.file_list()
    assert not (after - before), f"left behind after purge: {sorted(after - before)}"
    assert not (before - after), f"removed by mistake: {sorted(before - after)}"


def _repack(deb: Path, workdir: Path, version: str) -> Path:
    """The same package under a higher version (to exercise the upgrade path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tree = workdir / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN/control"
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control.read_text()))
    out = workdir / f"pkgcache_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)], check=True,
                   capture_output=True)
    return out


def test_deb_cache_dir_symlink_network(deb: Path, root: DebRoot) -> None:
    """A symlink at the cache path (cache moved to another disk, or planted) is never replaced
    and its target never chmod'ed by postinst; purge removes the link only, never deletes
    through it."""
    # A moved cache carries its CACHEDIR.TAG (pkgcache refuses to start a cache in a non-empty
    # directory that is not one).
    root.run("apt-get update -q && mkdir -m 0700 /srv/bigdisk && touch /srv/bigdisk/keep "
             "&& printf 'Signature: 8a477f597d28d172789f06886806bc55\n' > /srv/bigdisk/CACHEDIR.TAG "
             f"&& ln -s /srv/bigdisk {CACHE_DIR}")
    inside = root.copy_in(deb, "/tmp/" + deb.name)
    out = root.run(f"apt-get install -y -q --no-install-recommends {inside}").stdout
    assert "pkgcache: warning" not in out, out
    link = root.path / CACHE_DIR.lstrip("/")
    target = root.path / "srv/bigdisk"
    assert link.is_symlink() and os.readlink(link) == "/srv/bigdisk"
    assert (target.stat().st_mode & 0o777) == 0o700

    res = root.run("apt-get install -y hello && hello --version")
    assert "pkgcache: warning" not in res.stdout or res.stdout.count("pkgcache: warning") == 1

    root.run("apt-get purge -y hello pkgcache")
    assert not link.exists() and not link.is_symlink()
    assert (target / "keep").exists(), "purge deleted through the symlink"
