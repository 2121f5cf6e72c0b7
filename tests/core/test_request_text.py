"""Text PostgreSQL cannot store (NUL, unpaired surrogates) is a 400 naming the field, wherever it comes in."""

import pytest
from rest_framework.test import APIClient

from accounts.access import personal_workspace
from core.problems import PROBLEM_CONTENT_TYPE
from core.request_limits import UNSTORABLE_PATH, UNSTORABLE_QUERY
from core.request_text import UNSTORABLE_TEXT
from tests.workflows.helpers import create, snapshot_counts
from workflows.models import Run
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db


def post_raw(client: APIClient, path: str, body: str, method: str = "post"):
    return getattr(client, method)(path, body, content_type="application/json")


def refused_fields(answer) -> dict:
    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == PROBLEM_CONTENT_TYPE
    return answer.json()["errors"]


@pytest.mark.parametrize("text", ["\\u0000", "before\\u0000after", "\\ud800", "x\\udfff"])
def test_a_workflow_name_with_a_nul_or_a_lone_surrogate_is_refused_by_name(user_api, text):
    before = snapshot_counts()
    answer = post_raw(user_api, "/api/v3/workflows", f'{{"name": "{text}"}}')

    assert refused_fields(answer) == {"name": [UNSTORABLE_TEXT]}
    assert snapshot_counts() == before


def test_every_field_holding_such_text_is_named(user_api):
    body = (
        '{"name": "ok", "description": "\\u0000", "nodes": [{"key": "a", "content": "x", "tags": ["t", "\\u0000"]}],'
        ' "input_schema": {"properties": {"\\u0000key": {}}}}'
    )
    answer = post_raw(user_api, "/api/v3/workflows", body)

    assert refused_fields(answer) == {
        "description": [UNSTORABLE_TEXT],
        "input_schema.properties.\\u0000key": [UNSTORABLE_TEXT],
        "nodes.0.tags.1": [UNSTORABLE_TEXT],
    }


def test_a_paired_surrogate_escape_is_an_ordinary_character(user_api):
    answer = post_raw(user_api, "/api/v3/workflows", '{"name": "wave \\ud83c\\udf0a"}')
    assert answer.status_code == 201, answer.content
    assert answer.json()["name"] == "wave \N{WATER WAVE}"


def test_a_nul_in_a_node_update_is_refused(user_api):
    workflow = create(user_api, {"name": "x", "nodes": [{"key": "a", "content": "x"}]})
    answer = post_raw(user_api, f"/api/v3/nodes/{workflow['nodes'][0]['id']}", '{"tags": ["\\u0000"]}', "patch")
    assert refused_fields(answer) == {"tags.0": [UNSTORABLE_TEXT]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v3/workflows?search=a%00b",
        "/api/v3/runs?status=%00",
        "/api/v3/documents?search=%00",
        "/api/v3/workflows?a%00=1",
    ],
)
def test_a_nul_in_the_query_string_is_refused_by_parameter(user_api, path):
    errors = refused_fields(user_api.get(path))
    assert list(errors.values()) == [[UNSTORABLE_QUERY]]


def test_a_nul_in_the_path_is_refused():
    answer = APIClient().post("/hooks/abc%00def/", "{}", content_type="application/json")
    assert refused_fields(answer) == {"path": [UNSTORABLE_PATH]}


def test_an_inbound_webhook_refuses_such_text_by_field(user):
    workflow = workflow_create(
        actor=user, workspace=personal_workspace(user), data={"name": "Hooked", "status": "active", "nodes": []}
    )
    _hook, token = webhook_create(workflow=workflow, actor=user)

    answer = APIClient().post(f"/hooks/{token}/", '{"a": {"b": "\\u0000"}}', content_type="application/json")

    assert refused_fields(answer) == {"body.a.b": [UNSTORABLE_TEXT]}
    assert not Run.objects.exists()
