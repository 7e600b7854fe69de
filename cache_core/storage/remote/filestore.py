"""``file:///path``: the same cas/ and ac/ layout in a directory (NFS, a shared folder, a USB disk
for an air-gapped transfer).

The store is opened, never followed: its root, then ``cas/`` and ``ac/`` are opened with
O_DIRECTORY|O_NOFOLLOW and every open, create, rename and listing happens relative to those
descriptors, so a co-writer who swaps a directory for a symlink (``cas -> /etc/apt/apt.conf.d``)
never gets root to write or read outside the store: a symlinked directory is refused (a counted
fault, one warning). Writes are atomic (an O_EXCL temp + rename); a symlinked object is a miss.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
import urllib.parse
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from .base import RemoteError, RemoteMissing, RemoteTimeout, register
from .http import CHUNK

if TYPE_CHECKING:
    from .config import RemoteSpec

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_dir(name: str, dir_fd: int | None, what: str) -> int:
    """A directory opened without following a symlink (RemoteError if it is one)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RemoteError(f"store directory {what} is a symlink or not a directory; "
                              "refusing the store") from None
        raise


@register("file")
class FileBackend:
    """A directory store."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.base = urllib.parse.unquote(urllib.parse.urlsplit(spec.url).path).rstrip("/") or "/"

    @contextlib.contextmanager
    def _kind_dir(self, kind: str, create: bool = False) -> Iterator[int | None]:
        """A descriptor on base/kind (None if it is missing and not created)."""
        try:
            base_fd = _open_dir(self.base, None, "(the store's root)")
        except FileNotFoundError:  # an unmounted share is an outage, not a miss
            raise RemoteError("store directory missing") from None
        except OSError as exc:
            raise RemoteError(f"cannot open the store: {exc.strerror}") from None
        try:
            try:
                fd: int | None = _open_dir(kind, base_fd, f"{kind}/")
            except FileNotFoundError:
                if not create:
                    fd = None
                else:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(kind, 0o755, dir_fd=base_fd)
                    fd = _open_dir(kind, base_fd, f"{kind}/")
            except OSError as exc:
                raise RemoteError(f"cannot open {kind}/: {exc.strerror}") from None
            try:
                yield fd
            finally:
                if fd is not None:
                    os.close(fd)
        finally:
            os.close(base_fd)

    def _open(self, name: str) -> int:
        kind, _, leaf = name.partition("/")
        with self._kind_dir(kind) as dfd:
            if dfd is None:
                raise RemoteMissing(name)
            try:
                fd = os.open(leaf, _READ_FLAGS, dir_fd=dfd)
            except FileNotFoundError:
                raise RemoteMissing(name) from None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EACCES, errno.EPERM):
                    raise RemoteMissing(name) from None
                raise RemoteError(f"cannot open: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RemoteMissing(name)
        return fd

    def get(self, name: str, deadline: float) -> Iterator[bytes]:
        """Stream the file; RemoteTimeout once the deadline has passed (checked per chunk: a slow
        share ends there; a hard NFS mount that hangs in read() is not interruptible: mount
        stores ``soft,timeo=``, docs/fleet.md)."""
        fd = self._open(name)

        def gen() -> Iterator[bytes]:
            try:
                while True:
                    if time.monotonic() > deadline:
                        raise RemoteTimeout("time budget for the object exhausted")
                    chunk = os.read(fd, CHUNK)
                    if not chunk:
                        break
                    yield chunk
            except OSError as exc:
                raise RemoteError(f"read failed: {exc.strerror}") from None
            finally:
                os.close(fd)
        return gen()

    def head(self, name: str, deadline: float) -> int | None:
        """Size of the file or None."""
        try:
            fd = self._open(name)
        except RemoteMissing:
            return None
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def put(self, name: str, body: IO[bytes], size: int, sha256: str, deadline: float,
            *, if_none_match: bool = False) -> None:
        """Write an O_EXCL temp in the kind's directory (by descriptor) and rename it into place."""
        kind, _, leaf = name.partition("/")
        with self._kind_dir(kind, create=True) as dfd:
            assert dfd is not None
            tmp = f"{leaf}.tmp-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=dfd)
                try:
                    with os.fdopen(fd, "wb") as out:
                        while chunk := body.read(CHUNK):
                            out.write(chunk)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, leaf, src_dir_fd=dfd, dst_dir_fd=dfd)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp, dir_fd=dfd)
                with contextlib.suppress(OSError):
                    os.fsync(dfd)
            except OSError as exc:
                raise RemoteError(f"write failed: {exc.strerror}") from None

    def list(self, kind: str) -> Iterator[str] | None:
        """The hex names in base/kind/."""
        with self._kind_dir(kind) as dfd:
            if dfd is None:
                return iter(())
            names = os.listdir(dfd)
        return (n for n in names if len(n) == 64 and all(c in "0123456789abcdef" for c in n))

    # -- leases (lease.py): create-if-absent with O_EXCL -----------------------------------------
    def create_lease(self, name: str, body: bytes, deadline: float) -> bool:
        """Create base/name with body only if absent (an O_EXCL temp, then link(2) onto the
        name, relative to the opened kind directory: a reader never sees it half written):
        True if created here, False if it exists."""
        kind, _, leaf = name.partition("/")
        with self._kind_dir(kind, create=True) as dfd:
            assert dfd is not None
            tmp = f"{leaf}.tmp-{os.getpid()}-{secrets.token_hex(6)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=dfd)
                try:
                    os.write(fd, body)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, leaf, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                except FileExistsError:
                    return False
                return True
            except OSError as exc:
                raise RemoteError(f"create: {exc.strerror}") from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dfd)

    def read_lease(self, name: str, deadline: float) -> bytes | None:
        """The lease's body, None if it is gone."""
        try:
            fd = self._open(name)
        except RemoteMissing:
            return None
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)

    def drop_lease(self, name: str, deadline: float) -> None:
        """Delete the lease (gone already: fine), relative to the opened lease/ directory."""
        kind, _, leaf = name.partition("/")
        with self._kind_dir(kind) as dfd:
            if dfd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leaf, dir_fd=dfd)

    def entries(self, kind: str) -> Iterator[tuple[str, int, float]] | None:
        """(hex, size, mtime) of the regular files in base/kind/ (lstat: links are skipped)."""
        out = []
        with self._kind_dir(kind) as dfd:
            if dfd is None:
                return iter(())
            for n in os.listdir(dfd):
                if len(n) != 64 or any(c not in "0123456789abcdef" for c in n):
                    continue
                try:
                    st = os.stat(n, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append((n, st.st_size, st.st_mtime))
        return iter(out)

    def rename(self, src: str, dst: str, deadline: float) -> None:
        """Move src to dst inside the store (renameat between the opened kind directories;
        ``remote gc`` condemns objects to trash/ first): RemoteMissing if src is gone."""
        skind, _, sleaf = src.partition("/")
        dkind, _, dleaf = dst.partition("/")
        with self._kind_dir(skind) as sfd, self._kind_dir(dkind, create=True) as dfd:
            if sfd is None:
                raise RemoteMissing(src)
            try:
                os.rename(sleaf, dleaf, src_dir_fd=sfd, dst_dir_fd=dfd)
            except FileNotFoundError:
                raise RemoteMissing(src) from None
            except OSError as exc:
                raise RemoteError(f"rename failed: {exc.strerror}") from None

    def delete(self, name: str, deadline: float) -> None:
        """unlinkat in the kind's directory (by descriptor)."""
        kind, _, leaf = name.partition("/")
        with self._kind_dir(kind) as dfd:
            if dfd is None:
                return
            try:
                os.unlink(leaf, dir_fd=dfd)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise RemoteError(f"delete failed: {exc.strerror}") from None
