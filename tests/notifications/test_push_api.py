"""The push subscription API: each user subscribes and unsubscribes their own browsers, someone else's
subscription does not exist for them, endpoints must be https and pass the outbound rules, every
change is audited; and the key browsers subscribe with."""

import pytest

from audit.models import AuditEvent
from notifications.channels.web_push import vapid_keys_generate
from notifications.models import PushSubscription
from tests.conftest import client_for
from tests.notifications.browser import Browser

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = "/api/v3/notifications/push-subscriptions"
PUSH_KEY = "/api/v3/notifications/push-key"
# Loopback is opened by the notifications conftest (DWC_OUTBOUND_ALLOWLIST); nothing is sent to it here.
ENDPOINT = "https://127.0.0.1:8443/push/send/abc"


def subscription_json(browser: Browser, endpoint: str = ENDPOINT) -> dict:
    """What the browser's PushSubscription.toJSON() gives."""
    return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": browser.p256dh, "auth": browser.auth_text}}


def test_a_user_subscribes_re_subscribes_lists_and_unsubscribes_their_browser(team):
    client = client_for(team["editor"])
    browser = Browser()

    created = client.post(SUBSCRIPTIONS, subscription_json(browser), format="json", HTTP_USER_AGENT="Firefox/140")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["endpoint"], body["user_agent"], body["last_used_at"]) == (ENDPOINT, "Firefox/140", None)

    renewed = Browser()
    again = client.post(SUBSCRIPTIONS, subscription_json(renewed), format="json")
    assert (again.status_code, again.json()["id"]) == (200, body["id"])
    stored = PushSubscription.objects.get()
    assert (stored.p256dh, stored.user) == (renewed.p256dh, team["editor"])

    listed = client.get(SUBSCRIPTIONS).json()["results"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert client.delete(f"{SUBSCRIPTIONS}/{body['id']}").status_code == 204
    assert not PushSubscription.objects.exists()

    events = AuditEvent.objects.filter(target_id=body["id"]).order_by("id")
    assert [(event.action, event.actor_label) for event in events] == [
        ("push_subscription.created", team["editor"].email),
        ("push_subscription.updated", team["editor"].email),
        ("push_subscription.deleted", team["editor"].email),
    ]
    # The endpoint is a capability URL: the trail names the push service's host only.
    assert events[0].changes == {"push_service": [None, "127.0.0.1"]}


def test_someone_elses_subscription_is_a_404_and_not_listed(team):
    theirs = Browser().subscribe(team["admin"], ENDPOINT)
    client = client_for(team["stranger"])

    assert client.get(SUBSCRIPTIONS).json()["results"] == []
    gone = client.delete(f"{SUBSCRIPTIONS}/{theirs.pk}")
    unknown = client.delete(f"{SUBSCRIPTIONS}/00000000-0000-4000-8000-000000000000")
    assert (gone.status_code, unknown.status_code) == (404, 404)
    assert gone.json() == unknown.json()
    # A workspace colleague, even an admin of it, fares no better.
    assert client_for(team["viewer"]).delete(f"{SUBSCRIPTIONS}/{theirs.pk}").status_code == 404
    assert PushSubscription.objects.filter(pk=theirs.pk).exists()


def test_a_browser_that_changed_hands_is_the_new_users(team):
    browser = Browser()
    browser.subscribe(team["admin"], ENDPOINT)

    answer = client_for(team["viewer"]).post(SUBSCRIPTIONS, subscription_json(browser), format="json")

    assert answer.status_code == 200
    assert PushSubscription.objects.get().user == team["viewer"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "http://127.0.0.1:8443/push"}, "endpoint"),
        ({"endpoint": "https://user:pw@127.0.0.1/push"}, "endpoint"),
        ({"endpoint": "not a url"}, "endpoint"),
        ({"keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh"),
        ({"keys": {"p256dh": "B" + "A" * 86, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys.p256dh"),  # not on the curve
        ({"keys": "nope"}, "keys"),
        ({"user": "someone"}, "user"),
    ],
)
def test_a_bad_subscription_is_a_400_naming_the_field(team, change, field):
    browser = Browser()
    body = {**subscription_json(browser), **change}

    answer = client_for(team["viewer"]).post(SUBSCRIPTIONS, body, format="json")

    assert answer.status_code == 400, answer.content
    assert field in answer.json()["errors"]
    assert not PushSubscription.objects.exists()


def test_a_short_auth_secret_is_refused(team):
    body = subscription_json(Browser())
    body["keys"]["auth"] = "AAAA"

    answer = client_for(team["viewer"]).post(SUBSCRIPTIONS, body, format="json")

    assert (answer.status_code, list(answer.json()["errors"])) == (400, ["keys.auth"])


def test_an_endpoint_on_a_refused_address_is_a_400(team, settings):
    settings.DWC_OUTBOUND_ALLOWLIST = []

    answer = client_for(team["viewer"]).post(SUBSCRIPTIONS, subscription_json(Browser()), format="json")

    assert answer.status_code == 400
    assert "not a public address" in answer.json()["errors"]["endpoint"][0]


def test_the_push_key_says_whether_push_is_configured(team, settings, user_api):
    settings.DWC_WEBPUSH_VAPID_PRIVATE_KEY = ""
    assert user_api.get(PUSH_KEY).json() == {"public_key": "", "configured": False}

    private, public = vapid_keys_generate()
    settings.DWC_WEBPUSH_VAPID_PRIVATE_KEY = private
    settings.DWC_WEBPUSH_VAPID_PUBLIC_KEY = ""
    assert user_api.get(PUSH_KEY).json() == {"public_key": public, "configured": True}

    settings.DWC_WEBPUSH_VAPID_PRIVATE_KEY = "not a key"
    assert user_api.get(PUSH_KEY).json() == {"public_key": "", "configured": False}


def test_the_push_endpoints_need_a_login(api):
    assert api.get(PUSH_KEY).status_code == 401
    assert api.get(SUBSCRIPTIONS).status_code == 401
    assert api.post(SUBSCRIPTIONS, subscription_json(Browser()), format="json").status_code == 401


def test_the_service_worker_is_served_under_the_dashboard_for_its_scope(client):
    answer = client.get("/dashboard/notifications-sw.js")

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/javascript")
    assert answer["Service-Worker-Allowed"] == "/dashboard/"
    script = b"".join(answer.streaming_content) if answer.streaming else answer.content
    assert b'addEventListener("push"' in script
    assert b'addEventListener("notificationclick"' in script


@pytest.mark.parametrize(
    ("config", "status", "field"),
    [
        ({"roles": ["boss"]}, 400, "config.roles.0"),
        ({"url": "https://x"}, 400, "config"),
        ({"roles": ["admin"]}, 201, ""),
    ],
)
def test_web_push_channels_are_checked_when_created(team, config, status, field):
    body = {"workspace": str(team["workspace"].pk), "name": "push", "kind": "web_push", "config": config}

    answer = client_for(team["admin"]).post("/api/v3/notifications/channels", body, format="json")

    assert answer.status_code == status, answer.content
    if field:
        assert field in answer.json()["errors"]
