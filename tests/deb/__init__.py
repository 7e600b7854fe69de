"""Tests: deb."""
