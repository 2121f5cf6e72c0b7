"""Admin for schedules (being built)."""
