"""The git world: bare repositories served over git's smart HTTP by the support server (GitApp)
on 127.0.0.1, repository helpers, and a runner for ``pkgcache --cache-dir <tmp>/cache git``."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from tests.support.cli import Runner
from tests.support.env import clean_env
from tests.support.http import GitApp, HttpServer


class GitServer(HttpServer):
    """Serves every repository under root at ``url(name)``; ``stall_after`` makes the next
    upload-pack answer stop mid-way (``stalled`` is set) until ``release`` is set."""

    def __init__(self, root: Path) -> None:
        self.git = GitApp(root)
        super().__init__(self.git)

    @property
    def root(self) -> Path:
        """The directory of bare repositories."""
        return self.git.root

    @property
    def stall_after(self) -> int | None:
        """Bytes of the next pack to send before stalling (None: no stall)."""
        return self.git.stall_after

    @stall_after.setter
    def stall_after(self, value: int | None) -> None:
        with self.git.lock:
            self.git.stall_after = value

    @property
    def stalled(self) -> threading.Event:
        """Set when a pack stalled."""
        return self.git.stalled

    @property
    def release(self) -> threading.Event:
        """Set it to let a stalled pack go on (and end)."""
        return self.git.release

    def url(self, name: str = "") -> str:  # type: ignore[override]
        """The clone URL of repository name."""
        return super().url(f"/{name}")

    def packs(self) -> int:
        """How many upload-pack (object transfer) requests were answered."""
        with self.lock:
            return sum(1 for h in self.hits if h.path.endswith("/git-upload-pack"))


def make_repo(root: Path, name: str, files: int = 3, size: int = 0) -> Path:
    """A bare repository ``root/name`` with one commit on main (files of random content)."""
    bare = root / name
    work = root / (name + "-work")
    git(["init", "-q", "-b", "main", str(work)])
    for i in range(files):
        (work / f"file{i}.txt").write_bytes(os.urandom(size) if size else f"v1 {i}\n".encode())
    commit(work, "first")
    git(["clone", "-q", "--bare", str(work), str(bare)])
    git(["--git-dir", str(bare), "config", "http.receivepack", "true"])
    git(["-C", str(work), "remote", "add", "origin", str(bare)])
    return bare


def add_commit(root: Path, name: str, text: str) -> str:
    """Commit a change in the work tree of ``name`` and push it to the bare repo; its sha."""
    work = root / (name + "-work")
    (work / "news.txt").write_text(text)
    commit(work, text)
    git(["-C", str(work), "push", "-q", "origin", "main"])
    return git(["-C", str(work), "rev-parse", "HEAD"]).strip()


def commit(work: Path, msg: str) -> None:
    """Commit everything in work."""
    git(["-C", str(work), "add", "-A"])
    git(["-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit",
         "-q", "-m", msg])


def git(args: list[str], cwd: Path | None = None) -> str:
    """git args (no GIT_* from outside, no system config); its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", HOME=os.environ.get("HOME", "/root"))
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def child_env(tmp: Path) -> dict[str, str]:
    """No proxies, no GIT_* or PKGCACHE_* leaking in, a private HOME, an empty config."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return clean_env(tmp, drop=("GIT_",), HOME=str(home), GIT_CONFIG_NOSYSTEM="1")


class GitRunner(Runner):
    """``pkgcache --cache-dir <tmp>/cache git ...`` (text output, git's environment cleaned too)."""

    text = True

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.bucket = self.cache_dir / "git-v1"

    def env(self) -> dict[str, str]:
        """No proxies, GIT_* or PKGCACHE_* from outside, a private HOME, an empty config."""
        return child_env(self.tmp)

    def mirrors(self) -> list[Path]:
        """The mirrors in the cache's git bucket."""
        return sorted(p for p in self.bucket.iterdir() if not p.name.startswith(".")) \
            if self.bucket.exists() else []

    def leftovers(self) -> list[Path]:
        """Hidden (temporary) entries left in the git bucket."""
        return sorted(p for p in self.bucket.iterdir() if p.name.startswith(".")) \
            if self.bucket.exists() else []
