"""Cache keys: validation and kinds. Keys are never used as paths."""

from __future__ import annotations

import re
import unicodedata

from .errors import BadKeyError
from .hashing import is_digest

MAX_KEY_LEN = 4096
_URL = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*://")
_KIND = re.compile(r"\A([a-z][a-z0-9_-]{0,31}):")
_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def normalize_key(key: str) -> str:
    """Return the NFC form of key, or raise BadKeyError for empty, huge or control-char keys."""
    if not isinstance(key, str) or not key:
        raise BadKeyError("empty or non-string key")
    if len(key) > MAX_KEY_LEN:
        raise BadKeyError(f"key longer than {MAX_KEY_LEN} characters")
    if key.isascii() and key.isprintable():  # the common case: nothing to check or normalize
        return key
    for ch in key:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise BadKeyError(f"key contains a control or unassigned character (U+{ord(ch):04X})")
    return unicodedata.normalize("NFC", key)


def digest_of_key(key: str) -> str | None:
    """The digest if key is a content key ``sha256:<hex>``, else None."""
    if key.startswith("sha256:"):
        digest = key[7:].lower()
        if not is_digest(digest):
            raise BadKeyError("sha256: keys need 64 hex digits")
        return digest
    return None


def kind_of(key: str) -> str:
    """'url' for URLs, the prefix for ``kind:name`` keys (deb, wheel, ...), else 'name'."""
    if _URL.match(key):
        return "url"
    m = _KIND.match(key)
    return m.group(1) if m else "name"
