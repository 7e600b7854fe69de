"""Storage tiers behind PackageCache. ``remote`` holds the fleet tier (a shared content store)."""
