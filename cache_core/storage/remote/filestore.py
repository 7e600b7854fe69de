"""``file:///path``: the same cas/ and ac/ layout in a directory (NFS, a shared folder, a USB disk
for an air-gapped transfer). Writes are atomic (temp + rename); a symlinked object is refused."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import urllib.parse
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from .base import RemoteError, RemoteMissing, register
from .http import CHUNK

if TYPE_CHECKING:
    from .config import RemoteSpec


@register("file")
class FileBackend:
    """A directory store."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.base = urllib.parse.unquote(urllib.parse.urlsplit(spec.url).path).rstrip("/") or "/"

    def _check_base(self) -> None:
        if not os.path.isdir(self.base):  # an unmounted share is an outage, not a miss
            raise RemoteError("store directory missing")

    def _open(self, name: str) -> int:
        self._check_base()
        try:
            fd = os.open(os.path.join(self.base, name),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
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
        """Stream the file."""
        fd = self._open(name)

        def gen() -> Iterator[bytes]:
            try:
                while chunk := os.read(fd, CHUNK):
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
        """Write to a temp file beside the target and rename it into place."""
        self._check_base()
        final = os.path.join(self.base, name)
        try:
            os.makedirs(os.path.dirname(final), mode=0o755, exist_ok=True)
            tmp = f"{final}.tmp-{os.getpid()}-{secrets.token_hex(6)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := body.read(CHUNK):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, final)
            finally:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
        except OSError as exc:
            raise RemoteError(f"write failed: {exc.strerror}") from None

    def list(self, kind: str) -> Iterator[str] | None:
        """The hex names in base/kind/."""
        d = os.path.join(self.base, kind)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return iter(())
        return (n for n in names if len(n) == 64 and all(c in "0123456789abcdef" for c in n))

    # -- leases (lease.py): create-if-absent with O_EXCL -----------------------------------------
    def create_lease(self, name: str, body: bytes, deadline: float) -> bool:
        """Create base/name only if absent: True if created here, False if it exists."""
        self._check_base()
        path = os.path.join(self.base, name)
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise RemoteError(f"lease: {exc.strerror}") from None
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        return True

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
        """Delete the lease (gone already: fine)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.base, name))
