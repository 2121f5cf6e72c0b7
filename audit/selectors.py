from django.db.models import QuerySet

from accounts.access import Role, acting_api_key, ensure_role, workspaces_with_role
from accounts.models import User, Workspace
from audit.models import AuditEvent


def audit_events_for_user(user: User, *, workspace: Workspace | None = None) -> QuerySet[AuditEvent]:
    """Events a user may read: those of workspaces they administer or own, newest first.

    Naming a workspace raises like ensure_role (404 for strangers, 403 below admin). Superusers (not
    acting through an API key) also see events without a workspace: logins, deleted workspaces.
    """
    events = AuditEvent.objects.order_by("-id")
    if workspace is not None:
        ensure_role(user, workspace, Role.ADMIN)
        return events.filter(workspace=workspace)
    if user.is_superuser and acting_api_key(user) is None:
        return events
    return events.filter(workspace__in=workspaces_with_role(user, Role.ADMIN))
