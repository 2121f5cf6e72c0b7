import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def provider_settings(settings):
    """Loopback allowed (the fake servers), quick backoff; no breaker or cached result left by another test."""
    settings.DWC_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    settings.DWC_PROVIDER_TIMEOUT_SECONDS = 5
    settings.DWC_PROVIDER_MAX_RETRIES = 2
    settings.DWC_PROVIDER_BACKOFF_SECONDS = 0.01
    settings.DWC_PROVIDER_MAX_RETRY_AFTER_SECONDS = 60
    settings.DWC_PROVIDER_BREAKER_FAILURES = 5
    settings.DWC_PROVIDER_BREAKER_SECONDS = 60
    cache.clear()
    yield
    cache.clear()
