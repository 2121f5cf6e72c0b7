"""The notification pages in a real browser (Debian's Chromium, Playwright) against the product as
`make run` serves it (embedded mode: the in-memory channel layer, the in-process worker): the bell
counts live, the inbox lists and marks read, the preferences page saves."""

import pytest

from accounts.access import personal_workspace
from notifications.channels.in_app import inboxes_add
from notifications.models import Channel
from notifications.services.deliveries import TEST_SUBJECT
from tests.factories import PASSWORD, UserFactory
from tests.workflows.dashboard import test_browser as dashboard_browser
from workflows.services.workflows import workflow_create

SCREENSHOTS = dashboard_browser.SCREENSHOTS
watch_for_script_errors = dashboard_browser.watch_for_script_errors
# The dashboard's browser tests' fixtures: the served product and the browser.
server = dashboard_browser.server
browser = dashboard_browser.browser

pytestmark = [pytest.mark.django_db(transaction=True), dashboard_browser.needs_chromium]

# A test message through the in-app channel, sent by the server itself (so that its channel layer,
# in memory, carries the push): what an admin's "test" button does.
SEND_TEST = """async (channel) => {
    const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
    const answer = await fetch(`/api/v3/notifications/channels/${channel}/test`, {
        method: "POST", headers: {"X-CSRFToken": token}, credentials: "same-origin"});
    return answer.status;
}"""
API_GET = """async (path) => (await fetch(`/api/v3/${path}`, {credentials: "same-origin"})).json()"""


@pytest.fixture
def person(transactional_db):
    """Made before the browser starts (Django refuses ORM calls while Playwright's loop runs)."""
    user = UserFactory(email="bell@example.com")
    workspace = personal_workspace(user)
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Noticed", "nodes": []})
    channel = Channel.objects.create(workspace=workspace, name="Inbox", kind="in_app")
    for title, link in (("Older, read", ""), ("Run failed", f"/dashboard/workflows/{workflow.pk}/")):
        inboxes_add(
            workspace_id=workspace.pk,
            user_ids=[user.pk],
            delivery_id=None,
            title=title,
            body="Step x failed." if link else "",
            link=link,
            level="error" if link else "info",
        )
    user.notifications.filter(title="Older, read").update(read_at=user.date_joined)
    return {"user": user, "channel": channel, "workflow": workflow}


def log_in(page, server, user) -> None:
    page.goto(f"{server}/dashboard/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")


def bell_shows(page, count: int) -> None:
    if count:
        page.wait_for_function(f"() => document.getElementById('bell-count').textContent === '{count}'")
        assert page.locator("#bell-count").is_visible()
        assert page.locator("#bell").get_attribute("aria-label") == f"Notifications, {count} unread"
    else:
        page.wait_for_function("() => document.getElementById('bell-count').hidden")


def test_the_bell_counts_live_and_the_inbox_lists_and_marks_read(server, person, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    watch_for_script_errors(page, errors)
    log_in(page, server, person["user"])
    bell_shows(page, 1)

    # Created by the server while the page is open: the count changes without a reload.
    page.evaluate("window.dwcMarker = 'the same page'")
    page.wait_for_function("() => document.getElementById('live-status').dataset.state === 'live'")
    page.wait_for_timeout(300)  # the bell's own socket subscribes beside the page's
    assert page.evaluate(SEND_TEST, str(person["channel"].pk)) == 200
    bell_shows(page, 2)
    assert page.evaluate("window.dwcMarker") == "the same page"

    page.locator("#bell").click()
    page.wait_for_url(f"{server}/dashboard/notifications/")
    items = page.locator(".inbox-item")
    page.wait_for_function("() => document.querySelectorAll('.inbox-item').length === 3")
    assert [title.inner_text() for title in page.locator(".inbox-title").all()] == [
        TEST_SUBJECT,
        "Run failed",
        "Older, read",
    ]
    assert page.locator(".inbox-item.unread").count() == 2
    assert items.nth(2).get_attribute("data-unread") == "false"
    page.screenshot(path=SCREENSHOTS / "notifications-inbox.png", full_page=True)

    # Another tab marks everything read: this one hears of it.
    other = context.new_page()
    watch_for_script_errors(other, errors)
    other.goto(f"{server}/dashboard/notifications/")
    other.wait_for_function("() => document.querySelectorAll('.inbox-item.unread').length === 2")

    # Opening the failed run's notification marks it read and follows its link.
    page.get_by_role("link", name="Run failed").click()
    page.wait_for_url(f"{server}/dashboard/workflows/{person['workflow'].pk}/")
    bell_shows(page, 1)
    other.wait_for_function("() => document.querySelectorAll('.inbox-item.unread').length === 1")
    bell_shows(other, 1)

    other.get_by_role("button", name="Mark all read").click()
    other.wait_for_function("() => document.querySelectorAll('.inbox-item.unread').length === 0")
    bell_shows(other, 0)
    bell_shows(page, 0)
    assert page.evaluate(API_GET, "notifications/unread-count") == {"count": 0}
    context.close()
    assert errors == []


def test_the_preferences_page_saves_and_names_a_bad_field(server, person, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    watch_for_script_errors(page, errors)
    log_in(page, server, person["user"])
    page.get_by_role("link", name="Preferences").click()
    page.wait_for_url(f"{server}/dashboard/notifications/preferences/")

    page.get_by_label("A run succeeded").check()
    page.get_by_label("Email", exact=False).check()
    page.get_by_label("Hold messages during quiet hours").check()
    page.get_by_label("From").fill("22:00")
    page.get_by_label("Until").fill("22:00")
    page.get_by_label("Time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Save preferences").click()
    problem = page.locator('[data-errors-for="quiet_hours"]')
    problem.wait_for(state="visible")
    assert "different times" in problem.inner_text()

    page.get_by_label("Until").fill("07:30")
    page.get_by_role("button", name="Save preferences").click()
    page.wait_for_function("() => document.getElementById('saved').textContent === 'Saved.'")
    assert problem.is_hidden()
    saved = page.evaluate(API_GET, "notifications/preferences")
    assert {name: saved[name] for name in ("muted_events", "muted_kinds", "quiet_hours", "timezone")} == {
        "muted_events": ["run.succeeded"],
        "muted_kinds": ["email"],
        "quiet_hours": {"start": "22:00", "end": "07:30"},
        "timezone": "Europe/Berlin",
    }

    # What was saved is what the page shows after a reload.
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('[data-choices] input').length > 0")
    assert page.get_by_label("A run succeeded").is_checked()
    assert not page.get_by_label("A run failed").is_checked()
    assert page.get_by_label("Time zone").input_value() == "Europe/Berlin"
    assert page.get_by_label("Until").input_value() == "07:30"
    # Without push.js (or without support) the toggle stays off and says why; the page still works.
    page.wait_for_function("() => !document.getElementById('push-state').textContent.startsWith('Checking')")
    page.screenshot(path=SCREENSHOTS / "notifications-preferences.png", full_page=True)

    # Both pages fit a phone.
    phone = context.new_page()
    watch_for_script_errors(phone, errors)
    phone.set_viewport_size({"width": 390, "height": 844})
    for path, ready in (("preferences/", "[data-choices] input"), ("", ".inbox-item")):
        phone.goto(f"{server}/dashboard/notifications/{path}")
        phone.wait_for_selector(ready)
        assert phone.evaluate("document.scrollingElement.scrollWidth") <= 390, path
    phone.screenshot(path=SCREENSHOTS / "notifications-390.png", full_page=True)
    context.close()
    assert errors == []
