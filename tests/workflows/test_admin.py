import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.access import personal_workspace
from accounts.models import User
from tests.factories import UserFactory
from workflows.admin.workflow_forms import EDGE_TO_DELETED_NODE
from workflows.models import Edge, Node, Workflow
from workflows.services.credentials import credential_save
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/workflows/workflow/"
NODES = [
    {"key": "fetch", "type": "http_request", "title": "Fetch the news", "config": {"url": "https://example.org"}},
    {"key": "write", "type": "document", "title": "Write the issue", "prompt": "Sum up {{ nodes.fetch.output }}"},
]


@pytest.fixture
def operator(client):
    """A superuser who is a member of no workspace: the admin must still serve them."""
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    return client


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def workflow(owner):
    return workflow_create(
        actor=owner,
        workspace=personal_workspace(owner),
        data={"name": "Newsletter", "description": "Weekly mail", "tags": ["weekly"], "nodes": NODES},
    )


def change_url(workflow: Workflow) -> str:
    return f"{CHANGELIST}{workflow.pk}/change/"


def page_data(response) -> dict:
    """What a browser posts back for the rendered form and inlines, unchanged."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else str(value)
    return data


def node_row(index: int, **values) -> dict:
    row = {
        "key": "",
        "type": "text",
        "title": "",
        "priority": "2",
        "trigger_rule": "all_success",
        "timeout": "",
        "order": str(index),
        "prompt": "",
        "content": "",
        "config": "{}",
        "retry": "{}",
        "tags": "[]",
        "position": "{}",
        **values,
    }
    return {f"nodes-{index}-{name}": value for name, value in row.items()}


def with_new_row(data: dict, prefix: str, row: dict) -> dict:
    """`data` with one more row in the `prefix` inline."""
    index = int(data[f"{prefix}-TOTAL_FORMS"])
    return {
        **data,
        f"{prefix}-TOTAL_FORMS": str(index + 1),
        **{k.replace("-NEW-", f"-{index}-"): v for k, v in row.items()},
    }


def inline_formset(response, prefix: str):
    return next(
        inline.formset for inline in response.context["inline_admin_formsets"] if inline.formset.prefix == prefix
    )


def definition_state(workflow: Workflow) -> tuple:
    workflow.refresh_from_db()
    nodes = list(Node.objects.filter(workflow=workflow).order_by("key").values_list("key", "type", "config", "title"))
    edges = list(Edge.objects.filter(workflow=workflow).order_by("id").values_list("source__key", "target__key"))
    return workflow.version, workflow.versions.count(), nodes, edges


def test_changelist_with_search_and_each_filter_renders(operator, workflow, owner):
    deleted = workflow_create(actor=owner, workspace=workflow.workspace, data={"name": "Old digest"})
    Workflow.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())
    expected = {
        "": {"Newsletter", "Old digest"},  # soft-deleted workflows are listed too
        "?q=the+news": {"Newsletter"},  # a node title
        "?q=weekly+mail": {"Newsletter"},
        "?status=draft": {"Newsletter", "Old digest"},
        "?status=active": set(),
        f"?workspace__id__exact={workflow.workspace_id}": {"Newsletter", "Old digest"},
        "?tag=weekly": {"Newsletter"},
        "?deleted=yes": {"Old digest"},
        "?deleted=no": {"Newsletter"},
    }
    for query, names in expected.items():
        answer = operator.get(CHANGELIST + query)
        assert answer.status_code == 200, query
        assert {row.name for row in answer.context["cl"].result_list} == names, query
    row = next(row for row in operator.get(CHANGELIST).context["cl"].result_list if row.name == "Newsletter")
    assert row.node_total == 2


def test_changelist_runs_a_constant_number_of_queries(operator, workflow, owner):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert operator.get(CHANGELIST).status_code == 200
        return len(captured)

    few = queries()
    for number in range(4):
        other = UserFactory()
        workflow_create(actor=other, workspace=personal_workspace(other), data={"name": f"W{number}", "nodes": NODES})
    assert queries() == few


def test_add_and_change_pages_render(operator, workflow):
    assert operator.get(f"{CHANGELIST}add/").status_code == 200
    page = operator.get(change_url(workflow))
    assert page.status_code == 200
    assert {inline.formset.prefix for inline in page.context["inline_admin_formsets"]} == {"nodes", "edges", "versions"}


def test_adding_a_workflow_with_a_node_saves_it_and_records_version_1(operator, owner):
    workspace = personal_workspace(owner)
    data = {
        **page_data(operator.get(f"{CHANGELIST}add/")),
        "name": "Reminder",
        "workspace": str(workspace.pk),
        "status": "draft",
        "nodes-TOTAL_FORMS": "1",
        **node_row(0, key="wait", type="delay", title="Wait a bit", config='{"duration": 5}'),
    }
    answer = operator.post(f"{CHANGELIST}add/", data)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    workflow = Workflow.objects.get(name="Reminder")
    assert workflow.workspace == workspace
    assert workflow.created_by.email == "root@example.com"
    node = workflow.nodes.get()
    assert (node.key, node.type, node.config) == ("wait", "delay", {"seconds": 5})  # normalized like the API
    version = workflow.versions.get()
    assert (workflow.version, version.number, version.note) == (1, 1, "edited in the admin")
    assert version.snapshot["nodes"][0]["config"] == {"seconds": 5}


def test_editing_in_the_admin_records_the_next_version_only_on_change(operator, workflow):
    data = page_data(operator.get(change_url(workflow)))
    assert operator.post(change_url(workflow), data).status_code == 302
    assert workflow.versions.count() == 1  # saved unchanged: no new version

    index = next(key for key, value in data.items() if key.endswith("-key") and value == "write").split("-")[1]
    data[f"nodes-{index}-title"] = "Write the newsletter"
    assert operator.post(change_url(workflow), data).status_code == 302
    workflow.refresh_from_db()
    latest = workflow.versions.first()
    assert (workflow.version, latest.number, latest.note) == (2, 2, "edited in the admin")
    assert latest.snapshot["nodes"][1]["title"] == "Write the newsletter"
    assert latest.snapshot["edges"] == [{"source": "fetch", "target": "write", "label": ""}]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("settings", '{"max_nodes": 0}', "max_nodes: 0 is less than the minimum of 1"),
        ("settings", '{"max_nodes": 1}', None),  # the workflow has two nodes
        ("settings", '{"colour": "blue"}', "Additional properties are not allowed"),
        ("input_schema", '{"type": "banana"}', "Not a valid JSON Schema"),
        ("input_schema", '{"$ref": "http://127.0.0.1:9/schema.json"}', "points outside this schema"),
        ("input_schema", '{"title": "a\\u0000b"}', "may not contain NUL characters"),
        ("name", "a\x00b", "Null characters are not allowed."),
        ("slug", "taken", "Another workflow of this workspace already uses this id."),
    ],
)
def test_bad_workflow_fields_are_form_errors(operator, workflow, owner, field, value, message):
    workflow_create(actor=owner, workspace=workflow.workspace, data={"name": "Other", "slug": "taken"})
    before = definition_state(workflow)
    answer = operator.post(change_url(workflow), {**page_data(operator.get(change_url(workflow))), field: value})
    assert answer.status_code == 200
    if message is None:
        assert inline_formset(answer, "nodes").non_form_errors() == [
            "The workflow has 2 nodes; its settings allow at most 1 (settings.max_nodes)."
        ]
    else:
        assert any(message in error for error in answer.context["adminform"].form.errors[field])
    assert definition_state(workflow) == before


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"type": "http_request", "config": "{}"}, "config", "config.url: 'url' is a required property"),
        ({"type": "delay", "config": '{"seconds": "soon"}'}, "config", "'soon' is not of type 'number'"),
        ({"type": "text", "content": "Hello {{ input.name "}, "content", "Template syntax error"),
        ({"type": "document", "prompt": "{% if %}"}, "prompt", "Template syntax error"),
        ({"type": "condition", "config": '{"expression": "a =="}'}, "config", "config.expression: Template syntax"),
        ({"type": "teleport"}, "type", "Select a valid choice"),
        ({"type": "text", "config": "{not json"}, "config", "Enter a valid JSON"),
        ({"type": "text", "retry": '{"max_attempts": 0}'}, "retry", "retry.max_attempts: 0 is less than"),
    ],
)
def test_a_bad_node_row_is_a_form_error_and_changes_nothing(operator, workflow, values, field, message):
    before = definition_state(workflow)
    data = page_data(operator.get(change_url(workflow)))
    index = int(data["nodes-TOTAL_FORMS"])
    data = {**data, "nodes-TOTAL_FORMS": str(index + 1), **node_row(index, key="extra", **values)}
    answer = operator.post(change_url(workflow), data)
    assert answer.status_code == 200
    errors = inline_formset(answer, "nodes").errors[index]
    assert any(message in error for error in errors.get(field, [])), errors
    assert definition_state(workflow) == before


def test_a_bad_config_on_an_existing_node_is_a_form_error(operator, workflow):
    before = definition_state(workflow)
    data = page_data(operator.get(change_url(workflow)))
    index = next(key for key, value in data.items() if key.endswith("-key") and value == "fetch").split("-")[1]
    data[f"nodes-{index}-config"] = '{"url": "https://example.org/{{ oops"}'
    answer = operator.post(change_url(workflow), data)
    assert answer.status_code == 200
    assert "config" in inline_formset(answer, "nodes").errors[int(index)]
    assert definition_state(workflow) == before


def edge_row(workflow: Workflow, source: str, target: str, label: str = "") -> dict:
    nodes = {node.key: str(node.pk) for node in workflow.nodes.all()}
    return {"edges-NEW-source": nodes[source], "edges-NEW-target": nodes[target], "edges-NEW-label": label}


def test_an_edge_that_closes_a_cycle_is_rejected(operator, workflow):
    before = definition_state(workflow)
    data = with_new_row(page_data(operator.get(change_url(workflow))), "edges", edge_row(workflow, "write", "fetch"))
    answer = operator.post(change_url(workflow), data)
    assert answer.status_code == 200
    assert inline_formset(answer, "edges").non_form_errors() == [
        "The dependencies form a cycle: fetch → write → fetch."
    ]
    assert definition_state(workflow) == before


@pytest.mark.parametrize(
    ("edge", "field", "message"),
    [
        (("fetch", "fetch", ""), "target", "cannot lead from a node to itself"),
        (("write", "fetch", "true"), "label", "'write' is a document node"),
    ],
)
def test_a_self_edge_or_a_label_after_a_plain_node_is_a_form_error(operator, workflow, edge, field, message):
    before = definition_state(workflow)
    data = with_new_row(page_data(operator.get(change_url(workflow))), "edges", edge_row(workflow, *edge))
    answer = operator.post(change_url(workflow), data)
    assert answer.status_code == 200
    errors = inline_formset(answer, "edges").errors[-1]
    assert any(message in error for error in errors.get(field, [])), errors
    assert definition_state(workflow) == before


def test_a_label_must_be_a_branch_of_the_condition(operator, owner):
    nodes = [
        {"key": "check", "type": "condition", "config": {"expression": "input.ok"}},
        {"key": "yes", "content": "y"},
    ]
    workflow = workflow_create(actor=owner, workspace=personal_workspace(owner), data={"name": "If", "nodes": nodes})
    data = page_data(operator.get(change_url(workflow)))
    data[next(key for key in data if key.startswith("edges-") and key.endswith("-label"))] = "maybe"
    answer = operator.post(change_url(workflow), data)
    assert answer.status_code == 200
    assert "'maybe' is not one of them" in str(inline_formset(answer, "edges").errors)

    data[next(key for key in data if key.startswith("edges-") and key.endswith("-label"))] = "true"
    assert operator.post(change_url(workflow), data).status_code == 302
    assert workflow.edges.get().label == "true"
    assert workflow.versions.first().snapshot["edges"] == [{"source": "check", "target": "yes", "label": "true"}]


def test_deleting_a_node_removes_its_edges(operator, workflow):
    data = page_data(operator.get(change_url(workflow)))
    index = next(key for key, value in data.items() if key.endswith("-key") and value == "write").split("-")[1]
    data[f"nodes-{index}-DELETE"] = "on"
    assert operator.post(change_url(workflow), data).status_code == 302
    assert list(workflow.nodes.values_list("key", flat=True)) == ["fetch"]
    assert not workflow.edges.exists()
    assert workflow.versions.first().number == 2


def test_an_edited_edge_to_a_node_being_deleted_is_a_form_error(operator, owner):
    nodes = [{"key": "a", "content": "a"}, {"key": "b", "content": "b"}, {"key": "c", "content": "c"}]
    workflow = workflow_create(actor=owner, workspace=personal_workspace(owner), data={"name": "ABC", "nodes": nodes})
    before = definition_state(workflow)
    data = page_data(operator.get(change_url(workflow)))
    index = next(key for key, value in data.items() if key.endswith("-key") and value == "c").split("-")[1]
    data[f"nodes-{index}-DELETE"] = "on"
    data = with_new_row(data, "edges", edge_row(workflow, "a", "c"))
    answer = operator.post(change_url(workflow), data)
    assert answer.status_code == 200
    assert inline_formset(answer, "edges").errors[-1]["__all__"] == [EDGE_TO_DELETED_NODE.format(key="c")]
    assert definition_state(workflow) == before


def test_versions_are_read_only(operator, workflow):
    inline = next(
        inline
        for inline in operator.get(change_url(workflow)).context["inline_admin_formsets"]
        if inline.formset.prefix == "versions"
    )
    assert not (inline.has_add_permission or inline.has_change_permission or inline.has_delete_permission)


def act(operator, action: str, *workflows: Workflow):
    return operator.post(CHANGELIST, {"action": action, "_selected_action": [str(w.pk) for w in workflows]})


def test_status_actions_change_the_statuses(operator, workflow, owner):
    other = workflow_create(actor=owner, workspace=workflow.workspace, data={"name": "Digest"})
    for action, status in [("activate", "active"), ("pause", "paused"), ("archive", "archived")]:
        answer = act(operator, action, workflow, other)
        assert answer.status_code == 302
        assert set(Workflow.objects.values_list("status", flat=True)) == {status}
    messages = [str(message) for message in operator.get(CHANGELIST).context["messages"]]
    assert "Archived 2 workflow(s)." in messages


def test_duplicate_action_makes_a_draft_copy(operator, workflow):
    act(operator, "activate", workflow)
    assert act(operator, "duplicate", workflow).status_code == 302
    copy = Workflow.objects.get(name="Newsletter (copy)")
    assert (copy.workspace, copy.status) == (workflow.workspace, "draft")
    assert list(copy.nodes.values_list("key", flat=True)) == ["fetch", "write"]
    assert copy.versions.get().created_by.email == "root@example.com"


def test_export_action_returns_a_json_attachment(operator, workflow, owner):
    other = workflow_create(actor=owner, workspace=workflow.workspace, data={"name": "Digest"})
    answer = act(operator, "export_json", workflow, other)
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    assert answer["Content-Disposition"] == 'attachment; filename="workflows.json"'
    documents = json.loads(answer.content)
    assert {document["name"] for document in documents} == {"Newsletter", "Digest"}
    assert {document["format"] for document in documents} == {"dwc-workflow/1"}
    newsletter = next(document for document in documents if document["name"] == "Newsletter")
    assert newsletter["tags"] == ["weekly"]
    assert newsletter["edges"] == [{"source": "fetch", "target": "write", "label": ""}]


def test_node_admin_searches_and_filters_nodes(operator, workflow):
    for query, keys in [("?q=fetch", {"fetch"}), ("?q=the+issue", {"write"}), ("?type=document", {"write"})]:
        answer = operator.get(f"/admin/workflows/node/{query}")
        assert answer.status_code == 200, query
        assert {node.key for node in answer.context["cl"].result_list} == keys, query
    node = workflow.nodes.get(key="fetch")
    assert operator.get(f"/admin/workflows/node/{node.pk}/change/").status_code == 200


def test_delete_action_is_soft_and_restore_brings_workflows_back(operator, workflow):
    actions = [choice[0] for choice in operator.get(CHANGELIST).context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert act(operator, "soft_delete", workflow).status_code == 302
    workflow.refresh_from_db()
    assert workflow.deleted_at is not None
    assert act(operator, "restore", workflow).status_code == 302
    workflow.refresh_from_db()
    assert workflow.deleted_at is None


def test_status_action_on_a_deleted_workflow_changes_nothing(operator, workflow, owner):
    other = workflow_create(actor=owner, workspace=workflow.workspace, data={"name": "Digest"})
    act(operator, "soft_delete", other)
    act(operator, "activate", workflow, other)
    assert set(Workflow.objects.values_list("status", flat=True)) == {"draft"}
    messages = [str(message) for message in operator.get(CHANGELIST).context["messages"]]
    assert any("No such workflow." in message for message in messages)


def test_credentials_are_write_only_in_the_admin(operator, workflow):
    from workflows.credentials import credential_value
    from workflows.models import Credential

    page = operator.post(
        "/admin/workflows/credential/add/",
        {"workspace": str(workflow.workspace_id), "name": "api", "kind": "http_bearer", "value": '{"token": "t0k3n"}'},
    )
    assert page.status_code == 302, page.context["adminform"].form.errors
    credential = Credential.objects.get(name="api")
    assert b"t0k3n" not in bytes(credential.encrypted_value)
    assert credential_value(workspace_id=workflow.workspace_id, name="api", kinds=("http_bearer",)) == {
        "token": "t0k3n"
    }
    change = operator.get(f"/admin/workflows/credential/{credential.pk}/change/").content.decode()
    assert "t0k3n" not in change
    bad = operator.post(
        "/admin/workflows/credential/add/",
        {"workspace": str(workflow.workspace_id), "name": "x", "kind": "http_bearer", "value": '{"user": "u"}'},
    )
    assert bad.status_code == 200
    assert "Missing: token." in str(bad.context["adminform"].form.errors)
    assert not Credential.objects.filter(name="x").exists()


def test_a_node_naming_another_workspaces_credential_or_workflow_is_a_form_error(operator, workflow):
    """The save check the API applies (services.references.workflow_references_check), in the admin too."""
    stranger = UserFactory()
    theirs = workflow_create(actor=stranger, workspace=personal_workspace(stranger), data={"name": "Theirs"})
    credential_save(
        workspace_id=personal_workspace(stranger).pk, name="their-key", kind="http_bearer", value={"token": "t" * 12}
    )
    before = definition_state(workflow)
    for index_values in (
        {"type": "subworkflow", "config": json.dumps({"workflow": str(theirs.pk)})},
        {"type": "http_request", "config": json.dumps({"url": "https://example.org", "credential": "their-key"})},
    ):
        data = page_data(operator.get(change_url(workflow)))
        index = int(data["nodes-TOTAL_FORMS"])
        data = {**data, "nodes-TOTAL_FORMS": str(index + 1), **node_row(index, key="sneaky", **index_values)}
        answer = operator.post(change_url(workflow), data)
        assert answer.status_code == 200
        errors = " ".join(inline_formset(answer, "nodes").non_form_errors())
        assert "nodes.sneaky.config." in errors and "in this workspace" in errors, errors
        assert definition_state(workflow) == before
