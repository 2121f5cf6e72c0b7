"""Notification channels, the deliveries sent through them, and the in-app inbox."""

import uuid

from django.conf import settings as django_settings
from django.db import models

from accounts.models import Workspace


class Channel(models.Model):
    """A named destination of one kind (notifications.channels.registry) with its settings.

    `config` is validated against the kind's schema; secrets never sit in it: `credential` names a
    workspace credential (an `hmac_secret` signing webhooks, a `slack_webhook` holding a chat URL).
    """

    class Kind(models.TextChoices):
        WEBHOOK = "webhook"
        SLACK = "slack"
        TEAMS = "teams"
        DISCORD = "discord"
        IN_APP = "in_app"
        EMAIL = "email"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True)
    credential = models.CharField(max_length=200, blank=True, help_text="Name of a workspace credential.")
    enabled = models.BooleanField(default=True)
    last_status = models.CharField(max_length=20, blank=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="channel_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Delivery(models.Model):
    """One message to one channel (or one user's inbox), and what became of it.

    queued → sending → sent, or → retrying → sending … → dead; scheduled waits for `send_at`.
    `sending` is committed before the call, so a worker that dies mid-send leaves it behind for the
    recovery (notifications.services.deliveries.deliveries_recover) to find: `failed` with
    `may_have_been_delivered`, or re-sent under the same idempotency key where the channel honours one.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        RETRYING = "retrying"
        DEAD = "dead"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notification_deliveries")
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    recipient = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=1000, blank=True)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=2048, blank=True)
    level = models.CharField(max_length=10, default="info")
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    send_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the current attempt began sending.")
    response_code = models.IntegerField(null=True, blank=True)
    provider_id = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    may_have_been_delivered = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_due"),
            models.Index(fields=["workspace", "-created_at"], name="delivery_workspace_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.subject or self.body[:50]} ({self.status})"


class Notification(models.Model):
    """An in-app message for one user, shown in their inbox until read."""

    class Level(models.TextChoices):
        INFO = "info"
        SUCCESS = "success"
        WARNING = "warning"
        ERROR = "error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notifications")
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(max_length=1000)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=2048, blank=True)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_user_unread")]
        # One notification per user per delivery: re-sending an in-app delivery adds nobody twice.
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "user"], condition=models.Q(delivery__isnull=False), name="notification_once"
            )
        ]

    def __str__(self) -> str:
        return self.title
