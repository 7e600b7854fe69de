"""The apt method's front, spoken to in-process (no root, no network)."""
