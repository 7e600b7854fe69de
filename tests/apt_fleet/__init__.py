"""Tests: apt_fleet."""
