"""Tests: pip."""
