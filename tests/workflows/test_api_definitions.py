import pytest

from tests.workflows.helpers import BLOG_BODY, DEMO_BODY, INTRO_NODE, chain_body, create, node_keys, snapshot_counts
from workflows.models import Edge, Node, Workflow

pytestmark = pytest.mark.django_db


def test_blog_body_from_existing_clients_creates_an_empty_draft(user, user_api):
    workflow = create(user_api, BLOG_BODY)
    assert workflow["name"] == "AI Blog Series"
    assert workflow["description"] == "A series of AI-related blog posts"
    assert workflow["status"] == "draft"
    assert workflow["settings"] == {
        "max_nodes": 100,
        "timeout": 300,
        "max_concurrency": None,
        "on_failure": "fail_fast",
    }
    assert workflow["nodes"] == [] and workflow["edges"] == []
    assert workflow["version"] == 1
    assert workflow["workspace"] == str(user.memberships.get().workspace_id)


def test_steps_body_from_existing_clients_becomes_a_linear_chain(user_api):
    workflow = create(user_api, DEMO_BODY)
    assert workflow["slug"] == "my-workflow"
    assert workflow["id"] != "my-workflow" and len(workflow["id"]) == 36
    delay, notify = workflow["nodes"]
    assert (delay["key"], delay["type"], delay["config"]) == ("delay", "delay", {"seconds": 2})
    assert (notify["key"], notify["type"], notify["depends_on"]) == ("notify", "webhook", ["delay"])
    assert notify["config"]["body"] == {"message": "Hello from workflow!"}
    assert workflow["edges"] == [{"source": "delay", "target": "notify", "label": ""}]


def test_a_slug_is_unique_per_workspace(user_api):
    create(user_api, DEMO_BODY)
    before = snapshot_counts()
    again = user_api.post("/api/v3/workflows", DEMO_BODY, format="json")
    assert again.status_code == 400
    assert again.json()["errors"] == {"slug": ["Another workflow of this workspace already uses this id."]}
    assert snapshot_counts() == before


def test_appending_the_client_node_body(user_api):
    workflow = create(user_api, BLOG_BODY)
    first = user_api.post(f"/api/v3/workflows/{workflow['id']}/nodes", INTRO_NODE, format="json")
    assert first.status_code == 201, first.content
    node = first.json()
    assert (node["key"], node["type"], node["priority"], node["tags"]) == (
        "introduction_to_ai",
        "document",
        2,
        ["ai", "introduction"],
    )
    assert node["depends_on"] == []

    second = user_api.post(f"/api/v3/workflows/{workflow['id']}/nodes", INTRO_NODE, format="json").json()
    assert second["key"] == "introduction_to_ai_2"
    assert second["depends_on"] == ["introduction_to_ai"]

    text = user_api.post(
        f"/api/v3/workflows/{workflow['id']}/nodes", {"title": "Wrap-up!! (final)", "content": "Bye"}, format="json"
    ).json()
    assert (text["key"], text["type"], text["depends_on"]) == ("wrap_up_final", "text", ["introduction_to_ai_2"])

    root = user_api.post(
        f"/api/v3/workflows/{workflow['id']}/nodes", {"title": "Side", "content": "x", "depends_on": []}, format="json"
    ).json()
    assert root["depends_on"] == []


def test_nodes_are_listed_in_topological_order(user_api):
    body = {
        "name": "Fan",
        "nodes": [
            {"key": "summary", "type": "text", "content": "s", "depends_on": ["chapter_1", "chapter_2"]},
            {"key": "chapter_2", "type": "text", "content": "c2", "depends_on": ["outline"]},
            {"key": "chapter_1", "type": "text", "content": "c1", "depends_on": ["outline"]},
            {"key": "outline", "type": "text", "content": "o", "depends_on": []},
        ],
    }
    workflow = create(user_api, body)
    assert node_keys(workflow) == ["outline", "chapter_2", "chapter_1", "summary"]
    listed = user_api.get(f"/api/v3/workflows/{workflow['id']}/nodes").json()
    assert [node["key"] for node in listed] == ["outline", "chapter_2", "chapter_1", "summary"]


def test_condition_branches_are_labelled_edges(user_api):
    body = {
        "name": "Branch",
        "nodes": [
            {"key": "check", "type": "condition", "config": {"expression": "input.score > 5"}},
            {"key": "good", "type": "text", "content": "yes", "depends_on": [{"node": "check", "when": "true"}]},
            {"key": "bad", "type": "text", "content": "no", "depends_on": [{"node": "check", "when": "false"}]},
        ],
    }
    workflow = create(user_api, body)
    assert {(e["source"], e["target"], e["label"]) for e in workflow["edges"]} == {
        ("check", "good", "true"),
        ("check", "bad", "false"),
    }
    good = next(node for node in workflow["nodes"] if node["key"] == "good")
    assert good["depends_on"] == [{"node": "check", "when": "true"}]


def test_put_replaces_fields_and_patch_changes_only_what_it_names(user_api):
    workflow = create(user_api, chain_body("a", "b", name="Old", description="d", tags=["x"]))
    url = f"/api/v3/workflows/{workflow['id']}"
    patched = user_api.patch(url, {"description": "new"}, format="json").json()
    assert (patched["name"], patched["description"], patched["tags"]) == ("Old", "new", ["x"])
    assert node_keys(patched) == ["a", "b"]

    put = user_api.put(url, {"name": "New"}, format="json")
    assert put.status_code == 200
    assert (put.json()["name"], put.json()["description"], put.json()["tags"]) == ("New", "", [])
    assert node_keys(put.json()) == ["a", "b"], "the graph stays unless nodes are sent"

    replaced = user_api.patch(url, chain_body("c", name="New"), format="json").json()
    assert node_keys(replaced) == ["c"]


def test_put_needs_a_name(user_api):
    workflow = create(user_api, chain_body("a"))
    answer = user_api.put(f"/api/v3/workflows/{workflow['id']}", {"description": "x"}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"name": ["This field is required."]}


def test_node_detail_update_and_rename(user_api):
    workflow = create(user_api, chain_body("a", "b", "c"))
    b = workflow["nodes"][1]
    url = f"/api/v3/nodes/{b['id']}"
    assert user_api.get(url).json()["key"] == "b"
    renamed = user_api.patch(url, {"key": "middle", "title": "Middle"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert (renamed.json()["id"], renamed.json()["key"], renamed.json()["depends_on"]) == (b["id"], "middle", ["a"])
    c = user_api.get(f"/api/v3/nodes/{workflow['nodes'][2]['id']}").json()
    assert c["depends_on"] == ["middle"]

    put = user_api.put(url, {"type": "text", "content": "replaced"}, format="json").json()
    assert (put["key"], put["title"], put["content"], put["depends_on"]) == ("middle", "", "replaced", ["a"])


def test_deleting_a_node_in_the_middle_reconnects_the_chain(user_api):
    workflow = create(user_api, chain_body("a", "b", "c"))
    assert user_api.delete(f"/api/v3/nodes/{workflow['nodes'][1]['id']}").status_code == 204
    after = user_api.get(f"/api/v3/workflows/{workflow['id']}").json()
    assert node_keys(after) == ["a", "c"]
    assert after["edges"] == [{"source": "a", "target": "c", "label": ""}]


def test_deleting_a_condition_with_branch_children_is_a_409(user_api):
    body = {
        "name": "Branch",
        "nodes": [
            {"key": "start", "type": "text", "content": "s"},
            {"key": "check", "type": "condition", "config": {"expression": "true"}},
            {"key": "yes", "type": "text", "content": "y", "depends_on": [{"node": "check", "when": "true"}]},
        ],
    }
    workflow = create(user_api, body)
    before = snapshot_counts()
    answer = user_api.delete(f"/api/v3/nodes/{workflow['nodes'][1]['id']}")
    assert answer.status_code == 409
    assert "branches lead to 'yes'" in answer.json()["detail"]
    assert snapshot_counts() == before


def test_deleting_a_join_that_fans_out_is_a_409(user_api):
    body = {
        "name": "Diamond",
        "nodes": [
            {"key": "p1", "type": "text", "content": "x", "depends_on": []},
            {"key": "p2", "type": "text", "content": "x", "depends_on": []},
            {"key": "join", "type": "text", "content": "x", "depends_on": ["p1", "p2"]},
            {"key": "c1", "type": "text", "content": "x", "depends_on": ["join"]},
            {"key": "c2", "type": "text", "content": "x", "depends_on": ["join"]},
        ],
    }
    workflow = create(user_api, body)
    join = next(node for node in workflow["nodes"] if node["key"] == "join")
    answer = user_api.delete(f"/api/v3/nodes/{join['id']}")
    assert answer.status_code == 409
    assert Node.objects.filter(pk=join["id"]).exists()


# --- validation: every error is a 400 naming the node key and field, and changes nothing ---------


def assert_rejected(api, body, field: str, fragment: str, url: str = "/api/v3/workflows") -> None:
    before = snapshot_counts()
    answer = api.post(url, body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    errors = answer.json()["errors"]
    assert field in errors, errors
    assert any(fragment in message for message in errors[field]), errors[field]
    assert snapshot_counts() == before


def test_unknown_node_type_lists_the_valid_ones(user_api):
    body = {"name": "x", "nodes": [{"key": "a", "type": "teleport"}]}
    assert_rejected(user_api, body, "nodes.a.type", "Valid types: document, text, transform, http_request")


def test_config_not_matching_the_schema(user_api):
    body = {"name": "x", "nodes": [{"key": "fetch", "type": "http_request", "config": {"method": "GET"}}]}
    assert_rejected(user_api, body, "nodes.fetch.config.url", "'url' is a required property")
    body = {"name": "x", "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": "soon"}}]}
    assert_rejected(user_api, body, "nodes.wait.config.seconds", "is not of type 'number'")


def test_duplicate_keys(user_api):
    body = {"name": "x", "nodes": [{"key": "a", "content": "1"}, {"key": "a", "content": "2"}]}
    assert_rejected(user_api, body, "nodes.a.key", "Another node already has the key 'a'")


def test_depends_on_a_missing_node(user_api):
    body = {"name": "x", "nodes": [{"key": "a", "content": "1", "depends_on": ["ghost"]}]}
    assert_rejected(user_api, body, "nodes.a.depends_on", "Depends on 'ghost', which is not a node")


def test_a_cycle_is_rejected_naming_its_nodes(user_api):
    body = {
        "name": "x",
        "nodes": [
            {"key": "a", "content": "1", "depends_on": ["c"]},
            {"key": "b", "content": "2", "depends_on": ["a"]},
            {"key": "c", "content": "3", "depends_on": ["b"]},
        ],
    }
    assert_rejected(user_api, body, "nodes.a.depends_on", "cycle: a → b → c → a")


def test_a_node_cannot_depend_on_itself(user_api):
    body = {"name": "x", "nodes": [{"key": "a", "content": "1", "depends_on": ["a"]}]}
    assert_rejected(user_api, body, "nodes.a.depends_on", "cannot depend on itself")


def test_more_nodes_than_max_nodes(user_api):
    body = chain_body("a", "b", "c", settings={"max_nodes": 2})
    assert_rejected(user_api, body, "nodes", "3 nodes; its settings allow at most 2")


def test_max_nodes_is_enforced_when_appending(user_api):
    workflow = create(user_api, chain_body("a", settings={"max_nodes": 1}))
    assert_rejected(
        user_api, {"content": "x"}, "nodes", "allow at most 1", url=f"/api/v3/workflows/{workflow['id']}/nodes"
    )


def test_when_after_a_non_condition_node(user_api):
    body = {
        "name": "x",
        "nodes": [
            {"key": "a", "content": "1"},
            {"key": "b", "content": "2", "depends_on": [{"node": "a", "when": "true"}]},
        ],
    }
    assert_rejected(user_api, body, "nodes.b.depends_on", "'when' only follows a condition node; 'a' is a text node")


def test_when_with_a_label_the_condition_does_not_have(user_api):
    body = {
        "name": "x",
        "nodes": [
            {"key": "c", "type": "condition", "config": {"expression": "true"}},
            {"key": "b", "content": "2", "depends_on": [{"node": "c", "when": "maybe"}]},
        ],
    }
    assert_rejected(user_api, body, "nodes.b.depends_on", "'maybe' is not one of them")


def test_invalid_input_schema(user_api):
    body = {"name": "x", "input_schema": {"type": "object", "properties": {"n": {"type": "integr"}}}}
    assert_rejected(user_api, body, "input_schema", "Not a valid JSON Schema at properties/n/type")


def test_template_syntax_errors_name_the_node_field_and_line(user_api):
    body = {"name": "x", "nodes": [{"key": "intro", "prompt": "Line one\nWrite about {{ input.topic "}]}
    assert_rejected(user_api, body, "nodes.intro.prompt", "line 2")
    body = {
        "name": "x",
        "nodes": [{"key": "call", "type": "http_request", "config": {"url": "https://x.org/{% if %}"}}],
    }
    assert_rejected(user_api, body, "nodes.call.config.url", "Template syntax error at line 1")


def test_sandbox_attribute_access_is_parsed_not_executed_at_save(user_api):
    # Saving only parses; the injection is refused when rendered (engine issue). It must not crash here.
    body = {"name": "x", "nodes": [{"key": "a", "prompt": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}]}
    assert user_api.post("/api/v3/workflows", body, format="json").status_code == 201


def test_bad_settings_name_the_setting(user_api):
    assert_rejected(user_api, {"name": "x", "settings": {"max_nodes": 5000}}, "settings.max_nodes", "maximum of 1000")
    assert_rejected(
        user_api, {"name": "x", "settings": {"on_failure": "explode"}}, "settings.on_failure", "is not one of"
    )
    assert_rejected(user_api, {"name": "x", "settings": {"speed": 3}}, "settings", "'speed' was unexpected")


def test_name_is_required_and_bounded(user_api):
    assert_rejected(user_api, {"description": "no name"}, "name", "This field is required.")
    assert_rejected(user_api, {"name": ""}, "name", "should be non-empty")
    assert_rejected(user_api, {"name": "n" * 201}, "name", "is too long")


def test_unknown_fields_and_both_nodes_and_steps(user_api):
    assert_rejected(user_api, {"name": "x", "colour": "red"}, "colour", "Unknown field.")
    assert_rejected(user_api, {"name": "x", "nodes": [], "steps": []}, "steps", "either nodes or steps")


def test_a_rejected_update_changes_nothing(user_api):
    workflow = create(user_api, chain_body("a", "b"))
    before = snapshot_counts()
    answer = user_api.patch(
        f"/api/v3/workflows/{workflow['id']}",
        {"name": "Renamed", "nodes": [{"key": "a", "content": "x", "depends_on": ["zzz"]}]},
        format="json",
    )
    assert answer.status_code == 400
    assert snapshot_counts() == before
    assert Workflow.objects.get(pk=workflow["id"]).name == "Chain"
    assert Edge.objects.filter(workflow_id=workflow["id"]).count() == 1


def test_a_workspace_that_is_not_mine_is_a_400_on_create(user_api):
    from tests.factories import WorkspaceFactory

    assert_rejected(user_api, {"name": "x", "workspace": str(WorkspaceFactory().id)}, "workspace", "No such workspace.")
