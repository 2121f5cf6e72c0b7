from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and workspaces"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_logged_out

        from accounts import (
            checks,  # noqa: F401 - registers the deploy checks
            login_sessions,
        )

        user_logged_in.connect(login_sessions.browser_login_recorded, dispatch_uid="accounts.browser_login")
        user_logged_out.connect(login_sessions.browser_logout_recorded, dispatch_uid="accounts.browser_logout")
