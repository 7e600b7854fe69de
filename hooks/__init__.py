"""pkgcache drivers: apt hooks, the pip wrapper, downloads, git mirrors and the CLI."""
