"""``performance.cache.remote``: a list of remote stores, validated with one clear line per fault.

Secrets (token, password, secret_access_key, session_token, user:password@ in URLs) are kept out
of every repr, message, ``--json`` and ``stats`` output: URLs are shown through
cache_core.net's ``redact``, error texts through ``scrub_secrets``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from ...net import redact, scrub

SECRET_FIELDS = ("token", "password", "secret_access_key", "session_token")
_PUBKEY = re.compile(r"\A[A-Za-z0-9._-]{1,64}:[A-Za-z0-9+/]{43}=\Z")


def _num(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and lo < v <= hi


def _str(v: object) -> bool:
    return isinstance(v, str) and v != "" and "\0" not in v and "\n" not in v


def _path(v: object) -> bool:
    return isinstance(v, str) and _str(v) and os.path.isabs(os.path.expanduser(v))


# key -> (check, what is expected)
_FIELDS: dict[str, tuple[Any, str]] = {
    "url": (_str, "a URL: http(s)://host/base, s3://bucket/prefix or file:///path"),
    "mode": (lambda v: v in ("ro", "rw"), '"ro" or "rw"'),
    "timeout": (_num(0, 60), "connect timeout in seconds (0 < t <= 60)"),
    "read_timeout": (_num(0, 600), "seconds without a byte before giving up (0 < t <= 600)"),
    "object_budget": (_num(0, 86400), "seconds allowed for one object (0 < t <= 86400)"),
    "run_budget": (_num(0, 86400), "seconds one process may spend on this remote"),
    "max_object_gb": (_num(0, 1e6), "a size in GiB > 0"),
    "trust": (lambda v: v in ("signed", "unsigned"), '"signed" or "unsigned"'),
    "trusted_public_keys": (lambda v: isinstance(v, list) and all(
        isinstance(k, str) and _PUBKEY.match(k) for k in v), "a list of NAME:BASE64 Ed25519 keys"),
    "revoked_public_keys": (lambda v: isinstance(v, list) and all(
        isinstance(k, str) and _PUBKEY.match(k) for k in v), "a list of NAME:BASE64 Ed25519 keys"),
    "signing_key_file": (_path, "an absolute path to a key made by `pkgcache remote keygen`"),
    "token": (_str, "a bearer token (string)"),
    "token_file": (_path, "an absolute path"),
    "username": (_str, "a user name (string)"),
    "password": (_str, "a password (string)"),
    "password_file": (_path, "an absolute path"),
    "region": (lambda v: _str(v) and re.match(r"\A[a-z0-9-]{1,40}\Z", v), "an S3 region"),
    "endpoint": (lambda v: _str(v) and v.startswith(("http://", "https://")),
                 "an http(s):// S3 endpoint URL"),
    "ca_file": (_path, "an absolute path to a PEM CA bundle for the store's TLS certificate"),
    "addressing": (lambda v: v in ("path", "virtual"), '"path" or "virtual"'),
    "access_key_id": (_str, "an access key id (string)"),
    "secret_access_key": (_str, "a secret key (string)"),
    "session_token": (_str, "a session token (string)"),
    "credentials_file": (_path, "an absolute path to an AWS-style credentials file"),
    "profile": (_str, "a profile name"),
    "pip_page_max_age": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
                         and 0 <= v <= 86400,
                         "seconds a trusted signed pip index page is used without asking the "
                         "index (0 <= t <= 86400; 0: off)"),
    "spool_max": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 10**7,
                  "a number of queued uploads (1..10000000)"),
}


@dataclass
class RemoteSpec:
    """One validated remote. ``secrets`` never appear in repr()."""

    url: str
    scheme: str
    mode: str = "ro"
    timeout: float = 1.0
    read_timeout: float | None = None
    object_budget: float = 300.0
    run_budget: float = 600.0
    max_object_bytes: int = 8 * 1024**3
    trust: str = "signed"
    trusted_public_keys: list[str] = field(default_factory=list)
    revoked_public_keys: list[str] = field(default_factory=list)
    signing_key_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    spool_max: int = 10000

    def trust_warning(self) -> str | None:
        """What in this entry makes fleet records useless, as one line (None: nothing)."""
        problems = []
        if self.mode == "rw" and not self.signing_key_file:
            problems.append("mode rw without signing_key_file: the records this host uploads "
                            "are unsigned and other members will ignore them")
        if self.trust != "unsigned" and not self.trusted_public_keys:
            problems.append("no trusted_public_keys (nor trust: unsigned): this host will "
                            "ignore the records other members upload")
        if self.signing_key_revoked():
            problems.append("signing_key_file holds a key listed in revoked_public_keys: this "
                            "host signs and uploads no records (rotate it: pkgcache remote resign)")
        return "; ".join(problems) or None

    def signing_key_revoked(self) -> bool:
        """Whether this rw member's own signing key is revoked (an unreadable key: False)."""
        if not (self.signing_key_file and self.revoked_public_keys):
            return False
        from ...errors import RecordError
        from .records import is_revoked, load_secret_key

        try:
            return is_revoked(load_secret_key(self.signing_key_file), self.revoked_public_keys)
        except (OSError, RecordError):
            return False

    @property
    def display(self) -> str:
        """The URL with any user:password removed: safe to print."""
        return redact(self.url)

    @property
    def ident(self) -> str:
        """A stable file-name-safe id for state files (from the redacted URL)."""
        import hashlib

        return hashlib.sha256(self.display.encode()).hexdigest()[:16]

    @property
    def idle_timeout(self) -> float:
        """Seconds without a byte before a read gives up (default 5 s, at least the connect
        timeout): a busy store may take a moment before its first byte; a dead one is caught by
        the connect timeout."""
        return self.read_timeout if self.read_timeout is not None else max(self.timeout, 5.0)

    def __repr__(self) -> str:
        return f"RemoteSpec({self.display!r}, mode={self.mode!r})"


def scrub_secrets(text: str, specs: list[RemoteSpec]) -> str:
    """text without any configured secret (belt and braces for error messages)."""
    return scrub(text, [v for spec in specs for v in _secret_values(spec)])


def _secret_values(spec: RemoteSpec) -> list[str]:
    vals = [str(spec.options.get(k) or "") for k in SECRET_FIELDS]
    p = urllib.parse.urlsplit(spec.url)
    if p.password:
        vals.append(p.password)
        vals.append(urllib.parse.unquote(p.password))
    return vals


# an inline secret -> the option that reads it from a 0600 file instead
_FILE_OPTION = {"token": "token_file", "password": "password_file",
                "secret_access_key": "credentials_file", "session_token": "credentials_file"}


def refuse_inline_secrets(specs: list[RemoteSpec], source: str, why: str) -> None:
    """Refuse (ConfigError, exit 3) an inline secret in a config file others can read or write
    (why says how): one line naming the secret and the ``*_file`` option to use instead."""
    for i, spec in enumerate(specs):
        where = f"{source}: performance.cache.remote[{i}]"
        for name in SECRET_FIELDS:
            if spec.options.get(name):
                raise ConfigError(f"{where}.{name}: an inline secret in a file {why}; "
                                  f"put it in a 0600 file named by {_FILE_OPTION[name]}")
        if urllib.parse.urlsplit(spec.url).password:
            raise ConfigError(f"{where}.url: user:password@ in a file {why}; "
                              "use username and a 0600 file named by password_file")


SECRET_FILES = ("token_file", "password_file", "credentials_file")


def check_secret_files(specs: list[RemoteSpec], source: str) -> None:
    """Refuse (ConfigError, exit 3) a remote's secret file that is missing, or that root cannot
    read (another user may lack the rights to root's 0600 file: that remote is then skipped)."""
    for i, spec in enumerate(specs):
        for name in SECRET_FILES:
            path = spec.options.get(name)
            if not path:
                continue
            try:
                os.stat(path)
                if os.geteuid() == 0:  # opened, not read: a FIFO does not block
                    os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            except PermissionError:
                if os.geteuid() == 0:
                    raise ConfigError(f"{source}: performance.cache.remote[{i}].{name}: "
                                      f"{path}: permission denied") from None
                # another user cannot even look into root's directory: that remote is skipped
            except OSError as exc:
                raise ConfigError(f"{source}: performance.cache.remote[{i}].{name}: "
                                  f"{path}: {exc.strerror or exc}") from None


def parse_remotes(value: object, source: str) -> list[RemoteSpec]:
    """Validate ``performance.cache.remote``; raise ConfigError with one line naming the fault."""
    where = f"{source}: performance.cache.remote"
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of remotes ({{url: ..., mode: ro|rw}})")
    specs = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict):
            raise ConfigError(f"{where}[{i}]: expected a mapping with at least url")
        specs.append(_parse_one(item, f"{where}[{i}]"))
    return specs


def _parse_one(item: dict[str, Any], where: str) -> RemoteSpec:
    for key, val in item.items():
        if key not in _FIELDS:
            raise ConfigError(f"{where}.{key}: unknown key (expected one of {', '.join(_FIELDS)})")
        check, expected = _FIELDS[key]
        if not check(val):
            shown = "***" if key in SECRET_FIELDS else repr(val)
            raise ConfigError(f"{where}.{key}: expected {expected}, got {shown}")
    if "url" not in item:
        raise ConfigError(f"{where}: url is required")
    url = item["url"]
    try:
        p = urllib.parse.urlsplit(url)
        p.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{where}.url: not a valid URL: {redact(url)}") from None
    scheme = p.scheme.lower()
    if scheme not in ("http", "https", "s3", "file"):
        raise ConfigError(f"{where}.url: unsupported scheme {scheme!r} "
                          f"(expected http, https, s3 or file)")
    if scheme in ("http", "https", "s3") and not p.hostname:
        raise ConfigError(f"{where}.url: no host/bucket in {redact(url)}")
    if scheme == "file" and (p.netloc not in ("", "localhost") or not p.path.startswith("/")):
        raise ConfigError(f"{where}.url: expected file:///absolute/path")
    if scheme == "s3" and p.password:
        raise ConfigError(f"{where}.url: put S3 keys in access_key_id/secret_access_key, "
                          "the environment or a credentials file, not in the URL")
    if ".." in p.path.split("/"):
        raise ConfigError(f"{where}.url: '..' is not allowed in the path")
    spec = RemoteSpec(url=url, scheme=scheme)
    spec.mode = item.get("mode", "ro")
    spec.timeout = float(item.get("timeout", 1.0))
    if "read_timeout" in item:
        spec.read_timeout = float(item["read_timeout"])
    spec.object_budget = float(item.get("object_budget", spec.object_budget))
    spec.run_budget = float(item.get("run_budget", spec.run_budget))
    if "max_object_gb" in item:
        spec.max_object_bytes = int(item["max_object_gb"] * 1024**3)
    spec.trust = item.get("trust", "signed")
    spec.trusted_public_keys = list(item.get("trusted_public_keys", []))
    spec.revoked_public_keys = list(item.get("revoked_public_keys", []))
    spec.signing_key_file = item.get("signing_key_file")
    spec.spool_max = int(item.get("spool_max", spec.spool_max))
    spec.options = {k: v for k, v in item.items() if k not in (
        "url", "mode", "timeout", "read_timeout", "object_budget", "run_budget", "max_object_gb",
        "trust", "trusted_public_keys", "revoked_public_keys", "signing_key_file", "spool_max")}
    if spec.signing_key_file and spec.mode != "rw":
        raise ConfigError(f"{where}.signing_key_file: only a rw remote signs records")
    return spec
