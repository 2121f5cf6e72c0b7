"""Multi-factor authentication: TOTP (RFC 6238) through django-otp, with one-time recovery codes.

A user has MFA when they have a confirmed TOTPDevice. Enrolment creates an unconfirmed device and shows
its secret; confirming it with a code turns MFA on and hands out RECOVERY_CODE_COUNT recovery codes once.

A correct password then only starts a login: the token endpoint answers with a short-lived, single-use
`mfa_token` (the login forms keep the pending user in the session instead) and the login finishes with
a code. A TOTP code works once: django-otp remembers the last time step used (`last_t`). Wrong codes
count in the login lockout (accounts.lockout) of the account and address, as wrong passwords do, and a
correct password does not clear them for a user with MFA (accounts.backends): only a complete login does.
"""

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

import segno
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.core import signing
from django.core.cache import caches
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts import lockout
from accounts.login_sessions import token_session_start
from accounts.models import RecoveryCode, User
from accounts.selectors import mfa_enabled
from audit.services import AnyRequest, audit_record
from core.problems import Conflict

RECOVERY_CODE_COUNT = 10
DEVICE_NAME = "Authenticator app"
CHALLENGE_SALT = "accounts.mfa.challenge"

ALREADY_ENABLED = "Multi-factor authentication is already on for this account."
NOT_ENABLED = "Multi-factor authentication is not on for this account."
NO_ENROLMENT = "Start the enrolment first (POST auth/mfa/totp)."
WRONG_CODE = "The code is not correct, or it was used already."
CODE_THROTTLED = "Too many wrong codes: wait {seconds} second(s) before trying again."
WRONG_PASSWORD = "The password is not correct."  # noqa: S105 - a message, not a secret
CHALLENGE_INVALID = "The MFA token is invalid, expired or used: log in with the password again."
API_KEY_REFUSED = "MFA is managed with a login, not with an API key."

TOTP_CODE = re.compile(r"\d{6}")


class CodeRejected(ValidationError):
    """A wrong, reused or throttled code. A ValidationError so that login forms show it; the API answers 401."""

    def __init__(self, message: str = WRONG_CODE):
        super().__init__(message, code="mfa_code_rejected")


class ChallengeInvalid(Exception):
    """The mfa_token is forged, expired or used (401)."""


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str  # base32, as authenticator apps take it when typed in
    otpauth_uri: str
    qr_svg: str


def _refuse_api_keys(user: User) -> None:
    # An API key is a machine credential: it must not be able to switch the person's second factor.
    if getattr(user, "api_key", None) is not None:
        raise PermissionDenied(API_KEY_REFUSED)


def totp_enrolment_start(*, user: User) -> TotpEnrolment:
    """Create an unconfirmed TOTP device (replacing an earlier unconfirmed one) and return its secret.

    Raises Conflict if MFA is already on: a second device would be a second way in, and turning MFA
    off (which needs a code) comes first.
    """
    _refuse_api_keys(user)
    with transaction.atomic():
        if TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).exists():
            raise Conflict(ALREADY_ENABLED)
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    uri = device.config_url
    return TotpEnrolment(
        secret=base64.b32encode(device.bin_key).decode(),
        otpauth_uri=uri,
        qr_svg=segno.make(uri, error="m").svg_inline(scale=4),
    )


def totp_enrolment_confirm(*, user: User, code: str, request: AnyRequest | None = None) -> list[str]:
    """Turn MFA on with a code from the device being enrolled; return the recovery codes, shown once.

    Raises Conflict without an enrolment, CodeRejected for a wrong code (counted as a failed login).
    """
    _refuse_api_keys(user)
    _lockout_check(user, request)
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        if device is None:
            raise Conflict(ALREADY_ENABLED if mfa_enabled(user) else NO_ENROLMENT)
        if not _totp_verify(device, code):
            failed = True
        else:
            failed = False
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = _recovery_codes_replace(user)
            audit_record(action="mfa.enabled", actor=user, target=user, changes={"mfa": [False, True]}, request=request)
    if failed:
        _code_failure(user=user, request=request, step="enrolment")
    return codes


def mfa_disable(*, user: User, password: str, code: str, request: AnyRequest | None = None) -> None:
    """Turn MFA off: needs the password and a current TOTP code or an unused recovery code.

    Raises ValidationError for a wrong password, CodeRejected for a wrong code (both counted as failed
    logins), Conflict if MFA is not on.
    """
    _refuse_api_keys(user)
    _lockout_check(user, request)
    if not mfa_enabled(user):
        raise Conflict(NOT_ENABLED)
    if not user.check_password(password):
        if request is not None:
            lockout.lockout_failure_record(email=user.email, request=request)
        raise ValidationError({"password": [WRONG_PASSWORD]})
    mfa_code_verify(user=user, code=code, request=request)
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        audit_record(action="mfa.disabled", actor=user, target=user, changes={"mfa": [True, False]}, request=request)


def mfa_reset(*, user: User, actor: User, request: AnyRequest | None = None) -> bool:
    """Turn MFA off for a user who lost their authenticator and recovery codes (an operator's admin
    action). Returns whether it was on; turning it off is audited as `mfa.disabled`."""
    with transaction.atomic():
        was_on = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        TOTPDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        if was_on:
            audit_record(
                action="mfa.disabled", actor=actor, target=user, changes={"mfa": [True, False]}, request=request
            )
    return was_on


def mfa_code_verify(*, user: User, code: str, request: AnyRequest | None = None) -> None:
    """Accept a TOTP code of the user's confirmed device, or one of their unused recovery codes, once.

    A wrong code is audited (`mfa.failed`) and counted in the login lockout; CodeRejected is raised.
    A recovery code is spent and audited (`mfa.recovery_code_used`). Raises LockedOut when the
    account is locked out from the request's address.
    """
    _lockout_check(user, request)
    code = (code or "").strip()
    with transaction.atomic():
        # Locked: two requests with one code must not both pass before last_t is saved.
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        if device is None:
            raise CodeRejected
        allowed, details = device.verify_is_allowed()
        if not allowed:
            raise CodeRejected(CODE_THROTTLED.format(seconds=_throttle_wait(device, details)))
        if TOTP_CODE.fullmatch(code):
            accepted = _totp_verify(device, code)
        else:
            accepted = _recovery_code_spend(user=user, code=code, request=request)
    if not accepted:
        _code_failure(user=user, request=request, step="login")


def _lockout_check(user: User, request: AnyRequest | None) -> None:
    # Lockouts are per address: without a request (a command, a test) there is none to check.
    if request is not None:
        lockout.lockout_check(email=user.email, request=request)


def _throttle_wait(device: TOTPDevice, details: dict | None) -> int:
    # django-otp doubles the wait after each wrong code of a device, from any address.
    failures = (details or {}).get("failure_count", device.throttling_failure_count)
    elapsed = (timezone.now() - device.throttling_failure_timestamp).total_seconds()
    return max(1, int(device.get_throttle_factor() * 2 ** (failures - 1) - elapsed) + 1)


def _totp_verify(device: TOTPDevice, code: str) -> bool:
    return bool(TOTP_CODE.fullmatch((code or "").strip())) and device.verify_token(code.strip())


def _code_failure(*, user: User, request: AnyRequest | None, step: str) -> None:
    audit_record(action="mfa.failed", actor=user, target=user, changes={"step": [None, step]}, request=request)
    if request is not None:
        lockout.lockout_failure_record(email=user.email, request=request)
    raise CodeRejected


def _normalized_recovery_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def _recovery_code_hash(code: str) -> str:
    return hashlib.sha256(_normalized_recovery_code(code).encode()).hexdigest()


def _recovery_codes_replace(user: User) -> list[str]:
    codes = [f"{secrets.token_hex(3)[:5]}-{secrets.token_hex(3)[:5]}" for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create([RecoveryCode(user=user, code_hash=_recovery_code_hash(code)) for code in codes])
    return codes


def _recovery_code_spend(*, user: User, code: str, request: AnyRequest | None) -> bool:
    if not _normalized_recovery_code(code):
        return False
    # The update is the check: of two requests with one code, only one changes the row.
    spent = RecoveryCode.objects.filter(user=user, code_hash=_recovery_code_hash(code), used_at__isnull=True).update(
        used_at=timezone.now()
    )
    if spent:
        left = RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
        audit_record(
            action="mfa.recovery_code_used",
            actor=user,
            target=user,
            changes={"recovery_codes_left": [left + 1, left]},
            request=request,
        )
    return bool(spent)


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


# --- the token endpoint's second step ---------------------------------------------------------


def token_login(*, user: User, request: AnyRequest | None = None) -> dict:
    """What a correct password gets at the token endpoint: tokens, or for a user with MFA a challenge
    to answer with a code at auth/token/mfa."""
    if mfa_enabled(user):
        return {"mfa_required": True, "mfa_token": _challenge_issue(user)}
    return _tokens_issue(user=user, request=request)


def token_login_finish(*, mfa_token: str, code: str, request: AnyRequest | None = None) -> dict:
    """Trade an mfa_token and a code for tokens. The token is spent by the first correct code; a wrong
    code leaves it usable (a typo should not mean typing the password again) until it expires.

    Raises ChallengeInvalid, CodeRejected, or LockedOut.
    """
    user, jti = _challenge_user(mfa_token)
    mfa_code_verify(user=user, code=code, request=request)
    # Single use: only the first finisher of a challenge gets tokens, even in a race.
    if not _spent_challenges().add(_challenge_used_key(jti), True, settings.DWC_MFA_CHALLENGE_SECONDS):
        raise ChallengeInvalid(CHALLENGE_INVALID)
    if request is not None:
        lockout.lockout_reset(email=user.email, request=request)
    return _tokens_issue(user=user, request=request)


def _challenge_issue(user: User) -> str:
    return signing.dumps({"user": str(user.pk), "jti": secrets.token_hex(16)}, salt=CHALLENGE_SALT, compress=True)


def _spent_challenges():
    # The "throttles" cache never drops a live entry (core/throttle_cache.py; Redis without
    # eviction): an evicted marker would make a spent mfa_token usable again until it expires.
    return caches["throttles"]


def _challenge_used_key(jti: str) -> str:
    return f"mfa:challenge-used:{jti}"


def _challenge_user(mfa_token: str) -> tuple[User, str]:
    try:
        claims = signing.loads(mfa_token, salt=CHALLENGE_SALT, max_age=settings.DWC_MFA_CHALLENGE_SECONDS)
    except signing.BadSignature as error:  # SignatureExpired is one
        raise ChallengeInvalid(CHALLENGE_INVALID) from error
    user = User.objects.filter(pk=claims.get("user"), is_active=True).first()
    if user is None or _spent_challenges().get(_challenge_used_key(claims.get("jti", ""))):
        raise ChallengeInvalid(CHALLENGE_INVALID)
    return user, claims["jti"]


def _tokens_issue(*, user: User, request: AnyRequest | None) -> dict:
    refresh = token_session_start(user=user, request=request)  # a session of its own (accounts.login_sessions)
    # Getting a token is logging in: Django's receivers (the audit trail's, last_login's) hear of it as
    # of a form login.
    if request is not None:
        user_logged_in.send(sender=type(user), request=getattr(request, "_request", request), user=user)
    elif jwt_settings.UPDATE_LAST_LOGIN:
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return {"refresh": str(refresh), "access": str(refresh.access_token)}


# --- the login forms' second step -------------------------------------------------------------

PENDING_SESSION_KEY = "mfa_pending_login"


def login_pending_store(*, session, user: User) -> None:
    """Remember, in a session not yet logged in, who gave a correct password and waits for the code."""
    session[PENDING_SESSION_KEY] = {
        "user": str(user.pk),
        "backend": getattr(user, "backend", None),
        "at": int(timezone.now().timestamp()),
    }


def login_pending_user(*, session) -> User | None:
    """The user waiting for the code in this session, None if nobody is or the wait expired."""
    pending = session.get(PENDING_SESSION_KEY)
    if not isinstance(pending, dict):
        return None
    if timezone.now().timestamp() - pending.get("at", 0) > settings.DWC_MFA_CHALLENGE_SECONDS:
        session.pop(PENDING_SESSION_KEY, None)
        return None
    user = User.objects.filter(pk=pending.get("user"), is_active=True).first()
    if user is not None:
        user.backend = pending.get("backend")
    return user


def login_pending_finish(*, session, user: User, code: str, request: AnyRequest) -> None:
    """Check the code of a pending form login; the caller logs the user in when this returns."""
    mfa_code_verify(user=user, code=code, request=request)
    session.pop(PENDING_SESSION_KEY, None)
    lockout.lockout_reset(email=user.email, request=request)
