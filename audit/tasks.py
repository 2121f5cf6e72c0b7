from celery import shared_task

from audit import services


@shared_task(acks_late=True)
def audit_purge_expired() -> None:
    services.audit_purge_expired()
