"""The key grammar, SHA-256 digests and safe file names. Keys are never used as paths."""

from __future__ import annotations

import re
import unicodedata

from .errors import BadKeyError

MAX_KEY_LEN = 4096
MAX_NAME_BYTES = 255
TMP_PREFIX = ".pkgcache-"  # names the store keeps for its own temps (see fs.atomic)
_URL = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")
_KIND = re.compile(r"\A([a-z][a-z0-9_-]{0,31}):")
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
# Unicode categories no key or file name may contain: controls, format, surrogates, private
# use, unassigned, line and paragraph separators.
BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _has_bad_char(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch) in BAD_CATEGORIES:
            return ch
    return None


# -- digests ------------------------------------------------------------------------------------
def is_digest(value: object) -> bool:
    """True if value is a lower-case 64-character SHA-256 hex string."""
    return isinstance(value, str) and bool(_HEX64.match(value))


def check_digest(value: str, what: str = "sha256") -> str:
    """value lower-cased if it is a SHA-256 hex digest, else BadKeyError (the one digest check)."""
    low = value.lower() if isinstance(value, str) else ""
    if not is_digest(low):
        raise BadKeyError(f"{what}: expected 64 hex digits, got {value!r:.80}")
    return low


# -- keys ---------------------------------------------------------------------------------------
def normalize_key(key: str) -> str:
    """Return the NFC form of key, or raise BadKeyError for empty, huge or control-char keys."""
    if not isinstance(key, str) or not key:
        raise BadKeyError("empty or non-string key")
    if len(key) > MAX_KEY_LEN:
        raise BadKeyError(f"key longer than {MAX_KEY_LEN} characters")
    if key.isascii() and key.isprintable():  # the common case: nothing to check or normalize
        return key
    bad = _has_bad_char(key)
    if bad is not None:
        raise BadKeyError(f"key contains a control or unassigned character (U+{ord(bad):04X})")
    return unicodedata.normalize("NFC", key)


def digest_of_key(key: str) -> str | None:
    """The digest if key is a content key ``sha256:<hex>``, else None."""
    if key.startswith("sha256:"):
        return check_digest(key[7:], "sha256: key")
    return None


PRIVATE_KEY_PREFIX = "fetch-private:"
"""Keys of downloads behind credentials (``pkgcache fetch`` names them): their objects are 0400,
marked private in the index and never leave this machine (push, the uploader, pull --all)."""


def is_private_key(key: str) -> bool:
    """True for a key whose object must stay on this machine (see PRIVATE_KEY_PREFIX)."""
    return key.startswith(PRIVATE_KEY_PREFIX)


def kind_of(key: str) -> str:
    """'url' for URLs, the prefix for ``kind:name`` keys (deb, wheel, ...), else 'name'."""
    if _URL.match(key):
        return "url"
    m = _KIND.match(key)
    return m.group(1) if m else "name"


# -- file names ---------------------------------------------------------------------------------
def safe_filename(name: str) -> str:
    """Return name if it is a plain file name safe to create in a directory, else raise.

    The one safe-name rule: no '/', '\\', '.', '..', NUL or control characters, at most 255
    bytes, and never one of the store's own temp names.
    """
    if not isinstance(name, str) or not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadKeyError(f"unusable file name {name!r:.80}")
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith(TMP_PREFIX):
        raise BadKeyError(f"unusable file name {name!r:.80}")
    if _has_bad_char(name) is not None:
        raise BadKeyError(f"unusable file name {name!r:.80}")
    return name
