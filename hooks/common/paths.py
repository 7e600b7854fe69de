"""Paths the drivers share."""

# The pkgcache executable the Debian package installs (apt hooks run it; the one place it is named).
PKGCACHE_BIN = "/usr/bin/pkgcache"
