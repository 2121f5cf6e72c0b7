from typing import Any

from accounts.models import Membership
from notifications.channels.base import ChannelKind, DeliveryError, Message, Sent
from notifications.models import Notification

NO_RECIPIENTS = "Nobody to notify: no recipient and no member with the channel's roles."


class InAppChannel(ChannelKind):
    """Notification rows in users' inboxes: the delivery's recipient, or else every member of the
    workspace holding one of `roles` (all members when absent). One row per user and delivery (a
    constraint), so sending again after a crash adds nobody twice: the key is honoured."""

    name = "in_app"
    description = "Adds the message to the inboxes of the recipient or the workspace's members."
    accepts_idempotency_key = True
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "roles": {
                "description": "Members with these roles are notified (all members when absent).",
                "type": "array",
                "items": {"enum": list(Membership.Role.values)},
                "uniqueItems": True,
                "minItems": 1,
            }
        },
    }

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        if message.recipient_id is not None:
            users = [message.recipient_id]
        else:
            members = Membership.objects.filter(workspace_id=message.workspace_id)
            if "roles" in config:
                members = members.filter(role__in=config["roles"])
            users = list(members.values_list("user_id", flat=True))
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


def inboxes_add(
    *, workspace_id: Any, user_ids: list, delivery_id: Any, title: str, body: str, link: str, level: str
) -> list[Notification]:
    """One notification per user for a delivery, in one statement; users who have it already are skipped."""
    return Notification.objects.bulk_create(
        [
            Notification(
                user_id=user_id,
                workspace_id=workspace_id,
                delivery_id=delivery_id,
                title=title[:1000],
                body=body,
                link=link,
                level=level if level in Notification.Level.values else Notification.Level.INFO,
            )
            for user_id in user_ids
        ],
        ignore_conflicts=True,
    )
