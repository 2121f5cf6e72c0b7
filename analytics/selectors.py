"""Questions answered from the rollups, confined to the workspaces the caller is a member of.

A range is read from the coarsest rows that fit it: the whole UTC days inside it from day rows, the
hours at its edges from hour rows, the minutes at the very edges from minute rows (each as long as
it is kept), so that 30 days of a workspace are a few thousand rows. Sums and histogram merges happen
in PostgreSQL (`jsonb_each_text`), percentiles from the merged histograms (within 2 %,
analytics.histograms); ranges short enough to read the raw events get exact percentiles
(`percentile_cont`). Buckets of a day or a week start at the caller's midnight (`tz`): from hour
rows while they are kept, from UTC day rows beyond (then approximate, and said so).
"""

import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BigIntegerField, F, Func, Max, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.access import Role, ensure_role, workspaces_with_role
from accounts.models import User
from analytics.histograms import merged, percentile
from analytics.models import NO_WORKFLOW, Event, Insight, Report, Rollup, StepRollup, Tally, WorkspaceRollup
from analytics.services.insights import NO_SUCH_INSIGHT
from analytics.services.recording import BUCKET_SPANS, bucket_start

Granularity = Rollup.Granularity
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "365d": timedelta(days=365),
}
BUCKETS = (*Granularity.values, "week")
# At most this many points in a timeseries: minute buckets over a year would be half a million.
MAX_POINTS = 2000
# Series beyond this many (by their total) are summed as "other".
MAX_SERIES = 10
# Exact percentiles from the raw events for ranges this short with at most this many runs.
EXACT_PERCENTILE_SPAN = timedelta(days=1)
EXACT_PERCENTILE_MAX_RUNS = 50_000

RUN_SUMS = ("succeeded", "failed", "cancelled", "timed_out", "tokens_in", "tokens_out", "cost", "duration_ms_sum")
STEP_SUMS = ("succeeded", "failed", "retries", "crashes", "tokens_in", "tokens_out", "cost", "duration_ms_sum")
TALLY_SUMS = ("count", "value", "tokens_in", "tokens_out", "cost")

# Metrics of runs (Rollup), of steps (StepRollup), and of tallies: (kind, what of it).
RUN_METRICS = (
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
    "duration_max",
    "queue_wait_p50",
    "queue_wait_p95",
    "tokens_in",
    "tokens_out",
    "cost",
    "throughput",
)
STEP_METRICS = {"steps": "steps", "step_failures": "failed", "retries": "retries", "crash_recoveries": "crashes"}
TALLY_METRICS = {
    "concurrency": ("run.busy", "value"),
    "runs_started": ("run.trigger", "count"),
    "errors": ("error.type", "count"),
    "documents": ("generation", "count"),
    "generation_tokens_in": ("generation", "tokens_in"),
    "generation_tokens_out": ("generation", "tokens_out"),
    "generation_cost": ("generation", "cost"),
    "cache_hits": ("generation.cached", "count"),
    "webhooks_received": ("webhook.received", "count"),
    "webhooks_rejected": ("webhook.rejected", "count"),
    "schedules_fired": ("schedule.fired", "count"),
    "schedules_missed": ("schedule.missed", "count"),
    "approvals": ("approval.decided", "count"),
    "notifications_delivered": ("notification.delivered", "count"),
    "notifications_failed": ("notification.failed", "count"),
    "logins": ("login", "count"),
    "api_key_uses": ("api_key.used", "count"),
    "active_members": ("member.active", "distinct"),
    "budget_thresholds": ("budget.threshold", "count"),
}
METRICS = (*RUN_METRICS, *STEP_METRICS, *TALLY_METRICS)
# The run metrics read from a histogram: (which, the percentile).
PERCENTILE_METRICS = {
    "duration_p50": ("duration_histogram", 50),
    "duration_p95": ("duration_histogram", 95),
    "duration_p99": ("duration_histogram", 99),
    "queue_wait_p50": ("queue_wait_histogram", 50),
    "queue_wait_p95": ("queue_wait_histogram", 95),
}
# What a timeseries may be split by, and the metrics each split has.
GROUPS = {
    "workflow": METRICS,
    "status": ("runs",),
    "trigger": ("runs_started",),
    "model": ("documents", "generation_tokens_in", "generation_tokens_out", "generation_cost"),
    "error": ("errors",),
    "channel": ("notifications_delivered", "notifications_failed"),
}
# The breakdowns: a tally kind's labels, largest first.
BREAKDOWNS = {
    "triggers": "run.trigger",
    "error_types": "error.type",
    "errors": "error.message",
    "models": "generation",
    "hosts": "retries.host",
    "webhook_rejections": "webhook.rejected",
    "channels_failed": "notification.failed",
    "logins": "login",
}


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Scope:
    """Whose figures: workspaces (ids or a query of them), narrowed to one workspace or workflow."""

    workspaces: object
    workspace: uuid.UUID | None = None
    workflow: uuid.UUID | None = None

    def rows(self, model) -> QuerySet:
        rows = model.objects.filter(workspace_id__in=self.workspaces)
        if self.workspace is not None:
            rows = rows.filter(workspace_id=self.workspace)
        if self.workflow is not None:
            rows = rows.filter(workflow_id=self.workflow)
        return rows

    def run_rows(self, *, per_workflow: bool = False) -> QuerySet:
        """The rollups of the runs: a workflow's Rollup rows when narrowed to one (or asked `per_workflow`),
        else the workspaces' WorkspaceRollup rows, one per bucket instead of one per workflow."""
        return self.rows(Rollup if per_workflow or self.workflow is not None else WorkspaceRollup)


def scope_for_user(user: User, *, workspace: uuid.UUID | None = None, workflow: uuid.UUID | None = None) -> Scope:
    return Scope(workspaces_with_role(user, Role.VIEWER).values("pk"), workspace, workflow)


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


# --- ranges and buckets ---------------------------------------------------------------------------

RANGE_INVALID = f"One of: {', '.join(RANGES)}."
MOMENT_INVALID = "An ISO 8601 date and time."
FROM_AFTER_TO = "`from` must be before `to`."
METRIC_INVALID = f"One of: {', '.join(METRICS)}."
BUCKET_INVALID = f"One of: {', '.join(BUCKETS)}."
BUCKET_TOO_FINE = "Too fine for the range: at most {limit} points, and {kept} buckets are kept for {days:g} days."
TZ_INVALID = "An IANA time zone name, such as Europe/Paris."
GROUP_INVALID = f"One of: {', '.join(GROUPS)}."
GROUP_METRIC_INVALID = "Splitting by {group} takes the metrics: {metrics}."
BREAKDOWN_INVALID = f"One of: {', '.join(BREAKDOWNS)}."
NODE_GROUPS = {"key": "node_key", "type": "node_type"}
NODE_GROUP_INVALID = f"One of: {', '.join(NODE_GROUPS)}."


def _kept_since(granularity: str, now: datetime) -> datetime | None:
    days = {
        Granularity.MINUTE: settings.DWC_ANALYTICS_MINUTE_ROLLUP_DAYS,
        Granularity.HOUR: settings.DWC_ANALYTICS_HOUR_ROLLUP_DAYS,
    }.get(granularity)
    # A minute's slack: "the last 24 hours" was measured a moment before this.
    return None if days is None else now - timedelta(days=days, minutes=1)


def granularity_for(span: Range, now: datetime | None = None) -> str:
    """The finest granularity the rollups keep for the whole of `span`."""
    now = now or timezone.now()
    for granularity in (Granularity.MINUTE, Granularity.HOUR):
        if span.start >= _kept_since(granularity, now):
            return granularity
    return Granularity.DAY


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


def timezone_of(name: str | None) -> tzinfo:
    """The caller's time zone (`tz`, default UTC); ValidationError naming `tz`."""
    if not name or name == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationError({"tz": [TZ_INVALID]}) from error


def bucket_span(bucket: str) -> timedelta:
    return timedelta(weeks=1) if bucket == "week" else BUCKET_SPANS[bucket]


def bucket_checked(bucket: str | None, span: Range, now: datetime | None = None) -> str:
    """The timeseries' bucket: given (checked: known, kept for the range, not too many points) or the
    finest kept for the range that gives at most MAX_POINTS."""
    kept = granularity_for(span, now)
    if bucket is None:
        for bucket in BUCKETS[BUCKETS.index(kept) :]:
            if (span.end - span.start) / bucket_span(bucket) <= MAX_POINTS:
                return bucket
        return "week"
    if bucket not in BUCKETS:
        raise ValidationError({"bucket": [BUCKET_INVALID]})
    points = (span.end - span.start) / bucket_span(bucket)
    if BUCKETS.index(bucket) < BUCKETS.index(kept) or points > MAX_POINTS:
        days = (span.end - span.start).total_seconds() / 86400
        raise ValidationError({"bucket": [BUCKET_TOO_FINE.format(limit=MAX_POINTS, kept=kept, days=days)]})
    return bucket


def _cover(span: Range, coarsest: str, now: datetime) -> Q:
    """The rows that cover `span` with as few rows as possible: whole buckets of the coarser
    granularities (up to `coarsest`) inside it, finer ones, while kept, at its edges; its start
    rounded down to a whole bucket of the finest."""
    levels = list(Granularity.values)[: list(Granularity.values).index(coarsest) + 1]
    kept = [level for level in levels if (since := _kept_since(level, now)) is None or span.start >= since]
    levels = kept or levels[-1:]
    return _pieces(bucket_start(span.start, levels[0]), span.end, levels)


def _pieces(start: datetime, end: datetime, levels: list[str]) -> Q:
    level, coarser = levels[0], levels[1:]
    if coarser:
        inner_start = _ceil(start, coarser[0])
        inner_end = bucket_start(end, coarser[0])
        if inner_start < inner_end:
            return (
                _piece(level, start, inner_start)
                | _pieces(inner_start, inner_end, coarser)
                | _piece(level, inner_end, end)
            )
    return _piece(level, start, end)


def _ceil(moment: datetime, granularity: str) -> datetime:
    floor = bucket_start(moment, granularity)
    return floor if floor == moment else floor + BUCKET_SPANS[granularity]


def _piece(granularity: str, start: datetime, end: datetime) -> Q:
    return Q(granularity=granularity, bucket__gte=start, bucket__lt=end) if start < end else Q(pk__in=[])


# --- aggregation in PostgreSQL --------------------------------------------------------------------


def _aggregate(rows: QuerySet, sums: Iterable[str], histograms: Iterable[str], group: list[str]) -> dict:
    """Per group (a tuple of the `group` values): the sums, the maximum duration and the merged
    histograms of the rows. Histograms are merged in PostgreSQL and come back as one JSON object per
    group and histogram (decoded by the driver, not built here key by key)."""
    totals: dict[tuple, dict] = {}
    annotations = {name: Sum(name) for name in sums}
    if "duration_ms_sum" in annotations:
        annotations["duration_ms_max"] = Max("duration_ms_max")
    if annotations and group:
        for row in rows.values(*group).annotate(**annotations).order_by():
            totals[tuple(row.pop(name) for name in group)] = row
    elif annotations:
        totals[()] = rows.aggregate(**annotations)
    for name in histograms:
        for key, histogram in _histograms_merged(rows, name, group):
            totals.setdefault(key, {})[name] = histogram
    return totals


def _histograms_merged(rows: QuerySet, name: str, group: list[str]) -> Iterator[tuple[tuple, dict]]:
    """Per group: the histogram `name` of the rows merged, in PostgreSQL. A group of one row (a chart of one
    workflow by the rows' own bucket) is its histogram as it is: expanding and merging it would be most
    of such a query's time. Merged ones are built as json (text), not jsonb (a sorted binary object,
    which costs more than the merge); both come back decoded by psycopg."""
    inner, params = rows.values(*group, histogram=F(name)).order_by().query.sql_with_params()
    # The inner query is the ORM's, its values passed as parameters; the columns are our own names.
    columns = ", ".join(f'"{column}"' for column in group)
    if group:
        sql = f"""
            WITH r AS MATERIALIZED ({inner}),
                 sizes AS (SELECT {columns}, count(*) AS size FROM r GROUP BY {columns})
            SELECT {columns}, r.histogram::json FROM r JOIN sizes USING ({columns}) WHERE size = 1
            UNION ALL
            SELECT {columns}, json_object_agg(key, n) FROM (
                SELECT {columns}, h.key, sum(h.value::bigint) AS n
                FROM r JOIN sizes USING ({columns}), jsonb_each_text(r.histogram) h
                WHERE size > 1 GROUP BY {columns}, h.key
            ) c GROUP BY {columns}
        """  # noqa: S608 - see above
    else:
        each = f"({inner}) r, jsonb_each_text(r.histogram) h"
        counts = f"SELECT h.key, sum(h.value::bigint) AS n FROM {each} GROUP BY h.key"  # noqa: S608 - see above
        sql = f"SELECT json_object_agg(key, n) FROM ({counts}) c"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for *key, histogram in cursor.fetchall():
            yield tuple(key), histogram or {}


def _run_figures(total: dict, minutes: float | None = None) -> dict:
    """The run metrics of one aggregate of Rollup rows."""
    counts = {name: int(total.get(name) or 0) for name in RUN_SUMS if name not in ("cost", "duration_ms_sum")}
    runs = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    finished = counts["succeeded"] + counts["failed"]
    duration, wait = total.get("duration_histogram") or {}, total.get("queue_wait_histogram") or {}
    return {
        "runs": runs,
        **counts,
        "success_rate": counts["succeeded"] / finished if finished else None,
        "duration_mean": (total.get("duration_ms_sum") or 0) / runs if runs else None,
        "duration_p50": percentile(duration, 50),
        "duration_p95": percentile(duration, 95),
        "duration_p99": percentile(duration, 99),
        "duration_max": total.get("duration_ms_max") if runs else None,
        "queue_wait_p50": percentile(wait, 50),
        "queue_wait_p95": percentile(wait, 95),
        "cost": round(float(total.get("cost") or 0), 6),
        "throughput": runs / minutes if minutes else None,
    }


# --- the questions --------------------------------------------------------------------------------


def overview(scope: Scope, span: Range, now: datetime | None = None) -> dict:
    """Runs by outcome and trigger, success rate, duration and queue-wait percentiles (exact for a short
    range), throughput and mean concurrency, retries and crash recoveries, tokens and cost."""
    now = now or timezone.now()
    cover = _cover(span, Granularity.DAY, now)
    minutes = (span.end - span.start).total_seconds() / 60
    sums = (*RUN_SUMS, "retries", "crashes")
    runs = _aggregate(scope.run_rows().filter(cover), sums, ("duration_histogram", "queue_wait_histogram"), [])
    runs = runs.get((), {})
    figures = {"granularity": granularity_for(span, now), "percentiles": "histogram", **_run_figures(runs, minutes)}
    exact = _exact_percentiles(scope, span) if span.end - span.start <= EXACT_PERCENTILE_SPAN else None
    if exact:
        figures.update(exact, percentiles="exact")
    busy = scope.rows(Tally).filter(cover, kind="run.busy").aggregate(milliseconds=Sum("value"))
    triggers = scope.rows(Tally).filter(cover, kind="run.trigger").values_list("label").annotate(total=Sum("count"))
    figures.update(
        retries=int(runs.get("retries") or 0),
        crash_recoveries=int(runs.get("crashes") or 0),
        concurrency=(busy["milliseconds"] or 0) / (minutes * 60_000),
        by_trigger=dict(triggers.order_by()),
    )
    return figures


def _exact_percentiles(scope: Scope, span: Range) -> dict | None:
    """p50/p95/p99 of run durations over the raw events (`percentile_cont`: interpolated), or None
    when the range holds more runs than is quick to read."""
    events = scope.rows(Event).filter(type=Event.Type.RUN_FINISHED, ts__gte=span.start, ts__lt=span.end)
    inner, params = events.values("data").order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        order = "ORDER BY (r.data->>'duration_ms')::float"
        limited = f"(SELECT * FROM ({inner}) q LIMIT %s) r"  # noqa: S608 - the ORM's query, values as parameters
        sql = f"SELECT count(*), percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP ({order}) FROM {limited}"  # noqa: S608
        cursor.execute(sql, [*params, EXACT_PERCENTILE_MAX_RUNS + 1])
        count, values = cursor.fetchone()
    if not count or count > EXACT_PERCENTILE_MAX_RUNS:
        return None
    return dict(zip(("duration_p50", "duration_p95", "duration_p99"), values, strict=True))


def timeseries(
    scope: Scope,
    span: Range,
    *,
    metric: str,
    bucket: str,
    tz: tzinfo = UTC,
    group_by: str | None = None,
    now: datetime | None = None,
) -> dict:
    """`metric` per bucket (every bucket of the range, empty ones included), and with `group_by` per
    group too (the MAX_SERIES largest, the rest as "other"). Day and week buckets start at `tz`'s
    midnight (weeks on Monday)."""
    now = now or timezone.now()
    if group_by is not None and (group_by not in GROUPS):
        raise ValidationError({"group_by": [GROUP_INVALID]})
    if group_by is not None and metric not in GROUPS[group_by]:
        allowed = ", ".join(GROUPS[group_by])
        raise ValidationError({"metric": [GROUP_METRIC_INVALID.format(group=group_by, metrics=allowed)]})
    # Day and week buckets of another zone are made of hours, while they are kept.
    source = bucket if bucket in (Granularity.MINUTE, Granularity.HOUR) else Granularity.DAY
    approximate = False
    if source == Granularity.DAY and tz is not UTC:
        if span.start >= _kept_since(Granularity.HOUR, now):
            source = Granularity.HOUR
        else:
            approximate = True
    trunc_tz = tz if bucket in (Granularity.DAY, "week") else UTC
    rows = _metric_rows(scope, metric, group_by).filter(_cover(span, source, now))
    rows = rows.annotate(t=BucketStart(bucket, "bucket", trunc_tz))
    group = ["t", *([_GROUP_FIELDS[group_by]] if group_by else [])]
    totals = _metric_totals(rows, metric, group)
    moments = _moments(span, bucket, trunc_tz)
    minutes = bucket_span(bucket).total_seconds() / 60
    per_bucket = _summed(totals, 1) if group_by else totals
    points = _points(moments, {key[0]: value for key, value in per_bucket.items()}, metric, minutes)
    answer = {"points": points, "approximate": approximate}
    if group_by:
        by_group: dict[str, dict] = defaultdict(dict)
        for (moment, key), value in totals.items():
            by_group[_label(group_by, key)][moment] = value
        ranked = sorted(by_group, key=lambda key: -sum(_weight(value) for value in by_group[key].values()))
        series = [{"key": key, "points": _points(moments, by_group[key], metric, minutes)} for key in ranked]
        if len(ranked) > MAX_SERIES:
            rest = defaultdict(list)
            for key in ranked[MAX_SERIES:]:
                for moment, value in by_group[key].items():
                    rest[moment].append(value)
            other = {moment: _merge(values) for moment, values in rest.items()}
            series = [*series[:MAX_SERIES], {"key": "other", "points": _points(moments, other, metric, minutes)}]
        answer["series"] = series
    return answer


_GROUP_FIELDS = {
    "workflow": "workflow_id",
    "status": None,
    "trigger": "label",
    "model": "label",
    "error": "label",
    "channel": "label",
}


class BucketStart(Func):
    """The start of the minute, hour, day or (Monday) week of a moment in a time zone (the zone's
    wall-clock time truncated, read back in the zone), as seconds since the epoch: decoding a timestamp
    with its zone costs the driver more, row by row, than the query itself."""

    template = (
        "extract(epoch FROM date_trunc(%(unit)s, %(expressions)s AT TIME ZONE %(zone)s) AT TIME ZONE %(zone)s)::bigint"
    )
    output_field = BigIntegerField()

    def __init__(self, unit: str, moment: str, zone: tzinfo) -> None:
        super().__init__(F(moment))
        self.unit, self.zone = unit, "UTC" if zone is UTC else str(zone)

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = super().as_sql(compiler, connection, unit="%s", zone="%s", **extra_context)
        # The placeholders in the order they stand: unit, the moment's own, zone, zone.
        return sql, (self.unit, *params, self.zone, self.zone)


def _metric_rows(scope: Scope, metric: str, group_by: str | None) -> QuerySet:
    if metric in STEP_METRICS:
        return scope.rows(StepRollup)
    if metric in TALLY_METRICS:
        return scope.rows(Tally).filter(kind=TALLY_METRICS[metric][0])
    return scope.run_rows(per_workflow=group_by == "workflow")


def _metric_totals(rows: QuerySet, metric: str, group: list) -> dict[tuple, dict]:
    if None in group:  # by status: the run counts are the series
        totals = _aggregate(rows, RUN_SUMS, (), ["t"])
        return {
            (key[0], status): {"succeeded": 0, "failed": 0, "cancelled": 0, status: value.get(status) or 0}
            for key, value in totals.items()
            for status in ("succeeded", "failed", "cancelled")
        }
    if metric in STEP_METRICS:
        return _aggregate(rows, STEP_SUMS, ("duration_histogram",), group)
    if metric in TALLY_METRICS:
        _kind, what = TALLY_METRICS[metric]
        if what == "distinct":
            totals: dict[tuple, dict] = {}
            for row in rows.values(*group).annotate(labels=ArrayAgg("label")).order_by():
                totals[tuple(row[name] for name in group)] = {"labels": set(row["labels"])}
            return totals
        return _aggregate(rows, TALLY_SUMS, (), group)
    if metric in PERCENTILE_METRICS:  # its histogram alone: its point needs no sums, its weight is its count
        return _aggregate(rows, (), (PERCENTILE_METRICS[metric][0],), group)
    return _aggregate(rows, RUN_SUMS, (), group)


def _summed(totals: dict[tuple, dict], width: int) -> dict[tuple, dict]:
    """The totals summed over all but the first `width` parts of their keys."""
    grouped: dict[tuple, list] = defaultdict(list)
    for key, value in totals.items():
        grouped[key[:width]].append(value)
    return {key: _merge(values) for key, values in grouped.items()}


def _merge(values: list[dict]) -> dict:
    total: dict = {}
    for value in values:
        for name, part in value.items():
            if isinstance(part, dict):
                total[name] = merged(total.get(name, {}), part)
            elif isinstance(part, set):
                total[name] = total.get(name, set()) | part
            elif name.endswith("_max"):
                total[name] = max(total.get(name) or 0, part or 0)
            else:
                total[name] = (total.get(name) or 0) + (part or 0)
    return total


def _weight(value: dict) -> float:
    """How large a group's value is, to rank the series: its sums, or the count of a histogram alone."""
    sums = [part for name, part in value.items() if isinstance(part, int | float) and not name.endswith("_max")]
    if sums:
        return sum(sums)
    return sum(sum(part.values()) for part in value.values() if isinstance(part, dict))


def _label(group_by: str, key) -> str:
    if group_by == "workflow" and str(key) == str(NO_WORKFLOW):
        return "workspace"
    return str(key) if key is not None else ""


def _moments(span: Range, bucket: str, tz: tzinfo) -> list[datetime]:
    """The starts of the buckets of the range: UTC minutes and hours, `tz` days and (Monday) weeks."""
    if bucket in (Granularity.MINUTE, Granularity.HOUR):
        moment = bucket_start(span.start, bucket)
        step = BUCKET_SPANS[bucket]
        moments = []
        while moment < span.end:
            moments.append(moment)
            moment += step
        return moments
    local = span.start.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "week":
        day -= timedelta(days=day.weekday())
    moments = []
    # Wall-clock arithmetic on the zone's dates: a day across a daylight-saving change is 23 or 25 hours.
    date = day.date()
    while True:
        moment = datetime(date.year, date.month, date.day, tzinfo=tz)
        if moment >= span.end:
            return moments
        moments.append(moment)
        date += timedelta(days=7 if bucket == "week" else 1)


def _points(moments: list[datetime], values: dict, metric: str, minutes: float) -> list[dict]:
    """The points of `moments` from `values` by their start in seconds since the epoch (BucketStart)."""
    return [
        {"t": moment, "value": _value_of(metric, values.get(int(moment.timestamp()), {}), minutes)}
        for moment in moments
    ]


def _value_of(metric: str, total: dict, minutes: float):
    if metric in STEP_METRICS:
        name = STEP_METRICS[metric]
        if name == "steps":
            return int((total.get("succeeded") or 0) + (total.get("failed") or 0))
        return int(total.get(name) or 0)
    if metric in TALLY_METRICS:
        _kind, what = TALLY_METRICS[metric]
        if what == "distinct":
            return len(total.get("labels") or ())
        if what == "value":  # milliseconds in flight over the bucket's: mean runs in flight
            return (total.get("value") or 0) / (minutes * 60_000)
        return round(float(total.get(what) or 0), 6) if what == "cost" else int(total.get(what) or 0)
    if metric in PERCENTILE_METRICS:  # one percentile per point, not all five of _run_figures
        histogram, q = PERCENTILE_METRICS[metric]
        return percentile(total.get(histogram) or {}, q)
    return _run_figures(total, minutes)[metric]


def breakdown(scope: Scope, span: Range, *, kind: str, limit: int = 20, now: datetime | None = None) -> list[dict]:
    """The labels of a tally kind over the range, largest first: runs by trigger, errors by type or by
    message cluster, documents and tokens by model, retries by host, webhook rejections by reason…"""
    if kind not in BREAKDOWNS:
        raise ValidationError({"kind": [BREAKDOWN_INVALID]})
    rows = scope.rows(Tally).filter(_cover(span, Granularity.DAY, now or timezone.now()), kind=BREAKDOWNS[kind])
    totals = rows.values("label").annotate(
        count=Sum("count"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out"), cost=Sum("cost")
    )
    ranked = sorted(totals.order_by(), key=lambda row: (-row["count"], row["label"]))[:limit]
    return [{**row, "cost": round(row["cost"] or 0, 6)} for row in ranked]


def nodes(scope: Scope, span: Range, now: datetime | None = None, *, by: str = "key") -> list[dict]:
    """Per node (by key, or with by="type" per node type) of the rows over the range: steps by outcome,
    failure rate, retries and crash recoveries, duration mean and percentiles, tokens and cost; slowest
    (p95) first."""
    if by not in NODE_GROUPS:
        raise ValidationError({"by": [NODE_GROUP_INVALID]})
    rows = scope.rows(StepRollup).filter(_cover(span, Granularity.DAY, now or timezone.now()))
    totals = _aggregate(rows, STEP_SUMS, ("duration_histogram",), [NODE_GROUPS[by]])
    types = dict(rows.values_list("node_key").annotate(node_type=Max("node_type")).order_by())
    figures = []
    for (name,), total in totals.items():
        node_key, node_type = (name, types.get(name, "")) if by == "key" else ("", name)
        counts = {name: int(total.get(name) or 0) for name in ("succeeded", "failed", "retries", "crashes")}
        steps = counts["succeeded"] + counts["failed"]
        duration = total.get("duration_histogram") or {}
        figures.append(
            {
                "node_key": node_key,
                "node_type": node_type,
                "steps": steps,
                **counts,
                "tokens_in": int(total.get("tokens_in") or 0),
                "tokens_out": int(total.get("tokens_out") or 0),
                "failure_rate": counts["failed"] / steps if steps else None,
                "duration_mean": (total.get("duration_ms_sum") or 0) / steps if steps else None,
                "duration_p50": percentile(duration, 50),
                "duration_p95": percentile(duration, 95),
                "duration_p99": percentile(duration, 99),
                "duration_max": total.get("duration_ms_max"),
                "cost": round(float(total.get("cost") or 0), 6),
            }
        )
    return sorted(figures, key=lambda node: (-(node["duration_p95"] or 0), node["node_key"], node["node_type"]))


INSIGHT_STATUSES = (*Insight.Status.values, "all")
STATUS_INVALID = f"One of: {', '.join(INSIGHT_STATUSES)}."
SEVERITY_INVALID = f"One of: {', '.join(Insight.Severity.values)}."


def insights_for_user(user: User, *, workspace=None, workflow=None, status: str = "open", severity=None) -> QuerySet:
    """The insights of the caller's workspaces (viewers and above), newest first: `status` open (the
    default), dismissed, resolved or all. ValidationError naming a bad status or severity."""
    if status not in INSIGHT_STATUSES:
        raise ValidationError({"status": [STATUS_INVALID]})
    if severity is not None and severity not in Insight.Severity.values:
        raise ValidationError({"severity": [SEVERITY_INVALID]})
    insights = Insight.objects.filter(workspace__in=workspaces_with_role(user, Role.VIEWER))
    if workspace is not None:
        insights = insights.filter(workspace_id=workspace)
    if workflow is not None:
        insights = insights.filter(workflow_id=workflow)
    if status != "all":
        insights = insights.filter(status=status)
    if severity is not None:
        insights = insights.filter(severity=severity)
    return insights.order_by("-opened_at", "pk")


def insight_get(insight_id) -> Insight:
    """The insight of that id, with its workspace; Http404 for an unknown one. Whether the caller may see
    or change it is the service's question (a stranger's insight is a 404 too)."""
    try:
        insight_id = uuid.UUID(str(insight_id))
    except ValueError as error:
        raise Http404(NO_SUCH_INSIGHT) from error
    insight = Insight.objects.select_related("workspace").filter(pk=insight_id).first()
    if insight is None:
        raise Http404(NO_SUCH_INSIGHT)
    return insight
