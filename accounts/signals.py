"""Signals of the accounts app, for the apps above it that count what happens here (analytics)."""

from django.dispatch import Signal

# Sent when an API key authenticates a request, at most once a minute per key (when its last use is
# written): `key` (an ApiKey, its user loaded), `at` (when).
api_key_used = Signal()
