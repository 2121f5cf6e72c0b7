"""Pausing and resuming in a real browser (Debian's Chromium, Playwright) against the product as
`make run` starts it: a run paused and resumed from its page changes there live, a workflow's runs
are paused and resumed from its page, and every page says when the engine drains (1366 and 390 px)."""

import re

import pytest

from accounts.access import personal_workspace
from tests.factories import PASSWORD, UserFactory
from tests.workflows.dashboard.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    browser,
    needs_chromium,
    server,
    watch_for_script_errors,
)
from workflows.models import EngineDrain
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

WAIT_SECONDS = 4
WORKFLOW = {
    "name": "Pausable",
    "status": "active",
    "nodes": [
        {"key": "wait", "type": "delay", "config": {"seconds": WAIT_SECONDS}},
        {"key": "write", "type": "text", "title": "Letter", "content": "done"},
    ],
}


@pytest.fixture
def editor(transactional_db):
    """Made before the browser starts: Django refuses ORM calls while Playwright's event loop runs."""
    user = UserFactory(email="pauser@example.com")
    workflow_create(actor=user, workspace=personal_workspace(user), data=WORKFLOW)
    return user


def log_in(page, base: str, user) -> None:
    page.goto(f"{base}/dashboard/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/dashboard/")


def test_a_run_paused_and_resumed_from_its_page_changes_live(server, editor, browser):  # noqa: F811
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    script_errors: list[str] = []
    watch_for_script_errors(page, script_errors)
    log_in(page, server, editor)

    page.get_by_role("button", name="Run Pausable").click()
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/dashboard/runs/[0-9a-f-]{36}/$"))
    page.wait_for_function("() => document.querySelector('#run-status').dataset.status === 'waiting'")
    assert page.get_by_role("button", name="Resume").is_hidden()

    page.get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_function("() => document.querySelector('#run-status').dataset.status === 'paused'")
    assert page.get_by_role("button", name="Resume").is_visible()
    assert page.get_by_role("button", name="Pause", exact=True).is_hidden()
    assert page.get_by_role("button", name="Pause now").is_hidden()
    page.screenshot(path=SCREENSHOTS / "run-paused-1366.png", full_page=True)

    page.get_by_role("button", name="Resume").click()
    page.wait_for_function(
        "() => document.querySelector('#run-status').dataset.status === 'succeeded'",
        timeout=WAIT_SECONDS * 1000 + 15000,
    )
    assert page.get_by_role("button", name="Pause", exact=True).is_hidden()

    # The workflow's runs: paused and resumed from its page.
    page.get_by_role("link", name="Pausable").first.click()
    page.get_by_role("button", name="Pause runs").click()
    note = page.locator("#runs-paused")
    note.wait_for(state="visible")
    assert "Runs paused since" in note.inner_text() and editor.email in note.inner_text()
    page.get_by_role("button", name="Resume runs").click()
    note.wait_for(state="hidden")
    assert page.get_by_role("button", name="Pause runs").is_visible()
    assert script_errors == []


@pytest.fixture
def draining(editor):
    EngineDrain.objects.create(reason="deploy")
    return editor


@pytest.mark.parametrize("width", [1366, 390])
def test_every_page_says_when_the_engine_drains(server, draining, browser, width):  # noqa: F811
    page = browser.new_context(viewport={"width": width, "height": 844}).new_page()
    script_errors: list[str] = []
    watch_for_script_errors(page, script_errors)
    log_in(page, server, draining)
    banner = page.locator("#engine-banner")
    banner.wait_for(state="visible")
    assert "The engine is draining since" in banner.inner_text()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    page.screenshot(path=SCREENSHOTS / f"engine-draining-{width}.png", full_page=True)
    assert script_errors == []
