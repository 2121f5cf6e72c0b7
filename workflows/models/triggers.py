"""What starts runs besides a person: inbound webhooks (and the deliveries kept against replays), cron
schedules and their slots, and event triggers on another workflow's runs."""

import uuid

from django.conf import settings as django_settings
from django.db import models

from accounts.models import ip_allow_list_field
from workflows.models.definitions import Workflow
from workflows.models.runs import Run


class WebhookTrigger(models.Model):
    """An inbound webhook: POST /hooks/<token>/ starts a run of the workflow with the body as input.

    Only a hash of the token is stored: the URL is shown once, when created or rotated.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="webhooks")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_hint = models.CharField(max_length=8, editable=False, help_text="The token's last characters.")
    encrypted_secret = models.BinaryField(null=True, blank=True, editable=False)
    dedupe_header = models.CharField(max_length=100, blank=True, help_text="e.g. X-GitHub-Delivery")
    include_headers = models.JSONField(default=list, blank=True, help_text="Headers copied to input._headers.")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    allowed_ips = ip_allow_list_field("Deliveries")

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"hook …{self.token_hint} → {self.workflow_id}"


class WebhookDelivery(models.Model):
    """A signed delivery that started a run, kept while its signature is fresh enough to be replayed.

    The unique signature per webhook is what makes a replayed delivery find the first run instead of
    starting another; rows past `expires_at` can no longer verify and are pruned.
    """

    hook = models.ForeignKey(WebhookTrigger, on_delete=models.CASCADE, related_name="+", db_index=False)
    signature = models.CharField(max_length=64, help_text="Hex HMAC-SHA256 of the delivery.")
    run = models.ForeignKey("Run", on_delete=models.CASCADE, related_name="+", db_index=False)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hook", "signature"], name="webhook_delivery_unique_signature")]

    def __str__(self) -> str:
        return f"delivery {self.signature[:12]}… → run {self.run_id}"


class Schedule(models.Model):
    """A cron schedule. Beat fires it through a django-celery-beat PeriodicTask; each slot runs once."""

    class Overlap(models.TextChoices):
        SKIP = "skip"
        QUEUE = "queue"
        ALLOW = "allow"

    class Catchup(models.TextChoices):
        NONE = "none"
        LATEST = "latest"
        ALL = "all"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="schedules")
    cron = models.CharField(max_length=120)
    timezone = models.CharField(max_length=64, default="UTC")
    input = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.SKIP)
    catchup = models.CharField(max_length=8, choices=Catchup.choices, default=Catchup.NONE)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_slot = models.DateTimeField(null=True, blank=True, help_text="The latest slot handled (UTC).")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.cron} ({self.timezone})"


class ScheduleSlot(models.Model):
    """What happened at one slot of a schedule. Unique per (schedule, slot): each slot is handled once."""

    class Outcome(models.TextChoices):
        STARTED = "started"
        SKIPPED = "skipped"  # the previous run was still active (overlap: skip)
        QUEUED = "queued"  # started after the previous run (overlap: queue)
        MISSED = "missed"  # beat was down across it (catchup: none)

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="slots")
    slot = models.DateTimeField()
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    backfill = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-slot"]
        constraints = [models.UniqueConstraint(fields=["schedule", "slot"], name="schedule_slot_once")]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.slot.isoformat()}: {self.outcome}"


class EventTrigger(models.Model):
    """When a run of `source_workflow` ends as `on`, start `workflow` with its output (or a template)."""

    class On(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        FINISHED = "finished"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="event_triggers")
    source_workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="downstream_triggers")
    on = models.CharField(max_length=10, choices=On.choices, default=On.SUCCEEDED)
    input_template = models.JSONField(null=True, blank=True, help_text="JSON whose strings are templates.")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.source_workflow_id} {self.on} → {self.workflow_id}"
