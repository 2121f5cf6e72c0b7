"""Analytics from the rollups, confined to the caller's workspaces.

    GET /api/v3/analytics/overview?range=24h|…&from=&to=&workspace=&workflow=   (ends at `to`, default now)
    GET /api/v3/analytics/timeseries?metric=&bucket=minute|hour|day&range=…&workspace=&workflow=
    GET /api/v3/analytics/nodes?range=…&workspace=&workflow=      per node key, slowest first

A bad parameter is a 400 naming it. A workspace or workflow of someone else's gives empty figures, as
one without runs does (their existence is not disclosed).
"""

import uuid

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.models import Rollup, StepRollup

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


class OverviewSerializer(FiguresSerializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    granularity = serializers.ChoiceField(choices=selectors.Granularity.choices, help_text="Of the rollups read.")


class PointSerializer(serializers.Serializer):
    t = serializers.DateTimeField()
    value = serializers.FloatField(allow_null=True)


class TimeseriesSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=selectors.METRICS)
    bucket = serializers.ChoiceField(choices=selectors.Granularity.choices)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    points = PointSerializer(many=True)


class NodeFiguresSerializer(serializers.Serializer):
    node_key = serializers.CharField()
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


def rollup_rows(request, model=Rollup):
    """The rollup rows of the caller's workspaces, narrowed by the `workspace` and `workflow` parameters."""
    ids = {}
    for name in ("workspace", "workflow"):
        if request.query_params.get(name):
            try:
                ids[name] = uuid.UUID(request.query_params[name])
            except ValueError as error:
                raise ValidationError({name: [ID_INVALID]}) from error
    return selectors.rollups_for_user(request.user, model=model, **ids)


class OverviewView(APIView):
    """Runs by outcome, success rate, duration and queue-wait percentiles, tokens and cost over a range."""

    @extend_schema(parameters=RANGE_PARAMETERS, responses={200: OverviewSerializer})
    def get(self, request):
        span = selectors.range_of(request.query_params)
        rows = rollup_rows(request)
        return Response(
            OverviewSerializer({"start": span.start, "end": span.end, **selectors.overview(rows, span)}).data
        )


class TimeseriesView(APIView):
    """One metric per bucket of time over a range (empty buckets included)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, enum=list(selectors.METRICS), description="Default runs."),
            OpenApiParameter(
                "bucket",
                str,
                enum=selectors.Granularity.values,
                description="Default: the finest kept for the range, at most 2,000 points.",
            ),
            *RANGE_PARAMETERS,
        ],
        responses={200: TimeseriesSerializer},
    )
    def get(self, request):
        span = selectors.range_of(request.query_params)
        metric = request.query_params.get("metric", "runs")
        if metric not in selectors.METRICS:
            raise ValidationError({"metric": [selectors.METRIC_INVALID]})
        bucket = selectors.bucket_checked(request.query_params.get("bucket"), span)
        rows = rollup_rows(request)
        points = selectors.timeseries(rows, span, metric=metric, bucket=bucket)
        data = {"metric": metric, "bucket": bucket, "start": span.start, "end": span.end, "points": points}
        return Response(TimeseriesSerializer(data).data)


class NodesView(APIView):
    """Per node (by key) over a range: outcomes, failure rate, retries, crash recoveries, duration
    percentiles, tokens and cost; slowest (p95) first. Narrow it to one workflow with `workflow`."""

    @extend_schema(parameters=RANGE_PARAMETERS, responses={200: NodesSerializer})
    def get(self, request):
        span = selectors.range_of(request.query_params)
        rows = rollup_rows(request, model=StepRollup)
        data = {"start": span.start, "end": span.end, "nodes": selectors.nodes(rows, span)}
        return Response(NodesSerializer(data).data)
