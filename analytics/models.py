"""The analytics event stream and the rollups kept from it.

Analytics know nothing of the workflows app's models (workspaces, workflows and runs are named by id):
the services that know an event hand it over as plain data (analytics.services.recording), after
their transaction commits.
"""

import uuid

from django.conf import settings
from django.db import models


class Event(models.Model):
    """One thing that happened, as analytics count it: a run finished, a step finished, a document was
    generated… Kept for DWC_ANALYTICS_EVENT_RETENTION_DAYS (the rollups stay); unique per type and
    subject, so an event handed over twice (a redelivered task) counts once."""

    class Type(models.TextChoices):
        RUN_STARTED = "run.started"
        RUN_FINISHED = "run.finished"
        STEP_FINISHED = "step.finished"
        DOCUMENT_GENERATED = "document.generated"
        WEBHOOK_RECEIVED = "webhook.received"
        WEBHOOK_REJECTED = "webhook.rejected"
        SCHEDULE_FIRED = "schedule.fired"
        SCHEDULE_MISSED = "schedule.missed"
        APPROVAL_DECIDED = "approval.decided"
        NOTIFICATION_DELIVERED = "notification.delivered"
        NOTIFICATION_FAILED = "notification.failed"
        LOGIN = "login"
        API_KEY_USED = "api_key.used"
        BUDGET_THRESHOLD = "budget.threshold"

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40, choices=Type.choices)
    workspace_id = models.UUIDField()
    workflow_id = models.UUIDField(null=True, blank=True)
    subject = models.CharField(max_length=200, help_text="What it is about: a run's id, a step's run and key.")
    ts = models.DateTimeField(help_text="When it happened.")
    data = models.JSONField(default=dict)
    recorded_at = models.DateTimeField(auto_now_add=True)
    rolled_up = models.BooleanField(default=False, help_text="Added to the rollups already.")

    class Meta:
        ordering = ["-ts"]
        constraints = [models.UniqueConstraint(fields=["type", "subject"], name="analytics_event_once")]
        indexes = [
            models.Index(fields=["workspace_id", "ts"], name="analytics_event_recent"),
            models.Index(fields=["ts"], name="analytics_event_age"),
            # The rollup writer's queue: the few events not added yet, oldest first.
            models.Index(fields=["id"], condition=models.Q(rolled_up=False), name="analytics_event_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.subject}"


class Granularity(models.TextChoices):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


class Bucketed(models.Model):
    """What every rollup row holds: its bucket of time (a minute, an hour or a UTC day) of a workspace,
    the outcomes counted, durations (sum, maximum, a log-scale histogram: analytics.histograms), tokens
    and cost."""

    Granularity = Granularity

    id = models.BigAutoField(primary_key=True)
    granularity = models.CharField(max_length=6, choices=Granularity.choices)
    bucket = models.DateTimeField()
    workspace_id = models.UUIDField()
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


class RunFigures(Bucketed):
    """The runs that finished in one bucket of time: counts by outcome, durations and queue waits as
    log-scale histograms (analytics.histograms), tokens and cost, and their steps' retries and crash
    recoveries (StepRollup counts them per node, in the buckets the steps finished in)."""

    cancelled = models.PositiveIntegerField(default=0)
    timed_out = models.PositiveIntegerField(default=0, help_text="Also counted in failed.")
    queue_wait_histogram = models.JSONField(default=dict)
    retries = models.PositiveIntegerField(default=0, help_text="Of the runs' steps: attempts beyond the first.")
    crashes = models.PositiveIntegerField(default=0, help_text="Of the runs' steps: attempts whose worker was lost.")

    class Meta(Bucketed.Meta):
        abstract = True


class Rollup(RunFigures):
    """The runs of one workflow that finished in one bucket of time (a minute, an hour or a day). Kept
    per minute for a day, per hour for 90 days, per day beyond, so that a 30-day question reads
    hundreds of rows."""

    workflow_id = models.UUIDField()

    class Meta(RunFigures.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "workspace_id", "bucket", "workflow_id"], name="analytics_rollup_once"
            )
        ]
        # One workflow's rows of a range (its charts, its page) without stepping over its workspace's others.
        indexes = [models.Index(fields=["workflow_id", "granularity", "bucket"], name="analytics_rollup_workflow")]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.workflow_id}"


class WorkspaceRollup(RunFigures):
    """The runs of a whole workspace that finished in one bucket of time: the sum of its workflows'
    Rollup rows, written with them by the same statement. A question about a workspace (or all of a
    person's) reads one row per bucket here instead of one per workflow: merging histograms is what
    a query over rollups spends its time on. Kept as Rollup is."""

    class Meta(RunFigures.Meta):
        constraints = [
            models.UniqueConstraint(fields=["granularity", "workspace_id", "bucket"], name="analytics_workspace_once")
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.workspace_id}"


class StepRollup(Bucketed):
    """The steps of one node (by key, with its type) of one workflow that finished in one bucket of
    time: counts by outcome, retries and crash recoveries, durations (a log-scale histogram), tokens
    and cost. Kept as Rollup is."""

    workflow_id = models.UUIDField()
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
        indexes = [models.Index(fields=["workflow_id", "granularity", "bucket"], name="analytics_step_workflow")]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.workflow_id}/{self.node_key}"


# The workflow of a tally about a workspace as a whole (a login, an API key): tallies are unique per
# workflow, and NULLs are never equal in a unique key.
NO_WORKFLOW = uuid.UUID(int=0)


class Tally(models.Model):
    """How many events of one kind, with one label, happened in one bucket of time of one workflow (or of
    the workspace: NO_WORKFLOW): runs by trigger, errors by type and by message, documents and tokens by
    model, webhooks accepted and rejected, schedule slots fired and missed, notifications by channel
    kind, logins, API-key use, active members… `value` sums a measure where one is kept (milliseconds
    of runs in flight)."""

    id = models.BigAutoField(primary_key=True)
    granularity = models.CharField(max_length=6, choices=Granularity.choices)
    bucket = models.DateTimeField()
    workspace_id = models.UUIDField()
    workflow_id = models.UUIDField(default=NO_WORKFLOW)
    kind = models.CharField(max_length=40)
    label = models.CharField(max_length=200, blank=True)
    count = models.BigIntegerField(default=0)
    value = models.FloatField(default=0)
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    cost = models.FloatField(default=0)

    class Meta:
        ordering = ["bucket"]
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "workspace_id", "bucket", "workflow_id", "kind", "label"],
                name="analytics_tally_once",
            )
        ]
        indexes = [models.Index(fields=["kind", "granularity", "bucket"], name="analytics_tally_kind")]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.kind} {self.label}"


class Insight(models.Model):
    """Something the numbers say that a person should know (a failure-rate spike, a latency regression,
    a flaky node…), found by the insights pass (analytics.services.insights). One insight per kind and
    subject is open or dismissed at a time; it is resolved when the condition ends."""

    class Kind(models.TextChoices):
        FAILURE_SPIKE = "failure_spike"
        LATENCY_REGRESSION = "latency_regression"
        SLOWEST_NODE = "slowest_node"
        FLAKY_NODE = "flaky_node"
        COST_GROWTH = "cost_growth"
        TOP_SPENDER = "top_spender"
        RETRIES_HIDE_DEPENDENCY = "retries_hide_dependency"
        SCHEDULE_MISSING = "schedule_missing"
        UNUSED_WORKFLOW = "unused_workflow"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        HIGH = "high"

    class Status(models.TextChoices):
        OPEN = "open"
        DISMISSED = "dismissed"
        RESOLVED = "resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    workflow_id = models.UUIDField(null=True, blank=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    subject = models.CharField(max_length=200, help_text="What it is about: a workflow, a node, a host.")
    severity = models.CharField(max_length=8, choices=Severity.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    title = models.CharField(max_length=300)
    numbers = models.JSONField(default=dict, help_text="The figures behind it and the periods compared.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    link = models.CharField(max_length=500, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind", "subject"],
                condition=~models.Q(status="resolved"),
                name="analytics_insight_one_open",
            )
        ]
        indexes = [models.Index(fields=["workspace", "status"], name="analytics_insight_status")]

    def __str__(self) -> str:
        return self.title


class Report(models.Model):
    """A saved question: a named set of metrics, filters and a range, run on demand (JSON or CSV)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    metrics = models.JSONField(help_text="Names of timeseries metrics.")
    filters = models.JSONField(default=dict, blank=True, help_text="workflow, group_by.")
    range = models.CharField(max_length=8, blank=True, default="7d")
    start = models.DateTimeField(null=True, blank=True, help_text="A fixed range instead of `range`.")
    end = models.DateTimeField(null=True, blank=True)
    bucket = models.CharField(max_length=6, choices=Granularity.choices, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="analytics_report_name")]

    def __str__(self) -> str:
        return self.name
