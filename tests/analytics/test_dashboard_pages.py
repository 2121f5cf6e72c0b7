"""The Analytics pages through Django's test client: who may see them, what they render, what they
reference. Their figures come from the API in the browser (test_dashboard_browser.py)."""

import re
import uuid

import pytest
from django.contrib.staticfiles import finders

from accounts.access import personal_workspace
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

CHAIN = {"name": "Charted chain", "nodes": [{"key": "first", "type": "text", "content": "one"}]}
CHARTS = ("success-rate", "runs-by-status", "duration", "queue-wait", "cost-by-model", "tokens-by-model")


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def workflow(owner):
    return workflow_create(actor=owner, workspace=personal_workspace(owner), data=CHAIN)


def test_the_pages_send_anonymous_visitors_to_the_login_page(client, workflow):
    for url in ["/dashboard/analytics/", f"/dashboard/analytics/workflows/{workflow.pk}/"]:
        answer = client.get(url)
        assert answer.status_code == 302, url
        assert answer["Location"] == f"/accounts/login/?next={url}"


def test_the_workspace_page_renders_the_personal_workspace_with_every_chart_and_table(client, owner):
    client.force_login(owner)
    answer = client.get("/dashboard/analytics/")
    html = answer.content.decode()
    workspace = personal_workspace(owner)
    assert answer.status_code == 200
    assert f'id="analytics" data-workspace="{workspace.pk}" data-range="24h"' in html
    for chart in CHARTS:
        assert f'id="chart-{chart}"' in html and f'id="chart-{chart}-title"' in html
    for table in ("models", "errors"):
        assert f'id="{table}"' in html
    assert 'id="insights"' in html
    assert 'id="nodes"' not in html
    assert "csrftoken" in answer.cookies


def test_a_member_sees_a_shared_workspace_chosen_in_the_query_with_the_range_kept(client, owner):
    shared = WorkspaceFactory(name="Shared figures")
    MembershipFactory(workspace=shared, user=owner, role="viewer")
    client.force_login(owner)
    html = client.get(f"/dashboard/analytics/?workspace={shared.pk}&range=7d").content.decode()
    assert f'data-workspace="{shared.pk}" data-range="7d"' in html
    assert "of Shared figures" in html
    assert re.search(r'data-range="7d" aria-current="true"', html)
    assert f'href="?range=30d&amp;workspace={shared.pk}"' in html


def test_an_unknown_range_falls_back_to_a_day(client, owner):
    client.force_login(owner)
    assert 'data-range="24h"' in client.get("/dashboard/analytics/?range=2y").content.decode()


def test_another_workspace_is_404(client, owner):
    client.force_login(owner)
    stranger = UserFactory()
    assert client.get(f"/dashboard/analytics/?workspace={personal_workspace(stranger).pk}").status_code == 404
    assert client.get("/dashboard/analytics/?workspace=not-an-id").status_code == 404


def test_the_workflow_page_renders_for_a_workflow_id_with_its_nodes_table(client, owner, workflow):
    client.force_login(owner)
    url = f"/dashboard/analytics/workflows/{workflow.pk}/?workspace={workflow.workspace_id}"
    html = client.get(url).content.decode()
    assert f'data-workflow="{workflow.pk}" data-workspace="{workflow.workspace_id}"' in html
    assert 'id="nodes"' in html and 'id="errors"' in html and 'id="chart-duration"' in html
    assert 'id="insights"' not in html
    assert f'href="/dashboard/workflows/{workflow.pk}/"' in html


def test_the_workflow_page_is_only_a_shell_the_api_refuses_to_fill_for_a_stranger(client, owner):
    # Analytics know workflows by id only: the page renders, GET analytics/workflows/{id} answers 404.
    client.force_login(owner)
    missing = uuid.uuid4()
    assert client.get(f"/dashboard/analytics/workflows/{missing}/").status_code == 200
    assert client.get(f"/api/v3/analytics/workflows/{missing}").status_code == 404


def test_every_dashboard_page_has_the_analytics_link_and_the_workflow_page_links_its_analytics(client, owner, workflow):
    client.force_login(owner)
    workspace = workflow.workspace_id
    for url in ["/dashboard/", "/dashboard/runs/", "/dashboard/notifications/", "/dashboard/analytics/"]:
        html = client.get(url).content.decode()
        assert re.search(rf'<a href="/dashboard/analytics/(\?workspace={workspace})?"[^>]*>Analytics</a>', html), url
    analytics = client.get("/dashboard/analytics/").content.decode()
    assert f'<a href="/dashboard/analytics/?workspace={workspace}" aria-current="page">Analytics</a>' in analytics
    workflow_page = client.get(f"/dashboard/workflows/{workflow.pk}/").content.decode()
    assert f'href="/dashboard/analytics/workflows/{workflow.pk}/?workspace={workspace}">Analytics</a>' in workflow_page


def test_the_pages_reference_only_static_files_that_exist_and_no_inline_scripts(client, owner, workflow):
    client.force_login(owner)
    referenced = set()
    for url in ["/dashboard/analytics/", f"/dashboard/analytics/workflows/{workflow.pk}/"]:
        html = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"{url} has an inline script"
        assert " style=" not in html and "onclick=" not in html, url
        referenced |= set(re.findall(r'(?:src|href)="/static/([^"]+)"', html))
    assert {"dashboard/analytics.js", "dashboard/analytics.css", "vendor/uplot/uPlot.min.css"} <= referenced
    for path in referenced:
        assert finders.find(path), f"/static/{path} does not exist"
    assert finders.find("vendor/uplot/uPlot.esm.js")
