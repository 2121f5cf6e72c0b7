"""The operators' view of users, workspaces and memberships. The admin can do more here than the API
(set flags and passwords, edit any membership), so its writes are audited by AuditedAdminMixin: with
the membership services' actions for memberships, `workspace.*` for workspaces, and `user.created`,
`user.updated` and `user.deleted` for users, whose own sign-up is `auth.registered`."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count
from django_otp.plugins.otp_totp import admin as totp_admin  # noqa: F401 - registers what is replaced below
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework_simplejwt.token_blacklist import admin as token_blacklist_admin  # noqa: F401 - registers what is replaced below
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.ip_allow_lists import IpAllowListAdminForm
from accounts.lockout import lockout_lift
from accounts.login_sessions import login_session_revoke
from accounts.mfa import mfa_reset
from accounts.models import LoginSession, Membership, User, Workspace
from accounts.services import personal_workspace_create, user_password_changed
from audit.admin_writes import AuditedAdminMixin, ReadOnlyAdminMixin, register_read_only

# {(workspace id, user id): role}: the memberships an admin page showed, to compare with what it saved.
MembershipRows = dict[tuple, str]


def membership_rows(**filters) -> MembershipRows:
    rows = Membership.objects.filter(**filters).order_by().values_list("workspace_id", "user_id", "role")
    return {(workspace_id, user_id): role for workspace_id, user_id, role in rows}


def membership_records(before: MembershipRows | None, after: MembershipRows | None) -> list[dict]:
    """The events the membership services record, for the difference between two sets of rows. A row
    moved to another user or workspace is one member removed and another added."""
    before, after = before or {}, after or {}
    keys = sorted({*before, *after}, key=str)
    users = User.objects.in_bulk({user_id for _, user_id in keys})
    workspaces = Workspace.objects.in_bulk({workspace_id for workspace_id, _ in keys})
    records = []
    for workspace_id, user_id in keys:
        old, new = before.get((workspace_id, user_id)), after.get((workspace_id, user_id))
        if old == new:
            continue
        user = users.get(user_id)
        email = user.email if user else None
        if old is None:
            action, changes = "workspace.member_added", {"email": [None, email], "role": [None, new]}
        elif new is None:
            action, changes = "workspace.member_removed", {"email": [email, None], "role": [old, None]}
        else:
            action, changes = "workspace.role_changed", {"role": [old, new]}
        records.append(
            {
                "action": action,
                "workspace": workspaces.get(workspace_id),
                "target": user,
                "target_type": "user",
                "target_id": user_id,
                "changes": changes,
            }
        )
    return records


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class UserMembershipInline(MembershipInline):
    autocomplete_fields = ["workspace"]
    fields = ["workspace", "role", "created_at"]
    fk_name = "user"


class EmailUserCreationForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class EmailUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    form = EmailUserChangeForm
    add_form = EmailUserCreationForm
    ordering = ["email"]
    list_display = ["email", "name", "is_active", "is_staff", "workspace_count", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "date_joined"]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    inlines = [UserMembershipInline]
    fieldsets = [
        (None, {"fields": ["email", "name", "password"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["date_joined", "last_login"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "name", "password1", "password2"]})]
    actions = ["lift_login_lockouts", "reset_mfa"]
    audit_prefix = "user"
    # The password's hash is compared, never recorded: a change shows as "***".
    audit_fields = ["email", "name", "password", "is_active", "is_staff", "is_superuser", "groups", "user_permissions"]
    audit_secret_fields = ["password"]

    def audit_related_state(self, obj) -> MembershipRows:
        return membership_rows(user=obj)

    def audit_related_records(self, obj, before, after) -> list[dict]:
        return membership_records(before, after)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            personal_workspace_create(user=obj, actor=request.user, request=request)

    def user_change_password(self, request, id, form_url=""):
        # Django's view saves the new password itself; in one transaction with it, the sessions the old
        # password opened end and the change is audited, as when users change their own.
        if request.method != "POST":
            return super().user_change_password(request, id, form_url)
        with transaction.atomic():
            user = self.get_object(request, unquote(id))  # None for an unknown or malformed id: the view's 404
            if user is None:
                return super().user_change_password(request, id, form_url)
            before = User.objects.select_for_update().filter(pk=user.pk).values_list("password", flat=True).get()
            response = super().user_change_password(request, id, form_url)
            user.refresh_from_db()
            if user.password != before:
                user_password_changed(user=user, actor=request.user, request=request)
        return response

    @admin.action(description="Lift login lockouts of the selected users")
    def lift_login_lockouts(self, request, queryset) -> None:
        lifted = sum(lockout_lift(email=user.email, actor=request.user, request=request) for user in queryset)
        self.message_user(request, f"Lifted {lifted} login lockout(s).", messages.SUCCESS)

    @admin.action(description="Turn off multi-factor authentication of the selected users")
    def reset_mfa(self, request, queryset) -> None:
        reset = sum(mfa_reset(user=user, actor=request.user, request=request) for user in queryset)
        self.message_user(request, f"Turned off MFA of {reset} user(s).", messages.SUCCESS)

    def get_inline_instances(self, request, obj=None):
        # Adding a user is the short email-and-password form; memberships come on the change page.
        return super().get_inline_instances(request, obj) if obj is not None else []

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(workspace_total=Count("memberships"))

    @admin.display(description="Workspaces", ordering="workspace_total")
    def workspace_count(self, user: User) -> int:
        return user.workspace_total


@admin.register(Workspace)
class WorkspaceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "is_personal", "mfa_required", "member_count", "created_by", "created_at"]
    list_filter = ["is_personal", "mfa_required", "created_at"]
    search_fields = ["name", "memberships__user__email"]
    readonly_fields = ["id", "created_by", "created_at", "updated_at"]
    inlines = [MembershipInline]
    form = IpAllowListAdminForm  # allowed_ips saved canonical; the admin site is not under the list
    audit_prefix = "workspace"
    audit_fields = ["name", "is_personal", "mfa_required", "email_allowed_domains", "allowed_ips"]

    def audit_workspace(self, obj: Workspace) -> Workspace:
        return obj

    def audit_deleted_records(self, obj: Workspace) -> list[dict]:
        # As workspace_delete records it: the event outlives the workspace, so it is not one of its events.
        return [{**record, "workspace": None} for record in super().audit_deleted_records(obj)]

    def audit_related_state(self, obj) -> MembershipRows:
        return membership_rows(workspace=obj)

    def audit_related_records(self, obj, before, after) -> list[dict]:
        return membership_records(before, after)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").annotate(member_total=Count("memberships"))

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, workspace: Workspace) -> int:
        return workspace.member_total


@admin.register(Membership)
class MembershipAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]
    list_select_related = ["user", "workspace"]

    def audit_state(self, obj: Membership) -> MembershipRows:
        return {(obj.workspace_id, obj.user_id): obj.role}

    def audit_saved_records(self, obj: Membership, before: MembershipRows | None) -> list[dict]:
        return membership_records(before, self.audit_state(obj))

    def audit_deleted_records(self, obj: Membership) -> list[dict]:
        return membership_records(self.audit_state(obj), None)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedAdminMixin, DjangoGroupAdmin):
    """Django's, audited: a group's permissions are what its staff members may do in this admin."""

    audit_prefix = "group"
    audit_fields = ["name", "permissions"]


# Sessions are revoked by the services (logout, password change); the records are for browsing.
# TOTP devices change through accounts.mfa only (audited); the users' action above turns MFA off.
register_read_only(OutstandingToken, BlacklistedToken, TOTPDevice)


@admin.register(LoginSession)
class LoginSessionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who is logged in where. Sessions are ended with the action, through the same service as
    DELETE auth/sessions/{id}: audited, effective on the session's next request, websockets closed."""

    list_display = ["user", "kind", "address", "user_agent", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email", "address", "user_agent"]
    list_select_related = ["user"]
    actions = ["end_sessions"]

    @admin.action(description="End the selected sessions")
    def end_sessions(self, request, queryset) -> None:
        live = queryset.filter(revoked_at__isnull=True).select_related("user")
        ended = 0
        for login_session in live:
            login_session_revoke(login_session=login_session, actor=request.user, request=request)
            ended += 1
        self.message_user(request, f"Ended {ended} session(s).", messages.SUCCESS)
