"""The analytics event stream and the rollups kept from it.

Analytics know nothing of the workflows app's models (workspaces, workflows and runs are named by id):
the services that know an event hand it over as plain data (analytics.services.recording), after
their transaction commits.
"""

from django.db import models


class Event(models.Model):
    """One thing that happened, as analytics count it: a run finished, a step finished, a document was
    generated… Kept for DWC_ANALYTICS_EVENT_RETENTION_DAYS (the rollups stay); unique per type and
    subject, so an event handed over twice (a redelivered task) counts once."""

    class Type(models.TextChoices):
        RUN_FINISHED = "run.finished"

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40, choices=Type.choices)
    workspace_id = models.UUIDField()
    workflow_id = models.UUIDField(null=True, blank=True)
    subject = models.CharField(max_length=200, help_text="What it is about: a run's id, a step's run and key.")
    ts = models.DateTimeField(help_text="When it happened.")
    data = models.JSONField(default=dict)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-ts"]
        constraints = [models.UniqueConstraint(fields=["type", "subject"], name="analytics_event_once")]
        indexes = [models.Index(fields=["workspace_id", "ts"], name="analytics_event_recent")]

    def __str__(self) -> str:
        return f"{self.type} {self.subject}"


class Granularity(models.TextChoices):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


class Bucketed(models.Model):
    """What every rollup row holds: its bucket of time (a minute, an hour or a UTC day) of one workflow,
    the outcomes counted, durations (sum, maximum, a log-scale histogram: analytics.histograms), tokens
    and cost."""

    Granularity = Granularity

    id = models.BigAutoField(primary_key=True)
    granularity = models.CharField(max_length=6, choices=Granularity.choices)
    bucket = models.DateTimeField()
    workspace_id = models.UUIDField()
    workflow_id = models.UUIDField()
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    duration_ms_sum = models.FloatField(default=0)
    duration_ms_max = models.FloatField(default=0)
    duration_histogram = models.JSONField(default=dict)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost = models.FloatField(default=0)

    class Meta:
        abstract = True
        ordering = ["bucket"]


class Rollup(Bucketed):
    """The runs of one workflow that finished in one bucket of time (a minute, an hour or a day): counts
    by outcome, durations and queue waits as log-scale histograms (analytics.histograms), tokens and
    cost. Kept per minute for a day, per hour for 90 days, per day beyond, so that a 30-day question
    reads hundreds of rows."""

    cancelled = models.PositiveIntegerField(default=0)
    timed_out = models.PositiveIntegerField(default=0, help_text="Also counted in failed.")
    queue_wait_histogram = models.JSONField(default=dict)

    class Meta(Bucketed.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "workspace_id", "bucket", "workflow_id"], name="analytics_rollup_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.workflow_id}"


class StepRollup(Bucketed):
    """The steps of one node (by key, with its type) of one workflow that finished in one bucket of
    time: counts by outcome, retries and crash recoveries, durations (a log-scale histogram), tokens
    and cost. Kept as Rollup is."""

    node_key = models.CharField(max_length=64)
    node_type = models.CharField(max_length=32)
    retries = models.PositiveIntegerField(default=0, help_text="Attempts beyond the first.")
    crashes = models.PositiveIntegerField(default=0, help_text="Attempts whose worker was lost.")

    class Meta(Bucketed.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "workspace_id", "bucket", "workflow_id", "node_key"],
                name="analytics_step_rollup_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.workflow_id}/{self.node_key}"
