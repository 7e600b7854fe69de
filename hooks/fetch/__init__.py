"""`pkgcache fetch`: a curl -fsSL drop-in through the cache."""
