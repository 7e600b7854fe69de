"""`pkgcache remote`: the fleet tier's command line (status, push, pull)."""
