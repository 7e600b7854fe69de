"""pkgcache test suite (a package: helpers import as tests.support.…)."""
