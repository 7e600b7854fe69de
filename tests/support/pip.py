"""The pip world: wheels and sdists built here, a counting PEP 503 index, venvs.

Everything is real: pip runs for real against an HTTP server on 127.0.0.1 that counts requests.
pip's machine-wide config (find-links, extra indexes, constraints) is switched off for each test.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.http import HttpServer, IndexApp

PY_TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"
OTHER_MACHINE = "aarch64" if platform.machine() != "aarch64" else "x86_64"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(out: Path, name: str, version: str, tag: str = "py3-none-any", *,
               requires: tuple[str, ...] = (), requires_python: str | None = None) -> Path:
    """Write a minimal valid wheel whose package records its version in ``VERSION``."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    files = {
        f"{dist}/__init__.py": f'VERSION = "{version}"\nTAG = "{tag}"\n'.encode(),
        f"{info}/METADATA": ("\n".join(meta) + "\n").encode(),
        f"{info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: pkgcache-tests\n"
                          f"Root-Is-Purelib: {'true' if tag.endswith('any') else 'false'}\n"
                          f"Tag: {tag}\n").encode(),
    }
    return _write_wheel(out / f"{dist}-{version}-{tag}.whl", info, files)


def _write_wheel(path: Path, info: str, files: dict[str, bytes]) -> Path:
    """Zip files and their RECORD (fixed timestamps: the same bytes every build)."""
    record = [_record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
    files = dict(files, **{f"{info}/RECORD": ("\n".join(record) + "\n").encode()})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p, d in files.items():
            zf.writestr(zipfile.ZipInfo(p, (2020, 1, 1, 0, 0, 0)), d)
    return path


# The wheel writer both test backends below append to their source (they run in pip's build
# environment, where nothing of this module is importable).
_BACKEND_WRITER = r'''

def _write_wheel(wheel_directory, name, info, files):
    rec = []
    for p, d in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
        rec.append(f"{p},sha256={h},{len(d)}")
    rec.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(rec) + "\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return name
'''

# An in-tree PEP 517 backend: no build requirements (so no index is needed to build), a
# platform-specific wheel tag like a compiled extension, and one log line per wheel build.
_BACKEND = r'''
import base64, hashlib, os, sys, sysconfig, zipfile
NAME, VERSION = "@NAME@", "@VERSION@"
DIST = NAME.replace("-", "_")
INFO = f"{DIST}-{VERSION}.dist-info"
META = f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"

def _tag():
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    return f"{py}-{py}-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, INFO)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w") as f:
        f.write(META)
    return INFO

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    log = os.environ.get("PKGCACHE_TEST_BUILD_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{NAME} {sys.executable}\n")
    tag = _tag()
    files = {f"{DIST}/__init__.py": f'VERSION = "{VERSION}"\nBUILT = True\n'.encode(),
             f"{INFO}/METADATA": META.encode(),
             f"{INFO}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()}
    return _write_wheel(wheel_directory, f"{DIST}-{VERSION}-{tag}.whl", INFO, files)
''' + _BACKEND_WRITER


def make_sdist(out: Path, name: str, version: str) -> Path:
    """Write an sdist whose in-tree backend logs every wheel build to $PKGCACHE_TEST_BUILD_LOG."""
    dist = name.replace("-", "_")
    root = f"{dist}-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": ('[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                           'backend-path = ["."]\n'),
        "backend.py": _BACKEND.replace("@NAME@", name).replace("@VERSION@", version),
    }
    return _write_sdist(out / f"{root}.tar.gz", root, files)


def make_legacy_sdist(out: Path, name: str, version: str) -> Path:
    """Write a setup.py-only sdist (no pyproject.toml): pip without ``wheel`` in the target
    installs it with the legacy ``setup.py install``, building no wheel."""
    dist = name.replace("-", "_")
    root = f"{dist}-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 1.1\nName: {name}\nVersion: {version}\n",
        "setup.py": (f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
                     f"py_modules=[{dist!r}])\n"),
        f"{dist}.py": f'VERSION = "{version}"\n',
    }
    return _write_sdist(out / f"{root}.tar.gz", root, files)


def _write_sdist(path: Path, root: str, files: dict[str, str]) -> Path:
    """A .tar.gz of files under root/ (fixed mtimes and modes)."""
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in files.items():
            data = text.encode()
            ti = tarfile.TarInfo(f"{root}/{rel}")
            ti.size, ti.mtime, ti.mode = len(data), 1577836800, 0o644
            tf.addfile(ti, io.BytesIO(data))
    return path


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Index:
    """A PEP 503 simple index over a directory of files (the support server's IndexApp),
    counting every request in ``requests``."""

    files_dir: Path
    requires_python: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    server: HttpServer | None = None
    port: int = 0
    chunk_delay: float = 0.0  # seconds between 16 KiB pieces of a file (a slow origin)

    @property
    def url(self) -> str:
        """The index URL to give pip (``--index-url``)."""
        return f"http://127.0.0.1:{self.port}/simple/"

    def add(self, path: Path, requires_python: str | None = None) -> Path:
        """Publish a file (copied into the served directory)."""
        dest = self.files_dir / path.name
        if dest != path:
            dest.write_bytes(path.read_bytes())
        if requires_python:
            self.requires_python[path.name] = requires_python
        return dest

    def start(self) -> None:
        """Serve on 127.0.0.1 (a free port, kept across restarts)."""
        app = IndexApp(self.files_dir, self.requires_python, self.requests, self.chunk_delay)
        self.server = HttpServer(app, self.port).start()
        self.port = self.server.port

    def stop(self) -> None:
        """Stop serving (connections to the port are then refused)."""
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass
class Packages:
    """The test distributions, built once per session."""

    dir: Path
    alpha: Path      # alpha 1.0, requires beta>=1.0
    beta: Path
    delta: Path      # sdist only, platform-specific wheel when built
    plat_any: Path   # plat 1.0, pure
    plat_other: Path  # plat 2.0, other machine only: must never be chosen
    onlyother: Path  # onlyother 1.0: only a wheel for another machine
    newpy: Path      # newpy 1.0 requires Python >= 4 (pure)


def venv_version(venv: Path, module: str) -> str | None:
    """The VERSION of an installed test package in venv, or None if it is not importable."""
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          f"import {module}; print({module}.VERSION)"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


# A PEP 517 backend shipped as a wheel on the index ("pkbackend"): projects that list it in
# [build-system] requires can only be built when it can be installed into the build env.
_GENERIC_BACKEND = r'''
import base64, hashlib, os, sys, sysconfig, zipfile

def _meta():
    name, version = open("pkname.txt").read().split()
    return name, version

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version = _meta()
    log = os.environ.get("PKGCACHE_TEST_BUILD_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{name} {sys.executable}\n")
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {f"{dist}/__init__.py": f'VERSION = "{version}"\n'.encode(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    return _write_wheel(wheel_directory, f"{dist}-{version}-py3-none-any.whl", info, files)

build_editable = build_wheel
''' + _BACKEND_WRITER
_BUILT_BY_BACKEND = ('[build-system]\nrequires = ["pkbackend"]\n'
                     'build-backend = "pkbackend"\n')


def make_backend_wheel(out: Path) -> Path:
    """The pkbackend 1.0 wheel (a build backend, served by the test index)."""
    path = out / "pkbackend-1.0-py3-none-any.whl"
    dist, version = "pkbackend", "1.0"
    info = f"{dist}-{version}.dist-info"
    files = {f"{dist}/__init__.py": _GENERIC_BACKEND.encode(),
             f"{info}/METADATA": b"Metadata-Version: 2.1\nName: pkbackend\nVersion: 1.0\n",
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    return _write_wheel(path, info, files)


def make_project(root: Path, name: str, version: str) -> Path:
    """A local project directory built by pkbackend (from the index, or the cache)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(_BUILT_BY_BACKEND)
    (root / "pkname.txt").write_text(f"{name} {version}\n")
    return root


def make_backend_sdist(out: Path, name: str, version: str) -> Path:
    """An sdist built by pkbackend (an sdist-only project with a build requirement)."""
    root = f"{name.replace('-', '_')}-{version}"
    files = {"PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             "pyproject.toml": _BUILT_BY_BACKEND, "pkname.txt": f"{name} {version}\n"}
    return _write_sdist(out / f"{root}.tar.gz", root, files)


def freeze(venv: Path) -> list[str]:
    """``pip freeze`` of a venv (run by the test's pip with --python)."""
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                          "freeze", "--all"], capture_output=True, text=True, check=True)
    return sorted(ln for ln in out.stdout.splitlines()
                  if not ln.startswith(("pip==", "setuptools==", "wheel==")))


def py(venv: Path) -> str:
    """The venv's interpreter (what pkgcache and pip get as ``--python``)."""
    return str(venv / "bin" / "python")


def pip_offline_hashed(venv: Path, links: Path, requirements: Path) -> subprocess.CompletedProcess[str]:
    """Plain pip, no index and no cache, hash-checking: requirements from the links page only."""
    env = {k: val for k, val in os.environ.items() if not k.startswith("PIP_CACHE")}
    return subprocess.run([sys.executable, "-m", "pip", "--python", py(venv), "install",
                           "--no-index", "--no-cache-dir", "--find-links", str(links),
                           "--require-hashes", "-r", str(requirements)],
                          capture_output=True, text=True, env=env, check=False)


def alpha_beta_lock(tmp_path: Path, installer: str, index_url: str) -> list[str]:
    """A lock file pinning alpha and beta 1.0; the install options that use it with installer."""
    lock = tmp_path / "lock.txt"
    lock.write_text("alpha==1.0\nbeta==1.0\n")
    return ["--installer", installer, "-i", index_url, "-r", str(lock)]


def file_index(root: Path, files: list[Path]) -> str:
    """A static PEP 503 index on disk (root/simple/<project>/index.html, links with #sha256=
    to root/files/); its ``file://`` URL for ``--index-url``."""
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

    (root / "files").mkdir(parents=True, exist_ok=True)
    pages: dict[str, list[str]] = {}
    for f in files:
        dest = root / "files" / f.name
        dest.write_bytes(f.read_bytes())
        name = (parse_wheel_filename(f.name)[0] if f.name.endswith(".whl")
                else parse_sdist_filename(f.name)[0])
        pages.setdefault(str(canonicalize_name(name)), []).append(
            f'<a href="../../files/{f.name}#sha256={sha256_of(dest)}">{f.name}</a><br/>')
    for name, links in pages.items():
        d = root / "simple" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links)
                                      + "\n</body></html>\n")
    return (root / "simple").as_uri() + "/"


def same_name_other_bytes(out: Path, name: str, version: str) -> Path:
    """A wheel named exactly like make_wheel(name, version)'s, with other bytes: its module's
    TAG is "py2.py3-none-any" (see installed_tag)."""
    tmp = out / ".other"
    tmp.mkdir(parents=True, exist_ok=True)
    other = make_wheel(tmp, name, version, "py2.py3-none-any")
    dest = out / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    dest.write_bytes(other.read_bytes())
    return dest


def installed_tag(venv: Path, module: str) -> str | None:
    """The TAG recorded in an installed test package (which of two same-named wheels it is)."""
    for init in venv.glob(f"lib/python*/site-packages/{module}/__init__.py"):
        for line in init.read_text().splitlines():
            if line.startswith("TAG = "):
                return line.split('"')[1]
    return None


def pins_all(cache) -> Any:
    """A request that pins every digest in cache (so store.candidates offers every verified
    file the target can use, whoever vouched for it): for tests of the view itself."""
    from hooks.pip.trust import Request

    return Request(frozenset(), frozenset(e.digest for e in cache.keys()))
