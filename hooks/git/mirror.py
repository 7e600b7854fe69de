"""Git repositories through the cache: one bare mirror per URL in ``<cache>/git-v1/``.

Design after depot_tools ``git_cache.py``: a mirror is built in a temporary directory next to its
final place, marked unfinished by a sentinel file, and renamed into place only once its fetch
succeeded, so a clone killed half-way never leaves a mirror that looks complete. Creation and
updates hold a per-URL lock. Clones borrow objects with ``git clone --reference <mirror>
--dissociate`` and are independent afterwards; offline they clone from the mirror itself.
Mirrors are recorded as bucket entries so they count toward the size cap and ``stats``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cache_core import EXIT_MISS, EXIT_NETWORK, EXIT_OK, EXIT_USAGE, CacheError, warn
from hooks.cli.output import error
from hooks.common.http import redact
from hooks.git import fleet as gitfleet
from hooks.git.base import GitError, git_env, is_local, normalize_url, unreachable

if TYPE_CHECKING:
    from cache_core import PackageCache

BUCKET = "git-v1"
SENTINEL = "pkgcache-mirror-incomplete"
TMP_PREFIX = ".tmp-"
LOCK_TIMEOUT = 3600.0
REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
def mirror_name(url: str) -> str:
    """A readable, collision-free directory name: ``host_path-<hash>.git`` (no credentials)."""
    url = normalize_url(url)
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    visible = redact(url)
    visible = re.sub(r"\A[a-z][a-z0-9+.-]*://", "", visible, flags=re.I)
    visible = re.sub(r"[^A-Za-z0-9_-]+", "_", visible).strip("_")[:80] or "repo"
    return f"{visible}-{digest}.git"


def _git(*args: str, cwd: str | None = None, quiet: bool = True,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git; raise GitError with git's last stderr line on failure (when check)."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=git_env(), text=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE if quiet else None)
    except FileNotFoundError:
        raise GitError("git is not installed", EXIT_USAGE) from None
    if check and proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        raise GitError(lines[-1].strip() if lines else f"git {args[0]} failed",
                       detail=proc.stderr or "")
    return proc


def dir_size(path: Path) -> int:
    """Bytes used by a directory tree (apparent sizes, symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def is_valid_mirror(path: Path) -> bool:
    """A finished bare repository: no sentinel, HEAD and objects present, refs readable."""
    if path.is_symlink() or not path.is_dir() or (path / SENTINEL).exists():
        return False
    if not (path / "HEAD").is_file() or not (path / "objects").is_dir():
        return False
    proc = _git("--git-dir", str(path), "for-each-ref", "--count=1", check=False)
    return proc.returncode == 0


def mirror_healthy(path: Path, *, full: bool = False) -> bool:
    """True if the mirror passes ``git fsck --connectivity-only`` (full: a complete fsck)."""
    mode = () if full else ("--connectivity-only",)
    proc = _git("--git-dir", str(path), "fsck", *mode, "--no-dangling", "--no-progress",
                check=False)
    return proc.returncode == 0


class Mirrors:
    """The mirror store of one cache."""

    def __init__(self, cache: PackageCache) -> None:
        self.cache = cache
        self.bucket = cache.bucket(BUCKET)

    def path(self, url: str) -> Path:
        """Where the mirror of url lives in the bucket."""
        return self.bucket / mirror_name(url)

    @contextlib.contextmanager
    def locked(self, url: str) -> Iterator[None]:
        """The per-URL lock: the bucket entry's lock, which cache_core's gc takes before evicting it."""
        with self.cache.bucket_lock(BUCKET, mirror_name(url), timeout=LOCK_TIMEOUT):
            yield

    # -- creation and update (call with the URL's lock held) ---------------------------------
    def ensure(self, url: str, *, offline: bool = False, update: bool = True) -> tuple[Path, bool]:
        """A valid mirror of url, created or refreshed; (path, fresh). fresh = fetched just now.

        A mirror whose refresh fails because the server cannot be reached is still returned
        (fresh=False) with a warning; a server that refuses (not found, denied) is a GitError,
        as a missing mirror offline is (exit 1).
        """
        url = normalize_url(url)
        name = mirror_name(url)
        final = self.bucket / name
        self._sweep(name)
        if os.path.lexists(final) and not is_valid_mirror(final):
            warn(f"git: removing an unfinished or broken mirror of {redact(url)}")
            self.remove_path(final, name)
        if final.is_dir():
            if offline or not update:
                self.cache.touch_bucket_entry(BUCKET, name)
                return final, False
            try:
                self.fetch_into(final, url)
            except GitError as exc:
                if not unreachable(exc):
                    raise
                warn(f"git: cannot update the mirror of {redact(url)} ({exc}); using it as is")
                self.cache.touch_bucket_entry(BUCKET, name)
                return final, False
            self.cache.record_bucket_entry(BUCKET, name, dir_size(final))
            return final, True
        return final, self._create(url, final, name, offline=offline)

    def rebuild(self, url: str) -> Path:
        """Replace the mirror of url by a fresh one from the origin (lock held by caller)."""
        url = normalize_url(url)
        name = mirror_name(url)
        final = self.bucket / name
        if os.path.lexists(final):
            self.remove_path(final, name)
        self._create(url, final, name, seed=False)
        return final

    def _create(self, url: str, final: Path, name: str, *, offline: bool = False,
                seed: bool = True) -> bool:
        """init --bare + sentinel in a temp dir, seed from the fleet's bundle (hooks.git.fleet),
        fetch (only the difference after a seed), set HEAD, drop sentinel, rename.
        Returns True if the origin was fetched; a seeded mirror survives an unreachable origin."""
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=self.bucket))
        try:
            _git("init", "--quiet", "--bare", str(tmp))
            (tmp / SENTINEL).write_text(f"{os.getpid()} {time.time()}\n")
            git = ("--git-dir", str(tmp))
            _git(*git, "config", "remote.origin.url", url)
            for i, spec in enumerate(REFSPECS):
                _git(*git, "config", "--add" if i else "--replace-all", "remote.origin.fetch", spec)
            # depot_tools: a killed detached gc can leave a broken repository.
            _git(*git, "config", "gc.autoDetach", "false")
            seeded = seed and gitfleet.seed(self.cache, url, tmp)
            fetched = False
            if offline and not seeded:
                raise GitError(f"offline and no mirror of {redact(url)} in the cache", EXIT_MISS)
            if not offline:
                try:
                    head = self._remote_head(tmp, url)
                    _git(*git, "fetch", "--quiet", "--prune", "--no-tags", "origin")
                    fetched = True
                    if head:
                        _git(*git, "symbolic-ref", "HEAD", head, check=False)
                except GitError as exc:
                    if not seeded or not unreachable(exc):
                        raise
                    warn(f"git: cannot reach {redact(url)} ({exc}); using the fleet's copy")
            (tmp / SENTINEL).unlink()
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.cache.record_bucket_entry(BUCKET, name, dir_size(final))
        return fetched

    @staticmethod
    def _remote_head(repo: Path, url: str) -> str | None:
        """The branch the remote's HEAD points at (``refs/heads/main``), if it says."""
        proc = _git("--git-dir", str(repo), "ls-remote", "--symref", url, "HEAD")
        m = re.search(r"^ref: (refs/heads/\S+)\tHEAD$", proc.stdout, re.M)
        return m.group(1) if m else None

    @staticmethod
    def fetch_into(path: Path, url: str) -> None:
        """Fetch url's branches and tags into the mirror at path (lock held by the caller)."""
        for leftover in (path / "objects" / "pack").glob("tmp_*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        _git("--git-dir", str(path), "config", "remote.origin.url", url)
        _git("--git-dir", str(path), "fetch", "--quiet", "--prune", "--no-tags", "origin")

    def _sweep(self, name: str) -> None:
        """Remove temp dirs of this URL left by killed runs (we hold its lock)."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.bucket):
                if entry.name.startswith(f"{TMP_PREFIX}{name}-"):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def remove_path(self, final: Path, name: str) -> None:
        """Delete the mirror directory final (named name; lock held by the caller)."""
        if final.is_symlink() or not final.is_dir():
            with contextlib.suppress(OSError):
                final.unlink()
        else:
            # Rename first so a crash mid-delete leaves only a temp dir, swept later.
            doomed = final.with_name(f"{TMP_PREFIX}{name}-doomed")
            with contextlib.suppress(OSError):
                os.rename(final, doomed)
                final = doomed
            shutil.rmtree(final, ignore_errors=True)
        self.cache.drop_bucket_entry(BUCKET, name)

    def urls(self) -> list[str]:
        """URLs of every finished mirror (from their git config)."""
        out = []
        with contextlib.suppress(OSError), os.scandir(self.bucket) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                proc = _git("config", "--file", os.path.join(entry.path, "config"),
                            "remote.origin.url", check=False)
                if proc.returncode == 0 and proc.stdout.strip():
                    out.append(proc.stdout.strip())
        return out


# -- clone / update ----------------------------------------------------------------------------
def _origin_name(args: Sequence[str]) -> str:
    """The remote name a clone will get (``-o NAME`` / ``--origin NAME``), default origin."""
    for i, a in enumerate(args):
        if a in ("-o", "--origin") and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--origin="):
            return a.split("=", 1)[1]
    return "origin"


def plain_clone(url: str, dest: str, args: Sequence[str]) -> int:
    """git clone without the cache (the fail-open path); git's own exit code mapped to 5."""
    proc = subprocess.run(["git", "clone", *args, "--", url, dest], stdin=subprocess.DEVNULL)
    return EXIT_OK if proc.returncode == 0 else EXIT_NETWORK


def clone(cache: PackageCache | None, url: str, dest: str, args: Sequence[str] = (), *,
          offline: bool = False, submodules: str | None = None) -> int:
    """Clone url into dest through the mirror; returns an exit code (raises GitError on misuse).

    Online: refresh the mirror, then ``git clone --reference <mirror> --dissociate``; a mirror
    that fails ``git fsck --connectivity-only`` then is rebuilt from the origin once. If the
    server cannot be reached (or offline), clone from the mirror and point origin back at url.
    submodules: None (none), "" (all) or a pathspec: each submodule through its own mirror.
    """
    rc = _clone_one(cache, url, dest, args, offline=offline)
    if rc == 0 and submodules is not None:
        rc = clone_submodules(cache, dest, offline=offline, pathspec=submodules)
    return rc


def _clone_one(cache: PackageCache | None, url: str, dest: str, args: Sequence[str], *, offline: bool) -> int:
    """One repository (no submodules) through its mirror; see clone()."""
    url = normalize_url(url)
    if os.path.lexists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise GitError(f"destination {dest} already exists and is not an empty directory",
                       EXIT_USAGE)
    if cache is None or not cache.enabled:
        if offline:
            raise GitError("offline and the cache is disabled", EXIT_MISS)
        return plain_clone(url, dest, args)
    try:
        mirrors = Mirrors(cache)
        lock = mirrors.locked(url)
        lock.__enter__()
    except (CacheError, OSError) as exc:
        if offline:
            raise GitError(f"cache unusable ({exc}) and offline", EXIT_MISS) from None
        warn(f"git: cache unusable ({exc}); cloning without it")
        return plain_clone(url, dest, args)
    fresh = False
    try:
        try:
            mirror, fresh = mirrors.ensure(url, offline=offline)
        except (GitError, CacheError, OSError) as exc:
            if isinstance(exc, GitError) and (offline or exc.exit_code == EXIT_USAGE):
                raise
            if offline:  # the cache failed (full disk, ...): nothing to clone from
                raise GitError(f"cache unusable ({exc}) and offline", EXIT_MISS) from None
            # No mirror, the server refused, or the cache failed: git reports as it would.
            warn(f"git: no mirror of {redact(url)} ({exc}); cloning without it")
            return plain_clone(url, dest, args)
        if fresh:
            if _clone_referenced(mirror, url, dest, args):
                return EXIT_OK
            if not mirror_healthy(mirror):
                warn(f"git: the mirror of {redact(url)} fails git fsck; rebuilding it")
                try:
                    mirror = mirrors.rebuild(url)
                except (GitError, CacheError, OSError) as exc:
                    warn(f"git: could not rebuild the mirror of {redact(url)} ({exc})")
                    return plain_clone(url, dest, args)
                if _clone_referenced(mirror, url, dest, args):
                    return EXIT_OK
                return plain_clone(url, dest, args)
            warn(f"git: clone from {redact(url)} failed; cloning from the cached mirror")
        return _clone_from_mirror(mirror, url, dest, args)
    finally:
        lock.__exit__(None, None, None)
        if fresh:
                refresh(cache, [url])  # share the mirror's new state (in the background)


def _clone_referenced(mirror: Path, url: str, dest: str, args: Sequence[str]) -> bool:
    """git clone --reference mirror --dissociate from url; True on success (dest cleaned if not)."""
    proc = subprocess.run(["git", "clone", "--reference", str(mirror), "--dissociate",
                           *args, "--", url, dest], stdin=subprocess.DEVNULL,
                          env=git_env(GIT_TERMINAL_PROMPT=os.environ.get(
                              "GIT_TERMINAL_PROMPT", "1")))
    if proc.returncode == 0:
        return True
    _cleanup_dest(dest)
    return False


def clone_submodules(cache: PackageCache | None, work: str, *, offline: bool, pathspec: str = "") -> int:
    """Initialise and clone the submodules of the work tree ``work``, each through its own
    mirror (recursively); returns an exit code."""
    spec = [pathspec] if pathspec else []
    _git("-C", work, "submodule", "init", "--", *spec, quiet=True)
    proc = _git("-C", work, "config", "--get-regexp", r"^submodule\..*\.url$", check=False)
    for line in proc.stdout.splitlines():
        var, _, sub_url = line.partition(" ")
        name = var[len("submodule."):-len(".url")]
        path = _git("-C", work, "config", "--file", ".gitmodules",
                    f"submodule.{name}.path", check=False).stdout.strip()
        if not path or os.path.exists(os.path.join(work, path, ".git")):
            continue
        rc = _submodule_update(cache, work, name, path, sub_url, offline=offline)
        if rc != 0:
            return rc
        if os.path.isfile(os.path.join(work, path, ".gitmodules")):
            rc = clone_submodules(cache, os.path.join(work, path), offline=offline)
            if rc != 0:
                return rc
    return EXIT_OK


def _submodule_update(cache: PackageCache | None, work: str, name: str, path: str, url: str, *,
                      offline: bool) -> int:
    """Check out one submodule: borrow from its mirror online, clone the mirror offline. A
    submodule on this machine's disk (a path, file://) is git's alone: plain git refuses it
    unless protocol.file.allow says so, and the cache never reads it for a repository."""
    with contextlib.ExitStack() as held:     # the mirror's lock, for as long as we read it
        mirror: Path | None = None
        fresh = False
        if cache is not None and cache.enabled and not is_local(url):
            try:
                mirrors = Mirrors(cache)
                held.enter_context(mirrors.locked(url))
                mirror, fresh = mirrors.ensure(url, offline=offline)
            except GitError as exc:
                if offline:
                    raise
                warn(f"git: no mirror for submodule {path} ({exc})")
            except (CacheError, OSError) as exc:
                if offline:
                    raise GitError(f"cache unusable ({exc}) and offline", EXIT_MISS) from None
        return _submodule_checkout(work, name, path, url, mirror, fresh)


def _submodule_checkout(work: str, name: str, path: str, url: str, mirror: Path | None,
                        fresh: bool) -> int:
    """git submodule update for one path, borrowing from (fresh) or cloning (stale) mirror."""
    update = ["-C", work, "submodule", "update", "--checkout"]
    if mirror is not None and fresh:
        proc = subprocess.run(["git", *update, "--reference", str(mirror), "--dissociate",
                               "--", path], stdin=subprocess.DEVNULL, env=git_env())
        if proc.returncode == 0:
            return EXIT_OK
        _cleanup_dest(os.path.join(work, path))
    if mirror is None:
        proc = subprocess.run(["git", *update, "--", path], stdin=subprocess.DEVNULL,
                              env=git_env())
        return EXIT_OK if proc.returncode == 0 else EXIT_NETWORK
    # Server unreachable or offline: clone the submodule from its mirror, then restore its URL.
    _git("-C", work, "config", f"submodule.{name}.url", mirror.as_uri())
    try:  # the file transport allowed for the mirror's file:// URL only (git refuses it for
        # submodules by default), the submodule's own URL being a remote one
        proc = subprocess.run(["git", "-c", "protocol.file.allow=always", *update, "--", path],
                              stdin=subprocess.DEVNULL, env=git_env())
    finally:
        _git("-C", work, "config", f"submodule.{name}.url", url, check=False)
    if proc.returncode != 0:
        raise GitError(f"submodule {path}: clone from the cached mirror of {redact(url)} failed")
    _git("-C", os.path.join(work, path), "remote", "set-url", "origin", url, check=False)
    return EXIT_OK


def _cleanup_dest(dest: str) -> None:
    """Remove what a failed git clone left at dest (git usually does this itself)."""
    if os.path.isdir(dest) and not os.path.islink(dest):
        shutil.rmtree(dest, ignore_errors=True)


def _clone_from_mirror(mirror: Path, url: str, dest: str, args: Sequence[str]) -> int:
    """Clone from the local mirror (file:// so nothing is hard-linked), then origin := url."""
    proc = subprocess.run(["git", "clone", *args, "--", mirror.as_uri(), dest],
                          stdin=subprocess.DEVNULL, env=git_env())
    if proc.returncode != 0:
        _cleanup_dest(dest)
        raise GitError(f"clone from the cached mirror of {redact(url)} failed")
    bare = _git("-C", dest, "rev-parse", "--is-bare-repository", check=False).stdout.strip()
    git_dir = dest if bare == "true" else os.path.join(dest, ".git")
    _git("--git-dir", git_dir, "remote", "set-url", _origin_name(args), url, check=False)
    return EXIT_OK


def update(cache: PackageCache, urls: Sequence[str] = ()) -> int:
    """Fetch new commits into the given mirrors (created if missing) or into all of them."""
    mirrors = Mirrors(cache)
    targets = [normalize_url(u) for u in urls] or mirrors.urls()
    failed = 0
    done: list[str] = []
    for url in targets:
        with mirrors.locked(url):
            final = mirrors.path(url)
            try:
                if is_valid_mirror(final):
                    try:
                        Mirrors.fetch_into(final, url)
                    except GitError:
                        if mirror_healthy(final):
                            raise
                    if not mirror_healthy(final):
                        warn(f"git: the mirror of {redact(url)} fails git fsck; rebuilding it")
                        mirrors.rebuild(url)
                    else:
                        cache.record_bucket_entry(BUCKET, final.name, dir_size(final))
                else:
                    mirrors.ensure(url)
                done.append(url)
            except GitError as exc:
                failed += 1
                error(f"git update: {redact(url)}: {exc}")
    refresh(cache, done)  # the fleet's bundles follow the mirrors (in the background)
    return EXIT_NETWORK if failed else EXIT_OK


def verify_mirrors(cache: PackageCache, repair: bool = False) -> dict[str, Any]:
    """git fsck every mirror (a full check); with repair, rebuild broken ones from their origin
    and remove those that cannot be rebuilt. Report: checked, broken, unrepaired (names)."""
    report: dict[str, Any] = {"checked": 0, "broken": [], "unrepaired": []}
    if not os.path.isdir(os.path.join(cache.root, BUCKET)):
        return report
    mirrors = Mirrors(cache)
    with contextlib.suppress(OSError), os.scandir(mirrors.bucket) as it:
        names = sorted(e.name for e in it if not e.name.startswith("."))
    for name in names:
        final = mirrors.bucket / name
        url = _git("config", "--file", str(final / "config"), "remote.origin.url",
                   check=False).stdout.strip()
        with cache.bucket_lock(BUCKET, name, timeout=LOCK_TIMEOUT):
            report["checked"] += 1
            if is_valid_mirror(final) and mirror_healthy(final, full=True):
                continue
            report["broken"].append(name)
            if not repair:
                continue
            try:
                if not url or mirror_name(url) != name:
                    raise GitError("no usable origin URL in the mirror's config")
                mirrors.rebuild(url)
            except GitError as exc:
                warn(f"git: cannot rebuild the mirror {name} ({exc}); removed it")
                mirrors.remove_path(final, name)
                report["unrepaired"].append(name)
    return report


# -- the fleet's bundles follow the mirrors --------------------------------------------------------
def refresh(cache: PackageCache, urls: list[str]) -> None:
    """Rebuild the fleet bundles of these mirrors: inline when uploads are manual, else in a
    detached ``python -m hooks.git.bundler``."""
    remote = cache.remote
    if remote is None or not remote.writable or not urls:
        return
    if os.environ.get(gitfleet.UPLOAD_ENV, "").lower() == "manual":
        publish_all(cache, urls)
        return
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the directory that holds hooks/
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "hooks.git.bundler", "--cache-dir", str(cache.root)]
    source = cache.config.source if cache.config is not None else None
    if source:
        cmd += ["--config", source]
    with contextlib.suppress(OSError):
        subprocess.Popen([*cmd, "--", *urls], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True, cwd="/", env=env)


def publish_all(cache: PackageCache, urls: list[str]) -> None:
    """Publish the bundle of each valid mirror among urls (under its lock)."""
    mirrors = Mirrors(cache)
    for url in urls:
        with mirrors.locked(url):
            path = mirrors.path(url)
            if is_valid_mirror(path):
                gitfleet.publish(cache, url, path)
