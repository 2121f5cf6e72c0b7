from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import services
from accounts.access import Role, ensure_role, workspaces_for_user
from accounts.api import serializers
from accounts.models import Membership, User, Workspace


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=serializers.RegisterSerializer, responses={201: serializers.UserSerializer})
    def post(self, request):
        data = serializers.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
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
            RefreshToken(data.validated_data["refresh"]).blacklist()
        except TokenError as error:
            raise InvalidToken(str(error)) from error
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    @extend_schema(responses=serializers.MeSerializer)
    def get(self, request):
        user = User.objects.prefetch_related(
            Prefetch("memberships", queryset=Membership.objects.select_related("workspace"))
        ).get(pk=request.user.pk)
        return Response(serializers.MeSerializer(user).data)


class PasswordChangeView(APIView):
    @extend_schema(request=serializers.PasswordChangeSerializer, responses={204: None})
    def post(self, request):
        data = serializers.PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_change_password(user=request.user, **data.validated_data)
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
            workspaces_for_user(self.request.user)
            .annotate(role=Subquery(role), member_count=Count("memberships"))
            .order_by("name")
        )

    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = services.workspace_create(actor=request.user, name=data.validated_data["name"])
        return Response(self.get_serializer(self.get_queryset().get(pk=workspace.pk)).data, status=201)

    def partial_update(self, request, *args, **kwargs):
        workspace = self.get_object()
        data = self.get_serializer(workspace, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.workspace_update(
            workspace=workspace, actor=request.user, name=data.validated_data.get("name", workspace.name)
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=workspace.pk)).data)

    def destroy(self, request, *args, **kwargs):
        services.workspace_delete(workspace=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Members of one workspace: every member reads; owners and admins manage."""

    serializer_class = serializers.MembershipSerializer
    lookup_field = "user_id"
    filter_backends: list = []

    def workspace(self, minimum: str = Role.VIEWER) -> Workspace:
        workspace = get_object_or_404(Workspace, pk=self.kwargs["workspace_pk"])
        ensure_role(self.request.user, workspace, minimum)
        return workspace

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return Membership.objects.filter(workspace=self.workspace()).select_related("user", "workspace")

    @extend_schema(request=serializers.MembershipCreateSerializer, responses={201: serializers.MembershipSerializer})
    def create(self, request, *args, **kwargs):
        workspace = self.workspace(Role.ADMIN)  # who, before what: a viewer's request is a 403 whatever its body
        data = serializers.MembershipCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(workspace=workspace, actor=request.user, **data.validated_data)
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=serializers.MembershipUpdateSerializer, responses=serializers.MembershipSerializer)
    def partial_update(self, request, *args, **kwargs):
        self.workspace(Role.ADMIN)
        membership = self.get_object()
        data = serializers.MembershipUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=membership, actor=request.user, role=data.validated_data["role"]
        )
        return Response(self.get_serializer(membership).data)

    def destroy(self, request, *args, **kwargs):
        services.membership_remove(membership=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
