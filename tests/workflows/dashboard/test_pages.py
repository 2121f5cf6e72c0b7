"""The dashboard's pages through Django's test client: who may see them, what they render, what they reference."""

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

from accounts import mfa
from accounts.access import personal_workspace
from accounts.models import Membership
from tests.accounts.mfa_helpers import enrol
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from workflows.models import Document
from workflows.services.runs import run_trigger
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

CHAIN = {"name": "Page chain", "nodes": [{"key": "first", "type": "text", "content": "one"}]}
WRITE_CONTROLS = (
    'id="run-dialog"',
    'id="run-button"',
    'id="save-button"',
    'id="palette"',
    'id="new-workflow"',
    'id="cancel-button"',
    'id="retry-button"',
    "approval-template",
)


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def workflow(owner):
    return workflow_create(actor=owner, workspace=personal_workspace(owner), data=CHAIN)


@pytest.fixture
def run(owner, workflow):
    run, _ = run_trigger(workflow=workflow, input={}, trigger="manual", actor=owner)
    # What its step wrote, for the document diff page.
    Document.objects.create(
        workspace=workflow.workspace,
        workflow=workflow,
        run=run,
        node_key="first",
        version=1,
        title="One",
        provider="template",
    )
    return run


def member(workspace, role: str):
    user = UserFactory()
    MembershipFactory(workspace=workspace, user=user, role=role)
    return user


def pages(workflow, run) -> list[str]:
    workspace = f"?workspace={workflow.workspace_id}"
    return [
        f"/dashboard/{workspace}",
        f"/dashboard/runs/{workspace}",
        f"/dashboard/budgets/{workspace}",
        f"/dashboard/workflows/{workflow.pk}/",
        f"/dashboard/workflows/{workflow.pk}/edit/",
        f"/dashboard/workflows/new/{workspace}",
        f"/dashboard/runs/{run.pk}/",
        f"/dashboard/documents/{run.documents.get().pk}/diff/",
    ]


def test_pages_send_anonymous_visitors_to_the_login_page(client, workflow, run):
    for url in pages(workflow, run):
        answer = client.get(url)
        assert answer.status_code == 302, url
        assert answer["Location"].startswith("/accounts/login/?next=/dashboard/"), answer["Location"]


def test_logging_in_lands_on_the_dashboard_and_logging_out_on_the_login_page(client, owner):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert '<label for="id_username">Email</label>' in page.content.decode()

    wrong = client.post("/accounts/login/", {"username": owner.email, "password": "not it"})
    assert wrong.status_code == 200
    assert 'role="alert"' in wrong.content.decode()

    answer = client.post("/accounts/login/", {"username": owner.email, "password": PASSWORD})
    assert (answer.status_code, answer["Location"]) == (302, "/dashboard/")
    assert client.get("/dashboard/").status_code == 200

    answer = client.post("/accounts/logout/", {"next": "/accounts/login/"})
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/login/")
    assert client.get("/dashboard/").status_code == 302


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_every_page_renders_for_a_member(client, workflow, run, role):
    client.force_login(member(workflow.workspace, role))
    for url in pages(workflow, run):
        answer = client.get(url)
        assert answer.status_code == 200, url
        html = answer.content.decode()
        assert f'data-workspace="{workflow.workspace_id}"' in html
        assert f'data-role="{role}"' in html
        assert "csrftoken" in answer.cookies  # the page's scripts send it with their writes
    assert workflow.name in client.get(f"/dashboard/workflows/{workflow.pk}/").content.decode()
    assert f'data-run="{run.pk}"' in client.get(f"/dashboard/runs/{run.pk}/").content.decode()


def test_without_a_workspace_in_the_query_the_personal_workspace_is_shown(client, owner):
    client.force_login(owner)
    html = client.get("/dashboard/").content.decode()
    assert f'data-workspace="{personal_workspace(owner).pk}"' in html
    assert 'data-role="owner"' in html


def test_a_user_without_a_workspace_is_told_so(client):
    client.force_login(UserFactory(personal_workspace=False))
    for url in ["/dashboard/", "/dashboard/runs/"]:
        answer = client.get(url)
        assert answer.status_code == 200
        assert "You do not belong to a workspace yet." in answer.content.decode()


def test_another_workspaces_workflow_run_and_workspace_are_404(client, workflow, run):
    client.force_login(UserFactory())
    for url in pages(workflow, run):
        assert client.get(url).status_code == 404, url
    assert client.get("/dashboard/workflows/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_a_viewer_gets_no_write_controls_and_an_editor_does(client, workflow, run):
    client.force_login(member(workflow.workspace, Membership.Role.VIEWER))
    for url in pages(workflow, run):
        html = client.get(url).content.decode()
        assert not [control for control in WRITE_CONTROLS if control in html], url

    client.force_login(member(workflow.workspace, Membership.Role.EDITOR))
    assert 'id="run-dialog"' in client.get(pages(workflow, run)[0]).content.decode()
    assert 'id="run-button"' in client.get(f"/dashboard/workflows/{workflow.pk}/").content.decode()
    assert 'id="save-button"' in client.get(f"/dashboard/workflows/{workflow.pk}/edit/").content.decode()
    assert 'id="new-workflow-form"' in client.get(pages(workflow, run)[5]).content.decode()
    run_page = client.get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert 'id="cancel-button"' in run_page
    assert 'id="approval-template"' in run_page


def test_pages_reference_only_static_files_that_exist_and_no_inline_scripts(client, owner, workflow, run):
    client.force_login(owner)
    referenced = set()
    for url in [*pages(workflow, run), "/dashboard/account/", "/accounts/login/"]:
        html = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"{url} has an inline script"
        assert " style=" not in html and "onclick=" not in html, url
        referenced |= set(re.findall(r'(?:src|href)="/static/([^"]+)"', html))
    assert {"dashboard/dashboard.css", "dashboard/run.js", "dashboard/workflows.js"} <= referenced
    assert "dashboard/account.js" in referenced

    # The page modules import the shared ones; every import must resolve to a file too.
    pending = [path for path in referenced if path.endswith(".js")]
    while pending:
        path = pending.pop()
        found = finders.find(path)
        assert found, f"/static/{path} does not exist"
        for name in re.findall(r'from "\./([\w.-]+\.js)"', Path(found).read_text()):
            if f"dashboard/{name}" not in referenced:
                referenced.add(f"dashboard/{name}")
                pending.append(f"dashboard/{name}")
    for path in referenced:
        assert finders.find(path), f"/static/{path} does not exist"
    assert "dashboard/live.js" in referenced
    assert "dashboard/document-diff.js" in referenced
    assert {"dashboard/builder.js", "dashboard/builder.css", "vendor/drawflow/drawflow.min.js"} <= referenced
    for path in ["dashboard/builder/canvas.js", "dashboard/builder/document.js", "vendor/dagre/dagre.esm.js"]:
        assert finders.find(path), f"/static/{path} does not exist"


def test_the_account_page_needs_a_login(client):
    answer = client.get("/dashboard/account/")
    assert (answer.status_code, answer["Location"]) == (302, "/accounts/login/?next=/dashboard/account/")


def test_the_account_page_shows_mfa_off_with_the_control_to_turn_it_on(client, owner):
    client.force_login(owner)
    answer = client.get("/dashboard/account/")
    assert answer.status_code == 200
    assert "csrftoken" in answer.cookies  # the page's scripts call the API with it
    html = answer.content.decode()
    assert '<a href="/dashboard/account/" aria-current="page">Account</a>' in html
    assert 'data-enabled="false"' in html
    assert "Logins need only the password." in html
    assert re.search(r'<div id="mfa-off">\s*<p', html)  # shown
    assert re.search(r'<form id="mfa-disable"[^>]* hidden>', html)
    assert 'id="sessions"' in html


def test_the_account_page_shows_mfa_on_with_the_recovery_codes_left(client, owner):
    codes = enrol(owner)
    mfa.mfa_code_verify(user=owner, code=codes[0])  # spends one
    client.force_login(owner)
    html = client.get("/dashboard/account/").content.decode()
    assert 'data-enabled="true" data-recovery-codes-left="9"' in " ".join(html.split())
    assert "9 recovery codes left." in " ".join(html.split())
    assert '<div id="mfa-off" hidden>' in html
    assert re.search(r'<form id="mfa-disable"[^>]*novalidate>', html)  # shown


def test_every_dashboard_page_links_to_the_account_page(client, owner, workflow, run):
    client.force_login(owner)
    for url in pages(workflow, run):
        assert '<a href="/dashboard/account/">Account</a>' in client.get(url).content.decode(), url


def test_a_member_whom_a_workspace_requires_mfa_of_can_open_the_account_page_to_turn_it_on(client, workflow):
    workflow.workspace.mfa_required = True
    workflow.workspace.save(update_fields=["mfa_required"])
    client.force_login(member(workflow.workspace, Membership.Role.EDITOR))
    answer = client.get("/dashboard/account/")
    assert answer.status_code == 200
    assert 'id="mfa-start"' in answer.content.decode()
