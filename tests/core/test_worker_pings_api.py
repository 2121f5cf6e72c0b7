import pytest

from core.services import MAX_DELAY_MS
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_ping_is_accepted_queued_and_private_to_its_sender(user_api):
    created = user_api.post("/api/v3/system/worker-pings", {"delay_ms": 10}, format="json")
    assert created.status_code == 202
    ping = created.json()
    assert (ping["status"], ping["delay_ms"], ping["round_trip_ms"]) == ("queued", 10, None)
    assert user_api.get(f"/api/v3/system/worker-pings/{ping['id']}").json()["id"] == ping["id"]
    assert client_for(UserFactory()).get(f"/api/v3/system/worker-pings/{ping['id']}").status_code == 404


def test_ping_delay_is_bounded(user_api):
    answer = user_api.post("/api/v3/system/worker-pings", {"delay_ms": MAX_DELAY_MS + 1}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"delay_ms": [f"Ensure this value is less than or equal to {MAX_DELAY_MS}."]}


def test_ping_needs_authentication(api):
    assert api.post("/api/v3/system/worker-pings", {}, format="json").status_code == 401
