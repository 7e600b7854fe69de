"""apt driver: harvest .debs through apt's own hooks and seed them back, verified."""
