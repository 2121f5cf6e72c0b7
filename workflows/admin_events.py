"""Admin for event triggers (being built)."""
