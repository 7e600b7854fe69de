"""Tests: apt."""
