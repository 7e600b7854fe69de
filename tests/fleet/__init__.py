"""Tests: fleet."""
