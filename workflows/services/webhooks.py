"""Inbound webhooks: create, rotate and delete them, and turn a delivery into a run.

The token is the address, so only its SHA-256 is stored and it is shown once. A secret, when set,
signs deliveries: `X-Signature-256: sha256=<hex HMAC-SHA256 of "<X-Timestamp>." + raw body>`, with
the timestamp within five minutes of now; every comparison is constant-time. A signature is
accepted once: while it is fresh, a replay of the same signed delivery gets the first run back
(`WebhookDelivery` remembers it, in the database so that every process sees it).
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.ip_allow_lists import WEBHOOK, ensure_allowed
from accounts.models import User, ip_networks_clean
from audit.services import REDACTED, AnyRequest, audit_record, diff
from core.json_input import TOO_DEEP, JSONTooDeep, UnstorableJSON, json_loads
from core.request_text import NO_FIELD, UNSTORABLE_TEXT
from core.row_queries import RowWithRelated
from core.throttling import window_hit
from workflows.credentials import decrypt, encrypt
from workflows.models import Run, WebhookDelivery, WebhookTrigger, Workflow
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


class Refusal:
    """Why a delivery was refused: the `data.reason` of its `webhook.rejected` notification event."""

    IP_NOT_ALLOWED = "ip_not_allowed"
    RATE_LIMITED = "rate_limited"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_REQUEST = "invalid_request"  # a bad query parameter
    SIGNATURE_INVALID = "signature_invalid"  # missing, stale or wrong
    PAYLOAD_INVALID = "payload_invalid"  # not JSON, or not what the workflow's input schema asks
    WORKFLOW_NOT_ACTIVE = "workflow_not_active"


class WebhookUnauthorized(Exception):
    """A signed webhook's delivery is missing its signature, or it is stale or wrong (401)."""


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]  # lower-cased names


@dataclass(frozen=True)
class Signature:
    digest: str  # hex HMAC-SHA256, as checked
    sent_at: int  # the delivery's X-Timestamp


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
    allowed_ips: list[str] | None = None,
    request: AnyRequest | None = None,
) -> tuple[WebhookTrigger, str]:
    """A new webhook and its token (returned once; only its hash is kept). Neither reaches the audit trail.

    `allowed_ips` limits deliveries to those addresses and networks (None or []: from anywhere)."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    include_headers = include_headers or []
    if not isinstance(include_headers, list) or len(include_headers) > HEADER_NAME_LIMIT:
        raise ValidationError({"include_headers": [f"A list of at most {HEADER_NAME_LIMIT} header names."]})
    if not all(isinstance(name, str) and 0 < len(name) <= 100 for name in include_headers):
        raise ValidationError({"include_headers": ["Header names are 1 to 100 characters."]})
    allowed_ips = _allowed_ips_clean(allowed_ips or [])
    token, token_hash = _new_token()
    with transaction.atomic():
        hook = WebhookTrigger.objects.create(
            workflow=workflow,
            token_hash=token_hash,
            token_hint=token[-6:],
            encrypted_secret=encrypt({"secret": secret}) if secret else None,
            dedupe_header=dedupe_header,
            include_headers=[name.lower() for name in include_headers],
            allowed_ips=allowed_ips,
            created_by=actor,
        )
        changes = {
            "workflow": [None, str(workflow.pk)],
            "token": [None, REDACTED],
            **({"secret": [None, REDACTED]} if secret else {}),
            **({"dedupe_header": [None, dedupe_header]} if dedupe_header else {}),
            **({"include_headers": [None, hook.include_headers]} if hook.include_headers else {}),
            **({"allowed_ips": [None, allowed_ips]} if allowed_ips else {}),
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


def _allowed_ips_clean(allowed_ips: list[str]) -> list[str]:
    try:
        return ip_networks_clean(allowed_ips)
    except ValidationError as error:
        raise ValidationError({"allowed_ips": error.messages}) from error


def webhook_update(
    *, hook: WebhookTrigger, actor: User, allowed_ips: list[str], request: AnyRequest | None = None
) -> WebhookTrigger:
    """Change where deliveries may come from ([]: anywhere); audited as webhook.updated if it changed."""
    ensure_role(actor, hook.workflow.workspace, Role.EDITOR)
    allowed_ips = _allowed_ips_clean(allowed_ips)
    changes = diff({"allowed_ips": hook.allowed_ips}, {"allowed_ips": allowed_ips})
    with transaction.atomic():
        WebhookTrigger.objects.filter(pk=hook.pk).update(allowed_ips=allowed_ips)
        hook.allowed_ips = allowed_ips
        if changes:
            audit_record(
                action="webhook.updated",
                actor=actor,
                workspace=hook.workflow.workspace,
                target=hook,
                target_type="webhook",
                changes=changes,
                request=request,
            )
    return hook


def webhook_address_check(*, hook: WebhookTrigger, address: str) -> None:
    """Refuse a delivery from outside the webhook's IP allow-list: IpNotAllowed, audited in the
    workflow's workspace. `hook.workflow` is loaded (webhook_for_token)."""
    ensure_allowed(
        hook.allowed_ips,
        rule=WEBHOOK,
        address=address,
        workspace=hook.workflow.workspace_id,
        target=hook,
        target_type="webhook",
    )


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


# Every delivery asks: the webhook and its workflow from one row (core.row_queries).
_hook_with_workflow = RowWithRelated(
    lambda token_hash: WebhookTrigger.objects.filter(token_hash=token_hash), "workflow"
)


def webhook_for_token(token: str) -> WebhookTrigger:
    hook = _hook_with_workflow.get(_hash(token))
    if hook is None or hook.workflow.is_deleted:
        raise Http404(NO_SUCH_HOOK)
    return hook


def rate_limited(hook: WebhookTrigger) -> int:
    """Seconds until the next window if this token went over its per-minute budget, else 0."""
    now = time.time()
    if window_hit(f"hook-rate:{hook.pk}", 60, now) > settings.DWC_WEBHOOK_RATE_PER_MINUTE:
        return 60 - int(now) % 60 or 1
    return 0


def _verify(hook: WebhookTrigger, delivery: Delivery) -> Signature | None:
    """The delivery's checked signature; None for an unsigned webhook. Raises WebhookUnauthorized."""
    if hook.encrypted_secret is None:
        return None
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
    digest = hmac.new(secret, stamp.encode() + b"." + delivery.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"sha256={digest}".encode(), signature.encode()):
        raise WebhookUnauthorized(SIGNATURE_BAD)
    return Signature(digest=digest, sent_at=sent_at)


def webhook_deliver(*, hook: WebhookTrigger, delivery: Delivery) -> tuple[Run, bool]:
    """Verify a delivery and start its run. Returns (run, created).

    A repeated delivery id, or a replayed signature (the same signed timestamp and body, whatever the
    other headers say), returns the first run with created=False.
    Raises WebhookUnauthorized, ValidationError (not JSON, input schema) or Conflict (not active).
    """
    signature = _verify(hook, delivery)
    try:
        payload = json_loads(delivery.body or b"{}")
    except UnstorableJSON as error:
        paths = ["body" if path == NO_FIELD else f"body.{path}" for path in error.paths]
        raise ValidationError({path: [UNSTORABLE_TEXT] for path in paths}) from error
    except JSONTooDeep as error:
        raise ValidationError({"body": [TOO_DEEP]}) from error
    except ValueError as error:
        raise ValidationError({"body": [NOT_JSON]}) from error
    run_input = payload if isinstance(payload, dict) else {"body": payload}
    if hook.include_headers:
        run_input["_headers"] = {
            name: delivery.headers[name] for name in hook.include_headers if name in delivery.headers
        }
    delivery_id = delivery.headers.get((hook.dedupe_header or IDEMPOTENCY_HEADER).lower(), "").strip()[:150]

    def start() -> tuple[Run, bool]:
        return run_trigger(
            workflow=hook.workflow,
            input=run_input,
            trigger=Run.Trigger.WEBHOOK,
            actor=None,
            idempotency_key=f"hook:{hook.pk}:{delivery_id}" if delivery_id else None,
        )

    if signature is None:
        # Nothing to write beside the run: its own transaction, not a savepoint in one of ours (two
        # round trips more on every delivery).
        return start()
    try:
        with transaction.atomic():
            run, created = start()
            # Written after the run, in its transaction: a concurrent replay waits here on the
            # unique signature, fails once this commits, and its run is rolled back unstarted.
            # Also for a repeated delivery id: that signature must not start a run under a new id.
            WebhookDelivery.objects.create(
                hook=hook,
                signature=signature.digest,
                run=run,
                expires_at=datetime.fromtimestamp(signature.sent_at + MAX_CLOCK_SKEW_SECONDS, tz=UTC),
            )
            return run, created
    except IntegrityError:
        first = WebhookDelivery.objects.filter(hook=hook, signature=signature.digest).select_related("run").first()
        if first is None:
            raise
        return first.run, False


def webhook_deliveries_prune() -> int:
    """Forget signed deliveries whose signatures can no longer verify; returns how many went.

    A tolerance's grace beyond `expires_at` covers servers whose clocks disagree a little.
    """
    cutoff = timezone.now() - timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
    deleted, _ = WebhookDelivery.objects.filter(expires_at__lt=cutoff).delete()
    return deleted
