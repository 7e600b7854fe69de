"""Shared helpers for the reliability suite: the apt and pip worlds of tests/support, the
pkgcache CLI as a subprocess, faults on files.

Everything is real: apt-get/dpkg in a sandbox root, pip into fresh venvs, HTTP servers on
127.0.0.1 that count requests, tmpfs mounts for full and read-only file systems.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from cache_core import PackageCache
from tests.support import apt as aptlab
from tests.support import pip as pipfx
from tests.support.cli import run_cli
from tests.support.env import pip_env
from tests.support.http import DirServer

TOOLS = ("apt-get", "dpkg", "dpkg-deb", "apt-ftparchive", "mount", "timeout")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in TOOLS),
    reason="needs root (mounts, dpkg --root) and " + ", ".join(TOOLS))


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- the pkgcache CLI -----------------------------------------------------------------------------
def cli(cache_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300,
        **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``pkgcache --cache-dir CACHE ARGS`` (this checkout) and capture its output; env is the
    whole environment (default: this process's)."""
    return run_cli(*args, cache_dir=cache_dir, base=env, timeout=timeout, **kw)


def verify_report(cache_dir: Path, repair: bool = False) -> dict[str, list[str]]:
    """`pkgcache verify --json [--repair]`; asserts the exit code matches the report."""
    res = cli(cache_dir, "verify", "--json", *(["--repair"] if repair else []))
    assert res.returncode in (0, 1), res.stdout + res.stderr
    report = json.loads(res.stdout)
    problems = {k: v for k, v in report.items() if v}
    assert (res.returncode == 0) == (repair or not problems), (res.returncode, report)
    return report


def assert_verify_clean(cache_dir: Path) -> None:
    """`pkgcache verify` exits 0 and reports nothing."""
    res = cli(cache_dir, "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ok:"), res.stdout


def stats(cache_dir: Path) -> dict:
    res = cli(cache_dir, "stats", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def pkgcache_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if "pkgcache" in ln]


def assert_short_warnings(text: str, most: int) -> list[str]:
    """At most `most` pkgcache lines, each a short warning, and never a traceback."""
    lines = pkgcache_lines(text)
    assert len(lines) <= most, text
    for ln in lines:
        assert ln.startswith("pkgcache: warning: ") and len(ln) < 240, ln
    assert "Traceback" not in text, text
    return lines


# -- faults on files ------------------------------------------------------------------------------
def object_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / "objects-v1" / "sha256" / digest[:2] / digest


def corrupt(path: Path, how: str, substitute: bytes | None = None, seed: int = 0) -> None:
    """Damage a cached object in place (the inode is kept, as a disk or a stray writer would)."""
    rng = random.Random(seed)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    if how == "bitflip":
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        data = data[: rng.randrange(len(data))]
    elif how == "substitute":
        assert substitute is not None and len(substitute) == len(data)
        assert substitute != bytes(data)
        data = bytearray(substitute)
    else:
        raise ValueError(how)
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))
    os.chmod(path, 0o444)


# -- apt ------------------------------------------------------------------------------------------
@dataclass
class AptWorld:
    """A flat repo served on 127.0.0.1 and a sandbox root whose apt runs pkgcache's snippet."""

    repo: aptlab.Repo
    server: DirServer
    sb: aptlab.Sandbox
    cache_dir: Path
    names: tuple[str, ...]

    def stop(self) -> None:
        self.server.stop()

    def use_cache(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.sb.cache_dir = cache_dir
        self.sb.write_pkgcache_wrapper()

    def install(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.sb.apt("install", *extra, *self.names)

    def dpkg_purge(self) -> None:
        """Purge the packages with dpkg alone (cheaper than apt-get; no apt hooks run)."""
        root = self.sb.root
        subprocess.run(["dpkg", f"--root={root}", f"--log={root}/var/log/dpkg.log",
                        "--force-script-chrootless", "--purge", *self.names],
                       check=True, capture_output=True, env=self.sb.env())

    def reprovision(self) -> None:
        """Packages purged and archives emptied, as on a freshly provisioned machine."""
        self.sb.apt("purge", *self.names, check=True)
        self.sb.apt("clean", check=True)
        self.server.reset()

    def assert_installed_right(self) -> None:
        """Every package installed at its repo version with the repo's payload bytes."""
        for name in self.names:
            deb = self.repo.debs[name]
            version = deb.name.split("_")[1]
            got = self.sb.installed(name)
            assert got is not None and got.split(":")[-1] == version, (name, got)
            payload = self.sb.root / "usr/share/pkgcache-test" / name / "payload.bin"
            assert payload.read_bytes() == expected_payload(self.repo.path, deb), name

    def assert_archives_right(self) -> None:
        """Every .deb left in apt's archives is byte-identical to the repo's."""
        good = {sha256(p) for p in self.repo.debs.values()}
        for p in self.sb.archives.glob("*.deb"):
            assert sha256(p) in good, f"wrong bytes in archives: {p.name}"

    def deb_digests(self) -> dict[str, str]:
        return {name: sha256(p) for name, p in self.repo.debs.items()}


_PAYLOADS: dict[str, bytes] = {}


def expected_payload(repo: Path, deb: Path) -> bytes:
    key = sha256(deb)
    if key not in _PAYLOADS:
        out = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True,
                             check=True).stdout
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(out)) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith("payload.bin"))
            f = tf.extractfile(member)
            assert f is not None
            _PAYLOADS[key] = f.read()
    return _PAYLOADS[key]


DEFAULT_DEBS = (("alpha", "1.0-1", {"depends": "beta", "size": 300_000}),
                ("beta", "2:1.0-1", {"arch": "amd64", "size": 200_000}),
                ("gamma", "0.5", {"size": 100_000}))


def make_apt_world(base: Path, cache_dir: Path, debs=DEFAULT_DEBS) -> AptWorld:
    """The apt lab (tests.support.apt) with these debs, updated once."""
    lab = aptlab.make_lab(base, debs, cache_dir)
    world = AptWorld(lab.repo, lab.server, lab.sb, cache_dir, tuple(n for n, _, _ in debs))
    lab.sb.apt("update", check=True)
    return world


# -- pip ------------------------------------------------------------------------------------------
@dataclass
class PipWorld:
    """A counting PEP 503 index with pure wheels, and fresh venvs to install into."""

    index: pipfx.Index
    base: Path
    wheels: dict[str, Path]
    count: int = 0

    def venv(self) -> Path:
        self.count += 1
        path = self.base / f"venv{self.count}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                       capture_output=True)
        return path

    def install(self, cache_dir: Path, venv: Path, *extra: str, env: dict[str, str] | None = None,
                **kw: object) -> subprocess.CompletedProcess[str]:
        return cli(cache_dir, "pip", "install", "--python", str(venv / "bin" / "python"),
                   "-i", self.index.url, *extra, "alpha", env=env or pip_env(), **kw)

    @staticmethod
    def versions(venv: Path) -> tuple[str | None, str | None]:
        return (pipfx.venv_version(venv, "alpha"), pipfx.venv_version(venv, "beta"))

    def requests(self) -> list[str]:
        return list(self.index.requests)

    def file_requests(self) -> list[str]:
        return [r for r in self.requests() if r.startswith("/files/")]

    def stop(self) -> None:
        self.index.stop()


def make_pip_world(base: Path) -> PipWorld:
    dists = base / "dists"
    dists.mkdir(parents=True)
    files = base / "index-files"
    files.mkdir()
    alpha = pipfx.make_wheel(dists, "alpha", "1.0", requires=("beta>=1.0",))
    beta = pipfx.make_wheel(dists, "beta", "1.0")
    index = pipfx.Index(files)
    index.add(alpha)
    index.add(beta)
    index.start()
    return PipWorld(index, base, {"alpha": files / alpha.name, "beta": files / beta.name})


# -- filling the cache the way the drivers do ---------------------------------------------------
def apt_name(deb: Path) -> str:
    """The name apt gives a .deb in its archives dir."""
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture"],
                            capture_output=True, text=True, check=True).stdout
    values = dict(line.split(": ", 1) for line in fields.splitlines())
    from hooks.apt.naming import archive_name

    return archive_name(values["Package"], values["Version"], values["Architecture"])


def fill_debs(world: AptWorld) -> None:
    """Harvest every repo .deb into the cache (the harvest hook's own store function)."""
    from hooks.apt.harvest import store as harvest_store

    with PackageCache(str(world.cache_dir)) as c:
        for deb in world.repo.debs.values():
            assert harvest_store(c, str(deb), apt_name(deb), link=False)[0] == "stored"


def fill_wheels(pip: PipWorld, cache_dir: Path) -> None:
    """Put both wheels in the cache the way the pip driver does after a download."""
    from hooks.pip.options import sources as pip_sources
    from hooks.pip.store import WheelStore

    dl = cache_dir.parent / "download"
    dl.mkdir(exist_ok=True)
    # the sources as the driver sees them in its child: with the environment pip runs with
    # (pip_env: the machine's pip configuration off), not this process's
    with mock.patch.dict(os.environ, pip_env(), clear=True):
        sources = pip_sources(["-i", pip.index.url])
    with PackageCache(str(cache_dir)) as c:
        ws = WheelStore(c)
        for name, served in pip.wheels.items():
            path = Path(shutil.copy(served, dl))  # the driver's own download (it may be linked)
            meta = {"filename": path.name, "name": name, "version": "1.0",
                    "requires_python": None, "yanked": False,
                    # provenance as the driver records it: the index the install reads
                    "sources": sources}
            assert ws.add(f"wheel:{path.name}", str(path), sha256(path), meta)
        ws.save_trust()  # the vouches live in the local state dir, as after a real install
