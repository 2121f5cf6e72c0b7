"""The audit trail, for the admins and owners of a workspace.

    GET /api/v3/audit/events                          paginated, newest first
    GET /api/v3/audit/events/export?format=csv|json   every matching event, streamed

Filters: workspace, actor (user id or email, or apikey:<prefix>), actor_type, action (exact, or a
prefix such as `workflow.*`), target_type, target_id, since, until. Events of the workspaces where
the caller is an admin or owner; naming another workspace is a 404 for strangers, 403 for members.
"""

import csv
import json
import uuid
from collections.abc import AsyncIterator, Iterator

import django_filters
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.db.models import QuerySet
from django.http import Http404, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

from accounts.models import Workspace
from audit.api.serializers import COLUMNS, AuditEventSerializer, event_document
from audit.models import AuditEvent
from audit.selectors import audit_events_for_user
from core.filters import DateTimeFilter, FilterBackend

EXPORT_FORMATS = ("json", "csv")
EXPORT_FORMAT_INVALID = "Must be one of: json, csv."
# Rows per database round trip (a server-side cursor on PostgreSQL) and per chunk sent.
EXPORT_CHUNK_ROWS = 1000
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(method="filter_actor", help_text="A user id, an email or apikey:<prefix>.")
    actor_type = django_filters.ChoiceFilter(choices=AuditEvent.ActorType.choices)
    action = django_filters.CharFilter(method="filter_action", help_text='Exact, or a prefix: "workflow.*".')
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    since = DateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = DateTimeFilter(field_name="timestamp", lookup_expr="lte")

    class Meta:
        model = AuditEvent
        fields = ["actor", "actor_type", "action", "target_type", "target_id", "since", "until"]

    def filter_actor(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        try:
            return queryset.filter(actor_ref=str(uuid.UUID(value)))
        except ValueError:
            return queryset.filter(actor_label__iexact=value.strip())

    def filter_action(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value.endswith("*"):
            return queryset.filter(action__startswith=value[:-1])
        return queryset.filter(action=value)


class IgnoreFormatParameter(DefaultContentNegotiation):
    """`?format=` names the export's file format here, not a DRF renderer; errors stay JSON problems."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _Line:
    """csv.writer writes into this and gets the line back, so rows can be streamed."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value) -> str:
    text = "" if value is None else json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _rows(events: QuerySet) -> Iterator[dict]:
    return events.values(*COLUMNS).iterator(chunk_size=EXPORT_CHUNK_ROWS)


def _json_chunks(events: QuerySet) -> Iterator[str]:
    yield "["
    batch, first = [], True
    for row in _rows(events):
        batch.append(("" if first else ",") + json.dumps(event_document(row), ensure_ascii=False))
        first = False
        if len(batch) == EXPORT_CHUNK_ROWS:
            yield "".join(batch)
            batch = []
    yield "".join(batch) + "]"


def _csv_chunks(events: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Line())
    header = list(AuditEventSerializer().fields)
    yield writer.writerow(header)
    batch = []
    for row in _rows(events):
        document = event_document(row)
        batch.append(writer.writerow([_csv_cell(document[name]) for name in header]))
        if len(batch) == EXPORT_CHUNK_ROWS:
            yield "".join(batch)
            batch = []
    yield "".join(batch)


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django would read a synchronous iterator into a list before sending any of it. Pulled
    # chunk by chunk in the request's own sync thread (thread_sensitive), the cursor stays where it was opened.
    pull = sync_to_async(lambda: next(chunks, None))
    try:
        while (chunk := await pull()) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close)()


class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    filtered_actions = ("export",)  # documented filters (core.openapi.AutoSchema)
    # Filters only: the order is the chain's, and searching free text would scan the whole table.
    filter_backends = [FilterBackend]

    def _workspace(self) -> Workspace | None:
        value = self.request.query_params.get("workspace")
        if not value:
            return None
        try:
            return Workspace.objects.get(pk=value)
        except (Workspace.DoesNotExist, ValueError, ValidationError) as error:
            raise Http404("No such workspace.") from error

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        return audit_events_for_user(self.request.user, workspace=self._workspace())

    @extend_schema(parameters=[OpenApiParameter("workspace", uuid.UUID, description="Only this workspace's events.")])
    def list(self, request: Request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()).values(*COLUMNS))
        return self.get_paginated_response(AuditEventSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=EXPORT_FORMATS, description="json (default): an array; csv."),
            OpenApiParameter("workspace", uuid.UUID),
        ],
        responses={(200, "application/json"): AuditEventSerializer(many=True), (200, "text/csv"): str},
    )
    @action(detail=False, methods=["get"], content_negotiation_class=IgnoreFormatParameter, pagination_class=None)
    def export(self, request: Request):
        """Every matching event, oldest first, streamed as a file download."""
        file_format = request.query_params.get("format") or "json"
        if file_format not in EXPORT_FORMATS:
            raise ValidationError({"format": [EXPORT_FORMAT_INVALID]})
        events = self.filter_queryset(self.get_queryset()).order_by("id")
        chunks = _csv_chunks(events) if file_format == "csv" else _json_chunks(events)
        content = _async_chunks(chunks) if isinstance(request._request, ASGIRequest) else chunks
        content_type = "text/csv; charset=utf-8" if file_format == "csv" else "application/json"
        response = StreamingHttpResponse(content, content_type=content_type)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.{file_format}"'
        return response
