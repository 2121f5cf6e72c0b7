"""Reads about users that more than one module asks: whether logins need a second factor."""

from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User


def mfa_enabled(user: User) -> bool:
    """Whether logins of `user` need a code: they have a confirmed TOTP device (accounts.mfa)."""
    return user.is_authenticated and TOTPDevice.objects.filter(user=user, confirmed=True).exists()
