"""Shapes of channels, deliveries and inbox notifications; the request bodies are documented here and
checked by notifications.services."""

from rest_framework import serializers

from core.openapi import NOT_ONLY_SPACES
from notifications.models import Channel, Delivery, Notification
from notifications.services.channels import IGNORED_FIELDS, NAME_MAX_LENGTH


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
