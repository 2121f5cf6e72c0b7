"""Reads of channels, deliveries and the inbox, scoped to who asks: channels and deliveries to the admins
and owners of their workspace, notifications to their own user."""

import logging
import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from accounts.access import Role, ensure_role, workspaces_with_role
from accounts.models import User
from notifications.channels.base import DeliveryError
from notifications.channels.web_push import vapid_keys
from notifications.models import Channel, Delivery, Notification, PushSubscription, Rule, Template

logger = logging.getLogger(__name__)

NO_SUCH_CHANNEL = "No such channel."
NO_SUCH_DELIVERY = "No such delivery."
NO_SUCH_NOTIFICATION = "No such notification."
NO_SUCH_RULE = "No such rule."
NO_SUCH_TEMPLATE = "No such template."


def _uuid(value: Any, not_found: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as error:
        raise Http404(not_found) from error


def channels_for_user(user: User) -> QuerySet[Channel]:
    return Channel.objects.filter(workspace__in=workspaces_with_role(user, Role.ADMIN)).select_related("created_by")


def channel_get(user: User, channel_id: Any) -> Channel:
    """The channel if `user` is an admin or owner of its workspace: Http404 for strangers, 403 for members."""
    channel = (
        Channel.objects.select_related("workspace", "created_by").filter(pk=_uuid(channel_id, NO_SUCH_CHANNEL)).first()
    )
    if channel is None:
        raise Http404(NO_SUCH_CHANNEL)
    ensure_role(user, channel.workspace, Role.ADMIN, not_found=NO_SUCH_CHANNEL)
    return channel


def deliveries_for_user(user: User) -> QuerySet[Delivery]:
    return Delivery.objects.filter(workspace__in=workspaces_with_role(user, Role.ADMIN)).select_related(
        "channel", "recipient"
    )


def delivery_get(user: User, delivery_id: Any) -> Delivery:
    """The delivery if `user` is an admin or owner of its workspace: Http404 for strangers, 403 for members."""
    delivery = (
        Delivery.objects.select_related("workspace", "channel", "recipient")
        .filter(pk=_uuid(delivery_id, NO_SUCH_DELIVERY))
        .first()
    )
    if delivery is None:
        raise Http404(NO_SUCH_DELIVERY)
    ensure_role(user, delivery.workspace, Role.ADMIN, not_found=NO_SUCH_DELIVERY)
    return delivery


def notifications_for_user(user: User) -> QuerySet[Notification]:
    """The user's own inbox, newest first."""
    return Notification.objects.filter(user=user)


def notification_get(user: User, notification_id: Any) -> Notification:
    """One of the user's own notifications; Http404 alike for anyone else's and an unknown id."""
    notification = Notification.objects.filter(pk=_uuid(notification_id, NO_SUCH_NOTIFICATION), user=user).first()
    if notification is None:
        raise Http404(NO_SUCH_NOTIFICATION)
    return notification


def unread_count(user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def rules_for_user(user: User) -> QuerySet[Rule]:
    """Rules of the workspaces where `user` is an editor, admin or owner."""
    rules = Rule.objects.filter(workspace__in=workspaces_with_role(user, Role.EDITOR))
    return rules.select_related("created_by").prefetch_related("channels", "members")


def rule_get(user: User, rule_id: Any) -> Rule:
    """The rule if `user` is an editor or above in its workspace: Http404 for strangers, 403 for viewers."""
    rule = Rule.objects.select_related("workspace", "template").filter(pk=_uuid(rule_id, NO_SUCH_RULE)).first()
    if rule is None:
        raise Http404(NO_SUCH_RULE)
    ensure_role(user, rule.workspace, Role.EDITOR, not_found=NO_SUCH_RULE)
    return rule


def templates_for_user(user: User) -> QuerySet[Template]:
    return Template.objects.filter(workspace__in=workspaces_with_role(user, Role.EDITOR)).select_related("created_by")


def template_get(user: User, template_id: Any) -> Template:
    """The template if `user` is an editor or above in its workspace: Http404 for strangers, 403 for viewers."""
    template = Template.objects.select_related("workspace").filter(pk=_uuid(template_id, NO_SUCH_TEMPLATE)).first()
    if template is None:
        raise Http404(NO_SUCH_TEMPLATE)
    ensure_role(user, template.workspace, Role.EDITOR, not_found=NO_SUCH_TEMPLATE)
    return template


NO_SUCH_PUSH_SUBSCRIPTION = "No such push subscription."


def push_subscriptions_for_user(user: User) -> QuerySet[PushSubscription]:
    """The user's own subscribed browsers, newest first."""
    return PushSubscription.objects.filter(user=user)


def push_subscription_get(user: User, subscription_id: Any) -> PushSubscription:
    """One of the user's own push subscriptions; Http404 alike for anyone else's and an unknown id."""
    subscription = PushSubscription.objects.filter(
        pk=_uuid(subscription_id, NO_SUCH_PUSH_SUBSCRIPTION), user=user
    ).first()
    if subscription is None:
        raise Http404(NO_SUCH_PUSH_SUBSCRIPTION)
    return subscription


def push_key() -> dict:
    """What a browser subscribes with: {public_key, configured}. Not configured, and no key, when no VAPID
    private key is set or the keys set cannot be used (logged: the operator's to fix, not the user's)."""
    try:
        keys = vapid_keys()
    except DeliveryError as error:
        logger.warning("web push keys unusable: %s", error.message)
        keys = None
    return {"public_key": keys.public_key if keys else "", "configured": keys is not None}
