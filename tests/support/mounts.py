"""File systems made for one test (tmpfs: full or read-only; bind mounts: another mount of the
same file system) and undone at its end. Needs root; a test is skipped where mount fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


class Mounts:
    """Mounts made under base by one test; ``cleanup()`` unmounts them, last first."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.mounted: list[Path] = []

    def _mount(self, where: Path, *args: str) -> Path:
        res = subprocess.run(["mount", *args, str(where)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount {args[-1]} here: {res.stderr.strip()}")
        self.mounted.append(where)
        return where

    def tmpfs(self, name: str, size: str = "64m", opts: str = "mode=0755") -> Path:
        """A fresh tmpfs of this size at base/name (opts="": tmpfs's own mode, 1777)."""
        where = self.base / name
        where.mkdir()
        options = ",".join(o for o in (f"size={size}", opts) if o)
        return self._mount(where, "-t", "tmpfs", "-o", options, "pkgcache-test")

    def bind(self, name: str) -> Path:
        """base/name: a bind mount of a fresh base/name-src (same fs; link() across is EXDEV)."""
        src, where = self.base / (name + "-src"), self.base / name
        src.mkdir()
        where.mkdir()
        return self._mount(where, "--bind", str(src))

    @staticmethod
    def remount(where: Path, opts: str) -> None:
        """Remount with opts (e.g. "ro", "rw")."""
        subprocess.run(["mount", "-o", f"remount,{opts}", str(where)], check=True,
                       capture_output=True)

    def cleanup(self) -> None:
        """Unmount everything this test mounted (lazily: a stray open file does not block)."""
        for where in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
        self.mounted.clear()
