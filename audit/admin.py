import json

from django.contrib import admin
from django.utils.html import format_html

from audit.admin_writes import ReadOnlyAdminMixin
from audit.models import AuditCheckpoint, AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "timestamp", "action", "actor_label", "actor_type", "workspace_label", "target", "ip"]
    list_filter = ["action", "actor_type", "workspace", ("timestamp", admin.DateFieldListFilter)]
    search_fields = ["actor_label", "=target_id", "=request_id"]
    # Counting a large table for "N total" costs more than the page itself.
    show_full_result_count = False
    fields = [
        "id",
        "timestamp",
        "action",
        ("actor_type", "actor_label", "actor_ref", "api_key_id"),
        ("workspace_label", "workspace_ref"),
        ("target_type", "target_id"),
        "changes_pretty",
        ("ip", "request_id"),
        "user_agent",
        "prev_hash",
        "hash",
    ]
    readonly_fields = [name for entry in fields for name in (entry if isinstance(entry, tuple) else (entry,))]

    @admin.display(description="target")
    def target(self, event: AuditEvent) -> str:
        return f"{event.target_type} {event.target_id}".strip()

    @admin.display(description="changes")
    def changes_pretty(self, event: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.changes, indent=2, ensure_ascii=False))


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["last_id", "count", "purged_before", "created_at", "event_id"]
