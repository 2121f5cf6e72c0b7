"""Shapes of channels, deliveries and inbox notifications; the request bodies are documented here and
checked by notifications.services."""

from rest_framework import serializers

from core.openapi import NOT_ONLY_SPACES
from notifications.models import Channel, Delivery, Notification, Rule, Template
from notifications.services import rules as rule_services
from notifications.services import templates as template_services
from notifications.services.channels import IGNORED_FIELDS, NAME_MAX_LENGTH
from notifications.services.events import EVENT_TYPES


class ChannelSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)

    class Meta:
        model = Channel
        fields = [
            "id",
            "workspace",
            "name",
            "kind",
            "config",
            "credential",
            "enabled",
            "last_status",
            "last_delivery_at",
            "created_by",
            "created_at",
            "updated_at",
        ]


class ChannelWriteSerializer(serializers.Serializer):
    """Documents the body of POST and PATCH; the service validates it."""

    unknown_fields_refused = True
    ignored_fields = IGNORED_FIELDS
    ignored_when_partial = ("workspace", "kind")

    name = serializers.CharField(max_length=NAME_MAX_LENGTH, help_text="Unique in the workspace.")
    kind = serializers.ChoiceField(choices=Channel.Kind.choices, help_text="Fixed once the channel exists.")
    # Settings of the kind, checked against its JSON Schema: webhook {url, headers?}; slack, teams, discord
    # {url?} (or a credential holding it); in_app {roles?}; email {to?}. An object (a JSONField's schema
    # sent openapi-spec-validator into endless recursion).
    config = serializers.DictField(required=False)
    credential = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Name of a workspace credential: an hmac_secret signing webhooks, a slack_webhook holding a chat "
        "webhook's URL; empty for none.",
    )
    enabled = serializers.BooleanField(required=False)
    workspace = serializers.UUIDField(required=False, help_text="POST only: a workspace of the caller's.")

    # Each kind's config schema is checked by the service (notifications.channels).
    request_schema_rules = {"properties": {"name": {"pattern": NOT_ONLY_SPACES}}}


class DeliverySerializer(serializers.ModelSerializer):
    recipient = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "workspace",
            "channel",
            "recipient",
            "subject",
            "body",
            "link",
            "level",
            "payload",
            "direct_kind",
            "rule",
            "status",
            "attempts",
            "max_attempts",
            "next_attempt_at",
            "send_at",
            "response_code",
            "provider_id",
            "error",
            "idempotency_key",
            "may_have_been_delivered",
            "created_at",
            "sent_at",
        ]


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "workspace", "title", "body", "link", "level", "created_at", "read_at"]


class UnreadCountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


class ReadAllSerializer(serializers.Serializer):
    marked = serializers.IntegerField(help_text="How many notifications were unread.")


class TemplateSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)

    class Meta:
        model = Template
        fields = ["id", "workspace", "name", "subject", "body", "formats", "created_by", "created_at", "updated_at"]


class TemplateWriteSerializer(serializers.Serializer):
    """Documents the body of POST and PATCH; the service validates it (every template is parsed)."""

    unknown_fields_refused = True
    ignored_fields = template_services.IGNORED_FIELDS

    name = serializers.CharField(max_length=template_services.NAME_MAX_LENGTH, help_text="Unique in the workspace.")
    subject = serializers.CharField(required=False, allow_blank=True, max_length=template_services.SUBJECT_MAX_LENGTH)
    body = serializers.CharField(max_length=template_services.BODY_MAX_LENGTH, help_text="The plain-text message.")
    # {markdown?, html?: template text; slack_blocks?, teams_card?, discord_embed?: JSON whose strings are
    # templates}. An object (a JSONField's schema sent openapi-spec-validator into endless recursion).
    formats = serializers.DictField(required=False)
    workspace = serializers.UUIDField(required=False, help_text="POST only: a workspace of the caller's.")

    request_schema_rules = {"properties": {"name": {"pattern": NOT_ONLY_SPACES}, "body": {"pattern": "\\S"}}}


class TemplatePreviewSerializer(TemplateWriteSerializer):
    name = serializers.CharField(required=False, max_length=template_services.NAME_MAX_LENGTH)
    event_type = serializers.ChoiceField(choices=EVENT_TYPES, required=False, help_text="Default run.failed.")


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    body = serializers.CharField()
    formats = serializers.DictField()


class RuleSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True, allow_null=True)
    workflow = serializers.UUIDField(source="workflow_id", allow_null=True, read_only=True)
    channels = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    members = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Rule
        fields = [
            "id",
            "workspace",
            "name",
            "enabled",
            "events",
            "workflow",
            "tags",
            "channels",
            "members",
            "roles",
            "member_kinds",
            "template",
            "throttle_count",
            "throttle_window_seconds",
            "digest_window_seconds",
            "created_by",
            "created_at",
            "updated_at",
        ]


class RuleWriteSerializer(serializers.Serializer):
    """Documents the body of POST and PATCH; the service validates it."""

    unknown_fields_refused = True
    ignored_fields = rule_services.IGNORED_FIELDS

    name = serializers.CharField(max_length=rule_services.NAME_MAX_LENGTH, help_text="Unique in the workspace.")
    enabled = serializers.BooleanField(required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), min_length=1)
    workflow = serializers.UUIDField(required=False, allow_null=True, help_text="Only this workflow's events.")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="Workflows with any of these tags."
    )
    channels = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=rule_services.MAX_LIST)
    members = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=rule_services.MAX_LIST, help_text="User ids."
    )
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=["owner", "admin", "editor", "viewer"]), required=False
    )
    member_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=list(map(str, rule_services.MEMBER_KINDS))),
        required=False,
        help_text="How members and role holders are notified (default: in_app).",
    )
    template = serializers.UUIDField(required=False, allow_null=True, help_text="Null: the event's default message.")
    throttle_count = serializers.IntegerField(required=False, min_value=1, max_value=100_000)
    throttle_window_seconds = serializers.IntegerField(
        required=False, min_value=1, max_value=rule_services.MAX_WINDOW_SECONDS
    )
    digest_window_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=rule_services.MAX_WINDOW_SECONDS, help_text="0 or at least 60."
    )
    workspace = serializers.UUIDField(required=False, help_text="POST only: a workspace of the caller's.")

    request_schema_rules = {
        "properties": {
            "name": {"pattern": NOT_ONLY_SPACES},
            "events": {"uniqueItems": True},
            "roles": {"uniqueItems": True},
            "member_kinds": {"uniqueItems": True, "minItems": 1},
            "digest_window_seconds": {"anyOf": [{"maximum": 0}, {"minimum": 60}]},
        }
    }
