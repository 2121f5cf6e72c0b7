"""The login forms (admin, dashboard, browsable API) ask users with MFA for their code after the password."""

import itertools

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import login
from accounts.models import User
from audit.models import AuditEvent
from tests.accounts.mfa_helpers import enrol, next_code
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

_addresses = (f"203.0.113.{n}" for n in itertools.count(1))


@pytest.fixture(autouse=True)
def no_device_wait(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.DWC_LOGIN_MAX_FAILURES = 3


@pytest.fixture
def browser() -> Client:
    return Client(REMOTE_ADDR=next(_addresses))


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_superuser(email="root@example.com", password=PASSWORD)
    user.recovery_codes_shown = enrol(user)
    return user


def logged_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).email if user_id else None


def test_the_admin_asks_an_operator_with_mfa_for_the_code(browser, operator):
    password = browser.post("/admin/login/?next=/admin/", {"username": operator.email, "password": PASSWORD})
    assert password.status_code == 302
    assert password["Location"] == "/admin/login/code/?next=%2Fadmin%2F"
    assert logged_in_as(browser) is None
    assert browser.get("/admin/").status_code == 302  # still the login page

    page = browser.get(password["Location"])
    assert page.status_code == 200
    assert b'name="code"' in page.content and b'name="password"' not in page.content

    wrong = browser.post(password["Location"], {"code": "000000", "next": "/admin/"})
    assert wrong.status_code == 200
    assert "not correct" in wrong.content.decode()
    assert logged_in_as(browser) is None

    right = browser.post(password["Location"], {"code": next_code(operator), "next": "/admin/"})
    assert right.status_code == 302 and right["Location"] == "/admin/"
    assert logged_in_as(browser) == operator.email
    assert browser.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(action="mfa.failed", target_id=str(operator.pk)).count() == 1


def test_the_admin_takes_a_recovery_code_once(browser, operator):
    browser.post("/admin/login/", {"username": operator.email, "password": PASSWORD})
    answer = browser.post("/admin/login/code/", {"code": operator.recovery_codes_shown[0], "next": "/admin/"})
    assert answer.status_code == 302
    assert AuditEvent.objects.filter(action="mfa.recovery_code_used", target_id=str(operator.pk)).exists()


def test_the_admin_logs_an_operator_without_mfa_in_with_the_password(browser):
    operator = User.objects.create_superuser(email="plain@example.com", password=PASSWORD)
    answer = browser.post("/admin/login/?next=/admin/", {"username": operator.email, "password": PASSWORD})
    assert answer.status_code == 302 and answer["Location"] == "/admin/"
    assert logged_in_as(browser) == operator.email


def test_the_admin_still_refuses_a_wrong_password_and_non_staff(browser):
    user = UserFactory()
    assert browser.post("/admin/login/", {"username": user.email, "password": PASSWORD}).status_code == 200
    assert logged_in_as(browser) is None


def test_the_code_step_without_a_password_step_goes_back_to_the_password(browser, operator):
    assert browser.get("/accounts/login/code/")["Location"] == "/accounts/login/"
    expired = browser.post("/accounts/login/code/", {"code": next_code(operator)})
    assert expired.status_code == 200
    assert login.PENDING_EXPIRED in expired.content.decode()
    assert logged_in_as(browser) is None


def test_the_dashboard_asks_for_the_code(browser):
    user = UserFactory()
    enrol(user)
    password = browser.post("/accounts/login/?next=/dashboard/", {"username": user.email, "password": PASSWORD})
    assert password.status_code == 302
    assert password["Location"] == "/accounts/login/code/?next=%2Fdashboard%2F"
    assert logged_in_as(browser) is None
    page = browser.get(password["Location"])
    assert b'autocomplete="one-time-code"' in page.content

    answer = browser.post("/accounts/login/code/", {"code": next_code(user), "next": "/dashboard/"})

    assert answer.status_code == 302 and answer["Location"] == "/dashboard/"
    assert logged_in_as(browser) == user.email
    assert browser.get("/dashboard/").status_code == 200


def test_wrong_codes_in_the_form_lock_the_login_out(browser):
    user = UserFactory()
    enrol(user)
    browser.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    for _ in range(3):
        browser.post("/accounts/login/code/", {"code": "000000"})
    locked = browser.post("/accounts/login/code/", {"code": next_code(user)})
    assert "Too many failed logins" in locked.content.decode()
    assert logged_in_as(browser) is None


def test_the_browsable_api_login_asks_for_the_code_too(browser):
    user = UserFactory()
    enrol(user)
    answer = browser.post("/api-auth/login/", {"username": user.email, "password": PASSWORD})
    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/code/")
    assert logged_in_as(browser) is None


def test_an_operator_turns_off_the_mfa_of_a_user_who_lost_their_device(operator):
    user = UserFactory()
    enrol(user)
    admin_client = Client()
    admin_client.force_login(operator)
    answer = admin_client.post(
        "/admin/accounts/user/", {"action": "reset_mfa", "_selected_action": [str(user.pk)]}, follow=True
    )
    assert "Turned off MFA of 1 user(s)." in answer.content.decode()
    assert not TOTPDevice.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(action="mfa.disabled", target_id=str(user.pk))
    assert event.actor_id == operator.pk
