from rest_framework import serializers

from accounts.models import ApiKey, Membership, User, Workspace
from accounts.selectors import mfa_enabled


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

    class Meta:
        model = Workspace
        fields = ["id", "name", "is_personal", "mfa_required", "role", "member_count", "created_at", "updated_at"]
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


class ApiKeyCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    key = serializers.CharField(help_text="Shown this once: only a hash of it is stored.")


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "workspace",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]
