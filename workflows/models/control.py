"""Holding work back: a workspace's or a workflow's runs paused, and the whole engine drained.

A paused run is a run (`Run.Status.PAUSED`); these rows are the pauses that outlive any one run. What
each does to the engine is in `workflows.engine.pausing`.
"""

import uuid

from django.conf import settings as django_settings
from django.db import models

from accounts.models import Workspace
from workflows.models.definitions import Workflow


class RunsPause(models.Model):
    """The runs of a workspace (workflow null) or of one workflow are paused: those running were
    paused with it, and new ones are accepted and held `queued` until it is lifted (deleted)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="runs_pauses")
    workflow = models.ForeignKey(
        Workflow, null=True, blank=True, on_delete=models.CASCADE, related_name="runs_pauses", db_index=False
    )
    paused_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow"], name="runs_pause_one_per_workflow"),
            models.UniqueConstraint(
                fields=["workspace"], condition=models.Q(workflow__isnull=True), name="runs_pause_one_per_workspace"
            ),
        ]

    def __str__(self) -> str:
        return f"runs of {self.workflow or self.workspace} paused"


class EngineDrain(models.Model):
    """The engine drains while this one row exists: workers finish the steps they hold and start no
    new ones (for deploys and incidents); deleting it releases everything held."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    since = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "engine"
        verbose_name_plural = "engine"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="engine_drain_single_row")]

    def __str__(self) -> str:
        return f"engine draining since {self.since:%Y-%m-%d %H:%M:%S} UTC"
