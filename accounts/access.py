"""Who may do what in a workspace. Every app asks here; nothing else reads roles.

A request authenticated with an API key (accounts.api.authentication) carries the key on its user
object as `user.api_key`. Everything here honours it: a key limited to one workspace sees no other
(404, as for non-members), and what needs the admin role or higher needs the key's `admin` scope.
The user object lives for one request, so the limit cannot leak into another one.

A workspace's IP allow-list (accounts.ip_allow_lists) applies to every request into it, checked
against the client address of the request or websocket being handled: a member from elsewhere gets
its 403 (after a stranger's 404, before the MFA requirement's 403), and lists across workspaces leave
the workspace out. Outside a request (tasks, commands) and in the admin site it does not apply.
"""

import uuid
from collections.abc import Callable
from functools import cache

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.ip_allow_lists import WORKSPACE, admitted_here, ensure_allowed
from accounts.models import ROLE_RANK, ApiKey, Membership, User, Workspace
from accounts.selectors import mfa_enabled

Role = Membership.Role

NOT_A_MEMBER = "No such workspace."
ROLE_TOO_LOW = "This needs the {role} role or higher in the workspace."
KEY_NEEDS_ADMIN_SCOPE = "This API key lacks the admin scope, which this needs."
KEY_LIMITED_TO_WORKSPACE = "This API key is limited to one workspace; it cannot create others."
MFA_REQUIRED = (
    "This workspace requires multi-factor authentication: turn it on for your account (POST auth/mfa/totp) "
    "to use the workspace."
)


class MfaRequired(PermissionDenied):
    """403 `/problems/mfa-required`: the workspace requires MFA and the user has none."""

    code = "mfa_required"

    def __init__(self):
        super().__init__(MFA_REQUIRED)


def ensure_mfa_if_required(user: User, workspace: Workspace) -> None:
    """Refuse a user without MFA in a workspace that requires it. API keys are exempt: machine
    credentials cannot give a code. (A key limited to such a workspace can only be made by a member
    who passes this check: api_key_create asks workspace_for_member.)"""
    if workspace.mfa_required and acting_api_key(user) is None and not mfa_enabled(user):
        raise MfaRequired


def ensure_workspace_usable(user: User, workspace: Workspace) -> None:
    """What a member must pass to use a workspace: its IP allow-list (for the current client), then
    its MFA requirement. Callers have settled membership first: a stranger gets a 404, not these."""
    ensure_allowed(workspace.allowed_ips, rule=WORKSPACE, actor=user, workspace=workspace, target=workspace)
    ensure_mfa_if_required(user, workspace)


def acting_api_key(user: User) -> ApiKey | None:
    """The API key the request of this user object authenticated with, if any."""
    return getattr(user, "api_key", None)


def _key_workspace_id(user: User) -> uuid.UUID | None:
    """The one workspace the acting API key is limited to, or None (no key, or a key for all)."""
    key = acting_api_key(user)
    return key.workspace_id if key is not None else None


def _outside_key_workspace(user: User, workspace_id) -> bool:
    key_workspace_id = _key_workspace_id(user)
    return key_workspace_id is not None and key_workspace_id != workspace_id


def _within_key_workspace(user: User, workspaces: QuerySet[Workspace]) -> QuerySet[Workspace]:
    key_workspace_id = _key_workspace_id(user)
    return workspaces if key_workspace_id is None else workspaces.filter(pk=key_workspace_id)


def _key_lacks_scope_for(user: User, minimum: str) -> bool:
    """What needs the admin role or higher needs, from an API key, the key's admin scope as well."""
    key = acting_api_key(user)
    return key is not None and ROLE_RANK[minimum] >= ROLE_RANK[Role.ADMIN] and not key.allows(ApiKey.Scope.ADMIN)


def workspaces_for_user(user: User, *, including_locked: bool = False) -> QuerySet[Workspace]:
    """The user's workspaces, less those locked to them (requiring MFA the user lacks, or an IP
    allow-list that refuses the current client): lists across workspaces show nothing of them.
    `including_locked` keeps them, for the lists of workspaces themselves, where the user learns
    which ones require MFA or refuse their address."""
    return Workspace.objects.filter(pk__in=workspace_ids_for_user(user, including_locked=including_locked))


def memberships_for_user(user: User) -> QuerySet[Membership]:
    """The user's memberships with their workspaces, locked ones included, as the list of workspaces
    shows them: an API key limited to one workspace narrows them to it."""
    memberships = Membership.objects.filter(user_id=user.pk).select_related("workspace")
    key_workspace_id = _key_workspace_id(user)
    return memberships if key_workspace_id is None else memberships.filter(workspace_id=key_workspace_id)


def workspace_ids_for_user(user: User, *, including_locked: bool = False) -> list[uuid.UUID]:
    """The ids of workspaces_for_user, decided here over the user's memberships, read in one query.
    Every list asks: as subqueries of the list's query, the same rules cost 0.7 ms of CPU to build
    before any SQL ran."""
    return [workspace_id for workspace_id, _ in _usable_memberships(user, including_locked=including_locked)]


def _usable_memberships(user: User, *, including_locked: bool = False) -> list[tuple[uuid.UUID, str]]:
    """(workspace id, role) of the user's memberships within the acting API key's workspace, less
    those locked to the user and the current client unless `including_locked`."""
    if user.pk is None:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_memberships_sql(), [user.pk])
        memberships = cursor.fetchall()
    key_workspace_id, admits = _key_workspace_id(user), _admission(user)
    return [
        (workspace_id, role)
        for workspace_id, role, mfa_required, allowed_ips in memberships
        if (key_workspace_id is None or key_workspace_id == workspace_id)
        and (including_locked or admits(mfa_required, allowed_ips))
    ]


def _admission(user: User) -> Callable[[bool, list[str]], bool]:
    """Whether a workspace with these settings (mfa_required, allowed_ips) admits the user from the
    current client: ensure_workspace_usable's rules as a test, without its refusal's audit, for
    deciding lists. Whether the user has MFA is read once, and only if a workspace requires it."""
    key, has_mfa = acting_api_key(user), None

    def admits(mfa_required: bool, allowed_ips: list[str]) -> bool:
        nonlocal has_mfa
        if not admitted_here(allowed_ips):
            return False
        if mfa_required and key is None:
            has_mfa = mfa_enabled(user) if has_mfa is None else has_mfa
            return has_mfa
        return True

    return admits


@cache
def _memberships_sql() -> str:
    # Names from the models.
    quote, workspace, membership = connection.ops.quote_name, Workspace._meta.get_field, Membership._meta.get_field
    return "SELECT w.{}, m.{}, w.{}, w.{} FROM {} w JOIN {} m ON m.{} = w.{} WHERE m.{} = %s".format(  # noqa: S608
        quote(workspace("id").column),
        quote(membership("role").column),
        quote(workspace("mfa_required").column),
        quote(workspace("allowed_ips").column),
        quote(Workspace._meta.db_table),
        quote(Membership._meta.db_table),
        quote(membership("workspace").column),
        quote(workspace("id").column),
        quote(membership("user").column),
    )


# What a caller passes as `membership_role` when it has not read it.
UNREAD = object()


def role_of(user: User, workspace: Workspace, *, membership_role=UNREAD) -> str | None:
    """The user's role in the workspace, or None. `membership_role`: the role of the user's membership
    (None for none), for a caller that read it with the workspace; it is read here otherwise."""
    if not user.is_authenticated or _outside_key_workspace(user, workspace.pk):
        return None
    if membership_role is not UNREAD:
        return membership_role
    with connection.cursor() as cursor:
        cursor.execute(_role_sql(), [workspace.pk, user.pk])
        row = cursor.fetchone()  # one at most: workspace and user are unique together
    return row[0] if row else None


@cache
def _role_sql() -> str:
    # Every request asks: built by the ORM, this query cost 0.25 ms of CPU a call, eight times
    # its execution on a warm connection. Names come from the model.
    quote, fields = connection.ops.quote_name, Membership._meta.get_field
    return "SELECT {} FROM {} WHERE {} = %s AND {} = %s".format(  # noqa: S608 - names from the model
        quote(fields("role").column),
        quote(Membership._meta.db_table),
        quote(fields("workspace").column),
        quote(fields("user").column),
    )


def ensure_role(
    user: User, workspace: Workspace, minimum: str, *, not_found: str = NOT_A_MEMBER, membership_role=UNREAD
) -> str:
    """Return the user's role, or raise: Http404 for non-members (no existence leak), else 403.

    A caller checking access to an object of the workspace passes the 404 message it gives for an
    unknown id (`not_found="No such run."`): a stranger's id and a made-up one must answer alike.
    Superusers act as owners everywhere: they operate the installation through the admin. An API
    key narrows both (see the module's docstring). `membership_role` as role_of's.
    """
    if user.is_authenticated and user.is_superuser and not _outside_key_workspace(user, workspace.pk):
        role = Role.OWNER
    else:
        role = role_of(user, workspace, membership_role=membership_role)
    if role is None:
        raise Http404(not_found)
    ensure_workspace_usable(user, workspace)
    if ROLE_RANK[role] < ROLE_RANK[minimum]:
        raise PermissionDenied(ROLE_TOO_LOW.format(role=minimum))
    if _key_lacks_scope_for(user, minimum):
        raise PermissionDenied(KEY_NEEDS_ADMIN_SCOPE)
    return role


def workspace_get(user: User, workspace_id, minimum: str = Role.VIEWER) -> Workspace:
    """The workspace if `user` holds `minimum` in it; Http404 alike for an unknown id and a stranger's."""
    try:
        workspace = Workspace.objects.get(pk=workspace_id)
    except (Workspace.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404(NOT_A_MEMBER) from error
    ensure_role(user, workspace, minimum)
    return workspace


def ensure_may_create_workspace(user: User) -> None:
    """A key limited to one workspace could not even see a workspace it created."""
    if _key_workspace_id(user) is not None:
        raise PermissionDenied(KEY_LIMITED_TO_WORKSPACE)


def personal_workspace(user: User) -> Workspace | None:
    return Workspace.objects.filter(is_personal=True, memberships__user=user, memberships__role=Role.OWNER).first()


def default_workspace(user: User) -> Workspace | None:
    """Where something created without naming a workspace goes: an API key's own workspace if it is
    limited to one, else the user's personal workspace."""
    key_workspace_id = _key_workspace_id(user)
    if key_workspace_id is not None:
        return workspace_for_member(user, key_workspace_id)
    return personal_workspace(user)


def workspace_named_or_default(user: User, workspace_id: uuid.UUID | str | None) -> Workspace:
    """Where something new goes: the workspace named, if `user` is a member, or default_workspace when
    none is named (None or ""). ValidationError on `workspace` otherwise, alike for an unknown id and a
    stranger's."""
    named = workspace_id not in (None, "")
    workspace = workspace_for_member(user, workspace_id) if named else default_workspace(user)
    if workspace is None:
        raise ValidationError({"workspace": [NOT_A_MEMBER]})
    return workspace


def workspace_for_member(user: User, workspace_id) -> Workspace | None:
    """The workspace if `user` belongs to it; None for unknown ids and strangers alike. IpNotAllowed
    if its IP allow-list refuses the current client, MfaRequired if it requires MFA the user lacks."""
    try:
        workspace = workspaces_for_user(user, including_locked=True).get(pk=workspace_id)
    except (Workspace.DoesNotExist, ValueError, ValidationError):
        return None
    ensure_workspace_usable(user, workspace)
    return workspace


def dashboard_workspace(user: User, workspace_id: str | None) -> Workspace | None:
    """The workspace a dashboard page shows: the one named, if `user` belongs to it (Http404 alike for
    an unknown id and a stranger's), else the personal workspace or the first."""
    if workspace_id:
        workspace = workspace_for_member(user, workspace_id)
        if workspace is None:
            raise Http404("No such workspace.")
        return workspace
    return personal_workspace(user) or workspaces_for_user(user).first()


def workspace_first_owner(workspace: Workspace) -> User | None:
    """The owner who joined first: who a command acts as when nobody is named."""
    owner = (
        Membership.objects.filter(workspace=workspace, role=Role.OWNER)
        .select_related("user")
        .order_by("created_at")
        .first()
    )
    return owner.user if owner else None


def workspaces_with_role(user: User, minimum: str) -> QuerySet[Workspace]:
    """The workspaces where `ensure_role(user, workspace, minimum)` would pass: for listing across them."""
    if _key_lacks_scope_for(user, minimum):
        return Workspace.objects.none()
    if user.is_superuser:
        # An owner everywhere: every workspace but those locked to them, decided over the workspaces
        # that restrict anyone (few), not all of them.
        admits = _admission(user)
        restricting = Workspace.objects.filter(Q(mfa_required=True) | ~Q(allowed_ips=[]))
        restrictions = restricting.values_list("pk", "mfa_required", "allowed_ips")
        locked = [pk for pk, mfa_required, allowed_ips in restrictions if not admits(mfa_required, allowed_ips)]
        return _within_key_workspace(user, Workspace.objects.exclude(pk__in=locked))
    rank = ROLE_RANK[minimum]
    return Workspace.objects.filter(pk__in=[pk for pk, role in _usable_memberships(user) if ROLE_RANK[role] >= rank])
