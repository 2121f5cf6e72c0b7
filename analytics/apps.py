from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Run analytics (to come). Operations (health, readiness, status, metrics, worker pings) are core's."""

    name = "analytics"
    verbose_name = "Analytics"
