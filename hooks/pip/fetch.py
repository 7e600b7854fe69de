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
