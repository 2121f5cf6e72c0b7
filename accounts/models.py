import ipaddress
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


NOT_A_NETWORK = "{entry!r} is not an IP address or network: enter one such as 203.0.113.7 or 10.0.0.0/8."
IP_ALLOW_LIST_MAX_ENTRIES = 100
TOO_MANY_NETWORKS = f"At most {IP_ALLOW_LIST_MAX_ENTRIES} addresses or networks: list wider networks instead."
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it maps: client addresses
    are compared as IPv4 when they are mapped (accounts.ip_allow_lists), so the list must hold IPv4."""
    if network.version == 6 and network.prefixlen >= _IPV4_MAPPED.prefixlen and network.subnet_of(_IPV4_MAPPED):
        return ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network


def ip_networks_clean(entries: list[str]) -> list[str]:
    """An IP allow-list in canonical form (`10.0.0.0/8`, `2001:db8::/32`; a single address gets /32 or
    /128), without repeats, in the order given. Host bits are dropped (`10.1.2.3/8` is `10.0.0.0/8`),
    and an IPv4-mapped IPv6 network is written as IPv4 (`::ffff:10.0.0.1` is `10.0.0.1/32`).
    Raises ValidationError naming the first entry that is not an address or a network."""
    if len(entries) > IP_ALLOW_LIST_MAX_ENTRIES:
        raise ValidationError(TOO_MANY_NETWORKS, code="max_length")
    networks: list[str] = []
    for entry in entries:
        try:
            network = str(_unmapped(ipaddress.ip_network(str(entry).strip(), strict=False)))
        except ValueError as error:
            raise ValidationError(NOT_A_NETWORK.format(entry=entry), code="invalid") from error
        if network not in networks:
            networks.append(network)
    return networks


def validate_ip_networks(entries: list[str]) -> None:
    ip_networks_clean(entries)


def ip_allow_list_field(subject: str) -> ArrayField:
    """A list of CIDR networks; empty allows every address. Checked by accounts.ip_allow_lists."""
    return ArrayField(
        models.CharField(max_length=49),  # the longest IPv6 network in text, with its prefix length
        default=list,
        blank=True,
        validators=[validate_ip_networks],
        help_text=f"{subject} only from these addresses or networks (CIDR, comma-separated); empty: from anywhere.",
    )


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
    allowed_ips = ip_allow_list_field("All API access to the workspace")

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
    allowed_ips = ip_allow_list_field("Requests with the key")

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


class LoginSession(models.Model):
    """One login: a refresh token and the access tokens made from it (their `sid` claim is this id,
    accounts.tokens), or a browser's session cookie (the dashboard and the admin; the Django session
    keeps this id). Listed to its person (GET auth/sessions), who can end it; once `revoked_at` is set
    its tokens and cookie are refused from the next request and its open websockets are closed."""

    class Kind(models.TextChoices):
        TOKEN = "token", "API token"
        BROWSER = "browser", "Browser"

    id = models.CharField(primary_key=True, max_length=32, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="login_sessions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    address = models.CharField(max_length=64, blank=True, help_text="The client address at the last use.")
    user_agent = models.CharField(max_length=300, blank=True)
    expires_at = models.DateTimeField(help_text="When its refresh token or cookie expires unless used again.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_used_at"]
        indexes = [
            models.Index(fields=["user", "-last_used_at"], name="login_session_user_last_used"),
            models.Index(fields=["expires_at"], name="login_session_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} session of {self.user_id} from {self.address or 'unknown address'}"
