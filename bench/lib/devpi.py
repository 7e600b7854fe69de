"""devpi-server, a caching PyPI mirror (its `root/pypi` index), as the fleet bench's pip peer.

Not part of pkgcache and never in a server's root: the bench installs devpi-server from PyPI into
a venv of its own (WORK/devpi-venv, kept between runs) and runs it like apt-cacher-ng, in the
store namespace, its upstream the counting relay. A server's pip reaches it with
`-i URL --trusted-host HOST` (plain HTTP on the LAN, as a devpi mirror is usually run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REQUIREMENT = "devpi-server==6.20.3"
PORT = 3141
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # the host's CAs (a site's egress CA included)


class Devpi:
    """devpi-server's venv and server directory under work; argv() starts it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.venv = work / "devpi-venv"
        self.serverdir = work / "devpi-server"
        self.bin = self.venv / "bin"

    def ensure_installed(self) -> str:
        """devpi-server's version, installing it from PyPI into its own venv if needed."""
        if not (self.bin / "devpi-server").exists():
            shutil.rmtree(self.venv, ignore_errors=True)
            subprocess.run(["/usr/bin/python3", "-m", "venv", str(self.venv)], check=True,
                           capture_output=True)
            p = subprocess.run([str(self.bin / "pip"), "install", "-q", REQUIREMENT],
                               capture_output=True, text=True)
            if p.returncode != 0:
                shutil.rmtree(self.venv, ignore_errors=True)
                raise RuntimeError(f"pip install {REQUIREMENT} failed: {p.stderr.strip()[-600:]}")
        p = subprocess.run([str(self.bin / "devpi-server"), "--version"], capture_output=True,
                           text=True)
        return p.stdout.strip() or "?"

    def init(self) -> None:
        """A new, empty server directory (nothing cached: a cold mirror)."""
        shutil.rmtree(self.serverdir, ignore_errors=True)
        subprocess.run([str(self.bin / "devpi-init"), "--serverdir", str(self.serverdir)],
                       check=True, capture_output=True)

    def argv(self, host: str, port: int, proxy: str) -> list[str]:
        """The server's command line: listening on host:port, PyPI through proxy."""
        env = [f"{k}={proxy}" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")]
        ca = [f"{k}={CA_BUNDLE}" for k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
              if os.path.exists(CA_BUNDLE)]
        return ["env", *env, *ca, str(self.bin / "devpi-server"), "--serverdir",
                str(self.serverdir), "--host", host, "--port", str(port)]


def index_url(host: str, port: int = PORT) -> str:
    """The PyPI mirror's simple index on that server."""
    return f"http://{host}:{port}/root/pypi/+simple/"
