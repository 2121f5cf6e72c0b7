"""Workspace credentials: their names, kinds and which keys their values set — never the values.

    GET/POST          /api/v3/credentials        list (filters kind, workspace, search), create
    GET/PATCH/DELETE  /api/v3/credentials/{id}   metadata, rename, replace the value, set its expiry, delete

Every member reads (an editor picks a name for a node's config); admins and owners write. A credential
of a workspace the caller is not a member of does not exist (404).
"""

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response

from accounts.access import workspace_named_or_default
from core.openapi import NOT_ONLY_SPACES
from workflows.api.request_bodies import WorkspaceOrDefaultField
from workflows.credentials import (
    OPTIONAL_KEYS,
    URL_KEYS,
    VALUE_KEYS,
    credential_fields,
    credential_get,
    credentials_for_user,
)
from workflows.models import Credential
from workflows.services.credentials import (
    IGNORED_FIELDS,
    NAME_MAX_LENGTH,
    credential_create,
    credential_delete,
    credential_update,
)


class CredentialSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)
    # get_fields is Serializer's own method, hence another method name.
    fields = serializers.SerializerMethodField(
        method_name="get_value_keys",
        help_text='The keys the value sets, e.g. ["api_key", "base_url"]; null when no configured key decrypts it.',
    )

    class Meta:
        model = Credential
        fields = ["id", "workspace", "name", "kind", "fields", "expires_at", "created_by", "created_at", "updated_at"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_value_keys(self, credential: Credential) -> list[str] | None:
        return credential_fields(credential)


# A URL a provider client is pointed at: http(s), a host, no user name or password, no whitespace.
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_NOT_A_SPACE = NOT_ONLY_SPACES[3:-1]  # one character that is not Python's whitespace
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(?::{_PORT})?(?:[/?#]{_NOT_A_SPACE}*)?$"


def _value_schema(kind: str) -> dict:
    keys = VALUE_KEYS[kind] | OPTIONAL_KEYS.get(kind, set())
    return {
        "type": "object",
        "required": sorted(VALUE_KEYS[kind]),
        "additionalProperties": False,
        "properties": {
            key: {"type": "string", "pattern": URL_PATTERN} if key in URL_KEYS else {"type": "string"}
            for key in sorted(keys)
        },
    }


class CredentialWriteSerializer(serializers.Serializer):
    """Documents the body of POST and PATCH; the service validates it."""

    # The service answers "Unknown field." for others (core.openapi).
    unknown_fields_refused = True
    ignored_fields = IGNORED_FIELDS
    ignored_when_partial = ("workspace",)

    name = serializers.CharField(max_length=NAME_MAX_LENGTH, help_text="Unique in the workspace; node configs use it.")
    kind = serializers.ChoiceField(choices=Credential.Kind.choices)
    value = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        write_only=True,
        help_text='The secret, an object of strings whose keys depend on the kind, e.g. {"token": "…"} for '
        "http_bearer. Write-only; a PATCH replaces the whole value.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When the secret stops working (null: never). A credential.expiring notification event is "
        "raised DWC_CREDENTIAL_EXPIRY_WARNING_DAYS before, and once it has passed.",
    )
    workspace = WorkspaceOrDefaultField(required=False, help_text="POST only: a workspace of the caller's.")

    # A name is not only spaces; the keys of a value depend on the kind (VALUE_KEYS). Without
    # a kind, a PATCH's value follows the credential's current kind.
    request_schema_rules = {
        "properties": {"name": {"pattern": NOT_ONLY_SPACES}},
        "allOf": [
            {
                "if": {"required": ["kind"], "properties": {"kind": {"const": kind}}},
                "then": {"properties": {"value": _value_schema(kind)}},
            }
            for kind in VALUE_KEYS
        ],
    }


class CredentialDeleteSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False)


class CredentialFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Credential.Kind.choices)
    workspace = django_filters.UUIDFilter(field_name="workspace_id")

    class Meta:
        model = Credential
        fields = ["kind", "workspace"]


class CredentialViewSet(viewsets.GenericViewSet):
    serializer_class = CredentialSerializer
    filterset_class = CredentialFilter
    search_fields = ["name"]
    ordering_fields = ["name", "kind", "created_at", "updated_at"]
    ordering = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Credential.objects.none()
        return credentials_for_user(self.request.user)

    def _get(self) -> Credential:
        return credential_get(self.request.user, self.kwargs["pk"])

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(CredentialSerializer(page, many=True).data)

    @extend_schema(request=CredentialWriteSerializer, responses={201: CredentialSerializer})
    def create(self, request):
        data = request.data
        workspace = workspace_named_or_default(request.user, data.get("workspace") if isinstance(data, dict) else None)
        credential = credential_create(actor=request.user, workspace=workspace, data=data, request=request)
        return Response(CredentialSerializer(credential).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(CredentialSerializer(self._get()).data)

    @extend_schema(request=CredentialWriteSerializer(partial=True))
    def partial_update(self, request, pk=None):
        credential = credential_update(credential=self._get(), actor=request.user, data=request.data, request=request)
        return Response(CredentialSerializer(credential).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "force", bool, description="Delete although workflows name it (their runs then fail there)."
            )
        ],
        responses={204: None},
    )
    def destroy(self, request, pk=None):
        credential = self._get()
        query = CredentialDeleteSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        credential_delete(
            credential=credential, actor=request.user, force=query.validated_data["force"], request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
