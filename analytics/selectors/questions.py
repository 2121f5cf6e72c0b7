"""The questions: an overview, a timeseries, a breakdown, the nodes' figures."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta, tzinfo

from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BigIntegerField, F, Func, Max, QuerySet, Sum
from django.utils import timezone

from analytics.histograms import merged, percentile
from analytics.models import NO_WORKFLOW, Event, StepRollup, Tally
from analytics.selectors.access import Scope
from analytics.selectors.aggregation import _aggregate, _run_figures
from analytics.selectors.catalog import (
    BREAKDOWNS,
    EXACT_PERCENTILE_MAX_RUNS,
    EXACT_PERCENTILE_SPAN,
    GROUPS,
    MAX_SERIES,
    NODE_GROUPS,
    PERCENTILE_METRICS,
    RUN_SUMS,
    STEP_METRICS,
    STEP_SUMS,
    TALLY_METRICS,
    TALLY_SUMS,
    Granularity,
)
from analytics.selectors.ranges import (
    BREAKDOWN_INVALID,
    GROUP_INVALID,
    GROUP_METRIC_INVALID,
    NODE_GROUP_INVALID,
    Range,
    _cover,
    _kept_since,
    bucket_span,
    granularity_for,
)
from analytics.services.recording import BUCKET_SPANS, bucket_start


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
