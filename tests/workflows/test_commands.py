import json
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.access import personal_workspace
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workflows.models import Workflow
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

NODES = [
    {"key": "fetch", "type": "http_request", "title": "Fetch", "config": {"url": "https://example.org/{{ input.id }}"}},
    {"key": "check", "type": "condition", "config": {"expression": "nodes.fetch.output.status == 200"}},
    {"key": "wait", "type": "delay", "config": {"duration": 30}, "depends_on": [{"node": "check", "when": "true"}]},
    {"key": "write", "type": "document", "prompt": "Sum up {{ nodes.fetch.output.body }}", "priority": 3},
]


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def workflows(owner):
    workspace = personal_workspace(owner)
    return [
        workflow_create(
            actor=owner,
            workspace=workspace,
            data={
                "name": "Newsletter",
                "slug": "newsletter",
                "status": "active",
                "tags": ["weekly", "mail"],
                "settings": {"max_nodes": 10},
                "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
                "nodes": NODES,
            },
        ),
        workflow_create(actor=owner, workspace=workspace, data={"name": "Empty"}),
    ]


def export(*args) -> list[dict]:
    out = StringIO()
    call_command("export_workflows", *args, stdout=out)
    return json.loads(out.getvalue())


def import_file(path, *args) -> list[str]:
    out = StringIO()
    call_command("import_workflows", str(path), *args, stdout=out)
    return out.getvalue().splitlines()


def test_export_then_import_into_another_workspace_gives_equal_documents(workflows, owner, tmp_path):
    workspace = personal_workspace(owner)
    documents = export("--workspace", str(workspace.pk))
    assert [document["name"] for document in documents] == ["Newsletter", "Empty"]
    assert documents[0]["nodes"][2]["config"] == {"seconds": 30}
    path = tmp_path / "workflows.json"
    path.write_text(json.dumps(documents))

    other = UserFactory()
    lines = import_file(path, "--workspace", str(personal_workspace(other).pk))

    imported = list(Workflow.objects.filter(workspace=personal_workspace(other)).order_by("created_at"))
    assert lines == [f"{workflow.pk} {workflow.name}" for workflow in imported]
    assert imported[0].created_by == other  # the workspace's owner by default
    assert export(*[str(workflow.pk) for workflow in imported]) == documents


def test_export_without_arguments_lists_every_workflow_not_deleted(workflows):
    other = UserFactory()
    workflow_create(actor=other, workspace=personal_workspace(other), data={"name": "Elsewhere"})
    Workflow.objects.filter(pk=workflows[1].pk).update(deleted_at="2024-01-01T00:00:00Z")
    assert [document["name"] for document in export()] == ["Newsletter", "Elsewhere"]
    assert [document["name"] for document in export(str(workflows[1].pk))] == ["Empty"]  # asked for by id


def test_import_of_a_single_document_as_a_named_member(workflows, tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(export(str(workflows[0].pk))[0]))
    editor = MembershipFactory(role="editor")
    lines = import_file(path, "--workspace", str(editor.workspace.pk), "--as", editor.user.email.upper())
    workflow = Workflow.objects.get(workspace=editor.workspace)
    assert lines == [f"{workflow.pk} Newsletter"]
    assert (workflow.created_by, workflow.slug, workflow.version) == (editor.user, "newsletter", 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Cannot read"),
        ("{not json", "is not valid JSON"),
        ("[]", "non_field_errors: Nothing to import."),
        ('{"name": "x"}', "format: Expected an export document"),
    ],
)
def test_import_of_a_bad_file_names_the_problem(owner, tmp_path, content, message):
    path = tmp_path / "workflows.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandError, match=message):
        import_file(path, "--workspace", str(personal_workspace(owner).pk))
    assert not Workflow.objects.exists()


def test_import_with_a_bad_node_config_creates_no_workflow(workflows, owner, tmp_path):
    documents = export(str(workflows[1].pk), str(workflows[0].pk))
    documents[1]["nodes"][0]["config"] = {"method": "GET"}
    path = tmp_path / "workflows.json"
    path.write_text(json.dumps(documents))
    target = WorkspaceFactory()
    MembershipFactory(workspace=target, user=owner, role="owner")
    with pytest.raises(CommandError) as raised:
        import_file(path, "--workspace", str(target.pk))
    assert "1.nodes.fetch.config.url: 'url' is a required property" in str(raised.value)
    assert not Workflow.objects.filter(workspace=target).exists()  # the valid first document too


def test_import_into_an_unknown_workspace_or_as_a_stranger_fails(workflows, tmp_path):
    path = tmp_path / "workflows.json"
    path.write_text(json.dumps(export()))
    for workspace in (str(uuid.uuid4()), "not-an-id"):
        with pytest.raises(CommandError, match=f"No such workspace: {workspace}"):
            import_file(path, "--workspace", workspace)
    target = WorkspaceFactory()
    with pytest.raises(CommandError, match="has no owner"):
        import_file(path, "--workspace", str(target.pk))
    with pytest.raises(CommandError, match=r"No user with the email nobody@example\.com"):
        import_file(path, "--workspace", str(target.pk), "--as", "nobody@example.com")
    viewer = MembershipFactory(workspace=target, role="viewer")
    with pytest.raises(CommandError, match="may not create workflows"):
        import_file(path, "--workspace", str(target.pk), "--as", viewer.user.email)
    assert not Workflow.objects.filter(workspace=target).exists()


def test_export_of_an_unknown_workflow_or_workspace_fails_and_prints_nothing(workflows, owner):
    out = StringIO()
    missing = str(uuid.uuid4())
    with pytest.raises(CommandError, match=f"No such workflow: {missing}"):
        call_command("export_workflows", str(workflows[0].pk), missing, stdout=out)
    with pytest.raises(CommandError, match="No such workflow: nope"):
        call_command("export_workflows", "nope", stdout=out)
    with pytest.raises(CommandError, match=f"No such workspace: {missing}"):
        call_command("export_workflows", "--workspace", missing, stdout=out)
    other = UserFactory()
    with pytest.raises(CommandError, match="No such workflow in workspace"):
        call_command(
            "export_workflows", "--workspace", str(personal_workspace(other).pk), str(workflows[0].pk), stdout=out
        )
    assert out.getvalue() == ""
