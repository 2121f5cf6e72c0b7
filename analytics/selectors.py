"""Questions answered from the rollups, confined to the workspaces the caller is a member of.

A range is read at the finest granularity kept for it: minutes for a range within the last day, hours
within 90 days, days beyond; its ends are rounded out to whole buckets of that granularity.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.access import Role, ensure_role, workspaces_with_role
from accounts.models import User
from analytics.histograms import merged, percentile
from analytics.models import Report, Rollup, StepRollup
from analytics.services.recording import bucket_start

Granularity = Rollup.Granularity
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
}
BUCKET_SPANS = {
    Granularity.MINUTE: timedelta(minutes=1),
    Granularity.HOUR: timedelta(hours=1),
    Granularity.DAY: timedelta(days=1),
}
NODE_COUNTERS = ("succeeded", "failed", "retries", "crashes", "tokens_in", "tokens_out")
# At most this many points in a timeseries: minute buckets over a year would be half a million.
MAX_POINTS = 2000
METRICS = (
    "runs",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
    "success_rate",
    "duration_p50",
    "duration_p95",
    "duration_p99",
    "duration_mean",
    "queue_wait_p50",
    "queue_wait_p95",
    "tokens_in",
    "tokens_out",
    "cost",
)


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime


def granularity_for(span: Range, now: datetime | None = None) -> str:
    """The finest granularity the rollups keep for the whole of `span`."""
    # A minute's slack: "the last 24 hours" was measured a moment before this.
    now = (now or timezone.now()) - timedelta(minutes=1)
    if span.start >= now - timedelta(days=settings.DWC_ANALYTICS_MINUTE_ROLLUP_DAYS):
        return Granularity.MINUTE
    if span.start >= now - timedelta(days=settings.DWC_ANALYTICS_HOUR_ROLLUP_DAYS):
        return Granularity.HOUR
    return Granularity.DAY


def rollups_for_user(user: User, *, workspace=None, workflow=None, model=Rollup) -> QuerySet:
    """The rollup rows (of runs, or with model=StepRollup of steps) of the caller's workspaces."""
    rows = model.objects.filter(workspace_id__in=workspaces_with_role(user, Role.VIEWER).values("pk"))
    if workspace is not None:
        rows = rows.filter(workspace_id=workspace)
    if workflow is not None:
        rows = rows.filter(workflow_id=workflow)
    return rows


NO_SUCH_REPORT = "No such report."


def reports_for_user(user: User) -> QuerySet[Report]:
    """Saved reports of the workspaces where `user` is a member (viewers list and run them)."""
    return Report.objects.filter(workspace__in=workspaces_with_role(user, Role.VIEWER)).select_related("created_by")


def report_get(user: User, report_id: Any) -> Report:
    """The report if `user` is a member of its workspace; Http404 alike for strangers and unknown ids."""
    try:
        report = Report.objects.select_related("workspace", "created_by").filter(pk=report_id).first()
    except (ValueError, ValidationError):
        report = None
    if report is None:
        raise Http404(NO_SUCH_REPORT)
    ensure_role(user, report.workspace, Role.VIEWER, not_found=NO_SUCH_REPORT)
    return report


def _in_range(rows: QuerySet, span: Range, granularity: str) -> QuerySet:
    return rows.filter(granularity=granularity, bucket__gte=bucket_start(span.start, granularity), bucket__lt=span.end)


def _summary(rows) -> dict:
    """The figures of a set of rollup rows."""
    counts = {name: 0 for name in ("succeeded", "failed", "cancelled", "timed_out", "tokens_in", "tokens_out")}
    cost = duration_sum = duration_max = 0.0
    durations, waits = [], []
    for row in rows:
        for name in counts:
            counts[name] += getattr(row, name)
        cost += row.cost
        duration_sum += row.duration_ms_sum
        duration_max = max(duration_max, row.duration_ms_max)
        durations.append(row.duration_histogram)
        waits.append(row.queue_wait_histogram)
    runs = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    duration, wait = merged(*durations), merged(*waits)
    return {
        "runs": runs,
        **counts,
        "success_rate": counts["succeeded"] / (counts["succeeded"] + counts["failed"])
        if counts["succeeded"] + counts["failed"]
        else None,
        "duration_mean": duration_sum / runs if runs else None,
        "duration_p50": percentile(duration, 50),
        "duration_p95": percentile(duration, 95),
        "duration_p99": percentile(duration, 99),
        "duration_max": duration_max if runs else None,
        "queue_wait_p50": percentile(wait, 50),
        "queue_wait_p95": percentile(wait, 95),
        "cost": round(cost, 6),
    }


def overview(rows: QuerySet[Rollup], span: Range) -> dict:
    granularity = granularity_for(span)
    return {"granularity": granularity, **_summary(_in_range(rows, span, granularity))}


def timeseries(rows: QuerySet[Rollup], span: Range, *, metric: str, bucket: str) -> list[dict]:
    """`metric` per bucket of `bucket` granularity (every bucket of the range, empty ones included)."""
    by_bucket: dict[datetime, list[Rollup]] = {}
    for row in _in_range(rows, span, bucket):
        by_bucket.setdefault(row.bucket, []).append(row)
    points, moment = [], bucket_start(span.start, bucket)
    while moment < span.end:
        points.append({"t": moment, "value": _summary(by_bucket.get(moment, []))[metric]})
        moment += BUCKET_SPANS[bucket]
    return points


RANGE_INVALID = f"One of: {', '.join(RANGES)}."
MOMENT_INVALID = "An ISO 8601 date and time."
FROM_AFTER_TO = "`from` must be before `to`."
METRIC_INVALID = f"One of: {', '.join(METRICS)}."
BUCKET_INVALID = f"One of: {', '.join(Granularity.values)}."
BUCKET_TOO_FINE = "Too fine for the range: at most {limit} points, and {kept} buckets are kept for {days:g} days."


def range_of(params, now: datetime | None = None) -> Range:
    """The range a query's parameters name: it ends at `to` (default now) and lasts `range` (1h …
    365d, default 24h), or starts at `from`. ValidationError naming the parameter."""
    moments = {}
    for name in ("from", "to"):
        if params.get(name):
            try:
                value = parse_datetime(params[name])
            except ValueError:  # well formed, but no such day or time
                value = None
            if value is None:
                raise ValidationError({name: [MOMENT_INVALID]})
            moments[name] = value if timezone.is_aware(value) else timezone.make_aware(value, UTC)
    length = RANGES.get(params.get("range") or "24h")
    if length is None:
        raise ValidationError({"range": [RANGE_INVALID]})
    end = moments.get("to") or now or timezone.now()
    try:
        start = moments.get("from") or end - length
    except OverflowError as error:
        raise ValidationError({"to": [MOMENT_INVALID]}) from error
    if start >= end:
        raise ValidationError({"from": [FROM_AFTER_TO]})
    return Range(start, end)


def bucket_checked(bucket: str | None, span: Range, now: datetime | None = None) -> str:
    """The timeseries' bucket: given (checked: known, kept for the range, not too many points) or the
    finest kept for the range that gives at most MAX_POINTS."""
    kept = granularity_for(span, now)
    order = list(Granularity.values)
    if bucket is None:
        bucket = kept
        while (span.end - span.start) / BUCKET_SPANS[bucket] > MAX_POINTS and bucket != Granularity.DAY:
            bucket = order[order.index(bucket) + 1]
        return bucket
    if bucket not in order:
        raise ValidationError({"bucket": [BUCKET_INVALID]})
    points = (span.end - span.start) / BUCKET_SPANS[bucket]
    if order.index(bucket) < order.index(kept) or points > MAX_POINTS:
        days = (span.end - span.start).total_seconds() / 86400
        raise ValidationError({"bucket": [BUCKET_TOO_FINE.format(limit=MAX_POINTS, kept=kept, days=days)]})
    return bucket


def nodes(rows: QuerySet[StepRollup], span: Range) -> list[dict]:
    """Per node (key) of the rows over the range: steps by outcome, failure rate, retries and crash
    recoveries, duration mean and percentiles, tokens and cost; slowest (p95) first."""
    by_node: dict[str, list[StepRollup]] = {}
    for row in _in_range(rows, span, granularity_for(span)):
        by_node.setdefault(row.node_key, []).append(row)
    figures = []
    for node_key, node_rows in by_node.items():
        totals = {name: sum(getattr(row, name) for row in node_rows) for name in NODE_COUNTERS}
        steps = totals["succeeded"] + totals["failed"]
        duration = merged(*(row.duration_histogram for row in node_rows))
        figures.append(
            {
                "node_key": node_key,
                "node_type": node_rows[-1].node_type,
                "steps": steps,
                **totals,
                "failure_rate": totals["failed"] / steps if steps else None,
                "duration_mean": sum(row.duration_ms_sum for row in node_rows) / steps if steps else None,
                "duration_p50": percentile(duration, 50),
                "duration_p95": percentile(duration, 95),
                "duration_p99": percentile(duration, 99),
                "duration_max": max(row.duration_ms_max for row in node_rows),
                "cost": round(sum(row.cost for row in node_rows), 6),
            }
        )
    return sorted(figures, key=lambda node: (-(node["duration_p95"] or 0), node["node_key"]))
