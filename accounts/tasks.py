from celery import shared_task

from accounts import lockout, tokens


@shared_task(acks_late=True)
def lockouts_prune() -> None:
    """Sent by beat: delete login failures and locks that no longer count."""
    lockout.lockouts_prune()


@shared_task(acks_late=True)
def revoked_sessions_prune() -> None:
    """Sent by beat: forget logged-out sessions whose access tokens have all expired."""
    tokens.revoked_sessions_prune()
