from celery import shared_task

from accounts import lockout, login_sessions


@shared_task(acks_late=True)
def lockouts_prune() -> None:
    """Sent by beat: delete login failures and locks that no longer count."""
    lockout.lockouts_prune()


@shared_task(acks_late=True)
def login_sessions_prune() -> None:
    """Sent by beat: forget login sessions past their expiry."""
    login_sessions.login_sessions_prune()
