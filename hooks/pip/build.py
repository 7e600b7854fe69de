"""Fetching the files pip chose (through hooks.common.http), and building wheels from sdists."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .runner import Result, run
from .store import Artifact


def pip_cafile() -> str | None:
    """The CA bundle pip would use (PIP_CERT, REQUESTS_CA_BUNDLE), else the system's."""
    return os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE") or None


def download(art: Artifact, dest_dir: Path, *, timeout: float = 120.0) -> Path:
    """Download art to dest_dir/<file name>, checking its SHA-256 while streaming (FetchError;
    the caller then lets pip fetch it, with pip's own retries)."""
    from hooks.common import http

    return http.download(art.url.split("#", 1)[0], dest_dir / art.filename, art.sha256 or None,
                         timeout=timeout, retries=0, cafile=pip_cafile())


def pip_download(arts: list[Artifact], dest_dir: Path, pip: list[str], source_args: list[str],
                 env: dict[str, str]) -> Result:
    """Let pip fetch what urllib could not (index credentials, keyring, client certs)."""
    reqs = dest_dir / ".pkgcache-fetch.txt"
    reqs.write_text("".join(f"{a.name} @ {a.url.split('#', 1)[0]} --hash=sha256:{a.sha256}\n"
                            for a in arts), encoding="utf-8")
    return run([*pip, "download", "--no-deps", "-d", str(dest_dir),
                *source_args, "-r", str(reqs)], env)


def build_wheels(sdists: list[Path], out_dir: Path, pip: list[str], extra_args: list[str],
               env: dict[str, str]) -> Result:
    """Build wheels from local sdists with the target's pip (build deps from the user's index)."""
    return run([*pip, "wheel", "--no-deps", "-w", str(out_dir), *extra_args,
                *map(str, sdists)], env)


def probe_index(url: str, *, timeout: float = 5.0) -> str | None:
    """None if the index answers, else the cause in a few words (see hooks.common.http.probe).

    A host without an address, reached directly, is told with the socket module alone: the
    offline case (every warm install with the network gone) loads no urllib, ssl or email."""
    unresolved = _no_address(url)
    if unresolved:
        return f"name resolution failed: {unresolved}"
    from hooks.common import http

    return http.probe(url, timeout=timeout, cafile=pip_cafile())


def _no_address(url: str) -> str | None:
    """Why url's host has no address, if the environment names no proxy at all (else None:
    hooks.common.http.probe decides, with the client's proxy rules)."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not host or any(v and k.lower().endswith("_proxy") and k.lower() != "no_proxy"
                       for k, v in os.environ.items()):
        return None
    try:  # (an ASCII name as bytes: no IDNA codec to load)
        socket.getaddrinfo(host.encode("ascii") if host.isascii() else host, port,
                           type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return exc.strerror or str(exc)
    except (OSError, UnicodeError):
        return None
    return None


# pip's build requirements for a project without a [build-system] table (legacy setup.py).
LEGACY_BUILD_REQUIRES = ["setuptools>=40.8.0", "wheel"]
_MAX_PYPROJECT = 1 << 20


def build_requires(src: Path) -> list[str]:
    """[build-system] requires of a project directory or an sdist (read, never extracted)."""
    if sys.version_info < (3, 11):
        return []  # no TOML reader in Python 3.10 (tomllib): the build requirements are unknown
    import tomllib  # type: ignore[import-not-found]  # (mypy checks as 3.10)

    text = _pyproject(src)
    if text is None:
        return []
    try:
        data = tomllib.loads(text) if text else {}
    except ValueError:
        return []
    system = data.get("build-system")
    if not isinstance(system, dict) or "requires" not in system:
        return list(LEGACY_BUILD_REQUIRES)
    reqs = system.get("requires")
    return [str(r) for r in reqs] if isinstance(reqs, list) else []


def legacy_sdist(src: Path) -> bool:
    """True for an sdist with no pyproject.toml at all: pip then builds or installs it with the
    target's own setuptools (``setup.py``, no isolated build environment, nothing downloaded)."""
    return _pyproject(src) == ""


def has_build_tools(python: str, env: dict[str, str]) -> bool:
    """Whether the target can build a wheel from a setup.py with its own tools (setuptools and
    a bdist_wheel: the wheel package or setuptools' own), as pip without isolation does."""
    code = ("import importlib.util as u, sys; sys.exit(0 if u.find_spec('setuptools') and "
            "(u.find_spec('wheel') or u.find_spec('setuptools.command.bdist_wheel')) else 1)")
    import subprocess

    try:
        return run([python, "-I", "-c", code], env, timeout=60).rc == 0
    except (OSError, ValueError, subprocess.SubprocessError):
        return False


def _pyproject(src: Path) -> str | None:
    """The text of src's pyproject.toml ("" if it has none), or None if src cannot be read."""
    import tarfile
    import zipfile

    text: str | None = None
    try:
        if src.is_dir():
            p = src / "pyproject.toml"
            text = p.read_text(encoding="utf-8") if p.is_file() else ""
        elif src.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(src, "r:gz") as tf:
                text = ""
                for m in tf:
                    if m.isfile() and m.name.count("/") == 1 and \
                            m.name.endswith("/pyproject.toml") and m.size < _MAX_PYPROJECT:
                        f = tf.extractfile(m)
                        text = f.read().decode("utf-8") if f else ""
                        break
        elif src.name.endswith(".zip"):
            with zipfile.ZipFile(src) as zf:
                text = ""
                for info in zf.infolist():
                    if info.filename.count("/") == 1 and \
                            info.filename.endswith("/pyproject.toml") and \
                            info.file_size < _MAX_PYPROJECT:
                        text = zf.read(info).decode("utf-8")
                        break
        else:
            return None  # a wheel: nothing to build
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError):
        return None
    return text
