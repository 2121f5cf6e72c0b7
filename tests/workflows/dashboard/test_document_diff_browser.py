"""The document diff page in a real browser (Debian's Chromium, Playwright) against the real product:
two runs write two versions of a document node's document, the second run's page links to their diff,
and the diff shows deletions and insertions side by side at 1366 and 390 px."""

import re

import pytest

from accounts.access import personal_workspace
from tests.factories import PASSWORD, UserFactory
from tests.workflows.dashboard.test_browser import (  # noqa: F401 - fixtures
    browser,
    needs_chromium,
    server,
    watch_for_script_errors,
)
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]

WORKFLOW = {
    "name": "Letters",
    "status": "active",
    # No credential: the offline template provider writes the rendered prompt as the document.
    "nodes": [{"key": "write", "type": "document", "prompt": "{{ input.text }}", "config": {"title": "Letter"}}],
}
FIRST = "Dear Ada,\nthe quick brown fox jumps over the lazy dog.\nYours, Bob"
SECOND = "Dear Grace,\nthe quick brown fox jumps over the lazy dog.\nYours, Bob\nPS: more soon."
# Starts a run with the input and waits until it has finished; its id, or an error.
RUN_TO_THE_END = """async (args) => {
    const [workflow, text] = args;
    const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
    const headers = {"Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json"};
    const body = JSON.stringify({input: {text}});
    const started = await fetch(`/api/v3/workflows/${workflow}/runs`, {method: "POST", headers, body});
    if (!started.ok) throw new Error(`run not started: ${started.status}`);
    const run = await started.json();
    for (let attempt = 0; attempt < 150; attempt += 1) {
        const answer = await (await fetch(`/api/v3/runs/${run.id}`, {headers})).json();
        if (answer.status === "succeeded") return run.id;
        if (["failed", "cancelled"].includes(answer.status)) throw new Error(`run ${answer.status}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error("run did not finish");
}"""
LOADED = "() => document.getElementById('diff-page').dataset.loaded === 'true'"


@pytest.fixture
def letters(transactional_db):
    """Made before the browser starts: Django refuses ORM calls while Playwright's event loop runs."""
    user = UserFactory(email="differ@example.com")
    workflow = workflow_create(actor=user, workspace=personal_workspace(user), data=WORKFLOW)
    return user, workflow


def test_the_diff_page_shows_deletions_and_insertions_side_by_side(server, letters, browser, tmp_path):  # noqa: F811
    user, workflow = letters
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    script_errors: list[str] = []
    watch_for_script_errors(page, script_errors)
    page.goto(f"{server}/dashboard/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")

    page.evaluate(RUN_TO_THE_END, [str(workflow.pk), FIRST])
    second_run = page.evaluate(RUN_TO_THE_END, [str(workflow.pk), SECOND])

    page.goto(f"{server}/dashboard/runs/{second_run}/")
    page.locator("#step-write a.diff-link").wait_for(state="attached", timeout=15000)
    page.locator('#step-write [data-panel="document"] summary').click()
    page.get_by_role("link", name="Compare with an earlier version").click()
    page.wait_for_url(re.compile(r"/dashboard/documents/[0-9a-f-]{36}/diff/$"))
    page.wait_for_function(LOADED)

    assert page.locator("#load-error").is_hidden()
    assert page.locator("#old-title").inner_text().startswith("Version 1 · run ")
    assert page.locator("#new-title").inner_text().startswith("Version 2 · run ")
    assert page.locator("#diff-old del").all_inner_texts() == ["Ada"]
    assert page.locator("#diff-old ins").count() == 0
    assert page.locator("#diff-new ins").all_inner_texts() == ["Grace", "\nPS: more soon."]
    assert page.locator("#diff-new del").count() == 0
    assert page.locator("#diff-old").inner_text() == FIRST
    assert page.locator("#diff-new").inner_text() == SECOND
    assert page.locator("#diff-stats").inner_text() == (
        "From version 1 to 2: 6 words inserted, 1 word deleted, 15 unchanged."
    )
    # Highlighted as well as marked up: a background colour and a line through or under the text.
    deleted = page.locator("#diff-old del").first
    assert deleted.evaluate("(node) => getComputedStyle(node).textDecorationLine") == "line-through"
    assert deleted.evaluate("(node) => getComputedStyle(node).backgroundColor") != "rgba(0, 0, 0, 0)"
    inserted = page.locator("#diff-new ins").first
    assert inserted.evaluate("(node) => getComputedStyle(node).textDecorationLine") == "underline"
    old_box, new_box = page.locator("#diff-old").bounding_box(), page.locator("#diff-new").bounding_box()
    assert new_box["x"] > old_box["x"] + old_box["width"] - 1  # side by side
    chosen = page.get_by_label("Compare with").locator("option:checked")
    assert chosen.inner_text().startswith("Version 1 (run ")
    page.screenshot(path=tmp_path / "document-diff-1366.png", full_page=True)

    diff_url = page.url
    phone = context.new_page()
    watch_for_script_errors(phone, script_errors)
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(diff_url)
    phone.wait_for_function(LOADED)
    assert phone.locator("#diff-new ins").all_inner_texts() == ["Grace", "\nPS: more soon."]
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390
    old_box, new_box = phone.locator("#diff-old").bounding_box(), phone.locator("#diff-new").bounding_box()
    assert new_box["y"] > old_box["y"] + old_box["height"] - 1  # stacked
    phone.screenshot(path=tmp_path / "document-diff-390.png", full_page=True)

    context.close()
    assert (tmp_path / "document-diff-1366.png").stat().st_size > 0
    assert (tmp_path / "document-diff-390.png").stat().st_size > 0
    assert script_errors == []
