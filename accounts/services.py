"""Every change to users, workspaces and memberships."""

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.access import ensure_may_create_workspace, ensure_role
from accounts.ip_allow_lists import ensure_lock_out_avoided
from accounts.login_sessions import login_sessions_end_all, token_session_logout
from accounts.models import ROLE_RANK, Membership, User, Workspace, ip_networks_clean
from accounts.selectors import mfa_enabled
from audit.services import REDACTED, AnyRequest, audit_record, diff
from core.problems import Conflict

Role = Membership.Role

REGISTRATION_CLOSED = "Registration is turned off on this server."
EMAIL_TAKEN = "A user with this email address already exists."
WRONG_PASSWORD = "The current password is not correct."  # noqa: S105 - a message, not a secret
PERSONAL_WORKSPACE = "A personal workspace cannot be deleted."
LAST_OWNER = "A workspace must keep at least one owner."
ALREADY_MEMBER = "This user is already a member of the workspace."
NO_SUCH_USER = "No user has this email address; they must register first."
OWNERS_ONLY = "Only an owner can grant, change or remove the owner role."
MFA_FIRST = "Turn on multi-factor authentication for your own account before requiring it of the members."


def user_register(*, email: str, password: str, name: str = "", request: AnyRequest | None = None) -> User:
    """Create a user with a personal workspace they own. Raises ValidationError or PermissionDenied."""
    if not settings.ACCOUNTS_ALLOW_REGISTRATION:
        raise PermissionDenied(REGISTRATION_CLOSED)
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": [EMAIL_TAKEN]})
    candidate = User(email=email, name=name)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as error:
        raise ValidationError({"password": error.messages}) from error
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, password=password, name=name)
            workspace = _personal_workspace_create(user)
            audit_record(
                action="auth.registered",
                actor=user,
                workspace=workspace,
                target=user,
                changes={**diff({}, {"email": email, "name": name or None}), "password": [None, REDACTED]},
                request=request,
            )
    except IntegrityError as error:  # two registrations of one email racing each other
        raise ValidationError({"email": [EMAIL_TAKEN]}) from error
    return user


def personal_workspace_create(*, user: User, actor: User, request: AnyRequest | None = None) -> Workspace:
    """The personal workspace of a user an operator created in the admin, as registration gives one:
    without it the user could not create anything until someone added them to a workspace."""
    workspace = _personal_workspace_create(user)
    audit_record(
        action="workspace.created",
        actor=actor,
        workspace=workspace,
        target=workspace,
        changes=diff({}, {"name": workspace.name, "is_personal": True, "owner": user.email}),
        request=request,
    )
    return workspace


def _personal_workspace_create(user: User) -> Workspace:
    workspace = Workspace.objects.create(
        name=f"{user.name or user.email}'s workspace", is_personal=True, created_by=user
    )
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    return workspace


def user_change_password(
    *, user: User, old_password: str, new_password: str, request: AnyRequest | None = None
) -> None:
    if not user.check_password(old_password):
        raise ValidationError({"old_password": [WRONG_PASSWORD]})
    try:
        password_validation.validate_password(new_password, user=user)
    except ValidationError as error:
        raise ValidationError({"new_password": error.messages}) from error
    with transaction.atomic():
        user.set_password(new_password)
        _password_changed(user, actor=user, request=request)


def user_password_changed(*, user: User, actor: User, request: AnyRequest | None = None) -> None:
    """Follow up a password an operator set (or disabled) through the admin's password form, which saves
    it itself: in the same transaction, end the sessions the old password opened and audit it, as when
    users change their own."""
    with transaction.atomic():
        _password_changed(user, actor=actor, request=request)


def _password_changed(user: User, *, actor: User, request: AnyRequest | None) -> None:
    user.password_changed_at = timezone.now()
    user.save(update_fields=["password", "password_changed_at"])
    # A changed password is often a reaction to a leak: end every session the old one opened.
    outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in outstanding])
    sessions_ended = login_sessions_end_all(user=user)
    audit_record(
        action="auth.password_changed",
        actor=actor,
        target=user,
        changes={
            "password": [REDACTED, REDACTED],
            "refresh_tokens_revoked": [None, len(outstanding)],
            "sessions_ended": [None, sessions_ended],
        },
        request=request,
    )


def user_logout(*, refresh: str, request: AnyRequest | None = None) -> None:
    """End the session of a refresh token (the token is the credential): blacklist it and refuse the
    access tokens made in its session (accounts.login_sessions). Raises simplejwt's TokenError for a bad one."""
    token = RefreshToken(refresh)
    with transaction.atomic():
        token.blacklist()
        user = User.objects.filter(pk=token.get(jwt_settings.USER_ID_CLAIM)).first()
        token_session_logout(refresh=token, user=user, request=request)
        if user is not None:
            audit_record(action="auth.logout", actor=user, target=user, request=request)


def workspace_create(*, actor: User, name: str, request: AnyRequest | None = None) -> Workspace:
    ensure_may_create_workspace(actor)
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, created_by=actor)
        Membership.objects.create(workspace=workspace, user=actor, role=Role.OWNER)
        audit_record(
            action="workspace.created",
            actor=actor,
            workspace=workspace,
            target=workspace,
            changes={"name": [None, name]},
            request=request,
        )
    return workspace


def workspace_update(
    *,
    workspace: Workspace,
    actor: User,
    name: str,
    mfa_required: bool | None = None,
    allowed_ips: list[str] | None = None,
    request: AnyRequest | None = None,
) -> Workspace:
    """Rename a workspace, change whether its members must use MFA, or its IP allow-list (None:
    unchanged; [] allows every address). Admins and owners.

    Neither change may lock the actor out: requiring MFA needs it on their own account, and a list
    must admit the address they make the change from (when there is one: not in the admin site).
    """
    ensure_role(actor, workspace, Role.ADMIN)
    mfa_required = workspace.mfa_required if mfa_required is None else mfa_required
    if mfa_required and not workspace.mfa_required and not mfa_enabled(actor):
        raise ValidationError({"mfa_required": [MFA_FIRST]})
    if allowed_ips is None:
        allowed_ips = workspace.allowed_ips
    else:
        try:
            allowed_ips = ip_networks_clean(allowed_ips)
        except ValidationError as error:
            raise ValidationError({"allowed_ips": error.messages}) from error
        ensure_lock_out_avoided(allowed_ips)
    before = {"name": workspace.name, "mfa_required": workspace.mfa_required, "allowed_ips": workspace.allowed_ips}
    after = {"name": name, "mfa_required": mfa_required, "allowed_ips": allowed_ips}
    with transaction.atomic():
        workspace.name, workspace.mfa_required, workspace.allowed_ips = name, mfa_required, allowed_ips
        workspace.save(update_fields=["name", "mfa_required", "allowed_ips", "updated_at"])
        if after != before:
            audit_record(
                action="workspace.updated",
                actor=actor,
                workspace=workspace,
                target=workspace,
                changes=diff(before, after),
                request=request,
            )
    return workspace


def workspace_delete(*, workspace: Workspace, actor: User, request: AnyRequest | None = None) -> None:
    """Delete a shared workspace with everything in it. Owners only; personal ones stay.

    Its audit events stay, their workspace link cleared; the event of the deletion has none.
    """
    ensure_role(actor, workspace, Role.OWNER)
    if workspace.is_personal:
        raise Conflict(PERSONAL_WORKSPACE)
    workspace_id, name = workspace.pk, workspace.name
    with transaction.atomic():
        workspace.delete()
        audit_record(
            action="workspace.deleted",
            actor=actor,
            target_type="workspace",
            target_id=workspace_id,
            changes={"name": [name, None]},
            request=request,
        )


def _ensure_may_touch_role(actor_role: str, *roles: str) -> None:
    """Admins manage editors and viewers (and other admins); owner roles are for owners to give."""
    if Role.OWNER in roles and actor_role != Role.OWNER:
        raise PermissionDenied(OWNERS_ONLY)


def _ensure_another_owner_remains(membership: Membership) -> None:
    if membership.role != Role.OWNER:
        return
    owners = Membership.objects.select_for_update().filter(workspace_id=membership.workspace_id, role=Role.OWNER)
    if owners.exclude(pk=membership.pk).count() == 0:
        raise Conflict(LAST_OWNER)


def membership_add(
    *, workspace: Workspace, actor: User, email: str, role: str, request: AnyRequest | None = None
) -> Membership:
    actor_role = ensure_role(actor, workspace, Role.ADMIN)
    _ensure_may_touch_role(actor_role, role)
    user = User.objects.filter(email__iexact=email.strip()).first()
    if user is None:
        raise ValidationError({"email": [NO_SUCH_USER]})
    try:
        with transaction.atomic():
            membership = Membership.objects.create(workspace=workspace, user=user, role=role)
            audit_record(
                action="workspace.member_added",
                actor=actor,
                workspace=workspace,
                target=user,
                changes={"email": [None, user.email], "role": [None, role]},
                request=request,
            )
            return membership
    except IntegrityError as error:
        raise Conflict(ALREADY_MEMBER) from error


def membership_change_role(
    *, membership: Membership, actor: User, role: str, request: AnyRequest | None = None
) -> Membership:
    actor_role = ensure_role(actor, membership.workspace, Role.ADMIN)
    _ensure_may_touch_role(actor_role, role, membership.role)
    before = membership.role
    with transaction.atomic():
        if ROLE_RANK[role] < ROLE_RANK[membership.role]:
            _ensure_another_owner_remains(membership)
        membership.role = role
        membership.save(update_fields=["role"])
        if role != before:
            audit_record(
                action="workspace.role_changed",
                actor=actor,
                workspace=membership.workspace,
                target=membership.user,
                changes={"role": [before, role]},
                request=request,
            )
    return membership


def membership_remove(*, membership: Membership, actor: User, request: AnyRequest | None = None) -> None:
    """Admins remove others; anyone may leave. The last owner can do neither."""
    if membership.user_id == actor.pk:
        ensure_role(actor, membership.workspace, Role.VIEWER)
    else:
        actor_role = ensure_role(actor, membership.workspace, Role.ADMIN)
        _ensure_may_touch_role(actor_role, membership.role)
    with transaction.atomic():
        _ensure_another_owner_remains(membership)
        membership.delete()
        audit_record(
            action="workspace.member_removed",
            actor=actor,
            workspace=membership.workspace,
            target=membership.user,
            changes={"email": [membership.user.email, None], "role": [membership.role, None]},
            request=request,
        )


def superuser_ensure(*, email: str, password: str) -> bool:
    """Create the first superuser (with a personal workspace) if the database has no user yet."""
    with transaction.atomic():
        if User.objects.exists():
            return False
        user = User.objects.create_superuser(email=email, password=password, name="Admin")
        workspace = _personal_workspace_create(user)
        audit_record(
            action="auth.registered",
            workspace=workspace,
            target=user,
            changes={"email": [None, user.email], "is_superuser": [None, True], "password": [None, REDACTED]},
        )
    return True
