"""Ringing the doorbell: the Celery messages that tell workers to look at the database.

A message carries ids only. Losing one costs a delay until `scheduler.recover()` re-sends it;
sending one twice costs nothing, because steps are claimed by attempt.
"""

from dataclasses import dataclass

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


def send(dispatches: list[Dispatch]) -> None:
    from workflows import tasks

    for item in dispatches:
        if item.countdown > MAX_COUNTDOWN_SECONDS:
            continue
        task = getattr(tasks, item.task)
        options = {"queue": item.queue}
        if item.countdown > 0:
            options["countdown"] = item.countdown
        task.apply_async((item.step_id, item.attempt), **options)


def send_advance(run_id) -> None:
    from workflows import tasks

    tasks.advance_run.apply_async((str(run_id),), queue="engine")


def send_resume(step_id) -> None:
    from workflows import tasks

    tasks.resume_step.apply_async((str(step_id), None), queue="engine")
