"""Cron schedules: their django-celery-beat PeriodicTask, and what happens at each of their slots.

Beat is only the doorbell. Its PeriodicTask sends `fire_schedule(schedule_id)` at the crontab's times;
which slots are due is decided here, from the cron expression (cronsim, in the schedule's time zone)
and `Schedule.last_slot`, under a row lock on the schedule. Every slot handled leaves a ScheduleSlot
row (unique per schedule and slot), and its run carries the idempotency key `schedule:<id>:<slot>`:
two beats, a beat restarted across a slot or a redelivered message start one run per slot.

Overlap, when a slot comes while the run of an earlier slot is still active: `skip` records the slot
`skipped`; `allow` starts it anyway; `queue` records it `queued` without a run, and the first
`schedule_fire` after that run finished starts it (queued slots start one at a time, oldest first).
While a slot waits, `schedule_fire` sends `fire_schedule` again every QUEUE_RECHECK_SECONDS, since the
next beat may be a day away. Backfilled slots neither wait for nor hold up the others.

Catch-up, when more than one slot is due (beat was down): the newest due slot is the current one and
is handled like any slot. Of the older, missed ones, `none` starts none, `latest` the newest one and
`all` the newest DWC_SCHEDULE_MAX_CATCHUP; the others are recorded `missed`. Overlap then applies to
each slot in order, as in Temporal: catching up under `skip` starts the oldest slot and skips the rest
while it runs; `queue` works a backlog off one run after another, `allow` all at once.

DST (cronsim's behaviour, as in Debian cron): an expression with a fixed minute and hour is read on the
wall clock. A time that does not exist that day ("30 2 * * *" in Europe/Berlin on 2026-03-29) fires at
the first minute after the gap (03:00 CEST); a time that occurs twice (2026-10-25) fires once, at its
first occurrence (02:30 CEST). Expressions with `*` in the minute or hour step through real time:
"30 * * * *" has no 02:30 in spring and two in autumn.
"""

import json
import logging
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import ParseException, crontab
from cronsim import CronSim, CronSimError
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import AnyRequest, audit_record, diff
from config.celery import app as celery_app
from core.problems import Conflict
from workflows.models import Run, Schedule, ScheduleSlot, Workflow
from workflows.services.runs import run_input_check, run_trigger

logger = logging.getLogger(__name__)

FIRE_TASK = "workflows.tasks.fire_schedule"
FIRE_QUEUE = "engine"
# The CrontabSchedule fields, in the order of a cron expression's five fields.
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
NEXT_FIRE_TIMES = 5
QUEUE_RECHECK_SECONDS = 5
# Rows written as `missed` by one fire, beyond the slots it starts: a minutely schedule whose beat was
# down for a week would otherwise write ten thousand of them. Older slots are only logged.
MAX_MISSED_RECORDED = 1000

EDITABLE_FIELDS = ("cron", "timezone", "input", "enabled", "overlap", "catchup")
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("id", "workflow", "last_slot", "next_fire_times", "periodic_task", "created_at", "updated_at")
ACTIVE_RUN = [status for status in Run.Status.values if status not in Run.FINISHED]

BODY_NOT_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
CRON_REQUIRED = "A cron expression is required."
CRON_FIELD_COUNT = "Give five fields: minute, hour, day of month, month, day of week."
CRON_INVALID = "Not a valid cron expression: {error}."
CRON_DAYS_BOTH = (
    "Restrict the day of month or the day of week, not both: cron reads that as either day, Celery beat as both."
)
CRON_NOT_FOR_BEAT = "Celery beat cannot run this expression: {error}"
TIMEZONE_UNKNOWN = "Unknown time zone {name!r}; give an IANA name such as 'Europe/Berlin'."
INPUT_NOT_OBJECT = "The input must be a JSON object."
NOT_A_BOOLEAN = "Must be true or false."
NOT_A_CHOICE = "{value!r} is not one of: {choices}."
BACKFILL_ORDER = "The range must start before it ends."
BACKFILL_FUTURE = "A backfill covers past slots only; this is in the future."
BACKFILL_EMPTY = "The schedule has no slot in this range."
BACKFILL_TOO_MANY = "The range holds more than {limit} slots (DWC_SCHEDULE_MAX_CATCHUP); backfill it in parts."


# --- validation ----------------------------------------------------------------------------------


def cron_errors(cron: Any) -> list[str]:
    """What is wrong with a 5-field cron expression, for both cronsim (slots) and Celery beat (its crontab)."""
    if not isinstance(cron, str) or not cron.strip():
        return [CRON_REQUIRED]
    parts = cron.split()
    if len(parts) != 5:
        return [CRON_FIELD_COUNT]
    try:
        CronSim(cron, datetime.now(UTC))
    except CronSimError as error:
        return [CRON_INVALID.format(error=error)]
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    # cronsim, like cron, ORs the two day fields when neither starts with "*"; Celery's crontab ANDs them.
    if not day_of_month.startswith("*") and not day_of_week.startswith("*"):
        return [CRON_DAYS_BOTH]
    try:
        crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
    except (ValueError, ParseException) as error:  # e.g. "L", "1#2", or 7 for Sunday: cronsim reads them, beat not
        return [CRON_NOT_FOR_BEAT.format(error=error)]
    return []


def timezone_errors(name: Any) -> list[str]:
    if not isinstance(name, str) or not name:
        return [TIMEZONE_UNKNOWN.format(name=name)]
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return [TIMEZONE_UNKNOWN.format(name=name)]
    return []


def schedule_fields_check(fields: dict) -> dict[str, list[str]]:
    """Errors by field name for the editable fields present in `fields`; the API and the admin form share it."""
    errors: dict[str, list[str]] = {}
    if "cron" in fields:
        errors["cron"] = cron_errors(fields["cron"])
    if "timezone" in fields:
        errors["timezone"] = timezone_errors(fields["timezone"])
    if "input" in fields and not isinstance(fields["input"], dict):
        errors["input"] = [INPUT_NOT_OBJECT]
    if "enabled" in fields and not isinstance(fields["enabled"], bool):
        errors["enabled"] = [NOT_A_BOOLEAN]
    for name, choices in (("overlap", Schedule.Overlap.values), ("catchup", Schedule.Catchup.values)):
        if name in fields and fields[name] not in choices:
            errors[name] = [NOT_A_CHOICE.format(value=fields[name], choices=", ".join(choices))]
    return {name: messages for name, messages in errors.items() if messages}


def _parse_body(data: Any, *, creating: bool) -> dict:
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_OBJECT]})
    unknown = set(data) - {*EDITABLE_FIELDS, *IGNORED_FIELDS}
    if unknown:
        raise ValidationError({name: [UNKNOWN_FIELD] for name in sorted(unknown)})
    fields = {name: data[name] for name in EDITABLE_FIELDS if name in data}
    if creating and "cron" not in fields:
        raise ValidationError({"cron": [CRON_REQUIRED]})
    errors = schedule_fields_check(fields)
    if errors:
        raise ValidationError(errors)
    if "cron" in fields:
        fields["cron"] = " ".join(fields["cron"].split())
    return fields


# --- slots ---------------------------------------------------------------------------------------


def _zone(schedule: Schedule) -> ZoneInfo:
    return ZoneInfo(schedule.timezone)


def slot_key(schedule: Schedule, slot: datetime) -> str:
    """The idempotency key of a slot's run: one run per slot, whoever fires it."""
    return f"schedule:{schedule.pk}:{slot.astimezone(UTC).isoformat()}"


def schedule_next_fire_times(
    schedule: Schedule, *, now: datetime | None = None, count: int = NEXT_FIRE_TIMES
) -> list[datetime]:
    """The next `count` slots after `now`, in the schedule's time zone; none while it is disabled."""
    if not schedule.enabled:
        return []
    start = (now or timezone.now()).astimezone(_zone(schedule))
    return list(islice(CronSim(schedule.cron, start), count))


def _slots_back(schedule: Schedule, now: datetime):
    """Slots at or before `now`, newest first (UTC)."""
    # Reverse iteration starts one tick before its start; a second later makes a slot at `now` count.
    start = now.astimezone(_zone(schedule)).replace(microsecond=0) + timedelta(seconds=1)
    for slot in CronSim(schedule.cron, start, reverse=True):
        yield slot.astimezone(UTC)


def _latest_slot(schedule: Schedule, now: datetime) -> datetime | None:
    return next(_slots_back(schedule, now), None)


def _due_slots(schedule: Schedule, now: datetime) -> list[datetime]:
    """Slots after `last_slot` (a new schedule: after its creation) up to `now`, oldest first, bounded."""
    since = schedule.last_slot or schedule.created_at
    limit = settings.DWC_SCHEDULE_MAX_CATCHUP + MAX_MISSED_RECORDED + 1
    due = []
    for slot in _slots_back(schedule, now):
        if slot <= since:
            break
        if len(due) == limit:
            logger.warning("Schedule %s: slots before %s were missed and not recorded", schedule.pk, due[-1])
            break
        due.append(slot)
    return due[::-1]


def _catchup_plan(schedule: Schedule, due: list[datetime]) -> list[tuple[datetime, bool]]:
    """(slot, whether it may run) for the due slots, oldest first: the current slot, and missed ones by policy."""
    *missed, current = due
    keep = {
        Schedule.Catchup.NONE: 0,
        Schedule.Catchup.LATEST: 1,
        Schedule.Catchup.ALL: settings.DWC_SCHEDULE_MAX_CATCHUP,
    }[schedule.catchup]
    caught_up = set(missed[max(len(missed) - keep, 0) :])
    return [*((slot, slot in caught_up) for slot in missed), (current, True)]


def _waiting(schedule: Schedule):
    return schedule.slots.filter(outcome=ScheduleSlot.Outcome.QUEUED, run__isnull=True)


def _run_active(schedule: Schedule) -> bool:
    return schedule.slots.filter(backfill=False, run__status__in=ACTIVE_RUN).exists()


def _run_start(schedule: Schedule, slot: datetime, *, actor: User | None, request: AnyRequest | None = None) -> Run:
    run, _ = run_trigger(
        workflow=schedule.workflow,
        input={**schedule.input, "_slot": slot.astimezone(UTC).isoformat().replace("+00:00", "Z")},
        trigger=Run.Trigger.SCHEDULE,
        actor=actor,
        idempotency_key=slot_key(schedule, slot),
        request=request,
    )
    return run


def _slot_run(schedule: Schedule, row: ScheduleSlot) -> ScheduleSlot:
    """Start the run of a recorded slot. A workflow that refuses it (paused, deleted, input no longer
    valid) turns the slot into `skipped`: beat would only meet the same refusal again."""
    try:
        row.run = _run_start(schedule, row.slot, actor=None)
    except (Conflict, ValidationError, Http404) as error:
        logger.warning("Schedule %s skipped the slot %s: %s", schedule.pk, row.slot.isoformat(), error)
        row.outcome = ScheduleSlot.Outcome.SKIPPED
    row.save(update_fields=["run", "outcome"])
    return row


def _slot_handle(schedule: Schedule, slot: datetime, *, may_run: bool) -> ScheduleSlot | None:
    """Record one due slot and start its run if policy allows; None if another fire recorded it first."""
    if not may_run:
        outcome = ScheduleSlot.Outcome.MISSED
    elif schedule.overlap == Schedule.Overlap.ALLOW or not (_run_active(schedule) or _waiting(schedule).exists()):
        outcome = ScheduleSlot.Outcome.STARTED
    elif schedule.overlap == Schedule.Overlap.SKIP:
        outcome = ScheduleSlot.Outcome.SKIPPED
    else:
        outcome = ScheduleSlot.Outcome.QUEUED
    row, created = ScheduleSlot.objects.get_or_create(schedule=schedule, slot=slot, defaults={"outcome": outcome})
    if not created:
        return None
    return _slot_run(schedule, row) if outcome == ScheduleSlot.Outcome.STARTED else row


def _queue_advance(schedule: Schedule) -> list[ScheduleSlot]:
    """Start waiting (queued) slots, oldest first, while no earlier slot's run is active."""
    started = []
    for row in _waiting(schedule).order_by("slot"):
        if _run_active(schedule):
            break
        started.append(_slot_run(schedule, row))
    return started


def _recheck_later(schedule_id) -> None:
    # One pending recheck per schedule: every fire while a slot waits would otherwise start a chain of its own.
    if cache.add(f"schedule-recheck:{schedule_id}", 1, timeout=QUEUE_RECHECK_SECONDS - 1):
        celery_app.send_task(FIRE_TASK, (str(schedule_id),), countdown=QUEUE_RECHECK_SECONDS, queue=FIRE_QUEUE)


def _locked(schedule_id) -> Schedule:
    return (
        Schedule.objects.select_for_update(of=("self",), no_key=True)
        .select_related("workflow__workspace", "periodic_task__crontab")
        .get(pk=schedule_id)
    )


def schedule_fire(*, schedule_id, now: datetime | None = None) -> list[ScheduleSlot]:
    """Handle what is due at `now` (default: the current time): queued slots whose turn came, then the
    slots since `last_slot`. Returns the slots this call recorded or started; safe to call any time, from
    any number of processes. A deleted or disabled schedule does nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        try:
            schedule = _locked(schedule_id)
        except Schedule.DoesNotExist:  # deleted since beat sent the message
            return []
        if not schedule.enabled:
            return []
        handled = _queue_advance(schedule)
        due = _due_slots(schedule, now)
        if due:
            taken = set(schedule.slots.filter(slot__in=due).values_list("slot", flat=True))  # e.g. backfilled
            for slot, may_run in _catchup_plan(schedule, due):
                if slot not in taken:
                    handled.append(_slot_handle(schedule, slot, may_run=may_run))
            schedule.last_slot = due[-1]
            schedule.save(update_fields=["last_slot"])
        if _waiting(schedule).exists():
            transaction.on_commit(lambda: _recheck_later(schedule.pk))
    return [row for row in handled if row is not None]


# --- the PeriodicTask ----------------------------------------------------------------------------


def _periodic_task_sync(schedule: Schedule) -> None:
    """Make the schedule's PeriodicTask and CrontabSchedule say what the schedule says (created if missing).

    Each schedule owns its crontab row, so that editing one never moves another schedule.
    """
    task = schedule.periodic_task or PeriodicTask(name=f"Workflow schedule {schedule.pk}")
    crontab_row = task.crontab
    if crontab_row is None or crontab_row.periodictask_set.exclude(pk=task.pk).exists():
        crontab_row = CrontabSchedule()
    for name, value in zip(CRONTAB_FIELDS, schedule.cron.split(), strict=True):
        setattr(crontab_row, name, value)
    crontab_row.timezone = schedule.timezone
    crontab_row.save()
    task.crontab = crontab_row
    task.interval = task.solar = task.clocked = None
    task.task = FIRE_TASK
    task.args = json.dumps([str(schedule.pk)])
    task.kwargs = "{}"
    task.queue = FIRE_QUEUE
    task.one_off = False
    task.enabled = schedule.enabled
    task.description = f"Runs workflow {schedule.workflow.name!r} ({schedule.workflow_id}) at {schedule}."
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


# --- services ------------------------------------------------------------------------------------


def _audit_state(schedule: Schedule) -> dict:
    return {name: getattr(schedule, name) for name in EDITABLE_FIELDS}


def _create(schedule: Schedule, *, actor: User, request: AnyRequest | None) -> Schedule:
    with transaction.atomic():
        schedule.save()
        _periodic_task_sync(schedule)
        audit_record(
            action="schedule.created",
            actor=actor,
            workspace=schedule.workflow.workspace,
            target=schedule,
            changes={**diff({}, _audit_state(schedule)), "workflow": [None, str(schedule.workflow_id)]},
            request=request,
        )
    return schedule


def _update(schedule_id, fields: dict, *, actor: User, request: AnyRequest | None) -> Schedule:
    """Change the editable fields under the row lock; beat's own field (last_slot) is not overwritten.

    A schedule that is re-enabled, or gets another cron or time zone, starts from the current slot:
    the slots it passed while disabled, or under the old timing, are not an outage to catch up on.
    """
    with transaction.atomic():
        schedule = _locked(schedule_id)
        before = _audit_state(schedule)
        resumed = fields.get("enabled") is True and not schedule.enabled
        retimed = any(name in fields and fields[name] != getattr(schedule, name) for name in ("cron", "timezone"))
        for name, value in fields.items():
            setattr(schedule, name, value)
        if schedule.enabled and (resumed or retimed):
            now = timezone.now()
            schedule.last_slot = _latest_slot(schedule, now) or now
        schedule.save(update_fields=[*fields, "last_slot", "updated_at"])
        _periodic_task_sync(schedule)
        changes = diff(before, _audit_state(schedule))
        if changes:
            audit_record(
                action="schedule.updated",
                actor=actor,
                workspace=schedule.workflow.workspace,
                target=schedule,
                changes=changes,
                request=request,
            )
    return schedule


def _check_input(workflow: Workflow, value: dict) -> None:
    """Reject at save an input every slot's run would be refused for (runs also get `_slot`)."""
    run_input_check(workflow, {**value, "_slot": timezone.now().isoformat()})


def schedule_create(*, workflow: Workflow, actor: User, data: Any, request: AnyRequest | None = None) -> Schedule:
    """Create a schedule and its PeriodicTask in one transaction. ValidationError names the bad fields."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    if workflow.is_deleted:
        raise Http404("No such workflow.")
    fields = _parse_body(data, creating=True)
    _check_input(workflow, fields.get("input", {}))
    return _create(Schedule(workflow=workflow, created_by=actor, **fields), actor=actor, request=request)


def schedule_update(*, schedule: Schedule, actor: User, data: Any, request: AnyRequest | None = None) -> Schedule:
    """Change the fields given (PATCH); the PeriodicTask and its crontab follow."""
    ensure_role(actor, schedule.workflow.workspace, Role.EDITOR)
    fields = _parse_body(data, creating=False)
    if "input" in fields:
        _check_input(schedule.workflow, fields["input"])
    return _update(schedule.pk, fields, actor=actor, request=request)


def schedule_save(*, schedule: Schedule, actor: User, request: AnyRequest | None = None) -> Schedule:
    """Save a schedule whose fields an admin form set, new or changed, and sync its PeriodicTask."""
    ensure_role(actor, schedule.workflow.workspace, Role.EDITOR)
    fields = {name: getattr(schedule, name) for name in EDITABLE_FIELDS}
    errors = schedule_fields_check(fields)
    if errors:
        raise ValidationError(errors)
    schedule.cron = fields["cron"] = " ".join(fields["cron"].split())
    if schedule._state.adding:
        return _create(schedule, actor=actor, request=request)
    return _update(schedule.pk, fields, actor=actor, request=request)


def schedule_delete(*, schedule: Schedule, actor: User, request: AnyRequest | None = None) -> None:
    """Delete the schedule, its slots' records and its PeriodicTask; runs it started stay."""
    ensure_role(actor, schedule.workflow.workspace, Role.EDITOR)
    with transaction.atomic():
        schedule = _locked(schedule.pk)
        task = schedule.periodic_task
        schedule_id, before = schedule.pk, _audit_state(schedule)
        schedule.delete()
        if task is not None:
            crontab_row = task.crontab
            task.delete()
            if crontab_row is not None and not crontab_row.periodictask_set.exists():
                crontab_row.delete()
        audit_record(
            action="schedule.deleted",
            actor=actor,
            workspace=schedule.workflow.workspace,
            target_type="schedule",
            target_id=schedule_id,
            changes={**diff(before, {}), "workflow": [str(schedule.workflow_id), None]},
            request=request,
        )


def schedule_trigger_now(*, schedule: Schedule, actor: User, request: AnyRequest | None = None) -> Run:
    """Start a run at once with the schedule's input, outside its slots: no `_slot`, no overlap check."""
    run, _ = run_trigger(
        workflow=schedule.workflow,
        input=dict(schedule.input),
        trigger=Run.Trigger.SCHEDULE,
        actor=actor,
        request=request,
    )
    return run


def _slots_between(schedule: Schedule, start: datetime, end: datetime, *, limit: int) -> list[datetime]:
    # Forward iteration starts one tick after its start; a second earlier makes a slot at `start` count.
    first = start.astimezone(_zone(schedule)).replace(microsecond=0) - timedelta(seconds=1)
    slots = []
    for slot in CronSim(schedule.cron, first):
        slot = slot.astimezone(UTC)
        if slot > end or len(slots) == limit:
            break
        if slot >= start:
            slots.append(slot)
    return slots


def schedule_backfill(
    *,
    schedule: Schedule,
    actor: User,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    request: AnyRequest | None = None,
) -> list[ScheduleSlot]:
    """Start one run per slot in [start, end], a past range, recorded as backfilled slots.

    Slots already handled (by beat or an earlier backfill) keep what they have. Overlap does not apply.
    All or nothing: ValidationError for a bad range, Conflict if the workflow may not run (409).
    Returns every slot of the range, oldest first.
    """
    ensure_role(actor, schedule.workflow.workspace, Role.EDITOR)
    now = now or timezone.now()
    if end > now:
        raise ValidationError({"end": [BACKFILL_FUTURE]})
    if start >= end:
        raise ValidationError({"start": [BACKFILL_ORDER]})
    limit = settings.DWC_SCHEDULE_MAX_CATCHUP
    slots = _slots_between(schedule, start, end, limit=limit + 1)
    if len(slots) > limit:
        raise ValidationError({"end": [BACKFILL_TOO_MANY.format(limit=limit)]})
    if not slots:
        raise ValidationError({"start": [BACKFILL_EMPTY]})
    rows = []
    with transaction.atomic():
        schedule = _locked(schedule.pk)
        for slot in slots:
            row, created = ScheduleSlot.objects.get_or_create(
                schedule=schedule, slot=slot, defaults={"outcome": ScheduleSlot.Outcome.STARTED, "backfill": True}
            )
            if created:
                row.run = _run_start(schedule, slot, actor=actor, request=request)
                row.save(update_fields=["run"])
            rows.append(row)
    return rows
