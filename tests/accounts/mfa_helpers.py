"""Enrolling users in MFA and computing their codes, as an authenticator app would (RFC 6238)."""

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
    step = max(device.last_t + 1, now - device.tolerance)
    assert step <= now + device.tolerance, "no unused code left in this time window"
    return f"{hotp(device.bin_key, step, digits=device.digits):06d}"


def enrol(user: User) -> list[str]:
    """Turn MFA on for `user` through the services; the recovery codes."""
    mfa.totp_enrolment_start(user=user)
    return mfa.totp_enrolment_confirm(user=user, code=next_code(user))
