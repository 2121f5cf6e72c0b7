"""The in-app inbox: a user marks their own notifications read; their other open dashboards hear of it
(notifications.realtime) with the new unread count."""

from django.http import Http404
from django.utils import timezone

from accounts.models import User
from notifications.models import Notification
from notifications.realtime import notifications_read_broadcast


def notification_read(*, notification: Notification, actor: User) -> Notification:
    """Mark one of the actor's own notifications read (idempotent); Http404 for anyone else's."""
    if notification.user_id != actor.pk:
        raise Http404("No such notification.")
    if notification.read_at is None:
        now = timezone.now()
        if Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now):
            notification.read_at = now
            notifications_read_broadcast(user_id=actor.pk, ids=[str(notification.pk)])
        else:
            notification.refresh_from_db(fields=["read_at"])
    return notification


def notifications_read_all(*, actor: User) -> int:
    """Mark every unread notification of the actor read; returns how many were."""
    marked = Notification.objects.filter(user=actor, read_at__isnull=True).update(read_at=timezone.now())
    if marked:
        notifications_read_broadcast(user_id=actor.pk, ids=None)
    return marked
