"""The audit trail: one append-only, hash-chained table of who changed what, when and from where.

Every row's `hash` is SHA-256 over the previous row's hash and the row's canonical JSON
(`audit.chain`), so editing, deleting or inserting a row breaks the chain at that row. Rows are
appended only through `audit.services`, which numbers them itself under a lock on `AuditChainHead`:
ids are contiguous and chain order is id order. A trigger (migration 0002) refuses
UPDATE and DELETE except for the purge.
"""

from django.conf import settings
from django.db import models

APPEND_ONLY = "Audit events are append-only: they cannot be changed or deleted."


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit event through the ORM."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)

    def delete(self):
        raise AppendOnlyError(APPEND_ONLY)


class AuditEvent(models.Model):
    class ActorType(models.TextChoices):
        USER = "user"
        API_KEY = "api_key"
        SYSTEM = "system"
        # Someone not logged in: a failed login, a lock-out. `actor_label` is the name they gave.
        ANONYMOUS = "anonymous"

    # Assigned by audit.services under the chain lock, not by a sequence: see the module docstring.
    id = models.BigIntegerField(primary_key=True)
    timestamp = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    # The foreign keys become NULL when their user or workspace is deleted; the *_ref texts, which
    # are hashed, keep the ids, so deleting a workspace does not break the chain.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_ref = models.CharField(max_length=64, blank=True, help_text="The acting user's id.")
    actor_label = models.CharField(max_length=254, blank=True, help_text="Email, apikey:<prefix> or system.")
    api_key_id = models.UUIDField(null=True, blank=True)
    workspace = models.ForeignKey(
        "accounts.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    workspace_ref = models.CharField(max_length=64, blank=True, help_text="The workspace's id.")
    workspace_label = models.CharField(max_length=200, blank=True, help_text="The workspace's name at the time.")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    changes = models.JSONField(default=dict, blank=True, help_text="{field: [before, after]}; secrets as ***.")
    ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The API lists a workspace's events newest first.
            models.Index(fields=["workspace", "-id"], name="audit_workspace_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.action} by {self.actor_label or self.actor_type}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(APPEND_ONLY)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)


class AuditChainHead(models.Model):
    """One row (id 1): the last event's id and hash. Appending locks it, so writers queue."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"audit chain at #{self.last_id}"


class AuditCheckpoint(models.Model):
    """Left by a purge: where the remaining chain starts. Itself recorded as an `audit.purged` event."""

    created_at = models.DateTimeField()
    purged_before = models.DateTimeField(help_text="Events older than this were deleted.")
    count = models.PositiveIntegerField()
    last_id = models.BigIntegerField(help_text="The last purged event's id.")
    last_hash = models.CharField(max_length=64, help_text="The last purged event's hash.")
    event_id = models.BigIntegerField(help_text="The audit.purged event recording this checkpoint.")

    class Meta:
        ordering = ["-last_id"]

    def __str__(self) -> str:
        return f"purged {self.count} events up to #{self.last_id}"
