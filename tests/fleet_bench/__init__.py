"""Unit and lab tests of the fleet benchmark (bench/scenarios/fleet.py, bench/lib/netns.py)."""
