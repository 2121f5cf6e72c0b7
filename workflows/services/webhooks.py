"""Inbound webhooks: create, rotate and delete them, and turn a delivery into a run.

The token is the address, so only its SHA-256 is stored and it is shown once. A secret, when set,
signs deliveries: `X-Signature-256: sha256=<hex HMAC-SHA256 of "<X-Timestamp>." + raw body>`, with
the timestamp within five minutes of now; every comparison is constant-time.
"""

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import REDACTED, AnyRequest, audit_record
from workflows.credentials import decrypt, encrypt
from workflows.models import Run, WebhookTrigger, Workflow
from workflows.services.runs import run_trigger

SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_CLOCK_SKEW_SECONDS = 300
HEADER_NAME_LIMIT = 20

NO_SUCH_HOOK = "No webhook at this address."
SIGNATURE_MISSING = f"This webhook is signed: send {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}."
SIGNATURE_STALE = f"{TIMESTAMP_HEADER} is more than five minutes away from the server's clock."
SIGNATURE_BAD = "The signature does not match the body."
NOT_JSON = "The body is not valid JSON."


class WebhookUnauthorized(Exception):
    """A signed webhook's delivery is missing its signature, or it is stale or wrong (401)."""


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]  # lower-cased names


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, _hash(token)


def webhook_create(
    *,
    workflow: Workflow,
    actor: User,
    secret: str = "",
    dedupe_header: str = "",
    include_headers: Any = None,
    request: AnyRequest | None = None,
) -> tuple[WebhookTrigger, str]:
    """A new webhook and its token (returned once; only its hash is kept). Neither reaches the audit trail."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    include_headers = include_headers or []
    if not isinstance(include_headers, list) or len(include_headers) > HEADER_NAME_LIMIT:
        raise ValidationError({"include_headers": [f"A list of at most {HEADER_NAME_LIMIT} header names."]})
    if not all(isinstance(name, str) and 0 < len(name) <= 100 for name in include_headers):
        raise ValidationError({"include_headers": ["Header names are 1 to 100 characters."]})
    token, token_hash = _new_token()
    with transaction.atomic():
        hook = WebhookTrigger.objects.create(
            workflow=workflow,
            token_hash=token_hash,
            token_hint=token[-6:],
            encrypted_secret=encrypt({"secret": secret}) if secret else None,
            dedupe_header=dedupe_header,
            include_headers=[name.lower() for name in include_headers],
            created_by=actor,
        )
        changes = {
            "workflow": [None, str(workflow.pk)],
            "token": [None, REDACTED],
            **({"secret": [None, REDACTED]} if secret else {}),
            **({"dedupe_header": [None, dedupe_header]} if dedupe_header else {}),
            **({"include_headers": [None, hook.include_headers]} if hook.include_headers else {}),
        }
        audit_record(
            action="webhook.created",
            actor=actor,
            workspace=workflow.workspace,
            target=hook,
            target_type="webhook",
            changes=changes,
            request=request,
        )
    return hook, token


def webhook_rotate(*, hook: WebhookTrigger, actor: User, request: AnyRequest | None = None) -> str:
    """A new token; the old one stops working at once."""
    ensure_role(actor, hook.workflow.workspace, Role.EDITOR)
    token, token_hash = _new_token()
    with transaction.atomic():
        WebhookTrigger.objects.filter(pk=hook.pk).update(
            token_hash=token_hash, token_hint=token[-6:], rotated_at=timezone.now()
        )
        hook.refresh_from_db()
        audit_record(
            action="webhook.rotated",
            actor=actor,
            workspace=hook.workflow.workspace,
            target=hook,
            target_type="webhook",
            changes={"token": [REDACTED, REDACTED]},
            request=request,
        )
    return token


def webhook_delete(*, hook: WebhookTrigger, actor: User, request: AnyRequest | None = None) -> None:
    ensure_role(actor, hook.workflow.workspace, Role.EDITOR)
    hook_id = hook.pk
    with transaction.atomic():
        hook.delete()
        audit_record(
            action="webhook.deleted",
            actor=actor,
            workspace=hook.workflow.workspace,
            target_type="webhook",
            target_id=hook_id,
            changes={"workflow": [str(hook.workflow_id), None]},
            request=request,
        )


def webhook_for_token(token: str) -> WebhookTrigger:
    hook = WebhookTrigger.objects.select_related("workflow").filter(token_hash=_hash(token)).first()
    if hook is None or hook.workflow.is_deleted:
        raise Http404(NO_SUCH_HOOK)
    return hook


def rate_limited(hook: WebhookTrigger) -> int:
    """Seconds until the next window if this token went over its per-minute budget, else 0."""
    window = int(time.time() // 60)
    key = f"hook-rate:{hook.pk}:{window}"
    if cache.add(key, 1, timeout=120):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=120)
            count = 1
    if count > settings.DWC_WEBHOOK_RATE_PER_MINUTE:
        return 60 - int(time.time()) % 60 or 1
    return 0


def _verify(hook: WebhookTrigger, delivery: Delivery) -> None:
    if hook.encrypted_secret is None:
        return
    signature = delivery.headers.get(SIGNATURE_HEADER.lower(), "")
    stamp = delivery.headers.get(TIMESTAMP_HEADER.lower(), "")
    if not signature or not stamp:
        raise WebhookUnauthorized(SIGNATURE_MISSING)
    try:
        sent_at = int(stamp)
    except ValueError as error:
        raise WebhookUnauthorized(SIGNATURE_STALE) from error
    if abs(time.time() - sent_at) > MAX_CLOCK_SKEW_SECONDS:
        raise WebhookUnauthorized(SIGNATURE_STALE)
    secret = decrypt(hook.encrypted_secret)["secret"].encode()
    expected = "sha256=" + hmac.new(secret, stamp.encode() + b"." + delivery.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookUnauthorized(SIGNATURE_BAD)


def webhook_deliver(*, hook: WebhookTrigger, delivery: Delivery) -> tuple[Run, bool]:
    """Verify a delivery and start its run. Returns (run, created); a repeated delivery id → the first run.

    Raises WebhookUnauthorized, ValidationError (not JSON, input schema) or Conflict (not active).
    """
    _verify(hook, delivery)
    try:
        payload = json.loads(delivery.body or b"{}")
    except ValueError as error:
        raise ValidationError({"body": [NOT_JSON]}) from error
    run_input = payload if isinstance(payload, dict) else {"body": payload}
    if hook.include_headers:
        run_input["_headers"] = {
            name: delivery.headers[name] for name in hook.include_headers if name in delivery.headers
        }
    delivery_id = delivery.headers.get((hook.dedupe_header or IDEMPOTENCY_HEADER).lower(), "").strip()[:150]
    with transaction.atomic():
        return run_trigger(
            workflow=hook.workflow,
            input=run_input,
            trigger=Run.Trigger.WEBHOOK,
            actor=None,
            idempotency_key=f"hook:{hook.pk}:{delivery_id}" if delivery_id else None,
        )
