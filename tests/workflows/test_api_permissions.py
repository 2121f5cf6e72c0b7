"""Viewers read, editors write, and a workflow of a workspace one is not a member of does not exist."""

import pytest

from accounts.models import Membership
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.workflows.helpers import BLOG_BODY, chain_body, create, snapshot_counts
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def foreign():
    """A workflow in a workspace owned by someone else, with one version to restore."""
    owner = UserFactory()
    workspace = Membership.objects.get(user=owner).workspace
    workflow = create(client_for(owner), {**chain_body("a", "b"), "workspace": str(workspace.id)})
    return workflow, owner


def every_endpoint(workflow: dict) -> list[tuple[str, str, object]]:
    wid, node_id = workflow["id"], workflow["nodes"][0]["id"]
    return [
        ("get", f"/api/v3/workflows/{wid}", None),
        ("put", f"/api/v3/workflows/{wid}", {"name": "stolen"}),
        ("patch", f"/api/v3/workflows/{wid}", {"name": "stolen"}),
        ("delete", f"/api/v3/workflows/{wid}", None),
        ("post", f"/api/v3/workflows/{wid}/restore", None),
        ("get", f"/api/v3/workflows/{wid}/nodes", None),
        ("post", f"/api/v3/workflows/{wid}/nodes", {"content": "x"}),
        ("get", f"/api/v3/nodes/{node_id}", None),
        ("put", f"/api/v3/nodes/{node_id}", {"content": "x"}),
        ("patch", f"/api/v3/nodes/{node_id}", {"content": "x"}),
        ("delete", f"/api/v3/nodes/{node_id}", None),
        ("get", f"/api/v3/workflows/{wid}/versions", None),
        ("get", f"/api/v3/workflows/{wid}/versions/1", None),
        ("post", f"/api/v3/workflows/{wid}/versions/1/restore", None),
        ("get", f"/api/v3/workflows/{wid}/export", None),
    ]


def test_a_stranger_gets_404_on_every_endpoint_and_changes_nothing(foreign, user_api):
    workflow, _ = foreign
    before = snapshot_counts()
    for method, url, body in every_endpoint(workflow):
        answer = getattr(user_api, method)(url, body, format="json")
        assert answer.status_code == 404, (method, url, answer.status_code)
        assert answer.json()["detail"] in {"No such workflow.", "No such node.", "No such workspace."}
    assert snapshot_counts() == before
    assert Workflow.objects.get(pk=workflow["id"]).name == "Chain"


def test_a_stranger_cannot_bulk_or_import_into_a_foreign_workflow_or_workspace(foreign, user_api):
    workflow, _owner = foreign
    before = snapshot_counts()
    bulk = user_api.post("/api/v3/workflows/bulk", {"action": "delete", "ids": [workflow["id"]]}, format="json")
    assert bulk.status_code == 400
    assert bulk.json()["errors"] == {f"ids.{workflow['id']}": ["No such workflow."]}
    workspace = workflow["workspace"]
    document = {"format": "dwc-workflow/1", "name": "x", "nodes": [], "edges": []}
    imported = user_api.post(f"/api/v3/workflows/import?workspace={workspace}", document, format="json")
    assert imported.status_code == 400
    assert imported.json()["errors"] == {"workspace": ["No such workspace."]}
    created = user_api.post("/api/v3/workflows", {"name": "x", "workspace": workspace}, format="json")
    assert created.status_code == 400
    assert snapshot_counts() == before


def test_foreign_workflows_never_appear_in_lists_or_searches(foreign, user_api):
    assert user_api.get("/api/v3/workflows").json()["count"] == 0
    assert user_api.get("/api/v3/workflows", {"search": "Chain"}).json()["count"] == 0
    assert user_api.get("/api/v3/workflows", {"workspace": foreign[0]["workspace"]}).json()["count"] == 0


def test_a_viewer_reads_but_cannot_write(foreign):
    workflow, _ = foreign
    viewer = MembershipFactory(workspace_id=workflow["workspace"], role="viewer").user
    api = client_for(viewer)
    before = snapshot_counts()
    for method, url, body in every_endpoint(workflow):
        answer = getattr(api, method)(url, body, format="json")
        expected = 200 if method == "get" else 403
        assert answer.status_code == expected, (method, url, answer.status_code)
    bulk = api.post("/api/v3/workflows/bulk", {"action": "pause", "ids": [workflow["id"]]}, format="json")
    assert bulk.status_code == 400
    assert snapshot_counts() == before


def test_an_editor_writes(foreign):
    workflow, _ = foreign
    editor = MembershipFactory(workspace_id=workflow["workspace"], role="editor").user
    api = client_for(editor)
    assert api.patch(f"/api/v3/workflows/{workflow['id']}", {"name": "Edited"}, format="json").status_code == 200
    assert api.post(f"/api/v3/workflows/{workflow['id']}/nodes", {"content": "x"}, format="json").status_code == 201


def test_a_superuser_reads_a_workflow_of_a_workspace_they_are_not_in(user_api):
    workflow = create(user_api, BLOG_BODY)
    admin = client_for(UserFactory(is_superuser=True, is_staff=True))
    answer = admin.get(f"/api/v3/workflows/{workflow['id']}")
    assert answer.status_code == 200, answer.content
    assert answer.json()["name"] == BLOG_BODY["name"]
