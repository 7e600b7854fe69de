"""The commands apt runs from the snippet (`pkgcache apt hook ACTION`). Fail-open: they always
exit 0, print nothing on success and at most one short warning line on any fault, and bound
their own run time. They stand aside (do nothing, print nothing) for simulations, for a process
that cannot write apt's archives (non-root) and for a cache owned by another user."""

from __future__ import annotations

import os
import signal
import threading
import time

TYPE_CHECKING = False  # typing is not imported at run time (start-up of every hook)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from cache_core import PackageCache

ACTIONS = ("harvest", "pre-install", "post-update", "sweep")
TIME_LIMIT = {"harvest": 300, "pre-install": 60, "post-update": 120, "sweep": 300}
HOOK_LOCK_TIMEOUT = 2.0
HOOK_BUSY_TIMEOUT = 5.0    # seconds a hook waits for another process's index write
WATCHDOG_GRACE = 5.0           # after the limit, the watchdog ends the process whatever it does


class HookTimeout(BaseException):
    """The hook ran past its time limit. A BaseException, so no fail-open `except Exception`
    (in the cache core or a driver) can swallow it and carry on past the limit."""


_said: list[str] = []


def _warn(message: str) -> None:
    """At most ONE warning line per hook process, whoever raises it (driver or cache core)."""
    if _said:
        return
    _said.append(message)
    from cache_core import write_warning

    from .runwarn import first_of_run

    if first_of_run():  # and one per apt run: the other hooks and the method may have said it
        write_warning(message)


def _gate_core_warnings() -> None:
    """Route cache_core's warnings through _warn, so apt sees one line per hook at most."""
    try:
        from cache_core import set_warning_handler
    except Exception:  # noqa: BLE001 - a broken cache_core is reported later, once
        return
    set_warning_handler(_warn)


def _on_alarm(signum: int, frame: object) -> None:
    raise HookTimeout()


def _watchdog(limit: float, label: str) -> threading.Timer:
    """Last resort: if the process is stuck where no signal handler can run (inside a C call
    such as SQLite's busy wait), end it with exit 0 and one line, limit + WATCHDOG_GRACE s in."""
    def fire() -> None:
        if not _said:
            _said.append("timeout")
            from cache_core import write_warning

            write_warning(f"apt {label} stopped after {int(limit)} s; apt continues without it")
        os._exit(0)

    timer = threading.Timer(limit + WATCHDOG_GRACE, fire)
    timer.daemon = True
    timer.start()
    return timer


def _read_info(info: bytes | None = None) -> list[Any]:
    """Drain apt's info fd first thing, so apt never waits on us whatever happens later (info:
    the stream, read already)."""
    from .harvest import parse_info_bytes, read_info_fd

    if info is not None:
        return parse_info_bytes(info)
    raw = os.environ.get("APT_HOOK_INFO_FD", "")
    if not raw.isdigit():
        return []
    fd = int(raw)
    if fd < 3:  # stdin protocol (v1 misconfigured): read it all the same
        fd = os.dup(fd)
    return read_info_fd(fd)


def run(action: str, make_cache: Callable[[], PackageCache | None],
        info: bytes | None = None) -> int:
    """Run one hook action; never raises, always returns 0. info: the harvest's info stream,
    read already from apt's fd."""
    label = {"harvest": "harvest", "sweep": "harvest", "pre-install": "seed",
             "post-update": "seed"}.get(action, "hook")
    old = None
    watchdog = None
    try:
        actions = _read_info(info) if action == "harvest" or action not in ACTIONS else []
        if action == "harvest" and not actions:
            return 0  # remove/purge/configure-only runs: nothing to store, nothing imported
        limit = time_limit(action)
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(limit)
        watchdog = _watchdog(limit, label)
        if action not in ACTIONS:
            raise ValueError(f"unknown hook action {action!r}")
        if _stand_aside():
            return 0
        if action == "pre-install" and _method_serves_alone():
            return 0  # nothing to compute: no cache, YAML or index opened
        _gate_core_warnings()
        from cache_core import stamps

        identity = stamps.config_identity()  # before the config is read
        try:
            cache = make_cache()
            if cache is None or not cache.enabled:
                return 0
            cache.busy_timeout = min(cache.busy_timeout, HOOK_BUSY_TIMEOUT)
            cache.open()  # now: a cache we may not use is a silent skip
            _remember_cache(cache, identity)
        except Exception as exc:
            if _not_ours(exc):
                return 0
            raise
        try:
            _dispatch(action, cache, actions)
        finally:
            cache.close()
    except HookTimeout:
        _warn(f"apt {label} stopped after {time_limit(action)} s; apt continues without it")
    except ImportError as exc:
        _warn(f"apt {label} skipped: {exc.name or exc} is not available")
    except BaseException as exc:  # noqa: BLE001 - never break apt
        if isinstance(exc, KeyboardInterrupt):
            return 0
        _warn(f"apt {label} skipped: {_short(exc)}")
    finally:
        signal.alarm(0)
        if watchdog is not None:
            watchdog.cancel()
        if old is not None:
            signal.signal(signal.SIGALRM, old)
    return 0


def _method_serves_alone() -> bool:
    """The pre-install hook's shortcut: the cache the config selects (as the hooks recorded it:
    cache_core.stamps) has no remote, sets apt_front_only, and the method's front serves every
    deb apt may ask for (seed.front_serves_all), so the seed has nothing to compute
    (seed.method_serves, without opening the cache). Any fault: False (the seed runs, and
    says why if it must)."""
    try:
        from cache_core import stamps

        from .seed import front_serves_all

        got = stamps.selected()
        return got is not None and not got[1] and stamps.front_only() and front_serves_all()
    except Exception:  # noqa: BLE001 - a shortcut only
        return False


def _remember_cache(cache: PackageCache, identity: str) -> None:
    """Tell the method's front which cache the config selects (cache_core.stamps), when this
    hook's cache is the config's own (no --config or --cache-dir given)."""
    from cache_core import stamps

    cfg = cache.config
    env_dir = os.environ.get("PKGCACHE_DIR")
    if cfg is None or cfg.source != stamps.lookup_config():
        return
    if cfg.explicit_dir and not (env_dir and os.path.abspath(env_dir) == str(cache.root)):
        return
    stamps.remember_cache(identity, str(cache.root), remote=bool(cfg.remote),
                          front_only=cfg.option("apt_front_only") is True)


def time_limit(action: str) -> int:
    """The action's limit in seconds; PKGCACHE_HOOK_TIME_LIMIT may only lower it (tests)."""
    limit = TIME_LIMIT.get(action, 60)
    raw = os.environ.get("PKGCACHE_HOOK_TIME_LIMIT", "")
    if raw.isdigit() and 0 < int(raw) < limit:
        return int(raw)
    return limit


def _stand_aside() -> bool:
    """Do nothing, silently: a nested `--print-uris` replay, a non-root process (it cannot write
    apt's archives), a simulation (-s, --dry-run, --print-uris, APT::Get::Simulate, ...) or a run
    that downloads nothing or answers no (--no-download, --assume-no)."""
    from . import invocation

    if os.environ.get(invocation.REPLAY_ENV):
        return True
    if os.geteuid() != 0:
        return True
    try:
        from .aptenv import apt_pkg_module

        apt_pkg = apt_pkg_module()
        archives = apt_pkg.config.find_dir("Dir::Cache::archives")
    except ImportError:
        apt_pkg, archives = None, "/var/cache/apt/archives/"
    if archives and os.path.isdir(archives) and not os.access(archives, os.W_OK):
        return True
    return invocation.places_nothing(invocation.current(), apt_pkg)


def _not_ours(exc: BaseException) -> bool:
    """A cache this user may not use (owned by someone else, not writable): not a fault."""
    try:
        from cache_core import UnsafeCacheError
    except Exception:  # noqa: BLE001
        return False
    if isinstance(exc, UnsafeCacheError):  # a planted symlink or a world-writable parent: warn
        return "owned by uid" in str(exc)
    return isinstance(exc, PermissionError)


def _short(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def _dispatch(action: str, cache: PackageCache, actions: list[Any]) -> None:
    from . import aptenv
    from .fastseed import fold_hits
    from .method import fold_front_counts

    fold_front_counts(cache)  # what the method's front served alone (`pkgcache apt status`)
    fold_hits(cache)  # what fast seeds placed: hits, and the LRU's "used"

    if action == "harvest":
        from .harvest import archives_dir, harvest, index_sha256

        rep = harvest(cache, actions, archives=archives_dir(), lookup=index_sha256)
        aptenv.record(cache, "harvest", rep.as_dict())
        if rep.failed:
            _warn(f"apt harvest: {len(rep.failed)} of {rep.seen} .deb(s) not cached")
    elif action == "sweep":
        from .harvest import sweep

        paths = aptenv.AptPaths.load()
        rep = sweep(cache, paths.archives)
        if rep.seen:
            aptenv.record(cache, "harvest", rep.as_dict())
    else:
        from .seed import method_serves, seed

        serves = ""
        imported, started, gen = False, 0.0, None
        if action == "post-update":
            _forget_update_memo()
            started = time.time()
            imported = _import_lists(cache)
            gen = cache.generation() if imported else None  # what this run left
        else:
            serves = method_serves(cache)
            if serves == "all":
                return  # the method's front serves each deb as apt asks: nothing to compute here
        try:
            # After `apt-get update` nothing is placed (a deb in archives changes what
            # `apt-get --print-uris` says): the plan is refreshed, the pre-install seed places.
            # With the front serving ("placed"): earlier placements are checked, none made.
            srep = seed(cache, None, hook=True, narrow=action == "pre-install",
                        plan_only=action == "post-update" or serves == "placed",
                        lock_timeout=HOOK_LOCK_TIMEOUT)
        except aptenv.AptLockBusy:
            return  # another apt run holds archives; it will fail or finish on its own
        if srep.placed or srep.rejected or srep.removed or srep.opened_index \
                or srep.planned_only or srep.followed_request:
            aptenv.record(cache, "seed", dict(srep.as_dict(), trigger=action))
        if action == "post-update" and imported and gen is not None:
            _remember_update(cache, started, gen)


def _forget_update_memo() -> None:
    from .updatememo import forget

    forget()


def _remember_update(cache: PackageCache, started: float, gen: tuple[str, str]) -> None:
    """After a full import: the post-update memo (hooks/apt/updatememo.py), unless this run
    warned or the cache changed since its import (gen: a gc or another writer meanwhile may
    have dropped what it imported). The seed's plan it skips next time is a memo of its own
    (by index fingerprint)."""
    from . import aptenv
    from .lists import STATE_FILE
    from .updatememo import write

    if _said or cache.generation() != gen:
        return
    apt_pkg = aptenv.apt_pkg_module()
    cfg = apt_pkg.config
    paths = aptenv.AptPaths.load(apt_pkg)
    state = aptenv.trusted_file(paths, STATE_FILE)
    config = cache.config.source if cache.config is not None else None
    files = [os.environ.get("APT_CONFIG", ""), cfg.find_file("Dir::Etc::main"),
             str(state or ""), str(config or ""),
             str(paths.status),  # what is installed: the seed's plan follows it
             cfg.find_file("Dir::State::extended_states")]
    watch = [w for w in paths.watch if w]  # sources and pinning (the plan follows them too)
    files += [w for w in watch if not os.path.isdir(w)]
    dirs = [str(paths.parts), str(paths.lists), *[w for w in watch if os.path.isdir(w)]]
    write([f for f in files if f], [d for d in dirs if d], cache.generation(), started=started)


def _import_lists(cache: PackageCache) -> bool:
    """With pkgcache's method on: the Release files and indexes apt accepted join the cache (and
    the fleet). A fault here is one warning (False); the seed still runs."""
    from . import aptenv
    from .fleet import method_status
    from .lists import import_lists
    from .method import release_key

    try:
        if not method_status().get("active"):
            return True
        apt_pkg = aptenv.apt_pkg_module()
        rep = import_lists(cache, apt_pkg, aptenv.AptPaths.load(apt_pkg), release_key)
        aptenv.record(cache, "lists", rep.as_dict())
        return True
    except HookTimeout:
        raise
    except Exception as exc:  # noqa: BLE001 - never break apt
        _warn(f"apt lists not cached: {_short(exc)}")
        return False
