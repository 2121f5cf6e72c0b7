"""Browsers' Web Push subscriptions: a user subscribes their browser (or re-subscribes it, with new keys)
and unsubscribes it. Each change is audited; the endpoint itself, a capability URL, is never recorded."""

import binascii
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from accounts.models import User
from audit.services import AnyRequest, audit_record
from notifications.channels.web_push import b64url_decode
from notifications.models import PushSubscription
from workflows.engine.egress.destinations import Target, checked_addresses
from workflows.engine.egress.errors import EgressConnectionError, EgressForbidden

Errors = dict[str, list[str]]

ENDPOINT_MAX_LENGTH = PushSubscription._meta.get_field("endpoint").max_length
USER_AGENT_MAX_LENGTH = PushSubscription._meta.get_field("user_agent").max_length
# A user's browsers beyond this many: the least recently subscribed ones are dropped.
MAX_SUBSCRIPTIONS_PER_USER = 20
FIELDS = ("endpoint", "keys", "expirationTime")
BODY_NOT_AN_OBJECT = "The body must be a JSON object: the browser's PushSubscription.toJSON()."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
ENDPOINT_INVALID = f"The push service's https:// URL (at most {ENDPOINT_MAX_LENGTH} characters)."
ENDPOINT_REFUSED = "The push service's address is refused: {reason}"
KEYS_NOT_AN_OBJECT = "An object {p256dh, auth}."
P256DH_INVALID = "The browser's P-256 public key, base64url (65 bytes, uncompressed)."
AUTH_INVALID = "The browser's authentication secret, base64url (16 bytes)."
NO_SUCH_SUBSCRIPTION = "No such push subscription."


def _endpoint_errors(endpoint: Any) -> list[str]:
    """An https URL the egress client would send to. A host that does not resolve now is let through:
    every send checks the address again."""
    if not isinstance(endpoint, str) or len(endpoint) > ENDPOINT_MAX_LENGTH or any(c.isspace() for c in endpoint):
        return [ENDPOINT_INVALID]
    try:
        target = Target.parse(endpoint)
    except EgressForbidden:
        return [ENDPOINT_INVALID]
    if target.scheme != "https" or urlsplit(endpoint).fragment:
        return [ENDPOINT_INVALID]
    try:
        checked_addresses(target.host, target.port)
    except EgressForbidden as error:
        return [ENDPOINT_REFUSED.format(reason=error.message)]
    except EgressConnectionError:
        pass
    return []


def _decoded(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value or len(value) > 200:
        return None
    try:
        return b64url_decode(value)
    except (binascii.Error, ValueError):
        return None


def _key_errors(keys: Any) -> Errors:
    if not isinstance(keys, dict):
        return {"keys": [KEYS_NOT_AN_OBJECT]}
    errors: Errors = {f"keys.{name}": [UNKNOWN_FIELD] for name in sorted(set(keys) - {"p256dh", "auth"})}
    point = _decoded(keys.get("p256dh"))
    try:
        if point is None or len(point) != 65:
            raise ValueError(P256DH_INVALID)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        errors["keys.p256dh"] = [P256DH_INVALID]
    secret = _decoded(keys.get("auth"))
    if secret is None or len(secret) != 16:
        errors["keys.auth"] = [AUTH_INVALID]
    return errors


def push_subscription_check(data: Any) -> dict:
    """{endpoint, p256dh, auth} from a browser's PushSubscription.toJSON(); ValidationError naming the
    bad fields. `expirationTime` is accepted and not kept (push services answer 410 once expired)."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - set(FIELDS))}
    errors.update({name: [REQUIRED] for name in ("endpoint", "keys") if name not in data})
    if "endpoint" in data and (problems := _endpoint_errors(data["endpoint"])):
        errors["endpoint"] = problems
    if "keys" in data:
        errors.update(_key_errors(data["keys"]))
    if errors:
        raise ValidationError(errors)
    return {"endpoint": data["endpoint"], "p256dh": data["keys"]["p256dh"], "auth": data["keys"]["auth"]}


def push_subscription_save(
    *, actor: User, data: Any, user_agent: str = "", request: AnyRequest | None = None
) -> tuple[PushSubscription, bool]:
    """Subscribe the actor's browser: a new subscription, or the one with the same endpoint updated
    (new keys; the actor's now, should the browser have been someone else's before). Returns it and
    whether it was created. Raises ValidationError for a body that is not a usable subscription or an
    endpoint the egress rules refuse."""
    fields = push_subscription_check(data)
    with transaction.atomic():
        subscription, created = PushSubscription.objects.update_or_create(
            endpoint=fields["endpoint"],
            defaults={
                "user": actor,
                "p256dh": fields["p256dh"],
                "auth": fields["auth"],
                "user_agent": user_agent[:USER_AGENT_MAX_LENGTH],
            },
        )
        stale = PushSubscription.objects.filter(user=actor).order_by("-created_at")[MAX_SUBSCRIPTIONS_PER_USER:]
        PushSubscription.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
        audit_record(
            action="push_subscription.created" if created else "push_subscription.updated",
            actor=actor,
            target=subscription,
            changes={"push_service": [None, urlsplit(subscription.endpoint).hostname]},
            request=request,
        )
    return subscription, created


def push_subscription_delete(*, subscription: PushSubscription, actor: User, request: AnyRequest | None = None) -> None:
    """Unsubscribe one of the actor's browsers; Http404 for anyone else's."""
    if subscription.user_id != actor.pk:
        raise Http404(NO_SUCH_SUBSCRIPTION)
    with transaction.atomic():
        audit_record(
            action="push_subscription.deleted",
            actor=actor,
            target=subscription,
            changes={"push_service": [urlsplit(subscription.endpoint).hostname, None]},
            request=request,
        )
        subscription.delete()
