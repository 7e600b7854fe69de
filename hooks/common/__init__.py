"""Shared by the drivers: the one HTTP client and subprocess helpers."""
