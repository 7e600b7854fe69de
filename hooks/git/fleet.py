"""Git mirrors on the fleet tier: a mirror is shared as a git bundle.

Key ``gitbundle:<URL without credentials>``: the content is ``git bundle create --all`` of the
mirror, the record's meta names the refs it holds and HEAD; the record is signed by the writer
(the core uploads it with the bundle, in the background). A member without a mirror seeds it from
the newest bundle whose record is signed by a trusted key (a ``trust: unsigned`` remote's never
seeds a mirror; the core verifies the signature and the bundle's SHA-256), then fetches only the
difference from the origin when it is reachable; offline the seeded mirror is cloned from. Only
repositories anyone can fetch by URL are shared (shareable): no path, file://, ssh or URL with
credentials. After ``git update`` (and a fresh mirror) the bundle is rebuilt in a detached
process, or inline when uploads are manual (``PKGCACHE_REMOTE_UPLOAD=manual``: image builds).
Every fault is a miss plus at most one warning; the mirror is then built from the origin.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cache_core import warn
from hooks.common.http import has_secret, redact
from hooks.git.base import git_env, is_local, normalize_url

if TYPE_CHECKING:
    from cache_core import PackageCache

KEY_PREFIX = "gitbundle:"
UPLOAD_ENV = "PKGCACHE_REMOTE_UPLOAD"
_REF = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64}) (refs/(?:heads|tags)/\S+)$")


def _shown(url: str) -> str:
    return redact(normalize_url(url))


def shareable(url: str) -> bool:
    """Only a repository anyone can fetch by its URL is shared with the fleet: http(s) or
    git://, no credentials in the URL. A path or file:// names another repository on each
    machine; ssh and credentials a private one (as with downloads: what is fetched behind
    credentials never leaves this machine)."""
    url = normalize_url(url)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    return not is_local(url) and scheme in ("http", "https", "git") and not has_secret(url)


def key_of(url: str) -> str:
    """The fleet key of a repository URL (credentials never part of it)."""
    return KEY_PREFIX + _shown(url)


def _git(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), text=True,
                          stdin=subprocess.DEVNULL, capture_output=True, check=False)


# -- reading ---------------------------------------------------------------------------------------
def seed(cache: PackageCache, url: str, tmp: Path) -> bool:
    """Fill the bare repository tmp from the fleet's bundle of url; False on any miss/fault.

    tmp is the mirror under construction (already ``git init --bare``, with its sentinel)."""
    remote = cache.remote
    if remote is None or not shareable(url):
        return False
    try:
        key = key_of(url)
        if cache.lookup(key) is None:  # a local miss: the record must carry a trusted signature
            rec = remote.get_record(key)
            # a record accepted only because a remote says trust: unsigned never vouches for a
            # mirror this machine will clone from offline
            if rec is None or not rec.signer or remote.get_object(
                    rec.sha256, key, kind=rec.kind, meta=rec.meta) is None:
                return False
        path = cache.get(key)  # verified content
        entry = cache.lookup(key) if path else None
        if path is None or entry is None:
            return False
        refs = (entry.meta or {}).get("refs")
        if not isinstance(refs, dict) or not refs:
            return False
        with tempfile.TemporaryDirectory(prefix=".bundle-", dir=str(tmp.parent)) as td:
            copy = Path(td) / "fleet.bundle"  # git reads the bundle by path: a private copy
            if not cache.materialize_key(key, str(copy), mode="copy", sha256=entry.digest):
                return False
            got = _git("--git-dir", str(tmp), "fetch", "--quiet", "--no-tags", str(copy),
                       "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
            if got.returncode != 0:
                warn(f"git: the fleet's bundle of {_shown(url)} is unusable; ignored")
                return False
        have = _refs(tmp)
        if any(have.get(r) != sha for r, sha in refs.items()):
            warn(f"git: the fleet's bundle of {_shown(url)} does not hold its recorded refs")
            return False
        head = (entry.meta or {}).get("head")
        if isinstance(head, str) and head in have:
            _git("--git-dir", str(tmp), "symbolic-ref", "HEAD", head)
        return True
    except Exception as exc:  # noqa: BLE001 - the fleet never breaks a clone
        warn(f"git: fleet bundle not used ({type(exc).__name__})")
        return False


def _refs(repo: Path) -> dict[str, str]:
    out = _git("--git-dir", str(repo), "for-each-ref", "--format=%(objectname) %(refname)",
               "refs/heads", "refs/tags")
    refs = {}
    for line in out.stdout.splitlines():
        m = _REF.match(line.strip())
        if m:
            refs[m.group(2)] = m.group(1)
    return refs


# -- writing ---------------------------------------------------------------------------------------
def publish(cache: PackageCache, url: str, mirror: Path) -> bool:
    """Bundle the mirror (all branches and tags) and put it under the URL's key; the core's
    uploader sends the bundle and its signed record. False if nothing changed or on a fault."""
    if not shareable(url):
        return False
    try:
        refs = _refs(mirror)
        if not refs:
            return False
        key = key_of(url)
        old = cache.lookup(key)
        if old is not None and (old.meta or {}).get("refs") == refs:
            return False
        head = _git("--git-dir", str(mirror), "symbolic-ref", "-q", "HEAD").stdout.strip()
        with tempfile.TemporaryDirectory(prefix=".bundle-", dir=str(mirror.parent)) as td:
            out = Path(td) / "mirror.bundle"
            got = _git("--git-dir", str(mirror), "bundle", "create", "--quiet", str(out),
                       "--branches", "--tags")
            if got.returncode != 0 or not out.is_file():
                return False
            meta = {"refs": refs, "head": head or None}
            return cache.put(key, str(out), kind="gitbundle", meta=meta) is not None
    except Exception as exc:  # noqa: BLE001
        warn(f"git: fleet bundle not published ({type(exc).__name__})")
        return False
