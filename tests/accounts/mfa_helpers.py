"""Enrolling users in MFA and computing their codes, as an authenticator app would (RFC 6238)."""

import base64
import time

from django_otp.oath import hotp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from accounts.models import User


def next_code(user: User) -> str:
    """A TOTP code of the user's device that it has not used yet and that is valid now: the earliest
    time step within the device's tolerance after its last used one."""
    device = TOTPDevice.objects.filter(user=user).order_by("-confirmed").first()
    now = (int(time.time()) - device.t0) // device.step + device.drift  # as the device sees it
    # The current step rather than the earliest one accepted: that one stops being accepted as soon
    # as the clock passes into the next step, between computing the code and sending it.
    step = max(device.last_t + 1, now)
    assert step <= now + device.tolerance, "no unused code left in this time window"
    return f"{hotp(device.bin_key, step, digits=device.digits):06d}"


def enrol(user: User) -> list[str]:
    """Turn MFA on for `user` through the services; the recovery codes."""
    mfa.totp_enrolment_start(user=user)
    return mfa.totp_enrolment_confirm(user=user, code=next_code(user))


TOTP_STEP_SECONDS = 30  # a new TOTPDevice's, and authenticator apps'


def time_step(at: float | None = None) -> int:
    """The RFC 6238 time step of `at` (default now), counted from the epoch."""
    return int(time.time() if at is None else at) // TOTP_STEP_SECONDS


def code_from_secret(secret: str, step: int | None = None) -> str:
    """The code an authenticator app shows for a base32 secret, as the enrolment hands it out (spaces
    allowed), at time step `step` (default now). No database: it works while Playwright runs."""
    key = base64.b32decode(secret.replace(" ", "").upper())
    return f"{hotp(key, time_step() if step is None else step, digits=6):06d}"
