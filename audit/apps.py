from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # Logins and logouts happen in Django's auth code, not in a service of ours: its signals tell us.
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

        from audit import receivers

        user_logged_in.connect(receivers.login_recorded, dispatch_uid="audit.login")
        user_logged_out.connect(receivers.logout_recorded, dispatch_uid="audit.logout")
        user_login_failed.connect(receivers.login_failure_recorded, dispatch_uid="audit.login_failed")
