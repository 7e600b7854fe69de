"""The pip driver: offline-first installs and wheelhouses from the pkgcache cache."""
