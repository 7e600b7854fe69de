"""Tests: remote."""
