"""Helpers shared by the benchmark scenarios and ``bench.run``."""
