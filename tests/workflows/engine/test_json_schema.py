"""Users' JSON Schemas resolve references within themselves only: nothing is fetched, read or connected to.

A local server counts the requests a `$ref` to it would make; `outbound` records every connection
and urllib fetch the code under test attempts. Both must stay empty, at save time and at run time.
"""

import socket
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.workflows.helpers import create
from workflows.engine import json_schema
from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import StepContext
from workflows.engine.nodes.document import DocumentNode
from workflows.models import Node, Workflow, WorkflowVersion

OUTSIDE = "points outside this schema"
DOCUMENT = {"key": "facts", "type": "document", "prompt": '{"title": "Tides"}', "config": {"format": "json"}}


@pytest.fixture
def outbound(monkeypatch):
    """Every connection (Redis, the tests' own cache and broker, excepted) and urllib fetch attempted."""
    attempts: list = []
    redis = urlsplit(settings.REDIS_URL)
    expected = {(redis.hostname, redis.port or 6379)}

    def connecting(real):
        def connect(sock, address):
            if not (isinstance(address, tuple) and tuple(address[:2]) in expected):
                attempts.append(address)
            return real(sock, address)

        return connect

    monkeypatch.setattr(socket.socket, "connect", connecting(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", connecting(socket.socket.connect_ex))
    real_urlopen = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        attempts.append(getattr(url, "full_url", url))
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return attempts


@pytest.fixture
def target(httpserver) -> str:
    """A local URL answering with a schema, as a server reachable from ours would."""
    httpserver.expect_request("/schema.json").respond_with_json({"type": "string", "title": "fetched!"})
    return httpserver.url_for("/schema.json")


@pytest.fixture
def text_file(tmp_path) -> str:
    path = tmp_path / "notes.txt"
    path.write_text("root:x:0:0:not JSON\n")
    return path.as_uri()


def outside_schemas(url: str, file_url: str) -> list[dict]:
    return [
        {"$ref": url},
        {"type": "object", "properties": {"a": {"$ref": url}}},
        {"$dynamicRef": url},
        {"$defs": {"unused": {"$ref": url}}},
        {"$id": url, "$ref": "other.json"},
        {"$ref": file_url},
        {"$ref": "file:///etc/passwd"},
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("index", range(7))
def test_an_input_schema_referring_outside_itself_is_refused_when_saved(
    user_api, target, text_file, httpserver, outbound, index
):
    schema = outside_schemas(target, text_file)[index]
    answer = user_api.post("/api/v3/workflows", {"name": "x", "input_schema": schema}, format="json")

    assert answer.status_code == 400, answer.content
    assert OUTSIDE in " ".join(answer.json()["errors"]["input_schema"])
    assert "fetched!" not in answer.content.decode() and "root:x" not in answer.content.decode()
    assert not Workflow.objects.exists()
    assert (httpserver.log, outbound) == ([], [])


def _save(api, how: str, schema: dict):
    """Save `schema` the way `how` says; returns (answer, the field the error must name)."""
    if how == "create node":
        body = {"name": "x", "nodes": [{**DOCUMENT, "config": {"format": "json", "json_schema": schema}}]}
        return api.post("/api/v3/workflows", body, format="json"), "nodes.facts.config.json_schema"
    if how == "import":
        document = {"format": "dwc-workflow/1", "name": "x", "input_schema": schema, "nodes": [], "edges": []}
        return api.post("/api/v3/workflows/import", document, format="json"), "input_schema"
    workflow = create(api, {"name": "x", "nodes": [DOCUMENT]})
    url = f"/api/v3/workflows/{workflow['id']}"
    node_url = f"/api/v3/nodes/{workflow['nodes'][0]['id']}"
    json_schema_config = {"config": {"format": "json", "json_schema": schema}}
    calls = {
        "put": (api.put, url, {"name": "x", "input_schema": schema}, "input_schema"),
        "patch": (api.patch, url, {"input_schema": schema}, "input_schema"),
        "append node": (
            api.post,
            f"{url}/nodes",
            {**DOCUMENT, "key": "more", **json_schema_config},
            "nodes.more.config.json_schema",
        ),
        "patch node": (api.patch, node_url, json_schema_config, "nodes.facts.config.json_schema"),
    }
    method, path, body, field = calls[how]
    return method(path, body, format="json"), field


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["create node", "import", "put", "patch", "append node", "patch node"])
def test_every_way_of_saving_a_schema_refuses_an_outside_reference(user_api, target, httpserver, outbound, how):
    answer, field = _save(user_api, how, {"type": "object", "properties": {"a": {"$ref": target}}})

    assert answer.status_code == 400, answer.content
    assert OUTSIDE in " ".join(answer.json()["errors"][field]), answer.json()
    assert (httpserver.log, outbound) == ([], [])


@pytest.mark.django_db
def test_restoring_a_version_with_an_outside_reference_is_refused(user_api, target, httpserver, outbound):
    workflow = create(user_api, {"name": "x", "nodes": [DOCUMENT]})
    # A version saved before references were checked.
    version = WorkflowVersion.objects.get(workflow_id=workflow["id"], number=1)
    version.snapshot = {**version.snapshot, "input_schema": {"$ref": target}}
    version.save()

    answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/versions/1/restore")

    assert answer.status_code == 400, answer.content
    assert OUTSIDE in " ".join(answer.json()["errors"]["input_schema"])
    assert (httpserver.log, outbound) == ([], [])


@pytest.mark.django_db
@pytest.mark.parametrize("index", range(7))
def test_a_stored_schema_referring_outside_is_not_followed_when_a_run_starts(
    user_api, target, text_file, httpserver, outbound, index
):
    workflow = create(user_api, {"name": "x", "status": "active"})
    # Stored before references were checked at save time.
    Workflow.objects.filter(pk=workflow["id"]).update(input_schema=outside_schemas(target, text_file)[index])

    answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {"a": "b"}}, format="json")

    assert answer.status_code in (202, 400), answer.content
    if answer.status_code == 400:
        assert "input_schema cannot be applied" in " ".join(answer.json()["errors"]["input"])
    assert "fetched!" not in answer.content.decode() and "root:x" not in answer.content.decode()
    assert (httpserver.log, outbound) == ([], [])


def test_a_document_steps_stored_schema_referring_outside_fails_the_step_without_fetching(target, httpserver, outbound):
    context = StepContext(run_id="r", step_id="s", node_key="facts", attempt=1, workspace_id="w", expressions={})
    prepared = {"config": {"format": "json", "json_schema": {"$ref": target}}, "prompt": '{"a": 1}', "title": ""}

    with pytest.raises(PermanentError, match="cannot be applied"):
        DocumentNode.execute(prepared, context)

    assert (httpserver.log, outbound) == ([], [])


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"name": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/name"}}},
        {"$defs": {"name": {"$anchor": "name", "type": "string"}}, "properties": {"a": {"$ref": "#name"}}},
        {"$id": "https://example.org/root.json", "$defs": {"a": {"$id": "a.json"}}, "$ref": "a.json"},
        {"$ref": "https://json-schema.org/draft/2020-12/schema"},  # a meta-schema: it ships with jsonschema
        {"$dynamicAnchor": "node", "properties": {"children": {"items": {"$dynamicRef": "#node"}}}},
        {"enum": [{"$ref": "https://example.org/"}]},  # data, not a reference
        {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"a": {}}, "$ref": "#/definitions/a"},
    ],
)
def test_references_within_the_schema_are_allowed(schema, outbound):
    assert json_schema.schema_problems(schema) == []
    assert outbound == []


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"$ref": "#/$defs/missing"}, "names nothing in this schema"),
        ({"$ref": "#missing"}, "names nothing in this schema"),
        ({"$ref": "other.json"}, OUTSIDE),
        ({"$schema": "http://127.0.0.1:9/meta", "type": "string"}, "not a JSON Schema version we know"),
    ],
)
def test_dangling_references_and_unknown_dialects_are_refused(schema, problem, outbound):
    assert problem in " ".join(json_schema.schema_problems(schema))
    assert outbound == []


def test_a_reference_loop_is_an_unusable_schema_not_a_crash():
    schema = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    with pytest.raises(json_schema.UnusableSchema, match="loop"):
        json_schema.schema_errors(schema, {})


def test_nodes_keep_their_json_schema_when_it_refers_within_itself(db, user_api):
    schema = {"$defs": {"t": {"type": "string"}}, "properties": {"title": {"$ref": "#/$defs/t"}}}
    node = {**DOCUMENT, "config": {"format": "json", "json_schema": schema}}
    workflow = create(user_api, {"name": "x", "nodes": [node]})
    assert Node.objects.get(workflow_id=workflow["id"]).config["json_schema"] == schema
