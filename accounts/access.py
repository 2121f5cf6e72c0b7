"""Who may do what in a workspace. Every app asks here; nothing else reads roles."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import ROLE_RANK, Membership, User, Workspace

Role = Membership.Role

NOT_A_MEMBER = "No such workspace."
ROLE_TOO_LOW = "This needs the {role} role or higher in the workspace."


def workspaces_for_user(user: User) -> QuerySet[Workspace]:
    # A subquery, not a join, so that callers can still aggregate over all memberships.
    return Workspace.objects.filter(pk__in=Membership.objects.filter(user=user).values("workspace_id"))


def role_of(user: User, workspace: Workspace) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(workspace=workspace, user=user).values_list("role", flat=True).first()


def ensure_role(user: User, workspace: Workspace, minimum: str) -> str:
    """Return the user's role, or raise: Http404 for non-members (no existence leak), else 403.

    Superusers act as owners everywhere: they operate the installation through the admin.
    """
    if user.is_authenticated and user.is_superuser:
        return Role.OWNER
    role = role_of(user, workspace)
    if role is None:
        raise Http404(NOT_A_MEMBER)
    if ROLE_RANK[role] < ROLE_RANK[minimum]:
        raise PermissionDenied(ROLE_TOO_LOW.format(role=minimum))
    return role


def personal_workspace(user: User) -> Workspace | None:
    return Workspace.objects.filter(is_personal=True, memberships__user=user, memberships__role=Role.OWNER).first()


def workspace_for_member(user: User, workspace_id) -> Workspace | None:
    """The workspace if `user` belongs to it; None for unknown ids and strangers alike."""
    try:
        return workspaces_for_user(user).get(pk=workspace_id)
    except (Workspace.DoesNotExist, ValueError, ValidationError):
        return None


def workspace_first_owner(workspace: Workspace) -> User | None:
    """The owner who joined first: who a command acts as when nobody is named."""
    owner = (
        Membership.objects.filter(workspace=workspace, role=Role.OWNER)
        .select_related("user")
        .order_by("created_at")
        .first()
    )
    return owner.user if owner else None
