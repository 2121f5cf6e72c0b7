"""Ranges and buckets: what a question's `range`, `from`, `to`, `bucket` and `tz` mean, and which
rollup rows (minute, hour, day) cover a range."""

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.selectors.catalog import (
    BREAKDOWNS,
    BUCKETS,
    GROUPS,
    MAX_POINTS,
    METRICS,
    NODE_GROUPS,
    RANGES,
    Granularity,
)
from analytics.services.recording import BUCKET_SPANS, bucket_start


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime


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
