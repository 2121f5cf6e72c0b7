"""The notification events of schedules, inbound webhooks and credentials (workflows.services.notices).

Each test does what the product does (fires a schedule, posts to /hooks/<token>/, runs the beat's
credentials round) and then reads what reached the `notifications` queue of the real broker (Redis):
the `notifications.tasks.events_match` messages that events_submit sent after commit, decoded as a
worker would. No stand-in for events_submit or Celery; the rules that consume the messages are not
needed to see what they would be given.
"""

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from kombu import Queue

from accounts.access import personal_workspace
from config.celery import app as celery_app
from notifications.services.events import MATCH_TASK, QUEUE
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workflows.models import Credential, Schedule, Workflow
from workflows.services import schedule_slots
from workflows.services import schedules as schedule_services
from workflows.services.credentials import EXPIRES_AT_INVALID, credential_save
from workflows.services.notices import credentials_expiry_submit
from workflows.services.webhooks import Refusal
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

SECRET = "sk-live-NEVER-IN-AN-EVENT-5c1e"
HOOK_SECRET = "hook-secret-4f2a"
T0 = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


def _queue() -> Queue:
    return next(queue for queue in settings.CELERY_TASK_QUEUES if queue.name == QUEUE)


def _drain() -> list[list[dict]]:
    """Take every message off the broker's notifications queue; the event lists of events_match's."""
    batches = []
    with celery_app.connection_for_read() as connection:
        queue = _queue()(connection)
        queue.declare()
        while (message := queue.get(no_ack=True)) is not None:
            if message.headers.get("task") == MATCH_TASK:
                args, _kwargs, _embed = message.decode()
                batches.append(args[0])
    return batches


@pytest.fixture
def broker():
    """The notifications queue, emptied before the test; `broker()` drains it into event lists."""
    _drain()
    return _drain


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def workflow(owner) -> Workflow:
    return workflow_create(
        actor=owner,
        workspace=personal_workspace(owner),
        data={"name": "Nightly", "status": "active", "tags": ["ops"], "nodes": [{"key": "a", "type": "text"}]},
    )


def assert_envelope(event: dict, *, type_: str, workspace, subject: str) -> None:
    assert event["type"] == type_
    assert event["workspace"] == {"id": str(workspace.pk), "name": workspace.name}
    assert event["subject"] == subject
    assert datetime.fromisoformat(event["ts"]) <= timezone.now()
    assert event["link"].startswith("/dashboard/")


# --- schedule.missed ------------------------------------------------------------------------------


def schedule_of(workflow, owner, cron: str, last_slot: datetime, **fields) -> Schedule:
    schedule = schedule_services.schedule_create(workflow=workflow, actor=owner, data={"cron": cron, **fields})
    Schedule.objects.filter(pk=schedule.pk).update(last_slot=last_slot)
    return schedule


def test_slots_missed_while_beat_was_down_are_one_event_naming_the_count_and_the_first_and_last(
    workflow, owner, broker, django_capture_on_commit_callbacks
):
    schedule = schedule_of(workflow, owner, "* * * * *", T0)  # minutely; beat down for an hour
    with django_capture_on_commit_callbacks(execute=True):
        schedule_slots.schedule_fire(schedule_id=schedule.pk, now=T0 + timedelta(hours=1))
    [[event]] = broker()  # one message, one event: not one per slot
    assert_envelope(event, type_="schedule.missed", workspace=workflow.workspace, subject=str(workflow.pk))
    assert event["data"] == {
        "schedule": str(schedule.pk),
        "cron": "* * * * *",
        "count": 59,
        "first": "2030-01-01T00:01:00+00:00",
        "last": "2030-01-01T00:59:00+00:00",
    }
    assert event["workflow"] == {"id": str(workflow.pk), "name": "Nightly", "tags": ["ops"]}
    assert event["link"] == f"/dashboard/workflows/{workflow.pk}/"
    assert event["id"] == f"schedule:{schedule.pk}:missed:2030-01-01T00:01:00+00:00:2030-01-01T00:59:00+00:00"

    with django_capture_on_commit_callbacks(execute=True):  # the same beat again: nothing new was missed
        schedule_slots.schedule_fire(schedule_id=schedule.pk, now=T0 + timedelta(hours=1))
    assert broker() == []


def test_slots_caught_up_are_not_missed_and_a_fire_without_missed_slots_raises_nothing(
    workflow, owner, broker, django_capture_on_commit_callbacks
):
    schedule = schedule_of(workflow, owner, "0 * * * *", T0, catchup="latest", overlap="allow")
    with django_capture_on_commit_callbacks(execute=True):
        schedule_slots.schedule_fire(schedule_id=schedule.pk, now=T0 + timedelta(hours=4))
    [[event]] = broker()
    assert (event["data"]["count"], event["data"]["first"], event["data"]["last"]) == (
        2,
        "2030-01-01T01:00:00+00:00",
        "2030-01-01T02:00:00+00:00",
    )
    with django_capture_on_commit_callbacks(execute=True):
        schedule_slots.schedule_fire(schedule_id=schedule.pk, now=T0 + timedelta(hours=5))
    assert broker() == []


def test_the_missed_event_is_sent_only_when_the_fire_commits(workflow, owner, broker):
    schedule = schedule_of(workflow, owner, "0 * * * *", T0)
    schedule_slots.schedule_fire(schedule_id=schedule.pk, now=T0 + timedelta(hours=3))
    assert broker() == []  # the test's transaction never commits


# --- webhook.rejected -----------------------------------------------------------------------------


def make_hook(owner, workflow, **body) -> dict:
    answer = client_for(owner).post(f"/api/v3/workflows/{workflow.pk}/webhooks", body, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def signed(secret: str, body: bytes) -> dict:
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_SIGNATURE_256": f"sha256={digest}", "HTTP_X_TIMESTAMP": stamp}


def post(hook: dict, body: bytes = b"{}", *, address: str = "198.51.100.7", query: str = "", **extra):
    extra.setdefault("content_type", "application/json")
    return Client(REMOTE_ADDR=address).post(f"/hooks/{hook['token']}/{query}", body, **extra)


REFUSALS = [
    # (webhook settings, delivery, expected status, reason)
    ({"allowed_ips": ["203.0.113.0/24"]}, {}, 403, Refusal.IP_NOT_ALLOWED),
    ({}, {"content_type": "text/plain"}, 415, Refusal.UNSUPPORTED_MEDIA_TYPE),
    ({}, {"body": b'{"pad": "' + b"x" * 64 + b'"}'}, 413, Refusal.PAYLOAD_TOO_LARGE),
    ({}, {"query": "?wait=soon"}, 400, Refusal.INVALID_REQUEST),
    ({}, {"body": b"{not json"}, 400, Refusal.PAYLOAD_INVALID),
    ({"secret": HOOK_SECRET}, {}, 401, Refusal.SIGNATURE_INVALID),
    ({"secret": HOOK_SECRET}, signed("another secret", b"{}"), 401, Refusal.SIGNATURE_INVALID),
]


@pytest.mark.parametrize(("hook_fields", "delivery", "status", "reason"), REFUSALS, ids=[r[3] for r in REFUSALS])
def test_each_refusal_of_a_delivery_raises_webhook_rejected(
    owner, workflow, broker, settings, django_capture_on_commit_callbacks, hook_fields, delivery, status, reason
):
    settings.DWC_WEBHOOK_MAX_BODY_BYTES = 32
    hook = make_hook(owner, workflow, **hook_fields)
    broker()
    with django_capture_on_commit_callbacks(execute=True):
        answer = post(hook, **delivery)
    assert answer.status_code == status, answer.content
    [[event]] = broker()
    assert_envelope(event, type_="webhook.rejected", workspace=workflow.workspace, subject=str(workflow.pk))
    assert event["data"] == {
        "reason": reason,
        "webhook": hook["id"],
        "remote_address": "198.51.100.7",
        "detail": answer.json()["detail"],
    }
    assert event["error"] == {"type": reason, "message": answer.json()["detail"]}
    assert event["link"] == f"/dashboard/workflows/{workflow.pk}/"


def test_a_flood_of_refusals_raises_one_event_per_webhook_and_reason_a_minute(
    owner, workflow, broker, settings, django_capture_on_commit_callbacks
):
    settings.DWC_WEBHOOK_RATE_PER_MINUTE = 1
    hook = make_hook(owner, workflow)
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [post(hook).status_code for _ in range(30)]
        unsigned = post(hook, content_type="text/plain")
    # Whether the minute turned during the loop decides how many got in; each refusal's reason is one event.
    assert statuses[0] == 202 and statuses.count(429) >= 28
    assert unsigned.status_code == 429
    events = [event for batch in broker() for event in batch]
    assert {event["data"]["reason"] for event in events} == {Refusal.RATE_LIMITED}
    assert 1 <= len(events) <= 2
    assert len({event["id"] for event in events}) == len(events)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("why", ["paused", "input"])
def test_a_refusal_whose_transaction_rolled_back_is_still_raised(owner, workflow, broker, why):
    """A signed delivery starts its run in a transaction: a refused run rolls it back, not the event.
    Committed for real here (no test transaction around it), as in production."""
    if why == "paused":
        Workflow.objects.filter(pk=workflow.pk).update(status="paused")
    else:
        schema = {"type": "object", "required": ["order"], "properties": {"order": {"type": "integer"}}}
        Workflow.objects.filter(pk=workflow.pk).update(input_schema=schema)
    hook = make_hook(owner, workflow, secret=HOOK_SECRET)
    broker()
    answer = post(hook, b"{}", **signed(HOOK_SECRET, b"{}"))
    assert answer.status_code == (409 if why == "paused" else 400), answer.content
    [[event]] = broker()
    expected = Refusal.WORKFLOW_NOT_ACTIVE if why == "paused" else Refusal.PAYLOAD_INVALID
    assert event["data"]["reason"] == expected
    assert not workflow.runs.exists()


def test_an_accepted_delivery_raises_nothing(owner, workflow, broker, django_capture_on_commit_callbacks):
    hook = make_hook(owner, workflow, secret=HOOK_SECRET)
    broker()
    with django_capture_on_commit_callbacks(execute=True):
        assert post(hook, b"{}", **signed(HOOK_SECRET, b"{}")).status_code == 202
    assert broker() == []


# --- credential.expiring --------------------------------------------------------------------------


@pytest.fixture
def team():
    return WorkspaceFactory(name="Team")


@pytest.fixture
def team_admin(team):
    return MembershipFactory(workspace=team, role="admin").user


def credential(team, name: str, expires_at: datetime | None) -> Credential:
    row = credential_save(workspace_id=team.pk, name=name, kind="http_bearer", value={"token": SECRET})
    Credential.objects.filter(pk=row.pk).update(expires_at=expires_at)
    row.refresh_from_db()
    return row


def beat(now: datetime, capture) -> list[dict]:
    with capture(execute=True):
        credentials_expiry_submit(now=now)
    return [event for batch in _drain() for event in batch]


def test_a_credential_expiring_within_the_window_raises_one_event_per_expiry_date(
    team, broker, django_capture_on_commit_callbacks
):
    now = timezone.now().replace(microsecond=0)
    soon = credential(team, "soon", now + timedelta(days=3))
    credential(team, "later", now + timedelta(days=30))
    credential(team, "never", None)
    [event] = beat(now, django_capture_on_commit_callbacks)
    assert_envelope(event, type_="credential.expiring", workspace=team, subject=str(soon.pk))
    expires = (now + timedelta(days=3)).isoformat()
    assert event["id"] == f"credential:{soon.pk}:{expires}"
    assert event["data"] == {
        "credential": {"id": str(soon.pk), "name": "soon", "kind": "http_bearer"},
        "expires_at": expires,
        "expired": False,
        "days_left": 3,
    }
    assert event["link"] == f"/dashboard/?workspace={team.pk}"
    assert SECRET not in json.dumps(event)

    # Beat again an hour later: the same id, which the rules act on once.
    [again] = beat(now + timedelta(hours=1), django_capture_on_commit_callbacks)
    assert again["id"] == event["id"]
    # A new expiry date is a new event.
    Credential.objects.filter(pk=soon.pk).update(expires_at=now + timedelta(days=5))
    [moved] = beat(now, django_capture_on_commit_callbacks)
    assert moved["id"] == f"credential:{soon.pk}:{(now + timedelta(days=5)).isoformat()}"


def test_an_expired_credential_raises_one_more_event_then_is_left_alone(
    team, broker, settings, django_capture_on_commit_callbacks
):
    settings.DWC_CREDENTIAL_EXPIRY_WARNING_DAYS = 2
    now = timezone.now().replace(microsecond=0)
    gone = credential(team, "gone", now - timedelta(hours=1))
    [event] = beat(now, django_capture_on_commit_callbacks)
    assert event["type"] == "credential.expiring"
    assert event["id"] == f"credential:{gone.pk}:{(now - timedelta(hours=1)).isoformat()}:expired"
    assert (event["data"]["expired"], event["data"]["days_left"]) == (True, 0)
    assert beat(now + timedelta(days=3), django_capture_on_commit_callbacks) == []


def test_one_beat_sends_its_events_in_few_messages(team, broker, django_capture_on_commit_callbacks):
    now = timezone.now()
    for n in range(3):
        credential(team, f"c{n}", now + timedelta(days=1, minutes=n))
    with django_capture_on_commit_callbacks(execute=True):
        assert credentials_expiry_submit(now=now) == 3
    [batch] = broker()
    assert [event["data"]["credential"]["name"] for event in batch] == ["c0", "c1", "c2"]


def test_expires_at_is_written_and_read_through_the_api_and_audited(team, team_admin):
    api = client_for(team_admin)
    body = {"workspace": str(team.pk), "name": "k", "kind": "http_bearer", "value": {"token": SECRET}}
    created = api.post("/api/v3/credentials", {**body, "expires_at": "2031-05-01T09:30:00+02:00"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["expires_at"] == "2031-05-01T07:30:00Z"
    url = f"/api/v3/credentials/{created.json()['id']}"
    naive = api.patch(url, {"expires_at": "2031-06-01T00:00:00"}, format="json")
    assert naive.json()["expires_at"] == "2031-06-01T00:00:00Z"  # UTC when no offset is given
    cleared = api.patch(url, {"expires_at": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["expires_at"] is None
    assert Credential.objects.get().expires_at is None
    from audit.models import AuditEvent

    events = AuditEvent.objects.filter(action__startswith="credential.").order_by("id")
    assert [event.changes.get("expires_at") for event in events] == [
        [None, "2031-05-01T07:30:00+00:00"],
        ["2031-05-01T07:30:00+00:00", "2031-06-01T00:00:00+00:00"],
        ["2031-06-01T00:00:00+00:00", None],
    ]


@pytest.mark.parametrize("value", ["tomorrow", "2031-02-30T00:00:00Z", 1700000000, ["2031-01-01"], "2031-01-01"])
def test_an_expiry_that_is_not_a_date_and_time_is_a_400_naming_the_field(team, team_admin, value):
    api = client_for(team_admin)
    body = {"workspace": str(team.pk), "name": "k", "kind": "http_bearer", "value": {"token": SECRET}}
    answer = api.post("/api/v3/credentials", {**body, "expires_at": value}, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["errors"] == {"expires_at": [EXPIRES_AT_INVALID]}
    assert not Credential.objects.exists()


def test_the_admin_sets_an_expiry(team, client):
    from accounts.models import User

    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    row = credential(team, "k", None)
    answer = client.post(
        f"/admin/workflows/credential/{row.pk}/change/",
        {"name": "k", "kind": "http_bearer", "value": "", "expires_at_0": "2031-03-04", "expires_at_1": "05:06:07"},
    )
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    row.refresh_from_db()
    assert row.expires_at == datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
    page = client.post(
        f"/admin/workflows/credential/{row.pk}/change/",
        {"name": "k", "kind": "http_bearer", "value": "", "expires_at_0": "someday", "expires_at_1": "noon"},
    )
    assert page.status_code == 200 and "expires_at" in page.context["adminform"].form.errors
