"""Upgrades and downgrades of the .deb between releases."""
