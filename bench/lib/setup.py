"""Setup shared by the scenarios: where the checkout and its venv are, the environment for
timed children, the counting relay as the proxy of this process."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support import REPO  # the checkout being measured

PY = REPO / ".venv" / "bin" / "python"
"""The venv's Python (the hooks run with it, as the README's install does)."""
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


@contextlib.contextmanager
def proxied(url: str) -> Iterator[None]:
    """This process (and its children) send HTTP(S) through url; restored afterwards."""
    saved = {k: os.environ.get(k) for k in PROXY_VARS}
    os.environ.update({k: url for k in PROXY_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A fresh directory under /var/tmp (a real disk, not tmpfs), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def manual_uploads() -> None:
    """Remote uploads only when the bench drains the spool (no detached uploader in timings)."""
    os.environ["PKGCACHE_REMOTE_UPLOAD"] = "manual"
