"""Workflow events in a real browser (Debian's Chromium, Playwright) against the real product: another
member's changes, made through the public API, show on the open pages without a reload — the builder's
banner naming who saved which version (and not for the page's own save), the workflows list, and the
workflow page's runs-pause note (docs/builder.md, docs/realtime.md)."""

import httpx
import pytest

from accounts.access import personal_workspace
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.workflows.dashboard.test_browser import SCREENSHOTS, browser, needs_chromium, server, watch_for_script_errors
from tests.workflows.dashboard.test_builder_browser import CHAIN, log_in, node, open_builder, saved
from workflows.services.workflows import workflow_create

__all__ = ["browser", "server"]  # fixtures

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

LIVE = "() => document.getElementById('live-status').dataset.state === 'live'"
THEIR_NODE = {"key": "theirs", "type": "text", "content": "Theirs", "position": {"x": 300, "y": 200}}


@pytest.fixture
def editor(transactional_db):
    return UserFactory(email="live-editor@example.com")


@pytest.fixture
def workflow(editor):
    return workflow_create(actor=editor, workspace=personal_workspace(editor), data=CHAIN)


@pytest.fixture
def colleague(workflow):
    """Made before the browser starts, as every fixture here: no ORM calls while Playwright's loop runs."""
    user = UserFactory(email="colleague@example.com")
    MembershipFactory(workspace=workflow.workspace, user=user, role="editor")
    return user


@pytest.fixture
def viewer(workflow):
    user = UserFactory(email="live-viewer@example.com")
    MembershipFactory(workspace=workflow.workspace, user=user, role="viewer")
    return user


@pytest.fixture
def colleague_api(server, colleague):
    """The colleague's changes go through the public API with a JWT, as an integrator's would."""
    tokens = httpx.post(f"{server}/api/v3/auth/token", json={"email": colleague.email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access']}"}
    with httpx.Client(base_url=f"{server}/api/v3/", headers=headers, timeout=30) as client:
        yield client


def opened(browser, server, user, width=1366):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = log_in(context, server, user)
    errors: list[str] = []
    watch_for_script_errors(page, errors)
    return context, page, errors


def test_the_builder_names_who_saved_a_newer_version_and_loads_it_but_not_for_its_own_save(
    server, editor, viewer, workflow, colleague_api, browser
):
    context, page, errors = opened(browser, server, editor)
    open_builder(page, server, workflow.pk, 2)
    page.wait_for_function(LIVE)
    page.locator('#palette .palette-item[data-type="delay"]').click()  # an unsaved edit
    viewer_context, viewer_page, viewer_errors = opened(browser, server, viewer)
    open_builder(viewer_page, server, workflow.pk, 2)
    viewer_page.wait_for_function(LIVE)

    theirs = {**CHAIN, "nodes": [*CHAIN["nodes"], THEIR_NODE]}
    answer = colleague_api.put(f"workflows/{workflow.pk}", json=theirs, headers={"If-Match": '"1"'})
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 2

    banner = page.locator("#builder-banner")
    banner.get_by_text("colleague@example.com saved version 2.").wait_for()
    assert "Saving your changes now will be refused as a conflict." in banner.inner_text()
    assert banner.get_by_role("button", name="Download my changes").is_visible()
    page.screenshot(path=SCREENSHOTS / "builder-live-banner-1366.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    page.screenshot(path=SCREENSHOTS / "builder-live-banner-390.png", full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})

    banner.get_by_role("button", name="Load version 2").click()
    node(page, "theirs").wait_for()
    assert page.locator("#canvas .drawflow-node").count() == 3
    assert node(page, "delay").count() == 0
    assert page.locator("#version-label").inner_text() == "Version 2"
    assert banner.is_hidden()

    # A viewer has nothing to lose: the banner only offers to show their version.
    viewer_banner = viewer_page.locator("#builder-banner")
    viewer_banner.get_by_text("colleague@example.com saved version 2.").wait_for()
    assert "conflict" not in viewer_banner.inner_text()
    assert viewer_banner.get_by_role("button", name="Download my changes").count() == 0
    viewer_banner.get_by_role("button", name="Load version 2").click()
    node(viewer_page, "theirs").wait_for()
    assert viewer_page.locator("#version-label").inner_text() == "Version 2"
    viewer_context.close()
    assert viewer_errors == []

    # The page's own save: its event comes to this page too, before or after the PUT's answer.
    page.locator('#palette .palette-item[data-type="transform"]').click()
    saved(page)
    page.wait_for_timeout(1000)  # long enough for the save's own event, sent once the save committed
    assert banner.inner_text() == "Saved as version 3."
    context.close()
    assert errors == []


def test_the_workflows_list_shows_a_workflow_another_member_creates_and_drops_one_they_delete(
    server, editor, workflow, colleague_api, browser
):
    context, page, errors = opened(browser, server, editor)
    page.locator(f'tr[data-workflow="{workflow.pk}"]').wait_for()
    page.wait_for_function(LIVE)
    page.evaluate("window.marker = 'the same page'")

    created = colleague_api.post(
        "workflows", json={"name": "Made elsewhere", "workspace": str(workflow.workspace_id), "nodes": []}
    )
    assert created.status_code == 201, created.text
    row = page.locator(f'tr[data-workflow="{created.json()["id"]}"]')
    row.wait_for()
    assert row.get_by_role("link", name="Made elsewhere").is_visible()
    page.screenshot(path=SCREENSHOTS / "workflows-live-1366.png", full_page=True)

    assert colleague_api.delete(f"workflows/{created.json()['id']}").status_code == 204
    row.wait_for(state="detached")
    assert page.locator(f'tr[data-workflow="{workflow.pk}"]').is_visible()
    assert page.evaluate("window.marker") == "the same page"
    context.close()
    assert errors == []


def test_the_workflow_page_follows_another_member_pausing_and_resuming_its_runs(
    server, editor, workflow, colleague_api, browser
):
    context, page, errors = opened(browser, server, editor)
    page.goto(f"{server}/dashboard/workflows/{workflow.pk}/")
    page.get_by_role("button", name="Pause runs").wait_for()
    page.wait_for_function(LIVE)
    page.evaluate("window.marker = 'the same page'")
    note = page.locator("#runs-paused")
    assert note.is_hidden()

    assert colleague_api.post(f"workflows/{workflow.pk}/runs-pause").status_code == 201
    note.wait_for(state="visible")
    assert "Runs paused since" in note.inner_text() and "colleague@example.com" in note.inner_text()
    assert page.get_by_role("button", name="Resume runs").is_visible()
    assert page.get_by_role("button", name="Pause runs").is_hidden()
    page.screenshot(path=SCREENSHOTS / "workflow-runs-paused-live-1366.png", full_page=True)

    assert colleague_api.delete(f"workflows/{workflow.pk}/runs-pause").status_code == 200
    note.wait_for(state="hidden")
    assert page.get_by_role("button", name="Pause runs").is_visible()

    renamed = colleague_api.patch(f"workflows/{workflow.pk}", json={"name": "Renamed elsewhere", "status": "active"})
    assert renamed.status_code == 200, renamed.text
    page.wait_for_function("() => document.getElementById('workflow-name').textContent === 'Renamed elsewhere'")
    assert page.locator("#workflow-status").inner_text() == "active"
    assert page.locator("#workflow-version").inner_text() == str(renamed.json()["version"])
    assert page.evaluate("window.marker") == "the same page"
    context.close()
    assert errors == []
