"""Saving a workflow refuses nodes that name a credential or a workflow this workspace does not have.

Another workspace's object, a deleted one and one that never existed get the same 400, on the field
(`nodes.<key>.config.<field>`), and nothing is written: no workflow, node, edge, version, tag or
audit event. Templates are left to the run, which looks names up in its own workspace only.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.access import personal_workspace
from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.workflows.helpers import create, snapshot_counts
from workflows.credentials import REFERENCES as CREDENTIAL_REFERENCES
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.models import EventTrigger, Node, Workflow
from workflows.services.credentials import credential_save
from workflows.services.workflows import workflow_create
from workflows.specs import WORKFLOW_REFERENCES

NO_CREDENTIAL = "No credential named {!r} in this workspace."
NO_WORKFLOW = "No workflow with the id or slug {!r} in this workspace."
MISSING_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def mine(user):
    """This user's workspace: a credential, a child workflow and a deleted one."""
    workspace = personal_workspace(user)
    credential_save(workspace_id=workspace.pk, name="my-key", kind="http_bearer", value={"token": "t"})
    child = workflow_create(actor=user, workspace=workspace, data={"name": "Child", "slug": "child"})
    gone = workflow_create(actor=user, workspace=workspace, data={"name": "Gone", "slug": "gone"})
    Workflow.objects.filter(pk=gone.pk).update(deleted_at=gone.created_at)
    return {"workspace": workspace, "child": child, "gone": gone}


@pytest.fixture
def theirs(db):
    """Another user's workspace, holding objects under names this user might guess."""
    stranger = UserFactory()
    workspace = personal_workspace(stranger)
    credential_save(workspace_id=workspace.pk, name="their-key", kind="http_bearer", value={"token": "t"})
    credential_save(workspace_id=workspace.pk, name="their-signer", kind="hmac_secret", value={"secret": "s"})
    workflow = workflow_create(actor=stranger, workspace=workspace, data={"name": "Theirs", "slug": "their-child"})
    return {"workspace": workspace, "workflow": workflow}


def written() -> tuple[int, ...]:
    return (*snapshot_counts(), AuditEvent.objects.count())


def assert_refused(answer, path: str, message: str) -> None:
    assert answer.status_code == 400, answer.content
    assert answer.json()["errors"] == {path: [message]}


def fetch(credential: str) -> dict:
    return {"key": "fetch", "type": "http_request", "config": {"url": "https://example.org", "credential": credential}}


def call(workflow: str) -> dict:
    return {"key": "call", "type": "subworkflow", "config": {"workflow": workflow}}


# --- create --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({"type": "http_request", "config": {"url": "https://example.org", "credential": "{name}"}}, "credential"),
        ({"type": "document", "prompt": "Hi", "config": {"credential": "{name}"}}, "credential"),
        ({"type": "webhook", "config": {"url": "https://example.org", "secret": "{name}"}}, "secret"),
    ],
    ids=["http_request", "document", "webhook"],
)
def test_create_refuses_a_credential_of_another_workspace_as_if_it_did_not_exist(user_api, mine, theirs, node, field):
    before = written()
    answers = {}
    for name in ("their-key", "nowhere"):
        config = {key: name if value == "{name}" else value for key, value in node["config"].items()}
        body = {"name": "Sneaky", "nodes": [{**node, "key": "step", "config": config}]}
        answers[name] = user_api.post("/api/v3/workflows", body, format="json")
        assert_refused(answers[name], f"nodes.step.config.{field}", NO_CREDENTIAL.format(name))
    assert written() == before
    # Nothing tells a name used elsewhere from a made-up one: the bodies differ only by the name.
    foreign, missing = (answers[name].content.decode() for name in ("their-key", "nowhere"))
    assert foreign.replace("their-key", "nowhere") == missing


def test_create_refuses_a_workflow_of_another_workspace_by_id_or_slug(user_api, mine, theirs):
    before = written()
    foreign = theirs["workflow"]
    for reference in (str(foreign.pk), str(foreign.pk).upper(), "their-child", MISSING_ID, "nowhere"):
        answer = user_api.post("/api/v3/workflows", {"name": "Sneaky", "nodes": [call(reference)]}, format="json")
        assert_refused(answer, "nodes.call.config.workflow", NO_WORKFLOW.format(reference))
    loop = {"key": "each", "type": "loop", "config": {"items": "input.rows", "workflow": str(foreign.pk)}}
    answer = user_api.post("/api/v3/workflows", {"name": "Sneaky", "nodes": [loop]}, format="json")
    assert_refused(answer, "nodes.each.config.workflow", NO_WORKFLOW.format(str(foreign.pk)))
    assert written() == before


def test_a_deleted_workflow_is_unknown_too(user_api, mine):
    before = written()
    gone = mine["gone"]
    for reference in ("gone", str(gone.pk)):
        answer = user_api.post("/api/v3/workflows", {"name": "W", "nodes": [call(reference)]}, format="json")
        assert_refused(answer, "nodes.call.config.workflow", NO_WORKFLOW.format(reference))
    assert written() == before


def test_every_unknown_reference_is_named_at_once(user_api, mine, theirs):
    body = {
        "name": "Sneaky",
        "nodes": [
            fetch("their-key"),
            {"key": "ok", "type": "http_request", "config": {"url": "https://example.org", "credential": "my-key"}},
            call("their-child"),
            {"key": "sign", "type": "webhook", "config": {"url": "https://example.org", "secret": "their-signer"}},
        ],
    }
    answer = user_api.post("/api/v3/workflows", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == {
        "nodes.fetch.config.credential": [NO_CREDENTIAL.format("their-key")],
        "nodes.call.config.workflow": [NO_WORKFLOW.format("their-child")],
        "nodes.sign.config.secret": [NO_CREDENTIAL.format("their-signer")],
    }


def test_the_steps_list_of_older_clients_is_checked_too(user_api, mine, theirs):
    before = written()
    steps = [{"name": "sign", "type": "webhook", "config": {"url": "https://example.org", "secret": "their-signer"}}]
    answer = user_api.post("/api/v3/workflows", {"name": "Legacy", "steps": steps}, format="json")
    assert_refused(answer, "nodes.sign.config.secret", NO_CREDENTIAL.format("their-signer"))
    assert written() == before


# --- update --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_refuses_foreign_references_and_changes_nothing(user_api, mine, theirs, method):
    workflow = create(user_api, {"name": "Mine", "nodes": [fetch("my-key")]})
    url = f"/api/v3/workflows/{workflow['id']}"
    before, definition = written(), user_api.get(url).json()

    body = {"name": "Renamed", "nodes": [fetch("my-key"), call(str(theirs["workflow"].pk))]}
    answer = getattr(user_api, method)(url, body, format="json")
    assert_refused(answer, "nodes.call.config.workflow", NO_WORKFLOW.format(str(theirs["workflow"].pk)))
    answer = getattr(user_api, method)(url, {"name": "Renamed", "nodes": [fetch("their-key")]}, format="json")
    assert_refused(answer, "nodes.fetch.config.credential", NO_CREDENTIAL.format("their-key"))

    assert written() == before
    assert user_api.get(url).json() == definition


def test_node_endpoints_refuse_foreign_references(user_api, mine, theirs):
    workflow = create(user_api, {"name": "Mine", "nodes": [fetch("my-key")]})
    node_id = workflow["nodes"][0]["id"]
    before = written()

    added = user_api.post(f"/api/v3/workflows/{workflow['id']}/nodes", call("their-child"), format="json")
    assert_refused(added, "nodes.call.config.workflow", NO_WORKFLOW.format("their-child"))
    config = {"url": "https://example.org", "credential": "their-key"}
    patched = user_api.patch(f"/api/v3/nodes/{node_id}", {"config": config}, format="json")
    assert_refused(patched, "nodes.fetch.config.credential", NO_CREDENTIAL.format("their-key"))
    put = user_api.put(f"/api/v3/nodes/{node_id}", {"type": "http_request", "config": config}, format="json")
    assert_refused(put, "nodes.fetch.config.credential", NO_CREDENTIAL.format("their-key"))

    assert written() == before
    assert Node.objects.get(pk=node_id).config["credential"] == "my-key"


def test_restoring_a_version_checks_the_references_it_brings_back(user_api, user, mine):
    workspace = mine["workspace"]
    credential_save(workspace_id=workspace.pk, name="short-lived", kind="http_bearer", value={"token": "t"})
    workflow = create(user_api, {"name": "Mine", "nodes": [fetch("short-lived")]})
    url = f"/api/v3/workflows/{workflow['id']}"
    assert user_api.patch(url, {"nodes": [fetch("my-key")]}, format="json").status_code == 200
    short_lived = workspace.credentials.get(name="short-lived")
    assert user_api.delete(f"/api/v3/credentials/{short_lived.pk}").status_code == 204
    before = written()

    answer = user_api.post(f"{url}/versions/1/restore")
    assert_refused(answer, "nodes.fetch.config.credential", NO_CREDENTIAL.format("short-lived"))
    assert written() == before


# --- import --------------------------------------------------------------------------------------


def document(name: str, *nodes: dict, slug: str | None = None) -> dict:
    return {"format": "dwc-workflow/1", "name": name, "slug": slug, "nodes": list(nodes), "edges": []}


def test_import_refuses_foreign_references(user_api, mine, theirs):
    before = written()
    single = user_api.post("/api/v3/workflows/import", document("One", fetch("their-key")), format="json")
    assert_refused(single, "nodes.fetch.config.credential", NO_CREDENTIAL.format("their-key"))

    batch = [document("Fine", fetch("my-key")), document("Sneaky", call(str(theirs["workflow"].pk)))]
    answer = user_api.post("/api/v3/workflows/import", batch, format="json")
    assert_refused(answer, "1.nodes.call.config.workflow", NO_WORKFLOW.format(str(theirs["workflow"].pk)))
    # Importing into their workspace is no way around it.
    into_theirs = user_api.post(
        f"/api/v3/workflows/import?workspace={theirs['workspace'].pk}", document("X", fetch("their-key")), format="json"
    )
    assert into_theirs.status_code == 400 and list(into_theirs.json()["errors"]) == ["workspace"]
    assert written() == before


def test_an_import_batch_may_name_its_own_workflows_by_slug_in_any_order(user_api, mine):
    parent = document("Parent", call("batch-child"), slug="batch-parent")
    child = document("Batch child", {"key": "hello", "type": "text", "content": "hi"}, slug="batch-child")
    answer = user_api.post("/api/v3/workflows/import", [parent, child], format="json")
    assert answer.status_code == 201, answer.content
    assert [w["slug"] for w in answer.json()] == ["batch-parent", "batch-child"]


# --- what still saves ------------------------------------------------------------------------------


def test_own_credentials_and_workflows_by_id_or_slug_still_save(user_api, mine):
    child = mine["child"]
    body = {
        "name": "Parent",
        "slug": "parent",
        "nodes": [
            fetch("my-key"),
            {"key": "by_id", "type": "subworkflow", "config": {"workflow": str(child.pk)}},
            {"key": "by_slug", "type": "subworkflow", "config": {"workflow": "child"}},
            {"key": "each", "type": "loop", "config": {"items": "input.rows", "workflow": str(child.pk).upper()}},
            {"key": "again", "type": "subworkflow", "config": {"workflow": "parent", "wait": False}},
            # Templates are the run's to look up (in its own workspace); saving cannot.
            {"key": "later", "type": "http_request", "config": {"url": "https://x.org", "credential": "{{ input.c }}"}},
            {"key": "sign", "type": "webhook", "config": {"url": "https://example.org", "secret": "my-key"}},
        ],
    }
    workflow = create(user_api, body)
    assert [node["key"] for node in workflow["nodes"]] == [
        "fetch",
        "by_id",
        "by_slug",
        "each",
        "again",
        "later",
        "sign",
    ]

    url = f"/api/v3/workflows/{workflow['id']}"
    by_id = {"key": "self", "type": "subworkflow", "config": {"workflow": workflow["id"]}}
    added = user_api.post(f"{url}/nodes", by_id, format="json")
    assert added.status_code == 201, added.content
    renamed = user_api.patch(url, {"slug": "parent-2", "nodes": [call("parent-2")]}, format="json")
    assert renamed.status_code == 200, renamed.content
    imported = user_api.post("/api/v3/workflows/import", document("Imported", call("child")), format="json")
    assert imported.status_code == 201, imported.content


def test_a_credential_renamed_or_deleted_later_does_not_block_editing(user_api, mine):
    """What the workflow already named is the run's to report; the rest of it stays editable."""
    workspace = mine["workspace"]
    doomed = credential_save(workspace_id=workspace.pk, name="doomed", kind="http_bearer", value={"token": "t"})
    workflow = create(user_api, {"name": "Mine", "nodes": [fetch("doomed"), {"key": "note", "content": "v1"}]})
    url = f"/api/v3/workflows/{workflow['id']}"
    renamed = user_api.patch(f"/api/v3/credentials/{doomed.pk}", {"name": "renamed"}, format="json")
    assert renamed.status_code == 200
    assert user_api.delete(f"/api/v3/workflows/{mine['child'].pk}").status_code == 204

    definition = user_api.get(url).json()
    definition["nodes"][1]["content"] = "v2"
    assert user_api.put(url, definition, format="json").status_code == 200
    note = next(node for node in definition["nodes"] if node["key"] == "note")
    assert user_api.patch(f"/api/v3/nodes/{note['id']}", {"content": "v3"}, format="json").status_code == 200
    fetch_node = next(node for node in definition["nodes"] if node["key"] == "fetch")
    assert user_api.patch(f"/api/v3/nodes/{fetch_node['id']}", {"title": "Fetch"}, format="json").status_code == 200
    # A new reference to it is still refused.
    answer = user_api.post(f"{url}/nodes", call("child"), format="json")
    assert_refused(answer, "nodes.call.config.workflow", NO_WORKFLOW.format("child"))


def test_the_check_costs_one_query_per_kind_of_reference_whatever_the_node_count(user_api, mine):
    def queries(count: int) -> int:
        nodes = [
            node
            for index in range(count)
            for node in (
                {**fetch("my-key"), "key": f"fetch_{index}"},
                {**call("child"), "key": f"call_{index}"},
            )
        ]
        with CaptureQueriesContext(connection) as captured:
            create(user_api, {"name": f"W{count}", "nodes": nodes})
        return len(captured)

    assert queries(1) == queries(10)


def test_every_node_config_field_that_names_a_workflow_or_credential_is_checked():
    def fields_whose_description_says(*words: str) -> set[tuple[str, str]]:
        return {
            (type_name, field)
            for type_name, node_type in NODE_TYPES.items()
            for field, schema in node_type.config_schema.get("properties", {}).items()
            if schema.get("type") == "string" and any(word in schema.get("description", "").lower() for word in words)
        }

    assert fields_whose_description_says("id or slug of the workflow") == set(WORKFLOW_REFERENCES.items())
    assert fields_whose_description_says("credential") == set(CREDENTIAL_REFERENCES.items())


# --- triggers ----------------------------------------------------------------------------------------


def test_an_event_trigger_cannot_follow_or_move_to_a_foreign_source(user_api, mine, theirs):
    target = mine["child"]
    url = f"/api/v3/workflows/{target.pk}/event-triggers"
    refused = user_api.post(url, {"source_workflow": str(theirs["workflow"].pk)}, format="json")
    assert_refused(refused, "source_workflow", "No workflow with this id in this workspace.")
    assert not EventTrigger.objects.exists()

    source = create(user_api, {"name": "Source"})
    trigger = user_api.post(url, {"source_workflow": source["id"]}, format="json")
    assert trigger.status_code == 201, trigger.content
    moved = user_api.patch(
        f"/api/v3/event-triggers/{trigger.json()['id']}", {"source_workflow": str(mine["gone"].pk)}, format="json"
    )
    assert_refused(moved, "source_workflow", "No workflow with this id in this workspace.")
    assert str(EventTrigger.objects.get().source_workflow_id) == source["id"]
