"""Configuration: ``performance.cache.{enabled, directory, max_size_gb, remote, metrics_textfile}``.

Lookup order: --config PATH, $PKGCACHE_CONFIG, /etc/vps-configurator/config.yaml,
~/.vps-configurator/config.yaml. $PKGCACHE_DIR overrides the directory, PKGCACHE_DISABLE=1
disables the cache. Other top-level sections belong to the wider vps-configurator config and are
ignored; unknown keys inside ``performance.cache`` are errors.

The core knows its own keys (enabled, directory, max_size_gb, remote, metrics_textfile). A driver adds its own
with ``register_key`` when it is imported (e.g. the pip driver's ``pip_installer``) and reads
the value with ``CacheConfig.option``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

ROOT_CACHE_DIR = "/var/cache/vps-configurator"
DEFAULT_MAX_SIZE_GB = 5.0
GB = 1024**3


def default_cache_dir() -> str:
    """/var/cache/vps-configurator for root, ~/.vps-configurator/cache otherwise."""
    if os.geteuid() == 0:
        return ROOT_CACHE_DIR
    return str(Path.home() / ".vps-configurator" / "cache")


def is_system_dir_for_user(directory: str) -> bool:
    """True for a non-root user whose configured cache directory belongs to root (or is missing
    in a place the user cannot write): the user reads it and writes default_cache_dir()."""
    if os.geteuid() == 0:
        return False
    path = Path(os.path.abspath(directory))
    try:
        return path.stat().st_uid == 0
    except FileNotFoundError:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        return not os.access(parent, os.W_OK)
    except OSError:
        return True


def user_config_path() -> str:
    """The per-user config file location."""
    return str(Path.home() / ".vps-configurator" / "config.yaml")


@dataclass
class CacheConfig:
    """The effective cache settings and where they came from."""

    enabled: bool = True
    directory: str = field(default_factory=default_cache_dir)
    max_size_gb: float = DEFAULT_MAX_SIZE_GB
    source: str | None = None
    explicit_dir: bool = False      # set by --cache-dir / $PKGCACHE_DIR (not the config file)
    remote: list[Any] = field(default_factory=list)  # RemoteSpec (cache_core.storage.remote)
    options: dict[str, object] = field(default_factory=dict)  # drivers' keys, as given
    metrics_textfile: str | None = None  # node_exporter textfile, rewritten by `pkgcache gc`

    @property
    def max_size_bytes(self) -> int:
        """The size cap in bytes (0 = unlimited)."""
        return int(self.max_size_gb * GB)

    def option(self, name: str) -> object:
        """A driver key's value from the config file, else its registered default."""
        if name in self.options:
            return self.options[name]
        spec = _DRIVER_KEYS.get(name)
        return spec[2] if spec is not None else None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# key -> (check, what is expected)
_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "enabled": (lambda v: isinstance(v, bool), "true or false"),
    "directory": (lambda v: isinstance(v, str) and v.strip() != "" and "\0" not in v,
                  "a directory path (string)"),
    "max_size_gb": (lambda v: _is_number(v) and 0 <= v < 1e6, "a number of GiB >= 0 (0 = no cap)"),
    "remote": (lambda v: True, "a list of remotes"),  # checked by storage.remote.config
    "metrics_textfile": (lambda v: v is None or (isinstance(v, str) and v.startswith("/")
                                                 and v.endswith(".prom") and "\0" not in v),
                         "an absolute path ending in .prom (node_exporter's textfile directory)"),
}
# Keys drivers registered: name -> (check, what is expected, default).
_DRIVER_KEYS: dict[str, tuple[Callable[[object], bool], str, object]] = {}


def register_key(name: str, check: Callable[[object], bool], expected: str, default: object) -> None:
    """Let ``performance.cache.<name>`` through validation for a driver (idempotent).

    check(value) says whether a value is acceptable; expected is shown when it is not.
    """
    if name in _FIELDS:
        raise ValueError(f"{name} is a core config key")
    _DRIVER_KEYS[name] = (check, expected, default)


def _take_pending() -> None:
    """Register the keys drivers registered before this module loaded (cache_core queues them)."""
    from cache_core import take_pending_keys

    for name, check, expected, default in take_pending_keys():
        register_key(name, check, expected, default)  # type: ignore[arg-type]


_take_pending()


MAX_ALIASES = 50       # YAML aliases in one config (a pkgcache config needs none)
MAX_DEPTH = 40         # nesting of mappings/sequences


class _TooComplex(Exception):
    """A config with alias bombs or absurd nesting."""


def _bounded_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses alias bombs and deep nesting before building anything."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._aliases = 0
            self._depth = 0

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise _TooComplex(f"more than {MAX_ALIASES} YAML aliases; refusing it")
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _TooComplex(f"nested deeper than {MAX_DEPTH} levels; refusing it")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return Loader


_LOADER: list[type] = []


def _loader() -> type:
    """The bounded loader class, built once (PyYAML is imported only when a config is read)."""
    if not _LOADER:
        _LOADER.append(_bounded_loader())
    return _LOADER[0]


def _short_repr(value: object) -> str:
    """A bounded repr for error messages: never formats a huge (alias-expanded) value."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother = 2, 4, 4, 60, 60
    return r.repr(value)[:120]


def _set_key(cfg: CacheConfig, key: str, value: object, source: str, lenient: bool) -> None:
    """Validate one key of performance.cache and set it on cfg (ConfigError if unusable)."""
    if key in _FIELDS:
        check, expected = _FIELDS[key]
    elif key in _DRIVER_KEYS:
        check, expected, _ = _DRIVER_KEYS[key]
    elif lenient:  # a helper that loads no driver: keep the value, unchecked
        cfg.options[key] = value
        return
    else:
        known = ", ".join([*_FIELDS, *_DRIVER_KEYS])
        raise ConfigError(f"{source}: performance.cache.{key}: unknown key (expected one of {known})")
    if not check(value):
        raise ConfigError(f"{source}: performance.cache.{key}: expected {expected}, "
                          f"got {_short_repr(value)}")
    if key in _DRIVER_KEYS:
        cfg.options[key] = value
    elif key == "remote":  # the remote tier validates its own section
        from .storage.remote.config import parse_remotes

        setattr(cfg, key, parse_remotes(value, source))
    else:
        setattr(cfg, key, float(value) if key == "max_size_gb" else value)  # type: ignore[arg-type]


def parse_config(text: str, source: str, *, lenient: bool = False) -> CacheConfig:
    """Parse YAML text into a CacheConfig; raise ConfigError naming file, key and expectation.

    lenient: keep keys no driver registered in this process instead of refusing them (for the
    core's own helpers, e.g. the remote uploader, which read only the core's keys).
    """
    import yaml

    try:
        data = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None
    except _TooComplex as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a pkgcache config") from None
    cfg = CacheConfig(source=source)
    if data is None:
        return cfg
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    perf = data.get("performance")
    if perf is None:
        return cfg
    if not isinstance(perf, dict):
        raise ConfigError(f"{source}: performance: expected a mapping")
    section = perf.get("cache")
    if section is None:
        return cfg
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: performance.cache: expected a mapping")
    for key, value in section.items():
        _set_key(cfg, str(key), value, source, lenient)
    cfg.directory = os.path.expanduser(cfg.directory)
    if not os.path.isabs(cfg.directory):
        raise ConfigError(f"{source}: performance.cache.directory: expected an absolute path, "
                          f"got {cfg.directory!r}")
    return cfg


def config_paths() -> list[str]:
    """The files the lookup order reads, or would read if they appeared ($PKGCACHE_CONFIG, else
    the system and the user file): what a memo of an answer that depends on the config stamps
    (with the file actually used, CacheConfig.source)."""
    from .stamps import config_candidates  # one home of the lookup order

    return config_candidates()


def find_config(explicit: str | None = None) -> str | None:
    """The config file to use, by the documented lookup order, or None."""
    if explicit:
        return explicit
    from .stamps import lookup_config  # one home: the stdlib-only readers use it too

    return lookup_config()


def _check_secrets(cfg: CacheConfig, source: str, st: os.stat_result) -> None:
    """Inline remote secrets only in a file of ours that nobody else can read (exit 3 else)."""
    if not cfg.remote:
        return
    why = None
    if st.st_uid != os.geteuid():
        why = f"owned by uid {st.st_uid}, not by the user running pkgcache"
    elif st.st_mode & 0o044:
        why = f"other users can read (mode {st.st_mode & 0o777:o})"
    if why is not None:
        from .storage.remote.config import refuse_inline_secrets

        refuse_inline_secrets(cfg.remote, source, why)


def load_config(path: str | None = None, cache_dir: str | None = None, *,
                lenient: bool = False, secret_files: bool = False) -> CacheConfig:
    """Load the effective config; explicit or $PKGCACHE_CONFIG files must exist.

    secret_files: also refuse a remote's token_file/password_file/credentials_file that is
    missing (for root: unreadable) - for commands; hooks leave it to that remote (skipped)."""
    source = find_config(path)
    if source is None:
        cfg = CacheConfig()
    else:
        try:
            with open(source, encoding="utf-8") as fh:
                text = fh.read(1 << 20)
                st = os.fstat(fh.fileno())
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read config: {getattr(exc, 'strerror', exc)}") from None
        cfg = parse_config(text, source, lenient=lenient)
        _check_secrets(cfg, source, st)
        if secret_files and cfg.remote:
            from .storage.remote.config import check_secret_files

            check_secret_files(cfg.remote, source)
    env_dir = os.environ.get("PKGCACHE_DIR")
    if cache_dir or env_dir:
        cfg.directory = os.path.abspath(os.path.expanduser(cache_dir or env_dir or ""))
        cfg.explicit_dir = True
    if os.environ.get("PKGCACHE_DISABLE", "").strip().lower() in ("1", "true", "yes", "on"):
        cfg.enabled = False
    return cfg
