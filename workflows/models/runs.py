"""Runs of a pinned version: the run, its steps, its event log and the documents its steps wrote."""

import uuid

from django.conf import settings as django_settings
from django.db import models

from accounts.models import Workspace
from workflows.models.definitions import Workflow, WorkflowVersion


class Run(models.Model):
    """One execution of a pinned WorkflowVersion."""

    class Status(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        WAITING = "waiting"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class PauseScope(models.TextChoices):
        RUN = "run"
        WORKFLOW = "workflow"
        WORKSPACE = "workspace"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        API = "api"
        WEBHOOK = "webhook"
        SCHEDULE = "schedule"
        EVENT = "event"
        RETRY = "retry"
        SUBWORKFLOW = "subworkflow"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by run_list_idx and run_workflow_status_idx, which they lead.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="runs", db_index=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs", db_index=False)
    version = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=12, choices=Trigger.choices, default=Trigger.MANUAL)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - NULL: most runs have none
    parent_step = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.CASCADE, related_name="child_runs", db_index=False
    )
    # Position of this run among its parent step's children (a loop's item index).
    parent_index = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True, help_text="When the run times out.")
    # The last RunEvent.seq handed out; events are numbered under this row's lock.
    event_seq = models.PositiveIntegerField(default=0)
    # How many event triggers led to this run (a guard against A → B → A loops), and which run did.
    event_depth = models.PositiveSmallIntegerField(default=0)
    source_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # Event triggers this run's end did not start, and why (e.g. the depth limit).
    refused_triggers = models.JSONField(default=list, blank=True)
    # What paused it, while it is paused: resuming a workflow's runs resumes those its pause paused.
    pause_scope = models.CharField(max_length=10, choices=PauseScope.choices, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # Every index is written on each insert and on each status change (which PostgreSQL cannot
        # make a HOT update): those that only some runs need are partial, so that the others skip
        # them. At most a few runs are active at a time, whatever the history; the recovery
        # queries look for them there.
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="run_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="run_list_idx"),
            models.Index(fields=["workflow", "status"], name="run_workflow_status_idx"),
            models.Index(
                fields=["status"],
                condition=models.Q(status__in=["pending", "queued", "running", "waiting", "paused"]),
                name="run_active_idx",
            ),
            models.Index(
                fields=["parent_step"], condition=models.Q(parent_step__isnull=False), name="run_parent_step_idx"
            ),
            models.Index(
                fields=["source_run"], condition=models.Q(source_run__isnull=False), name="run_source_run_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.name} · run {str(self.id)[:8]}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class StepRun(models.Model):
    """One node's execution within a run. `attempt` is the fencing token of the worker that holds it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        RETRYING = "retrying"
        WAITING = "waiting"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps", db_index=False)
    node_key = models.CharField(max_length=64)
    node_type = models.CharField(max_length=32)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt = models.PositiveIntegerField(default=0)
    # Attempts that ended because their worker was lost: a crash is not the step's failure, so these
    # do not count against the node's retry policy (bounded by DWC_STEP_CRASH_LIMIT instead).
    crashes = models.PositiveSmallIntegerField(default=0)
    input = models.JSONField(null=True, blank=True, help_text="What the node was given, templates rendered.")
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    # What a suspended node (delay, approval, loop, subworkflow) keeps between its phases.
    state = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Queued or waiting until this time.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True, help_text="When the running attempt times out.")
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["run", "queued_at", "node_key"]
        # The unique constraint indexes `run` too. Only active steps are indexed by status (see Run).
        constraints = [models.UniqueConstraint(fields=["run", "node_key"], name="step_unique_node_per_run")]
        indexes = [
            models.Index(
                fields=["status"],
                condition=models.Q(status__in=["queued", "running", "retrying", "waiting"]),
                name="step_active_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.node_key} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class RunEvent(models.Model):
    """The ordered log of a run: replayed to dashboards after a reconnect, and served as SSE."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    step = models.CharField(max_length=64, blank=True, help_text="Node key, for step events.")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        # Also the index of `run`.
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="run_event_unique_seq")]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.seq} {self.type}"


class Document(models.Model):
    """What a document (or text) step wrote: versioned per (workflow, node key), with its lineage.

    A regenerated step writes a new version; `previous` points at the version it replaced, `sources`
    at the earlier documents the model was given as context (the chain it continues).
    """

    class Format(models.TextChoices):
        MARKDOWN = "markdown"
        TEXT = "text"
        JSON = "json"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="documents")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="documents")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="documents")
    step = models.ForeignKey(StepRun, null=True, on_delete=models.SET_NULL, related_name="documents")
    node_key = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_versions")
    sources = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="derived")
    title = models.CharField(max_length=1000)
    content = models.TextField(blank=True)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.MARKDOWN)
    provider = models.CharField(max_length=20)
    model = models.CharField(max_length=200, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    latency_ms = models.FloatField(default=0)
    # finish reason, cache hit, context truncation, the prompt when a regeneration replaced it.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "node_key", "version"], name="document_unique_version")
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="document_list_idx"),
            models.Index(fields=["run", "node_key"], name="document_run_node_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"
