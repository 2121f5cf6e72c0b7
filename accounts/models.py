import re
import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

# A domain name (letters, digits, hyphens, dots; international names as typed), or * for any.
EMAIL_DOMAIN = re.compile(r"(\*|(?!-)[\w-]{1,63}(?<!-)(\.(?!-)[\w-]{1,63}(?<!-))+)")
NOT_A_DOMAIN = "{entry!r} is not a domain name: enter one such as example.com, or *."


def validate_email_domains(domains: list[str]) -> None:
    for entry in domains:
        if not EMAIL_DOMAIN.fullmatch(entry):
            raise ValidationError(NOT_A_DOMAIN.format(entry=entry), code="invalid")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. The email address is the login; there is no username."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin site.")
    date_joined = models.DateTimeField(default=timezone.now)
    # Access tokens issued before it are refused (accounts.api.authentication.JWTAuthentication).
    password_changed_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class Workspace(models.Model):
    """The tenancy boundary: every workflow, run, credential and audit event belongs to one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    is_personal = models.BooleanField(
        default=False, help_text="Created with its user at registration; it cannot be deleted."
    )
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    members = models.ManyToManyField(User, through="Membership", related_name="workspaces")
    mfa_required = models.BooleanField(
        default=False,
        help_text="Members must use multi-factor authentication: without it they are refused (API keys are exempt).",
    )
    # Set by operators (the admin), never by the workspace's own members: with open registration anyone
    # owns a workspace, and this decides whom the operator's mail server writes to for them.
    email_allowed_domains = ArrayField(
        models.CharField(max_length=253),
        default=list,
        validators=[validate_email_domains],
        blank=True,
        help_text=(
            "Domains its email nodes may write to besides its members' addresses (and DWC_EMAIL_ALLOWED_DOMAINS); "
            "* for any. Comma-separated."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        EDITOR = "editor"
        VIEWER = "viewer"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user")]
        ordering = ["workspace", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.workspace}"


# What each role may do, lowest first: a role may do everything the roles below it may.
ROLE_RANK = {
    Membership.Role.VIEWER: 0,
    Membership.Role.EDITOR: 1,
    Membership.Role.ADMIN: 2,
    Membership.Role.OWNER: 3,
}


class ApiKey(models.Model):
    """A credential for scripts and services: acts as its creator, limited to its scopes and, if set,
    to one workspace. Only a SHA-256 of the key is stored; `prefix` is its public part, for lookup."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"
        TRIGGER = "trigger"
        ADMIN = "admin"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    workspace = models.ForeignKey(
        Workspace,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="The only workspace the key reaches; empty: all of its user's workspaces.",
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def allows(self, scope: str) -> bool:
        return any(scope in SCOPE_INCLUDES[held] for held in self.scopes if held in SCOPE_INCLUDES)


# What each API key scope permits: admin everything, write also reads, trigger only starts runs.
SCOPE_INCLUDES = {
    ApiKey.Scope.READ: {ApiKey.Scope.READ},
    ApiKey.Scope.WRITE: {ApiKey.Scope.WRITE, ApiKey.Scope.READ},
    ApiKey.Scope.TRIGGER: {ApiKey.Scope.TRIGGER},
    ApiKey.Scope.ADMIN: set(ApiKey.Scope),
}


class RecoveryCode(models.Model):
    """A one-time code that stands in for a TOTP code when the authenticator is lost (accounts.mfa).
    Only a SHA-256 of the code is stored: codes are random, so a plain hash cannot be reversed."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "code_hash"], name="recovery_code_unique")]

    def __str__(self) -> str:
        return f"recovery code of {self.user}"


class LoginLockout(models.Model):
    """Failed logins of one account from one address (accounts.lockout), and the lock they led to.

    In the database rather than a cache: a cache may evict a lock to make room for other keys, and in
    the embedded mode other users' traffic did, minutes into a 15-minute lock. `account` is a hash of
    the email address as typed, so unknown addresses are counted too without storing them.
    """

    account = models.CharField(max_length=64)
    address = models.CharField(max_length=64, help_text="The client address, as the throttles see it.")
    failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField(help_text="The window of DWC_LOGIN_LOCKOUT_MINUTES counts from it.")
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "address"], name="login_lockout_unique")]
        indexes = [models.Index(fields=["first_failure_at"], name="login_lockout_first_failure")]

    def __str__(self) -> str:
        return f"{self.failures} failed login(s) from {self.address}"


class RevokedSession(models.Model):
    """A login session ended by logout: access tokens carrying its id (the `sid` claim, accounts.tokens)
    are refused. Kept until the last of them would have expired anyway."""

    session_id = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"session {self.session_id} revoked"
