"""The audit trail, for the admins and owners of a workspace.

    GET /api/v3/audit/events                          paginated, newest first
    GET /api/v3/audit/events/export?format=csv|json   every matching event, streamed

Filters: workspace, actor (user id or email, or apikey:<prefix>), actor_type, action (exact, or a
prefix such as `workflow.*`), target_type, target_id, since, until. Events of the workspaces where
the caller is an admin or owner; naming another workspace is a 404 for strangers, 403 for members.
"""

import uuid
from collections.abc import Iterator

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request

from accounts.models import Workspace
from audit.api.serializers import COLUMNS, AuditEventSerializer, event_document
from audit.models import AuditEvent
from audit.selectors import audit_events_for_user
from core.exports import IgnoreFormatParameter, attachment, csv_cell, csv_writer, json_array_chunks
from core.filters import DateTimeFilter, FilterBackend

EXPORT_FORMATS = ("json", "csv")
EXPORT_FORMAT_INVALID = "Must be one of: json, csv."
# Rows per database round trip (a server-side cursor on PostgreSQL) and per chunk sent.
EXPORT_CHUNK_ROWS = 1000


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


def _rows(events: QuerySet) -> Iterator[dict]:
    return events.values(*COLUMNS).iterator(chunk_size=EXPORT_CHUNK_ROWS)


def _json_chunks(events: QuerySet) -> Iterator[str]:
    return json_array_chunks((event_document(row) for row in _rows(events)), batch=EXPORT_CHUNK_ROWS)


def _csv_chunks(events: QuerySet) -> Iterator[str]:
    writer = csv_writer()
    header = list(AuditEventSerializer().fields)
    yield writer.writerow(header)
    batch = []
    for row in _rows(events):
        document = event_document(row)
        batch.append(writer.writerow([csv_cell(document[name]) for name in header]))
        if len(batch) == EXPORT_CHUNK_ROWS:
            yield "".join(batch)
            batch = []
    yield "".join(batch)


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
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        return attachment(request, chunks, file_format=file_format, filename=f"audit-events-{stamp}.{file_format}")
