"""Analytics listen to the accounts app: a login and an API key's use (once a minute per key) are
counted for each workspace the person is a member of (or the one the key is confined to)."""

from datetime import datetime

from django.utils import timezone

from accounts.models import Membership, User
from analytics.services.recording import events_record_after_commit


def _workspaces(user: User) -> list:
    return list(Membership.objects.filter(user=user).values_list("workspace_id", flat=True))


def login_counted(sender, request, user: User, **kwargs) -> None:
    """user_logged_in's receiver: a form login (browser), or getting a token from the API (api)."""
    now = timezone.now()
    method = "api" if request is not None and request.path.startswith("/api/") else "browser"
    events_record_after_commit(
        [
            {
                "type": "login",
                "subject": f"{user.pk}:{now.isoformat()}:{workspace}",
                "workspace": workspace,
                "workflow": None,
                "ts": now,
                "data": {"method": method, "user": str(user.pk)},
            }
            for workspace in _workspaces(user)
        ]
    )


def api_key_counted(sender, key, at: datetime, **kwargs) -> None:
    """accounts.signals.api_key_used's receiver."""
    workspaces = [key.workspace_id] if key.workspace_id else _workspaces(key.user)
    minute = at.replace(second=0, microsecond=0).isoformat()
    events_record_after_commit(
        [
            {
                "type": "api_key.used",
                "subject": f"{key.pk}:{minute}:{workspace}",
                "workspace": workspace,
                "workflow": None,
                "ts": at,
                "data": {"user": str(key.user_id), "key": key.prefix},
            }
            for workspace in workspaces
        ]
    )
