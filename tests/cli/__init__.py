"""Tests of the pkgcache command line itself: start-up and the one home of each concern."""
