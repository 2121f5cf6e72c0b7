"""Inbox changes to their user's websockets (/ws/notifications/, group `user.<id>`), after commit, so
that every open dashboard of theirs updates its bell and inbox:

    {"type": "notification.created", "notification": {…as the API shows it…}, "unread": 3}
    {"type": "notification.read", "ids": ["<uuid>"], "all": false, "unread": 2}

A fan-out to a thousand members is one query for their unread counts and, on Redis, one pipelined
round trip for the thousand messages (core.group_send). Messages are fire-and-forget: the inbox is the
record, and a dashboard that (re)connects reads it from the API.
"""

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Count
from prometheus_client import Counter
from rest_framework.fields import DateTimeField

from core.group_send import GroupBroadcaster, Messages
from notifications.models import Notification

logger = logging.getLogger(__name__)

CREATED = "notification.created"  # handled by workflows.consumers.NotificationsConsumer.notification_created
READ = "notification.read"  # … and notification_read

dropped_total = Counter(
    "dwc_notifications_realtime_dropped_total", "Inbox updates not broadcast (channel layer down or slow)."
)
_datetime = DateTimeField()


def user_group(user_id: Any) -> str:
    return f"user.{user_id}"


def notification_shape(notification: Notification) -> dict:
    """The notification as the API's NotificationSerializer shows it."""
    return {
        "id": str(notification.pk),
        "workspace": str(notification.workspace_id),
        "title": notification.title,
        "body": notification.body,
        "link": notification.link,
        "level": notification.level,
        "created_at": _datetime.to_representation(notification.created_at),
        "read_at": _datetime.to_representation(notification.read_at) if notification.read_at else None,
    }


def unread_counts(user_ids: Iterable[Any]) -> dict[Any, int]:
    """Unread notifications per user, in one query; users with none are absent."""
    rows = (
        Notification.objects.filter(user_id__in=list(user_ids), read_at__isnull=True)
        .order_by()
        .values_list("user_id")
        .annotate(count=Count("pk"))
    )
    return dict(rows)


def _messages(items: list[tuple[str, dict]]) -> Messages:
    return items  # already one (group, message) pair per user


_broadcaster = GroupBroadcaster(messages=_messages, what="inbox updates", logger=logger, dropped=dropped_total)


def _message(event: dict) -> dict:
    # The channel-layer message names the consumer's handler by its type and carries what the client gets.
    return {"type": event["type"], "event": event}


def _send_created(notifications: list[Notification]) -> None:
    unread = unread_counts({notification.user_id for notification in notifications})
    _broadcaster.send(
        [
            (
                user_group(notification.user_id),
                _message(
                    {
                        "type": CREATED,
                        "notification": notification_shape(notification),
                        "unread": unread.get(notification.user_id, 0),
                    }
                ),
            )
            for notification in notifications
        ]
    )


def _send_read(user_id: Any, ids: list[str] | None) -> None:
    unread = unread_counts({user_id}).get(user_id, 0)
    event = {"type": READ, "ids": ids or [], "all": ids is None, "unread": unread}
    _broadcaster.send([(user_group(user_id), _message(event))])


def notifications_created_broadcast(notifications: Iterable[Notification]) -> None:
    """Once the current transaction commits (at once outside one), each notification to its user with
    their unread count. A failing broadcast is logged, never raised into the caller."""
    notifications = list(notifications)
    if notifications:
        transaction.on_commit(lambda: _send_created(notifications), robust=True)


def notifications_read_broadcast(*, user_id: Any, ids: list[str] | None) -> None:
    """Once the current transaction commits, tell the user's dashboards that these notifications (None:
    all of them) are read, with the new unread count."""
    transaction.on_commit(lambda: _send_read(user_id, ids), robust=True)
