"""Failed logins lock one account out from one address for a while; a success or an admin unlocks."""

import itertools
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts import lockout, tasks
from accounts.models import LoginLockout
from audit.models import AuditEvent
from tests.accounts.conftest import other_features_write_keys
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
LOCKED_MESSAGE = lockout.LOCKED_OUT.format(minutes=15)
_addresses = (f"192.0.2.{n}" for n in itertools.count(1))


@pytest.fixture(autouse=True)
def three_failures_lock(settings):
    settings.DWC_LOGIN_MAX_FAILURES = 3
    settings.DWC_LOGIN_LOCKOUT_MINUTES = 15


@pytest.fixture
def address() -> str:
    return next(_addresses)


def login(api, email: str, password: str, address: str):
    return api.post("/api/v3/auth/token", {"email": email, "password": password}, format="json", REMOTE_ADDR=address)


def fail(api, email: str, address: str, times: int) -> None:
    for _ in range(times):
        assert login(api, email, "wrong", address).status_code == 401


def test_failed_logins_lock_the_account_from_that_address_only(api, user, address):
    fail(api, user.email, address, 3)
    locked = login(api, user.email, PASSWORD, address)
    assert locked.status_code == 429
    assert locked["Content-Type"] == PROBLEM
    assert locked.json()["type"] == "/problems/locked-out"
    assert locked.json()["detail"] == LOCKED_MESSAGE
    assert 890 <= int(locked["Retry-After"]) <= 900

    assert login(api, user.email, PASSWORD, next(_addresses)).status_code == 200
    other = UserFactory()
    assert login(api, other.email, PASSWORD, address).status_code == 200


def test_the_lock_is_audited_once(api, user, address):
    fail(api, user.email, address, 3)
    for _ in range(2):
        assert login(api, user.email, "wrong", address).status_code == 429
    events = AuditEvent.objects.filter(action="auth.locked_out", target_id=str(user.pk))
    assert events.count() == 1
    assert events.get().actor_label == user.email
    assert events.get().ip == address
    assert events.get().changes["failures"] == [None, 3]


def test_an_unknown_email_is_locked_out_all_the_same(api, address):
    fail(api, "nobody@example.com", address, 3)
    assert login(api, "nobody@example.com", "anything", address).status_code == 429
    assert AuditEvent.objects.filter(action="auth.locked_out", actor_label="nobody@example.com").count() == 1


def test_a_successful_login_starts_the_count_again(api, user, address):
    fail(api, user.email, address, 2)
    assert login(api, user.email, PASSWORD, address).status_code == 200
    fail(api, user.email, address, 2)
    assert login(api, user.email, PASSWORD, address).status_code == 200


def test_the_lock_ends_when_its_window_passes(api, user, address, monkeypatch):
    # Long enough for three failed logins (a password hash each) on a loaded 2-core machine to fall
    # inside one window: with 1 s they sometimes did not, and no lock formed.
    monkeypatch.setattr(lockout, "_window_seconds", lambda: 4)
    fail(api, user.email, address, 3)
    assert login(api, user.email, PASSWORD, address).status_code == 429
    time.sleep(4.2)
    assert login(api, user.email, PASSWORD, address).status_code == 200


def test_a_lock_holds_whatever_else_the_embedded_mode_keeps_in_memory(api, user, address, embedded_caches):
    # Once 350 webhook deliveries of another user pushed a lock out of a 300-entry memory cache.
    fail(api, user.email, address, 3)
    other_features_write_keys(10_000)
    locked = login(api, user.email, PASSWORD, address)
    assert locked.status_code == 429
    assert locked.json()["type"] == "/problems/locked-out"


def test_failures_and_locks_are_pruned_once_they_no_longer_count(api, user, address, monkeypatch):
    fail(api, user.email, address, 3)  # locked
    fail(api, "someone@example.com", address, 1)  # counting
    tasks.lockouts_prune()
    assert LoginLockout.objects.count() == 2
    later = timezone.now() + timedelta(minutes=15, seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    tasks.lockouts_prune()
    assert LoginLockout.objects.count() == 0


def test_unlock_account_lifts_the_lock(api, user, address, capsys):
    fail(api, user.email, address, 3)
    call_command("unlock_account", user.email, "--ip", next(_addresses))
    assert "is not locked out from" in capsys.readouterr().out
    assert login(api, user.email, PASSWORD, address).status_code == 429

    call_command("unlock_account", user.email)
    assert f"Lifted 1 lock(s) of {user.email}." in capsys.readouterr().out
    assert login(api, user.email, PASSWORD, address).status_code == 200


def test_unlock_account_for_one_address(api, user, address):
    fail(api, user.email, address, 3)
    call_command("unlock_account", user.email, "--ip", address)
    assert login(api, user.email, PASSWORD, address).status_code == 200


def test_the_admin_action_lifts_lockouts(api, user, address):
    fail(api, user.email, address, 3)
    admin = Client()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    answer = admin.post(
        "/admin/accounts/user/", {"action": "lift_login_lockouts", "_selected_action": [str(user.pk)]}, follow=True
    )
    assert "Lifted 1 login lockout(s)." in answer.content.decode()
    assert login(api, user.email, PASSWORD, address).status_code == 200


def test_the_admin_login_form_says_the_account_is_locked(api, address):
    staff = UserFactory(is_staff=True)
    fail(api, staff.email, address, 3)
    browser = Client(REMOTE_ADDR=address)
    page = browser.post("/admin/login/", {"username": staff.email, "password": PASSWORD, "next": "/admin/"})
    assert page.status_code == 200
    assert LOCKED_MESSAGE in page.content.decode()
    assert "_auth_user_id" not in browser.session


def test_failed_form_logins_count_towards_the_lock(api, address):
    staff = UserFactory(is_staff=True)
    browser = Client(REMOTE_ADDR=address)
    for _ in range(3):
        page = browser.post("/admin/login/", {"username": staff.email, "password": "wrong", "next": "/admin/"})
        assert page.status_code == 200
    assert login(api, staff.email, PASSWORD, address).status_code == 429
    page = browser.post("/accounts/login/", {"username": staff.email, "password": PASSWORD})
    assert LOCKED_MESSAGE in page.content.decode()
