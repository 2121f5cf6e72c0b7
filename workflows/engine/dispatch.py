"""Ringing the doorbell: the Celery messages that tell workers to look at the database.

A message carries ids only. Losing one costs a delay until `recovery.recover()` re-sends it;
sending one twice costs nothing, because steps are claimed by attempt.

A cheap step (`inline`: transform, text, condition) takes less time to run than its message takes to
send and receive. So a process sends cheap steps in batches (`execute_steps`), at most one batch per
BATCH_INTERVAL_SECONDS (see `batching`): many runs started in a burst cost a few messages, not one each.
Tasks are sent by name: the engine sits below `workflows.tasks`, which calls it.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from config.celery import app as celery_app
from workflows.engine.batching import IntervalBatcher

# Brokers redeliver ETA messages they hold for long (Redis after its visibility timeout), so long
# waits are left to the recovery beat task, which wakes due steps from the database.
MAX_COUNTDOWN_SECONDS = 300


@dataclass(frozen=True)
class Dispatch:
    """Run `task(step_id, attempt)` on `queue`, `countdown` seconds from now."""

    step_id: str
    attempt: int
    queue: str
    countdown: float = 0
    task: str = "execute_step"
    # The step is quick and CPU-only: the worker that queued it may run it at once (see `split_inline`).
    inline: bool = False
    # The step's run, so that the worker can lock it without looking it up first.
    run_id: str = ""


TASKS = "workflows.tasks."
# Control work: advancing runs, cheap steps, wake-ups, time-outs.
CONTROL_QUEUE = settings.DWC_CONTROL_QUEUE


def _send_task(name: str, args: tuple, *, queue: str, countdown: float = 0) -> None:
    options = {"queue": queue}
    if countdown > 0:
        options["countdown"] = countdown
    celery_app.send_task(TASKS + name, args, **options)


def send(dispatches: list[Dispatch]) -> None:
    cheap = []
    for item in dispatches:
        if item.countdown > MAX_COUNTDOWN_SECONDS:
            continue
        if item.inline and item.task == "execute_step" and not item.countdown:
            cheap.append(item)
            continue
        args = (
            (item.step_id, item.attempt, item.run_id)
            if item.task == "execute_step" and item.run_id
            else (item.step_id, item.attempt)
        )
        _send_task(item.task, args, queue=item.queue, countdown=item.countdown)
    if cheap:
        _batcher.add(cheap)


def split_inline(dispatches: list[Dispatch]) -> tuple[Dispatch | None, list[Dispatch]]:
    """The one step to run in this worker now, and the messages to send for the rest.

    A chain's next step, when it is the only step made ready and is cheap, costs a broker round trip
    that is longer than the step itself; the worker that finished its parent runs it instead. Its
    claim works as for any message, and if this worker dies, recover() re-sends it like a lost one.
    """
    steps = [item for item in dispatches if item.task == "execute_step" and not item.countdown]
    if len(steps) == 1 and steps[0].inline:
        return steps[0], [item for item in dispatches if item is not steps[0]]
    return None, dispatches


def wake_up(step_id, attempt: int, *, countdown: float = 0) -> Dispatch:
    """Wake a waiting step (`resume_step`), now or `countdown` seconds from now."""
    return Dispatch(str(step_id), attempt, CONTROL_QUEUE, countdown=countdown, task="resume_step")


def send_advance(run_id) -> None:
    _send_task("advance_run", (str(run_id),), queue=CONTROL_QUEUE)


def send_resume(step_id) -> None:
    _send_task("resume_step", (str(step_id), None), queue=CONTROL_QUEUE)


def send_run_deadline(run_id, deadline: datetime) -> None:
    """Have the run checked at its deadline (`time_out_run`); one past MAX_COUNTDOWN_SECONDS in hops."""
    countdown = min(max((deadline - timezone.now()).total_seconds(), 0), MAX_COUNTDOWN_SECONDS)
    _send_task("time_out_run", (str(run_id), deadline.isoformat()), queue=CONTROL_QUEUE, countdown=countdown)


def send_follow(run_id) -> None:
    """Start the workflows whose event triggers follow this finished run's workflow."""
    _send_task("fire_event_triggers", (str(run_id),), queue=CONTROL_QUEUE)


# A cheap step dispatched this soon after the last batch left waits for the end of the interval:
# 25 ms rather than 10 makes fewer, bigger batches under a burst of runs, each one message and one
# worker transaction (bench/engine_overhead.py (b)); longer gained nothing more.
BATCH_INTERVAL_SECONDS = 0.025
# Bigger batches are split, so that a burst spreads over the workers.
BATCH_SIZE = 25


def _send(batch: list[Dispatch]) -> None:
    by_queue: dict[str, list[list]] = {}
    for item in batch:
        by_queue.setdefault(item.queue, []).append([item.step_id, item.attempt, item.run_id])
    for queue, steps in by_queue.items():
        for start in range(0, len(steps), BATCH_SIZE):
            _send_task("execute_steps", (steps[start : start + BATCH_SIZE],), queue=queue)


# Each step goes out after it was added, and it is added after its transaction committed, so the
# worker finds it queued.
_batcher = IntervalBatcher(_send, interval=BATCH_INTERVAL_SECONDS, name="cheap-step-batches")
