"""Tests of cache_core: the store, its safety rules, faults, concurrency and maintenance."""
