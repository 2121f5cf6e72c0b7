"""What happens at each slot of a cron schedule: firing, catch-up, overlap, backfill.

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
`all` the newest DWC_SCHEDULE_MAX_CATCHUP; the others are recorded `missed`, and one `schedule.missed`
notification event per fire names how many, the first and the last (workflows.services.notices).
Overlap then applies to each slot in order, as in Temporal: catching up under `skip` starts the oldest
slot and skips the rest while it runs; `queue` works a backlog off one run after another, `allow` all
at once.

DST (cronsim's behaviour, as in Debian cron): an expression with a fixed minute and hour is read on the
wall clock. A time that does not exist that day ("30 2 * * *" in Europe/Berlin on 2026-03-29) fires at
the first minute after the gap (03:00 CEST); a time that occurs twice (2026-10-25) fires once, at its
first occurrence (02:30 CEST). Expressions with `*` in the minute or hour step through real time:
"30 * * * *" has no 02:30 in spring and two in autumn.
"""

import logging
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from cronsim import CronSim
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import AnyRequest
from config.celery import app as celery_app
from core.problems import Conflict
from workflows.models import Run, Schedule, ScheduleSlot
from workflows.services.analytics_feed import schedule_missed_count
from workflows.services.notices import schedule_missed_submit
from workflows.services.runs import run_trigger

logger = logging.getLogger(__name__)

FIRE_TASK = "workflows.tasks.fire_schedule"
FIRE_QUEUE = settings.DWC_CONTROL_QUEUE
NEXT_FIRE_TIMES = 5
QUEUE_RECHECK_SECONDS = 5
# Rows written as `missed` by one fire, beyond the slots it starts: a minutely schedule whose beat was
# down for a week would otherwise write ten thousand of them. Older slots are only logged.
MAX_MISSED_RECORDED = 1000
ACTIVE_RUN = [status for status in Run.Status.values if status not in Run.FINISHED]

BACKFILL_ORDER = "The range must start before it ends."
BACKFILL_FUTURE = "A backfill covers past slots only; this is in the future."
BACKFILL_EMPTY = "The schedule has no slot in this range."
BACKFILL_TOO_MANY = "The range holds more than {limit} slots (DWC_SCHEDULE_MAX_CATCHUP); backfill it in parts."


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


def latest_slot(schedule: Schedule, now: datetime) -> datetime | None:
    """The newest slot at or before `now` (UTC); None if the expression has none."""
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


def schedule_lock(schedule_id) -> Schedule:
    """The schedule read under a row lock held until the transaction ends: fires and edits queue."""
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
            schedule = schedule_lock(schedule_id)
        except Schedule.DoesNotExist:  # deleted since beat sent the message
            return []
        if not schedule.enabled:
            return []
        handled = _queue_advance(schedule)
        due = _due_slots(schedule, now)
        if due:
            taken = set(schedule.slots.filter(slot__in=due).values_list("slot", flat=True))  # e.g. backfilled
            recorded = [
                _slot_handle(schedule, slot, may_run=may_run)
                for slot, may_run in _catchup_plan(schedule, due)
                if slot not in taken
            ]
            handled += recorded
            schedule.last_slot = due[-1]
            schedule.save(update_fields=["last_slot"])
            missed = [row.slot for row in recorded if row is not None and row.outcome == ScheduleSlot.Outcome.MISSED]
            schedule_missed_submit(schedule=schedule, slots=missed)
            schedule_missed_count(schedule=schedule, slots=missed)
        if _waiting(schedule).exists():
            transaction.on_commit(lambda: _recheck_later(schedule.pk))
    return [row for row in handled if row is not None]


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
        schedule = schedule_lock(schedule.pk)
        for slot in slots:
            row, created = ScheduleSlot.objects.get_or_create(
                schedule=schedule, slot=slot, defaults={"outcome": ScheduleSlot.Outcome.STARTED, "backfill": True}
            )
            if created:
                row.run = _run_start(schedule, slot, actor=actor, request=request)
                row.save(update_fields=["run"])
            rows.append(row)
    return rows
