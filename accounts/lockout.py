"""Login lockout: too many failed logins for one account from one address lock out that pair.

DWC_LOGIN_MAX_FAILURES failures within DWC_LOGIN_LOCKOUT_MINUTES (counted from the first) lock the
(account, address) pair for DWC_LOGIN_LOCKOUT_MINUTES; a successful login clears the count, and
`manage.py unlock_account` or the users admin lifts a lock early. Only that pair is locked: the
account's owner can still log in from elsewhere, so an attacker cannot lock them out of everything.

Counts and locks are rows of LoginLockout, in every mode. They lived in the cache once, and a cache
evicts: in the embedded mode (300 entries) another user's webhook traffic pushed a lock out minutes
into it. Logins are rare next to the requests the cache serves, so a row lock per failure is cheap.
Rows whose window and lock are over are deleted by `lockouts_prune` (a periodic task).
"""

import hashlib
import math
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import LoginLockout, User
from audit.services import audit_record
from core.throttling import client_ip

LOCKED_OUT = (
    "Too many failed logins for this account from your address: try again in {minutes} minute(s), "
    "or ask an administrator to lift the lock."
)


class LockedOut(ValidationError):
    """Raised instead of authenticating. A ValidationError so that Django's login forms (the admin's,
    the dashboard's) show its message; the token endpoint answers 429 with Retry-After instead."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(LOCKED_OUT.format(minutes=max(1, math.ceil(retry_after / 60))), code="locked_out")


def _account(email: str) -> str:
    # Hashed: the addresses people mistype (or attackers try) are not kept, and any input has one length.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def _window_seconds() -> int:
    return settings.DWC_LOGIN_LOCKOUT_MINUTES * 60


def lockout_remaining(*, email: str, ip: str) -> int:
    """Seconds until the pair is unlocked; 0 if it is not locked."""
    until = (
        LoginLockout.objects.filter(account=_account(email), address=ip, locked_until__isnull=False)
        .values_list("locked_until", flat=True)
        .first()
    )
    return max(0, math.ceil((until - timezone.now()).total_seconds())) if until else 0


def lockout_check(*, email: str, request) -> None:
    """Raise LockedOut if `email` is locked out from the request's address."""
    remaining = lockout_remaining(email=email, ip=client_ip(request))
    if remaining:
        raise LockedOut(remaining)


def lockout_failure_record(*, email: str, request) -> bool:
    """Count a failed login; lock the pair when the count reaches the limit. True if this one locked it.

    The lock is recorded in the audit trail once (`auth.locked_out`): failures of one pair are counted
    under its row lock, so only one of many failing at the same moment makes the lock.
    """
    ip, now, window = client_ip(request), timezone.now(), timedelta(seconds=_window_seconds())
    with transaction.atomic():
        row, _ = LoginLockout.objects.select_for_update().get_or_create(
            account=_account(email), address=ip, defaults={"first_failure_at": now}
        )
        if row.locked_until is not None and row.locked_until > now:
            return False
        if row.first_failure_at + window <= now or row.locked_until is not None:
            row.failures, row.first_failure_at, row.locked_until = 0, now, None  # a new window
        row.failures += 1
        locked = row.failures >= settings.DWC_LOGIN_MAX_FAILURES
        if locked:
            row.locked_until = now + window
        row.save(update_fields=["failures", "first_failure_at", "locked_until"])
        if locked:
            audit_record(
                action="auth.locked_out",
                actor=email.strip()[:254],
                target=User.objects.filter(email__iexact=email.strip()).first(),
                changes={
                    "failures": [None, row.failures],
                    "locked_minutes": [None, settings.DWC_LOGIN_LOCKOUT_MINUTES],
                },
                request=getattr(request, "_request", request),
            )
    return locked


def lockout_reset(*, email: str, request) -> None:
    """A successful login forgets the failures of its pair (a lock that formed meanwhile stays)."""
    LoginLockout.objects.filter(account=_account(email), address=client_ip(request)).exclude(
        locked_until__gt=timezone.now()
    ).delete()


def lockout_lift(*, email: str, ip: str | None = None, actor: User | None = None, request=None) -> int:
    """Lift the locks of `email` (from `ip` only, if given) and forget their failures. Returns how many
    locks were lifted; lifting any is audited as `auth.lockout_lifted` (actor None: the system, as for
    the `unlock_account` command)."""
    rows = LoginLockout.objects.filter(account=_account(email), **({"address": ip} if ip else {}))
    with transaction.atomic():
        lifted = sorted(rows.filter(locked_until__gt=timezone.now()).values_list("address", flat=True))
        rows.delete()
        if lifted:
            audit_record(
                action="auth.lockout_lifted",
                actor=actor,
                target=User.objects.filter(email__iexact=email.strip()).first(),
                changes={"locked_addresses": [lifted, None]},
                request=request,
            )
    return len(lifted)


def lockouts_prune() -> int:
    """Delete the rows that no longer count: their window and their lock (if any) are over."""
    now = timezone.now()
    window_over = Q(first_failure_at__lte=now - timedelta(seconds=_window_seconds()))
    lock_over = Q(locked_until__isnull=True) | Q(locked_until__lte=now)
    deleted, _ = LoginLockout.objects.filter(window_over & lock_over).delete()
    return deleted
