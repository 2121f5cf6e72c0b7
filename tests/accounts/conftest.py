import uuid

import pytest
from django.core.cache import cache
from django.test import RequestFactory

from accounts.api.views import TokenObtainView
from accounts.throttling import AuthRateThrottle
from tests.mode_settings import settings_of
from workflows.models import WebhookTrigger
from workflows.services.webhooks import rate_limited


@pytest.fixture
def embedded_caches(settings, tmp_path):
    """The embedded mode's caches (memory of this process) in place of the test settings' Redis."""
    settings.CACHES = settings_of("config.settings.base", ["CACHES"], tmp_path)["CACHES"]


def other_features_write_keys(count: int) -> None:
    """What other users and features write meanwhile, `count` keys of each kind: cache entries of
    their own, webhook rate counts, and the login throttle's counts of other addresses."""
    for n in range(count):
        cache.set(f"unrelated:{n}", n, 600)
    for _ in range(count):
        rate_limited(WebhookTrigger(id=uuid.uuid4()))
    requests, throttle, view = RequestFactory(), AuthRateThrottle(), TokenObtainView()
    for n in range(count):
        address = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
        assert throttle.allow_request(requests.post("/api/v3/auth/token", REMOTE_ADDR=address), view)
