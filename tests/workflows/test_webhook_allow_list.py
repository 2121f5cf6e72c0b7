"""An inbound webhook's IP allow-list: set through the API (create, PATCH) and the admin, and enforced
on POST /hooks/<token>/ with the client address the throttles use."""

import pytest
from django.conf import settings
from django.test import Client, override_settings

from accounts.ip_allow_lists import REFUSED
from accounts.models import NOT_A_NETWORK, Membership, User
from audit.models import AuditEvent
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.workflows.helpers import create
from workflows.models import Run, WebhookTrigger

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
ACTIVE = {"name": "Hooked", "status": "active", "nodes": [{"key": "t", "type": "text", "content": "hi"}]}
SENDERS = ["203.0.113.0/24", "2001:db8:77::/48"]


@pytest.fixture
def owner(db) -> User:
    return UserFactory()


@pytest.fixture
def workflow(owner) -> dict:
    return create(client_for(owner), ACTIVE)


@pytest.fixture
def hook(owner, workflow) -> dict:
    answer = client_for(owner).post(
        f"/api/v3/workflows/{workflow['id']}/webhooks", {"allowed_ips": SENDERS}, format="json"
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def deliver(hook: dict, address: str, **headers):
    return Client(REMOTE_ADDR=address, **headers).post(
        f"/hooks/{hook['token']}/", {"n": 1}, content_type="application/json"
    )


def refusals() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="access.ip_refused").order_by("id"))


def test_the_list_is_set_at_creation_canonical_and_shown(owner, workflow):
    answer = client_for(owner).post(
        f"/api/v3/workflows/{workflow['id']}/webhooks",
        {"allowed_ips": ["203.0.113.9/24", "::ffff:192.0.2.5", "2001:DB8:77::1/48"]},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    canonical = ["203.0.113.0/24", "192.0.2.5/32", "2001:db8:77::/48"]
    assert answer.json()["allowed_ips"] == canonical
    hook_id = answer.json()["id"]
    assert client_for(owner).get(f"/api/v3/webhooks/{hook_id}").json()["allowed_ips"] == canonical
    listed = client_for(owner).get(f"/api/v3/workflows/{workflow['id']}/webhooks").json()
    assert listed[0]["allowed_ips"] == canonical
    created = AuditEvent.objects.get(action="webhook.created")
    assert created.changes["allowed_ips"] == [None, canonical]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["203.0.113.0/24", "300.1.1.1"], {"allowed_ips.1": [NOT_A_NETWORK.format(entry="300.1.1.1")]}),
        (["example.com"], {"allowed_ips.0": [NOT_A_NETWORK.format(entry="example.com")]}),
        ("203.0.113.0/24", None),
        ([7], None),
    ],
)
def test_a_bad_list_is_a_400_naming_the_field(owner, workflow, value, expected):
    api = client_for(owner)
    answer = api.post(f"/api/v3/workflows/{workflow['id']}/webhooks", {"allowed_ips": value}, format="json")
    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == PROBLEM
    errors = answer.json()["errors"]
    assert all(field.startswith("allowed_ips") for field in errors), errors
    if expected:
        assert errors == expected
    assert not WebhookTrigger.objects.exists()


def test_patch_changes_the_list_audited_and_checks_it(owner, hook):
    api = client_for(owner)
    url = f"/api/v3/webhooks/{hook['id']}"
    changed = api.patch(url, {"allowed_ips": ["192.0.2.0/25"]}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["allowed_ips"] == ["192.0.2.0/25"]
    assert WebhookTrigger.objects.get().allowed_ips == ["192.0.2.0/25"]
    event = AuditEvent.objects.get(action="webhook.updated")
    assert event.changes == {"allowed_ips": [SENDERS, ["192.0.2.0/25"]]}
    assert (event.target_type, event.target_id, event.actor_id) == ("webhook", hook["id"], owner.pk)

    bad = api.patch(url, {"allowed_ips": ["192.0.2.0/25", "nope"]}, format="json")
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"allowed_ips.1": [NOT_A_NETWORK.format(entry="nope")]}
    unchanged = api.patch(url, {}, format="json")
    assert (unchanged.status_code, unchanged.json()["allowed_ips"]) == (200, ["192.0.2.0/25"])

    opened = api.patch(url, {"allowed_ips": []}, format="json")
    assert opened.json()["allowed_ips"] == []
    assert deliver(hook, "198.51.100.1").status_code == 202


def test_only_editors_change_it_and_strangers_see_nothing(owner, workflow, hook):
    viewer, stranger = UserFactory(), UserFactory()
    workspace_id = workflow["workspace"]
    MembershipFactory(workspace_id=workspace_id, user=viewer, role=Membership.Role.VIEWER)
    url = f"/api/v3/webhooks/{hook['id']}"
    assert client_for(viewer).patch(url, {"allowed_ips": []}, format="json").status_code == 403
    assert client_for(stranger).patch(url, {"allowed_ips": []}, format="json").status_code == 404
    assert WebhookTrigger.objects.get().allowed_ips == SENDERS


@pytest.mark.parametrize("address", ["203.0.113.77", "2001:db8:77:1::5", "::ffff:203.0.113.78"])
def test_a_delivery_from_the_list_starts_a_run(hook, address):
    answer = deliver(hook, address)
    assert answer.status_code == 202, answer.content
    assert Run.objects.get().trigger == "webhook"
    assert refusals() == []


def test_a_delivery_from_elsewhere_is_refused_audited_and_starts_nothing(hook, workflow):
    answer = deliver(hook, "192.0.2.44")
    assert answer.status_code == 403
    assert answer["Content-Type"] == PROBLEM
    body = answer.json()
    assert (body["type"], body["rule"], body["detail"]) == ("/problems/ip-not-allowed", "webhook", REFUSED["webhook"])
    assert "203.0.113" not in answer.content.decode() and "2001:db8" not in answer.content.decode()
    assert not Run.objects.exists()

    [event] = refusals()
    assert event.changes == {"rule": [None, "webhook"], "address": [None, "192.0.2.44"]}
    assert (str(event.workspace_id), event.target_type, event.target_id) == (
        workflow["workspace"],
        "webhook",
        hook["id"],
    )
    assert (event.actor_type, event.ip) == ("anonymous", "192.0.2.44")

    # Refused before its rate: deliveries from elsewhere do not spend the webhook's budget.
    with override_settings(DWC_WEBHOOK_RATE_PER_MINUTE=1):
        for _ in range(3):
            assert deliver(hook, "192.0.2.45").status_code == 403
        assert deliver(hook, "203.0.113.1").status_code == 202
    # An unknown token is still a 404, whatever the address.
    assert Client(REMOTE_ADDR="192.0.2.44").post("/hooks/nope/", {}, content_type="application/json").status_code == 404


def test_behind_a_trusted_proxy_the_address_it_saw_counts(hook):
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        assert deliver(hook, "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.20").status_code == 202
        spoofed = deliver(hook, "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.20, 192.0.2.46")
        assert spoofed.status_code == 403
    # Without a trusted proxy the header is the client's own claim, and ignored.
    assert deliver(hook, "192.0.2.47", HTTP_X_FORWARDED_FOR="203.0.113.20").status_code == 403
    assert [event.changes["address"][1] for event in refusals()] == ["192.0.2.46", "192.0.2.47"]
    assert Run.objects.count() == 1


def test_operators_set_the_list_in_the_admin(owner, hook):
    root = User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1")
    operator = Client()
    operator.force_login(root)
    change = f"/admin/workflows/webhooktrigger/{hook['id']}/change/"
    page = operator.get(change)
    assert page.status_code == 200
    form = {"dedupe_header": "", "include_headers": "[]"}

    refused = operator.post(change, {**form, "allowed_ips": "203.0.113.0/24,nope"})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["allowed_ips"] == [NOT_A_NETWORK.format(entry="nope")]

    saved = operator.post(change, {**form, "allowed_ips": "198.51.100.9/24, ::ffff:192.0.2.9"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert WebhookTrigger.objects.get().allowed_ips == ["198.51.100.0/24", "192.0.2.9/32"]
    event = AuditEvent.objects.get(action="webhook.updated", actor=root)
    assert event.changes == {"allowed_ips": [SENDERS, ["198.51.100.0/24", "192.0.2.9/32"]]}
    assert deliver(hook, "198.51.100.200").status_code == 202
    assert deliver(hook, "203.0.113.77").status_code == 403
