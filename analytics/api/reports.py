"""Saved custom reports: a named set of metrics, filters and a range, run on demand.

    GET/POST          /api/v3/analytics/reports                 list (members), create (editors and above)
    GET/PATCH/DELETE  /api/v3/analytics/reports/{id}            PATCH, DELETE: editors and above
    GET               /api/v3/analytics/reports/{id}/run?format=json|csv

Running a report reads the figures of its workspace (and workflow, if it names one) over its range:
JSON gives the overview's figures and each metric's points, CSV a row per bucket as the export does.
A report of a workspace the caller is not a member of does not exist (404); viewers get 403 on changes.
"""

import uuid

import django_filters
from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.access import Role, ensure_role, workspace_named_or_default
from analytics import selectors
from analytics.api.export import EXPORT_FORMATS, bucket_of, file_format_of, metrics_download
from analytics.api.views import FiguresSerializer, PointSerializer
from analytics.models import Report
from analytics.services import reports
from core.exports import IgnoreFormatParameter
from core.openapi import NOT_ONLY_SPACES

UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
METRICS_GONE = "No longer known: {names}. Known metrics: {metrics}."
BUCKET_TOO_FINE_FOR_RANGE = "Too fine for the range `{range}`: {reason}"


class ReportFiltersSerializer(serializers.Serializer):
    unknown_fields_refused = True

    workflow = serializers.UUIDField(required=False, allow_null=True, help_text="Only this workflow's runs.")


class ReportSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)
    metrics = serializers.ListField(child=serializers.CharField())
    filters = ReportFiltersSerializer()
    range = serializers.CharField(help_text="Empty for a fixed range (start and end).")
    bucket = serializers.CharField(allow_null=True, help_text="Null: the finest kept for the range.")

    class Meta:
        model = Report
        fields = [
            "id",
            "workspace",
            "name",
            "metrics",
            "filters",
            "range",
            "start",
            "end",
            "bucket",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["bucket"] = data["bucket"] or None
        return data


class ReportWriteSerializer(serializers.Serializer):
    """Documents the body of POST and PATCH and checks the names the read side knows (metrics, ranges,
    a bucket kept for a relative range); the service checks the rest."""

    unknown_fields_refused = True
    ignored_fields = reports.IGNORED_FIELDS

    name = serializers.CharField(max_length=reports.NAME_MAX_LENGTH, help_text="Unique in the workspace.")
    metrics = serializers.ListField(
        child=serializers.ChoiceField(choices=selectors.METRICS), min_length=1, max_length=reports.MAX_METRICS
    )
    filters = ReportFiltersSerializer(required=False)
    range = serializers.ChoiceField(
        choices=list(selectors.RANGES), required=False, help_text="Ending when the report runs; replaces start/end."
    )
    start = serializers.DateTimeField(required=False, help_text="A fixed range, with `end`; replaces `range`.")
    end = serializers.DateTimeField(required=False)
    bucket = serializers.ChoiceField(
        choices=selectors.Granularity.choices,
        required=False,
        allow_null=True,
        help_text="Null: the finest kept for the range, at most 2,000 points.",
    )
    workspace = serializers.UUIDField(required=False, help_text="POST only: a workspace of the caller's.")

    request_schema_rules = {
        "properties": {"name": {"pattern": NOT_ONLY_SPACES}, "metrics": {"uniqueItems": True}},
        # A new report's range: relative, or fixed with both ends.
        "dependentRequired": {"start": ["end"], "end": ["start"]},
        "not": {"anyOf": [{"required": ["range", "start"]}, {"required": ["range", "end"]}]},
    }

    def validate(self, attrs):
        # A relative range's bucket can be checked now: whether it is kept does not depend on the clock.
        range_name = attrs.get("range")
        if range_name is None and not {"start", "end"} & set(attrs) and self.instance is not None:
            range_name = self.instance.range or None
        kept_bucket = self.instance.bucket or None if self.instance is not None else None
        bucket = attrs.get("bucket", kept_bucket)
        if range_name and bucket:
            selectors.bucket_checked(bucket, selectors.range_of({"range": range_name}))
        return attrs


class ReportSeriesSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=selectors.METRICS)
    points = PointSerializer(many=True)


class ReportUpdateSerializer(ReportWriteSerializer):
    """A PATCH's body: which ends a fixed range needs depends on the report's own (naming `range`
    still excludes `start` and `end`)."""

    request_schema_rules = {
        "properties": ReportWriteSerializer.request_schema_rules["properties"],
        "not": ReportWriteSerializer.request_schema_rules["not"],
    }


class ReportRunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bucket = serializers.ChoiceField(choices=selectors.BUCKETS)
    summary = FiguresSerializer(help_text="The overview's figures over the whole range.")
    series = ReportSeriesSerializer(many=True, help_text="Each metric per bucket, in the report's order.")


class ReportFilter(django_filters.FilterSet):
    workspace = django_filters.UUIDFilter(field_name="workspace_id")

    class Meta:
        model = Report
        fields = ["workspace"]


def _question(request: Request, report: Report):
    """What running the report reads: its rows, range and bucket, checked as the export's parameters are."""
    unknown = [name for name in report.metrics if name not in selectors.METRICS]
    if unknown:
        metrics = ", ".join(selectors.METRICS)
        raise ValidationError({"metrics": [METRICS_GONE.format(names=", ".join(unknown), metrics=metrics)]})
    if report.range:
        span = selectors.range_of({"range": report.range})
    else:
        span = selectors.range_of({"from": report.start.isoformat(), "to": report.end.isoformat()})
    bucket = bucket_of(report.bucket or None, span, start_field="start")
    workflow = report.filters.get("workflow")
    scope = selectors.scope_for_user(
        request.user, workspace=report.workspace_id, workflow=uuid.UUID(workflow) if workflow else None
    )
    return scope, span, bucket


class ReportViewSet(viewsets.GenericViewSet):
    serializer_class = ReportSerializer
    filterset_class = ReportFilter
    search_fields = ["name"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name"]
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Report.objects.none()
        return selectors.reports_for_user(self.request.user)

    def _get(self) -> Report:
        return selectors.report_get(self.request.user, self.kwargs["pk"])

    def list(self, request: Request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ReportSerializer(page, many=True).data)

    @extend_schema(request=ReportWriteSerializer, responses={201: ReportSerializer})
    def create(self, request: Request):
        data = request.data
        workspace = workspace_named_or_default(request.user, data.get("workspace") if isinstance(data, dict) else None)
        # The service checks the role too; asked first here, a viewer's bad body is a 403, not a 400.
        ensure_role(request.user, workspace, Role.EDITOR)
        ReportWriteSerializer(data=data).is_valid(raise_exception=True)
        report = reports.report_create(actor=request.user, workspace=workspace, data=data, request=request)
        return Response(ReportSerializer(report).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk=None):
        return Response(ReportSerializer(self._get()).data)

    @extend_schema(request=ReportUpdateSerializer(partial=True))
    def partial_update(self, request: Request, pk=None):
        report = self._get()
        ensure_role(request.user, report.workspace, Role.EDITOR)
        ReportUpdateSerializer(report, data=request.data, partial=True).is_valid(raise_exception=True)
        report = reports.report_update(report=report, actor=request.user, data=request.data, request=request)
        return Response(ReportSerializer(report).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk=None):
        reports.report_delete(report=self._get(), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=EXPORT_FORMATS, description="json (default) or csv (as the export)."),
        ],
        responses={
            (200, "application/json"): ReportRunSerializer,
            (200, "text/csv"): OpenApiResponse(str, description="A row per bucket: t and each metric."),
        },
    )
    @action(detail=True, methods=["get"], content_negotiation_class=IgnoreFormatParameter, pagination_class=None)
    def run(self, request: Request, pk=None):
        """Run the report now: the overview's figures and each metric per bucket over its range."""
        report = self._get()
        file_format = file_format_of(request.query_params)
        scope, span, bucket = _question(request, report)
        if file_format == "csv":
            return metrics_download(request, scope=scope, span=span, metrics=report.metrics, bucket=bucket)
        series = [
            {"metric": metric, "points": selectors.timeseries(scope, span, metric=metric, bucket=bucket)["points"]}
            for metric in report.metrics
        ]
        data = {
            "id": report.pk,
            "name": report.name,
            "start": span.start,
            "end": span.end,
            "bucket": bucket,
            "summary": selectors.overview(scope, span),
            "series": series,
        }
        return Response(ReportRunSerializer(data).data)
