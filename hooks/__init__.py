"""pkgcache drivers: apt hooks, the pip wrapper, downloads, git mirrors and the CLI."""


def _register_config_keys() -> None:
    """The drivers' own keys in ``performance.cache`` (the core validates only its own)."""
    from cache_core import register_key

    register_key("pip_installer", lambda v: v in ("pip", "uv"), '"pip" or "uv"', "pip")


_register_config_keys()
