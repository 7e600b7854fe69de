"""Signed key records: ``key -> (sha256, size, kind, meta)``, Ed25519-signed like Nix's narinfo.

Keys are ``NAME:BASE64`` (public: 32 bytes; secret: the 32-byte seed), as Nix writes them. The
signature covers ``pkgcache-record-v1;<key>;<sha256>;<size>;<kind>;<canonical JSON of meta>``, so
a record cannot be moved to another key, digest or size: the fields split one way only. The
digest (hex), the size (digits) and the kind (``KIND``: ``[a-z][a-z0-9_-]*``, checked on
encode and decode) hold no ``;``; the meta is canonical JSON, where ``;`` only occurs inside
strings. A second split would start its meta ``{`` inside a string of the first split's meta, so
every unescaped ``"`` after it flips both parses in opposite ways and the second meta would end
inside a string: not JSON. Hence the key (which may hold ``;``) is fixed too. Old stores' records
keep verifying (their kinds all match). A record is accepted only if its key field equals the
requested key and it is signed by a trusted key (or the remote says ``trust: unsigned``).
Several keys may be trusted at once (a rotation, even under one name); a record signed by a
revoked key (``revoked_public_keys``) counts as unsigned.

Freshness: a record carries its creation time inside the signed meta (``_created``; older
pkgcache versions verify and ignore it), and a member keeps the newest time it accepted per key in
its private state dir (``records/<sha256 of the key>``): an older record for that key, or one
without a time once a timed one was seen, is refused (a replayed old record).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import RecordError
from ...fs import memo_path, read_memo, write_memo
from ...keys import is_digest

VERSION = "pkgcache-record-v1"
CREATED = "_created"  # the creation time's name in the signed meta
KIND = re.compile(r"\A[a-z][a-z0-9_-]{0,31}\Z")  # as keys.kind_of: no ';' (see above)


def valid_kind(kind: object) -> bool:
    """Whether kind may be signed in a record (``KIND``)."""
    return isinstance(kind, str) and bool(KIND.match(kind))


@dataclass
class Record:
    """A key record as stored in ``ac/``."""

    key: str
    sha256: str
    size: int
    kind: str
    meta: dict[str, Any] | None
    signer: str | None = None  # the trusted public key (NAME:BASE64) whose signature verified
    created: float | None = None  # seconds since the epoch; None in records of older versions

    def signed_meta(self) -> dict[str, Any]:
        """meta as stored and signed: with the creation time in it."""
        meta = dict(self.meta or {})
        if self.created is not None:
            meta[CREATED] = self.created
        return meta

    def message(self) -> bytes:
        """The bytes that are signed."""
        meta = json.dumps(self.signed_meta(), sort_keys=True, separators=(",", ":"))
        return f"{VERSION};{self.key};{self.sha256};{self.size};{self.kind};{meta}".encode()


def _crypto() -> ModuleType:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def generate_keypair(name: str) -> tuple[str, str]:
    """(secret, public) as ``NAME:BASE64`` strings."""
    from cryptography.hazmat.primitives import serialization as ser

    ed = _crypto()
    sk = ed.Ed25519PrivateKey.generate()
    seed = sk.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    pub = sk.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return (f"{name}:{base64.b64encode(seed).decode()}", f"{name}:{base64.b64encode(pub).decode()}")


def load_secret_key(path: str) -> tuple[str, Any]:
    """(name, private key) from a key file; refuses a file others can read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            raise RecordError(f"{path}: signing key readable by others (chmod 600 it)")
        text = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    name, _, b64 = text.partition(":")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise RecordError(f"{path}: not a NAME:BASE64 key") from None
    if len(raw) == 64:  # Nix's secret format: seed + public key
        raw = raw[:32]
    if not name or len(raw) != 32:
        raise RecordError(f"{path}: not a NAME:BASE64 Ed25519 secret key")
    return name, _crypto().Ed25519PrivateKey.from_private_bytes(raw)


def encode(record: Record, signer: tuple[str, Any] | None) -> bytes:
    """The record as JSON bytes, signed if a (name, private key) is given."""
    if not valid_kind(record.kind):
        raise RecordError(f"bad record kind {record.kind!r}")
    doc: dict[str, Any] = {"v": 1, "key": record.key, "sha256": record.sha256,
                           "size": record.size, "kind": record.kind,
                           "meta": record.signed_meta()}
    if signer is not None:
        name, sk = signer
        doc["sig"] = f"{name}:{base64.b64encode(sk.sign(record.message())).decode()}"
    return json.dumps(doc, sort_keys=True).encode()


def _split_created(meta: dict[str, Any] | None) -> tuple[dict[str, Any] | None, float | None]:
    """(meta without the creation time, the creation time or None)."""
    if not meta or CREATED not in meta:
        return meta, None
    meta = dict(meta)
    created = meta.pop(CREATED)
    if not isinstance(created, (int, float)) or isinstance(created, bool) or created < 0:
        raise RecordError("bad creation time")
    return meta, created  # as written: the signature covers its exact JSON form


def _pub(text: str) -> tuple[str, bytes] | None:
    """(name, raw public key) from ``NAME:BASE64``, or None if it is not one."""
    name, _, b64 = text.partition(":")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        return None
    return (name, raw) if name and len(raw) == 32 else None


def public_key_of(signer: tuple[str, Any]) -> str:
    """``NAME:BASE64`` public key of a (name, private key) signer."""
    from cryptography.hazmat.primitives import serialization as ser

    name, sk = signer
    raw = sk.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return f"{name}:{base64.b64encode(raw).decode()}"


def is_revoked(signer: tuple[str, Any], revoked: list[str]) -> bool:
    """Whether the signer's public key is in revoked (by name and bytes)."""
    return _pub(public_key_of(signer)) in [_pub(k) for k in revoked]


def _verifies(pub: bytes, sig: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        _crypto().Ed25519PublicKey.from_public_bytes(pub).verify(sig, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def decode(data: bytes, requested_key: str, trusted: list[str], allow_unsigned: bool,
           revoked: list[str] | tuple[str, ...] = ()) -> Record:
    """Parse and check a record; raise RecordError for anything that is not acceptable.

    Several trusted keys may share a name (a rotation): the signature is tried against each.
    A record signed by a revoked key counts as unsigned (refused unless allow_unsigned)."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise RecordError("not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise RecordError("unknown record version")
    key, digest, size, kind, meta = (doc.get(k) for k in ("key", "sha256", "size", "kind", "meta"))
    if not isinstance(key, str) or key != requested_key:
        raise RecordError("record is for another key")
    if not isinstance(digest, str) or not is_digest(digest):
        raise RecordError("bad digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RecordError("bad size")
    if not isinstance(kind, str) or not valid_kind(kind) \
            or not (meta is None or isinstance(meta, dict)):
        raise RecordError("bad kind/meta")
    meta, created = _split_created(meta)
    rec = Record(key, digest, size, kind, meta, created=created)
    rec.signer = _check_signature(rec, doc.get("sig"), trusted, allow_unsigned, revoked)
    return rec


def _check_signature(rec: Record, sig: object, trusted: list[str], allow_unsigned: bool,
                     revoked: list[str] | tuple[str, ...]) -> str | None:
    """The trusted, unrevoked key (NAME:BASE64) whose signature verifies, or None for a record
    accepted unsigned; RecordError for anything else."""
    if sig is None:
        if allow_unsigned:
            return None
        raise RecordError("unsigned")
    if not isinstance(sig, str) or ":" not in sig:
        raise RecordError("bad signature field")
    name, _, b64 = sig.partition(":")
    try:
        raw_sig = base64.b64decode(b64, validate=True)
    except ValueError:
        raise RecordError("bad signature encoding") from None
    message = rec.message()
    gone = [p for p in map(_pub, revoked) if p is not None and p[0] == name]
    if any(_verifies(raw, raw_sig, message) for _, raw in gone):
        if allow_unsigned:
            return None  # a revoked signature is no signature
        raise RecordError(f"signed by revoked key {name!r}")
    named = [(tk, p) for tk in trusted
             if (p := _pub(tk)) is not None and p[0] == name and p not in gone]
    for tk, (_, raw) in named:
        if _verifies(raw, raw_sig, message):
            return tk
    if allow_unsigned:
        return None  # trust: unsigned accepts any record; the content is still hash-checked
    if named:
        raise RecordError(f"signature by {name} does not verify")
    raise RecordError(f"signed by untrusted key {name!r}")


# -- freshness: the newest creation time accepted per key (in the private state dir) -----------
def _seen_path(key: str) -> Path | None:
    return memo_path(hashlib.sha256(key.encode("utf-8")).hexdigest(), "records")


def seen_time(key: str) -> float | None:
    """The newest creation time this machine accepted (or wrote) for key, or None."""
    value = read_memo(_seen_path(key), 256).get("t")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


MAX_CLOCK_SKEW = 3600.0  # seconds a writer's clock may run ahead of this machine's


def check_fresh(rec: Record) -> None:
    """Refuse (RecordError) a record older than one already seen for its key; remember a newer
    one. A record without a time counts as older than any timed one (best effort: no state dir,
    no memory)."""
    seen = seen_time(rec.key)
    if rec.created is not None and rec.created > now() + MAX_CLOCK_SKEW:
        raise RecordError("created in the future")  # else it would block every later record
    if seen is not None and (rec.created is None or rec.created < seen):
        raise RecordError("older than a record already seen for this key (replayed?)")
    # only a trusted signature moves the mark: an unsigned record (trust: unsigned) must not
    # make this machine refuse the properly signed ones that follow
    if rec.signer is not None and rec.created is not None and (seen is None or rec.created > seen):
        note_time(rec.key, rec.created)


def note_time(key: str, created: float) -> None:
    """Remember created as the newest time seen for key (best effort)."""
    write_memo(_seen_path(key), {"t": created})


def now() -> float:
    """A creation time for a new record (milliseconds are enough)."""
    return round(time.time(), 3)
