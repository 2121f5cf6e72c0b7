"""API keys: create, revoke, and check the key a request presents.

A key is `dwc_<8 characters>_<43 characters>`: the first two parts are its public `prefix`, stored as
is for lookup; the whole key is stored only as its SHA-256. The secret part has 256 bits of
randomness, so a fast hash is right here (a password hash's slowness protects low-entropy secrets).
"""

import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.access import workspace_for_member
from accounts.ip_allow_lists import API_KEY, ensure_allowed
from accounts.models import ApiKey, User, Workspace, ip_networks_clean
from accounts.signals import api_key_used
from audit.services import AnyRequest, audit_record, diff

KEY_START = "dwc_"
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_LENGTH = 8
# last_used_at is written at most this often per key: one UPDATE a minute, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

NAME_REQUIRED = "Give the key a name."
SCOPES_REQUIRED = "Choose at least one scope: " + ", ".join(ApiKey.Scope.values) + "."
UNKNOWN_SCOPE = "Unknown scope {scope!r}; the scopes are " + ", ".join(ApiKey.Scope.values) + "."
EXPIRY_IN_THE_PAST = "The expiry must be in the future."
NO_SUCH_WORKSPACE = "No such workspace."
NO_SUCH_KEY = "No such API key."
INVALID_KEY = "Invalid API key."
REVOKED_KEY = "This API key has been revoked."
EXPIRED_KEY = "This API key expired at {expires_at}."


class ApiKeyRejected(Exception):
    """The presented key is unknown, revoked or expired (the message says which)."""


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    prefix = KEY_START + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def _clean_scopes(scopes) -> list[str]:
    if not isinstance(scopes, list) or not scopes:
        raise ValidationError({"scopes": [SCOPES_REQUIRED]})
    unknown = [scope for scope in scopes if scope not in ApiKey.Scope.values]
    if unknown:
        raise ValidationError({"scopes": [UNKNOWN_SCOPE.format(scope=unknown[0])]})
    return [scope for scope in ApiKey.Scope.values if scope in scopes]  # canonical order, no repeats


def api_key_create(
    *,
    user: User,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    workspace_id=None,
    allowed_ips: list[str] | None = None,
    request: AnyRequest | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `user` and return it with the raw key, which is never available again.

    `workspace_id` limits the key to a workspace the user belongs to; `allowed_ips` to requests from
    those addresses and networks (None or []: from anywhere). Raises ValidationError.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [NAME_REQUIRED]})
    scopes = _clean_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": [EXPIRY_IN_THE_PAST]})
    try:
        allowed_ips = ip_networks_clean(allowed_ips or [])
    except ValidationError as error:
        raise ValidationError({"allowed_ips": error.messages}) from error
    workspace: Workspace | None = None
    if workspace_id is not None:
        workspace = workspace_for_member(user, workspace_id)
        if workspace is None:
            raise ValidationError({"workspace": [NO_SUCH_WORKSPACE]})
    for _attempt in range(3):  # a prefix collision is rare (36^8 prefixes); try another one
        prefix, raw_key = _new_key()
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    user=user,
                    workspace=workspace,
                    name=name,
                    prefix=prefix,
                    key_hash=_hash(raw_key),
                    scopes=scopes,
                    expires_at=expires_at,
                    allowed_ips=allowed_ips,
                )
                audit_record(
                    action="apikey.created",
                    actor=user,
                    workspace=workspace,
                    target=key,
                    changes=diff(
                        {},
                        {
                            "name": name,
                            "prefix": prefix,
                            "scopes": scopes,
                            "workspace": workspace.pk if workspace else None,
                            "expires_at": expires_at,
                            "allowed_ips": allowed_ips or None,
                        },
                    ),
                    request=request,
                )
            return key, raw_key
        except IntegrityError:
            continue
    raise RuntimeError("Could not find a free API key prefix in three attempts.")


def api_keys_for_user(user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at")


def api_key_get(*, user: User, key_id) -> ApiKey:
    """One of the user's own keys; Http404 for anyone else's and for unknown ids alike."""
    try:
        return api_keys_for_user(user).get(pk=key_id)
    except (ApiKey.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404(NO_SUCH_KEY) from error


def api_key_revoke(*, key: ApiKey, actor: User, request: AnyRequest | None = None) -> ApiKey:
    """Revoke the key from now on. Idempotent: a revoked key keeps its first revocation time."""
    if key.user_id != actor.pk:
        raise Http404(NO_SUCH_KEY)
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        key.refresh_from_db(fields=["revoked_at"])
        if revoked:
            audit_record(
                action="apikey.revoked",
                actor=actor,
                workspace=key.workspace,
                target=key,
                changes={"revoked_at": [None, key.revoked_at]},
                request=request,
            )
    return key


def api_key_authenticate(*, raw_key: str, address: str | None = None) -> ApiKey:
    """The active key matching `raw_key`, with its user loaded; raises ApiKeyRejected, or IpNotAllowed
    (audited) if the key's IP allow-list refuses the client `address` (None: not checked).

    Touches `last_used_at` at most once a minute, by a conditional UPDATE so that concurrent
    requests of one key do not each write it. A refused request does not count as a use.
    """
    # The secret part may contain "_" itself: split by position, not by separator.
    cut = len(KEY_START) + PREFIX_LENGTH
    prefix, separator, secret = raw_key[:cut], raw_key[cut : cut + 1], raw_key[cut + 1 :]
    if not prefix.startswith(KEY_START) or separator != "_" or not secret:
        raise ApiKeyRejected(INVALID_KEY)
    key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.key_hash, _hash(raw_key)) or not key.user.is_active:
        raise ApiKeyRejected(INVALID_KEY)
    now = timezone.now()
    if key.revoked_at is not None:
        raise ApiKeyRejected(REVOKED_KEY)
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyRejected(EXPIRED_KEY.format(expires_at=key.expires_at.isoformat()))
    if address is not None:
        ensure_allowed(
            key.allowed_ips, rule=API_KEY, address=address, actor=key, workspace=key.workspace_id, target=key
        )
    if key.last_used_at is None or key.last_used_at <= now - LAST_USED_RESOLUTION:
        touched = (
            ApiKey.objects.filter(pk=key.pk)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION))
            .update(last_used_at=now)
        )
        key.last_used_at = now
        if touched:  # the first use of this minute (of all the concurrent requests, one)
            api_key_used.send(sender=ApiKey, key=key, at=now)
    return key
