"""The apt fleet world: a signed local repository (gpg key made here, InRelease clear-signed) served
by the counting server, a WebDAV remote (nginx on 127.0.0.1), and servers A, B, ... — each a
sandbox root whose real apt-get downloads through pkgcache's method with its own cache."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any

import yaml

from tests.support import REPO
from tests.support.apt import Repo, Sandbox
from tests.support.http import DirServer, serve_dir

METHOD_SNIPPET = REPO / "hooks" / "apt" / "data" / "05pkgcache-method"
METHOD_WRAPPER = REPO / "debian" / "methods" / "http"  # /usr/lib/pkgcache/methods/http(s)


class GpgKey:
    """An ed25519 signing key in its own short-path GNUPGHOME."""

    def __init__(self, name: str) -> None:
        self.home = pathlib.Path(tempfile.mkdtemp(prefix="pkg-gpg-", dir="/tmp"))
        os.chmod(self.home, 0o700)
        self._gpg("--quick-gen-key", f"{name} <{name}@example.invalid>", "ed25519", "sign",
                  "never")
        self.public = self.home / "public.gpg"
        self.public.write_bytes(self._gpg("--export"))

    def _gpg(self, *args: str, cwd: pathlib.Path | None = None) -> bytes:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--yes",
                               "--pinentry-mode", "loopback", "--passphrase", "", *args],
                              check=True, capture_output=True, cwd=cwd).stdout

    def sign(self, directory: pathlib.Path) -> None:
        """InRelease (clear-signed) and Release.gpg (detached) for directory/Release."""
        self._gpg("--clearsign", "-o", "InRelease", "Release", cwd=directory)
        self._gpg("-abs", "-o", "Release.gpg", "Release", cwd=directory)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                       capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


class SignedRepo(Repo):
    """The lab's flat repository, signed with `key`; Valid-Until optional."""

    key: GpgKey
    valid_until: str | None = None
    compress: bool = False  # also Packages.xz (apt then asks for it first)

    def publish(self) -> None:
        super().publish()
        if self.compress:
            xz = subprocess.run(["xz", "-9c", str(self.path / "Packages")], check=True,
                                capture_output=True).stdout
            (self.path / "Packages.xz").write_bytes(xz)
            (self.path / "Release").write_bytes(subprocess.run(
                ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=pkgcache-test",
                 "release", "."], cwd=self.path, check=True, capture_output=True).stdout)
        rel = self.path / "Release"
        if self.valid_until:
            rel.write_text(f"Valid-Until: {self.valid_until}\n" + rel.read_text())
        stamp = int(os.stat(self.path / "Packages").st_mtime)
        self.key.sign(self.path)
        for name in ("Release", "InRelease", "Release.gpg"):
            os.utime(self.path / name, (stamp, stamp))


class Server(Sandbox):
    """One fleet member: apt-get through pkgcache's method, its own cache and config."""

    def __init__(self, base: pathlib.Path, repo_url: str, key: GpgKey,
                 remotes: list[dict[str, Any]], *, method: bool = True) -> None:
        super().__init__(base, repo_url, base / "pkgcache")
        (self.root / "etc/apt/sources.list").write_text(
            f"deb [signed-by={key.public}] {repo_url} ./\n")
        self.config = base / "pkgcache.yaml"
        self.config.write_text(yaml.safe_dump({"performance": {"cache": {
            "enabled": True, "directory": str(self.cache_dir), "remote": remotes}}}))
        self.write_pkgcache_wrapper(options=f'--config "{self.config}"')
        self.methods = base / "methods"
        self.methods.mkdir()
        self.write_method()
        if method:
            self.install_method()

    def write_method(self, body: str | None = None) -> None:
        """The sandbox's /usr/lib/pkgcache/methods/http: this checkout's method."""
        if body is None:  # the shipped wrapper, on this checkout and the tests' Python
            text = METHOD_WRAPPER.read_text().replace("/usr/share/pkgcache", str(self.code))
            text = text.replace("/usr/bin/python3", str(self.python))
            text = text.replace("/var/lib/pkgcache", str(self.root / "var/lib/pkgcache"))
        else:
            text = "#!/bin/sh\n" + body
        for name in ("http", "https"):
            path = self.methods / name
            path.write_text(text)
            path.chmod(0o755)

    def write_installed_cli(self, base: pathlib.Path, *, flags: str = "", tail: str = "") -> None:
        """The server's /usr/bin/pkgcache as the .deb installs it (debian/bin/pkgcache: the
        system's python3 with the options of its #! line, not the test venv, whose site costs
        tens of ms at every hook), on this checkout's code (the script is written in base);
        flags: more interpreter options, tail: shell text after the command (a redirection)."""
        script = base / "pkgcache-bin.py"
        text = (REPO / "debian" / "bin" / "pkgcache").read_text()
        script.write_text(text.replace("/usr/share/pkgcache", str(self.code)))
        interp, _, opts = text.split("\n", 1)[0][2:].partition(" ")
        self.write_pkgcache_wrapper(f'exec {interp} {flags} {opts} "{script}" '
                                    f'--config "{self.config}" "$@" {tail}\n')

    def install_method(self) -> None:
        text = METHOD_SNIPPET.read_text().replace("/usr/lib/pkgcache/methods", str(self.methods))
        (self.parts / "05pkgcache-method").write_text(text)

    def remove_method(self) -> None:
        (self.parts / "05pkgcache-method").unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PKGCACHE_CONFIG"] = str(self.config)
        env["PKGCACHE_REMOTE_UPLOAD"] = "manual"
        return env

    def cache(self):
        from cache_core import PackageCache

        return PackageCache.from_config(str(self.config))

    def drain(self) -> dict[str, int]:
        """Upload what this server queued for the remote."""
        remote = self.cache().remote
        assert remote is not None
        return remote.tier.drain(wait=True)

    def wipe_lists(self) -> None:
        lists = self.root / "var/lib/apt/lists"
        for p in lists.iterdir():
            if p.is_file():
                p.unlink()


def start_server(path: pathlib.Path) -> DirServer:
    """The origin: path served (and counted) on 127.0.0.1."""
    return serve_dir(path)


def served_bytes(repo: pathlib.Path, requests: list[str]) -> int:
    """Bytes the origin sent for these GET paths (whole files; 304s count as 0 elsewhere)."""
    total = 0
    for r in requests:
        p = repo / r.lstrip("/").split("?", 1)[0]
        if not r.startswith("HEAD ") and p.is_file():
            total += p.stat().st_size
    return total
