"""Object-level authorization for every API operation with an id in its path, read from the OpenAPI schema.

For each such operation and method: a member of workspace B gets 404 for workspace A's object (no
existence leak), and a viewer of A gets 403 on every unsafe method. A new endpoint whose path
parameters this file has no object for fails here, so it cannot ship without the check.
"""

import pytest
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator

from accounts.models import Membership, Workspace
from accounts.services import membership_add
from tests.conftest import client_for
from tests.factories import UserFactory
from workflows.credentials import credential_save
from workflows.models import Document, Run, Workflow
from workflows.services.definitions import workflow_create
from workflows.services.event_triggers import event_trigger_create
from workflows.services.runs import run_trigger
from workflows.services.schedules import schedule_create
from workflows.services.webhooks import webhook_create

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")
# Paths owned by a user rather than a workspace: each user sees only their own, checked in their tests.
NOT_WORKSPACE_OBJECTS = (
    "/api/v3/system/worker-pings/{ping_id}",
    "/api/v3/auth/api-keys/{id}",  # tests/accounts/test_api_keys.py: someone else's key is a 404
)


def operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (path, method)
        for path, item in schema["paths"].items()
        if "{" in path and path not in NOT_WORKSPACE_OBJECTS
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


@pytest.fixture
def world(settings):
    """Workspace A with one object of every kind, its owner and viewer, and an outsider from workspace B."""
    owner, viewer, outsider = UserFactory(), UserFactory(), UserFactory()
    workspace = Workspace.objects.create(name="A", created_by=owner)
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    membership_add(workspace=workspace, actor=owner, email=viewer.email, role=Membership.Role.VIEWER)
    nodes = [
        {"key": "doc", "type": "document", "prompt": "Hi"},
        {"key": "ok", "type": "approval", "config": {}, "depends_on": []},
    ]
    workflow = workflow_create(
        actor=owner, workspace=workspace, data={"name": "A's", "status": "active", "nodes": nodes}
    )
    source = workflow_create(actor=owner, workspace=workspace, data={"name": "Source", "nodes": []})
    run, _ = run_trigger(workflow=workflow, input={}, trigger="api", actor=owner)
    document = Document.objects.create(
        workspace=workspace, workflow=workflow, run=run, node_key="doc", version=1, title="Doc", provider="template"
    )
    credential = credential_save(workspace_id=workspace.pk, name="cred", kind="http_bearer", value={"token": "t"})
    trigger = event_trigger_create(
        workflow=workflow, actor=owner, data={"source_workflow": str(source.pk), "on": "succeeded"}
    )
    schedule = schedule_create(workflow=workflow, actor=owner, data={"cron": "0 * * * *"})
    hook, _token = webhook_create(workflow=workflow, actor=owner)
    values = {
        "/api/v3/credentials/": credential.pk,
        "/api/v3/documents/": document.pk,
        "/api/v3/event-triggers/": trigger.pk,
        "/api/v3/nodes/": workflow.nodes.get(key="doc").pk,
        "/api/v3/runs/": run.pk,
        "/api/v3/schedules/": schedule.pk,
        "/api/v3/webhooks/": hook.pk,
        "/api/v3/workflows/": workflow.pk,
        "/api/v3/workspaces/": workspace.pk,
    }
    return {"owner": owner, "viewer": viewer, "outsider": outsider, "values": values, "run": run}


def concrete(path: str, world: dict) -> str:
    """The path with every parameter replaced by workspace A's object (or a sub-key of it)."""
    prefix = next((prefix for prefix in world["values"] if path.startswith(prefix)), None)
    assert prefix is not None, f"add an object of workspace A for {path} to this sweep's world"
    path = path.replace(path[len(prefix) : path.index("}") + 1], str(world["values"][prefix]), 1)
    extra = {"{node_key}": "ok", "{number}": "1", "{user_id}": str(world["owner"].pk)}
    for name, value in extra.items():
        path = path.replace(name, value)
    assert "{" not in path, f"add a value for the parameters of {path} to this sweep"
    return path


def call(client, method: str, path: str):
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, {}, format="json")


@override_settings(DEBUG=False)
@pytest.mark.parametrize(("path", "method"), operations())
def test_an_outsider_gets_404_and_a_viewer_403_on_unsafe_methods(world, path, method):
    url = concrete(path, world)
    outsider = call(client_for(world["outsider"]), method, url)
    assert outsider.status_code == 404, (method, url, outsider.status_code, outsider.content[:300])
    if method in UNSAFE:
        viewer = call(client_for(world["viewer"]), method, url)
        assert viewer.status_code == 403, (method, url, viewer.status_code, viewer.content[:300])
    assert Run.objects.filter(pk=world["run"].pk).exists()
    assert Workflow.objects.filter(deleted_at__isnull=True, name="A's").exists()
