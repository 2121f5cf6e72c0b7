from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import TokenRefreshSerializer

from accounts.ip_allow_lists import admitted_here
from accounts.login_sessions import SessionEnded, SessionRefreshToken, token_session_refreshed
from accounts.models import (
    IP_ALLOW_LIST_MAX_ENTRIES,
    ApiKey,
    LoginSession,
    Membership,
    User,
    Workspace,
    ip_networks_clean,
)
from accounts.selectors import mfa_enabled

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_HEX = "[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"(?:{_HEX}:){{7}}{_HEX}",
        rf"(?:{_HEX}:){{1,7}}:",
        rf"(?:{_HEX}:){{1,6}}:{_HEX}",
        *(rf"(?:{_HEX}:){{1,{7 - n}}}(?::{_HEX}){{1,{n}}}" for n in range(2, 7)),
        rf":(?:(?::{_HEX}){{1,7}}|:)",
        # With an IPv4 address in the last 32 bits (::ffff:192.0.2.1).
        rf"(?:{_HEX}:){{6}}{_IPV4}",
        rf"::(?:{_HEX}:){{0,5}}{_IPV4}",
        *(rf"(?:{_HEX}:){{{n}}}:(?:{_HEX}:){{0,{5 - n}}}{_IPV4}" for n in range(1, 6)),
    ]
)
# The entries the API takes: an IPv4 or IPv6 address, optionally with a prefix length. Every text it
# matches is one ipaddress reads (tests/accounts/test_ip_allow_lists.py checks), so the OpenAPI
# schema's pattern says exactly what is accepted.
# (\A and \Z: Python's $ would let a final newline through; the schema gets ^ and $, as ECMA reads them.)
IP_NETWORK_PATTERN = (
    rf"\A(?:{_IPV4}(?:/(?:3[0-2]|[12][0-9]|[0-9]))?|(?:{_IPV6})(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)\Z"
)
NOT_A_NETWORK_ENTRY = "%(value)r is not an IP address or network: enter one such as 203.0.113.7 or 10.0.0.0/8."


class IpAllowListField(serializers.ListField):
    """An IP allow-list (accounts.ip_allow_lists): addresses and CIDR networks, canonicalised
    (accounts.models.ip_networks_clean); [] allows every address. With `hidden_from_refused` a client
    the list refuses sees null instead: a refusal never tells what the list holds."""

    def __init__(self, *, hidden_from_refused: bool = False, **kwargs):
        kwargs.setdefault(
            "child",
            serializers.CharField(
                max_length=49,
                trim_whitespace=False,
                validators=[RegexValidator(IP_NETWORK_PATTERN, message=NOT_A_NETWORK_ENTRY)],
            ),
        )
        kwargs.setdefault("max_length", IP_ALLOW_LIST_MAX_ENTRIES)
        self.hidden_from_refused = hidden_from_refused
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> list[str]:
        try:
            return ip_networks_clean(super().to_internal_value(data))
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from error

    def get_attribute(self, instance):
        networks = super().get_attribute(instance)
        if self.hidden_from_refused and not admitted_here(networks):
            return None  # the serializer shows None as null
        return networks


class IpAllowListFieldSchema(OpenApiSerializerFieldExtension):
    target_class = IpAllowListField

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "response" and self.target.hidden_from_refused:
            schema["nullable"] = True
        return schema


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name"]


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class MeWorkspaceSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="workspace.id")
    name = serializers.CharField(source="workspace.name")
    mfa_required = serializers.BooleanField(source="workspace.mfa_required")
    role = serializers.CharField()


class MeSerializer(serializers.ModelSerializer):
    workspaces = MeWorkspaceSerializer(source="memberships", many=True, read_only=True)
    mfa_enabled = serializers.SerializerMethodField(help_text="Logins need a TOTP code (auth/mfa/totp).")

    class Meta:
        model = User
        fields = ["id", "email", "name", "is_staff", "date_joined", "mfa_enabled", "workspaces"]

    def get_mfa_enabled(self, user: User) -> bool:
        return mfa_enabled(user)


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True, help_text="The caller's role in this workspace.")
    member_count = serializers.IntegerField(read_only=True)
    allowed_ips = IpAllowListField(
        required=False,
        hidden_from_refused=True,
        help_text="All API access to the workspace only from these addresses or CIDR networks; [] from "
        "anywhere. A list that would refuse your own address is refused. Null when it refuses this request's "
        "address.",
    )

    class Meta:
        model = Workspace
        fields = [
            "id",
            "name",
            "is_personal",
            "mfa_required",
            "allowed_ips",
            "role",
            "member_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["is_personal", "created_at", "updated_at"]


class MembershipSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "role", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.VIEWER)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.Scope.choices),
        allow_empty=False,
        max_length=len(ApiKey.Scope.choices),
        help_text="read: GET and other safe methods; write: changes (and reads); trigger: start runs; "
        "admin: everything, including what needs the admin role in a workspace.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    workspace = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="Limit the key to this workspace."
    )
    allowed_ips = IpAllowListField(
        required=False, default=list, help_text="Requests with the key only from these addresses or CIDR networks."
    )


class ApiKeyCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    key = serializers.CharField(help_text="Shown this once: only a hash of it is stored.")
    allowed_ips = serializers.ListField(child=serializers.CharField())


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "workspace",
            "allowed_ips",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]


class LoginSessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(help_text="Whether this request came with this session.")

    class Meta:
        model = LoginSession
        fields = ["id", "kind", "created_at", "last_used_at", "address", "user_agent", "expires_at", "current"]

    def get_current(self, login_session: LoginSession) -> bool:
        return login_session.pk == self.context.get("current_session_id")


class SessionsRevokedSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many sessions were ended.")


class SessionRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh, refused for a session that was ended (accounts.login_sessions)."""

    token_class = SessionRefreshToken

    def validate(self, attrs: dict) -> dict:
        try:
            token_session_refreshed(refresh=self.token_class(attrs["refresh"]), request=self.context.get("request"))
        except SessionEnded as error:
            raise InvalidToken(str(error)) from error
        return super().validate(attrs)
