"""``pkgcache pip install`` and ``pkgcache pip wheelhouse``: offline-first installs from the cache.

Flow: offer every cached file the target can use (a find-links page for pip, a flat directory
for uv) and install with ``--no-index``. Only if that cannot satisfy the request, resolve once
online (``pip install --dry-run --report``), fetch or build the missing files into the cache,
and install offline again. Any fault of the cache itself falls back to plain pip (one warning).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from cache_core import CacheError, PackageCache, warn

from . import fleet, options, runner
from .options import PipOptions, UsageError
from .store import Artifact, Candidate, WheelStore, parse_report, project_of
from .target import Target, TargetError, find_python, probe

PREFIX = "pkgcache: pip:"
_LINK = re.compile(r"(\S+?\.(?:whl|tar\.gz|zip))(?:#|\s|$)")
PRUNE_EVERY = 3600  # drop links to evicted objects at most hourly
TOUCH_AFTER = 12 * 3600  # refresh an entry's LRU time at most this often (a touch re-hashes)

INSTALL_HELP = """\
usage: pkgcache pip install [--python PY|VENV] [--installer pip|uv] [--refresh | --offline]
                            [pip install options and requirements...]

Installs from the pkgcache wheel cache with --no-index; resolves online (pip --dry-run --report)
only when the cache cannot satisfy the request, caching the missing wheels (sdists are built
once per interpreter/platform fingerprint). All other options are passed to pip.
  --python PY|VENV   target interpreter or virtual environment (default: $VIRTUAL_ENV, python3)
  --installer NAME   pip (default, or performance.cache.pip_installer) or uv
  --refresh          resolve online even if the cache could satisfy the request
  --offline          never use the network; fail with the reason if the cache cannot satisfy
"""

WHEELHOUSE_HELP = """\
usage: pkgcache pip wheelhouse [-d DIR] [--python PY|VENV] [--refresh | --offline]
                               [-r REQ | requirements...] [pip options...]

Writes the wheels (and the sdists of locally built wheels) that satisfy the requirements for the
target interpreter into DIR (default ./wheelhouse) as links from the cache, with DIR/index.html
carrying #sha256= and data-requires-python. Use it with
  pip install --no-index --find-links DIR/index.html -r REQ
"""


def _err(msg: str) -> None:
    print(f"{PREFIX} {msg}", file=sys.stderr)


def _has_pip(python: str) -> bool:
    probe_cmd = "import importlib.util,sys; sys.exit(importlib.util.find_spec('pip') is None)"
    try:
        return subprocess.run([python, "-I", "-c", probe_cmd], check=False,
                              capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def plain(python: str, opts: PipOptions, installer: str = "pip", env: dict | None = None) -> int:
    """Run the user's command with plain pip (or uv) and return its exit code."""
    env = env if env is not None else dict(os.environ)
    uv = runner.uv_bin() if installer == "uv" else None
    if uv:
        cmd = [uv, "pip", "install", "--python", python, *opts.pip_args]
    elif _has_pip(python):
        cmd = [python, "-m", "pip", "install", *opts.pip_args]
    else:
        cmd = [sys.executable, "-m", "pip", "--python", python, "install", *opts.pip_args]
    try:
        return subprocess.run(cmd, env=env, check=False).returncode
    except OSError as exc:
        _err(f"cannot run {cmd[0]}: {exc.strerror}")
        return 1


class Driver:
    """One pkgcache pip run against one target interpreter."""

    def __init__(self, cache: PackageCache, python: str, opts: PipOptions) -> None:
        self.cache = cache
        self.opts = opts
        self.store = WheelStore(cache)
        self.target: Target = probe(python, self.store.subdir("targets"))
        self.env = runner.tool_env(self.store.subdir("tool-cache"))
        self.pip = runner.pip_cmd(self.target, python)
        self._work: Path | None = None
        self._cands: list[Candidate] | None = None
        self.problems: list[str] = []  # why files could not be cached (first one is reported)

    @property
    def work(self) -> Path:
        """This run's scratch directory (made on first use; the uv fast path needs none)."""
        if self._work is None:
            import tempfile  # not needed on the uv fast path

            self._work = Path(tempfile.mkdtemp(prefix="pip-", dir=self.store.subdir("tmp")))
        return self._work

    def close(self) -> None:
        """Remove this run's scratch directory."""
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)

    # -- what the cache offers ----------------------------------------------------------------
    def candidates(self, refresh: bool = False) -> list[Candidate]:
        """Cached files usable by the target (memoised for the run)."""
        if self._cands is None or refresh:
            self.store.prune_view(every=PRUNE_EVERY)
            self._cands = self.store.candidates(self.target)
        return self._cands

    def page(self) -> Path:
        """This run's find-links page over every usable cached file."""
        page = self.work / "index.html"
        self.store.write_page(page, self.candidates(refresh=True))
        return page

    def _touch(self, report: Path) -> None:
        """Refresh the LRU time of the cache entries pip installed (rarely: it re-hashes)."""
        try:
            arts = parse_report(json.loads(report.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return
        by_digest = {c.sha256: c for c in self.candidates()}
        now = time.time()
        for art in arts:
            c = by_digest.get(art.sha256 or "")
            if c is not None and now - c.entry.last_used > TOUCH_AFTER:
                self.cache.get(c.entry.key)

    # -- the install itself -------------------------------------------------------------------
    def offline_install(self, installer: str) -> runner.Result:
        """Install from the cache only; stdout streams to the user, stderr is captured."""
        args = self.opts.offline_args()
        if installer == "uv":
            uv = runner.uv_bin()
            flat = self.store.flat_dir(self.target, self.candidates(refresh=True))
            cmd = [str(uv), "pip", "install", "--python", self.target.python, "--no-index",
                   "--find-links", str(flat), *args]
            return runner.run(cmd, self.env, capture_stdout=False)
        report = self.work / "installed.json"
        own_report = not any(a == "--report" or a.startswith("--report=") for a in args)
        cmd = [*self.pip, "install", "--no-index", "--find-links", str(self.page()),
               *(["--report", str(report)] if own_report else []), *args]
        res = runner.run_streaming(cmd, self.env, drop="Looking in links: ")
        if res.rc != 0 and "no such option: --report" in res.stderr:
            raise _Fallback("the target's pip is too old for pkgcache (needs pip >= 22.2)")
        if res.rc == 0 and own_report:
            try:
                self._touch(report)
            except Exception as exc:  # noqa: BLE001 - LRU bookkeeping must not fail an install
                warn(f"pip: could not update cache usage ({type(exc).__name__})")
        return res

    def resolve_online(self, *, ignore_installed: bool = False) -> tuple[runner.Result,
                                                                          list[Artifact]]:
        """pip's own resolve against the user's indexes, without installing anything."""
        report = self.work / "resolve.json"
        args = [a for a in self.opts.pip_args if a not in ("-q", "--quiet")]
        cmd = [*self.pip, "install", "--dry-run", "--quiet", "--report", str(report),
               *(["--ignore-installed"] if ignore_installed else []), *args]
        res = runner.run(cmd, self.env)
        if res.rc != 0:
            return res, []
        return res, parse_report(json.loads(report.read_text(encoding="utf-8")))

    def resolve_offline(self) -> tuple[runner.Result, list[Artifact]]:
        """pip's resolve against the cache only (for the wheelhouse), ignoring installed ones."""
        report = self.work / "offline.json"
        cmd = [*self.pip, "install", "--dry-run", "--quiet", "--ignore-installed", "--report",
               str(report), "--no-index", "--find-links", str(self.page()),
               *self.opts.offline_args()]
        res = runner.run(cmd, self.env)
        if res.rc != 0:
            return res, []
        return res, parse_report(json.loads(report.read_text(encoding="utf-8")))

    def fill(self, arts: list[Artifact], *, verify: bool = False) -> bool:
        """Fetch or build into the cache every artifact it lacks; False if any is still missing.

        A file that cannot be fetched or built makes this return False (the caller falls back
        to plain pip, which reports the problem in its own words).
        """
        missing = [a for a in arts if not self.store.have(a, self.target, verify=verify)]
        if not missing:
            return True
        from . import fetch  # urllib/ssl: only when something must be downloaded

        self.store.prune_view()
        dl = self.work / "dl"
        dl.mkdir(exist_ok=True)
        failed: list[Artifact] = []
        paths: dict[str, Path] = {}
        if fleet.enabled(self.cache):  # the fleet first: built wheels, then files by digest
            missing = [a for a in missing
                       if not (a.cacheable and fleet.fetch_built(self.cache, self.store, a,
                                                                 self.target))]
            for art in missing:
                got = fleet.fetch_by_digest(self.cache, art, dl) if art.cacheable else None
                if got is not None:
                    paths[art.filename] = got
        for art in missing:
            if art.filename in paths:
                continue
            try:
                paths[art.filename] = fetch.download(art, dl)
            except fetch.FetchError:
                failed.append(art)
        if failed:
            fetch.pip_download(failed, dl, self.pip, self.opts.source_args(), self.env)
            for art in failed:
                p = dl / art.filename
                if p.is_file() and self.cache.calculate_hash(str(p)) == art.sha256:
                    paths[art.filename] = p
        ok = True
        sdists: list[Artifact] = []
        for art in missing:
            path = paths.get(art.filename)
            if path is None:
                self.problems.append(f"{art.filename} could not be fetched")
                ok = False
                continue
            meta = {"filename": art.filename, "name": art.name, "version": art.version,
                    "requires_python": art.requires_python, "yanked": art.yanked}
            kind = "wheel" if art.is_wheel else "sdist"
            if self.store.add(f"{kind}:{art.filename}", str(path), art.sha256, meta) is None:
                self.problems.append(f"{art.filename} could not be stored in the cache")
                ok = False
            if not art.is_wheel:
                sdists.append(art)
        if sdists and not self.build(sdists, paths):
            ok = False
        return ok

    def build(self, sdists: list[Artifact], paths: dict[str, Path]) -> bool:
        """Build wheels from sdists for the target once, keyed by sdist SHA-256 + fingerprint."""
        out = self.work / "built"
        out.mkdir(exist_ok=True)
        from . import fetch

        build = self.opts.build_args()
        if not any(a in build for a in ("--use-pep517", "--no-use-pep517")):
            build.append("--use-pep517")  # setup.py-only sdists too, without 'wheel' installed
        res = fetch.build_wheels([paths[a.filename] for a in sdists], out, self.pip,
                                 self.opts.source_args() + build, self.env)
        if res.rc != 0:
            self.problems.append(f"building {', '.join(a.filename for a in sdists)} failed: "
                                 f"{runner.last_error(res.stderr)}")
            return False
        ok = True
        for art in sdists:
            wheel = self._built_wheel(out, art)
            if wheel is None:
                self.problems.append(f"building {art.filename} produced no wheel")
                ok = False
                continue
            meta = {"filename": wheel.name, "name": art.name, "version": art.version,
                    "requires_python": art.requires_python, "sdist": art.filename,
                    "sdist_sha256": art.sha256, "fingerprint": self.target.fingerprint}
            key = self.store.built_key(str(art.sha256), self.target)
            if self.store.add(key, str(wheel), None, meta) is None:
                self.problems.append(f"{wheel.name} could not be stored in the cache")
                ok = False
        return ok

    @staticmethod
    def _built_wheel(out: Path, art: Artifact) -> Path | None:
        for wheel in out.glob("*.whl"):
            try:
                name, version, _, _ = parse_wheel_filename(wheel.name)
                if str(name) == art.name and version == Version(art.version):
                    return wheel
            except (ValueError, InvalidVersion):
                continue
        return None

    # -- errors -------------------------------------------------------------------------------
    def explain(self, res: runner.Result, *, online: bool,
                offline: runner.Result | None = None) -> int:
        """Turn a failed resolve into one clear line when a project could not be found.

        offline: the failed cache-only attempt, whose missing project is the one to name when
        the online resolve failed only because the index is unreachable.
        """
        req = runner.missing_requirement(res.stderr)
        if req is None:
            if not online and runner.is_retryable(res.stderr):
                _err("the cache cannot satisfy the request and the index is not used: "
                     + runner.last_error(res.stderr))
                return 1
            runner.replay(res.stderr)
            return res.rc or 1
        if online:
            online_reason, unreachable = self.diagnose_online(str(req))
            if unreachable and offline is not None:
                req = runner.missing_requirement(offline.stderr) or req
            reason = (online_reason or self.store.describe(req, self.target) or
                      ("not in the cache, and the index is unreachable" if unreachable
                       else "not found in the cache or on the index"))
        else:
            reason = self.store.describe(req, self.target) or "not found in the cache (offline)"
        _err(f"{canonicalize_name(req.name)}: {reason}")
        return 1

    def diagnose_online(self, req: str) -> tuple[str | None, bool]:
        """Ask pip (verbosely) why nothing fits req: (reason or None, index unreachable)."""
        cmd = [*self.pip, "install", "--dry-run", "--no-deps", "--ignore-installed", "-vv",
               *self.opts.source_args(), req]
        try:
            res = runner.run(cmd, self.env, timeout=300)
        except subprocess.TimeoutExpired:
            return None, True
        text = res.stdout + res.stderr
        from packaging.requirements import Requirement

        cname = canonicalize_name(Requirement(req).name)
        tags, python = [], False
        for line in text.splitlines():
            m = _LINK.search(line) if "Skipping link" in line else None
            if m is None:
                continue
            fname = unquote(urlsplit(m.group(1)).path.rsplit("/", 1)[-1])
            if project_of(fname) != cname:
                continue
            if "tags" in line and "compatible" in line:
                tags.append(fname)
            elif "Python" in line:
                python = True
        if tags:
            return (f"only wheels with incompatible tags on the index ({', '.join(tags[:3])}) "
                    f"for {self.target.fingerprint}"), False
        if python:
            return f"no file supports Python {self.target.version} (Requires-Python)", False
        return None, runner.is_network_error(text)

    # -- commands -----------------------------------------------------------------------------
    def install(self, installer: str) -> int:
        """Offline first; resolve and fill online only when needed."""
        opts = self.opts
        offline: runner.Result | None = None
        use_fleet = fleet.enabled(self.cache)
        if use_fleet and not opts.refresh:  # a hash-locked file needs no index and no listing
            hashes, _ = fleet.requirement_hashes(opts.pip_args)
            if hashes:
                fleet.adopt_hashes(self.cache, self.store, self.target, hashes)
        if not opts.refresh:
            offline = self.offline_install(installer)
            if offline.rc == 0 or not runner.is_retryable(offline.stderr):
                runner.replay(offline.stderr)
                return offline.rc
            if opts.offline:
                again = self._from_listings(installer, offline) if use_fleet else None
                return again if again is not None else self.explain(offline, online=False)
        mirrored = self._resolve_mirrored() if use_fleet and not opts.no_index else None
        res, arts = mirrored if mirrored is not None else self.resolve_online()
        if res.rc != 0 and use_fleet and offline is not None and self._unreachable(res):
            again = self._from_listings(installer, offline)  # only when the index is unreachable
            if again is not None:
                return again
        if res.rc != 0:
            if offline is not None and runner.missing_requirement(offline.stderr) is None \
                    and runner.missing_requirement(res.stderr) is not None:
                # e.g. a hash mismatch offline and an unreachable index: the first error tells more
                runner.replay(offline.stderr)
                return offline.rc
            return self.explain(res, online=True, offline=offline)
        # a hash mismatch from the cache: re-check the cached objects (bad ones are re-fetched)
        suspicious = offline is not None and "HASH" in offline.stderr.upper()
        if not self.fill(arts, verify=suspicious):
            raise _Fallback(self.problems[0] if self.problems else "could not cache every file")
        if use_fleet:
            fleet.publish(self.cache, arts)
        res = self.offline_install(installer)
        if res.rc != 0 and runner.is_retryable(res.stderr):
            # pip resolved online but cannot install from the cache: e.g. --hash names an sdist
            # (a built wheel never matches it) or a local project needs build dependencies
            why = ("a --hash names a file the cache does not hold (an sdist?)"
                   if "DO NOT MATCH THE HASHES" in res.stderr else runner.last_error(res.stderr))
            raise _Fallback(f"the cache cannot serve this request: {why}")
        runner.replay(res.stderr)
        return res.rc

    def _resolve_mirrored(self) -> tuple[runner.Result, list[Artifact]] | None:
        """pip's resolve against an exact mirror of the index's pages in which the fleet's
        files are local (see fleet.Mirror): same choice as online, no file downloaded that the
        fleet holds. None when the fleet holds nothing useful or the mirror cannot be made."""
        mirror = fleet.Mirror(self.cache, self.store, self.target, self.opts.pip_args)
        _, names = fleet.requirement_hashes(self.opts.pip_args)
        if not names or not mirror.add(names) or not mirror.local:
            return None
        page = self.work / "fleet.html"
        report = self.work / "resolve.json"
        args = [a for a in self.opts.offline_args() if a not in ("-q", "--quiet")]
        for _ in range(30):
            mirror.write(page)
            cmd = [*self.pip, "install", "--dry-run", "--quiet", "--report", str(report),
                   "--no-index", "--find-links", str(page), *args]
            res = runner.run(cmd, self.env)
            if res.rc == 0:
                return res, parse_report(json.loads(report.read_text(encoding="utf-8")))
            req = runner.missing_requirement(res.stderr)
            if req is None or str(canonicalize_name(req.name)) in mirror.projects \
                    or not mirror.add([req.name]):
                return None
        return None

    def _unreachable(self, res: runner.Result) -> bool:
        """True if the online resolve failed because the index cannot be reached."""
        if runner.is_network_error(res.stdout + res.stderr):
            return True
        req = runner.missing_requirement(res.stderr)
        return req is not None and self.diagnose_online(str(req))[1]

    def _from_listings(self, installer: str, offline: runner.Result) -> int | None:
        """Resolve from the fleet's listings (index unreachable): exit code, or None."""
        _, names = fleet.requirement_hashes(self.opts.pip_args)
        missing = runner.missing_requirement(offline.stderr)
        if missing is not None:
            names.append(missing.name)
        if not names or not fleet.adopt_projects(self.cache, self.store, self.target, names):
            return None
        res = self.offline_install(installer)
        if res.rc == 0 or not runner.is_retryable(res.stderr):
            runner.replay(res.stderr)
            return res.rc
        return None

    def wheelhouse(self, dest: Path) -> int:
        """Link the files satisfying the request into dest with a hashed find-links page."""
        res, arts = (runner.Result(1), []) if self.opts.refresh else self.resolve_offline()
        if res.rc != 0:
            if self.opts.offline:
                return self.explain(res, online=False)
            res, arts = self.resolve_online(ignore_installed=True)
            if res.rc != 0:
                return self.explain(res, online=True)
            if not self.fill(arts):
                _err(self.problems[0] if self.problems else "could not cache every file")
                return 1
            res, arts = self.resolve_offline()
            if res.rc != 0:
                return self.explain(res, online=False)
        by_digest = {c.sha256: c for c in self.candidates()}
        chosen: list[Candidate] = []
        for art in arts:
            c = by_digest.get(art.sha256 or "")
            if c is None:
                _err(f"{art.filename or art.name}: not served from the cache (direct or "
                     "local requirement); not put in the wheelhouse")
                return 1
            chosen.append(c)
            sdist = c.entry.meta.get("sdist")
            if c.entry.key.startswith("built:") and sdist:
                entry = self.cache.lookup(f"sdist:{sdist}")
                if entry is not None and entry.digest == c.entry.meta.get("sdist_sha256"):
                    chosen.append(Candidate(entry, str(sdist), c.path))
        dest.mkdir(parents=True, exist_ok=True)
        for c in chosen:
            if not self.cache.materialize_key(c.entry.key, str(dest / c.filename), mode="auto"):
                _err(f"{c.filename}: could not be copied from the cache")
                return 4
        self.store.write_page(dest / "index.html", chosen, relative=True)
        print(f"wheelhouse: {len(chosen)} files in {dest} "
              f"(pip install --no-index --find-links {dest / 'index.html'} ...)")
        return 0


class _Fallback(Exception):
    """The cache could not serve this run; run plain pip instead."""


def _installer(cache: PackageCache, opts: PipOptions) -> str:
    name = opts.installer or getattr(getattr(cache, "config", None), "pip_installer", "pip")
    if name == "uv" and runner.uv_bin() is None:
        warn("uv is not installed; using pip")
        return "pip"
    return name if name in options.INSTALLERS else "pip"


def _start(argv: list[str], *, wheelhouse: bool
           ) -> tuple[PipOptions | None, str | None, int]:
    try:
        opts = options.parse(argv, with_dest=wheelhouse)
    except UsageError as exc:
        _err(str(exc))
        return None, None, 2
    if opts.help:
        print(WHEELHOUSE_HELP if wheelhouse else INSTALL_HELP, end="")
        return None, None, 0
    try:
        return opts, find_python(opts.python), 0
    except TargetError as exc:
        _err(str(exc))
        return None, None, 2


def install(cache: PackageCache | None, argv: list[str]) -> int:
    """``pkgcache pip install``; returns pip's exit code (plain pip if the cache is off).

    cache None means the cache could not be opened: plain pip (the caller warned).
    """
    opts, python, rc = _start(argv, wheelhouse=False)
    if opts is None or python is None:
        return rc
    if cache is None or not cache.enabled:
        return plain(python, opts, opts.installer or "pip")
    installer = opts.installer or "pip"
    driver = None
    try:
        installer = _installer(cache, opts)
        driver = Driver(cache, python, opts)
        return driver.install(installer)
    except _Fallback as exc:
        warn(f"pip: {exc}; running plain pip")
    except Exception as exc:  # noqa: BLE001 - a cache fault must never break the install
        if os.environ.get("PKGCACHE_DEBUG"):
            import traceback

            traceback.print_exc()
        warn(f"pip: cache not used ({type(exc).__name__}: {exc}); running plain pip")
    finally:
        if driver is not None:
            driver.close()
    return plain(python, opts, installer)


def wheelhouse(cache: PackageCache, argv: list[str]) -> int:
    """``pkgcache pip wheelhouse``; 0 on success, 1 if something cannot be provided."""
    opts, python, rc = _start(argv, wheelhouse=True)
    if opts is None or python is None:
        return rc
    if not cache.enabled:
        _err("the cache is disabled; nothing to build a wheelhouse from")
        return 1
    driver = None
    try:
        driver = Driver(cache, python, opts)
        return driver.wheelhouse(Path(opts.dest or "wheelhouse").absolute())
    except (CacheError, OSError, ValueError, KeyError, TargetError,
            subprocess.SubprocessError) as exc:
        _err(f"{type(exc).__name__}: {exc}")
        return 4
    finally:
        if driver is not None:
            driver.close()
