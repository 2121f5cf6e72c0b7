"""Login lockout: too many failed logins for one account from one address lock out that pair.

DWC_LOGIN_MAX_FAILURES failures within DWC_LOGIN_LOCKOUT_MINUTES (counted from the first) lock the
(account, address) pair for DWC_LOGIN_LOCKOUT_MINUTES; a successful login clears the count, and
`manage.py unlock_account` or the users admin lifts a lock early. Only that pair is locked: the
account's owner can still log in from elsewhere, so an attacker cannot lock them out of everything.

Counts live in the cache (Redis in the distributed mode, shared by every process). Our own small
module rather than django-axes: axes keeps its records in the database and wraps every login with
its own middleware and backend; we need a counter with an expiry, which the cache already is.
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

from accounts.models import User
from audit.services import audit_record
from config.throttling import client_ip

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
    # Hashed: addresses stay out of cache keys (and logs of the cache), and any input makes a valid key.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def _failures_key(email: str, ip: str) -> str:
    return f"lockout:failures:{_account(email)}:{ip}"


def _lock_key(email: str, ip: str) -> str:
    return f"lockout:lock:{_account(email)}:{ip}"


def _locked_ips_key(email: str) -> str:
    return f"lockout:ips:{_account(email)}"


def _window_seconds() -> int:
    return settings.DWC_LOGIN_LOCKOUT_MINUTES * 60


def lockout_remaining(*, email: str, ip: str) -> int:
    """Seconds until the pair is unlocked; 0 if it is not locked."""
    until = cache.get(_lock_key(email, ip))
    return max(0, math.ceil(until - time.time())) if until else 0


def lockout_check(*, email: str, request) -> None:
    """Raise LockedOut if `email` is locked out from the request's address."""
    remaining = lockout_remaining(email=email, ip=client_ip(request))
    if remaining:
        raise LockedOut(remaining)


def lockout_failure_record(*, email: str, request) -> bool:
    """Count a failed login; lock the pair when the count reaches the limit. True if this one locked it.

    The lock is recorded in the audit trail once (`auth.locked_out`): only the request that creates
    the lock key writes the event, however many fail at the same moment.
    """
    ip = client_ip(request)
    window = _window_seconds()
    key = _failures_key(email, ip)
    if cache.add(key, 1, window):
        failures = 1
    else:
        try:
            failures = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, window)
            failures = 1
    if failures < settings.DWC_LOGIN_MAX_FAILURES:
        return False
    if not cache.add(_lock_key(email, ip), time.time() + window, window):
        return False
    locked_ips = cache.get(_locked_ips_key(email)) or []
    cache.set(_locked_ips_key(email), sorted({*locked_ips, ip}), window)
    user = User.objects.filter(email__iexact=email.strip()).first()
    audit_record(
        action="auth.locked_out",
        actor=email.strip()[:254],
        target=user,
        changes={"failures": [None, failures], "locked_minutes": [None, settings.DWC_LOGIN_LOCKOUT_MINUTES]},
        request=getattr(request, "_request", request),
    )
    return True


def lockout_reset(*, email: str, request) -> None:
    """A successful login forgets the failures of its pair."""
    cache.delete(_failures_key(email, client_ip(request)))


def lockout_lift(*, email: str, ip: str | None = None, actor: User | None = None, request=None) -> int:
    """Lift the locks of `email` (from `ip` only, if given) and forget their failures. Returns how many
    locks were lifted; lifting any is audited as `auth.lockout_lifted` (actor None: the system, as for
    the `unlock_account` command)."""
    ips = [ip] if ip else cache.get(_locked_ips_key(email)) or []
    lifted = []
    for address in ips:
        if cache.get(_lock_key(email, address)):
            lifted.append(address)
        cache.delete_many([_lock_key(email, address), _failures_key(email, address)])
    if not ip:
        cache.delete(_locked_ips_key(email))
    if lifted:
        audit_record(
            action="auth.lockout_lifted",
            actor=actor,
            target=User.objects.filter(email__iexact=email.strip()).first(),
            changes={"locked_addresses": [sorted(lifted), None]},
            request=request,
        )
    return len(lifted)
