"""Reads about users that more than one module asks: whether logins need a second factor."""

from django.db.models import Exists
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User


def mfa_enabled(user: User) -> bool:
    """Whether logins of `user` need a code: they have a confirmed TOTP device (accounts.mfa)."""
    return user.is_authenticated and TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def mfa_enabled_exists(user: User) -> Exists:
    """mfa_enabled as a condition of a query (accounts.access filters lists of workspaces with it)."""
    return Exists(TOTPDevice.objects.filter(user_id=user.pk, confirmed=True))
