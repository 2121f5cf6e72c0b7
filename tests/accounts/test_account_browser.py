"""The dashboard's Account page in a real browser (Debian's Chromium, Playwright), against the product as
`manage.py serve` runs it: turning MFA on and logging in with it, and ending the sessions of other
devices, whose open pages hear it on their websocket."""

import re

import pytest

from accounts.models import User
from tests.accounts.mfa_helpers import code_from_secret, time_step
from tests.factories import PASSWORD, UserFactory
from tests.workflows.dashboard.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    browser,
    needs_chromium,
    server,
    watch_for_script_errors,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]

# Three "devices", told apart in the sessions list by their user agents.
FIREFOX_ON_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
SESSION_ENDED = "Your session was ended — log in again"


@pytest.fixture
def person(transactional_db) -> User:
    """Made before the browser starts: Django refuses ORM calls while Playwright's event loop runs."""
    return UserFactory(email="account-browser@example.com")


def log_in(page, base: str, email: str, path: str = "/dashboard/account/") -> None:
    page.goto(f"{base}{path}")
    assert "/accounts/login/" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}{path}")


def test_turning_mfa_on_shows_the_recovery_codes_and_the_next_login_asks_for_a_code(server, person, browser):  # noqa: F811
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    script_errors = []
    watch_for_script_errors(page, script_errors)
    log_in(page, server, person.email, path="/dashboard/")
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Account").click()
    page.wait_for_url(f"{server}/dashboard/account/")
    state = page.locator("#mfa-state")
    assert state.inner_text() == "Off Logins need only the password."
    assert page.locator("#mfa-disable").is_hidden()

    page.get_by_role("button", name="Turn on multi-factor authentication").click()
    page.locator("#mfa-enrol").wait_for()
    secret = page.locator("#mfa-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{1,4})+", secret), secret
    assert page.locator("#mfa-uri").text_content().startswith("otpauth://totp/")  # in a closed <details>
    assert page.locator("#mfa-qr svg path").count() >= 1
    assert page.locator("#mfa-qr svg").bounding_box()["width"] > 100

    # A wrong code is refused next to the code field, and MFA stays off.
    page.get_by_label("Enter the code the app shows").fill("12345x")
    page.get_by_role("button", name="Confirm and turn on").click()
    code_errors = page.locator("#mfa-confirm-code-errors")
    code_errors.wait_for()
    assert "not correct" in code_errors.inner_text()
    assert page.get_by_label("Enter the code the app shows").get_attribute("aria-invalid") == "true"
    page.screenshot(path=SCREENSHOTS / "account-mfa-enrol.png", full_page=True)

    step = time_step()
    page.get_by_label("Enter the code the app shows").fill(code_from_secret(secret, step))
    page.get_by_role("button", name="Confirm and turn on").click()
    codes = page.locator("#mfa-code-list li")
    codes.first.wait_for()
    recovery_codes = codes.all_inner_texts()
    assert len(recovery_codes) == 10 and len(set(recovery_codes)) == 10
    assert all(re.fullmatch(r"[0-9a-f]{5}-[0-9a-f]{5}", code) for code in recovery_codes), recovery_codes
    assert state.inner_text() == "On 10 recovery codes left."
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert all(code in download.value.path().read_text() for code in recovery_codes)
    page.screenshot(path=SCREENSHOTS / "account-mfa-recovery-codes.png", full_page=True)

    page.get_by_role("button", name="I have saved them").click()
    assert page.locator("#mfa-code-list li").count() == 0  # shown once
    assert page.locator("#mfa-disable").is_visible()
    page.reload()
    assert page.locator("#mfa-state").inner_text() == "On 10 recovery codes left."

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{server}/accounts/login/")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/accounts/login/code/"))
    # The code of the step after the one used to confirm: a code works once, and the device accepts
    # the next step's (one step of tolerance) as well as the current one's.
    page.get_by_label("Code").fill(code_from_secret(secret, step + 1))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")
    assert page.locator(".who").inner_text() == person.email

    # Turning it off: each wrong answer is shown next to its field; a recovery code serves as the code.
    page.get_by_role("link", name="Account").click()
    page.wait_for_url(f"{server}/dashboard/account/")
    disable = page.locator("#mfa-disable")
    disable.get_by_label("Password").fill("not the password")
    disable.get_by_label("Code").fill(recovery_codes[0])
    page.get_by_role("button", name="Turn off multi-factor authentication").click()
    page.locator("#mfa-disable-password-errors").wait_for()
    assert page.locator("#mfa-disable-password-errors").inner_text() == "The password is not correct."
    assert page.locator("#mfa-disable-code-errors").is_hidden()
    disable.get_by_label("Password").fill(PASSWORD)
    disable.get_by_label("Code").fill("00000-00000")
    page.get_by_role("button", name="Turn off multi-factor authentication").click()
    page.locator("#mfa-disable-code-errors").wait_for()
    assert "not correct" in page.locator("#mfa-disable-code-errors").inner_text()
    assert page.locator("#mfa-disable-password-errors").is_hidden()
    disable.get_by_label("Code").fill(recovery_codes[0])
    page.get_by_role("button", name="Turn off multi-factor authentication").click()
    page.get_by_role("button", name="Turn on multi-factor authentication").wait_for()
    assert state.inner_text() == "Off Logins need only the password."
    assert disable.is_hidden()
    page.reload()
    assert page.locator("#mfa-state").inner_text() == "Off Logins need only the password."
    assert script_errors == []


def test_ending_another_devices_session_logs_it_out_and_tells_its_open_page(server, person, browser):  # noqa: F811
    here = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    there = browser.new_context(user_agent=FIREFOX_ON_WINDOWS).new_page()
    script_errors = []
    for page in (here, there):
        watch_for_script_errors(page, script_errors)
    log_in(there, server, person.email, path="/dashboard/")
    there.wait_for_function("() => document.getElementById('live-status').dataset.state === 'live'")
    there.evaluate("window.dwcMarker = 'the same page'")
    log_in(here, server, person.email)

    rows = here.locator("#sessions tbody tr")
    rows.nth(1).wait_for()
    assert rows.count() == 2
    mine = here.locator("#sessions tr[data-current]")
    assert "This browser" in mine.inner_text()
    assert mine.get_by_role("button").count() == 0
    other = rows.filter(has_text="Firefox 125 on Windows")
    assert other.locator("td").first.inner_text() == "Browser"
    assert other.locator("td[data-label=Device]").get_attribute("title") == FIREFOX_ON_WINDOWS
    assert other.locator("td[data-label=Address]").inner_text() == "127.0.0.1"
    here.screenshot(path=SCREENSHOTS / "account-sessions.png", full_page=True)

    other.get_by_role("button", name="End").click()
    here.wait_for_function("() => document.querySelectorAll('#sessions tbody tr').length === 1")
    assert here.locator("#sessions-status").inner_text() == "Ended the session of Firefox 125 on Windows."
    assert here.get_by_role("button", name="End all other sessions").is_hidden()

    # The other device's open page hears it on its websocket, without reloading.
    status = there.locator("#live-status")
    there.wait_for_function("() => document.getElementById('live-status').dataset.state === 'signed-out'")
    assert status.inner_text() == SESSION_ENDED
    login_link = status.get_by_role("link", name="log in again")
    assert login_link.get_attribute("href") == "/accounts/login/?next=%2Fdashboard%2F"
    assert there.evaluate("window.dwcMarker") == "the same page"
    there.screenshot(path=SCREENSHOTS / "account-session-ended.png", full_page=True)
    # Its next navigation is logged out.
    there.goto(f"{server}/dashboard/runs/")
    assert there.url == f"{server}/accounts/login/?next=/dashboard/runs/"

    # Ending all the others: a third device, then only this browser is left.
    third = browser.new_context(user_agent=SAFARI_ON_IPHONE).new_page()
    watch_for_script_errors(third, script_errors)
    log_in(third, server, person.email)
    here.reload()
    here.locator("#sessions tbody tr").nth(1).wait_for()
    assert "Safari 17 on iOS" in here.locator("#sessions tbody").inner_text()
    here.get_by_role("button", name="End all other sessions").click()
    here.wait_for_function("() => document.querySelectorAll('#sessions tbody tr').length === 1")
    assert here.locator("#sessions-status").inner_text() == "Ended 1 other session."
    third.reload()
    assert "/accounts/login/" in third.url
    here.reload()
    assert here.url == f"{server}/dashboard/account/"  # this browser is still in
    assert script_errors == []
