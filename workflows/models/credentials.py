"""Workspace secrets, encrypted at rest."""

import uuid

from django.conf import settings as django_settings
from django.db import models

from accounts.models import Workspace


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
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the secret stops working (e.g. a token's expiry): a credential.expiring "
        "notification event is raised DWC_CREDENTIAL_EXPIRY_WARNING_DAYS before, and once it has passed.",
    )
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
