from collections.abc import Iterable
from typing import Any

from notifications.channels.base import (
    MEMBERS_CONFIG_SCHEMA,
    ChannelKind,
    DeliveryError,
    Message,
    Sent,
    members_reached,
)
from notifications.models import Notification
from notifications.realtime import notifications_created_broadcast

NO_RECIPIENTS = "Nobody to notify: no recipient and no member with the channel's roles."
TITLE_MAX_LENGTH = Notification._meta.get_field("title").max_length


def inboxes_add(
    *,
    workspace_id: Any,
    user_ids: Iterable[Any],
    delivery_id: Any,
    title: str,
    body: str,
    link: str,
    level: str,
) -> list[Notification]:
    """Add one notification to each user's inbox and return those added. With a delivery, a user who
    has its notification already is skipped (a constraint), so adding again after a crash adds nobody
    twice. An unknown level is `info`; a title is cut to its column's length. Once the transaction
    commits, each user's open dashboards get theirs with their unread count (notifications.realtime):
    one insert, one query and one broadcast for any number of users."""
    level = level if level in Notification.Level.values else Notification.Level.INFO
    rows = [
        Notification(
            user_id=user_id,
            workspace_id=workspace_id,
            delivery_id=delivery_id,
            title=title[:TITLE_MAX_LENGTH],
            body=body,
            link=link,
            level=level,
        )
        for user_id in dict.fromkeys(user_ids)
    ]
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    if delivery_id is not None:
        # The ids are made here, so the rows that exist under them are the ones this call inserted.
        added = set(Notification.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", flat=True))
        rows = [row for row in rows if row.pk in added]
    notifications_created_broadcast(rows)
    return rows


class InAppChannel(ChannelKind):
    """Notification rows in users' inboxes: the delivery's recipient, or else every member of the
    workspace holding one of `roles` (all members when absent). One row per user and delivery (a
    constraint), so sending again after a crash adds nobody twice: the key is honoured."""

    name = "in_app"
    description = "Adds the message to the inboxes of the recipient or the workspace's members."
    accepts_idempotency_key = True
    config_schema = MEMBERS_CONFIG_SCHEMA

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        if message.recipient_id is not None:
            users = [message.recipient_id]
        else:
            users = [row["user_id"] for row in members_reached(message, config, cls.name)]
        if not users:
            raise DeliveryError(NO_RECIPIENTS, permanent=True)
        inboxes_add(
            workspace_id=message.workspace_id,
            user_ids=users,
            delivery_id=message.delivery_id,
            title=message.subject or message.body[:200],
            body=message.body,
            link=message.link,
            level=message.level,
        )
        return Sent(provider_id=f"{len(users)} inbox(es)")
