"""Counting what finished: the facts of finished runs, handed over after their transaction committed
(workflows.services.notices, in the task the engine's run events go to), become analytics events (once
each) and increments of the rollups of their minute, hour and day."""

import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.histograms import histogram_of, merged
from analytics.models import Event, Rollup, StepRollup

Granularity = Rollup.Granularity
RUN_KEY = ("granularity", "workspace_id", "bucket", "workflow_id")
STEP_KEY = (*RUN_KEY, "node_key")
# Fields of an increment that name rather than count.
LABELS = ("node_type",)


def bucket_start(moment: datetime, granularity: str) -> datetime:
    """The start of the bucket holding `moment` (UTC minutes, hours and days)."""
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity == Granularity.MINUTE:
        return moment
    moment = moment.replace(minute=0)
    return moment if granularity == Granularity.HOUR else moment.replace(hour=0)


def _moment(value) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else value


def runs_finished_record(runs: list[dict]) -> int:
    """Count finished runs, each `{id, workspace, workflow, status (succeeded, failed, cancelled),
    timed_out, created_at, started_at, finished_at, duration_ms, tokens_in, tokens_out, cost, steps}`,
    `steps` the finished steps `[{key, type, status, attempt, crashes, duration_ms, tokens_in, tokens_out,
    cost}]`; a run counted before is not counted again. Returns how many were new.

    One transaction: the events and the rollup rows (locked) change together. Two workers counting
    the same run at once: the second waits on the event's unique key, and its task fails (the run is
    counted once); counting different runs into the same rows, they take turns on the rows' locks."""
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


def _step_increment(step: dict) -> dict:
    duration = float(step.get("duration_ms") or 0)
    return {
        "node_type": step.get("type", ""),
        "succeeded": int(step["status"] == "succeeded"),
        "failed": int(step["status"] == "failed"),
        "retries": max(int(step.get("attempt") or 1) - 1, 0),
        "crashes": int(step.get("crashes") or 0),
        "tokens_in": int(step.get("tokens_in") or 0),
        "tokens_out": int(step.get("tokens_out") or 0),
        "cost": float(step.get("cost") or 0),
        "duration_ms_sum": duration,
        "duration_ms_max": duration,
        "duration_histogram": histogram_of([duration]),
    }


def _combined(total: dict, part: dict) -> dict:
    """Two increments (or a row's figures and an increment) as one: histograms merged, maxima kept,
    labels (a node's type) taken from the newer, the rest added."""
    combined = {}
    for name, value in part.items():
        if name.endswith("_histogram"):
            combined[name] = merged(total.get(name, {}), value)
        elif name.endswith("_max"):
            combined[name] = max(total.get(name, 0), value)
        elif name in LABELS:
            combined[name] = value
        else:
            combined[name] = total.get(name, 0) + value
    return combined


def _rollups_add(runs: list[dict]) -> None:
    """Add the runs (and their steps) to the rollup rows of their minute, hour and day."""
    increments: dict[tuple, dict] = {}
    step_increments: dict[tuple, dict] = {}
    for run in runs:
        finished = _moment(run["finished_at"])
        part = _increment(run)
        steps = [(step["key"], _step_increment(step)) for step in run.get("steps") or []]
        for granularity in Granularity.values:
            key = (granularity, str(run["workspace"]), bucket_start(finished, granularity), str(run["workflow"]))
            increments[key] = _combined(increments.get(key, {}), part)
            for node_key, step_part in steps:
                step_increments[(*key, node_key)] = _combined(step_increments.get((*key, node_key), {}), step_part)
    _upsert(Rollup, RUN_KEY, increments)
    _upsert(StepRollup, STEP_KEY, step_increments)


def _upsert(model, key_fields: tuple[str, ...], increments: dict[tuple, dict]) -> None:
    """Add the increments to the rows of `model` their keys name. The missing rows are made empty first
    (INSERT … ON CONFLICT DO NOTHING: a worker making the same row at once waits for the other's
    commit, then makes nothing), then all are locked and updated; keys in one order, so two workers
    lock in the same order."""
    if not increments:
        return
    keys = sorted(increments)
    model.objects.bulk_create([model(**dict(zip(key_fields, key, strict=True))) for key in keys], ignore_conflicts=True)
    rows = model.objects.select_for_update().filter(
        **{f"{field}__in": {key[index] for key in keys} for index, field in enumerate(key_fields)}
    )
    existing = {tuple(_plain(getattr(row, field)) for field in key_fields): row for row in rows.order_by(*key_fields)}
    changed = []
    for key in keys:
        row, part = existing[key], increments[key]
        for name, value in _combined({name: getattr(row, name) for name in part}, part).items():
            setattr(row, name, value)
        changed.append(row)
    model.objects.bulk_update(changed, list(increments[keys[0]]))


def _plain(value):
    return str(value) if isinstance(value, uuid.UUID) else value


def rollups_rebuild(*, since: datetime) -> int:
    """Make the rollups of the runs that finished since `since` again from the analytics events (after an
    upgrade that changes what a rollup holds, or a repair): the rows of every granularity from the
    start of `since`'s day are deleted and the events added again, in one transaction. Returns how many
    runs were counted. Events older than their retention are gone: rebuild no further back than it."""
    since = bucket_start(since, Granularity.DAY)
    with transaction.atomic():
        Rollup.objects.filter(bucket__gte=since).delete()
        StepRollup.objects.filter(bucket__gte=since).delete()
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
        cutoff = now - timedelta(days=days)
        pruned[granularity] = Rollup.objects.filter(granularity=granularity, bucket__lt=cutoff).delete()[0]
        StepRollup.objects.filter(granularity=granularity, bucket__lt=cutoff).delete()
    events = Event.objects.filter(ts__lt=now - timedelta(days=settings.DWC_ANALYTICS_EVENT_RETENTION_DAYS))
    pruned["events"] = events.delete()[0]
    return pruned
