"""Cron schedules and their django-celery-beat PeriodicTask: the fields checked, and created, changed,
deleted or triggered at once. What happens at their slots is in schedule_slots."""

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import ParseException, crontab
from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import AnyRequest, audit_record, diff
from workflows.models import Run, Schedule, Workflow
from workflows.services.runs import run_input_check, run_trigger
from workflows.services.schedule_slots import FIRE_QUEUE, FIRE_TASK, latest_slot, schedule_lock

# The CrontabSchedule fields, in the order of a cron expression's five fields.
CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")

EDITABLE_FIELDS = ("cron", "timezone", "input", "enabled", "overlap", "catchup")
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("id", "workflow", "last_slot", "next_fire_times", "periodic_task", "created_at", "updated_at")

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
        schedule = schedule_lock(schedule_id)
        before = _audit_state(schedule)
        resumed = fields.get("enabled") is True and not schedule.enabled
        retimed = any(name in fields and fields[name] != getattr(schedule, name) for name in ("cron", "timezone"))
        for name, value in fields.items():
            setattr(schedule, name, value)
        if schedule.enabled and (resumed or retimed):
            now = timezone.now()
            schedule.last_slot = latest_slot(schedule, now) or now
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
        schedule = schedule_lock(schedule.pk)
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
