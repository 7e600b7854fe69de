"""SHA-256 of files and descriptors: the one hash loop (a hashing copy; hashing alone is a copy
to nowhere)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat

CHUNK = 1 << 20  # 1 MiB reads: the fastest size measured for hashing on local disks



def copy_hashing(src_fd: int, dst_fd: int | None) -> tuple[str, int]:
    """Hash src_fd from its current offset, copying to dst_fd if given; (hex digest, bytes)."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    while True:
        n = os.readv(src_fd, [buf])
        if not n:
            break
        h.update(view[:n])
        out = view[:n] if dst_fd is not None else view[:0]
        while out:
            out = out[os.write(dst_fd, out):]  # type: ignore[arg-type]
        total += n
    return h.hexdigest(), total


def sha256_fd(fd: int) -> tuple[str, int]:
    """Hash an open descriptor from its current offset; return (hex digest, bytes read)."""
    return copy_hashing(fd, None)


def sha256_file(path: str | os.PathLike[str], *, follow: bool = True) -> tuple[str, int]:
    """Hash a file by path; return (hex, size). ``follow=False`` refuses a final symlink."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)  # O_NONBLOCK: a FIFO planted here never blocks us
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return sha256_fd(fd)
    finally:
        os.close(fd)


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of a small in-memory value (a record, a memo)."""
    return hashlib.sha256(data).hexdigest()


class HashingWriter:
    """Write a stream of chunks to fd while hashing them; for bytes that arrive in pieces (a
    remote's response). ``limit``: more bytes than this raise OverflowError before writing."""

    def __init__(self, fd: int, limit: int | None = None) -> None:
        self.fd = fd
        self.limit = limit
        self.size = 0
        self._h = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        """Hash and write one chunk (all of it)."""
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise OverflowError("more bytes than expected")
        self._h.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view):]

    def hexdigest(self) -> str:
        """The SHA-256 of everything written so far."""
        return self._h.hexdigest()
