from django.db.models import Count, OuterRef, Prefetch, Subquery, prefetch_related_objects
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenObtainSerializer
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import api_keys, lockout, login_sessions, mfa, services
from accounts.access import Role, ensure_workspace_usable, memberships_for_user, workspace_get, workspaces_for_user
from accounts.api import mfa as api_mfa
from accounts.api import serializers
from accounts.models import ApiKey, LoginSession, Membership, User, Workspace
from accounts.throttling import AuthRateThrottle


class LoginLockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self, error: lockout.LockedOut):
        super().__init__(error.messages[0])
        self.wait = error.retry_after  # DRF's exception handler turns it into Retry-After


class PasswordCheckSerializer(TokenObtainSerializer):
    """simplejwt's email and password check, without making tokens: accounts.mfa.token_login decides."""


class TokenObtainView(TokenObtainPairView):
    """POST auth/token: simplejwt's view behind the per-address throttle and the login lockout."""

    throttle_classes = [AuthRateThrottle]
    serializer_class = PasswordCheckSerializer

    @extend_schema(responses={200: api_mfa.TokenOrMfaSerializer})
    def post(self, request, *args, **kwargs):
        email = request.data.get(User.USERNAME_FIELD) if isinstance(request.data, dict) else None
        if isinstance(email, str) and email:
            try:
                lockout.lockout_check(email=email, request=request)
            except lockout.LockedOut as error:
                raise LoginLockedOut(error) from error
        data = self.get_serializer(data=request.data)
        try:
            data.is_valid(raise_exception=True)
        except TokenError as error:
            raise InvalidToken(error.args[0]) from error
        # Tokens, or for a user with MFA a challenge for auth/token/mfa. A wrong password reached the
        # audit trail already, as user_login_failed from authenticate().
        return Response(mfa.token_login(user=data.user, request=request), status=status.HTTP_200_OK)


class TokenRefreshThrottledView(TokenRefreshView):
    """POST auth/token/refresh: simplejwt's, throttled, and refused for a session that was ended."""

    throttle_classes = [AuthRateThrottle]
    serializer_class = serializers.SessionRefreshSerializer


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthRateThrottle]

    @extend_schema(request=serializers.RegisterSerializer, responses={201: serializers.UserSerializer})
    def post(self, request):
        data = serializers.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data, request=request)
        return Response(serializers.UserSerializer(user).data, status=status.HTTP_201_CREATED)


class LogoutView(APIView):
    """Blacklist a refresh token. The token is the credential, so no other login is needed."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    def get_authenticate_header(self, request) -> str:
        # Without an authentication class DRF would turn a bad token's 401 into a 403.
        return 'Bearer realm="api"'

    @extend_schema(request=serializers.LogoutSerializer, responses={205: None})
    def post(self, request):
        data = serializers.LogoutSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.user_logout(refresh=data.validated_data["refresh"], request=request)
        except TokenError as error:
            raise InvalidToken(str(error)) from error
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    @extend_schema(responses=serializers.MeSerializer)
    def get(self, request):
        # The user authentication loaded, with its memberships added: no second read of the user.
        user = request.user
        prefetch_related_objects([user], Prefetch("memberships", queryset=memberships_for_user(user)))
        return Response(serializers.MeSerializer(user).data)


class PasswordChangeView(APIView):
    refuses_api_keys = True

    @extend_schema(request=serializers.PasswordChangeSerializer, responses={204: None})
    def post(self, request):
        data = serializers.PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_change_password(user=request.user, **data.validated_data, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkspaceViewSet(viewsets.ModelViewSet):
    serializer_class = serializers.WorkspaceSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular inspecting, no request user
            return Workspace.objects.none()
        role = Membership.objects.filter(workspace=OuterRef("pk"), user=self.request.user).values("role")[:1]
        return (
            workspaces_for_user(self.request.user, including_locked=True)
            .annotate(role=Subquery(role), member_count=Count("memberships"))
            .order_by("name")
        )

    def get_object(self):
        workspace = super().get_object()
        # The list shows workspaces that refuse the caller's address or require MFA the caller lacks;
        # everything inside them is refused.
        ensure_workspace_usable(self.request.user, workspace)
        return workspace

    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = services.workspace_create(actor=request.user, name=data.validated_data["name"], request=request)
        return Response(self.get_serializer(self.get_queryset().get(pk=workspace.pk)).data, status=201)

    def partial_update(self, request, *args, **kwargs):
        workspace = self.get_object()
        data = self.get_serializer(workspace, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.workspace_update(
            workspace=workspace,
            actor=request.user,
            name=data.validated_data.get("name", workspace.name),
            mfa_required=data.validated_data.get("mfa_required", workspace.mfa_required),
            allowed_ips=data.validated_data.get("allowed_ips"),
            request=request,
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=workspace.pk)).data)

    def destroy(self, request, *args, **kwargs):
        services.workspace_delete(workspace=self.get_object(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Members of one workspace: every member reads; owners and admins manage."""

    serializer_class = serializers.MembershipSerializer
    lookup_field = "user_id"
    filter_backends: list = []

    def workspace(self, minimum: str = Role.VIEWER) -> Workspace:
        return workspace_get(self.request.user, self.kwargs["workspace_pk"], minimum)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return Membership.objects.filter(workspace=self.workspace()).select_related("user", "workspace")

    @extend_schema(request=serializers.MembershipCreateSerializer, responses={201: serializers.MembershipSerializer})
    def create(self, request, *args, **kwargs):
        workspace = self.workspace(Role.ADMIN)  # who, before what: a viewer's request is a 403 whatever its body
        data = serializers.MembershipCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(
            workspace=workspace, actor=request.user, **data.validated_data, request=request
        )
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=serializers.MembershipUpdateSerializer, responses=serializers.MembershipSerializer)
    def partial_update(self, request, *args, **kwargs):
        self.workspace(Role.ADMIN)
        membership = self.get_object()
        data = serializers.MembershipUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "role" in data.validated_data:  # a PATCH without it changes nothing
            membership = services.membership_change_role(
                membership=membership, actor=request.user, role=data.validated_data["role"], request=request
            )
        return Response(self.get_serializer(membership).data)

    def destroy(self, request, *args, **kwargs):
        services.membership_remove(membership=self.get_object(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's API keys. Managed with a login (JWT or session), never with an API key."""

    serializer_class = serializers.ApiKeySerializer
    filter_backends: list = []
    refuses_api_keys = True

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiKey.objects.none()
        return api_keys.api_keys_for_user(self.request.user)

    @extend_schema(request=serializers.ApiKeyCreateSerializer, responses={201: serializers.ApiKeyCreatedSerializer})
    def create(self, request):
        data = serializers.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw_key = api_keys.api_key_create(
            user=request.user,
            name=data.validated_data["name"],
            scopes=data.validated_data["scopes"],
            expires_at=data.validated_data["expires_at"],
            workspace_id=data.validated_data["workspace"],
            allowed_ips=data.validated_data["allowed_ips"],
            request=request,
        )
        body = {"id": key.pk, "name": key.name, "prefix": key.prefix, "key": raw_key, "allowed_ips": key.allowed_ips}
        return Response(serializers.ApiKeyCreatedSerializer(body).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Revoke the key: requests with it are refused (401) from now on."""
        key = api_keys.api_key_get(user=request.user, key_id=pk)
        api_keys.api_key_revoke(key=key, actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LoginSessionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's live login sessions (token logins and browsers). Managed with a login, never with an
    API key: a machine credential must not end a person's sessions."""

    serializer_class = serializers.LoginSessionSerializer
    filter_backends: list = []
    pagination_class = None
    refuses_api_keys = True

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LoginSession.objects.none()
        return login_sessions.login_sessions_live(self.request.user)

    def get_serializer_context(self) -> dict:
        return {
            **super().get_serializer_context(),
            "current_session_id": login_sessions.current_session_id(self.request),
        }

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """End the session: its tokens and cookie are refused from the next request, its websockets close."""
        login_session = login_sessions.login_session_get(user=request.user, session_id=pk)
        login_sessions.login_session_revoke(login_session=login_session, actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: serializers.SessionsRevokedSerializer})
    @action(detail=False, methods=["post"], url_path="revoke-all")
    def revoke_all(self, request):
        """End every session of the caller but the one this request came with."""
        revoked = login_sessions.login_sessions_revoke_all(user=request.user, actor=request.user, request=request)
        return Response(serializers.SessionsRevokedSerializer({"revoked": revoked}).data)
