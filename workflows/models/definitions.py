"""Workflow definitions: the workflow, its tags, nodes and edges, and the versions runs pin."""

import uuid

from django.conf import settings as django_settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from accounts.models import Workspace

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
