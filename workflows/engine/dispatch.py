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
    # The step is quick and CPU-only: the worker that queued it may run it at once (see `split_inline`).
    inline: bool = False
    # The step's run, so that the worker can lock it without looking it up first.
    run_id: str = ""


def send(dispatches: list[Dispatch]) -> None:
    from workflows import tasks

    for item in dispatches:
        if item.countdown > MAX_COUNTDOWN_SECONDS:
            continue
        task = getattr(tasks, item.task)
        options = {"queue": item.queue}
        if item.countdown > 0:
            options["countdown"] = item.countdown
        args = (
            (item.step_id, item.attempt, item.run_id)
            if item.task == "execute_step" and item.run_id
            else (item.step_id, item.attempt)
        )
        task.apply_async(args, **options)


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


def send_advance(run_id) -> None:
    from workflows import tasks

    tasks.advance_run.apply_async((str(run_id),), queue="engine")


def send_resume(step_id) -> None:
    from workflows import tasks

    tasks.resume_step.apply_async((str(step_id), None), queue="engine")


def send_follow(run_id) -> None:
    """Start the workflows whose event triggers follow this finished run's workflow."""
    from workflows import tasks

    tasks.fire_event_triggers.apply_async((str(run_id),), queue="engine")
