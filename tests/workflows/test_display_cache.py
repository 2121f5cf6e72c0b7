"""GET workflows/{id}, GET workflows and GET runs/{id} answer from caches keyed by a digest of the rows
they show (workflows.api.displays, workflows.fingerprints): whatever changes those rows, by whichever
path, shows at once, and the caller's access is checked on every read, so no cached answer outlives
an edit or a permission."""

import pytest
from django.core.cache import caches
from rest_framework.renderers import JSONRenderer
from rest_framework.utils import json

from accounts.models import Membership, User, Workspace
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.workflows.helpers import chain_body, create
from workflows import fingerprints, selectors
from workflows.api.displays import run_displays, workflow_displays
from workflows.api.serializers import RunDetailSerializer, WorkflowSerializer
from workflows.models import Edge, Node, Run, StepRun, Workflow, WorkflowTag

pytestmark = pytest.mark.django_db


def fresh(user, workflow_id) -> dict:
    """The display made now from the database, without the cache."""
    workflow, _ = selectors.workflow_display_and_fingerprint(user, workflow_id)
    return json.loads(JSONRenderer().render(WorkflowSerializer(workflow).data))


def shown(api, workflow_id) -> dict:
    answer = api.get(f"/api/v3/workflows/{workflow_id}")
    assert answer.status_code == 200, answer.content
    return answer.json()


@pytest.fixture
def cached(user, user_api) -> dict:
    """A workflow of three nodes whose display is in the cache."""
    workflow = create(user_api, {**chain_body("a", "b", "c"), "tags": ["one"]})
    shown(user_api, workflow["id"])
    assert workflow_displays.get(fingerprints.workflow_fingerprint(user, workflow["id"])) is not None
    return workflow


def test_the_cached_display_is_the_display(user, user_api, cached):
    first = shown(user_api, cached["id"])
    assert shown(user_api, cached["id"]) == first == fresh(user, cached["id"])
    workflow_displays.clear_local()  # a new process: the shared level answers
    assert shown(user_api, cached["id"]) == first


def _rename_through_the_api(api, workflow):
    assert api.patch(f"/api/v3/workflows/{workflow['id']}", {"name": "Renamed"}, format="json").status_code == 200


def _add_a_node_through_the_api(api, workflow):
    body = {"key": "d", "type": "text", "content": "d text", "depends_on": ["c"]}
    assert api.post(f"/api/v3/workflows/{workflow['id']}/nodes", body, format="json").status_code == 201


def _tag_in_bulk(api, workflow):
    # The bulk actions change tags without touching the workflow's row.
    body = {"action": "tag", "ids": [workflow["id"]], "tag": "bulk"}
    assert api.post("/api/v3/workflows/bulk", body, format="json").status_code == 200


def _untag_in_the_database(api, workflow):
    WorkflowTag.objects.filter(workflow_id=workflow["id"]).delete()


def _change_a_node_without_save(api, workflow):
    Node.objects.filter(workflow_id=workflow["id"], key="b").update(content="changed behind the ORM's back")


def _label_an_edge(api, workflow):
    Edge.objects.filter(workflow_id=workflow["id"]).update(label="true")


def _change_settings_without_updated_at(api, workflow):
    Workflow.objects.filter(pk=workflow["id"]).update(settings={"max_nodes": 7})


def _creator_changes_email(api, workflow):
    User.objects.filter(email=workflow["created_by"]).update(email="renamed@example.com")


@pytest.mark.parametrize(
    "change",
    [
        _rename_through_the_api,
        _add_a_node_through_the_api,
        _tag_in_bulk,
        _untag_in_the_database,
        _change_a_node_without_save,
        _label_an_edge,
        _change_settings_without_updated_at,
        _creator_changes_email,
    ],
)
def test_every_change_shows_on_the_next_read(user, user_api, cached, change):
    before = shown(user_api, cached["id"])
    change(user_api, cached)
    after = shown(user_api, cached["id"])
    assert after != before
    assert after == fresh(user, cached["id"])


def test_a_removed_member_is_refused_a_display_they_had_cached(cached):
    colleague = UserFactory()
    workspace_id = cached["workspace"]
    membership = MembershipFactory(workspace_id=workspace_id, user=colleague, role=Membership.Role.VIEWER)
    colleague_api = client_for(colleague)
    assert shown(colleague_api, cached["id"])["id"] == cached["id"]
    membership.delete()
    assert colleague_api.get(f"/api/v3/workflows/{cached['id']}").status_code == 404


def test_a_workspace_ip_allow_list_applies_to_a_cached_display(user_api, cached):
    Workspace.objects.filter(pk=cached["workspace"]).update(allowed_ips=["192.0.2.0/24"])
    assert user_api.get(f"/api/v3/workflows/{cached['id']}", REMOTE_ADDR="198.51.100.7").status_code == 403
    assert user_api.get(f"/api/v3/workflows/{cached['id']}", REMOTE_ADDR="192.0.2.9").status_code == 200


def test_a_deleted_workflow_is_gone_though_its_display_is_cached(user_api, cached):
    assert user_api.delete(f"/api/v3/workflows/{cached['id']}").status_code == 204
    assert user_api.get(f"/api/v3/workflows/{cached['id']}").status_code == 404


def test_displays_are_shared_through_the_default_cache(user, cached):
    fingerprint = fingerprints.workflow_fingerprint(user, cached["id"])
    shared = caches["default"].get(workflow_displays._shared_key(fingerprint))
    assert json.loads(JSONRenderer().render(shared)) == fresh(user, cached["id"])


def test_a_made_up_or_malformed_id_is_404(user_api):
    assert user_api.get("/api/v3/workflows/7b0a3c4e-0000-4000-8000-000000000000").status_code == 404
    assert user_api.get("/api/v3/workflows/not-a-uuid").status_code == 404


def listed(api, workflow_id) -> dict:
    answer = api.get("/api/v3/workflows?page_size=100")
    assert answer.status_code == 200, answer.content
    return next(row for row in answer.json()["results"] if row["id"] == workflow_id)


@pytest.mark.parametrize(
    "change", [_rename_through_the_api, _add_a_node_through_the_api, _tag_in_bulk, _creator_changes_email]
)
def test_every_change_shows_in_the_list_rows(user_api, cached, change):
    before = listed(user_api, cached["id"])
    change(user_api, cached)
    after = listed(user_api, cached["id"])
    assert after != before
    shown_now = shown(user_api, cached["id"])
    assert after == {name: value for name, value in shown_now.items() if name not in ("nodes", "edges")}


def test_a_removed_member_no_longer_lists_what_they_listed(cached):
    colleague = UserFactory()
    membership = MembershipFactory(workspace_id=cached["workspace"], user=colleague, role=Membership.Role.VIEWER)
    colleague_api = client_for(colleague)
    assert listed(colleague_api, cached["id"])["name"] == cached["name"]
    membership.delete()
    assert colleague_api.get("/api/v3/workflows").json()["count"] == 0


@pytest.fixture
def cached_run(user, user_api, cached) -> str:
    """A run of the cached workflow with three steps, its display in the cache."""
    workflow = Workflow.objects.get(pk=cached["id"])
    run = Run.objects.create(
        workflow=workflow, workspace=workflow.workspace, version=workflow.versions.get(), trigger="api"
    )
    StepRun.objects.bulk_create(StepRun(run=run, node_key=key, node_type="text") for key in ("a", "b", "c"))
    assert user_api.get(f"/api/v3/runs/{run.pk}").status_code == 200
    assert run_displays.get(fingerprints.run_fingerprint(user, run.pk)) is not None
    return str(run.pk)


def fresh_run(user, run_id) -> dict:
    run, _ = selectors.run_display_and_fingerprint(user, run_id)
    return json.loads(JSONRenderer().render(RunDetailSerializer(run).data))


def test_a_run_shows_each_step_as_the_engine_records_it(user, user_api, cached_run):
    first = user_api.get(f"/api/v3/runs/{cached_run}").json()
    assert first == fresh_run(user, cached_run)
    StepRun.objects.filter(run_id=cached_run, node_key="b").update(status="running", attempt=1)
    after_step = user_api.get(f"/api/v3/runs/{cached_run}").json()
    assert [step["status"] for step in after_step["steps"] if step["key"] == "b"] == ["running"]
    assert after_step == fresh_run(user, cached_run)
    StepRun.objects.filter(run_id=cached_run, node_key="a").update(usage={"tokens_in": 5, "tokens_out": 2})
    Run.objects.filter(pk=cached_run).update(status="running")
    after_run = user_api.get(f"/api/v3/runs/{cached_run}").json()
    assert after_run["status"] == "running" and after_run["usage"]["tokens_in"] == 5
    assert after_run == fresh_run(user, cached_run)


def test_a_removed_member_is_refused_a_run_they_had_cached(cached_run, cached):
    colleague = UserFactory()
    membership = MembershipFactory(workspace_id=cached["workspace"], user=colleague, role=Membership.Role.VIEWER)
    colleague_api = client_for(colleague)
    assert colleague_api.get(f"/api/v3/runs/{cached_run}").status_code == 200
    membership.delete()
    assert colleague_api.get(f"/api/v3/runs/{cached_run}").status_code == 404
