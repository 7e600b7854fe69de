"""`pkgcache apt enable/disable/status`: install or remove the apt.conf.d snippet, report state."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hooks.common.paths import PKGCACHE_BIN

from .aptenv import HOOK_MARKER, SNIPPET_NAME

if TYPE_CHECKING:
    from cache_core import PackageCache

DATA_SNIPPET = Path(__file__).resolve().parent / "data" / SNIPPET_NAME
METHOD_SNIPPET = "05pkgcache-method"
DEB_METHODS = "/usr/lib/pkgcache/methods"  # the .deb's method (its postinst selects it)
LOCAL_METHODS = "/usr/local/lib/pkgcache/methods"  # `apt enable` without the .deb
METHOD_MARK = "# written by `pkgcache apt enable`: hooks.apt.method"
_METHOD_LINE = re.compile(r'^Dir::Bin::Methods::https? "(/[A-Za-z0-9_./+-]+)";$', re.M)
HOOK_NAMES = ("DPkg::Pre-Install-Pkgs", "APT::Install::Pre-Invoke",
              "APT::Update::Post-Invoke-Success")
_SAFE_COMMAND = re.compile(r"\A/[A-Za-z0-9_./+-]+\Z")


def snippet_text(command: str = PKGCACHE_BIN) -> str:
    """The shipped snippet, with the pkgcache command path substituted if asked."""
    if not _SAFE_COMMAND.match(command) or "/../" in command:
        raise ValueError(f"command must be a plain absolute path, got {command!r}")
    text = DATA_SNIPPET.read_text()
    return text if command == PKGCACHE_BIN else text.replace(PKGCACHE_BIN, command)


def running_command(argv0: str | None = None) -> str:
    """The absolute path of the pkgcache executable running now (what the hooks should run).

    Raises ValueError when there is no stable one (e.g. `python -m hooks.cli`)."""
    import sys

    raw = sys.argv[0] if argv0 is None else argv0
    path = os.path.abspath(raw) if raw and os.sep in raw else (shutil_which(raw) or "")
    if not path or path.endswith(".py") or not os.path.isfile(path) \
            or not os.access(path, os.X_OK):
        raise ValueError(f"cannot tell which pkgcache executable is running ({raw!r}); "
                         "pass --command PATH")
    if not _SAFE_COMMAND.match(path):
        raise ValueError(f"pkgcache runs from {path!r}, which the snippet cannot quote; "
                         "pass --command PATH")
    return path


def shutil_which(name: str) -> str | None:
    """shutil.which(name), None for an empty name."""
    import shutil

    return shutil.which(name) if name else None


def snippet_command(values: list[str]) -> str | None:
    """The pkgcache executable named by a snippet entry (`... PATH apt hook ACTION ...`)."""
    for value in values:
        if HOOK_MARKER not in value:
            continue
        m = re.search(r"(/[A-Za-z0-9_./+-]+) apt hook ", value)
        if m:
            return m.group(1)
    return None


def parts_dir() -> Path:
    """apt's conf.d directory (Dir::Etc::parts, so APT_CONFIG is honoured)."""
    try:
        from .aptenv import apt_pkg_module

        return Path(apt_pkg_module().config.find_dir("Dir::Etc::parts"))
    except ImportError:
        return Path("/etc/apt/apt.conf.d")


def enable(command: str | None = None) -> Path:
    """Write the snippet atomically into apt's conf.d; returns its path. command: the pkgcache
    executable the hooks run (default: the one running now)."""
    command = command or running_command()
    target = parts_dir() / SNIPPET_NAME
    from cache_core import atomic_write

    atomic_write(target, snippet_text(command), 0o644)
    return target


def enable_method(methods: str | None = None) -> Path | None:
    """Without the .deb: install the download method in methods (an executable that runs this
    pkgcache's code with this Python, the real method if that is gone) and the
    ``Dir::Bin::Methods`` snippet; the snippet's path, or None when the .deb's method is there
    (its postinst selects it). Raises ValueError (one line) when it cannot."""
    import sys

    from cache_core import atomic_write

    if methods is None and os.path.isfile(os.path.join(DEB_METHODS, "http")):
        return None
    mdir = Path(methods or LOCAL_METHODS)
    code = str(Path(__file__).resolve().parents[2])
    for what, path in (("the method directory", str(mdir)), ("Python", sys.executable),
                       ("pkgcache's code", code)):
        if not _SAFE_COMMAND.match(path) or "/../" in path:
            raise ValueError(f"cannot install the apt method: {what} ({path!r}) is not a plain "
                             "absolute path")
    script = (f"#!/bin/sh\n{METHOD_MARK}\nname=${{0##*/}}\n[ \"$name\" = https ] || name=http\n"
              f"if [ -x {sys.executable} ] && [ -f {code}/hooks/apt/method.py ]; then\n"
              # -I -S: the front needs only the standard library (nothing from the
              # environment, the working directory or site-packages on its path)
              f"\tcd / && exec {sys.executable} -I -S {code}/hooks/apt/method.py \"$name\"\n"
              "fi\nexec /usr/lib/apt/methods/$name\n")
    mdir.mkdir(parents=True, exist_ok=True)
    for name in ("http", "https"):
        atomic_write(mdir / name, script, 0o755)
    text = (DATA_SNIPPET.parent / METHOD_SNIPPET).read_text().replace(DEB_METHODS, str(mdir))
    target = parts_dir() / METHOD_SNIPPET
    atomic_write(target, f"{METHOD_MARK.replace('#', '//', 1)}\n{text}", 0o644)
    return target


def disable_method() -> list[Path]:
    """Remove what enable_method wrote (the snippet and the methods it names, each only if it
    carries enable's mark; the .deb's are left to the package); the paths removed."""
    target = parts_dir() / METHOD_SNIPPET
    try:
        text = target.read_text()
    except OSError:
        return []
    if not text.startswith(METHOD_MARK.replace("#", "//", 1)):
        return []
    gone = []
    for path in sorted({Path(p) for p in _METHOD_LINE.findall(text)}):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                ours = METHOD_MARK in fh.read(4096)
        except OSError:
            continue
        if ours:
            path.unlink()
            gone.append(path)
    for d in {p.parent for p in gone}:
        try:
            d.rmdir()  # enable made it; anything else in it keeps it
            gone.append(d)
            if str(d) == LOCAL_METHODS:
                d.parent.rmdir()
                gone.append(d.parent)
        except OSError:
            pass
    target.unlink()
    return [target, *gone]


def disable() -> tuple[Path, bool]:
    """Remove the snippet; (path, whether it was there)."""
    target = parts_dir() / SNIPPET_NAME
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target, False
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(str(target))
    os.unlink(target)
    return target, True


def active_hooks() -> dict[str, bool]:
    """Which of our hooks apt's current configuration runs."""
    from .aptenv import apt_pkg_module

    cfg = apt_pkg_module().config
    out = {}
    for name in HOOK_NAMES:
        out[name] = any(HOOK_MARKER in v for v in cfg.value_list(name))
    return out


def hook_command() -> str | None:
    """The pkgcache executable apt's configured hooks run."""
    from .aptenv import apt_pkg_module

    cfg = apt_pkg_module().config
    return snippet_command([v for name in HOOK_NAMES for v in cfg.value_list(name)])


def status(cache: PackageCache) -> dict[str, Any]:
    """Everything `pkgcache apt status` reports."""
    from .aptenv import read_state
    from .naming import KEY_PREFIX

    target = parts_dir() / SNIPPET_NAME
    info: dict[str, Any] = {"snippet": str(target), "snippet_installed": target.is_file()}
    try:
        info["hooks"] = active_hooks()
        info["command"] = hook_command()
        info["python_apt"] = True
    except ImportError:
        info["hooks"] = {}
        info["command"] = None
        info["python_apt"] = False
    cmd = info["command"]
    info["command_ok"] = bool(cmd) and os.path.isfile(cmd) and os.access(cmd, os.X_OK)
    info["active"] = bool(info["hooks"]) and all(info["hooks"].values()) and info["command_ok"]
    entries = cache.keys(KEY_PREFIX)
    info["cached_debs"] = len(entries)
    info["cached_bytes"] = sum(e.size for e in entries)
    from .fastseed import fold_hits

    fold_hits(cache)  # what the fast hooks did since the last full one
    state = read_state(cache, "status.json")
    info["last_harvest"] = state.get("harvest")
    info["last_seed"] = state.get("seed")
    from .fleet import method_status  # the download method and its last run

    info["method"] = method_status()
    info["last_method_run"] = state.get("method")
    return info
