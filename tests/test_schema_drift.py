"""The API answers as its OpenAPI schema says (issue 17, finding 12), case by case: each of these was
a request schemathesis found accepted although the schema forbids it, refused although the schema
allows it, a 500, or an answer its schema does not describe. tests/test_api_fuzz.py runs schemathesis
itself; these pin what it found."""

import pytest

from accounts.access import personal_workspace
from accounts.models import Membership
from core.openapi import NO_NUL, STORABLE_JSON
from core.pagination import PAGE_SIZE_INVALID
from tests.api_world import api_schema
from tests.factories import UserFactory
from workflows.models import Workflow
from workflows.services.credentials import credential_save
from workflows.services.workflows import EDGES_WITHOUT_NODES, workflow_create

pytestmark = pytest.mark.django_db


def errors_of(answer) -> dict:
    assert answer.status_code == 400, (answer.status_code, answer.content[:300])
    return answer.json()["errors"]


def workflow_of(user) -> Workflow:
    return workflow_create(actor=user, workspace=personal_workspace(user), data={"name": "W"})


# --- JSON values are taken at their type (core.strict_json) ---------------------------------------


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_a_boolean_field_takes_true_or_false_only(user_api, user, value):
    workspace = personal_workspace(user)
    answer = user_api.patch(f"/api/v3/workspaces/{workspace.pk}", {"mfa_required": value}, format="json")
    assert "mfa_required" in errors_of(answer)


def test_a_string_field_takes_no_number_and_an_integer_field_no_text(user_api, user):
    assert errors_of(user_api.post("/api/v3/workspaces", {"name": 5}, format="json")) == {
        "name": ["Not a valid string."]
    }
    run = user_api.post(f"/api/v3/workflows/{workflow_of(user).pk}/runs", {"input": "{}"}, format="json")
    assert "input" in errors_of(run)


def test_query_strings_keep_their_text_reading(user_api, user):
    workspace = personal_workspace(user)
    credential = credential_save(workspace_id=workspace.pk, name="c", kind="http_bearer", value={"token": "t"})
    assert user_api.delete(f"/api/v3/credentials/{credential.pk}?force=true").status_code == 204


# --- query parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", ["0", "-1", "null", "false", "2.5", "1_0", "NaN", "1e999"])
def test_a_page_size_that_is_not_a_whole_number_of_one_or_more_is_refused(user_api, page_size):
    assert errors_of(user_api.get(f"/api/v3/workflows?page_size={page_size}")) == {"page_size": [PAGE_SIZE_INVALID]}


@pytest.mark.parametrize("page_size", ["1", "1.0", "1e0"])
def test_a_page_size_is_a_json_integer_however_spelt(user_api, user, page_size):
    workflow_of(user)
    workflow_of(user)
    assert len(user_api.get(f"/api/v3/workflows?page_size={page_size}").json()["results"]) == 1


def test_an_empty_filter_or_page_size_is_not_applied(user_api, user):
    workflow_of(user)
    page = user_api.get("/api/v3/workflows?page_size=&workspace=&status=&search=").json()
    assert page["count"] == 1


@pytest.mark.parametrize("value", ["yes", "1", "null", "-5"])
def test_a_boolean_filter_takes_true_or_false_only(user_api, value):
    assert "enabled" in errors_of(user_api.get(f"/api/v3/schedules?enabled={value}"))
    assert user_api.get("/api/v3/schedules?enabled=false").status_code == 200


# --- bodies -----------------------------------------------------------------------------------------------


def test_steps_with_a_type_that_is_not_text_are_refused_not_a_500(user_api):
    body = {"name": "W", "steps": [{"name": "", "type": [None], "config": {}}]}
    assert "steps.0" in errors_of(user_api.post("/api/v3/workflows", body, format="json"))


@pytest.mark.parametrize("nodes", [{}, "", 0])
def test_nodes_that_are_not_a_list_are_refused_also_when_empty(user_api, nodes):
    assert "nodes" in errors_of(user_api.post("/api/v3/workflows", {"name": "W", "nodes": nodes}, format="json"))


def test_edges_come_with_nodes_and_carry_text_labels(user_api, user):
    workflow = workflow_of(user)
    edge = {"source": "a", "target": "b", "label": {}}
    answer = user_api.patch(f"/api/v3/workflows/{workflow.pk}", {"edges": [edge]}, format="json")
    assert errors_of(answer) == {"edges": [EDGES_WITHOUT_NODES]}
    nodes = [{"key": "a", "type": "text", "content": "x"}, {"key": "b", "type": "text", "content": "y"}]
    answer = user_api.patch(f"/api/v3/workflows/{workflow.pk}", {"nodes": nodes, "edges": [edge]}, format="json")
    assert "edges.0" in errors_of(answer)


def test_a_membership_patch_without_a_role_changes_nothing(user_api, user):
    other = UserFactory()
    workspace = personal_workspace(user)
    Membership.objects.create(workspace=workspace, user=other, role=Membership.Role.VIEWER)
    answer = user_api.patch(f"/api/v3/workspaces/{workspace.pk}/members/{other.pk}", {}, format="json")
    assert (answer.status_code, answer.json()["role"]) == (200, "viewer")


def test_a_legacy_trigger_takes_a_null_payload_as_no_input(user_api, user):
    workflow = workflow_of(user)
    workflow.status = Workflow.Status.ACTIVE
    workflow.save(update_fields=["status"])
    answer = user_api.post("/api/v3/trigger", {"workflow_id": str(workflow.pk), "payload": None}, format="json")
    assert answer.status_code == 202, answer.content


def test_a_run_event_stream_served_over_wsgi_ends_with_the_events_logged_so_far(user_api, user):
    workflow = workflow_of(user)
    workflow.status = Workflow.Status.ACTIVE
    workflow.save(update_fields=["status"])
    run = user_api.post(f"/api/v3/workflows/{workflow.pk}/runs", {"input": {}}, format="json").json()
    # `?format=` reaches the WSGI server (nginx routes only the Accept header to daphne): no thread held.
    answer = user_api.get(f"/api/v3/runs/{run['id']}/events?format=event-stream")
    body = b"".join(answer).decode()
    assert answer["Content-Type"] == "text/event-stream"
    assert body.startswith("retry: ") and "event: run.created" in body


# --- the schema ---------------------------------------------------------------------------------------


def test_request_text_and_free_form_json_exclude_nul_in_the_schema():
    document = api_schema()
    assert document["openapi"].startswith("3.1")
    body = document["components"]["schemas"]["RunTriggerRequest"]
    assert body["propertyNames"] == {"not": NO_NUL}
    assert body["properties"]["input"]["additionalProperties"] == {"$ref": f"#/components/schemas/{STORABLE_JSON}"}
    name = document["components"]["schemas"]["WorkspaceRequest"]["properties"]["name"]
    assert name["not"] == NO_NUL


def test_filters_say_they_may_be_empty_and_actions_do_not_list_filters_they_ignore():
    paths = api_schema()["paths"]
    names = {p["name"]: p for p in paths["/api/v3/workflows"]["get"]["parameters"]}
    assert names["workspace"]["allowEmptyValue"] and names["page_size"]["schema"]["minimum"] == 1
    nodes = [
        p["name"] for p in paths["/api/v3/workflows/{id}/nodes"]["get"].get("parameters", []) if p["in"] == "query"
    ]
    assert nodes == []


def test_the_event_stream_is_documented_event_by_event():
    content = api_schema()["paths"]["/api/v3/runs/{id}/events"]["get"]["responses"]["200"]["content"]
    event = content["text/event-stream"]["schema"]
    assert event["required"] == ["id", "event", "data"]
    assert event["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/RunEvent"}
