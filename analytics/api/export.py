"""Analytics as a file, streamed, confined to the caller's workspaces:

    GET /api/v3/analytics/export?format=csv|json&metric=runs,failed,…&bucket=&range=&from=&to=&workspace=&workflow=
    GET /api/v3/analytics/export?what=nodes&format=csv|json&range=…      the per-node table

Metrics: one row per bucket of the range (`t` and one column per metric, empty buckets included).
JSON is an array of objects, CSV a header line and a line per row. A bad parameter is a 400 naming it,
before anything is sent.
"""

from collections.abc import Iterator

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics import selectors
from analytics.api.views import RANGE_PARAMETERS, NodeFiguresSerializer, scope_of
from core.exports import IgnoreFormatParameter, attachment, csv_cell, csv_writer, json_array_chunks

EXPORT_FORMATS = ("json", "csv")
EXPORTS = ("metrics", "nodes")
FORMAT_INVALID = f"One of: {', '.join(EXPORT_FORMATS)}."
WHAT_INVALID = f"One of: {', '.join(EXPORTS)}."
METRICS_INVALID = "One or more distinct metrics, comma-separated, of: {metrics}."
RANGE_TOO_LONG = f"At most {selectors.MAX_POINTS} buckets: a range of at most {selectors.MAX_POINTS} weeks."
NODE_COLUMNS = tuple(NodeFiguresSerializer().fields)
# Node columns holding text a member chose (a node's key), which a spreadsheet could run as a formula.
NODE_TEXT_COLUMNS = ("node_key", "node_type")

_moment = serializers.DateTimeField()


def file_format_of(params) -> str:
    file_format = params.get("format") or "json"
    if file_format not in EXPORT_FORMATS:
        raise ValidationError({"format": [FORMAT_INVALID]})
    return file_format


def metrics_of(value: str | None) -> list[str]:
    """The metrics a comma-separated `metric` parameter names (default runs), each known once."""
    names = [name.strip() for name in (value or "runs").split(",")]
    if len(set(names)) != len(names) or not set(names) <= set(selectors.METRICS):
        raise ValidationError({"metric": [METRICS_INVALID.format(metrics=", ".join(selectors.METRICS))]})
    return names


def bucket_of(bucket: str | None, span: selectors.Range, *, start_field: str) -> str:
    """The bucket (given, or the finest kept that fits), refusing a range too long for day buckets: the
    default bucket stops at days, and every bucket of the range is read into memory and sent."""
    bucket = selectors.bucket_checked(bucket, span)
    if (span.end - span.start) / selectors.bucket_span(bucket) > selectors.MAX_POINTS:
        raise ValidationError({start_field: [RANGE_TOO_LONG]})
    return bucket


def series_rows(series: dict[str, list[dict]]) -> list[dict]:
    """{metric: points} (each metric's timeseries, the same buckets) → a row per bucket: {t, metric: value…}."""
    metrics = list(series)
    if not metrics:
        return []
    return [
        {"t": _moment.to_representation(point["t"]), **{metric: series[metric][i]["value"] for metric in metrics}}
        for i, point in enumerate(series[metrics[0]])
    ]


def csv_chunks(columns: list[str], rows: list[dict], text_columns: tuple[str, ...] = ()) -> Iterator[str]:
    """A header line, then a line per row; numbers as they are, empty for none."""
    writer = csv_writer()
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow(
            [
                csv_cell(row[name]) if name in text_columns else "" if row[name] is None else row[name]
                for name in columns
            ]
        )


def filename(prefix: str, span: selectors.Range, file_format: str) -> str:
    return f"{prefix}-{span.start:%Y%m%dT%H%MZ}-{span.end:%Y%m%dT%H%MZ}.{file_format}"


def metrics_download(
    request: Request, *, scope: selectors.Scope, span: selectors.Range, metrics: list[str], bucket: str
):
    """The metrics of `scope` per bucket over `span`, as a streamed csv or json download. Read before the
    first byte is sent (at most MAX_POINTS buckets a metric), so that a failure is an error answer."""
    file_format = file_format_of(request.query_params)
    series = {metric: selectors.timeseries(scope, span, metric=metric, bucket=bucket)["points"] for metric in metrics}
    table = series_rows(series)
    chunks = csv_chunks(["t", *metrics], table) if file_format == "csv" else json_array_chunks(table)
    return attachment(request, chunks, file_format=file_format, filename=filename("analytics", span, file_format))


class ExportView(APIView):
    """The chosen metrics per bucket (or, with what=nodes, the per-node table) as a CSV or JSON download."""

    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=EXPORT_FORMATS, description="json (default): an array; csv."),
            OpenApiParameter("what", str, enum=EXPORTS, description="metrics (default) or nodes."),
            OpenApiParameter(
                "metric",
                str,
                description=f"Comma-separated, each once (default runs): {', '.join(selectors.METRICS)}.",
            ),
            OpenApiParameter(
                "bucket",
                str,
                enum=list(selectors.BUCKETS),
                description="Default: the finest kept for the range, at most 2,000 points.",
            ),
            *RANGE_PARAMETERS,
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                {"type": "array", "items": {"type": "object"}},
                description="An array: per bucket `t` and each metric's value (or per node its figures).",
            ),
            (200, "text/csv"): str,
        },
    )
    def get(self, request: Request):
        params = request.query_params
        what = params.get("what") or "metrics"
        if what not in EXPORTS:
            raise ValidationError({"what": [WHAT_INVALID]})
        file_format = file_format_of(params)
        span = selectors.range_of(params)
        if what == "nodes":
            table = selectors.nodes(scope_of(request), span)
            chunks = (
                csv_chunks(list(NODE_COLUMNS), table, NODE_TEXT_COLUMNS)
                if file_format == "csv"
                else json_array_chunks(table)
            )
            return attachment(request, chunks, file_format=file_format, filename=filename("nodes", span, file_format))
        metrics = metrics_of(params.get("metric"))
        bucket = bucket_of(params.get("bucket"), span, start_field="from")
        return metrics_download(request, scope=scope_of(request), span=span, metrics=metrics, bucket=bucket)
