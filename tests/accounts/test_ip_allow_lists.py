"""IP allow-lists per workspace and per API key, and DWC_ADMIN_ALLOWED_IPS, through the API, the admin
and the websockets (the webhooks' in tests/workflows/test_webhook_allow_list.py; the dashboard's login in
a browser in test_ip_allow_list_browser.py).

Addresses come from the documentation ranges. A refusal is audited once a minute per rule, list and
address (accounts.ip_allow_lists), so each test refuses addresses of its own where that matters.
"""

import re
import subprocess
from itertools import count

import hypothesis
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.test import Client, RequestFactory, override_settings
from hypothesis import HealthCheck, strategies
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts import access
from accounts.api.serializers import IP_NETWORK_PATTERN
from accounts.ip_allow_lists import (
    REFUSED,
    WOULD_LOCK_YOU_OUT,
    IpNotAllowed,
    client_context,
)
from accounts.models import NOT_A_NETWORK, ApiKey, Membership, User, Workspace, ip_networks_clean
from audit.models import AuditEvent
from config.asgi import application
from tests.api_world import api_schema, concrete
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.mode_settings import settings_of
from tests.processes import PROJECT_DIR, VENV_BIN, clean_env
from tests.test_authorization_sweep import OPERATIONS, call
from tests.workflows.helpers import create
from workflows.models import Run, Workflow

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
IP_PROBLEM = "/problems/ip-not-allowed"
INSIDE = ["10.1.0.0/16", "2001:db8:1::/48"]
_outside = (f"198.51.100.{n}" for n in count(1))  # a fresh outside address for each refusal that is counted


def member_at(user: User, address: str, **headers) -> APIClient:
    """An API client of `user` (JWT) whose requests come from `address`."""
    client = APIClient(REMOTE_ADDR=address, **headers)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


def refusals(rule: str, **filters) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(action="access.ip_refused", changes__rule=[None, rule], **filters)
    return list(events.order_by("id"))


def assert_refused(answer, rule: str) -> None:
    assert answer.status_code == 403, answer.content
    assert answer["Content-Type"] == PROBLEM
    body = answer.json()
    assert (body["type"], body["rule"], body["detail"]) == (IP_PROBLEM, rule, REFUSED[rule])
    for network in [*INSIDE, "10.1.", "2001:db8"]:
        assert network not in answer.content.decode()  # the rule, never the list


@pytest.fixture
def locked(db) -> dict:
    """A team workspace whose owner limited it to INSIDE, with a workflow; an editor; a stranger."""
    owner, editor, stranger = UserFactory(), UserFactory(), UserFactory()
    workspace = WorkspaceFactory(name="Locked team")
    MembershipFactory(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    MembershipFactory(workspace=workspace, user=editor, role=Membership.Role.EDITOR)
    office = member_at(owner, "10.1.2.3")
    workflow = create(office, {"name": "Locked flow", "status": "active", "workspace": str(workspace.pk)})
    answer = office.patch(f"/api/v3/workspaces/{workspace.pk}", {"allowed_ips": INSIDE}, format="json")
    assert answer.status_code == 200, answer.content
    workspace.refresh_from_db()
    return {"workspace": workspace, "owner": owner, "editor": editor, "stranger": stranger, "workflow": workflow}


# --- the workspace's list: setting it --------------------------------------------------------------


def test_the_list_is_saved_canonical_shown_and_audited(db):
    owner = UserFactory()
    workspace = access.personal_workspace(owner)
    entries = ["10.1.2.3/16", "2001:DB8:1::5/48", "::ffff:10.1.0.0/112", "10.1.0.0/16", "192.0.2.7"]
    answer = member_at(owner, "10.1.9.9").patch(
        f"/api/v3/workspaces/{workspace.pk}", {"allowed_ips": entries}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["allowed_ips"] == ["10.1.0.0/16", "2001:db8:1::/48", "192.0.2.7/32"]
    workspace.refresh_from_db()
    assert workspace.allowed_ips == ["10.1.0.0/16", "2001:db8:1::/48", "192.0.2.7/32"]
    event = AuditEvent.objects.get(action="workspace.updated", workspace=workspace)
    assert event.changes == {"allowed_ips": [[], ["10.1.0.0/16", "2001:db8:1::/48", "192.0.2.7/32"]]}

    # Renaming leaves it as it is; [] opens the workspace to every address again.
    office = member_at(owner, "10.1.9.9")
    renamed = office.patch(f"/api/v3/workspaces/{workspace.pk}", {"name": "Renamed"}, format="json")
    assert renamed.json()["allowed_ips"] == ["10.1.0.0/16", "2001:db8:1::/48", "192.0.2.7/32"]
    opened = member_at(owner, "10.1.9.9").patch(
        f"/api/v3/workspaces/{workspace.pk}", {"allowed_ips": []}, format="json"
    )
    assert opened.json()["allowed_ips"] == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["10.0.0.0/8", "not-a-network"], {"allowed_ips.1": [NOT_A_NETWORK.format(entry="not-a-network")]}),
        (["10.0.0.0/33"], {"allowed_ips.0": [NOT_A_NETWORK.format(entry="10.0.0.0/33")]}),
        (["2001:db8::/129"], {"allowed_ips.0": [NOT_A_NETWORK.format(entry="2001:db8::/129")]}),
        ([" 10.0.0.1"], {"allowed_ips.0": [NOT_A_NETWORK.format(entry=" 10.0.0.1")]}),
        (["10.0.0.1\n"], {"allowed_ips.0": [NOT_A_NETWORK.format(entry="10.0.0.1\n")]}),
        (["10.0.0.0/255.0.0.0"], {"allowed_ips.0": [NOT_A_NETWORK.format(entry="10.0.0.0/255.0.0.0")]}),
        ([""], None),  # DRF's "may not be blank"
        ("10.0.0.0/8", None),  # a string, not a list
        ([{"cidr": "10.0.0.0/8"}], None),
        (["10.0.0.0/8"] * 101, None),
    ],
)
def test_a_bad_list_is_a_400_naming_the_field(db, value, expected):
    owner = UserFactory()
    workspace = access.personal_workspace(owner)
    answer = member_at(owner, "10.0.0.1").patch(
        f"/api/v3/workspaces/{workspace.pk}", {"allowed_ips": value}, format="json"
    )
    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == PROBLEM
    errors = answer.json()["errors"]
    assert all(field.startswith("allowed_ips") for field in errors), errors
    if expected:
        assert errors == expected
    workspace.refresh_from_db()
    assert workspace.allowed_ips == []


def test_a_list_that_would_lock_out_the_caller_is_refused(db):
    owner = UserFactory()
    workspace = access.personal_workspace(owner)
    answer = member_at(owner, "203.0.113.50").patch(
        f"/api/v3/workspaces/{workspace.pk}", {"allowed_ips": INSIDE}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"allowed_ips": [WOULD_LOCK_YOU_OUT.format(address="203.0.113.50")]}
    workspace.refresh_from_db()
    assert workspace.allowed_ips == []
    assert not AuditEvent.objects.filter(action="workspace.updated", workspace=workspace).exists()


def test_only_admins_and_owners_change_it(locked):
    answer = member_at(locked["editor"], "10.1.2.3").patch(
        f"/api/v3/workspaces/{locked['workspace'].pk}", {"allowed_ips": []}, format="json"
    )
    assert answer.status_code == 403
    locked["workspace"].refresh_from_db()
    assert locked["workspace"].allowed_ips == INSIDE


# --- the workspace's list: what it refuses ---------------------------------------------------------


def test_a_member_from_elsewhere_is_refused_everywhere_in_the_workspace_and_it_is_audited(locked):
    workspace, editor, workflow = locked["workspace"], locked["editor"], locked["workflow"]
    address = next(_outside)
    api = member_at(editor, address)
    for path in (
        f"/api/v3/workspaces/{workspace.pk}",
        f"/api/v3/workspaces/{workspace.pk}/members",
        f"/api/v3/workflows/{workflow['id']}",
        f"/api/v3/workflows/{workflow['id']}/webhooks",
    ):
        assert_refused(api.get(path), "workspace")
    assert_refused(
        api.post("/api/v3/workflows", {"name": "W", "workspace": str(workspace.pk)}, format="json"), "workspace"
    )
    assert_refused(api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json"), "workspace")
    assert not Workflow.objects.filter(name="W").exists()
    assert not Run.objects.exists()

    # Audited once for the address within the minute, with the rule, the address, the workspace and the actor.
    [event] = refusals("workspace", workspace=workspace)
    assert event.changes == {"rule": [None, "workspace"], "address": [None, address]}
    assert (event.actor_id, event.ip, event.target_type, event.target_id) == (
        editor.pk,
        address,
        "workspace",
        str(workspace.pk),
    )
    another = next(_outside)
    assert_refused(member_at(editor, another).get(f"/api/v3/workspaces/{workspace.pk}"), "workspace")
    assert [e.changes["address"][1] for e in refusals("workspace", workspace=workspace)] == [address, another]


def test_a_refusal_in_a_transaction_that_rolls_back_is_still_audited(locked):
    """A role check refused inside a transaction that then rolls back: the event is written once the
    request is done, outside it."""
    address = next(_outside)
    with client_context(RequestFactory().post("/", REMOTE_ADDR=address), record_after=True):
        with pytest.raises(IpNotAllowed), transaction.atomic():
            access.ensure_role(locked["editor"], locked["workspace"], Membership.Role.EDITOR)
        with pytest.raises(Http404), transaction.atomic():
            access.ensure_role(locked["stranger"], locked["workspace"], Membership.Role.EDITOR)
        assert refusals("workspace") == []
    assert [event.changes["address"][1] for event in refusals("workspace", workspace=locked["workspace"])] == [address]
    with client_context(RequestFactory().post("/", REMOTE_ADDR="10.1.0.1"), record_after=True):
        assert access.ensure_role(locked["editor"], locked["workspace"], Membership.Role.EDITOR) == "editor"


@pytest.mark.parametrize("address", ["10.1.200.7", "::ffff:10.1.0.9", "2001:db8:1:ff::1"])
def test_a_member_from_inside_gets_in(locked, address):
    api = member_at(locked["editor"], address)
    assert api.get(f"/api/v3/workspaces/{locked['workspace'].pk}/members").status_code == 200
    assert api.get(f"/api/v3/workflows/{locked['workflow']['id']}").status_code == 200
    started = api.post(f"/api/v3/workflows/{locked['workflow']['id']}/runs", {"input": {}}, format="json")
    assert started.status_code == 202, started.content
    assert refusals("workspace") == []


@pytest.mark.parametrize("address", ["10.1.2.3", "198.51.100.200"])
def test_a_stranger_still_gets_the_404_of_an_unknown_workspace(locked, address):
    api = member_at(locked["stranger"], address)
    for path in (f"/api/v3/workspaces/{locked['workspace'].pk}", f"/api/v3/workflows/{locked['workflow']['id']}"):
        answer = api.get(path)
        assert answer.status_code == 404, path
    started = api.post(f"/api/v3/workflows/{locked['workflow']['id']}/runs", {"input": {}}, format="json")
    assert started.status_code == 404
    assert refusals("workspace") == []


def test_lists_across_workspaces_leave_it_out_and_the_list_of_workspaces_shows_it_without_its_list(locked):
    workspace, editor = locked["workspace"], locked["editor"]
    inside, outside = member_at(editor, "10.1.0.1"), member_at(editor, "203.0.113.1")
    assert [w["name"] for w in inside.get("/api/v3/workflows").json()["results"]] == ["Locked flow"]
    assert outside.get("/api/v3/workflows").json()["results"] == []
    assert outside.get(f"/api/v3/workflows?workspace={workspace.pk}").json()["results"] == []

    def listed(api) -> dict:
        return {item["id"]: item for item in api.get("/api/v3/workspaces").json()["results"]}

    assert listed(inside)[str(workspace.pk)]["allowed_ips"] == INSIDE
    # Listed from elsewhere too, so that the member learns why it refuses them, but not what it allows.
    assert listed(outside)[str(workspace.pk)]["allowed_ips"] is None
    me = outside.get("/api/v3/auth/me").json()
    assert str(workspace.pk) in [item["id"] for item in me["workspaces"]]
    assert "10.1." not in str(me) and "10.1." not in str(outside.get("/api/v3/workspaces").json())


def test_an_api_key_is_not_exempt_from_its_workspaces_list(locked):
    office = member_at(locked["editor"], "10.1.0.1")
    created = office.post("/api/v3/auth/api-keys", {"name": "ci", "scopes": ["read"]}, format="json")
    assert created.status_code == 201, created.content
    for address, status in (("10.1.0.2", 200), (next(_outside), 403)):
        keyed = APIClient(REMOTE_ADDR=address, HTTP_X_API_KEY=created.json()["key"])
        answer = keyed.get(f"/api/v3/workflows/{locked['workflow']['id']}")
        assert answer.status_code == status
    [event] = refusals("workspace", workspace=locked["workspace"])
    assert event.actor_label == f"apikey:{created.json()['key'][:12]}"


def test_a_member_from_elsewhere_cannot_make_a_key_for_the_workspace(locked):
    limited = {"name": "ci", "scopes": ["read"], "workspace": str(locked["workspace"].pk)}
    answer = member_at(locked["editor"], next(_outside)).post("/api/v3/auth/api-keys", limited, format="json")
    assert_refused(answer, "workspace")
    assert not ApiKey.objects.exists()


def test_x_forwarded_for_counts_as_the_throttles_count_it(locked):
    """With one trusted proxy, the address it saw (the last X-Forwarded-For entry) is the client's,
    whatever the client put further left; without a trusted proxy, the header means nothing."""
    path = f"/api/v3/workflows/{locked['workflow']['id']}"
    editor = locked["editor"]
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        assert member_at(editor, "127.0.0.1", HTTP_X_FORWARDED_FOR="10.1.4.4").get(path).status_code == 200
        spoofed = member_at(editor, "127.0.0.1", HTTP_X_FORWARDED_FOR="10.1.4.4, 192.0.2.200")
        assert_refused(spoofed.get(path), "workspace")
        assert member_at(editor, "127.0.0.1", HTTP_X_FORWARDED_FOR="unknown").get(path).status_code == 403
    assert_refused(member_at(editor, "192.0.2.201", HTTP_X_FORWARDED_FOR="10.1.4.4").get(path), "workspace")
    addresses = sorted(event.changes["address"][1] for event in refusals("workspace", workspace=locked["workspace"]))
    assert addresses == ["192.0.2.200", "192.0.2.201", "unknown"]


def test_outside_a_request_no_list_applies(locked):
    """Celery tasks and commands act with no client address: the list is about requests."""
    assert access.workspace_get(locked["editor"], locked["workspace"].pk) == locked["workspace"]
    assert locked["workspace"] in access.workspaces_for_user(locked["editor"])


# --- which lists admit which addresses ---------------------------------------------------------


def test_lists_across_workspaces_keep_those_whose_allow_list_admits_the_client(db):
    lists = [
        [],
        ["10.0.0.0/8"],
        ["10.1.2.3/32"],
        ["0.0.0.0/0"],
        ["::/0"],
        ["2001:db8::/32", "192.0.2.0/24"],
        ["2001:db8:1::1/128"],
        ["fe80::/10"],
    ]
    user = UserFactory()
    workspaces = [Workspace.objects.create(name=f"W{n}", allowed_ips=networks) for n, networks in enumerate(lists)]
    for workspace in workspaces:
        Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.EDITOR)
    ids = [workspace.pk for workspace in workspaces]  # the user's own workspace, open to all, aside
    admitted = {
        "10.1.2.3": [0, 1, 2, 3],
        "10.200.0.1": [0, 1, 3],
        "192.0.2.55": [0, 3, 5],
        "203.0.113.9": [0, 3],
        "::ffff:10.1.2.3": [0, 1, 2, 3],  # an IPv4 address written as IPv6 is the IPv4 address
        "2001:db8::7": [0, 4, 5],
        "2001:db8:1::1": [0, 4, 5, 6],
        "fe80::1%eth0": [0, 4, 7],
        "::1": [0, 4],
        "unknown": [0],  # an address that is none: only an empty list admits it
        "": [0],
    }
    for address, indexes in admitted.items():
        request = RequestFactory().get("/", REMOTE_ADDR=address)
        with client_context(request, record_after=True):
            listed = set(access.workspaces_for_user(user).filter(pk__in=ids).values_list("pk", flat=True))
            with_role = set(
                access.workspaces_with_role(user, Membership.Role.EDITOR)
                .filter(pk__in=ids)
                .values_list("pk", flat=True)
            )
        expected = {workspaces[index].pk for index in indexes}
        assert listed == expected, address
        assert with_role == expected, address
    assert set(access.workspaces_for_user(user).filter(pk__in=ids)) == set(
        workspaces
    )  # outside a request, no list applies


def test_a_superuser_lists_every_workspace_but_those_locked_to_them(db):
    operator = UserFactory(is_superuser=True, is_staff=True)
    open_to_all = Workspace.objects.create(name="Open")
    admitting = Workspace.objects.create(name="Here", allowed_ips=["192.0.2.0/24"])
    refusing = Workspace.objects.create(name="Elsewhere", allowed_ips=["10.0.0.0/8"])
    requiring_mfa = Workspace.objects.create(name="MFA", mfa_required=True)
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.9")
    with client_context(request, record_after=True):
        listed = set(access.workspaces_with_role(operator, Membership.Role.OWNER))
    assert {open_to_all, admitting} <= listed
    assert not {refusing, requiring_mfa} & listed


# --- per API key -----------------------------------------------------------------------------------


def test_a_key_with_a_list_works_only_from_it(db):
    user = UserFactory()
    api = member_at(user, "192.0.2.1")
    body = {
        "name": "deploy",
        "scopes": ["read"],
        "allowed_ips": ["203.0.113.0/24", "::ffff:198.51.100.7", "2001:db8::/32"],
    }
    created = api.post("/api/v3/auth/api-keys", body, format="json")
    assert created.status_code == 201, created.content
    canonical = ["203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32"]
    assert created.json()["allowed_ips"] == canonical
    assert api.get("/api/v3/auth/api-keys").json()["results"][0]["allowed_ips"] == canonical
    key = ApiKey.objects.get()
    assert AuditEvent.objects.get(action="apikey.created").changes["allowed_ips"] == [None, canonical]

    raw = created.json()["key"]
    for address in ("203.0.113.77", "198.51.100.7", "::ffff:198.51.100.7", "2001:db8:5::1"):
        assert APIClient(REMOTE_ADDR=address, HTTP_X_API_KEY=raw).get("/api/v3/auth/me").status_code == 200, address
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=None)

    answer = APIClient(REMOTE_ADDR="192.0.2.9", HTTP_X_API_KEY=raw).get("/api/v3/auth/me")
    assert answer.status_code == 403
    assert (answer.json()["type"], answer.json()["rule"], answer.json()["detail"]) == (
        IP_PROBLEM,
        "api_key",
        REFUSED["api_key"],
    )
    assert "203.0.113" not in answer.content.decode()
    # Refused before it counts as a use; the browsable API (HTML) gets its 403 too, not a 500.
    key.refresh_from_db()
    assert key.last_used_at is None
    html = APIClient(REMOTE_ADDR="192.0.2.9", HTTP_X_API_KEY=raw).get("/api/v3/auth/me", HTTP_ACCEPT="text/html")
    assert html.status_code == 403
    [event] = refusals("api_key")
    assert event.changes == {"rule": [None, "api_key"], "address": [None, "192.0.2.9"]}
    assert (event.actor_label, event.target_type, event.target_id) == (f"apikey:{key.prefix}", "apikey", str(key.pk))


def test_a_key_without_a_list_works_from_anywhere(db):
    created = member_at(UserFactory(), "192.0.2.1").post(
        "/api/v3/auth/api-keys", {"name": "open", "scopes": ["read"]}, format="json"
    )
    assert created.json()["allowed_ips"] == []
    for address in ("192.0.2.1", "2001:db8::1", "203.0.113.1"):
        keyed = APIClient(REMOTE_ADDR=address, HTTP_X_API_KEY=created.json()["key"])
        assert keyed.get("/api/v3/auth/me").status_code == 200


@pytest.mark.parametrize("value", [["10.0.0.0/8", "nope"], "10.0.0.0/8", [None]])
def test_a_key_with_a_bad_list_is_a_400_naming_the_field(db, value):
    answer = member_at(UserFactory(), "192.0.2.1").post(
        "/api/v3/auth/api-keys", {"name": "k", "scopes": ["read"], "allowed_ips": value}, format="json"
    )
    assert answer.status_code == 400, answer.content
    assert all(field.startswith("allowed_ips") for field in answer.json()["errors"])
    assert not ApiKey.objects.exists()


def test_a_key_keeps_to_its_list_behind_a_trusted_proxy(db):
    created = member_at(UserFactory(), "192.0.2.1").post(
        "/api/v3/auth/api-keys", {"name": "k", "scopes": ["read"], "allowed_ips": ["203.0.113.0/24"]}, format="json"
    )
    raw = created.json()["key"]
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        ok = APIClient(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5", HTTP_X_API_KEY=raw)
        assert ok.get("/api/v3/auth/me").status_code == 200
        refused = APIClient(REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="192.0.2.77", HTTP_X_API_KEY=raw)
        assert refused.get("/api/v3/auth/me").json()["rule"] == "api_key"


# --- websockets ------------------------------------------------------------------------------------


def ws_closed_or_subscribed(path: str, user: User, address: str) -> dict:
    async def scenario():
        communicator = WebsocketCommunicator(
            application,
            f"{path}{'&' if '?' in path else '?'}token={AccessToken.for_user(user)}",
            headers=[(b"origin", b"http://testserver")],
        )
        communicator.scope["client"] = (address, 50000)
        await communicator.connect()
        output = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return output

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)  # the consumers' database_sync_to_async closes the test's connection
def test_a_websocket_from_elsewhere_is_refused_and_audited(locked):
    workspace, editor = locked["workspace"], locked["editor"]
    address = next(_outside)
    refused = ws_closed_or_subscribed(f"/ws/dashboard/?workspace={workspace.pk}", editor, address)
    assert refused == {"type": "websocket.close", "code": 4403}
    assert ws_closed_or_subscribed(f"/ws/workflows/{locked['workflow']['id']}/", editor, address)["code"] == 4403
    [event] = refusals("workspace", workspace=workspace)
    assert (event.changes["address"], event.ip, event.actor_id) == ([None, address], address, editor.pk)

    inside = ws_closed_or_subscribed(f"/ws/dashboard/?workspace={workspace.pk}", editor, "10.1.3.3")
    assert inside["type"] == "websocket.send", inside
    # Across workspaces, the dashboard's socket leaves it out from elsewhere.
    everywhere = ws_closed_or_subscribed("/ws/dashboard/", editor, next(_outside))
    assert str(workspace.pk) not in everywhere["text"]
    assert str(workspace.pk) in ws_closed_or_subscribed("/ws/dashboard/", editor, "10.1.3.3")["text"]


@pytest.mark.django_db(transaction=True)
def test_a_stranger_on_a_websocket_gets_the_unknown_ids_answer(locked):
    path = f"/ws/dashboard/?workspace={locked['workspace'].pk}"
    assert ws_closed_or_subscribed(path, locked["stranger"], next(_outside))["code"] == 4403
    assert refusals("workspace") == []


# --- the admin site --------------------------------------------------------------------------------


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1")


@override_settings(DWC_ADMIN_ALLOWED_IPS=["10.9.0.0/16", "2001:db8:9::/48"])
def test_the_admin_site_answers_only_its_list(root):
    for address in ("10.9.0.1", "2001:db8:9::1"):
        assert Client(REMOTE_ADDR=address).get("/admin/login/").status_code == 200, address

    anonymous = Client(REMOTE_ADDR="203.0.113.61").get("/admin/login/")
    assert_refused(anonymous, "admin")
    assert "10.9." not in anonymous.content.decode()
    [event] = refusals("admin")
    assert (event.actor_type, event.workspace_id, event.ip) == ("anonymous", None, "203.0.113.61")
    assert event.changes == {"rule": [None, "admin"], "address": [None, "203.0.113.61"]}

    operator = Client(REMOTE_ADDR="203.0.113.62")
    operator.force_login(root)
    for path in ("/admin/", "/admin/accounts/workspace/", "/admin/login/code/"):
        assert_refused(operator.get(path), "admin")
    posted = operator.post("/admin/login/", {"username": root.email, "password": "x-Long-enough-1"})
    assert_refused(posted, "admin")
    by_root = refusals("admin", actor=root)
    assert [event.ip for event in by_root] == ["203.0.113.62"]  # once a minute for the address

    # The rest of the site does not answer to the admin's list.
    assert Client(REMOTE_ADDR="203.0.113.63").get("/health").status_code == 200


@override_settings(DWC_ADMIN_ALLOWED_IPS=["10.9.0.0/16"], REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1})
def test_the_admin_sites_list_reads_the_address_as_the_throttles_do(root):
    assert Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.1.1").get("/admin/login/").status_code == 200
    spoofed = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.1.1, 203.0.113.64")
    assert_refused(spoofed.get("/admin/login/"), "admin")


def test_operators_edit_a_workspaces_list_in_the_admin_from_anywhere(root, locked):
    """The admin site has its own list: an operator can mend a workspace's list from outside it."""
    workspace = locked["workspace"]
    operator = Client(REMOTE_ADDR="203.0.113.70")
    operator.force_login(root)
    change = f"/admin/accounts/workspace/{workspace.pk}/change/"
    page = operator.get(change)
    assert page.status_code == 200
    form = {"name": workspace.name, "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}

    refused = operator.post(change, {**form, "allowed_ips": "10.1.0.0/16,not-a-network"})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["allowed_ips"] == [NOT_A_NETWORK.format(entry="not-a-network")]

    saved = operator.post(change, {**form, "allowed_ips": "10.1.2.3/16, 203.0.113.0/24, ::ffff:192.0.2.1"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    workspace.refresh_from_db()
    assert workspace.allowed_ips == ["10.1.0.0/16", "203.0.113.0/24", "192.0.2.1/32"]
    event = AuditEvent.objects.filter(action="workspace.updated", workspace=workspace, actor=root).get()
    assert event.changes == {"allowed_ips": [INSIDE, ["10.1.0.0/16", "203.0.113.0/24", "192.0.2.1/32"]]}
    assert refusals("workspace") == []


def test_an_invalid_admin_list_stops_the_start_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "check"],
        cwd=PROJECT_DIR,
        env=clean_env(
            DJANGO_SETTINGS_MODULE="config.settings.base",
            DWC_VAR_DIR=str(tmp_path),
            DWC_ADMIN_ALLOWED_IPS="10.0.0.0/8, 10.0.0.300",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: DWC_ADMIN_ALLOWED_IPS: '10.0.0.300' is not an IP address or network" in result.stderr
    read = settings_of(
        "config.settings.base", ["DWC_ADMIN_ALLOWED_IPS"], tmp_path, DWC_ADMIN_ALLOWED_IPS="10.1.2.3/8,::1"
    )
    assert read == {"DWC_ADMIN_ALLOWED_IPS": ["10.0.0.0/8", "::1/128"]}
    assert settings_of("config.settings.base", ["DWC_ADMIN_ALLOWED_IPS"], tmp_path) == {"DWC_ADMIN_ALLOWED_IPS": []}


# --- every operation on a workspace's objects ------------------------------------------------------


def test_every_operation_on_the_workspaces_objects_answers_to_its_list(world):
    """The authorization sweep's operations (tests/test_authorization_sweep.py), from an address the
    workspace's list leaves out: its owner gets the list's 403 on each, an outsider still the 404 of an
    unknown id, and nothing changes."""
    Workspace.objects.filter(pk=world["workspace"].pk).update(allowed_ips=["10.0.0.0/8"])
    prefixes = tuple(world["values"])
    checked = 0
    for path, method in OPERATIONS:
        if not path.startswith(prefixes):
            continue  # a user's own objects (API keys, sessions), not a workspace's
        url = concrete(path, world)
        refused = call(member_at(world["owner"], "192.0.2.99"), method, url)
        assert refused.status_code == 403, (method, url, refused.status_code, refused.content[:300])
        assert refused.json()["rule"] == "workspace", (method, url)
        assert call(member_at(world["outsider"], "192.0.2.99"), method, url).status_code == 404, (method, url)
        checked += 1
    assert checked > 30
    assert Run.objects.filter(pk=world["run"].pk).exists()
    assert Workflow.objects.filter(deleted_at__isnull=True, name="A's").exists()
    assert Workspace.objects.filter(pk=world["workspace"].pk).exists()
    [event] = refusals("workspace", workspace=world["workspace"])
    assert event.actor_id == world["owner"].pk


# --- what the API takes is what its schema says ------------------------------------------------------


@hypothesis.settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@hypothesis.given(strategies.from_regex(re.compile(IP_NETWORK_PATTERN), fullmatch=True))
def test_every_entry_the_pattern_allows_is_an_address_or_network(entry):
    [network] = ip_networks_clean([entry])
    assert len(network) <= 49  # the column's width


@hypothesis.settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@hypothesis.given(strategies.ip_addresses(), strategies.integers(0, 128), strategies.sampled_from(["", "/", "x"]))
def test_the_pattern_allows_every_address_and_network_as_written(address, prefix, form):
    texts = {str(address), address.exploded} if address.version == 6 else {str(address)}
    if form == "/":
        texts = {f"{text}/{prefix % (33 if address.version == 4 else 129)}" for text in texts}
    for text in texts:
        assert re.fullmatch(IP_NETWORK_PATTERN, text), text


def test_the_schema_documents_the_pattern():
    schemas = api_schema()["components"]["schemas"]
    expected = IP_NETWORK_PATTERN.replace("\\A", "^").replace("\\Z", "$")
    for name in ("ApiKeyCreateRequest", "PatchedWorkspaceRequest", "WebhookCreateRequest"):
        assert schemas[name]["properties"]["allowed_ips"]["items"]["pattern"] == expected, name
    shown = schemas["Workspace"]["properties"]["allowed_ips"]
    # Nullable as OpenAPI 3.0 says it, or as 3.1 (JSON Schema) does.
    assert shown.get("nullable") is True or shown["type"] == ["array", "null"]
    assert schemas["PatchedWorkspaceRequest"]["properties"]["allowed_ips"]["type"] == "array"
