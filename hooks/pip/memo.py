"""Writing the warm path's memo (hooks/pip/fast.py reads and replays it) after a run the driver
served from the cache alone: the command, the offered files and the stamp of every input."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from cache_core import PackageCache, atomic_write, config_paths, memo_path

from . import fast, options
from .fast import FORMAT, PLACEHOLDER, Key, stamp
from .options import PipOptions
from .store import WheelStore
from .target import Target, _probe_key
from .trust import file_name

_CODE = ("fast", "install", "memo", "options", "runner", "store", "target", "trust")


def wanted() -> bool:
    """True if this run may leave a memo (it came through the command line's fast path)."""
    return fast.current() is not None


def cache_state(cache: PackageCache) -> dict[str, str]:
    """What a memo depends on that a run itself may change: the cache's generation token and
    this machine's trust record for the cache (their stamps, taken before and after a run)."""
    gen = cache.generation()
    trust = memo_path(file_name(cache.root))
    return {"gen": gen[0] if gen else "", "token": gen[1] if gen else "",
            "trust": str(trust) if trust else "", "trust_stamp": stamp(str(trust)) if trust else "-"}


def remember(cache: PackageCache, store: WheelStore, target: Target, opts: PipOptions,
             served: dict[str, Any], before: dict[str, str]) -> bool:
    """Write the memo of a run the driver served (if it may be replayed); before: cache_state
    when the run started (a change during the run means no memo)."""
    key = fast.current()
    try:
        if key is None or key.python != target.python or cache_state(cache) != before:
            return False
        try:
            os.mkdir(os.path.join(key.state, "pip-fast"), 0o700)
        except FileExistsError:
            pass
        if served.get("page_text") is not None:  # (first: the memo stamps it)
            atomic_write(key.path(".html"), served["page_text"], 0o600)
        rows = _rows(cache, store, target, opts, key, served)
        if rows is None or any("\t" in f or "\n" in f for r in rows for f in r):
            return False
        text = "\n".join("\t".join(r) for r in [[FORMAT, key.digest], *rows, ["end"]]) + "\n"
        atomic_write(key.path(), text, 0o600)
    except Exception:  # noqa: BLE001 - a memo is an optimisation: no memo, no harm
        return False
    return True


def _rows(cache: PackageCache, store: WheelStore, target: Target, opts: PipOptions, key: Key,
          served: dict[str, Any]) -> list[list[str]] | None:
    """The memo's lines for a run driver served, None if it cannot be replayed safely."""
    if cache.remote is not None or cache.system is not None or cache.read_only:
        return None
    args = opts.pip_args
    if any(options.local_path(v) is not None for _, v in options.source_list(args)):
        return None  # a local location's provenance depends on its owner, not stamped here
    files = _input_files(args)
    state = cache_state(cache)
    if files is None or not state["token"] or not state["trust"] or state["trust_stamp"] == "-":
        return None
    rows: list[list[str]] = [["created", repr(time.time())], ["mode", served["mode"]],
                             ["installer", served["installer"]]]
    if served["mode"] == "unreachable":
        rows += [["index", served["index"]], ["host", served["host"], str(served["port"])]]
    rows += [["stamp", p, stamp(p.replace("{venv}", key.venv, 1))] if p.startswith("{venv}/")
             else ["stamp", os.path.abspath(p), stamp(p)]
             for p in [*files, *_config_files(cache, store, target)]]
    rows.append(["stamp", state["trust"], state["trust_stamp"]])
    rows.append(["token", state["gen"], state["token"]])
    tools = _tool_rows(target, key, served)
    offered = _offered_rows(store, served)
    if tools is None or offered is None:
        return None
    rows += tools + offered
    cmd = list(served["cmd"])
    for i in served["python_at"]:
        cmd[i] = PLACEHOLDER
    if served.get("page") is not None:
        cmd = [key.path(".html") if a == str(served["page"]) else a for a in cmd]
        rows.append(["stamp", key.path(".html"), stamp(key.path(".html"))])
    rows.append(["cmd", *cmd])
    env = served["env"]
    rows.append(["env", *[x for k in ("PIP_CACHE_DIR", "UV_CACHE_DIR") if k in env
                          for x in (k, env[k])]])
    rows.append(["envdefault", "PIP_DISABLE_PIP_VERSION_CHECK", "1"])
    return rows


def _config_files(cache: PackageCache, store: WheelStore, target: Target) -> list[str]:
    """The files (present or not) the driver's answer depends on beyond the requirements:
    pkgcache's config, pip's config files (index URLs), pkgcache's code, the target's probe."""
    import packaging

    here = os.path.dirname(os.path.abspath(__file__))
    out = [cache.config.source if cache.config is not None else None, *config_paths(),
           *options.pip_config_files("{venv}"),  # (the target venv's: a fresh venv's own)
           packaging.__file__, "/etc/os-release",
           *[os.path.join(here, f"{name}.py") for name in _CODE],
           str(store.subdir("targets") / f"{_probe_key(target.python)}.json")]
    return [p for p in out if p]


def _tool_rows(target: Target, key: Key, served: dict[str, Any]) -> list[list[str]] | None:
    """How the tool was found and run: uv (no ``uv`` module on our path since), our own pip,
    and for the pip backend whether the target has its own."""
    rows: list[list[str]] = []
    uv = served.get("uv")
    if uv:
        rows.append(["stamp", uv, stamp(uv)])
        rows += [["exists", os.path.join(p, "uv"), "0"] for p in sys.path
                 if p and not os.path.exists(os.path.join(p, "uv"))]
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        return None
    rows.append(["exists", list(spec.submodule_search_locations)[0], "1"])
    if served["installer"] == "pip":
        rows += _pip_probes(target, key)
    return rows


def _offered_rows(store: WheelStore, served: dict[str, Any]) -> list[list[str]] | None:
    """Every offered file: its link, the object it names and that object's stamp, which must
    be the one taken at its last full hash; the flat directory (uv) holds exactly those."""
    rows: list[list[str]] = []
    flat = served.get("flat")
    objects = set()
    for c in served["offered"]:
        obj = os.readlink(c.path)
        now = stamp(obj, follow=False)  # before the check: a later change shows in the memo
        if (now == "-" or obj != store.cache.local_path(f"sha256:{c.sha256}")
                or not store.cache.stamp_holds(c.sha256)):
            return None
        objects.add(obj)
        if flat is None:  # (uv reads the flat directory's links below, not these)
            rows.append(["link", str(c.path), obj, now])
    if flat is not None:
        rows.append(["listing", str(flat)])
        for name in sorted(os.listdir(flat)):
            obj = os.readlink(os.path.join(flat, name))
            if obj not in objects:
                return None
            rows.append(["link", os.path.join(str(flat), name), obj, stamp(obj, follow=False)])
    return rows


def _pip_probes(target: Target, key: Key) -> list[list[str]]:
    """What decided how pip runs for the target (its own pip, else ours with --python):
    the directories Target.has_pip looks at, the venv's relative to {venv}."""
    venv = key.venv
    mm = ".".join(target.version.split(".")[:2])
    rows = [["exists", "{venv}/pyvenv.cfg", "1" if os.path.isfile(os.path.join(venv, "pyvenv.cfg"))
             else "0"]]
    site = os.path.join("{venv}", "lib", f"python{mm}", "site-packages", "pip")
    rows.append(["exists", site, "1" if os.path.exists(site.replace("{venv}", venv)) else "0"])
    rows += [["exists", os.path.join(p, "pip"), "1" if os.path.isdir(os.path.join(p, "pip"))
              else "0"] for p in target.path]
    return rows


def _input_files(args: list[str]) -> list[str] | None:
    """Every requirement and constraint file args reads, includes followed (None: one that is
    not a local file, e.g. a URL)."""
    out: list[str] = []
    todo: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--":
            break
        for opt in ("-r", "--requirement", "-c", "--constraint"):
            if arg == opt:
                todo.append(next(it, ""))
            elif arg.startswith(opt + "=") or (len(opt) == 2 and arg.startswith(opt)
                                               and len(arg) > 2 and not arg.startswith("--")):
                todo.append(arg.split("=", 1)[1] if arg.startswith("--") else arg[2:])
    while todo:
        path = todo.pop()
        if "://" in path or not path:
            return None
        path = os.path.abspath(path)
        if path in out:
            continue
        if len(out) > 64:
            return None
        out.append(path)
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(4 << 20).replace("\\\n", " ")
        except (OSError, UnicodeDecodeError):
            continue  # pip fails on it; its stamp ("-" or the file) still keys the memo
        for line in text.splitlines():
            words = line.split("#", 1)[0].strip().replace("=", " ", 1).split()
            if len(words) >= 2 and words[0] in ("-r", "--requirement", "-c", "--constraint"):
                todo.append(os.path.join(os.path.dirname(path), words[1]))
            elif words and words[0].startswith(("-r", "-c")) and len(words[0]) > 2:
                todo.append(os.path.join(os.path.dirname(path), words[0][2:]))
    return out
