import pytest

from accounts.models import Membership
from notifications.models import Channel
from tests.factories import UserFactory, WorkspaceFactory


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    """Local servers stand in for Slack, Teams, Discord and webhook receivers: loopback is opened for
    them, as operators open private addresses (DWC_OUTBOUND_ALLOWLIST). The SSRF test closes it again."""
    settings.DWC_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    settings.DWC_NOTIFICATIONS_BACKOFF_SECONDS = 1
    settings.DWC_NOTIFICATIONS_MAX_ATTEMPTS = 4


@pytest.fixture
def team(db):
    """A workspace with an admin, an editor and a viewer; and a stranger from elsewhere."""
    workspace = WorkspaceFactory()
    people = {}
    for role in ("admin", "editor", "viewer"):
        user = UserFactory()
        Membership.objects.create(workspace=workspace, user=user, role=role)
        people[role] = user
    return {"workspace": workspace, **people, "stranger": UserFactory()}


def channel_of(workspace, kind: str, config: dict | None = None, credential: str = "", name: str = "") -> Channel:
    return Channel.objects.create(
        workspace=workspace, name=name or kind, kind=kind, config=config or {}, credential=credential
    )
