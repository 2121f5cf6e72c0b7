import csv
import io
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from audit.models import AuditEvent
from audit.services import audit_record, audit_record_many
from tests.conftest import client_for
from tests.factories import UserFactory
from workflows.services.credentials import credential_create
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

EVENTS = "/api/v3/audit/events"
EXPORT = "/api/v3/audit/events/export"


@pytest.fixture
def history(owner, admin_user, team, stranger):
    """Events in the team (by the owner and an admin) and one in a stranger's own workspace."""
    from accounts.access import personal_workspace

    workflow = workflow_create(actor=owner, workspace=team, data={"name": "Digest"})
    credential_create(
        actor=admin_user, workspace=team, data={"name": "hook", "kind": "http_bearer", "value": {"token": "t0k"}}
    )
    audit_record(action="workflow.exported", actor=admin_user, workspace=team, target=workflow)
    workflow_create(actor=stranger, workspace=personal_workspace(stranger), data={"name": "Private"})
    return workflow


def results(answer) -> list[dict]:
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def team_event_ids(team) -> list[int]:
    return list(AuditEvent.objects.filter(workspace=team).order_by("-id").values_list("id", flat=True))


def test_owners_and_admins_read_their_workspace_events(history, owner, admin_user, team):
    expected = team_event_ids(team)
    assert len(expected) == 3
    for user in (owner, admin_user):
        page = results(client_for(user).get(EVENTS, {"workspace": str(team.pk)}))
        assert [event["id"] for event in page] == expected
        assert [
            event["id"] for event in results(client_for(user).get(EVENTS)) if event["workspace"] == str(team.pk)
        ] == (expected)
    first = results(client_for(owner).get(EVENTS, {"workspace": str(team.pk)}))[-1]
    assert set(first) == {
        "id", "timestamp", "action", "actor_type", "actor", "actor_label", "api_key", "workspace", "workspace_label",
        "target_type", "target_id", "changes", "ip", "user_agent", "request_id", "prev_hash", "hash",
    }  # fmt: skip
    assert (first["action"], first["actor"], first["actor_label"]) == ("workflow.created", str(owner.pk), owner.email)
    assert (first["workspace"], first["workspace_label"]) == (str(team.pk), "Team")
    assert first["timestamp"].endswith("Z")


def test_editors_and_viewers_are_refused_and_strangers_see_nothing(history, editor, viewer, stranger, team):
    for user in (editor, viewer):
        api = client_for(user)
        assert api.get(EVENTS, {"workspace": str(team.pk)}).status_code == 403
        assert api.get(EXPORT, {"workspace": str(team.pk)}).status_code == 403
        assert results(api.get(EVENTS)) == []
    stranger_api = client_for(stranger)
    assert stranger_api.get(EVENTS, {"workspace": str(team.pk)}).status_code == 404
    assert stranger_api.get(EVENTS, {"workspace": "not-a-uuid"}).status_code == 404
    own = results(stranger_api.get(EVENTS))
    assert [event["workspace_label"] for event in own] == [f"{stranger.email}'s workspace"]
    assert APIClient().get(EVENTS).status_code == 401


def test_superusers_also_see_events_without_a_workspace(history, team):
    audit_record(action="auth.login_failed", actor="someone@example.com")
    operator = UserFactory(is_superuser=True, is_staff=True)
    page = results(client_for(operator).get(EVENTS))
    assert len(page) == AuditEvent.objects.count()
    assert page[0]["actor_type"] == "anonymous"


def test_filters(history, owner, admin_user, team):
    api = client_for(owner)

    def ids(**params) -> list[int]:
        return [event["id"] for event in results(api.get(EVENTS, {"workspace": str(team.pk), **params}))]

    by_admin = list(
        AuditEvent.objects.filter(workspace=team, actor=admin_user).order_by("-id").values_list("id", flat=True)
    )
    assert ids(actor=admin_user.email.upper()) == by_admin
    assert ids(actor=str(admin_user.pk)) == by_admin
    assert ids(actor="nobody@example.com") == []
    created = AuditEvent.objects.get(action="workflow.created", workspace=team)
    assert ids(action="workflow.created") == [created.id]
    assert len(ids(action="workflow.*")) == 2
    assert ids(target_type="workflow", target_id=str(history.pk)) == [
        event.id for event in AuditEvent.objects.filter(target_id=str(history.pk)).order_by("-id")
    ]
    assert ids(actor_type="system") == []
    latest = AuditEvent.objects.filter(workspace=team).order_by("-id").first()
    assert ids(since=latest.timestamp.isoformat()) == [
        event.id for event in AuditEvent.objects.filter(workspace=team, timestamp__gte=latest.timestamp).order_by("-id")
    ]
    assert ids(until=(created.timestamp - timedelta(seconds=1)).isoformat()) == []
    assert api.get(EVENTS, {"since": "yesterday"}).status_code == 400


def test_lists_are_paginated(owner, team):
    audit_record_many(records=[{"action": "test.bulk", "workspace": team} for _ in range(60)], actor=owner)
    body = client_for(owner).get(EVENTS, {"workspace": str(team.pk)}).json()
    assert body["count"] == 60
    assert len(body["results"]) < 60 and body["next"]
    assert body["results"][0]["id"] == 60


def test_csv_export_streams_every_matching_event_oldest_first(history, owner, team):
    audit_record(action="test.formula", workspace=team, target_type="cell", target_id="=HYPERLINK(evil)")
    answer = client_for(owner).get(EXPORT, {"format": "csv", "workspace": str(team.pk)})
    assert answer.status_code == 200
    assert answer.streaming
    assert answer["Content-Type"].startswith("text/csv")
    assert answer["Content-Disposition"].startswith('attachment; filename="audit-events-')
    assert answer["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    assert [int(row["id"]) for row in rows] == sorted(team_event_ids(team))
    assert rows[0]["action"] == "workflow.created"
    assert json.loads(rows[0]["changes"])["name"] == [None, "Digest"]
    # A spreadsheet would run this as a formula; the export defuses it.
    assert rows[-1]["target_id"] == "'=HYPERLINK(evil)"


def test_json_export_is_the_same_events_as_the_list(history, owner, team):
    api = client_for(owner)
    answer = api.get(EXPORT, {"workspace": str(team.pk), "action": "workflow.*"})
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    assert answer["Content-Disposition"].endswith('.json"')
    exported = json.loads(b"".join(answer.streaming_content))
    listed = results(api.get(EVENTS, {"workspace": str(team.pk), "action": "workflow.*"}))
    assert exported == listed[::-1]
    assert len(exported) == 2
    assert (
        json.loads(b"".join(api.get(EXPORT, {"workspace": str(team.pk), "action": "nothing"}).streaming_content)) == []
    )


def test_export_refuses_an_unknown_format(owner):
    answer = client_for(owner).get(EXPORT, {"format": "xml"})
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"format": ["Must be one of: json, csv."]}


def test_export_under_asgi_streams_without_reading_everything_first(owner, team):
    audit_record_many(records=[{"action": "test.asgi", "workspace": team} for _ in range(2500)], actor=owner)
    token = RefreshToken.for_user(owner).access_token
    client = AsyncClient()

    async def export():
        response = await client.get(EXPORT, {"workspace": str(team.pk)}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.content
        assert response.is_async  # an async iterator: Django sends it chunk by chunk
        return response.status_code, b"".join([chunk async for chunk in response.streaming_content])

    status, body = async_to_sync(export)()
    assert status == 200
    exported = json.loads(body)
    assert [event["id"] for event in exported] == list(range(1, 2501))
