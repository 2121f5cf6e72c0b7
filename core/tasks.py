import time

from celery import shared_task

from core import services


@shared_task(bind=True)
def worker_ping(self, ping_id: str, delay_ms: int) -> None:
    # The delay stands in for real work, so callers can see requests return while tasks still run.
    time.sleep(delay_ms / 1000)
    services.worker_ping_complete(ping_id=ping_id, worker=self.request.hostname or "unknown")
