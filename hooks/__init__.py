"""pkgcache drivers: apt hooks, the pip wrapper, downloads, git mirrors and the CLI."""


def _register_config_keys() -> None:
    """The drivers' own keys in ``performance.cache`` (the core validates only its own)."""
    from cache_core import register_key

    register_key("pip_installer", lambda v: v in ("pip", "uv"), '"pip" or "uv"', "pip")
    register_key("apt_release_max_age_days",
                 lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
                 "a number of days >= 0", 7)
    register_key("apt_front_only", lambda v: isinstance(v, bool), "true or false", False)


_register_config_keys()
