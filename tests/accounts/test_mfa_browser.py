"""The dashboard's login with MFA in a real browser (Debian's Chromium, Playwright), against the product
as `manage.py serve` runs it: the password, then the code, then the dashboard."""

from dataclasses import dataclass

import pytest

from accounts.models import User
from tests.accounts.mfa_helpers import enrol, next_code
from tests.factories import PASSWORD, UserFactory
from tests.workflows.dashboard.test_browser import SCREENSHOTS, browser, needs_chromium, server  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_chromium,
]


@dataclass
class EnrolledUser:
    user: User
    code: str  # computed before the browser starts: Django refuses ORM calls inside Playwright's event loop


@pytest.fixture
def enrolled(transactional_db) -> EnrolledUser:
    user = UserFactory(email="mfa-browser@example.com")
    enrol(user)
    return EnrolledUser(user=user, code=next_code(user))


def test_the_dashboard_login_asks_for_the_code(server, enrolled, browser):  # noqa: F811 - fixtures
    page = browser.new_context().new_page()
    page.goto(f"{server}/dashboard/")
    page.get_by_label("Email").fill(enrolled.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/accounts/login/code/?next=%2Fdashboard%2F")

    page.get_by_label("Code").fill("000000" if enrolled.code != "000000" else "111111")
    page.get_by_role("button", name="Log in").click()
    assert "not correct" in page.get_by_role("alert").inner_text()
    page.get_by_label("Code").fill(enrolled.code)
    page.get_by_role("button", name="Log in").click()
    # django-otp makes a device wait a second after a wrong code (doubling with each one), from anywhere.
    assert "wait 1 second" in page.get_by_role("alert").inner_text()
    page.wait_for_timeout(1100)

    page.get_by_label("Code").fill(enrolled.code)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/dashboard/")
    page.screenshot(path=SCREENSHOTS / "login-mfa-done.png", full_page=True)
