import uuid

from django.conf import settings as django_settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from accounts.models import Workspace, ip_allow_list_field

NODE_KEY_PATTERN = r"^[a-z0-9][a-z0-9_]{0,63}$"
WORKFLOW_SLUG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class Workflow(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        ARCHIVED = "archived"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="workflows")
    slug = models.CharField(  # noqa: DJ001 - NULL: many workflows have none, and the unique constraint ignores NULLs
        max_length=100,
        null=True,
        blank=True,
        validators=[RegexValidator(WORKFLOW_SLUG_PATTERN)],
        help_text="A client-chosen identifier, unique in the workspace.",
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    settings = models.JSONField(default=dict, blank=True)
    input_schema = models.JSONField(default=dict, blank=True, help_text="JSON Schema the run input must match.")
    version = models.PositiveIntegerField(default=0, help_text="Number of the latest WorkflowVersion.")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="workflow_unique_slug_per_workspace"),
        ]
        indexes = [
            models.Index(fields=["workspace", "status", "-updated_at"], name="workflow_list_idx"),
            models.Index(fields=["workspace", "deleted_at"], name="workflow_deleted_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class WorkflowTag(models.Model):
    """A workflow's tag. A table rather than a JSON list so that filtering by tag is indexed everywhere."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="tag_set")
    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workflow", "name"], name="workflow_tag_unique")]
        indexes = [models.Index(fields=["name"], name="workflow_tag_name_idx")]

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    class TriggerRule(models.TextChoices):
        ALL_SUCCESS = "all_success"
        ALL_DONE = "all_done"
        ONE_SUCCESS = "one_success"

    class Priority(models.IntegerChoices):
        LOW = 1
        NORMAL = 2
        HIGH = 3
        CRITICAL = 4

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    key = models.CharField(max_length=64, validators=[RegexValidator(NODE_KEY_PATTERN)])
    type = models.CharField(max_length=32)
    title = models.CharField(max_length=200, blank=True)
    prompt = models.TextField(blank=True)
    content = models.TextField(blank=True)
    config = models.JSONField(default=dict, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    tags = models.JSONField(default=list, blank=True)
    position = models.JSONField(default=dict, blank=True, help_text='Where the editor draws it: {"x": 0, "y": 0}.')
    retry = models.JSONField(default=dict, blank=True, help_text="max_attempts, backoff_seconds, backoff_factor.")
    timeout = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(604800)], help_text="Seconds."
    )
    trigger_rule = models.CharField(max_length=16, choices=TriggerRule.choices, default=TriggerRule.ALL_SUCCESS)
    order = models.PositiveIntegerField(default=0, help_text="Tie-breaker among nodes the graph does not order.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "created_at"]
        constraints = [models.UniqueConstraint(fields=["workflow", "key"], name="node_unique_key_per_workflow")]

    def __str__(self) -> str:
        return self.key


class Edge(models.Model):
    """`target` runs after `source`. A label ("true"/"false") follows one branch of a condition."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="edges")
    source = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="incoming")
    label = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "target"], name="edge_unique_pair"),
            models.CheckConstraint(condition=~models.Q(source=models.F("target")), name="edge_not_a_loop"),
        ]

    def __str__(self) -> str:
        label = f" [{self.label}]" if self.label else ""
        return f"{self.source_id} → {self.target_id}{label}"


class WorkflowVersion(models.Model):
    """An immutable snapshot of a definition. Runs pin one, so edits never change a running run."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number}"


class Run(models.Model):
    """One execution of a pinned WorkflowVersion."""

    class Status(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        WAITING = "waiting"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

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
                condition=models.Q(status__in=["pending", "queued", "running", "waiting"]),
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


class Credential(models.Model):
    """A workspace secret, encrypted at rest, referenced from node config by its name.

    The value is a small JSON object whose keys depend on the kind (see workflows.credentials).
    """

    class Kind(models.TextChoices):
        HTTP_BEARER = "http_bearer"
        HTTP_BASIC = "http_basic"
        HTTP_HEADER = "http_header"
        HMAC_SECRET = "hmac_secret"  # noqa: S105 - a kind name, not a secret
        SLACK_WEBHOOK = "slack_webhook"
        OPENAI = "openai"
        ANTHROPIC = "anthropic"
        SMTP = "smtp"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    encrypted_value = models.BinaryField(editable=False)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="credential_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


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
