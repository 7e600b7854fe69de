"""apt's archive file names (`name_version_arch.deb`) without python-apt."""

from __future__ import annotations

import re

KEY_PREFIX = "deb:"
_HEX = "0123456789abcdef"
_NAME_RE = re.compile(r"^([^_/]+)_([^_/]+)_([^_/]+)\.(deb|udeb)$")


def quote(value: str, bad: str) -> str:
    """Mirror of apt's QuoteString: `%xx` (lowercase) for chars in bad, '%', <= ' ' and >= 0x7f."""
    out = []
    for ch in value:
        if ch in bad or ch == "%" or ord(ch) <= 0x20 or ord(ch) >= 0x7F:
            for byte in ch.encode("utf-8"):
                out.append("%" + _HEX[byte >> 4] + _HEX[byte & 15])
        else:
            out.append(ch)
    return "".join(out)


def unquote(value: str) -> str:
    """Inverse of quote()."""
    return re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def archive_name(name: str, version: str, arch: str, ext: str = "deb") -> str:
    """The file name apt gives a package in Dir::Cache::archives (pkgAcqArchive)."""
    return f"{quote(name, '_:')}_{quote(version, '_:')}_{quote(arch, '_:.')}.{ext}"


def parse_archive_name(fname: str) -> tuple[str, str, str] | None:
    """(name, version, arch) from an archive file name, or None if it is not one."""
    m = _NAME_RE.match(fname)
    if not m:
        return None
    name, version, arch = (unquote(p) for p in m.group(1, 2, 3))
    if not name or not version or not arch or "/" in name + version + arch:
        return None
    return name, version, arch


def key_for(fname: str) -> str:
    """Cache key of an archive file name."""
    return KEY_PREFIX + fname


def is_safe_name(fname: str) -> bool:
    """A plain file name that cannot leave the directory it is joined to."""
    return (
        bool(fname)
        and fname not in (".", "..")
        and "/" not in fname
        and "\0" not in fname
        and not any(ord(c) < 0x20 for c in fname)
        and parse_archive_name(fname) is not None
    )
