from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from accounts import lockout
from accounts.selectors import mfa_enabled


class LockoutModelBackend(ModelBackend):
    """Django's model backend behind the login lockout (accounts.lockout): a locked pair of account
    and address is refused before the password is checked; failures are counted, a success clears
    them. Every password login goes through here: the token endpoint and the login forms alike."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        email = username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD)
        if request is None or not email or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        lockout.lockout_check(email=email, request=request)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            lockout.lockout_failure_record(email=email, request=request)
        elif not mfa_enabled(user):
            # With MFA the password is half a login: clearing the count here would let someone who
            # knows it guess codes without end, a few between two correct passwords. accounts.mfa
            # clears it when the code is right.
            lockout.lockout_reset(email=email, request=request)
        return user
