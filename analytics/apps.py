from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Product analytics: an event stream, its rollups, insights, reports. Operations (health,
    readiness, status, metrics, worker pings) are core's."""

    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts.signals import api_key_used
        from analytics import receivers

        user_logged_in.connect(receivers.login_counted, dispatch_uid="analytics.login")
        api_key_used.connect(receivers.api_key_counted, dispatch_uid="analytics.api_key")
