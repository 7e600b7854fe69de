"""The pkgcache command line: parser, lazy command registry, output and exit mapping."""
