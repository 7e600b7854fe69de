"""Where the local store keeps things under its root, and the checks that make the root safe."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ...errors import BadKeyError, UnsafeCacheError
from ...fs import atomic_write, check_dir_safe, check_new_root, ensure_private_dir
from ...keys import is_digest

LAYOUT = "objects-v1"
INDEX_NAME = "index-v1.sqlite"
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by pkgcache.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)


class Layout:
    """The paths of one cache: objects-v1/sha256/<2 hex>/<digest>, tmp/, quarantine/, locks/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects_dir = root / LAYOUT / "sha256"
        self.tmp_dir = root / "tmp"
        self.quarantine_dir = root / "quarantine"
        self.lock_dir = root / "locks"
        self.index_path = root / INDEX_NAME
        self._shards: set[str] = set()

    def object_path(self, digest: str) -> Path:
        """Where the object with this digest lives (BadKeyError unless 64 lower-case hex)."""
        if not is_digest(digest):
            raise BadKeyError(f"not a sha256 digest: {digest!r:.80}")
        return self.objects_dir / digest[:2] / digest

    def shard(self, digest: str) -> Path:
        """The shard directory of digest, created (and checked) on first use."""
        shard = self.objects_dir / digest[:2]
        if digest[:2] not in self._shards:
            ensure_private_dir(shard)
            self._shards.add(digest[:2])
        return shard

    def forget_shards(self) -> None:
        """The shard directories were removed (clear): create them again on demand."""
        self._shards.clear()

    def create(self) -> None:
        """Make (or check) a writable root: safe owner and mode, the sub-directories, the tag."""
        check_new_root(self.root)
        old_umask = os.umask(0o022)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        finally:
            os.umask(old_umask)
        check_dir_safe(self.root)
        for sub in (self.root / LAYOUT, self.objects_dir, self.tmp_dir, self.quarantine_dir,
                    self.lock_dir):
            ensure_private_dir(sub)
        tag = self.root / "CACHEDIR.TAG"
        if not os.path.lexists(tag):
            atomic_write(tag, CACHEDIR_TAG)
        self.check_index_files()

    def check_read_only(self) -> None:
        """Root's cache read by another user: it must be root's and safe; nothing is created."""
        check_dir_safe(self.root, owner=0)
        if self.index_path.is_symlink() or not self.index_path.is_file():
            raise UnsafeCacheError(f"{self.index_path} is not a plain file; not reading it")

    def check_index_files(self) -> None:
        """The index and its WAL/SHM must be regular files we own that nobody else can write
        (never a symlink or FIFO). It stays readable (users may read root's cache): keys of
        private downloads are hashes and their objects 0400."""
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.index_path) + suffix)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeCacheError(f"{p} is not a regular file (symlink or FIFO "
                                       "planted?); refusing it")
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise UnsafeCacheError(f"{p} is owned or writable by another user; "
                                       "refusing it")
