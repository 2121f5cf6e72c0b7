"""Notification channels, the deliveries sent through them, and the in-app inbox."""

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings as django_settings
from django.contrib.postgres.fields import ArrayField
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
        SMS_TWILIO = "sms_twilio"
        SMS_GATEWAY = "sms_gateway"
        WEB_PUSH = "web_push"

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
    # A message to members by a kind of their own (their inboxes, email address or browsers) rather than
    # through a workspace channel: `direct_kind` says which, `channel` stays empty, and `recipient` is the
    # one person (email, push) or empty for a rule's inbox batch (its notifications name the people).
    direct_kind = models.CharField(max_length=20, choices=Channel.Kind.choices, blank=True)
    rule = models.ForeignKey("Rule", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
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
        constraints = [
            models.CheckConstraint(
                condition=models.Q(direct_kind="") | models.Q(channel__isnull=True),
                name="delivery_direct_has_no_channel",
            )
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


class Template(models.Model):
    """A message's subject and body in the product's sandboxed template language, with the event's
    variables (`event`, `run`, `workflow`, `step`, `error`, `link`, `workspace`, `recipient`). `formats`
    holds optional per-format bodies: `markdown`, `html` (email), and `slack_blocks`, `teams_card`,
    `discord_embed`, each a template rendering to JSON. Every field is parsed when saved."""

    class Format(models.TextChoices):
        MARKDOWN = "markdown"
        HTML = "html"
        SLACK_BLOCKS = "slack_blocks"
        TEAMS_CARD = "teams_card"
        DISCORD_EMBED = "discord_embed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notification_templates")
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=1000, blank=True)
    body = models.TextField()
    formats = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="template_unique_name")]

    def __str__(self) -> str:
        return self.name


def default_member_kinds() -> list[str]:
    return ["in_app"]


class Rule(models.Model):
    """Which events notify whom: event types, an optional workflow and tag filter, recipients (channels,
    members, members by role), a template, a throttle (at most `throttle_count` messages per
    `throttle_window_seconds` per subject) and an optional digest window."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="notification_rules")
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    events = ArrayField(models.CharField(max_length=50))
    # A workflow's id rather than a key: notifications know nothing of workflows' models.
    workflow_id = models.UUIDField(null=True, blank=True, help_text="Only this workflow's events.")
    tags = ArrayField(models.CharField(max_length=100), default=list, blank=True, help_text="Workflows with any.")
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    members = models.ManyToManyField(django_settings.AUTH_USER_MODEL, blank=True, related_name="+")
    roles = ArrayField(models.CharField(max_length=10), default=list, blank=True)
    # What members and role holders receive: their inbox, and optionally email and browser push.
    member_kinds = ArrayField(models.CharField(max_length=20), default=default_member_kinds)
    template = models.ForeignKey(Template, null=True, blank=True, on_delete=models.PROTECT, related_name="rules")
    throttle_count = models.PositiveIntegerField(default=20)
    throttle_window_seconds = models.PositiveIntegerField(default=3600)
    digest_window_seconds = models.PositiveIntegerField(default=0, help_text="0: no digest, one message per event.")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="rule_unique_name")]
        indexes = [models.Index(fields=["workspace", "enabled"], name="rule_workspace_enabled")]

    def __str__(self) -> str:
        return self.name


class Match(models.Model):
    """An event a rule matched, and what became of it: notified, throttled, or held for a digest until
    `digest_due_at` (the database is the truth: a digest survives worker and beat restarts)."""

    class Outcome(models.TextChoices):
        NOTIFIED = "notified"
        THROTTLED = "throttled"
        DIGEST_PENDING = "digest_pending"
        DIGESTED = "digested"

    id = models.BigAutoField(primary_key=True)
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="matches")
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=50)
    subject = models.CharField(max_length=200, help_text="What the throttle counts by: a workflow, a credential.")
    event = models.JSONField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    digest_due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "matches"
        constraints = [models.UniqueConstraint(fields=["rule", "event_id"], name="match_once_per_event")]
        indexes = [
            models.Index(fields=["rule", "subject", "created_at"], name="match_rule_subject_recent"),
            models.Index(
                fields=["digest_due_at"], condition=models.Q(outcome="digest_pending"), name="match_digest_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.rule_id} ({self.outcome})"


class Preference(models.Model):
    """One user's choices: event types and channel kinds muted, quiet hours in their timezone (messages
    other than in-app ones wait until the quiet hours end; the inbox still records)."""

    user = models.OneToOneField(
        django_settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="notification_preference",
    )
    muted_events = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    muted_kinds = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Preferences of {self.user_id}"

    def mutes(self, *, event_type: str, kind: str) -> bool:
        return event_type in self.muted_events or kind in self.muted_kinds

    def quiet_until(self, now: datetime) -> datetime | None:
        """When the quiet hours holding `now` end, or None outside them (or without quiet hours)."""
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if start is None or end is None or start == end:
            return None
        local = now.astimezone(ZoneInfo(self.timezone))
        clock = local.time().replace(tzinfo=None)
        inside = start <= clock < end if start < end else (clock >= start or clock < end)
        if not inside:
            return None
        ends = datetime.combine(local.date(), end, tzinfo=local.tzinfo)
        if ends <= local:
            ends += timedelta(days=1)
        return ends.astimezone(now.tzinfo)


class PushSubscription(models.Model):
    """A browser's Web Push subscription (its endpoint and keys) for one user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.URLField(max_length=2048, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    user_agent = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Push subscription of {self.user_id}"
