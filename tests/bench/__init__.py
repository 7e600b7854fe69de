"""Smoke runs of the benches (bench/run.py and its scenarios)."""
