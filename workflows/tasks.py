"""Celery tasks: thin doors into the scheduler. Ids in, nothing out; the database holds the state."""

from celery import shared_task

from workflows.engine import scheduler


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def advance_run(run_id: str) -> None:
    scheduler.advance(run_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_step(self, step_id: str, attempt: int) -> None:
    scheduler.execute_step(step_id, attempt, worker=self.request.hostname or "")


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def resume_step(step_id: str, attempt: int | None) -> None:
    scheduler.resume_step(step_id, attempt)


@shared_task(ignore_result=True)
def recover_runs() -> None:
    scheduler.recover()
