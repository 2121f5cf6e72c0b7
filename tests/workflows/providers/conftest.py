import pytest
from django.core.cache import cache
from pytest_httpserver import HTTPServer


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


@pytest.fixture
def slow_server():
    """A threaded server of its own for answers that wait, so the shared one is not left busy."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()
