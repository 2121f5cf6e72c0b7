from typing import Any

from rest_framework import serializers

# The columns an event document is built from; lists and exports read only these.
COLUMNS = (
    "id",
    "timestamp",
    "action",
    "actor_type",
    "actor_ref",
    "actor_label",
    "api_key_id",
    "workspace_ref",
    "workspace_label",
    "target_type",
    "target_id",
    "changes",
    "ip",
    "user_agent",
    "request_id",
    "prev_hash",
    "hash",
)


def event_document(row: dict[str, Any]) -> dict[str, Any]:
    """One event as the API shows it, from a `.values(*COLUMNS)` row (cheap enough to stream millions)."""
    return {
        "id": row["id"],
        "timestamp": row["timestamp"].isoformat().replace("+00:00", "Z"),
        "action": row["action"],
        "actor_type": row["actor_type"],
        "actor": row["actor_ref"] or None,
        "actor_label": row["actor_label"],
        "api_key": str(row["api_key_id"]) if row["api_key_id"] else None,
        "workspace": row["workspace_ref"] or None,
        "workspace_label": row["workspace_label"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "changes": row["changes"],
        "ip": row["ip"] or None,
        "user_agent": row["user_agent"],
        "request_id": row["request_id"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


class AuditEventSerializer(serializers.Serializer):
    """Documents the shape; `event_document` builds it, for lists and exports alike."""

    id = serializers.IntegerField(help_text="Position in the chain: ids are contiguous.")
    timestamp = serializers.DateTimeField()
    action = serializers.CharField(help_text='e.g. "workflow.created", "credential.updated", "auth.login".')
    actor_type = serializers.ChoiceField(choices=["user", "api_key", "system", "anonymous"])
    actor = serializers.UUIDField(allow_null=True, help_text="The acting user (an API key's owner).")
    actor_label = serializers.CharField(help_text="Email, apikey:<prefix>, system, or the name a failed login gave.")
    api_key = serializers.UUIDField(allow_null=True)
    workspace = serializers.UUIDField(allow_null=True)
    workspace_label = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    changes = serializers.JSONField(help_text='{field: [before, after]}; secrets only as "***".')
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    request_id = serializers.CharField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()

    def to_representation(self, instance: dict) -> dict:
        return event_document(instance)
