"""Fetching the files pip chose, and building wheels from sdists for the target."""

from __future__ import annotations

import hashlib
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from .runner import Result, run
from .store import Artifact

CHUNK = 1 << 20


class FetchError(Exception):
    """A file could not be downloaded or did not match its SHA-256."""


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE") or None
    if cafile and not os.path.exists(cafile):
        cafile = None
    return ssl.create_default_context(cafile=cafile)


def download(art: Artifact, dest_dir: Path, *, timeout: float = 120.0) -> Path:
    """Download art to dest_dir/<file name>, checking its SHA-256 while streaming."""
    dest = dest_dir / art.filename
    part = dest_dir / f".{art.filename}.part"
    url = art.url.split("#", 1)[0]
    if not url.startswith(("http://", "https://", "file://")):
        raise FetchError(f"{art.filename}: unsupported URL scheme")
    digest = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "pkgcache-pip"})
        ctx = _ssl_context() if url.startswith("https://") else None
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp, \
                open(part, "wb") as out:
            while chunk := resp.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise FetchError(f"{art.filename}: download failed: {exc}") from None
    if art.sha256 and digest.hexdigest() != art.sha256:
        part.unlink(missing_ok=True)
        raise FetchError(f"{art.filename}: SHA-256 mismatch (expected {art.sha256[:12]}…, "
                         f"got {digest.hexdigest()[:12]}…)")
    os.replace(part, dest)
    return dest


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


def redact(url: str) -> str:
    """url without user:password (never print credentials)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def probe_index(url: str, *, timeout: float = 5.0) -> str | None:
    """None if the index answers (any HTTP status but 502/503/504), else the cause in a few
    words: "connection refused", "certificate verify failed", "HTTP 503", "timed out"..."""
    import socket

    if not url.startswith(("http://", "https://")):
        return None
    req = urllib.request.Request(redact(url), method="HEAD",
                                 headers={"User-Agent": "pkgcache-pip"})
    try:
        ctx = _ssl_context() if url.startswith("https://") else None
        with urllib.request.urlopen(req, timeout=timeout, context=ctx):
            return None
    except urllib.error.HTTPError as exc:
        # any answer means reachable (pip reports 401/404 itself), except a gateway's failure
        return f"HTTP {exc.code}" if exc.code in (502, 503, 504) else None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {reason.verify_message}"
        if isinstance(reason, socket.gaierror):
            return f"name resolution failed: {reason.strerror}"
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror.lower()
        return str(reason)
    except TimeoutError:
        return "timed out"
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


# pip's build requirements for a project without a [build-system] table (legacy setup.py).
LEGACY_BUILD_REQUIRES = ["setuptools>=40.8.0", "wheel"]
_MAX_PYPROJECT = 1 << 20


def build_requires(src: Path) -> list[str]:
    """[build-system] requires of a project directory or an sdist (read, never extracted)."""
    import tarfile
    import zipfile

    import tomllib

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
            return []  # a wheel: nothing to build
        data = tomllib.loads(text) if text else {}
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError):
        return []
    system = data.get("build-system")
    if not isinstance(system, dict) or "requires" not in system:
        return list(LEGACY_BUILD_REQUIRES)
    reqs = system.get("requires")
    return [str(r) for r in reqs] if isinstance(reqs, list) else []
