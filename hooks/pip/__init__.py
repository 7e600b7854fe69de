"""The pip driver: offline-first installs and wheelhouses from the pkgcache cache."""

from .install import install, wheelhouse

__all__ = ["install", "wheelhouse"]
