"""Fleet worlds of real machines (issue 21)."""
