"""`pkgcache git`: verified bare mirrors of git repositories in the cache."""
