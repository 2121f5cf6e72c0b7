import json

import pytest

from accounts.models import Membership
from audit.models import AuditEvent
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

# Secrets that pass through the audited services in these tests. None may reach an audit row.
CANARIES = ("canary-SECRET-5b1f0e", "canary-PASSWORD-Zq8!x2", "canary-HOOK-9d7c")
CREDENTIAL_SECRET, PASSWORD, HOOK_SECRET = CANARIES
Role = Membership.Role


def audit_rows_text() -> str:
    """Every audit row, every column, as one string: what a canary must never be found in."""
    return json.dumps(list(AuditEvent.objects.order_by("id").values()), default=str)


def assert_no_secret_recorded(*secrets: str) -> None:
    text = audit_rows_text()
    assert AuditEvent.objects.exists()
    assert [secret for secret in (*CANARIES, *secrets) if secret in text] == []


@pytest.fixture
def team(db):
    return WorkspaceFactory(name="Team")


def member(workspace, role: str):
    return MembershipFactory(workspace=workspace, role=role).user


@pytest.fixture
def owner(team):
    return member(team, Role.OWNER)


@pytest.fixture
def admin_user(team):
    return member(team, Role.ADMIN)


@pytest.fixture
def editor(team):
    return member(team, Role.EDITOR)


@pytest.fixture
def viewer(team):
    return member(team, Role.VIEWER)


@pytest.fixture
def stranger(db):
    return UserFactory()


@pytest.fixture
def owner_api(owner):
    return client_for(owner)


def events(**filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def last_event(action: str) -> AuditEvent:
    event = AuditEvent.objects.filter(action=action).order_by("-id").first()
    assert event is not None, f"no {action} event"
    return event
