from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from tests.workflows.helpers import DEMO_BODY, chain_body, create, node_keys, snapshot_counts
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db


# --- listing -----------------------------------------------------------------------------------


def test_list_is_paginated_and_searches_name_description_and_node_titles(user_api):
    create(user_api, {"name": "Quarterly report", "description": "finance"})
    create(user_api, {"name": "Blog", "description": "Posts about quarterly results"})
    create(user_api, {"name": "Other", "nodes": [{"key": "a", "title": "Quarterly numbers", "content": "x"}]})
    create(user_api, {"name": "Unrelated"})
    listing = user_api.get("/api/v3/workflows").json()
    assert set(listing) == {"count", "next", "previous", "results"}
    assert listing["count"] == 4
    found = user_api.get("/api/v3/workflows", {"search": "quarterly"}).json()
    assert sorted(item["name"] for item in found["results"]) == ["Blog", "Other", "Quarterly report"]


def test_list_filters_and_ordering(user, user_api):
    team = MembershipFactory(user=user, role="editor").workspace
    a = create(user_api, {"name": "A", "status": "active", "tags": ["blog", "ai"]})
    b = create(user_api, {"name": "B", "tags": ["blog"], "workspace": str(team.id)})
    c = create(user_api, {"name": "C"})
    Workflow.objects.filter(pk=c["id"]).update(updated_at=timezone.now() - timedelta(days=3))

    def names(**query) -> list[str]:
        return [item["name"] for item in user_api.get("/api/v3/workflows", query).json()["results"]]

    assert names(status="active") == ["A"]
    assert sorted(names(tag="blog")) == ["A", "B"]
    assert names(tag="ai") == ["A"]
    assert names(workspace=str(team.id)) == ["B"]
    assert sorted(names(created_by=str(user.id))) == ["A", "B", "C"]
    assert names(created_by=str(UserFactory().id)) == []
    assert sorted(names(updated_after=(timezone.now() - timedelta(days=1)).isoformat())) == ["A", "B"]
    assert names(ordering="name") == ["A", "B", "C"]
    assert names(ordering="-name") == ["C", "B", "A"]
    assert names(ordering="updated_at")[0] == "C"
    assert a["tags"] == ["ai", "blog"] and b["workspace"] == str(team.id)


def test_runs_list_filters_by_workspace(user, user_api):
    team = MembershipFactory(user=user, role=Membership.Role.EDITOR).workspace
    mine = create(user_api, {"name": "Mine", "nodes": [{"key": "a", "content": "x"}]})
    theirs = create(user_api, {"name": "Team's", "workspace": str(team.pk), "nodes": [{"key": "a", "content": "x"}]})
    for workflow in (mine, theirs, theirs):
        assert (
            user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json").status_code == 202
        )
    assert user_api.get("/api/v3/runs").json()["count"] == 3
    listing = user_api.get("/api/v3/runs", {"workspace": str(team.pk)}).json()
    assert [run["workflow"] for run in listing["results"]] == [theirs["id"], theirs["id"]]
    assert user_api.get("/api/v3/runs", {"workspace": "not-a-uuid"}).status_code == 400
    stranger = UserFactory()
    assert client_for(stranger).get("/api/v3/runs", {"workspace": str(team.pk)}).json()["count"] == 0


def test_list_bad_filter_values_are_400(user_api):
    answer = user_api.get("/api/v3/workflows", {"status": "sleeping"})
    assert answer.status_code == 400
    assert "status" in answer.json()["errors"]


def test_listing_50_workflows_takes_a_constant_number_of_queries(user, user_api, django_assert_max_num_queries):
    for index in range(50):
        create(user_api, {**chain_body("a", "b"), "name": f"W{index}", "tags": ["t1", "t2"]})
    with django_assert_max_num_queries(6):
        listing = user_api.get("/api/v3/workflows").json()
    assert listing["count"] == 50
    assert all(item["node_count"] == 2 and item["tags"] == ["t1", "t2"] for item in listing["results"])


# --- delete and restore ------------------------------------------------------------------------


def test_delete_is_soft_then_404_and_admins_restore(user, user_api):
    workflow = create(user_api, chain_body("a"))
    url = f"/api/v3/workflows/{workflow['id']}"
    assert user_api.delete(url).status_code == 204
    assert user_api.get(url).status_code == 404
    assert user_api.get("/api/v3/workflows").json()["count"] == 0
    assert Workflow.objects.filter(pk=workflow["id"]).exists()

    restored = user_api.post(f"{url}/restore")
    assert restored.status_code == 200
    assert user_api.get(url).status_code == 200


def test_editors_cannot_restore(user, user_api):
    team = MembershipFactory(user=user, role="owner").workspace
    editor = MembershipFactory(workspace=team, role="editor").user
    workflow = create(user_api, {"name": "x", "workspace": str(team.id)})
    assert client_for(editor).delete(f"/api/v3/workflows/{workflow['id']}").status_code == 204
    assert client_for(editor).post(f"/api/v3/workflows/{workflow['id']}/restore").status_code == 403
    assert Workflow.objects.get(pk=workflow["id"]).deleted_at is not None


# --- versions ----------------------------------------------------------------------------------


def test_edits_create_versions_and_old_snapshots_never_change(user_api):
    workflow = create(user_api, chain_body("a", "b"))
    url = f"/api/v3/workflows/{workflow['id']}"
    v1 = user_api.get(f"{url}/versions/1").json()["snapshot"]
    assert [node["key"] for node in v1["nodes"]] == ["a", "b"]

    user_api.post(f"{url}/nodes", {"key": "c", "content": "c text"}, format="json")
    user_api.patch(f"/api/v3/nodes/{workflow['nodes'][0]['id']}", {"content": "changed"}, format="json")
    versions = user_api.get(f"{url}/versions").json()
    assert [v["number"] for v in versions["results"]] == [3, 2, 1]
    assert user_api.get(url).json()["version"] == 3

    assert user_api.get(f"{url}/versions/1").json()["snapshot"] == v1
    v3 = user_api.get(f"{url}/versions/3").json()["snapshot"]
    assert [node["key"] for node in v3["nodes"]] == ["a", "b", "c"]
    assert v3["nodes"][0]["content"] == "changed"
    assert v3["edges"] == [{"source": "a", "target": "b", "label": ""}, {"source": "b", "target": "c", "label": ""}]


def test_tag_and_status_changes_make_no_version(user_api):
    workflow = create(user_api, chain_body("a"))
    user_api.patch(f"/api/v3/workflows/{workflow['id']}", {"tags": ["new"], "status": "active"}, format="json")
    assert WorkflowVersion.objects.filter(workflow_id=workflow["id"]).count() == 1


def test_restoring_a_version_makes_a_new_equal_version(user_api):
    workflow = create(user_api, chain_body("a", "b", name="First"))
    url = f"/api/v3/workflows/{workflow['id']}"
    user_api.patch(url, chain_body("x", name="Second"), format="json")
    restored = user_api.post(f"{url}/versions/1/restore")
    assert restored.status_code == 200, restored.content
    assert (restored.json()["name"], restored.json()["version"]) == ("First", 3)
    assert node_keys(restored.json()) == ["a", "b"]
    snapshots = {v.number: v.snapshot for v in WorkflowVersion.objects.filter(workflow_id=workflow["id"])}
    assert snapshots[3] == snapshots[1]
    assert user_api.post(f"{url}/versions/9/restore").status_code == 404
    assert user_api.get(f"{url}/versions/9").status_code == 404


# --- export and import -------------------------------------------------------------------------


def without_volatile(document: dict) -> dict:
    return {key: value for key, value in document.items() if key != "slug"}


def test_export_import_export_is_identical(user_api):
    body = {
        **DEMO_BODY,
        "tags": ["demo"],
        "input_schema": {"type": "object", "properties": {"topic": {"type": "string"}}},
    }
    original = create(user_api, body)
    exported = user_api.get(f"/api/v3/workflows/{original['id']}/export").json()
    assert exported["format"] == "dwc-workflow/1"
    assert "id" not in exported and all("id" not in node for node in exported["nodes"])
    assert exported["edges"] == [{"source": "delay", "target": "notify", "label": ""}]

    exported_without_slug = {**exported, "slug": None}
    imported = user_api.post("/api/v3/workflows/import", exported_without_slug, format="json")
    assert imported.status_code == 201, imported.content
    [copy] = imported.json()
    assert copy["id"] != original["id"]
    again = user_api.get(f"/api/v3/workflows/{copy['id']}/export").json()
    assert without_volatile(again) == without_volatile(exported)


def test_import_a_list_is_all_or_nothing(user_api):
    good = {"format": "dwc-workflow/1", "name": "Good", "nodes": [{"key": "a", "content": "x"}], "edges": []}
    bad = {"format": "dwc-workflow/1", "name": "Bad", "nodes": [{"key": "a", "type": "nope"}], "edges": []}
    before = snapshot_counts()
    answer = user_api.post("/api/v3/workflows/import", [good, bad], format="json")
    assert answer.status_code == 400
    assert "1.nodes.a.type" in answer.json()["errors"]
    assert snapshot_counts() == before

    created = user_api.post("/api/v3/workflows/import", [good, {**good, "name": "Good 2"}], format="json")
    assert created.status_code == 201
    assert [w["name"] for w in created.json()] == ["Good", "Good 2"]


def test_import_rejects_documents_of_another_format(user_api):
    answer = user_api.post("/api/v3/workflows/import", {"name": "x"}, format="json")
    assert answer.status_code == 400
    assert "Expected an export document" in answer.json()["detail"]


# --- bulk --------------------------------------------------------------------------------------


def test_bulk_actions_apply_to_every_id(user_api):
    ids = [create(user_api, {"name": f"W{i}"})["id"] for i in range(3)]
    answer = user_api.post("/api/v3/workflows/bulk", {"action": "activate", "ids": ids}, format="json")
    assert answer.status_code == 200 and answer.json() == {"action": "activate", "count": 3}
    assert set(Workflow.objects.values_list("status", flat=True)) == {"active"}

    user_api.post("/api/v3/workflows/bulk", {"action": "tag", "ids": ids, "tag": "q4"}, format="json")
    assert user_api.get("/api/v3/workflows", {"tag": "q4"}).json()["count"] == 3
    user_api.post("/api/v3/workflows/bulk", {"action": "untag", "ids": ids[:1], "tag": "q4"}, format="json")
    assert user_api.get("/api/v3/workflows", {"tag": "q4"}).json()["count"] == 2

    user_api.post("/api/v3/workflows/bulk", {"action": "delete", "ids": ids[:2]}, format="json")
    assert user_api.get("/api/v3/workflows").json()["count"] == 1


def test_bulk_is_all_or_nothing_and_names_each_bad_id(user, user_api):
    mine = create(user_api, {"name": "Mine"})["id"]
    viewer_team = MembershipFactory(user=user, role=Membership.Role.VIEWER).workspace
    read_only = Workflow.objects.create(workspace=viewer_team, name="Read only").id
    foreign = Workflow.objects.create(workspace=MembershipFactory().workspace, name="Foreign").id
    ids = [mine, str(read_only), str(foreign), "not-a-uuid"]
    answer = user_api.post("/api/v3/workflows/bulk", {"action": "archive", "ids": ids}, format="json")
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert set(errors) == {f"ids.{read_only}", f"ids.{foreign}", "ids.not-a-uuid"}
    assert errors[f"ids.{foreign}"] == ["No such workflow."]
    assert "editor role" in errors[f"ids.{read_only}"][0]
    assert set(Workflow.objects.values_list("status", flat=True)) == {"draft"}


def test_bulk_bad_requests(user_api):
    wid = create(user_api, {"name": "x"})["id"]
    assert (
        user_api.post("/api/v3/workflows/bulk", {"action": "explode", "ids": [wid]}, format="json").status_code == 400
    )
    assert user_api.post("/api/v3/workflows/bulk", {"action": "tag", "ids": [wid]}, format="json").json()["errors"] == {
        "tag": ["A tag of 1 to 50 characters is required for tag and untag."]
    }
    assert user_api.post("/api/v3/workflows/bulk", {"action": "pause", "ids": []}, format="json").status_code == 400
