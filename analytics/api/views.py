"""Analytics from the rollups, confined to the caller's workspaces.

    GET /api/v3/analytics/overview?range=24h|…&from=&to=&workspace=&workflow=   (ends at `to`, default now)
    GET /api/v3/analytics/timeseries?metric=&bucket=minute|hour|day|week&tz=&group_by=&range=…&workspace=&workflow=
    GET /api/v3/analytics/nodes?range=…&workspace=&workflow=      per node key, slowest first
    GET /api/v3/analytics/breakdown?kind=errors|models|…&range=…  a tally's labels, largest first

(`GET /api/v3/analytics/workflows/{id}`, one workflow's overview, nodes and top errors, is served by
workflows.api.analytics: it answers 404 for a workflow the caller cannot see, which only the
workflows app knows.)

A bad parameter is a 400 naming it. A workspace or workflow of someone else's gives empty figures, as
one without runs does (their existence is not disclosed).
"""

import uuid

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors

ID_INVALID = "An id (a UUID)."

RANGE_PARAMETERS = [
    OpenApiParameter("range", str, enum=list(selectors.RANGES), description="How long, ending at `to` (default 24h)."),
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="The start, instead of `to` less `range`."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="The end (default now)."),
    OpenApiParameter("workspace", OpenApiTypes.UUID, description="One of the caller's workspaces (default: all)."),
    OpenApiParameter("workflow", OpenApiTypes.UUID, description="One workflow."),
]


class FiguresSerializer(serializers.Serializer):
    runs = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    timed_out = serializers.IntegerField(help_text="Also counted in failed.")
    success_rate = serializers.FloatField(allow_null=True, help_text="succeeded / (succeeded + failed).")
    duration_mean = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    duration_p50 = serializers.FloatField(allow_null=True, help_text="Milliseconds, within 2 %.")
    duration_p95 = serializers.FloatField(allow_null=True)
    duration_p99 = serializers.FloatField(allow_null=True)
    duration_max = serializers.FloatField(allow_null=True)
    queue_wait_p50 = serializers.FloatField(allow_null=True, help_text="Created to started, milliseconds.")
    queue_wait_p95 = serializers.FloatField(allow_null=True)
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost = serializers.FloatField()
    throughput = serializers.FloatField(allow_null=True, help_text="Runs finished per minute.")
    concurrency = serializers.FloatField(help_text="Mean runs in flight (of the runs finished).")
    retries = serializers.IntegerField(help_text="Step attempts beyond the first.")
    crash_recoveries = serializers.IntegerField(help_text="Step attempts whose worker was lost.")
    by_trigger = serializers.DictField(child=serializers.IntegerField(), help_text="Runs started, by trigger.")


class OverviewSerializer(FiguresSerializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    granularity = serializers.ChoiceField(choices=selectors.Granularity.choices, help_text="Of the rollups read.")
    percentiles = serializers.ChoiceField(
        choices=["exact", "histogram"],
        help_text="exact: percentile_cont over the runs (a range of a day or less); histogram: within 2 %.",
    )


class PointSerializer(serializers.Serializer):
    t = serializers.DateTimeField()
    value = serializers.FloatField(allow_null=True)


class SeriesSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The group: a workflow id, a status, a trigger, a model… or other.")
    points = PointSerializer(many=True)


class TimeseriesSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=selectors.METRICS)
    bucket = serializers.ChoiceField(choices=selectors.BUCKETS)
    tz = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    approximate = serializers.BooleanField(
        help_text="Days of another zone than UTC beyond the hours kept: made of UTC days."
    )
    points = PointSerializer(many=True)
    series = SeriesSerializer(many=True, required=False, help_text="With group_by: the largest groups, then other.")


class NodeFiguresSerializer(serializers.Serializer):
    node_key = serializers.CharField(help_text="Empty per node type.")
    node_type = serializers.CharField()
    steps = serializers.IntegerField(help_text="Finished steps: succeeded + failed.")
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    failure_rate = serializers.FloatField(allow_null=True)
    retries = serializers.IntegerField(help_text="Attempts beyond the first.")
    crashes = serializers.IntegerField(help_text="Attempts whose worker was lost.")
    duration_mean = serializers.FloatField(allow_null=True, help_text="Milliseconds.")
    duration_p50 = serializers.FloatField(allow_null=True, help_text="Milliseconds, within 2 %.")
    duration_p95 = serializers.FloatField(allow_null=True)
    duration_p99 = serializers.FloatField(allow_null=True)
    duration_max = serializers.FloatField(allow_null=True)
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost = serializers.FloatField()


class NodesSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    nodes = NodeFiguresSerializer(many=True)


class BreakdownRowSerializer(serializers.Serializer):
    label = serializers.CharField()
    count = serializers.IntegerField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost = serializers.FloatField()


class BreakdownSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(selectors.BREAKDOWNS))
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = BreakdownRowSerializer(many=True)


class WorkflowFiguresSerializer(serializers.Serializer):
    workflow = serializers.UUIDField()
    overview = OverviewSerializer()
    nodes = NodeFiguresSerializer(many=True)
    errors = BreakdownRowSerializer(many=True, help_text="Failures by message cluster, most first.")


def id_param(request, name: str) -> uuid.UUID | None:
    """The UUID query parameter `name` (None when absent); ValidationError naming it."""
    if not request.query_params.get(name):
        return None
    try:
        return uuid.UUID(request.query_params[name])
    except ValueError as error:
        raise ValidationError({name: [ID_INVALID]}) from error


def scope_of(request, workflow: uuid.UUID | None = None) -> selectors.Scope:
    """The caller's workspaces, narrowed by the `workspace` and `workflow` parameters."""
    return selectors.scope_for_user(
        request.user, workspace=id_param(request, "workspace"), workflow=workflow or id_param(request, "workflow")
    )


def _overview(span: selectors.Range, scope: selectors.Scope) -> dict:
    return {"start": span.start, "end": span.end, **selectors.overview(scope, span)}


def workflow_figures(span: selectors.Range, scope: selectors.Scope) -> dict:
    """One workflow's overview, nodes (slowest first) and top errors (WorkflowFiguresSerializer)."""
    return {
        "workflow": scope.workflow,
        "overview": _overview(span, scope),
        "nodes": selectors.nodes(scope, span),
        "errors": selectors.breakdown(scope, span, kind="errors", limit=10),
    }


class OverviewView(APIView):
    """Runs by outcome and trigger, success rate, duration and queue-wait percentiles, throughput,
    concurrency, retries, tokens and cost over a range."""

    @extend_schema(parameters=RANGE_PARAMETERS, responses={200: OverviewSerializer})
    def get(self, request):
        span = selectors.range_of(request.query_params)
        return Response(OverviewSerializer(_overview(span, scope_of(request))).data)


class TimeseriesView(APIView):
    """One metric per bucket of time over a range (empty buckets included), split by a group if asked."""

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, enum=list(selectors.METRICS), description="Default runs."),
            OpenApiParameter(
                "bucket",
                str,
                enum=list(selectors.BUCKETS),
                description="Default: the finest kept for the range, at most 2,000 points.",
            ),
            OpenApiParameter("tz", str, description="The zone whose midnights start day and week buckets (IANA)."),
            OpenApiParameter(
                "group_by", str, enum=list(selectors.GROUPS), description="Split into series (metrics allowed vary)."
            ),
            *RANGE_PARAMETERS,
        ],
        responses={200: TimeseriesSerializer},
    )
    def get(self, request):
        params = request.query_params
        span = selectors.range_of(params)
        metric = params.get("metric", "runs")
        if metric not in selectors.METRICS:
            raise ValidationError({"metric": [selectors.METRIC_INVALID]})
        bucket = selectors.bucket_checked(params.get("bucket"), span)
        zone = selectors.timezone_of(params.get("tz"))
        series = selectors.timeseries(
            scope_of(request), span, metric=metric, bucket=bucket, tz=zone, group_by=params.get("group_by") or None
        )
        data = {"metric": metric, "bucket": bucket, "tz": str(zone), "start": span.start, "end": span.end, **series}
        with timezone.override(zone):  # the times in the caller's zone
            return Response(TimeseriesSerializer(data).data)


class NodesView(APIView):
    """Per node (by key, or per node type with by=type) over a range: outcomes, failure rate, retries,
    crash recoveries, duration percentiles, tokens and cost; slowest (p95) first. Narrow it to one
    workflow with `workflow`."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "by", str, enum=list(selectors.NODE_GROUPS), description="Per node key (default) or per node type."
            ),
            *RANGE_PARAMETERS,
        ],
        responses={200: NodesSerializer},
    )
    def get(self, request):
        span = selectors.range_of(request.query_params)
        by = request.query_params.get("by") or "key"
        data = {"start": span.start, "end": span.end, "nodes": selectors.nodes(scope_of(request), span, by=by)}
        return Response(NodesSerializer(data).data)


class BreakdownView(APIView):
    """A tally's labels over a range, largest first: runs by trigger, errors by type or by message
    cluster, documents, tokens and cost by model, retries by host, webhook rejections by reason,
    failed notifications by channel, logins by method."""

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=list(selectors.BREAKDOWNS), description="Default errors."),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 100},
                description="At most this many rows (default 20).",
            ),
            *RANGE_PARAMETERS,
        ],
        responses={200: BreakdownSerializer},
    )
    def get(self, request):
        span = selectors.range_of(request.query_params)
        kind = request.query_params.get("kind") or "errors"
        limit = request.query_params.get("limit") or "20"
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise ValidationError({"limit": ["A whole number from 1 to 100."]})
        rows = selectors.breakdown(scope_of(request), span, kind=kind, limit=int(limit))
        return Response(BreakdownSerializer({"kind": kind, "start": span.start, "end": span.end, "rows": rows}).data)
