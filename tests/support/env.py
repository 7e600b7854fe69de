"""Environments for child processes: this checkout importable, nothing from the machine's proxy,
pip or pkgcache configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tests.support import REPO

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY")
PIP_VARS = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT",
            "PIP_REQUIRE_HASHES", "PIP_NO_INDEX", "VIRTUAL_ENV", "UV_INDEX_URL",
            "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "PIP_CACHE_DIR", "UV_CACHE_DIR")
"""The machine's pip/uv settings a test switches off."""
PIP_SET = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1", "PIP_DEFAULT_TIMEOUT": "5",
           "PIP_RETRIES": "0", "UV_NO_CONFIG": "1"}
"""What a test sets instead: no config file, no prompts, fail fast."""


def child_env(base: Mapping[str, str] | None = None,
              extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """base (default: os.environ) + extra, with the checkout on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def clean_env(tmp: Path, *, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """No proxies, no PKGCACHE_* (nor the prefixes in drop) from outside, an empty config file
    and the state dir in tmp, the checkout importable; extra on top."""
    prefixes = ("PKGCACHE_", *drop)
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS
           and not k.startswith(prefixes)}
    cfg = tmp / "config.yaml"
    if not cfg.exists():
        cfg.write_text("")
    env["PKGCACHE_CONFIG"] = str(cfg)
    # trust memos in the test's own state dir, never the host's /var/lib/pkgcache
    env["PKGCACHE_STATE_DIR"] = str(tmp / "state")
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def pip_env() -> dict[str, str]:
    """This environment with the machine's pip/uv configuration switched off."""
    env = {k: v for k, v in os.environ.items() if k not in PIP_VARS}
    env.update(PIP_SET, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env
