"""Schedules with a real worker: a queued slot is started by the worker's own recheck once the run before it ends."""

import time
from datetime import UTC, datetime

import pytest

from accounts.access import personal_workspace
from tests.workflows.engine.conftest import wait_for_run
from workflows.models import Schedule, ScheduleSlot
from workflows.services.schedule_slots import schedule_fire
from workflows.services.schedules import schedule_create
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_slot_run(slot: ScheduleSlot, timeout: float = 30) -> ScheduleSlot:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slot.refresh_from_db()
        if slot.run_id is not None:
            return slot
        time.sleep(0.1)
    raise AssertionError(f"slot {slot.slot} is still {slot.outcome} without a run after {timeout}s")


def test_overlap_queue_starts_the_second_slot_after_the_first_run_finished(engine_worker, user):
    workflow = workflow_create(
        actor=user,
        workspace=personal_workspace(user),
        data={
            "name": "Slow",
            "status": "active",
            "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 2}}],
        },
    )
    # A yearly schedule with slots long past, so the worker's recheck (at the real time) finds no new slot.
    schedule = schedule_create(workflow=workflow, actor=user, data={"cron": "0 0 1 1 *", "overlap": "queue"})
    Schedule.objects.filter(pk=schedule.pk).update(last_slot=datetime(2024, 1, 1, tzinfo=UTC))

    [first] = schedule_fire(schedule_id=schedule.pk, now=datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC))
    [second] = schedule_fire(schedule_id=schedule.pk, now=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert (first.outcome, second.outcome, second.run_id) == ("started", "queued", None)

    first_run = wait_for_run(first.run_id)
    assert first_run.status == "succeeded", first_run.error
    second_run = wait_for_run(wait_for_slot_run(second).run_id)
    assert second_run.status == "succeeded", second_run.error
    assert second_run.created_at >= first_run.finished_at
    assert second_run.input == {"_slot": "2026-01-01T00:00:00Z"}
