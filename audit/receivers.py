"""Auth events that Django's own code (login forms, the admin, `authenticate()`) signals.

The token endpoint (accounts.api.views.TokenObtainView) sends `user_logged_in` too, and its wrong
passwords reach `user_login_failed` through `authenticate()`, so every way in is recorded here once.
"""

from django.contrib.auth import get_user_model

from audit.services import audit_record


def login_recorded(sender, request=None, user=None, **kwargs) -> None:
    if user is not None:
        audit_record(action="auth.login", actor=user, target=user, request=request)


def logout_recorded(sender, request=None, user=None, **kwargs) -> None:
    if user is not None:  # logging out without a session signals None
        audit_record(action="auth.logout", actor=user, target=user, request=request)


def login_failure_recorded(sender, credentials: dict, request=None, **kwargs) -> None:
    """The name tried is recorded as given; Django has already masked the password in `credentials`."""
    User = get_user_model()  # noqa: N806 - a model class
    name = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    user_id = User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": name}).values_list("pk", flat=True).first()
    audit_record(
        action="auth.login_failed",
        actor=name,
        target_type="user",
        target_id=user_id or "",
        request=request,
    )
