"""Tests: git."""
