"""Cron schedules: validation, beat's PeriodicTask, one run per slot, overlap, catch-up, backfill, access, admin.

Slots are fired by calling `schedule_fire(now=...)` as beat's task would; runs stay pending (no worker),
and their statuses are set directly where a test needs a run to be active or finished.
"""

import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.access import personal_workspace
from accounts.models import Membership, User
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory
from workflows.models import Run, Schedule, ScheduleSlot
from workflows.services import schedule_slots
from workflows.services import schedules as services
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
# Slots of the hourly test schedules; all after the schedules' creation, so only last_slot bounds them.
T0 = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def owner_api(owner):
    return client_for(owner)


@pytest.fixture
def workflow(owner):
    return workflow_create(
        actor=owner,
        workspace=personal_workspace(owner),
        data={"name": "Nightly", "status": "active", "nodes": [{"key": "a", "type": "text", "content": "a"}]},
    )


def make(workflow, owner, **fields) -> Schedule:
    return services.schedule_create(workflow=workflow, actor=owner, data={"cron": "0 * * * *", **fields})


def hourly(workflow, owner, *, last_slot=T0, **fields) -> Schedule:
    """An hourly UTC schedule whose last handled slot was `last_slot`."""
    schedule = make(workflow, owner, **fields)
    Schedule.objects.filter(pk=schedule.pk).update(last_slot=last_slot)
    return schedule


def fire(schedule: Schedule, now: datetime) -> list[ScheduleSlot]:
    return schedule_slots.schedule_fire(schedule_id=schedule.pk, now=now)


def outcomes(schedule: Schedule) -> list[tuple[datetime, str, bool]]:
    """(slot, outcome, has a run) per recorded slot, oldest first."""
    rows = ScheduleSlot.objects.filter(schedule=schedule).order_by("slot")
    return [(row.slot, row.outcome, row.run_id is not None) for row in rows]


def finish(run_id, status: str = "succeeded") -> None:
    Run.objects.filter(pk=run_id).update(status=status, finished_at=timezone.now())


def run_of(schedule: Schedule, slot: datetime) -> Run:
    return ScheduleSlot.objects.get(schedule=schedule, slot=slot).run


def beat_rows() -> tuple[int, int, int]:
    return Schedule.objects.count(), PeriodicTask.objects.count(), CrontabSchedule.objects.count()


# --- creating, validating, the PeriodicTask -------------------------------------------------------


def test_creating_a_schedule_stores_a_periodic_task_that_fires_it(owner_api, workflow):
    body = {"cron": "30 2 * * 1-5", "timezone": "Europe/Berlin", "input": {"report": "daily"}, "overlap": "queue"}
    answer = owner_api.post(f"/api/v3/workflows/{workflow.pk}/schedules", body, format="json")
    assert answer.status_code == 201, answer.content
    data = answer.json()
    assert set(data) == {
        "id",
        "workflow",
        "cron",
        "timezone",
        "input",
        "enabled",
        "overlap",
        "catchup",
        "last_slot",
        "next_fire_times",
        "periodic_task",
        "created_at",
        "updated_at",
    }
    assert (data["workflow"], data["cron"], data["timezone"]) == (str(workflow.pk), "30 2 * * 1-5", "Europe/Berlin")
    assert (data["enabled"], data["overlap"], data["catchup"], data["last_slot"]) == (True, "queue", "none", None)
    task = PeriodicTask.objects.get(pk=data["periodic_task"])
    assert task.task == "workflows.tasks.fire_schedule"
    assert task.args == f'["{data["id"]}"]'
    assert (task.queue, task.enabled) == ("engine", True)
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "30",
        "2",
        "*",
        "*",
        "1-5",
    )
    assert str(crontab.timezone) == "Europe/Berlin"


def test_next_fire_times_are_five_slots_in_the_schedules_time_zone(owner_api, workflow):
    answer = owner_api.post(
        f"/api/v3/workflows/{workflow.pk}/schedules", {"cron": "15 9 * * *", "timezone": "Asia/Tokyo"}, format="json"
    )
    times = [datetime.fromisoformat(value) for value in answer.json()["next_fire_times"]]
    assert len(times) == 5
    assert all(value.utcoffset() == timedelta(hours=9) and (value.hour, value.minute) == (9, 15) for value in times)
    assert times == sorted(times) and times[0] > timezone.now()
    assert [b - a for a, b in pairwise(times)] == [timedelta(days=1)] * 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "0 0 * * * *"}, "cron"),
        ({"cron": ""}, "cron"),
        ({}, "cron"),
        ({"cron": "0 0 L * *"}, "cron"),  # cronsim reads it, Celery beat cannot
        ({"cron": "0 0 1 * 1"}, "cron"),  # both day fields: cron ORs them, beat ANDs them
        ({"cron": "0 0 * * *", "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"cron": "0 0 * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"cron": "0 0 * * *", "input": [1, 2]}, "input"),
        ({"cron": "0 0 * * *", "overlap": "sometimes"}, "overlap"),
        ({"cron": "0 0 * * *", "catchup": "yes"}, "catchup"),
        ({"cron": "0 0 * * *", "enabled": "yes"}, "enabled"),
        ({"cron": "0 0 * * *", "colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_400_naming_the_field_and_write_nothing(owner_api, workflow, body, field):
    before = beat_rows()
    answer = owner_api.post(f"/api/v3/workflows/{workflow.pk}/schedules", body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    assert list(answer.json()["errors"]) == [field]
    assert beat_rows() == before


def test_a_bad_patch_is_400_and_changes_nothing(owner_api, workflow, owner):
    schedule = make(workflow, owner)
    for body, field in (({"cron": "0 25 * * *"}, "cron"), ({"timezone": "Nowhere/Land"}, "timezone")):
        answer = owner_api.patch(f"/api/v3/schedules/{schedule.pk}", body, format="json")
        assert answer.status_code == 400
        assert list(answer.json()["errors"]) == [field]
        assert answer.json()["errors"][field][0] in (
            services.TIMEZONE_UNKNOWN.format(name="Nowhere/Land"),
            services.CRON_INVALID.format(error="Bad hour"),
        )
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.timezone) == ("0 * * * *", "UTC")
    assert schedule.periodic_task.crontab.hour == "*"


def test_patching_cron_and_timezone_updates_the_crontab_in_place(owner_api, workflow, owner):
    schedule = make(workflow, owner)
    crontab_id = schedule.periodic_task.crontab_id
    answer = owner_api.patch(
        f"/api/v3/schedules/{schedule.pk}", {"cron": "0  6 * * 1", "timezone": "America/New_York"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["cron"] == "0 6 * * 1"
    assert all(value.endswith(("-05:00", "-04:00")) for value in answer.json()["next_fire_times"])
    crontab = CrontabSchedule.objects.get(pk=crontab_id)
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "0",
        "6",
        "1",
        "America/New_York",
    )
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).crontab_id == crontab_id


def test_disabling_disables_the_periodic_task_and_enabling_starts_from_the_current_slot(owner_api, workflow, owner):
    schedule = hourly(workflow, owner, last_slot=T0 - hours(24 * 30))
    answer = owner_api.patch(f"/api/v3/schedules/{schedule.pk}", {"enabled": False}, format="json")
    assert (answer.json()["enabled"], answer.json()["next_fire_times"]) == (False, [])
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False
    assert fire(schedule, timezone.now()) == []

    owner_api.patch(f"/api/v3/schedules/{schedule.pk}", {"enabled": True}, format="json")
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is True
    schedule.refresh_from_db()
    # The disabled month is not an outage: nothing of it is caught up or recorded missed.
    assert timezone.now() - schedule.last_slot < hours(1)
    assert fire(schedule, timezone.now()) == []
    assert not ScheduleSlot.objects.filter(schedule=schedule).exists()


def test_deleting_a_schedule_deletes_its_periodic_task_and_crontab(owner_api, workflow, owner):
    schedule = make(workflow, owner)
    task_id, crontab_id = schedule.periodic_task_id, schedule.periodic_task.crontab_id
    assert owner_api.delete(f"/api/v3/schedules/{schedule.pk}").status_code == 204
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    assert not CrontabSchedule.objects.filter(pk=crontab_id).exists()


def test_a_deleted_schedule_fires_nothing(workflow, owner):
    schedule = hourly(workflow, owner)
    services.schedule_delete(schedule=schedule, actor=owner)
    assert fire(schedule, T0 + hours(1)) == []
    assert not Run.objects.exists()


# --- DST ------------------------------------------------------------------------------------------


def test_a_daily_schedule_across_the_spring_gap_fires_at_the_first_minute_after_it(workflow, owner):
    """cronsim (like Debian cron) runs a job set in the skipped hour at 03:00, the first time that exists."""
    schedule = make(workflow, owner, cron="30 2 * * *", timezone="Europe/Berlin")
    times = schedule_slots.schedule_next_fire_times(schedule, now=datetime(2026, 3, 27, 12, tzinfo=BERLIN))
    assert [value.isoformat() for value in times] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
        "2026-04-01T02:30:00+02:00",
    ]


def test_a_daily_schedule_across_the_autumn_fold_fires_once(workflow, owner):
    schedule = make(workflow, owner, cron="30 2 * * *", timezone="Europe/Berlin")
    times = schedule_slots.schedule_next_fire_times(schedule, now=datetime(2026, 10, 23, 12, tzinfo=BERLIN))
    assert [value.isoformat() for value in times] == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",  # the first 02:30; the second (+01:00) does not fire
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
        "2026-10-28T02:30:00+01:00",
    ]


def test_an_hourly_schedule_follows_real_time_across_both_changes(workflow, owner):
    schedule = make(workflow, owner, cron="30 * * * *", timezone="Europe/Berlin")
    spring = schedule_slots.schedule_next_fire_times(schedule, now=datetime(2026, 3, 29, 0, 45, tzinfo=BERLIN), count=3)
    assert [value.isoformat() for value in spring] == [
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:30:00+02:00",  # 02:30 does not exist
        "2026-03-29T04:30:00+02:00",
    ]
    autumn = schedule_slots.schedule_next_fire_times(
        schedule, now=datetime(2026, 10, 25, 1, 45, tzinfo=BERLIN), count=3
    )
    assert [value.isoformat() for value in autumn] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",  # the repeated hour has its own slot
        "2026-10-25T03:30:00+01:00",
    ]


def test_firing_on_the_spring_change_day_runs_the_shifted_slot_once(workflow, owner):
    schedule = make(workflow, owner, cron="30 2 * * *", timezone="Europe/Berlin")
    Schedule.objects.filter(pk=schedule.pk).update(last_slot=datetime(2026, 3, 28, 1, 30, tzinfo=UTC))
    # Celery's crontab rings at 03:30 CEST that day; the slot is cronsim's 03:00 CEST (01:00 UTC).
    [row] = fire(schedule, datetime(2026, 3, 29, 1, 30, 2, tzinfo=UTC))
    assert (row.slot, row.outcome) == (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "started")
    assert row.run.input["_slot"] == "2026-03-29T01:00:00Z"
    assert fire(schedule, datetime(2026, 3, 29, 1, 31, tzinfo=UTC)) == []


# --- exactly once per slot ------------------------------------------------------------------------


def test_two_beats_firing_the_same_slot_start_one_run(workflow, owner):
    schedule = hourly(workflow, owner, input={"region": "eu"})
    [row] = fire(schedule, T0 + hours(1) + timedelta(seconds=1))
    assert fire(schedule, T0 + hours(1) + timedelta(seconds=3)) == []
    run = Run.objects.get()
    assert row.run == run
    assert (run.trigger, run.status, run.created_by) == ("schedule", "running", None)  # started at once
    assert run.input == {"region": "eu", "_slot": "2030-01-01T01:00:00Z"}
    assert run.idempotency_key == f"schedule:{schedule.pk}:2030-01-01T01:00:00+00:00"
    schedule.refresh_from_db()
    assert schedule.last_slot == T0 + hours(1)


def test_a_beat_that_lost_last_slot_still_does_not_start_a_slot_twice(workflow, owner):
    """A restarted beat (or a restored row) may see a handled slot as due again: the slot record stops it."""
    schedule = hourly(workflow, owner)
    fire(schedule, T0 + hours(1))
    Schedule.objects.filter(pk=schedule.pk).update(last_slot=T0)
    assert fire(schedule, T0 + hours(1) + timedelta(minutes=5)) == []
    assert Run.objects.count() == 1


def test_a_slot_exactly_at_now_is_due_and_the_next_one_is_not(workflow, owner):
    schedule = hourly(workflow, owner)
    assert fire(schedule, T0 + hours(1) - timedelta(seconds=1)) == []
    assert [row.slot for row in fire(schedule, T0 + hours(1))] == [T0 + hours(1)]


def test_a_new_schedule_does_not_catch_up_slots_before_its_creation(workflow, owner):
    schedule = make(workflow, owner, cron="* * * * *", catchup="all", overlap="allow")
    created = datetime(2030, 1, 1, 10, 0, 30, tzinfo=UTC)
    Schedule.objects.filter(pk=schedule.pk).update(created_at=created)
    rows = fire(schedule, datetime(2030, 1, 1, 10, 1, 5, tzinfo=UTC))
    assert [(row.slot, row.outcome) for row in rows] == [(datetime(2030, 1, 1, 10, 1, tzinfo=UTC), "started")]


@pytest.mark.django_db(transaction=True)
def test_concurrent_fires_of_one_slot_start_one_run(workflow, owner):
    schedule = hourly(workflow, owner, overlap="allow")
    barrier = threading.Barrier(4)
    results, errors = [], []

    def beat():
        try:
            barrier.wait()
            results.append(fire(schedule, T0 + hours(1) + timedelta(seconds=2)))
        except Exception as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(rows) for rows in results) == [0, 0, 0, 1]
    assert Run.objects.count() == 1
    assert ScheduleSlot.objects.filter(schedule=schedule).count() == 1


# --- overlap --------------------------------------------------------------------------------------


def test_overlap_skip_records_a_slot_skipped_while_the_previous_run_is_active(workflow, owner):
    schedule = hourly(workflow, owner)  # overlap: skip is the default
    [first] = fire(schedule, T0 + hours(1))
    Run.objects.filter(pk=first.run_id).update(status="running")
    [second] = fire(schedule, T0 + hours(2))
    assert (second.outcome, second.run) == ("skipped", None)
    finish(first.run_id)
    [third] = fire(schedule, T0 + hours(3))
    assert third.outcome == "started" and third.run is not None
    assert Run.objects.count() == 2


def test_overlap_allow_starts_a_slot_while_the_previous_run_is_active(workflow, owner):
    schedule = hourly(workflow, owner, overlap="allow")
    fire(schedule, T0 + hours(1))
    [second] = fire(schedule, T0 + hours(2))
    assert second.outcome == "started"
    assert Run.objects.filter(status="running").count() == 2


def test_overlap_queue_starts_the_queued_slot_only_after_the_previous_run_finished(workflow, owner):
    schedule = hourly(workflow, owner, overlap="queue")
    [first] = fire(schedule, T0 + hours(1))
    [second] = fire(schedule, T0 + hours(2))
    assert (second.outcome, second.run) == ("queued", None)
    # A recheck (or the next beat) while the first run is still active changes nothing.
    assert fire(schedule, T0 + hours(2) + timedelta(minutes=5)) == []
    finish(first.run_id)
    [started] = fire(schedule, T0 + hours(2) + timedelta(minutes=10))
    assert (started.slot, started.outcome) == (T0 + hours(2), "queued")
    assert started.run.input["_slot"] == "2030-01-01T02:00:00Z"
    assert started.run.created_at > Run.objects.get(pk=first.run_id).finished_at


def test_overlap_queue_starts_waiting_slots_one_at_a_time_oldest_first(workflow, owner):
    schedule = hourly(workflow, owner, overlap="queue")
    [first] = fire(schedule, T0 + hours(1))
    fire(schedule, T0 + hours(2))
    finish(first.run_id)
    # The waiting 02:00 slot starts; 03:00 queues behind it rather than overtaking it.
    rows = fire(schedule, T0 + hours(3))
    assert [(row.slot, row.outcome, row.run_id is not None) for row in rows] == [
        (T0 + hours(2), "queued", True),
        (T0 + hours(3), "queued", False),
    ]
    finish(rows[0].run_id, "failed")
    [last] = fire(schedule, T0 + hours(3) + timedelta(minutes=1))
    assert (last.slot, last.run_id is not None) == (T0 + hours(3), True)


def test_backfilled_runs_do_not_hold_up_beats_slots(workflow, owner):
    schedule = hourly(workflow, owner, last_slot=T0 + hours(5))
    schedule_slots.schedule_backfill(schedule=schedule, actor=owner, start=T0, end=T0 + hours(2), now=T0 + hours(6))
    [row] = fire(schedule, T0 + hours(6))
    assert row.outcome == "started"


# --- catch-up -------------------------------------------------------------------------------------


def test_catchup_none_runs_the_current_slot_and_records_the_missed_ones(workflow, owner):
    schedule = hourly(workflow, owner)  # beat was down from 00:00 to 05:10
    fire(schedule, T0 + hours(5) + timedelta(minutes=10))
    assert outcomes(schedule) == [
        (T0 + hours(1), "missed", False),
        (T0 + hours(2), "missed", False),
        (T0 + hours(3), "missed", False),
        (T0 + hours(4), "missed", False),
        (T0 + hours(5), "started", True),
    ]
    schedule.refresh_from_db()
    assert schedule.last_slot == T0 + hours(5)


def test_catchup_latest_also_runs_the_newest_missed_slot(workflow, owner):
    schedule = hourly(workflow, owner, catchup="latest", overlap="allow")
    fire(schedule, T0 + hours(4))
    assert outcomes(schedule) == [
        (T0 + hours(1), "missed", False),
        (T0 + hours(2), "missed", False),
        (T0 + hours(3), "started", True),
        (T0 + hours(4), "started", True),
    ]


def test_catchup_all_runs_missed_slots_up_to_the_bound(workflow, owner, settings):
    settings.DWC_SCHEDULE_MAX_CATCHUP = 3
    schedule = hourly(workflow, owner, catchup="all", overlap="allow")
    fire(schedule, T0 + hours(6))
    assert outcomes(schedule) == [
        (T0 + hours(1), "missed", False),
        (T0 + hours(2), "missed", False),
        (T0 + hours(3), "started", True),
        (T0 + hours(4), "started", True),
        (T0 + hours(5), "started", True),
        (T0 + hours(6), "started", True),
    ]
    slots = sorted(run.input["_slot"] for run in Run.objects.all())
    assert slots == [f"2030-01-01T0{hour}:00:00Z" for hour in (3, 4, 5, 6)]


def test_catchup_applies_overlap_to_each_slot_in_order(workflow, owner):
    """As in Temporal: under `queue` a backlog runs one after another; under `skip` the rest is skipped."""
    queued = hourly(workflow, owner, catchup="all", overlap="queue")
    fire(queued, T0 + hours(3))
    assert outcomes(queued) == [
        (T0 + hours(1), "started", True),
        (T0 + hours(2), "queued", False),
        (T0 + hours(3), "queued", False),
    ]
    skipped = hourly(workflow, owner, catchup="all")
    fire(skipped, T0 + hours(3))
    assert [outcome for _, outcome, _ in outcomes(skipped)] == ["started", "skipped", "skipped"]


def test_slots_beyond_what_one_fire_records_are_only_logged(workflow, owner, settings, monkeypatch, caplog):
    settings.DWC_SCHEDULE_MAX_CATCHUP = 2
    monkeypatch.setattr(schedule_slots, "MAX_MISSED_RECORDED", 3)
    schedule = hourly(workflow, owner, catchup="all", overlap="allow")
    fire(schedule, T0 + hours(10))
    recorded = outcomes(schedule)
    assert [slot for slot, _, _ in recorded] == [T0 + hours(n) for n in range(5, 11)]
    assert [outcome for _, outcome, _ in recorded] == ["missed"] * 3 + ["started"] * 3
    assert "were missed and not recorded" in caplog.text


# --- backfill -------------------------------------------------------------------------------------


def test_backfill_starts_one_run_per_slot_of_the_range_once(owner_api, workflow, owner):
    schedule = make(workflow, owner, input={"kind": "report"})
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T03:00:00Z"}
    answer = owner_api.post(f"/api/v3/schedules/{schedule.pk}/backfill", body, format="json")
    assert answer.status_code == 202, answer.content
    assert [(row["slot"], row["outcome"], row["backfill"]) for row in answer.json()] == [
        (f"2026-01-01T0{hour}:00:00Z", "started", True) for hour in range(4)
    ]
    runs = Run.objects.filter(pk__in=[row["run"] for row in answer.json()])
    assert sorted(run.input["_slot"] for run in runs) == [f"2026-01-01T0{hour}:00:00Z" for hour in range(4)]
    assert all(run.input["kind"] == "report" and run.trigger == "schedule" for run in runs)

    wider = owner_api.post(
        f"/api/v3/schedules/{schedule.pk}/backfill",
        {"start": "2026-01-01T02:00:00Z", "end": "2026-01-01T05:00:00Z"},
        format="json",
    )
    assert wider.status_code == 202
    assert Run.objects.count() == 6  # 02:00 and 03:00 were handled already
    assert ScheduleSlot.objects.filter(schedule=schedule, backfill=True).count() == 6


def test_beat_does_not_start_a_slot_that_was_backfilled(workflow, owner):
    schedule = hourly(workflow, owner)
    schedule_slots.schedule_backfill(
        schedule=schedule, actor=owner, start=T0 + hours(0.5), end=T0 + hours(1), now=T0 + hours(1)
    )
    assert fire(schedule, T0 + hours(1)) == []
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T05:00:00Z"}, "end"),  # 6 slots, the bound is 5
        ({"start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"start": "2026-01-01T00:10:00Z", "end": "2026-01-01T00:50:00Z"}, "start"),
        ({"start": "yesterday", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"end": "2026-01-01T00:00:00Z"}, "start"),
    ],
)
def test_a_bad_backfill_range_is_400_and_starts_nothing(owner_api, workflow, owner, settings, body, field):
    settings.DWC_SCHEDULE_MAX_CATCHUP = 5
    schedule = make(workflow, owner)
    answer = owner_api.post(f"/api/v3/schedules/{schedule.pk}/backfill", body, format="json")
    assert answer.status_code == 400, answer.content
    assert list(answer.json()["errors"]) == [field]
    assert not Run.objects.exists() and not ScheduleSlot.objects.exists()


def test_backfill_of_a_paused_workflow_is_409_and_writes_nothing(owner_api, workflow, owner):
    schedule = make(workflow, owner)
    workflow.status = "paused"
    workflow.save()
    answer = owner_api.post(
        f"/api/v3/schedules/{schedule.pk}/backfill",
        {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T03:00:00Z"},
        format="json",
    )
    assert answer.status_code == 409
    assert not Run.objects.exists() and not ScheduleSlot.objects.exists()


# --- trigger now, slots, workflows that may not run ------------------------------------------------


def test_trigger_now_starts_a_run_outside_the_slots(owner_api, workflow, owner):
    schedule = make(workflow, owner, input={"x": 1})
    answer = owner_api.post(f"/api/v3/schedules/{schedule.pk}/trigger-now")
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(pk=answer.json()["id"])
    assert (run.trigger, run.input, run.created_by, run.idempotency_key) == ("schedule", {"x": 1}, owner, None)
    assert not ScheduleSlot.objects.exists()


def test_a_schedule_of_a_workflow_that_may_not_run_skips_its_slot(owner_api, workflow, owner):
    schedule = hourly(workflow, owner)
    workflow.status = "paused"
    workflow.save()
    [row] = fire(schedule, T0 + hours(1))
    assert (row.outcome, row.run) == ("skipped", None)
    assert owner_api.post(f"/api/v3/schedules/{schedule.pk}/trigger-now").status_code == 409
    assert not Run.objects.exists()


def test_slots_are_listed_newest_first_and_paginated(owner_api, workflow, owner):
    schedule = hourly(workflow, owner)
    fire(schedule, T0 + hours(3))
    answer = owner_api.get(f"/api/v3/schedules/{schedule.pk}/slots")
    assert answer.status_code == 200
    data = answer.json()
    assert data["count"] == 3
    assert [row["outcome"] for row in data["results"]] == ["started", "missed", "missed"]
    assert set(data["results"][0]) == {"slot", "outcome", "run", "backfill"}
    assert data["results"][0]["run"] == str(Run.objects.get().pk)


def test_schedules_are_listed_per_workflow_and_for_the_caller(owner_api, workflow, owner):
    first, second = make(workflow, owner), make(workflow, owner, cron="0 0 * * *", enabled=False)
    other = workflow_create(actor=owner, workspace=personal_workspace(owner), data={"name": "Other"})
    third = make(other, owner)
    per_workflow = owner_api.get(f"/api/v3/workflows/{workflow.pk}/schedules").json()
    assert [row["id"] for row in per_workflow["results"]] == [str(first.pk), str(second.pk)]
    everything = owner_api.get("/api/v3/schedules").json()
    assert {row["id"] for row in everything["results"]} == {str(first.pk), str(second.pk), str(third.pk)}
    enabled = owner_api.get("/api/v3/schedules", {"enabled": "false"}).json()
    assert [row["id"] for row in enabled["results"]] == [str(second.pk)]
    assert owner_api.get(f"/api/v3/schedules/{first.pk}").json()["id"] == str(first.pk)


# --- access ---------------------------------------------------------------------------------------


def every_endpoint(workflow_id, schedule_id) -> list[tuple[str, str, object]]:
    return [
        ("get", f"/api/v3/workflows/{workflow_id}/schedules", None),
        ("post", f"/api/v3/workflows/{workflow_id}/schedules", {"cron": "0 * * * *"}),
        ("get", f"/api/v3/schedules/{schedule_id}", None),
        ("patch", f"/api/v3/schedules/{schedule_id}", {"enabled": False}),
        ("delete", f"/api/v3/schedules/{schedule_id}", None),
        ("post", f"/api/v3/schedules/{schedule_id}/trigger-now", None),
        (
            "post",
            f"/api/v3/schedules/{schedule_id}/backfill",
            {"start": "2026-01-01T00:00Z", "end": "2026-01-01T01:00Z"},
        ),
        ("get", f"/api/v3/schedules/{schedule_id}/slots", None),
    ]


def test_a_stranger_gets_404_everywhere_and_sees_no_schedule(workflow, owner, user_api):
    schedule = make(workflow, owner)
    before = (beat_rows(), Run.objects.count())
    for method, url, body in every_endpoint(workflow.pk, schedule.pk):
        answer = getattr(user_api, method)(url, body, format="json")
        assert answer.status_code == 404, (method, url, answer.status_code)
    assert user_api.get("/api/v3/schedules").json()["count"] == 0
    assert user_api.get("/api/v3/schedules", {"workflow": str(workflow.pk)}).json()["count"] == 0
    assert (beat_rows(), Run.objects.count()) == before
    assert Schedule.objects.get(pk=schedule.pk).enabled is True


def test_a_viewer_reads_but_cannot_write(workflow, owner):
    schedule = make(workflow, owner)
    viewer = MembershipFactory(workspace=workflow.workspace, role=Membership.Role.VIEWER).user
    api = client_for(viewer)
    for method, url, body in every_endpoint(workflow.pk, schedule.pk):
        answer = getattr(api, method)(url, body, format="json")
        assert answer.status_code == (200 if method == "get" else 403), (method, url, answer.status_code)
    assert api.get("/api/v3/schedules").json()["count"] == 1
    assert beat_rows() == (1, 1, 1) and not Run.objects.exists()


def test_an_editor_writes(workflow, owner):
    schedule = make(workflow, owner)
    editor = MembershipFactory(workspace=workflow.workspace, role=Membership.Role.EDITOR).user
    answer = client_for(editor).patch(f"/api/v3/schedules/{schedule.pk}", {"overlap": "allow"}, format="json")
    assert answer.status_code == 200
    assert answer.json()["overlap"] == "allow"


def test_schedules_of_a_deleted_workflow_are_404(owner_api, workflow, owner):
    schedule = make(workflow, owner)
    workflow.deleted_at = timezone.now()
    workflow.save()
    assert owner_api.get(f"/api/v3/schedules/{schedule.pk}").status_code == 404
    assert owner_api.get("/api/v3/schedules").json()["count"] == 0


# --- admin ----------------------------------------------------------------------------------------

CHANGELIST = "/admin/workflows/schedule/"


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    return client


def form_data(schedule: Schedule, **changes) -> dict:
    data = {
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "input": '{"a": 1}',
        "enabled": "on",
        "overlap": schedule.overlap,
        "catchup": schedule.catchup,
        "slots-TOTAL_FORMS": "0",
        "slots-INITIAL_FORMS": "0",
        "slots-MIN_NUM_FORMS": "0",
        "slots-MAX_NUM_FORMS": "0",
        **changes,
    }
    return {name: value for name, value in data.items() if value is not None}


def test_the_admin_lists_and_shows_schedules_with_their_slots(operator, workflow, owner):
    schedule = hourly(workflow, owner, timezone="Europe/Berlin")
    fire(schedule, T0 + hours(2))
    page = operator.get(CHANGELIST)
    assert page.status_code == 200
    assert "Next fire time" in page.content.decode() and "Nightly" in page.content.decode()
    change = operator.get(f"{CHANGELIST}{schedule.pk}/change/")
    assert change.status_code == 200
    html = change.content.decode()
    assert "Latest 50 slots" in html and "missed" in html
    assert f"/admin/django_celery_beat/periodictask/{schedule.periodic_task_id}/change/" in html


def test_saving_the_admin_form_updates_the_periodic_task(operator, workflow, owner):
    schedule = make(workflow, owner)
    answer = operator.post(
        f"{CHANGELIST}{schedule.pk}/change/", form_data(schedule, cron="15 4 * * 0", timezone="Europe/Paris")
    )
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.timezone, schedule.input) == ("15 4 * * 0", "Europe/Paris", {"a": 1})
    crontab = schedule.periodic_task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "15",
        "4",
        "0",
        "Europe/Paris",
    )
    operator.post(f"{CHANGELIST}{schedule.pk}/change/", form_data(schedule, enabled=None))
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False


def test_the_admin_form_shows_a_bad_cron_or_time_zone_as_form_errors(operator, workflow, owner):
    schedule = make(workflow, owner)
    answer = operator.post(f"{CHANGELIST}{schedule.pk}/change/", form_data(schedule, cron="0 0 31 2 *", timezone="X"))
    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert set(errors) == {"cron", "timezone"}
    assert schedule.periodic_task.crontab.hour == "*"


def test_adding_a_schedule_in_the_admin_creates_its_periodic_task(operator, workflow):
    answer = operator.post(f"{CHANGELIST}add/", {**form_data(make_unsaved(workflow)), "workflow": str(workflow.pk)})
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    schedule = Schedule.objects.get()
    assert schedule.periodic_task.args == f'["{schedule.pk}"]'
    assert schedule.created_by.email == "root@example.com"


def make_unsaved(workflow) -> Schedule:
    return Schedule(workflow=workflow, cron="0 12 * * *")


def test_admin_actions_disable_enable_and_trigger(operator, workflow, owner):
    schedule = make(workflow, owner)
    for action in ("disable", "enable", "trigger_now"):
        answer = operator.post(CHANGELIST, {"action": action, "_selected_action": [str(schedule.pk)]})
        assert answer.status_code == 302
        if action == "disable":
            assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is True
    assert Run.objects.get().trigger == "schedule"


def test_deleting_in_the_admin_deletes_the_periodic_task(operator, workflow, owner):
    schedule = make(workflow, owner)
    task_id = schedule.periodic_task_id
    answer = operator.post(f"{CHANGELIST}{schedule.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not Schedule.objects.exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()


def test_the_admin_add_page_renders(operator, workflow):
    assert operator.get(f"{CHANGELIST}add/").status_code == 200


def test_an_input_the_workflow_would_refuse_is_a_400_at_save(owner, owner_api):
    schema = {"type": "object", "required": ["report"], "properties": {"report": {"type": "string"}}}
    strict = workflow_create(
        actor=owner,
        workspace=personal_workspace(owner),
        data={"name": "Strict", "status": "active", "input_schema": schema},
    )
    url = f"/api/v3/workflows/{strict.pk}/schedules"
    refused = owner_api.post(url, {"cron": "0 9 * * *", "input": {}}, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"input": ["'report' is a required property"]}
    assert not Schedule.objects.filter(workflow=strict).exists()
    created = owner_api.post(url, {"cron": "0 9 * * *", "input": {"report": "daily"}}, format="json")
    assert created.status_code == 201
    patched = owner_api.patch(f"/api/v3/schedules/{created.json()['id']}", {"input": {"report": 3}}, format="json")
    assert patched.status_code == 400
    assert patched.json()["errors"] == {"input.report": ["3 is not of type 'string'"]}
    assert Schedule.objects.get(workflow=strict).input == {"report": "daily"}


def test_missed_slots_are_counted_by_analytics_once_the_fire_commits(
    workflow, owner, django_capture_on_commit_callbacks
):
    from analytics.models import Event

    schedule = hourly(workflow, owner)  # beat was down from 00:00 to 05:10: four slots missed
    with django_capture_on_commit_callbacks(execute=True):
        fire(schedule, T0 + hours(5) + timedelta(minutes=10))

    [missed] = Event.objects.filter(type="schedule.missed")
    assert (missed.workflow_id, missed.data["slots"]) == (workflow.pk, 4)
