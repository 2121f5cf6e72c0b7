"""Reviewing documents at an approval on the run page, in a real browser (Debian's Chromium, Playwright)
against the real product: the reviewer sees the outline under review, asks for changes (it is written
again with the comment, live), edits the new one, approves, and the chapter after it is written from
the edit."""

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
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

WORKFLOW = {
    "name": "Reviewed story",
    "status": "active",
    # No credential: the offline template provider writes the rendered prompt as the document.
    "nodes": [
        {"key": "outline", "type": "document", "title": "Outline", "prompt": "Outline about {{ input.topic }}"},
        {"key": "review", "type": "approval", "config": {"message": "Is the outline right?", "documents": ["outline"]}},
        {
            "key": "chapter",
            "type": "document",
            "title": "Chapter",
            "prompt": "Chapter from {{ nodes.outline.content }}",
        },
    ],
}
START = """async (workflow) => {
    const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
    const headers = {"Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json"};
    const body = JSON.stringify({input: {topic: "boats"}});
    const started = await fetch(`/api/v3/workflows/${workflow}/runs`, {method: "POST", headers, body});
    if (!started.ok) throw new Error(`run not started: ${started.status}`);
    return (await started.json()).id;
}"""
STEPS = """async (run) => {
    const answer = await fetch(`/api/v3/runs/${run}/steps`, {headers: {Accept: "application/json"}});
    return Object.fromEntries((await answer.json()).map((step) => [step.key, step]));
}"""
ALL_SUCCEEDED = """() => {
    const nodes = [...document.querySelectorAll("g.node")];
    return nodes.length === 3 && nodes.every((node) => node.dataset.status === "succeeded");
}"""


@pytest.fixture
def reviewer(transactional_db):
    """Made before the browser starts: Django refuses ORM calls while Playwright's event loop runs."""
    user = UserFactory(email="reviewer@example.com")
    workflow = workflow_create(actor=user, workspace=personal_workspace(user), data=WORKFLOW)
    return user, workflow


def test_the_reviewer_asks_for_changes_then_edits_the_document_and_approves(server, reviewer, browser):  # noqa: F811
    user, workflow = reviewer
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    script_errors: list[str] = []
    watch_for_script_errors(page, script_errors)
    page.goto(f"{server}/dashboard/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")

    run_id = page.evaluate(START, str(workflow.pk))
    page.goto(f"{server}/dashboard/runs/{run_id}/")
    form = page.get_by_role("form", name="Decide review")
    outline = form.get_by_label("Outline (outline, version 1)")
    outline.wait_for(timeout=15000)
    page.wait_for_function(
        "() => document.querySelector('textarea[name=edit-outline]')?.value === 'Outline about boats'"
    )
    page.screenshot(path=SCREENSHOTS / "document-review-1280.png", full_page=True)

    # Sent back with a comment: written again (the template provider repeats the request, comment included).
    form.get_by_label("Comment").fill("Mention the lighthouse.")
    form.get_by_role("button", name="Request changes").click()
    second = page.get_by_role("form", name="Decide review").get_by_label("Outline (outline, version 2)")
    second.wait_for(timeout=15000)
    page.wait_for_function(
        "() => document.querySelector('textarea[name=edit-outline]')?.value.includes('Mention the lighthouse.')"
    )

    second.fill("A keeper, a lighthouse and the boats.")
    page.get_by_role("form", name="Decide review").get_by_role("button", name="Approve").click()
    page.wait_for_function(ALL_SUCCEEDED, timeout=15000)
    assert page.locator("#run-status").inner_text() == "succeeded"
    assert page.get_by_role("form", name="Decide review").count() == 0

    steps = page.evaluate(STEPS, run_id)
    assert steps["outline"]["output"]["content"] == "A keeper, a lighthouse and the boats."
    assert steps["outline"]["output"]["version"] == 3
    assert steps["chapter"]["output"]["content"] == "Chapter from A keeper, a lighthouse and the boats."
    assert steps["review"]["output"]["edits"]["outline"]["version"] == 3
    document_panel = page.locator('#step-outline [data-panel="document"]')
    assert "edited by reviewer@example.com" in document_panel.text_content()
    assert script_errors == []
