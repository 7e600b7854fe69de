"""Breaker and counters shared by every pkgcache process on the host: one small JSON file in the
cache (``remote-v1/state.json``), read without a lock, rewritten atomically under a lock."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ... import fs

BREAKER_SECONDS = 60.0
BAD_SECONDS = 3600.0  # a digest whose object did not match is not asked again for this long
MAX_BAD = 512
COUNTERS = ("hits", "records", "misses", "errors", "timeouts", "mismatches", "rejected_records",
            "bytes_in", "bytes_out", "uploads", "upload_skipped", "upload_errors", "dropped")


class State:
    """Per-remote counters and breaker (open_until) in <cache>/remote-v1/state.json."""

    def __init__(self, directory: Path, lock_dir: Path) -> None:
        self.path = directory / "state.json"
        self.lock_dir = lock_dir

    def read(self) -> dict[str, dict[str, Any]]:
        """The whole state (empty if missing or unreadable)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            data = json.loads(os.read(fd, 1 << 20) or b"{}")
        except ValueError:
            return {}
        finally:
            os.close(fd)
        return data if isinstance(data, dict) else {}

    def update(self, ident: str, display: str, counts: dict[str, int] | None = None,
               open_breaker: str | None = None, close_breaker: bool = False) -> None:
        """Add counts; open the breaker for 60 s with a (redacted) reason, or close it."""
        with contextlib.suppress(Exception), \
                fs.named_lock(self.lock_dir, "remote-state", 5):
            data = self.read()
            row = data.setdefault(ident, {})
            row["url"] = display
            for k, v in (counts or {}).items():
                row[k] = int(row.get(k, 0)) + int(v)
            if open_breaker is not None:
                row["open_until"] = time.time() + BREAKER_SECONDS
                row["last_error"] = open_breaker[:200]
                row["last_error_at"] = time.time()
            if close_breaker:
                row["open_until"] = 0
            fs.atomic_write(self.path, json.dumps(data, sort_keys=True), 0o644)

    def mark_bad(self, ident: str, display: str, digest: str) -> None:
        """Remember that this remote's object for digest did not match (for BAD_SECONDS, so the
        rest of a provisioning - other processes too - does not fetch it again)."""
        with contextlib.suppress(Exception), \
                fs.named_lock(self.lock_dir, "remote-state", 5):
            data = self.read()
            row = data.setdefault(ident, {})
            row["url"] = display
            now = time.time()
            bad = {d: t for d, t in (row.get("bad") or {}).items()
                   if isinstance(t, (int, float)) and t > now}
            bad[digest] = now + BAD_SECONDS
            row["bad"] = dict(sorted(bad.items(), key=lambda kv: kv[1])[-MAX_BAD:])
            fs.atomic_write(self.path, json.dumps(data, sort_keys=True), 0o644)

    def bad(self, ident: str) -> set[str]:
        """The digests whose object on this remote did not match, lately."""
        row = self.read().get(ident) or {}
        now = time.time()
        return {d for d, t in (row.get("bad") or {}).items()
                if isinstance(t, (int, float)) and t > now}

    def zero(self) -> None:
        """Reset counters (the breaker stays)."""
        with fs.named_lock(self.lock_dir, "remote-state", 5):
            data = self.read()
            for row in data.values():
                for k in COUNTERS:
                    row.pop(k, None)
            fs.atomic_write(self.path, json.dumps(data, sort_keys=True), 0o644)

    def open_until(self, ident: str) -> float:
        """Until when the breaker for this remote is open (0 = closed)."""
        row = self.read().get(ident) or {}
        try:
            return float(row.get("open_until", 0))
        except (TypeError, ValueError):
            return 0.0
