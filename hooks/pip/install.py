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
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit

from cache_core import EXIT_MISS, EXIT_OK, EXIT_UNUSABLE, EXIT_USAGE, CacheError, PackageCache, warn
from hooks.common import trusted_keys
from hooks.common.errors import FetchError, UsageError

from . import memo, options, runner
from .options import PipOptions
from .store import Artifact, Candidate, WheelStore, parse_report, project_of, wheel_tags
from .target import Target, TargetError, find_python, probe
from .trust import Request, may_offer

TYPE_CHECKING = False  # (typing, and the view's http/ssl/email imports: not on a warm run)
if TYPE_CHECKING:
    from .view import View

_LINK = re.compile(r"(\S+?\.(?:whl|tar\.gz|zip))(?:#|\s|$)")
PRUNE_EVERY = 3600  # drop links to evicted objects at most hourly
TOUCH_AFTER = 12 * 3600  # refresh an entry's LRU time at most this often (a touch re-hashes)

INSTALL_HELP = """\
usage: pkgcache pip install [--python PY|VENV] [--installer pip|uv] [--refresh | --offline]
                            [pip install options and requirements...]

Installs the versions plain pip would, taking every file it can from the pkgcache cache.
Unpinned requests are resolved by pip against the index (cached files are used, missing ones
downloaded and cached); a fully pinned request (== or hashes, e.g. a pip-compile lock) makes no
index request when everything is cached; with the index unreachable, the cache's best match.
All other options are passed to pip.
  --python PY|VENV   target interpreter or virtual environment (default: $VIRTUAL_ENV, python3)
  --installer NAME   pip (default, or performance.cache.pip_installer) or uv
  --refresh          resolve online even if the request is fully pinned
  --offline          never use the network; fail with the reason if the cache cannot satisfy
"""

WHEELHOUSE_HELP = """\
usage: pkgcache pip wheelhouse [-d DIR] [--python PY|VENV] [--refresh | --offline]
                               [-r REQ | requirements...] [pip options...]

Writes the wheels (and the sdists of locally built wheels) that satisfy the requirements for the
target interpreter into DIR (default ./wheelhouse) as copies from the cache, with DIR/index.html
carrying #sha256= and data-requires-python. Use it with
  pip install --no-index --find-links DIR/index.html -r REQ
"""


def _fleet(cache: PackageCache) -> ModuleType | None:
    """The fleet driver (hooks.pip.fleet) when the cache has a remote tier, else None.

    Without ``performance.cache.remote`` it is not even imported (its imports cost a warm uv
    install ~50 ms)."""
    try:
        if cache.remote is None:
            return None
    except Exception:  # noqa: BLE001 - a bad remote config is the core's to report
        return None
    from . import fleet

    return fleet


def _err(msg: str) -> None:
    from hooks.cli.output import error

    error(f"pip: {msg}")


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
        return EXIT_MISS


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
        self._with_sdists = False
        self.problems: list[str] = []  # why files could not be cached (first one is reported)
        self.verbose = options.verbose(opts.pip_args)
        self.shown: set[str] = set()  # "Ignoring ..." lines already printed this run
        self._tree_url: str | None = None  # the cache's PEP 503 tree, once written
        self.filled: set[str] = set()  # files downloaded this run (a miss each, never a hit)
        self._view: View | None = None  # the local view pip reads the indexes through
        self._no_view = False
        self._request: Request | None = None
        self._last: dict | None = None  # the last cache-only install: its command and files
        self.served: dict | None = None  # ... when it served the request (fast.remember)
        self._page_cands: list[Candidate] = []
        self._own_network = False  # pip alone can tell whether it reaches the index (--proxy, --cert)
        self._diagnosed = ""  # the output of the last diagnose_online
        self.online_report: Path | None = None  # the report of the online install, if any

    @property
    def request(self) -> Request:
        """What this request may be offered: its sources, pinned digests, trusted fleet keys."""
        if self._request is None:
            args = self.opts.pip_args
            hashes = (frozenset(options.requirement_hashes(args)[0])
                      if options.hash_mode(args) else None)
            self._request = Request(frozenset(options.sources(args)), hashes,
                                    trusted_keys(self.cache))
        return self._request

    def origin(self, art: Artifact) -> list[str]:
        """The sources of this request art came from ([] for a file served from the cache)."""
        path = unquote(urlsplit(art.url).path)
        if urlsplit(art.url).scheme == "file" and path.startswith(str(self.store.root) + "/"):
            return []
        return options.origin(art.url, self.opts.pip_args)

    @property
    def work(self) -> Path:
        """This run's scratch directory (made on first use; the uv fast path needs none)."""
        if self._work is None:
            import tempfile  # not needed on the uv fast path

            self._work = Path(tempfile.mkdtemp(prefix="pip-", dir=self.store.subdir("tmp")))
        return self._work

    def view(self) -> View | None:
        """The local view pip reads the user's indexes through (started on first use), so
        the files pip downloads are the ones cached; None where pip must reach them itself."""
        if self._view is None and not self._no_view:
            from .view import View
            from .view import usable as view_usable

            if not view_usable(self.opts.pip_args):
                return None
            from .build import pip_cafile
            from .pages import Pages

            dl = self.work / "dl"
            dl.mkdir(exist_ok=True)
            self._view = View(self.opts.pip_args, dl, pip_cafile())
            self._view.refresh = self.opts.refresh
            self._view.shared = Pages(self.cache, self.store.trust, self.request.keys)
            self.env = self._view.env(self.env)
            if _fleet(self.cache) is not None:
                self._coalesce(self._view)
        return None if self._no_view else self._view

    def _coalesce(self, view: View) -> None:
        """Members missing the same file at once download it once (a lease on the remote);
        another member's copy is waited for only while pip would wait for an answer."""
        cache = self.cache
        remote = cache.remote
        if remote is None:
            return
        wait = max(0.0, options.pip_timeout(self.opts.pip_args) * 0.6)
        view.coalesce = lambda digest, present=True: remote.download_lease(
            digest, wait=wait, present=present)
        view.publish_wait = remote.timeout() + 5
        view.keep = lambda path, digest: cache.put(f"sha256:{digest}", str(path), sha256=digest)

    def online(self, args: list[str]) -> list[str]:
        """args with the user's indexes read through the view (when it is used)."""
        v = self.view()
        return v.args(args) if v is not None else args

    def view_failed(self, res: runner.Result) -> bool:
        """True if pip failed while the index answered the view with an error pip might have
        handled itself (credentials, 5xx): the view is then dropped for the rest of the run."""
        if res.rc == 0 or self._view is None or self._no_view or not self._view.trouble:
            return False
        self._no_view = True
        return True

    def _upstream(self, arts: list[Artifact]) -> list[Artifact]:
        """Artifacts with view URLs turned back into the index's URLs."""
        v = self._view
        if v is None:
            return arts
        import dataclasses

        return [dataclasses.replace(a, url=v.upstream(a.url)) for a in arts]

    def close(self) -> None:
        """Save this run's vouches; remove its scratch directory."""
        try:
            self.store.save_trust()
        except Exception:  # noqa: BLE001 - a lost memo only costs a re-hash or a download
            pass
        if self._view is not None:
            self._view.close()
        if self._work is not None:
            import shutil

            shutil.rmtree(self._work, ignore_errors=True)

    # -- what the cache offers ----------------------------------------------------------------
    def candidates(self, refresh: bool = False, *, sdists: bool = False) -> list[Candidate]:
        """Cached files usable by the target, each verified (memoised for the run).

        sdists: also offer cached sdists (hash-checking mode and wheelhouses: a lock may name
        an sdist's hash, which no built wheel can match).
        """
        if self._cands is None or refresh or sdists != self._with_sdists:
            self.store.prune_view(every=PRUNE_EVERY)
            # files this machine vouched for one of the request's sources, and digests it pins
            self._cands = self.store.candidates(self.target, self.request, sdists=sdists)
            self._with_sdists = sdists
        return self._cands

    def page(self, *, sdists: bool = False, orphans: bool = False) -> Path:
        """This run's find-links page over every usable (and verified) cached file.

        orphans: also the cached sdists with no wheel built from them for this target (pip
        installed them with the legacy ``setup.py install``, or could not build them): pip
        installs them from the cache as it did from the index."""
        page = self.work / "index.html"
        extra: list[Candidate] = []
        if orphans and not sdists:  # (listed first: the next listing sets what describe() says)
            every = self.store.candidates(self.target, self.request, sdists=True)
            # (no wheel at all: a built: key that is not offered - unvouched, repointed - keeps
            # its sdist out too, as before)
            extra = [o for c in every if c.entry.key.startswith("sdist:")
                     and self.cache.lookup(self.store.built_key(c.sha256, self.target)) is None
                     and (o := self._named_copy(c)) is not None]
        self._page_cands = [*self.candidates(refresh=True, sdists=sdists), *extra]
        self.store.write_page(page, self._page_cands)
        return page

    def _named_copy(self, c: Candidate) -> Candidate | None:
        """c as a checked copy under its own name in this run's scratch directory: pip unpacks
        an sdist at the end of its symlinks (the object's name, no .tar.gz), with a warning."""
        import shutil

        dest = self.work / "sdists" / c.sha256 / c.filename
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(c.path, dest)
            if self.cache.calculate_hash(str(dest)) != c.sha256:
                return None
        except OSError:
            return None
        return Candidate(c.entry, c.filename, dest)

    def tree_args(self) -> list[str]:
        """``--extra-index-url`` options: the user's extra indexes (CLI, else environment or
        config, which a CLI value would otherwise replace), then the cache's tree last."""
        # only files vouched for one of this request's sources (candidates), and even in
        # hash-checking mode never one offered for its pinned digest alone: pip's report of a
        # file taken from the tree must never vouch for a file this machine did not vouch for
        req = self.request
        plain_req = Request(req.sources, None, req.keys)
        trust = self.store.trust
        cands = [c for c in self.candidates(refresh=True)
                 if may_offer(c.sha256, trust.get(c.entry.key), plain_req)]
        tree = self.store.write_tree(self.work / "simple", cands)
        extra = [] if options.has_extra_index(self.opts.pip_args) or self.view() is not None \
            else [a for u in options.extra_index_urls() for a in ("--extra-index-url", u)]
        self._tree_url = tree.as_uri() + "/"
        return [*extra, "--extra-index-url", self._tree_url]

    def _clean(self, res: runner.Result) -> runner.Result:
        """Drop pip's warnings about projects the cache's tree has no page for (expected)."""
        if self._view is not None:
            res.stderr = self._view.unview(res.stderr)
        tree = self._tree_url
        if tree and tree in res.stderr:
            res.stderr = "".join(ln for ln in res.stderr.splitlines(keepends=True)
                                 if not (tree in ln and "is ignored" in ln))
        return res

    def _stream(self, cmd: list[str], printed: list[str] | None = None,
                again: list[str] | None = None) -> runner.Result:
        """Run pip with stdout shown, minus our page's line and already shown 'Ignoring' lines.

        printed: collects the lines shown. again: the lines a failed attempt showed; this run's
        lines that repeat them, in order from its start, are not shown twice."""
        shown = self.shown
        tree = self._tree_url
        view = self._view
        repeat = list(again or [])

        def show(line: str) -> None:
            if repeat and repeat[0] == line:  # (on the screen already)
                repeat.pop(0)
            else:
                repeat.clear()
                sys.stdout.write(line)
                sys.stdout.flush()
            if printed is not None:
                printed.append(line)

        def drop(line: str) -> bool:
            if view is not None:  # pip's lines name the user's index, not the view
                line = view.unview(line)
            if line.startswith("Looking in links: "):
                return True
            if tree and line.startswith("Looking in indexes: ") and tree in line:
                line = line.replace(", " + tree, "").replace(tree, "")  # without the cache's tree
            if line.startswith("Ignoring "):
                if line in shown:
                    return True
                shown.add(line)
            show(line)
            return True

        return runner.run_streaming(cmd, self.env, drop=drop)

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
            if c is None or art.filename in self.filled:
                continue
            if now - c.entry.last_used > TOUCH_AFTER:
                self.cache.get(c.entry.key)  # counts the hit itself
            else:
                self.cache.count_hit(c.entry.key)

    # -- the install itself -------------------------------------------------------------------
    def offline_install(self, installer: str, extra: list[str] | None = None) -> runner.Result:
        """Install from the cache only; stdout streams to the user, stderr is captured."""
        args = [*(extra or []), *self.opts.offline_args()]
        sdists = options.hash_mode(self.opts.pip_args)
        if installer == "uv":
            uv = runner.uv_bin()
            cands = self.candidates(refresh=True, sdists=sdists)
            flat = self.store.flat_dir(self.target, cands, "\n".join(sorted(self.request.sources)))
            cmd = [str(uv), "pip", "install", "--python", self.target.python, "--no-index",
                   "--find-links", str(flat), *args]
            res = runner.run(cmd, self.env, capture_stdout=False)
            self._last = {"installer": "uv", "cmd": cmd, "python_at": [4], "env": self.env,
                          "offered": cands, "flat": flat, "uv": str(uv)}
            return res
        mine = options.user_report(args)
        own_report = mine is None
        report = self.work / "installed.json" if own_report else self._report_file(mine)
        page = self.page(sdists=sdists, orphans=True)
        cmd = [*self.pip, "install", "--no-index", "--find-links", str(page), *args]
        if own_report:
            cmd[len(self.pip) + 4:len(self.pip) + 4] = ["--report", str(report)]
        res = self._stream(cmd)
        if res.rc == 0:
            py = self.target.python
            self._last = {"installer": "pip", "env": self.env, "offered": self._page_cands,
                          "cmd": [*self.pip, "install", "--no-index", "--find-links", str(page),
                                  *args], "page": page,
                          "page_text": page.read_text(encoding="utf-8"),
                          "python_at": [i for i, a in enumerate(self.pip) if a == py and
                                        (i == 0 or self.pip[i - 1] == "--python")]}
        if res.rc != 0 and "no such option: --report" in res.stderr:
            raise _Fallback("the target's pip is too old for pkgcache (needs pip >= 22.2)")
        if not own_report:
            report = self._trusted_report(report)
        if res.rc == 0 and report is not None:
            try:
                self._touch(report)
            except Exception as exc:  # noqa: BLE001 - LRU bookkeeping must not fail an install
                warn(f"pip: could not update cache usage ({type(exc).__name__})")
        return res

    def resolve_online(self, *, ignore_installed: bool = False, page: bool = False,
                       reqs: list[str] | None = None) -> tuple[runner.Result, list[Artifact]]:
        """pip's own resolve against the user's indexes, without installing anything.

        page: add the cache's page as find-links (pip then takes a cached file over the same
        file on the index, so only missing files are downloaded). reqs: resolve these instead
        of the user's request (build dependencies), with the user's index options.
        """
        report = self.work / "resolve.json"
        if reqs is None:
            args = [a for a in options.without_report(self.opts.pip_args)
                    if a not in ("-q", "--quiet")]
        else:
            args = [*self.opts.source_args(), *reqs]
        while True:
            cmd = [*self.pip, "install", "--dry-run", "--quiet", "--report", str(report),
                   *(["--ignore-installed"] if ignore_installed else []),
                   *(self.tree_args() if page else []), *self.online(args)]
            res = self._clean(runner.run(cmd, self.env))
            if not self.view_failed(res):
                break
        if self.verbose:
            runner.replay(res.stderr)
        if res.rc != 0:
            return res, []
        return res, self._upstream(parse_report(json.loads(report.read_text(encoding="utf-8"))))

    def resolve_offline(self, *, ignore_installed: bool = True,
                        sdists: bool = True) -> tuple[runner.Result, list[Artifact]]:
        """pip's resolve against the cache only (wheelhouse; the pinned-request check)."""
        report = self.work / "offline.json"
        cmd = [*self.pip, "install", "--dry-run", "--quiet",
               *(["--ignore-installed"] if ignore_installed else []), "--report",
               str(report), "--no-index", "--find-links", str(self.page(sdists=sdists)),
               *options.without_report(self.opts.offline_args())]
        res = runner.run(cmd, self.env)
        if res.rc != 0:
            return res, []
        return res, parse_report(json.loads(report.read_text(encoding="utf-8")))

    def fill(self, arts: list[Artifact], *, verify: bool = False, as_pip: bool = False) -> bool:
        """Fetch or build into the cache every artifact it lacks; False if any is still missing.

        as_pip: pip has just installed arts (online): a setup.py-only sdist is built as pip
        builds it, with the target's own tools, or not at all (see _build_legacy).

        A file that cannot be fetched or built makes this return False (the caller falls back
        to plain pip, which reports the problem in its own words).
        """
        missing = [a for a in arts
                   if not self.store.have(a, self.target, verify=verify, origin=self.origin(a),
                                          request=self.request)]
        if not missing:
            return True
        self.store.prune_view()
        missing, paths = self._download(missing)
        ok = True
        sdists: list[Artifact] = []
        for art in missing:
            path = paths.get(art.filename)
            if path is None:
                self.problems.append(f"{art.filename} could not be fetched")
                ok = False
                continue
            origin = self.origin(art)
            meta = {"filename": art.filename, "name": art.name, "version": art.version,
                    "requires_python": art.requires_python, "yanked": art.yanked,
                    "sources": [origin] if origin else []}
            kind = "wheel" if art.is_wheel else "sdist"
            if self.store.add(f"{kind}:{art.filename}", str(path), art.sha256, meta) is None:
                self.problems.append(f"{art.filename} could not be stored in the cache")
                ok = False
            else:
                self.cache.count_miss(f"{kind}:{art.filename}")  # a cold download
                self.filled.add(art.filename)
            if not art.is_wheel:
                sdists.append(art)
        if sdists and not self.build(sdists, paths, as_pip=as_pip):
            ok = False
        return ok

    def _download(self, missing: list[Artifact]) -> tuple[list[Artifact], dict[str, Path]]:
        """Download what the cache lacks (the fleet first, then the index, then pip itself for
        what urllib cannot fetch): (what is still to store, file name -> its downloaded,
        digest-checked file); a wheel the fleet built is already stored and not listed."""
        from . import build as fetch  # urllib/ssl: only when something must be downloaded

        dl = self.work / "dl"
        dl.mkdir(exist_ok=True)
        failed: list[Artifact] = []
        paths = self._captured(missing)  # what pip already downloaded through the view
        if (fleet := _fleet(self.cache)) is not None:  # the fleet first: built wheels, then
            # files by digest
            missing = [a for a in missing if a.filename in paths or
                       not (a.cacheable and fleet.fetch_built(self.cache, self.store, a,
                                                              self.target))]
            for art in missing:
                if art.filename in paths or not art.cacheable:
                    continue
                got = fleet.fetch_by_digest(self.cache, art, dl)
                if got is not None:
                    paths[art.filename] = got
        for art in missing:
            if art.filename in paths:
                continue
            try:
                paths[art.filename] = fetch.download(art, dl)
            except FetchError:
                failed.append(art)
        if failed:
            fetch.pip_download(failed, dl, self.pip, self.opts.source_args(), self.env)
            for art in failed:
                p = dl / art.filename
                if p.is_file() and self.cache.calculate_hash(str(p)) == art.sha256:
                    paths[art.filename] = p
        return missing, paths

    def _captured(self, arts: list[Artifact]) -> dict[str, Path]:
        """The files among arts that pip downloaded through the view this run, each with the
        SHA-256 pip's report gives (the index's)."""
        v = self._view
        out: dict[str, Path] = {}
        if v is None:
            return out
        for art in arts:
            path = v.fetched.get(art.filename)
            if path is not None and art.sha256 and \
                    self.cache.calculate_hash(str(path)) == art.sha256:
                out[art.filename] = path
        return out

    def cache_build_deps(self, sources: list[Path]) -> list[str]:
        """Cache the build dependencies of local projects or sdists (pyproject's
        [build-system] requires, resolved online like pip's isolated build env does), so they
        build offline next time. Returns the cache keys of those dependencies."""
        from .build import build_requires

        reqs: list[str] = []
        for src in sources:
            for r in build_requires(src):
                if r not in reqs:
                    reqs.append(r)
        if not reqs:
            return []
        res, arts = self.resolve_online(ignore_installed=True, page=True, reqs=reqs)
        if res.rc != 0:
            self.problems.append(f"build dependencies {', '.join(reqs)}: "
                                 f"{runner.last_error(res.stderr)}")
            return []
        if not self.fill([a for a in arts if a.cacheable]):
            return []
        return [f"wheel:{a.filename}" if a.is_wheel else self.store.built_key(str(a.sha256),
                                                                              self.target)
                for a in arts if a.cacheable]

    def cache_after(self, report: Path) -> None:
        """After an online install: cache what pip fetched from the index (never a direct
        requirement) and the build dependencies of the local projects it built."""
        try:
            arts = self._upstream(parse_report(json.loads(report.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            return
        files = str(self.store.files)
        fetched = [a for a in arts if a.cacheable and not unquote(urlsplit(a.url).path)
                   .startswith(files + "/")]
        by_digest = {c.sha256: c for c in self.candidates()}
        for a in arts:  # served from the cache's tree: one hit each
            if a.cacheable and a not in fetched and (c := by_digest.get(a.sha256 or "")):
                self.cache.count_hit(c.entry.key)
        local = [p for a in arts if (p := a.local_path) is not None]
        if local:
            self.cache_build_deps(local)
        if fetched:
            self.fill(fetched, as_pip=True)

    def build(self, sdists: list[Artifact], paths: dict[str, Path], *,
              as_pip: bool = False) -> bool:
        """Build wheels from sdists for the target once, keyed by sdist SHA-256 + fingerprint."""
        out = self.work / "built"
        out.mkdir(exist_ok=True)
        from . import build as fetch

        build = self.opts.build_args()
        if as_pip and "--use-pep517" not in build:
            legacy = [a for a in sdists if fetch.legacy_sdist(paths[a.filename])]
            if legacy:
                self._build_legacy(legacy, paths, build)
                sdists = [a for a in sdists if a not in legacy]
                if not sdists:
                    return True
        if not any(a in build for a in ("--use-pep517", "--no-use-pep517")):
            build.append("--use-pep517")  # setup.py-only sdists too, without 'wheel' installed
        deps = self.cache_build_deps([paths[a.filename] for a in sdists])
        ready = {a.filename: w for a in sdists if (w := self._pip_built(a)) is not None}
        todo = [a for a in sdists if a.filename not in ready]
        if todo:
            # the build env takes cached build dependencies first (the page), then the index
            res = fetch.build_wheels([paths[a.filename] for a in todo], out, self.pip,
                                     [*self.tree_args(), *self.online(self.opts.source_args()),
                                      *build], self.env)
            if res.rc != 0:
                self.problems.append(f"building {', '.join(a.filename for a in todo)} failed: "
                                     f"{runner.last_error(res.stderr)}")
                return False
        ok = True
        for art in sdists:
            wheel = ready.get(art.filename) or self._built_wheel(out, art)
            if wheel is None:
                self.problems.append(f"building {art.filename} produced no wheel")
                ok = False
                continue
            ok = self._store_built(art, wheel, deps) and ok
        return ok

    def _build_legacy(self, sdists: list[Artifact], paths: dict[str, Path],
                      build: list[str]) -> None:
        """Wheels from setup.py-only sdists pip has just installed, made as pip makes them: the
        one pip built, else one built with the target's own setuptools (no build environment,
        no index). Plain pip downloads no build tool for them, so neither does this; without
        the tools the cached sdist alone is served, and pip installs it as it did."""
        from . import build as fetch

        ready = {a.filename: w for a in sdists if (w := self._pip_built(a)) is not None}
        todo = [a for a in sdists if a.filename not in ready]
        out = self.work / "built-legacy"
        if todo and fetch.has_build_tools(self.target.python, self.env):
            out.mkdir(exist_ok=True)
            fetch.build_wheels([paths[a.filename] for a in todo], out, self.pip,
                               ["--no-build-isolation", "--no-index", *build], self.env)
        for art in sdists:
            wheel = ready.get(art.filename) or self._built_wheel(out, art)
            if wheel is not None:
                self._store_built(art, wheel, [])

    def _store_built(self, art: Artifact, wheel: Path, deps: list[str]) -> bool:
        """Store the wheel built from art's sdist for this target; False if it could not be."""
        meta = {"filename": wheel.name, "name": art.name, "version": art.version,
                "requires_python": art.requires_python, "sdist": art.filename,
                "sdist_sha256": art.sha256, "fingerprint": self.target.fingerprint,
                "build_deps": deps,
                "sources": [origin] if (origin := self.origin(art)) else []}
        key = self.store.built_key(str(art.sha256), self.target)
        if self.store.add(key, str(wheel), None, meta) is None:
            self.problems.append(f"{wheel.name} could not be stored in the cache")
            return False
        return True

    def _pip_built(self, art: Artifact) -> Path | None:
        """The wheel pip itself just built from art's sdist (an online install), taken from
        pip's wheel cache under ours: its origin.json names the sdist's SHA-256, and its tags
        must suit the target. Saves a second build of the same sdist."""
        root = Path(self.env.get("PIP_CACHE_DIR", "")) / "wheels"
        if not art.sha256 or not root.is_dir() or root.is_symlink():
            return None
        best: tuple[int, Path] | None = None
        for origin in root.glob("*/*/*/*/origin.json"):
            try:
                info = json.loads(origin.read_text(encoding="utf-8"))
                digest = (info.get("archive_info") or {}).get("hashes", {}).get("sha256")
            except (OSError, ValueError, AttributeError):
                continue
            if digest != art.sha256:
                continue
            for wheel in origin.parent.glob("*.whl"):
                if wheel.is_symlink() or self._built_wheel(origin.parent, art) != wheel:
                    continue
                rank = min((self.target.tag_rank.get(t, 1 << 30)
                            for t in wheel_tags(wheel.name) or ()), default=1 << 30)
                if rank < (1 << 30) and (best is None or rank < best[0]):
                    best = (rank, wheel)
        return best[1] if best else None

    @staticmethod
    def _built_wheel(out: Path, art: Artifact) -> Path | None:
        from packaging.utils import parse_wheel_filename
        from packaging.version import InvalidVersion, Version

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
                offline: runner.Result | None = None, why: str | None = None) -> int:
        """Turn a failed resolve into one clear line when a project could not be found.

        offline: the failed cache-only attempt, whose missing project is the one to name when
        the online resolve failed only because the index is unreachable. why: the index was
        not used because of this (e.g. unreachable, with the cause). With -v or
        PKGCACHE_DEBUG=1, pip's own output is shown first.
        """
        if self.verbose:
            runner.replay(res.stderr)
        req = runner.missing_requirement(res.stderr)
        if req is None:
            if not online and runner.is_retryable(res.stderr):
                _err("the cache cannot satisfy the request and "
                     + (why or "the index is not used") + ": " + runner.last_error(res.stderr))
                return EXIT_MISS
            if not self.verbose:
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
            reason = self.store.describe(req, self.target) or (
                f"not in the cache, and {why}" if why else "not found in the cache (offline)")
            if why and not reason.startswith("not in the cache, and"):
                reason += f"; {why}"
        from packaging.utils import canonicalize_name

        _err(f"{canonicalize_name(req.name)}: {reason}")
        return EXIT_MISS

    def diagnose_online(self, req: str) -> tuple[str | None, bool]:
        """Ask pip (verbosely) why nothing fits req: (reason or None, index unreachable)."""
        cmd = [*self.pip, "install", "--dry-run", "--no-deps", "--ignore-installed", "-vv",
               *self.opts.source_args(), req]
        try:
            res = runner.run(cmd, self.env, timeout=300)
        except subprocess.TimeoutExpired:
            return None, True
        text = self._diagnosed = res.stdout + res.stderr
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

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
        """The policy: same versions as plain pip, from the cache whenever it can.

        --offline: the cache only. A fully pinned request (every requirement ``==`` or
        hash-pinned, no unpinned dependency): the cache, with no index request, if it holds
        every file. Otherwise, with the index reachable, pip resolves against it with the
        cache's page first in line (only missing files are downloaded, then cached); with the
        index unreachable, the cache's best match and one line saying so.
        """
        opts = self.opts
        fleet = _fleet(self.cache)
        hashes, names = options.requirement_hashes(opts.pip_args) if fleet else ([], [])
        if fleet is not None and hashes and not opts.refresh:  # hash-locked: no index, no listing
            fleet.adopt_hashes(self.cache, self.store, self.target, hashes)
        if opts.offline:
            if fleet is not None:
                fleet.adopt_projects(self.cache, self.store, self.target, names)
            return self.cache_only(installer)
        if opts.no_index:
            return self.cache_first(installer)
        if not opts.refresh and options.fully_pinned(opts.pip_args):
            if fleet is not None:  # the pinned versions from the fleet's signed listings
                fleet.adopt_pins(self.cache, self.store, self.target, opts.pip_args)
            rc = self.pinned(installer)
            if rc is not None:
                return rc
        from . import build as fetch

        # the first index pip reads (a -r/-c file's --index-url replaces the command line's)
        index = next((v for k, v in options.source_list(opts.pip_args) if k == "index"),
                     options.index_url(opts.pip_args))
        # pip's own CA bundle, client certificate, trusted hosts or proxy: only pip can tell
        # whether it reaches the index (a network error of its own sends the run to the cache)
        self._own_network = options.own_network(opts.pip_args) is not None
        cause = None if self._own_network else fetch.probe_index(index)
        if cause is None and self._own_network:
            try:
                return self._online(installer, fleet, index)
            except _Unreachable as exc:
                cause = str(exc)
        if cause is not None:
            if fleet is not None:  # resolve from the fleet's signed listings
                fleet.adopt_projects(self.cache, self.store, self.target, names)
            if any(c in index for c in "@?#"):  # (only then can redacting change it: no ssl)
                from hooks.common.http import redact

                index = redact(index)
            return self.unreachable(installer, index, cause)
        return self._online(installer, fleet, index)

    def _online(self, installer: str, fleet: ModuleType | None, index: str) -> int:
        """The index is used: pip resolves against it (the fleet's verified files offered)."""
        if fleet is not None and not self._own_network:  # files the index lists with the same
            # SHA-256 (read as pip reads it: not when only pip can reach it): from the cache
            v = self.view()  # the pages it reads are the pages pip then reads
            fleet.index_verified(self.cache, self.store, self.target, self.opts.pip_args,
                                 read=v.read_page if v is not None else None)
        if installer == "uv":
            return self.online_uv()
        rc = self.online_pip()
        if rc == 0 and fleet is not None and self.online_report is not None:
            self._publish(self.online_report)
        return rc

    def _pip_unreachable(self, res: runner.Result) -> None:
        """Raise _Unreachable if pip, reaching the index its own way, failed on the network."""
        if res.rc == 0 or not self._own_network:
            return
        text = res.stderr
        if not runner.is_network_error(text):  # (pip tells a refused page only with -v)
            req = runner.missing_requirement(text)
            if req is None or not self.diagnose_online(str(req))[1]:
                return
            text = self._diagnosed
        raise _Unreachable(f"pip: {runner.network_cause(text)}")

    def _publish(self, report: Path) -> None:
        """Share what this run installed with the fleet (records and listings)."""
        from . import fleet

        try:
            fleet.publish(self.cache, parse_report(json.loads(report.read_text(encoding="utf-8"))),
                          self.store)
        except (OSError, ValueError):
            pass

    def cache_only(self, installer: str, *, why: str | None = None) -> int:
        """Install from the cache alone (offline, or the index unreachable: why)."""
        res = self.offline_install(installer)
        if res.rc == 0 or not runner.is_retryable(res.stderr):
            if res.rc == 0 and self.opts.offline and why is None and self._last is not None:
                self.served = {**self._last, "mode": "offline"}
            runner.replay(res.stderr)
            return res.rc
        return self.explain(res, online=False, why=why)

    def unreachable(self, installer: str, index: str, cause: str) -> int:
        """The index cannot be reached: the cache's best match, with one line saying so."""
        why = f"the index {index} is unreachable ({cause})"
        res = self.offline_install(installer)
        if res.rc == 0:
            if cause.startswith("name resolution failed") and self._last is not None and \
                    not options.fully_pinned(self.opts.pip_args):  # (pinned: pinned() first)
                self.served = {**self._last, "mode": "unreachable", "index": index,
                               **_host_port(options.index_url(self.opts.pip_args))}
            _err(f"{why}; installed from the cache (versions may be older than the index's)")
            runner.replay(res.stderr)
            return EXIT_OK
        if not runner.is_retryable(res.stderr):
            runner.replay(res.stderr)
            return res.rc
        return self.explain(res, online=False, why=why)

    def pinned(self, installer: str) -> int | None:
        """A fully pinned request from the cache alone; None if the cache cannot serve it as
        pip would (a file missing, or a dependency the request does not pin)."""
        if not options.hash_mode(self.opts.pip_args):
            # == pins: every distribution pip would install must be one the user pinned
            res, arts = self.resolve_offline(ignore_installed=False, sdists=False)
            if res.rc != 0 or not all(a.requested for a in arts):
                return None
        res = self.offline_install(installer)
        if res.rc == 0 or not runner.is_retryable(res.stderr):
            runner.replay(res.stderr)
            return res.rc
        return None

    @staticmethod
    def _report_file(value: str | None) -> Path | None:
        """The user's --report file pip writes, None for stdout ("-")."""
        return None if not value or value == "-" else Path(value).absolute()

    @staticmethod
    def _trusted_report(report: Path | None) -> Path | None:
        """report if only pkgcache's user and root can have written it (a user's --report in
        a directory others can write may be forged: it names the files to cache), else None."""
        return report if report is not None and options.only_ours(str(report)) else None

    def online_pip(self) -> int:
        """pip install against the user's index with the cache's page first in line."""
        args = self.opts.pip_args
        mine = options.user_report(args)
        own_report = mine is None  # (else pip writes the user's, which pkgcache then reads)
        report = self.online_report = (self.work / "online.json" if own_report
                                       else self._report_file(mine))
        printed: list[str] = []  # the lines shown, not shown again if pip runs again
        while True:
            cmd = [*self.pip, "install", *self.tree_args(),
                   *(["--report", str(report)] if own_report else []), *self.online(args)]
            again, printed = printed, []
            res = self._clean(self._stream(cmd, printed, again))
            if not self.view_failed(res):
                break
        self._pip_unreachable(res)
        if res.rc != 0:
            if runner.missing_requirement(res.stderr) is not None and not self.verbose:
                return self.explain(res, online=True)
            runner.replay(res.stderr)
            return res.rc
        runner.replay(res.stderr)
        if not own_report:
            report = self.online_report = self._trusted_report(report)
        if report is not None:
            try:
                self.cache_after(report)
            except Exception:  # noqa: BLE001 - caching afterwards never fails the install
                if os.environ.get("PKGCACHE_DEBUG"):
                    import traceback

                    traceback.print_exc()
        return EXIT_OK

    def online_uv(self) -> int:
        """pip resolves online (cache first in line), the cache is filled, uv installs exactly
        those versions from the cache."""
        res, arts = self.resolve_online(page=True)
        self._pip_unreachable(res)
        if res.rc != 0:
            return self.explain(res, online=True)
        if not self.fill(arts):
            raise _Fallback(self.problems[0] if self.problems else "could not cache every file")
        if (fleet := _fleet(self.cache)) is not None:
            fleet.publish(self.cache, arts, self.store)
        pins = self.work / "pins.txt"
        pins.write_text("".join(f"{a.name}=={a.version}\n" for a in arts
                                if not a.is_direct and a.name and a.version), encoding="utf-8")
        res = self.offline_install("uv", ["--constraint", str(pins)])
        if res.rc != 0 and runner.is_retryable(res.stderr):
            raise _Fallback(f"the cache cannot serve this request: {runner.last_error(res.stderr)}")
        runner.replay(res.stderr)
        if res.rc == 0:
            by_digest = {c.sha256: c for c in self.candidates()}
            for a in arts:  # uv read these from the cache without a download this run
                if a.cacheable and a.filename not in self.filled and \
                        (c := by_digest.get(a.sha256 or "")):
                    self.cache.count_hit(c.entry.key)
        return res.rc

    def cache_first(self, installer: str) -> int:
        """--no-index with the user's --find-links: the cache first, then their locations."""
        offline = self.offline_install(installer)
        if offline.rc == 0 or not runner.is_retryable(offline.stderr):
            runner.replay(offline.stderr)
            return offline.rc
        res, arts = self.resolve_online()
        if res.rc != 0:
            return self.explain(res, online=True, offline=offline)
        if not self.fill(arts):
            raise _Fallback(self.problems[0] if self.problems else "could not cache every file")
        res = self.offline_install(installer)
        if res.rc != 0 and runner.is_retryable(res.stderr):
            raise _Fallback(f"the cache cannot serve this request: {runner.last_error(res.stderr)}")
        runner.replay(res.stderr)
        return res.rc

    def _wheelhouse_files(self) -> tuple[int | None, list[Artifact]]:
        """The files the request needs, all in the cache: (None, files), else (exit code, [])."""
        res, arts = (runner.Result(1), []) if self.opts.refresh else self.resolve_offline()
        if res.rc != 0:
            if self.opts.offline:
                return self.explain(res, online=False), []
            res, arts = self.resolve_online(ignore_installed=True)
            if res.rc != 0:
                return self.explain(res, online=True), []
            if not self.fill(arts):
                _err(self.problems[0] if self.problems else "could not cache every file")
                return EXIT_MISS, []
            res, arts = self.resolve_offline()
            if res.rc != 0:
                return self.explain(res, online=False), []
        return None, arts

    def wheelhouse(self, dest: Path) -> int:
        """Link the files satisfying the request into dest with a hashed find-links page."""
        rc, arts = self._wheelhouse_files()
        if rc is not None:
            return rc
        cands = self.candidates(sdists=True)
        by_digest = {c.sha256: c for c in cands}
        by_key = {c.entry.key: c for c in cands}
        chosen: dict[str, Candidate] = {}
        for art in arts:
            c = by_digest.get(art.sha256 or "")
            if c is None:
                _err(f"{art.filename or art.name}: not served from the cache (direct or "
                     "local requirement); not put in the wheelhouse")
                return EXIT_MISS
            chosen[c.entry.key] = c
            if c.entry.key.startswith("sdist:"):
                # a lock names the sdist: the wheel built from it goes beside it, and its build
                # dependencies, so plain pip can build it offline from the wheelhouse too
                built = by_key.get(self.store.built_key(c.sha256, self.target))
                if built is not None:
                    chosen[built.entry.key] = built
                    deps = built.entry.meta.get("build_deps")
                    for dep in deps if isinstance(deps, list) else []:
                        if isinstance(dep, str) and dep in by_key:
                            chosen[dep] = by_key[dep]
            sdist = c.entry.meta.get("sdist")
            if c.entry.key.startswith("built:") and sdist:
                entry = self.cache.lookup(f"sdist:{sdist}")
                if entry is not None and entry.digest == c.entry.meta.get("sdist_sha256"):
                    chosen[entry.key] = Candidate(entry, str(sdist), c.path)
        dest.mkdir(parents=True, exist_ok=True)
        for c in chosen.values():
            # a copy (or reflink), never a hardlink: the user's directory must not reach an object
            if not self.cache.materialize_key(c.entry.key, str(dest / c.filename), mode="copy"):
                _err(f"{c.filename}: could not be copied from the cache")
                return EXIT_UNUSABLE
        self.store.write_page(dest / "index.html", list(chosen.values()), relative=True)
        print(f"wheelhouse: {len(chosen)} files in {dest} "
              f"(pip install --no-index --find-links {dest / 'index.html'} ...)")
        return EXIT_OK


def _host_port(url: str) -> dict[str, object]:
    """The host and port hooks.pip.build.probe_index resolves for url."""
    parts = urlsplit(url)
    return {"host": parts.hostname or "", "port": parts.port or (443 if parts.scheme == "https"
                                                                 else 80)}


class _Fallback(Exception):
    """The cache could not serve this run; run plain pip instead."""


class _Unreachable(Exception):
    """pip, reaching the index its own way, could not (the cause); the cache serves the run."""


def _installer(cache: PackageCache, opts: PipOptions) -> str:
    cfg = cache.config
    name = opts.installer or (str(cfg.option("pip_installer")) if cfg is not None else "pip")
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
        return None, None, EXIT_USAGE
    if opts.help:
        print(WHEELHOUSE_HELP if wheelhouse else INSTALL_HELP, end="")
        return None, None, EXIT_OK
    try:
        python = find_python(opts.python)
        options.set_target(python)
    except TargetError as exc:
        _err(str(exc))
        return None, None, EXIT_USAGE
    from importlib.machinery import PathFinder  # (importlib.util.find_spec runs setuptools'
    # distutils hack, which imports traceback: ~5 ms of every run)

    if PathFinder.find_spec("pip") is None and not _has_pip(python):
        _err(f"no pip to install into {python} with: name a target that has pip with "
             "--python PY|VENV, or activate a virtual environment")
        return None, None, EXIT_USAGE
    return opts, python, EXIT_OK


def install(cache: PackageCache | Callable[[], PackageCache] | None, argv: list[str]) -> int:
    """``pkgcache pip install``; returns pip's exit code (plain pip if the cache is off).

    cache may be a function that opens it (called after the options are read, so --help or bad
    options never open a cache); one that cannot be opened means plain pip and one warning.
    cache None means the cache could not be opened: plain pip (the caller warned).
    """
    opts, python, rc = _start(argv, wheelhouse=False)
    if opts is None or python is None:
        return rc
    if options.dry_run(opts.pip_args):  # a simulation: plain pip, the cache not even opened
        return plain(python, opts, opts.installer or "pip")
    if callable(cache):
        try:
            cache = cache()
        except (CacheError, OSError) as exc:  # the cache never breaks pip: warn, run plain pip
            warn(f"pip: cache not used ({exc}); running plain pip")
            cache = None
    if cache is None or not cache.enabled:
        return plain(python, opts, opts.installer or "pip")
    installer = opts.installer or "pip"
    driver = None
    before = None
    served: int | None = None  # the driver's exit code
    try:
        installer = _installer(cache, opts)
        if memo.wanted():  # what the run reads that it may change itself, before it reads it
            before = memo.cache_state(cache)
        driver = Driver(cache, python, opts)
        served = driver.install(installer)
        return served
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
            if served == 0 and before is not None and driver.served is not None:
                memo.remember(cache, driver.store, driver.target, opts, driver.served, before)
    return plain(python, opts, installer)


def wheelhouse(cache: PackageCache, argv: list[str]) -> int:
    """``pkgcache pip wheelhouse``; 0 on success, 1 if something cannot be provided."""
    opts, python, rc = _start(argv, wheelhouse=True)
    if opts is None or python is None:
        return rc
    if not cache.enabled:
        _err("the cache is disabled; nothing to build a wheelhouse from")
        return EXIT_MISS
    driver = None
    try:
        driver = Driver(cache, python, opts)
        return driver.wheelhouse(Path(opts.dest or "wheelhouse").absolute())
    except (CacheError, OSError, ValueError, KeyError, TargetError,
            subprocess.SubprocessError) as exc:
        _err(f"{type(exc).__name__}: {exc}")
        return EXIT_UNUSABLE
    finally:
        if driver is not None:
            driver.close()
