"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the real product
(`manage.py serve` in the embedded mode: daphne, the in-process worker, the in-memory channel layer)
on the test database. Screenshots go to var/screenshots/."""

import os
import re
from pathlib import Path

import pytest
from django.conf import settings

from accounts.access import personal_workspace
from tests.factories import PASSWORD, UserFactory
from tests.processes import PROJECT_DIR, clean_env, database_url_for_subprocesses, serving
from workflows.services.workflows import workflow_create

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_DIR / "var" / "screenshots"
DELAY_SECONDS = 2  # long enough to see the run page change under our eyes
WORKFLOW = {
    "name": "Browser chain",
    "status": "active",
    "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    "nodes": [
        {"key": "greet", "type": "transform", "config": {"values": {"greeting": "Hello {{ input.name }}"}}},
        {"key": "pause", "type": "delay", "config": {"seconds": DELAY_SECONDS}},
        {"key": "write", "type": "text", "title": "Letter", "content": "{{ nodes.greet.output.greeting }}"},
    ],
}
ALL_NODES_SUCCEEDED = """() => {
    const nodes = [...document.querySelectorAll("g.node")];
    return nodes.length === 3 && nodes.every((node) => node.dataset.status === "succeeded");
}"""

# For every browser test: a developer machine without chromium skips it; CI never does (.ci/run
# installs chromium, and with CI=true a missing browser fails the test instead).
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("CI") != "true",
    reason="needs Debian's chromium (apt-get install chromium)",
)

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]


@pytest.fixture
def server(transactional_db, tmp_path):
    """The product as `make run` starts it, but on the test database (no REDIS_URL: embedded mode)."""
    env = clean_env(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DATABASE_URL=database_url_for_subprocesses(),
        SECRET_KEY=settings.SECRET_KEY,
        CREDENTIALS_KEY=settings.CREDENTIALS_KEY,
        DWC_OUTBOUND_ALLOWLIST="127.0.0.1",
        DWC_VAR_DIR=str(tmp_path),
    )
    with serving("daphne", env) as (base, _):
        yield base


@pytest.fixture
def user(transactional_db):
    """Made before the browser starts: Django refuses ORM calls while Playwright's event loop runs."""
    user = UserFactory(email="browser@example.com")
    workflow_create(actor=user, workspace=personal_workspace(user), data=WORKFLOW)
    return user


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


def watch_for_script_errors(page, errors: list[str]) -> None:
    """Uncaught exceptions, and whatever the Content-Security-Policy refused, end up in `errors`."""
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))


def test_a_run_started_from_the_dashboard_turns_green_live_and_fits_a_phone(server, user, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    script_errors = []
    watch_for_script_errors(page, script_errors)

    page.goto(f"{server}/dashboard/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")

    page.get_by_role("button", name="Run Browser chain").click()
    input_box = page.get_by_label("Input (a JSON object)")
    input_box.fill('{"name": 42}')
    page.get_by_role("button", name="Start run").click()
    problem = page.get_by_role("alert").filter(has_text="input.name")
    assert problem.inner_text() == "input.name: 42 is not of type 'string'"
    input_box.fill('{"name": "Ada"}')
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r"/dashboard/runs/[0-9a-f-]{36}/$"))
    run_url = page.url

    # From here on the page must change by itself: a reload or a navigation would lose the marker.
    page.evaluate("window.dwcMarker = 'the same page'")
    navigations = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
    page.wait_for_function("() => document.querySelectorAll('g.node').length === 3")
    assert page.locator('g.node[data-key="write"]').get_attribute("data-status") != "succeeded"
    page.screenshot(path=SCREENSHOTS / "run-live-1280.png", full_page=True)

    page.wait_for_function(ALL_NODES_SUCCEEDED, timeout=DELAY_SECONDS * 1000 + 15000)
    assert page.evaluate("window.dwcMarker") == "the same page"
    assert navigations == []
    assert page.locator("#run-status").inner_text() == "succeeded"
    page.locator("#step-write").get_by_text("Output").click()
    assert '"content": "Hello Ada"' in page.locator('#step-write [data-panel="output"] pre').inner_text()
    assert page.locator("#live-status").inner_text() == "Live"
    page.screenshot(path=SCREENSHOTS / "run-done-1280.png", full_page=True)

    phone = context.new_page()
    watch_for_script_errors(phone, script_errors)
    phone.set_viewport_size({"width": 390, "height": 844})
    last_run_shown = "() => !!document.querySelector('a.last-run')"
    for url, ready in [(run_url, ALL_NODES_SUCCEEDED), (f"{server}/dashboard/", last_run_shown)]:
        phone.goto(url)
        phone.wait_for_function(ready)
        assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390, url
    phone.goto(run_url)
    phone.wait_for_function(ALL_NODES_SUCCEEDED)
    phone.screenshot(path=SCREENSHOTS / "run-390.png", full_page=True)

    context.close()
    assert script_errors == []
