"""Counting what finished: the facts of finished runs, handed over after their transaction committed
(workflows.services.notices, in the task the engine's run events go to), become analytics events (once
each) and increments of the rollups of their minute, hour and day."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.histograms import histogram_of, merged
from analytics.models import Event, Rollup

Granularity = Rollup.Granularity
COUNTERS = ("succeeded", "failed", "cancelled", "timed_out", "tokens_in", "tokens_out")
ROLLUP_FIELDS = (
    *COUNTERS,
    "cost",
    "duration_ms_sum",
    "duration_ms_max",
    "duration_histogram",
    "queue_wait_histogram",
)


def bucket_start(moment: datetime, granularity: str) -> datetime:
    """The start of the bucket holding `moment` (UTC minutes, hours and days)."""
    moment = moment.replace(second=0, microsecond=0)
    if granularity == Granularity.MINUTE:
        return moment
    moment = moment.replace(minute=0)
    return moment if granularity == Granularity.HOUR else moment.replace(hour=0)


def _moment(value) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else value


def runs_finished_record(runs: list[dict]) -> int:
    """Count finished runs, each `{id, workspace, workflow, status (succeeded, failed, cancelled),
    timed_out, created_at, started_at, finished_at, duration_ms, tokens_in, tokens_out, cost}`; a run
    counted before is not counted again. Returns how many were new.

    One transaction: the events and the rollup rows (locked) change together. Two workers making the
    same new rollup row at once: one gets an IntegrityError and its task is tried again."""
    runs = list({run["id"]: run for run in runs}.values())
    with transaction.atomic():
        known = set(
            Event.objects.filter(type=Event.Type.RUN_FINISHED, subject__in=[run["id"] for run in runs]).values_list(
                "subject", flat=True
            )
        )
        new = [run for run in runs if run["id"] not in known]
        Event.objects.bulk_create(
            [
                Event(
                    type=Event.Type.RUN_FINISHED,
                    workspace_id=run["workspace"],
                    workflow_id=run["workflow"],
                    subject=run["id"],
                    ts=_moment(run["finished_at"]),
                    data={key: value for key, value in run.items() if key not in ("id", "workspace", "workflow")},
                )
                for run in new
            ]
        )
        _rollups_add(new)
    return len(new)


def _increment(run: dict) -> dict:
    started, created = _moment(run.get("started_at")), _moment(run.get("created_at"))
    waits = [(started - created).total_seconds() * 1000] if started and created else []
    duration = float(run.get("duration_ms") or 0)
    return {
        "succeeded": int(run["status"] == "succeeded"),
        "failed": int(run["status"] == "failed"),
        "cancelled": int(run["status"] == "cancelled"),
        "timed_out": int(bool(run.get("timed_out"))),
        "tokens_in": int(run.get("tokens_in") or 0),
        "tokens_out": int(run.get("tokens_out") or 0),
        "cost": float(run.get("cost") or 0),
        "duration_ms_sum": duration,
        "duration_ms_max": duration,
        "duration_histogram": histogram_of([duration]),
        "queue_wait_histogram": histogram_of(waits),
    }


def _combined(total: dict, part: dict) -> dict:
    return {
        **{name: total.get(name, 0) + part[name] for name in (*COUNTERS, "cost", "duration_ms_sum")},
        "duration_ms_max": max(total.get("duration_ms_max", 0), part["duration_ms_max"]),
        "duration_histogram": merged(total.get("duration_histogram", {}), part["duration_histogram"]),
        "queue_wait_histogram": merged(total.get("queue_wait_histogram", {}), part["queue_wait_histogram"]),
    }


def _rollups_add(runs: list[dict]) -> None:
    """Add the runs to the rollup rows of their minute, hour and day: the rows that exist are locked
    and updated, the others made."""
    increments: dict[tuple, dict] = {}
    for run in runs:
        finished = _moment(run["finished_at"])
        part = _increment(run)
        for granularity in Granularity.values:
            key = (granularity, str(run["workspace"]), bucket_start(finished, granularity), str(run["workflow"]))
            increments[key] = _combined(increments.get(key, {}), part)
    if not increments:
        return
    rows = Rollup.objects.select_for_update().filter(
        granularity__in={key[0] for key in increments},
        workspace_id__in={key[1] for key in increments},
        bucket__in={key[2] for key in increments},
        workflow_id__in={key[3] for key in increments},
    )
    existing = {(row.granularity, str(row.workspace_id), row.bucket, str(row.workflow_id)): row for row in rows}
    changed, made = [], []
    for key, part in increments.items():
        row = existing.get(key)
        if row is None:
            made.append(Rollup(granularity=key[0], workspace_id=key[1], bucket=key[2], workflow_id=key[3], **part))
            continue
        for name, value in _combined({name: getattr(row, name) for name in part}, part).items():
            setattr(row, name, value)
        changed.append(row)
    Rollup.objects.bulk_update(changed, list(ROLLUP_FIELDS))
    Rollup.objects.bulk_create(made)


def rollups_rebuild(*, since: datetime) -> int:
    """Make the rollups of the runs that finished since `since` again from the analytics events (after an
    upgrade that changes what a rollup holds, or a repair): the rows of every granularity from the
    start of `since`'s day are deleted and the events added again, in one transaction. Returns how many
    runs were counted. Events older than their retention are gone: rebuild no further back than it."""
    since = bucket_start(since, Granularity.DAY)
    with transaction.atomic():
        Rollup.objects.filter(bucket__gte=since).delete()
        events = Event.objects.filter(type=Event.Type.RUN_FINISHED, ts__gte=since)
        count = 0
        for chunk in _chunks(events.order_by("id").iterator(chunk_size=2000), 2000):
            _rollups_add(
                [
                    {
                        **event.data,
                        "workspace": event.workspace_id,
                        "workflow": event.workflow_id,
                        "finished_at": event.ts,
                    }
                    for event in chunk
                ]
            )
            count += len(chunk)
    return count


def _fact_of(event: Event) -> dict:
    return {**event.data, "workspace": event.workspace_id, "workflow": event.workflow_id, "finished_at": event.ts}


def _chunks(rows, size: int):
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def analytics_prune(now: datetime | None = None) -> dict[str, int]:
    """Forget what the retention settings say is no longer kept: minute rollups older than
    DWC_ANALYTICS_MINUTE_ROLLUP_DAYS, hour rollups older than DWC_ANALYTICS_HOUR_ROLLUP_DAYS (day rollups
    stay), events older than DWC_ANALYTICS_EVENT_RETENTION_DAYS. Beat runs it hourly."""
    now = now or timezone.now()
    kept = {
        Granularity.MINUTE: settings.DWC_ANALYTICS_MINUTE_ROLLUP_DAYS,
        Granularity.HOUR: settings.DWC_ANALYTICS_HOUR_ROLLUP_DAYS,
    }
    pruned = {}
    for granularity, days in kept.items():
        old = Rollup.objects.filter(granularity=granularity, bucket__lt=now - timedelta(days=days))
        pruned[granularity] = old.delete()[0]
    events = Event.objects.filter(ts__lt=now - timedelta(days=settings.DWC_ANALYTICS_EVENT_RETENTION_DAYS))
    pruned["events"] = events.delete()[0]
    return pruned
